/// The partition Kafka's default partitioner picks for a keyed record:
/// murmur2 of the key bytes, made positive, modulo the partition count. Using the same
/// function means a key lands in the same partition whichever door it comes through.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_murmur2() {
        // Values from Kafka's own partitioner tests (signed 32-bit hashes).
        assert_eq!(
            murmur2::murmur2(b"21", murmur2::KAFKA_SEED) as i32,
            -973_932_308
        );
        assert_eq!(
            murmur2::murmur2(b"foobar", murmur2::KAFKA_SEED) as i32,
            -790_332_482
        );
        let p = partition_for_key(b"order-17", 8);
        assert!((0..8).contains(&p));
        assert_eq!(p, partition_for_key(b"order-17", 8));
    }
}
