//! The rules every front door applies before records reach ingest, in one place so a
//! record is judged alike whether it comes over Kafka, HTTP or MQTT: the partition must
//! exist (or is picked: Kafka's murmur2 of the key, round robin without one), each record
//! must fit the topic's `max.message.bytes`, records of topics with
//! `message.timestamp.type = LogAppendTime` get the append time, and unknown topics are created on first use when
//! the cluster allows it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use silt_metadata::{CatalogStore, MetadataError, Topic, TopicConfig};
use silt_segment::Record;
use tracing::info;

/// Cluster-wide topic defaults (the `[topics]` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicDefaults {
    /// Create a topic when a client asks for an unknown one (Kafka's
    /// `auto.create.topics.enable`).
    pub auto_create: bool,
    /// Partitions of topics created without a count (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Largest record accepted when a topic sets no `max.message.bytes` (Kafka's
    /// `message.max.bytes`).
    pub max_message_bytes: usize,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        Self {
            auto_create: true,
            default_partitions: 1,
            max_message_bytes: 1 << 20,
        }
    }
}

/// Why records were refused before ingest. Nothing of a refused request is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceRefusal {
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("a record of {size} bytes exceeds the limit of {max} bytes for '{topic}'")]
    RecordTooLarge {
        topic: String,
        size: usize,
        max: usize,
    },
    #[error(
        "a record's timestamp {timestamp_ms} is {distance_ms} ms {direction} this node's clock; '{topic}' allows at most {max_ms} ms (message.timestamp.{direction}.max.ms)"
    )]
    InvalidTimestamp {
        topic: String,
        timestamp_ms: i64,
        /// `before` or `after`.
        direction: &'static str,
        distance_ms: i64,
        max_ms: i64,
    },
}

/// The produce rules of one node.
#[derive(Debug, Default)]
pub struct ProduceRules {
    defaults: TopicDefaults,
    round_robin: AtomicU64,
}

/// The partition Kafka's default partitioner picks for a keyed record: murmur2 of the key
/// bytes, made positive, modulo the partition count. Using the same function means a key
/// lands in the same partition whichever door (or Kafka client) it comes through.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

impl ProduceRules {
    pub fn new(defaults: TopicDefaults) -> Self {
        Self {
            defaults,
            round_robin: AtomicU64::new(0),
        }
    }

    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// The largest record `topic` accepts.
    pub fn max_message_bytes(&self, topic: &Topic) -> usize {
        topic
            .config
            .max_message_bytes
            .map_or(self.defaults.max_message_bytes, |m| m as usize)
    }

    /// Checks that `partition` exists in `topic`.
    pub fn check_partition(&self, topic: &Topic, partition: i32) -> Result<(), ProduceRefusal> {
        if (0..topic.partitions).contains(&partition) {
            Ok(())
        } else {
            Err(ProduceRefusal::UnknownPartition {
                topic: topic.name.clone(),
                partition,
            })
        }
    }

    /// The partition of a record: the one asked for (checked), else murmur2 of the key,
    /// else the next in round robin.
    pub fn partition_for(
        &self,
        topic: &Topic,
        asked: Option<i32>,
        key: Option<&[u8]>,
    ) -> Result<i32, ProduceRefusal> {
        match (asked, key) {
            (Some(p), _) => self.check_partition(topic, p).map(|()| p),
            (None, Some(key)) => Ok(partition_for_key(key, topic.partitions)),
            (None, None) => {
                let n = self.round_robin.fetch_add(1, Ordering::Relaxed);
                Ok((n % topic.partitions.max(1) as u64) as i32)
            }
        }
    }

