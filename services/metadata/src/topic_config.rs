//! Topic configs: the table of every Kafka topic config Silt knows (type, default, valid
//! values, and whether Silt acts on it), and [`TopicConfig`], a topic's settings.
//!
//! A known config is accepted when its value is valid for Kafka. The ones Silt acts on
//! have typed fields; the rest concern things shared storage does not have (replicas,
//! local segment files, fsync) and are kept as given, so tools that set them (Kafka
//! Connect, Terraform providers, operators) work and read back what they wrote. An
//! unknown name is refused, as Kafka refuses it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MetadataError, Result};

/// Kafka's config value types (the `config_type` of DescribeConfigs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// The code Kafka's DescribeConfigs answer uses.
    pub fn code(self) -> i8 {
        match self {
            Self::Boolean => 1,
            Self::String => 2,
            Self::Int => 3,
            Self::Short => 4,
            Self::Long => 5,
            Self::Double => 6,
            Self::List => 7,
        }
    }

    fn kafka_name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Short => "SHORT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::List => "LIST",
        }
    }
}

/// The values a config accepts beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Valid {
    /// Any value of the type.
    Any,
    /// A number at least this.
    AtLeast(f64),
    /// A number in this closed range.
    Between(f64, f64),
    /// A number in the range, or exactly the extra value (Kafka's "[1,...,9] or -1").
    BetweenOr(f64, f64, f64),
    /// One of these strings (for a list: each item).
    OneOf(&'static [&'static str]),
}

/// What Silt does with a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Silt applies it.
    Applied,
    /// Accepted and kept, with no effect; the text says why.
    None(&'static str),
}

/// One known topic config.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Silt's default when neither the topic nor the node sets it (for `retention.ms` and
    /// `max.message.bytes` the node's configuration gives the default: see
    /// [`TopicConfigDefaults`]).
    pub default: &'static str,
    pub valid: Valid,
    pub effect: Effect,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const NO_REPLICAS: &str = "the object store keeps every acknowledged record; there are no replicas";
const NO_LOCAL_LOG: &str = "there are no local log segment files on shared storage";
const NO_FSYNC: &str = "every acknowledged record is already in the object store";
const NO_COMPACTION: &str =
    "topics are not compacted by key yet (cleanup.policy=compact is refused)";
const OWN_COMPRESSION: &str =
    "Silt compresses its segments and lake files itself; fetch answers carry uncompressed batches";

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    valid: Valid,
    effect: Effect,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        valid,
        effect,
        doc,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, Short, String as Str};
use Effect::{Applied, None as NoEffect};
use Valid::{Any, AtLeast, Between, BetweenOr, OneOf};

