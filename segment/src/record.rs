use bytes::Bytes;

/// One record header: a string key and an optional binary value (Kafka's model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One event as producers send it and consumers receive it. Offsets are not part of
/// a record: the metadata service assigns them when the segment is committed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// Bytes this record occupies in memory and on the wire, roughly: payload plus a
    /// small fixed overhead. Used for batching caps, backpressure and fetch limits.
    pub fn size_estimate(&self) -> usize {
        const OVERHEAD: usize = 24;
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 8)
            .sum();
        OVERHEAD
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}
