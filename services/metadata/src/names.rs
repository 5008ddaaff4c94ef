use crate::error::{MetadataError, Result};

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Kafka's internal topics: their names are reserved (a client producing to one must not
/// create an ordinary topic of that name).
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Checks a topic name against Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`,
/// neither `.` nor `..`, and not the name of one of Kafka's internal topics.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason: &'static str| MetadataError::InvalidTopicName {
        name: name.chars().take(300).collect(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid("longer than 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are reserved"));
    }
    if INTERNAL_TOPICS.contains(&name) {
        return Err(invalid("the name of a Kafka internal topic is reserved"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Group ids are free-form in Kafka but must not be empty; we also cap their length.
pub fn validate_group_id(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(MetadataError::InvalidGroupId {
            reason: "must not be empty".into(),
        });
    }
    if group.len() > 255 {
        return Err(MetadataError::InvalidGroupId {
            reason: "longer than 255 bytes".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rules() {
        for ok in [
            "a",
            "orders",
            "Orders.v2_final-1",
            "__private",
            &"x".repeat(249),
        ] {
            assert!(validate_topic_name(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a/b",
            "é",
            "__consumer_offsets",
            "__transaction_state",
            &"x".repeat(250),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad} should be invalid");
        }
    }
}