/// Every topic config of Kafka 4, sorted by name.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        List,
        "delete",
        OneOf(&["compact", "delete"]),
        Applied,
        "What happens to old records: delete removes them by retention.ms and retention.bytes.",
    ),
    def(
        "compression.gzip.level",
        Int,
        "-1",
        BetweenOr(1.0, 9.0, -1.0),
        NoEffect(OWN_COMPRESSION),
        "Compression level for gzip.",
    ),
    def(
        "compression.lz4.level",
        Int,
        "9",
        Between(1.0, 17.0),
        NoEffect(OWN_COMPRESSION),
        "Compression level for lz4.",
    ),
    def(
        "compression.type",
        Str,
        "producer",
        OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        NoEffect(OWN_COMPRESSION),
        "The compression a broker keeps batches in.",
    ),
    def(
        "compression.zstd.level",
        Int,
        "3",
        Between(-131072.0, 22.0),
        NoEffect(OWN_COMPRESSION),
        "Compression level for zstd.",
    ),
    def(
        "delete.retention.ms",
        Long,
        "86400000",
        AtLeast(0.0),
        NoEffect(NO_COMPACTION),
        "How long tombstones of a compacted topic are kept.",
    ),
    def(
        "file.delete.delay.ms",
        Long,
        "60000",
        AtLeast(0.0),
        NoEffect("deleted objects wait compactor.gc_grace before they are removed"),
        "How long a deleted segment file waits before removal.",
    ),
    def(
        "flush.messages",
        Long,
        LONG_MAX,
        AtLeast(1.0),
        NoEffect(NO_FSYNC),
        "Records between forced fsyncs.",
    ),
    def(
        "flush.ms",
        Long,
        LONG_MAX,
        AtLeast(0.0),
        NoEffect(NO_FSYNC),
        "Milliseconds between forced fsyncs.",
    ),
    def(
        "follower.replication.throttled.replicas",
        List,
        "",
        Any,
        NoEffect(NO_REPLICAS),
        "Replicas throttled on the follower side.",
    ),
    def(
        "index.interval.bytes",
        Int,
        "4096",
        AtLeast(0.0),
        NoEffect(NO_LOCAL_LOG),
        "Bytes between offset index entries.",
    ),
    def(
        "leader.replication.throttled.replicas",
        List,
        "",
        Any,
        NoEffect(NO_REPLICAS),
        "Replicas throttled on the leader side.",
    ),
    def(
        "local.retention.bytes",
        Long,
        "-2",
        AtLeast(-2.0),
        NoEffect(NO_LOCAL_LOG),
        "Bytes kept on local disk under tiered storage.",
    ),
    def(
        "local.retention.ms",
        Long,
        "-2",
        AtLeast(-2.0),
        NoEffect(NO_LOCAL_LOG),
        "Time kept on local disk under tiered storage.",
    ),
    def(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        AtLeast(1.0),
        NoEffect(NO_COMPACTION),
        "Longest a record may stay uncompacted in a compacted topic.",
    ),
    def(
        "max.message.bytes",
        Int,
        "1048576",
        AtLeast(0.0),
        Applied,
        "Largest record (batch) accepted, in bytes.",
    ),
    def(
        "message.downconversion.enable",
        Boolean,
        "true",
        Any,
        NoEffect("every fetch version Silt answers carries record batches as produced"),
        "Whether old fetch versions get down-converted batches.",
    ),
    def(
        "message.timestamp.after.max.ms",
        Long,
        LONG_MAX,
        AtLeast(0.0),
        Applied,
        "How far a CreateTime timestamp may be ahead of the node's clock.",
    ),
    def(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        AtLeast(0.0),
        Applied,
        "How far a CreateTime timestamp may be behind the node's clock.",
    ),
    def(
        "message.timestamp.type",
        Str,
        "CreateTime",
        OneOf(&["CreateTime", "LogAppendTime"]),
        Applied,
        "Whose clock stamps records: the producer's (CreateTime) or the node's (LogAppendTime).",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Between(0.0, 1.0),
        NoEffect(NO_COMPACTION),
        "Share of uncompacted log that starts compaction.",
    ),
    def(
        "min.compaction.lag.ms",
        Long,
        "0",
        AtLeast(0.0),
        NoEffect(NO_COMPACTION),
        "Shortest time a record stays uncompacted in a compacted topic.",
    ),
    def(
        "min.insync.replicas",
        Int,
        "1",
        AtLeast(1.0),
        NoEffect(NO_REPLICAS),
        "Replicas that must acknowledge an acks=all produce.",
    ),
    def(
        "preallocate",
        Boolean,
        "false",
        Any,
        NoEffect(NO_LOCAL_LOG),
        "Whether segment files are preallocated.",
    ),
    def(
        "remote.log.copy.disable",
        Boolean,
        "false",
        Any,
        NoEffect("all of Silt's log is in the object store"),
        "Stops copying segments to tiered storage.",
    ),
    def(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        Any,
        NoEffect("all of Silt's log is in the object store"),
        "Deletes tiered segments when tiered storage is turned off.",
    ),
    def(
        "remote.storage.enable",
        Boolean,
        "false",
        Any,
        NoEffect("all of Silt's log is in the object store"),
        "Turns on tiered storage.",
    ),
    def(
        "retention.bytes",
        Long,
        "-1",
        AtLeast(-1.0),
        Applied,
        "Bytes kept per partition before the oldest are deleted; -1 for no limit.",
    ),
    def(
        "retention.ms",
        Long,
        "604800000",
        AtLeast(-1.0),
        Applied,
        "How long records are kept, in ms; -1 keeps them forever.",
    ),
    def(
        "segment.bytes",
        Int,
        "1073741824",
        AtLeast(1048576.0),
        NoEffect("segment objects are sized by ingest.max_segment_bytes and the linger"),
        "Size of a log segment file.",
    ),
    def(
        "segment.index.bytes",
        Int,
        "10485760",
        AtLeast(4.0),
        NoEffect(NO_LOCAL_LOG),
        "Size of a segment's offset index.",
    ),
    def(
        "segment.jitter.ms",
        Long,
        "0",
        AtLeast(0.0),
        NoEffect(NO_LOCAL_LOG),
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        Long,
        "604800000",
        AtLeast(1.0),
        NoEffect(NO_LOCAL_LOG),
        "Time after which a segment file is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Any,
        NoEffect(NO_REPLICAS),
        "Whether an out-of-sync replica may become leader.",
    ),
];