    /// Checks that every record fits the topic's limit.
    pub fn check_sizes<'r>(
        &self,
        topic: &Topic,
        records: impl IntoIterator<Item = &'r Record>,
    ) -> Result<(), ProduceRefusal> {
        let max = self.max_message_bytes(topic);
        match records
            .into_iter()
            .map(Record::size_estimate)
            .find(|s| *s > max)
        {
            Some(size) => Err(ProduceRefusal::RecordTooLarge {
                topic: topic.name.clone(),
                size,
                max,
            }),
            None => Ok(()),
        }
    }

    /// Gives every record the append time `now_ms` when the topic keeps LogAppendTime
    /// (the time the node accepted it); otherwise checks the producer's timestamps against
    /// the topic's `message.timestamp.before.max.ms` and `after.max.ms`, as Kafka does.
    pub fn stamp<'r>(
        &self,
        topic: &Topic,
        records: impl IntoIterator<Item = &'r mut Record>,
        now_ms: i64,
    ) -> Result<(), ProduceRefusal> {
        let config = &topic.config;
        if config.log_append_time() {
            for record in records {
                record.timestamp_ms = now_ms;
            }
            return Ok(());
        }
        let before = config.timestamp_before_max_ms.unwrap_or(i64::MAX);
        let after = config.timestamp_after_max_ms.unwrap_or(i64::MAX);
        if before == i64::MAX && after == i64::MAX {
            return Ok(());
        }
        for record in records {
            let t = record.timestamp_ms;
            let (direction, distance_ms, max_ms) = if t <= now_ms {
                ("before", now_ms.saturating_sub(t), before)
            } else {
                ("after", t.saturating_sub(now_ms), after)
            };
            if distance_ms > max_ms {
                return Err(ProduceRefusal::InvalidTimestamp {
                    topic: topic.name.clone(),
                    timestamp_ms: t,
                    direction,
                    distance_ms,
                    max_ms,
                });
            }
        }
        Ok(())
    }

    /// The topic named `name`, created with the default partition count when it does not
    /// exist, auto-creation is on and `may_create` (the caller's right to create it).
    pub async fn find_or_create(
        &self,
        catalog: &dyn CatalogStore,
        name: &str,
        may_create: bool,
    ) -> Result<Topic, MetadataError> {
        match catalog.topic(name).await {
            Err(MetadataError::UnknownTopic { .. }) if may_create && self.defaults.auto_create => {
                match catalog
                    .create_topic(
                        name,
                        self.defaults.default_partitions,
                        TopicConfig::default(),
                    )
                    .await
                {
                    Ok(topic) => {
                        info!(
                            topic = name,
                            partitions = topic.partitions,
                            "topic created on first use"
                        );
                        Ok(topic)
                    }
                    // Another client created it meanwhile.
                    Err(MetadataError::TopicExists { .. }) => catalog.topic(name).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use uuid::Uuid;

    fn topic(partitions: i32, config: TopicConfig) -> Topic {
        Topic {
            id: Uuid::now_v7(),
            name: "t".into(),
            partitions,
            config,
            created_at_ms: 0,
        }
    }

    fn record(value_len: usize, timestamp_ms: i64) -> Record {
        Record {
            timestamp_ms,
            key: None,
            value: Some(Bytes::from(vec![7; value_len])),
            headers: Vec::new(),
        }
    }

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

    #[test]
    fn partitions_are_checked_hashed_or_spread() {
        let rules = ProduceRules::default();
        let t = topic(3, TopicConfig::default());
        assert_eq!(rules.partition_for(&t, Some(2), None), Ok(2));
        assert_eq!(
            rules.partition_for(&t, Some(3), None),
            Err(ProduceRefusal::UnknownPartition {
                topic: "t".into(),
                partition: 3
            })
        );
        assert!(rules.partition_for(&t, Some(-1), Some(b"k")).is_err());
        let keyed = rules.partition_for(&t, None, Some(b"order-17"));
        assert_eq!(keyed, Ok(partition_for_key(b"order-17", 3)));
        let spread: Vec<i32> = (0..6)
            .map(|_| rules.partition_for(&t, None, None).expect("a partition"))
            .collect();
        assert_eq!(spread, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn records_must_fit_and_log_append_time_is_stamped() {
        let rules = ProduceRules::new(TopicDefaults {
            max_message_bytes: 100,
            ..TopicDefaults::default()
        });
        let small = topic(1, TopicConfig::default());
        let mut records = vec![record(10, 5), record(200, 6)];
        let refused = rules.check_sizes(&small, &records);
        assert!(
            matches!(
                refused,
                Err(ProduceRefusal::RecordTooLarge { max: 100, .. })
            ),
            "{refused:?}"
        );

        let roomy = topic(
            1,
            TopicConfig {
                max_message_bytes: Some(1000),
                message_timestamp_type: Some(silt_metadata::TimestampType::LogAppendTime),
                ..TopicConfig::default()
            },
        );
        rules
            .check_sizes(&roomy, &records)
            .expect("the topic's own limit applies");
        rules.stamp(&roomy, &mut records, 99).expect("stamped");
        assert!(records.iter().all(|r| r.timestamp_ms == 99));
        let create_time = topic(1, TopicConfig::default());
        let mut kept = vec![record(1, 5)];
        rules.stamp(&create_time, &mut kept, 99).expect("any time");
        assert_eq!(kept[0].timestamp_ms, 5);
    }

    #[test]
    fn create_time_bounds_refuse_timestamps_too_far_from_the_clock() {
        let rules = ProduceRules::default();
        let bounded = topic(
            1,
            TopicConfig::from_pairs([
                ("message.timestamp.before.max.ms", "1000"),
                ("message.timestamp.after.max.ms", "10"),
            ])
            .expect("valid"),
        );
        let now = 1_000_000;
        for ok in [now, now - 1000, now + 10] {
            rules
                .stamp(&bounded, &mut [record(1, ok)], now)
                .expect("within the bounds");
        }
        let late = rules.stamp(&bounded, &mut [record(1, now - 1001)], now);
        assert!(
            matches!(
                late,
                Err(ProduceRefusal::InvalidTimestamp {
                    direction: "before",
                    distance_ms: 1001,
                    max_ms: 1000,
                    ..
                })
            ),
            "{late:?}"
        );
        let early = rules.stamp(&bounded, &mut [record(1, now + 11)], now);
        assert!(
            matches!(
                early,
                Err(ProduceRefusal::InvalidTimestamp {
                    direction: "after",
                    ..
                })
            ),
            "{early:?}"
        );
    }
}