/// The known config named `name`.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The defaults a node's configuration gives topics that set nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfigDefaults {
    /// `retention.ms` (the compactor's `default_retention_ms`); -1 keeps records forever.
    pub retention_ms: i64,
    /// `max.message.bytes` (`topics.max_message_bytes`).
    pub max_message_bytes: i64,
}

impl Default for TopicConfigDefaults {
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1 << 20,
        }
    }
}

/// Where a described value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic,
    /// The node's configuration (a value other than the built-in default).
    Node,
    /// The built-in default.
    Default,
}

/// One config as DescribeConfigs shows it.
#[derive(Debug, Clone)]
pub struct DescribedConfig {
    pub def: &'static ConfigDef,
    pub value: String,
    pub source: ConfigSource,
}

/// Per-topic settings, named as in Kafka. Unset means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// How long records are kept, in ms; -1 keeps them forever.
    #[serde(rename = "retention.ms", skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// Bytes kept per partition; -1 means no limit.
    #[serde(rename = "retention.bytes", skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<i64>,
    /// Largest record accepted, in bytes.
    #[serde(rename = "max.message.bytes", skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<i64>,
    /// Whose clock stamps records: the producer's (CreateTime, the default) or the broker's
    /// when it accepts them (LogAppendTime).
    #[serde(
        rename = "message.timestamp.type",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_timestamp_type: Option<TimestampType>,
    /// How far behind the node's clock a CreateTime timestamp may be, in ms.
    #[serde(
        rename = "message.timestamp.before.max.ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp_before_max_ms: Option<i64>,
    /// How far ahead of the node's clock a CreateTime timestamp may be, in ms.
    #[serde(
        rename = "message.timestamp.after.max.ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp_after_max_ms: Option<i64>,
    /// The other known configs that are set, by name, in their canonical form (see the
    /// module docs).
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// Kafka's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        }
    }
}

/// Checks `value` against `def`, giving its canonical form, or Kafka's reason.
fn canonical(def: &ConfigDef, value: &str) -> std::result::Result<String, String> {
    let value = value.trim();
    let not_type = || format!("Not a number of type {}", def.kind.kafka_name());
    let number = match def.kind {
        Int => Some(
            value
                .parse::<i32>()
                .map_err(|_| not_type())
                .map(f64::from)?,
        ),
        Short => Some(
            value
                .parse::<i16>()
                .map_err(|_| not_type())
                .map(f64::from)?,
        ),
        Long => Some(value.parse::<i64>().map_err(|_| not_type())? as f64),
        Double => Some(
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(not_type)?,
        ),
        Boolean | Str | List => None,
    };
    if let Some(n) = number {
        let ok = match def.valid {
            AtLeast(min) => n >= min,
            Between(min, max) => (min..=max).contains(&n),
            BetweenOr(min, max, extra) => (min..=max).contains(&n) || n == extra,
            Any | OneOf(_) => true,
        };
        if !ok {
            return Err(match def.valid {
                AtLeast(min) => format!("Value must be at least {min}"),
                Between(min, max) => format!("Value must be in the range [{min}, {max}]"),
                BetweenOr(min, max, extra) => {
                    format!("Value must be in the range [{min}, {max}] or {extra}")
                }
                Any | OneOf(_) => unreachable!("not a bound"),
            });
        }
        return Ok(value.to_string());
    }
    match (def.kind, def.valid) {
        (Boolean, _) => match value.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(v.to_string()),
            _ => Err("Expected value to be either true or false".into()),
        },
        (List, OneOf(allowed)) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
                return Err(format!(
                    "Invalid value {bad}; the list items must be in [{}]",
                    allowed.join(", ")
                ));
            }
            Ok(items.join(","))
        }
        (_, OneOf(allowed)) if !allowed.contains(&value) => {
            Err(format!("String must be one of: {}", allowed.join(", ")))
        }
        _ => Ok(value.to_string()),
    }
}

fn unknown(key: &str) -> MetadataError {
    MetadataError::InvalidConfig {
        key: key.to_string(),
        reason: format!("Unknown topic config name: {key}"),
    }
}

impl TopicConfig {
    /// Whether the broker's clock stamps this topic's records.
    pub fn log_append_time(&self) -> bool {
        self.message_timestamp_type == Some(TimestampType::LogAppendTime)
    }

    /// Builds a config from Kafka-style string pairs, rejecting unknown keys and bad values.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut config = Self::default();
        for (key, value) in pairs {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one setting from its Kafka name and string value, as Kafka validates it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let def = config_def(key).ok_or_else(|| unknown(key))?;
        let invalid = |reason: String| MetadataError::InvalidConfig {
            key: key.to_string(),
            reason: format!("Invalid value {value} for configuration {key}: {reason}"),
        };
        let value = canonical(def, value).map_err(invalid)?;
        let number = || value.parse::<i64>().expect("checked as a number");
        match key {
            "cleanup.policy" if value.split(',').any(|p| p == "compact") => {
                return Err(invalid(
                    "Silt does not compact topics by key yet; use delete".into(),
                ));
            }
            "retention.ms" => self.retention_ms = Some(number()),
            "retention.bytes" => self.retention_bytes = Some(number()),
            "max.message.bytes" => self.max_message_bytes = Some(number()),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = Some(number()),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = Some(number()),
            "message.timestamp.type" => {
                self.message_timestamp_type = Some(if value == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                });
            }
            _ => {
                self.other.insert(key.to_string(), value);
            }
        }
        Ok(())
    }

    /// Removes a setting (back to the default). Unknown names are an error.
    pub fn unset(&mut self, key: &str) -> Result<()> {
        config_def(key).ok_or_else(|| unknown(key))?;
        match key {
            "retention.ms" => self.retention_ms = None,
            "retention.bytes" => self.retention_bytes = None,
            "max.message.bytes" => self.max_message_bytes = None,
            "message.timestamp.type" => self.message_timestamp_type = None,
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = None,
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = None,
            _ => {
                self.other.remove(key);
            }
        }
        Ok(())
    }

    /// The value set for `key`, if it is set.
    pub fn get(&self, key: &str) -> Option<String> {
        let number = |v: Option<i64>| v.map(|v| v.to_string());
        match key {
            "retention.ms" => number(self.retention_ms),
            "retention.bytes" => number(self.retention_bytes),
            "max.message.bytes" => number(self.max_message_bytes),
            "message.timestamp.before.max.ms" => number(self.timestamp_before_max_ms),
            "message.timestamp.after.max.ms" => number(self.timestamp_after_max_ms),
            "message.timestamp.type" => self.message_timestamp_type.map(|t| t.as_str().into()),
            _ => self.other.get(key).cloned(),
        }
    }

    /// The settings that are set, as Kafka-style string pairs, sorted by name.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        TOPIC_CONFIGS
            .iter()
            .filter_map(|d| Some((d.name, self.get(d.name)?)))
            .collect()
    }

    /// Every known config with the value in force for this topic and where it comes from.
    pub fn describe(&self, defaults: &TopicConfigDefaults) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let (value, source) = match self.get(def.name) {
                    Some(v) => (v, ConfigSource::Topic),
                    None => {
                        let node = match def.name {
                            "retention.ms" => Some(defaults.retention_ms.to_string()),
                            "max.message.bytes" => Some(defaults.max_message_bytes.to_string()),
                            _ => None,
                        };
                        match node {
                            Some(v) if v != def.default => (v, ConfigSource::Node),
                            _ => (def.default.to_string(), ConfigSource::Default),
                        }
                    }
                };
                DescribedConfig { def, value, source }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        for def in TOPIC_CONFIGS {
            assert!(
                canonical(def, def.default).is_ok(),
                "{}'s default {:?} is not valid",
                def.name,
                def.default
            );
        }
    }

    /// docs/kafka.md's table row for a config.
    fn doc_row(def: &ConfigDef) -> String {
        let default = match def.name {
            "retention.ms" => "`compactor.default_retention_ms` (604800000, 7 days)".to_string(),
            "max.message.bytes" => "`topics.max_message_bytes` (1048576)".to_string(),
            _ if def.default.is_empty() => "(empty)".to_string(),
            _ => def.default.to_string(),
        };
        let effect = match def.effect {
            Effect::Applied => "applied".to_string(),
            Effect::None(why) => format!("no effect: {why}"),
        };
        format!(
            "| `{}` | {} | {default} | {effect} |",
            def.name,
            def.kind.kafka_name().to_lowercase()
        )
    }

    #[test]
    fn docs_list_every_topic_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/kafka.md");
        let docs = std::fs::read_to_string(path).expect("docs/kafka.md");
        let rows: Vec<String> = TOPIC_CONFIGS.iter().map(doc_row).collect();
        let missing: Vec<&String> = rows.iter().filter(|r| !docs.contains(r.as_str())).collect();
        assert!(
            missing.is_empty(),
            "docs/kafka.md's topic config table must have these rows:\n{}",
            rows.join("\n")
        );
    }

    #[test]
    fn config_from_kafka_pairs() {
        let c = TopicConfig::from_pairs([("retention.ms", "1000"), ("max.message.bytes", "2048")])
            .expect("valid");
        assert_eq!(c.retention_ms, Some(1000));
        assert_eq!(c.max_message_bytes, Some(2048));
        assert_eq!(c.pairs().len(), 2);
        let t =
            TopicConfig::from_pairs([("message.timestamp.type", "LogAppendTime")]).expect("valid");
        assert!(t.log_append_time());
        assert_eq!(
            t.pairs(),
            [("message.timestamp.type", "LogAppendTime".to_string())]
        );
    }

    #[test]
    fn bad_values_get_kafkas_reasons() {
        let reason = |key: &str, value: &str| match TopicConfig::from_pairs([(key, value)]) {
            Err(MetadataError::InvalidConfig { key: k, reason }) => {
                assert_eq!(k, key);
                reason
            }
            other => panic!("{key}={value}: {other:?}"),
        };
        assert_eq!(
            reason("retention.ms", "soon"),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        assert!(reason("retention.ms", "-2").ends_with("Value must be at least -1"));
        assert!(reason("segment.bytes", "100").ends_with("Value must be at least 1048576"));
        assert!(reason("compression.type", "brotli").contains("String must be one of"));
        assert!(reason("message.timestamp.type", "Now").contains("CreateTime, LogAppendTime"));
        assert!(reason("preallocate", "yes").contains("either true or false"));
        assert!(reason("min.cleanable.dirty.ratio", "2").contains("[0, 1]"));
        assert!(reason("compression.gzip.level", "0").contains("or -1"));
        assert!(reason("cleanup.policy", "compact").contains("does not compact"));
        assert!(reason("cleanup.policy", "delete,archive").contains("archive"));
        assert_eq!(
            reason("retention.mss", "1"),
            "Unknown topic config name: retention.mss"
        );
    }

    #[test]
    fn configs_without_effect_are_kept_in_canonical_form() {
        let mut c = TopicConfig::from_pairs([
            ("cleanup.policy", " delete "),
            ("min.insync.replicas", "2"),
            ("preallocate", "TRUE"),
            ("compression.type", "zstd"),
        ])
        .expect("valid");
        assert_eq!(
            c.pairs(),
            [
                ("cleanup.policy", "delete".to_string()),
                ("compression.type", "zstd".to_string()),
                ("min.insync.replicas", "2".to_string()),
                ("preallocate", "true".to_string()),
            ]
        );
        // They travel through JSON (the SQL column) and back.
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<TopicConfig>(&json).expect("back"), c);
        c.unset("preallocate").expect("known");
        assert_eq!(c.get("preallocate"), None);
        assert!(c.unset("nope").is_err());
    }

    #[test]
    fn describe_shows_every_config_with_its_source() {
        let c = TopicConfig::from_pairs([("retention.bytes", "100")]).expect("valid");
        let defaults = TopicConfigDefaults {
            retention_ms: 3_600_000,
            ..TopicConfigDefaults::default()
        };
        let described = c.describe(&defaults);
        assert_eq!(described.len(), TOPIC_CONFIGS.len());
        let find = |name: &str| {
            let d = described.iter().find(|d| d.def.name == name).expect(name);
            (d.value.as_str(), d.source)
        };
        assert_eq!(find("retention.bytes"), ("100", ConfigSource::Topic));
        assert_eq!(find("retention.ms"), ("3600000", ConfigSource::Node));
        assert_eq!(
            find("max.message.bytes"),
            ("1048576", ConfigSource::Default)
        );
        assert_eq!(find("cleanup.policy"), ("delete", ConfigSource::Default));
    }
}
