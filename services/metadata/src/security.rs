//! What the metadata service keeps for security: users' SCRAM credentials (salted hashes,
//! never passwords) and access-control entries in Kafka's model.

use serde::{Deserialize, Serialize};

use crate::error::{MetadataError, Result};
use crate::rows::RowRead;

/// A SCRAM hash function (Kafka's `mechanism` codes: 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [Self::Sha256, Self::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's code in DescribeUserScramCredentials and AlterUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// A user's SCRAM credential for one mechanism (RFC 5802): what the server needs to check
/// a client's proof and prove itself, from which the password cannot be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// What an ACL protects (Kafka's resource type codes; `Any` only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Any,
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

/// How an ACL's resource name matches (Kafka's pattern type codes; `Any` and `Match` only
/// in filters: `Match` finds the ACLs that would apply to the named resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    Any,
    Match,
    Literal,
    Prefixed,
}

/// What a principal does to a resource (Kafka's operation codes; `Any` only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclOperation {
    Any,
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// Whether an ACL allows or denies (`Any` only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclPermission {
    Any,
    Deny,
    Allow,
}

/// The name Kafka gives the one cluster resource.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// The host an ACL names to apply from any address.
pub const ANY_HOST: &str = "*";

/// The resource name (of a literal ACL) or principal that stands for all.
pub const WILDCARD: &str = "*";

macro_rules! codes {
    ($ty:ident { $($variant:ident = $code:literal / $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const VARIANTS: &'static [$ty] = &[$($ty::$variant),+];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($ty::$variant => $code),+ }
            }

            /// The variant of a wire code.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }

            /// Kafka's name (as its tools print and accept it, case-insensitive).
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                let wanted = name.replace(['_', '-'], "");
                Self::VARIANTS.iter().copied().find(|v| v.name().eq_ignore_ascii_case(&wanted))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

codes!(ResourceType {
    Any = 1 / "Any",
    Topic = 2 / "Topic",
    Group = 3 / "Group",
    Cluster = 4 / "Cluster",
    TransactionalId = 5 / "TransactionalId",
});

codes!(PatternType {
    Any = 1 / "Any",
    Match = 2 / "Match",
    Literal = 3 / "Literal",
    Prefixed = 4 / "Prefixed",
});

codes!(AclOperation {
    Any = 1 / "Any",
    All = 2 / "All",
    Read = 3 / "Read",
    Write = 4 / "Write",
    Create = 5 / "Create",
    Delete = 6 / "Delete",
    Alter = 7 / "Alter",
    Describe = 8 / "Describe",
    ClusterAction = 9 / "ClusterAction",
    DescribeConfigs = 10 / "DescribeConfigs",
    AlterConfigs = 11 / "AlterConfigs",
    IdempotentWrite = 12 / "IdempotentWrite",
});

codes!(AclPermission {
    Any = 1 / "Any",
    Deny = 2 / "Deny",
    Allow = 3 / "Allow",
});

/// One access-control entry: `principal` from `host` is allowed (or denied) `operation`
/// on the resources `resource_type`/`resource_name` names under `pattern_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Refuses what cannot be stored: filter-only values, empty names, a principal without
    /// a type, a cluster resource not named `kafka-cluster`.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(MetadataError::InvalidRequest { reason });
        if self.resource_type == ResourceType::Any {
            return invalid("an ACL names a resource type, not Any".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return invalid(format!(
                "an ACL's pattern type is Literal or Prefixed, not {}",
                self.pattern_type
            ));
        }
        if matches!(self.operation, AclOperation::Any) {
            return invalid("an ACL names an operation, not Any".into());
        }
        if self.permission == AclPermission::Any {
            return invalid("an ACL allows or denies, not Any".into());
        }
        if self.resource_name.is_empty() {
            return invalid("an ACL's resource name is empty".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return invalid(format!(
                    "principal {:?} is not of the form Type:name (User:alice)",
                    self.principal
                ));
            }
        }
        if self.host != ANY_HOST && self.host.parse::<std::net::IpAddr>().is_err() {
            return invalid(format!(
                "an ACL's host is an IP address or * (any host), not {:?}",
                self.host
            ));
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_RESOURCE || self.pattern_type != PatternType::Literal)
        {
            return invalid(format!(
                "the cluster resource is named {CLUSTER_RESOURCE} (literal)"
            ));
        }
        Ok(())
    }
}

/// Selects ACL bindings (DescribeAcls, DeleteAcls): `None` and the `Any` values match
/// everything; `PatternType::Match` with a name selects the bindings that apply to the
/// resource of that name (literal equal, literal `*`, prefixed prefix of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// Matches every binding.
    pub fn any() -> Self {
        Self {
            principal: None,
            host: None,
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if !same(&self.principal, &b.principal) || !same(&self.host, &b.host) {
            return false;
        }
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        if self.operation != AclOperation::Any && self.operation != b.operation {
            return false;
        }
        if self.permission != AclPermission::Any && self.permission != b.permission {
            return false;
        }
        match self.pattern_type {
            PatternType::Any => same(&self.resource_name, &b.resource_name),
            PatternType::Literal | PatternType::Prefixed => {
                self.pattern_type == b.pattern_type && same(&self.resource_name, &b.resource_name)
            }
            PatternType::Match => match &self.resource_name {
                None => true,
                Some(name) => match b.pattern_type {
                    PatternType::Literal => b.resource_name == *name || b.resource_name == WILDCARD,
                    PatternType::Prefixed => name.starts_with(&b.resource_name),
                    _ => false,
                },
            },
        }
    }
}

/// Columns `credential_from_row` reads.
pub(crate) const CREDENTIAL_COLUMNS: &str =
    "user_name, mechanism, iterations, salt, stored_key, server_key";

/// Columns `acl_from_row` reads (the enums are stored by name), in table order.
pub(crate) const ACL_COLUMNS: &str =
    "principal, host, resource_type, resource_name, pattern_type, operation, permission";

fn corrupt(what: &str, value: &str) -> MetadataError {
    MetadataError::Corrupt {
        reason: format!("stored {what} {value:?} is unknown to this build"),
    }
}

pub(crate) fn credential_from_row(row: &impl RowRead) -> Result<ScramCredential> {
    let mechanism = row.text("mechanism")?;
    let iterations = row.int("iterations")?;
    Ok(ScramCredential {
        mechanism: ScramMechanism::from_name(&mechanism)
            .ok_or_else(|| corrupt("SCRAM mechanism", &mechanism))?,
        iterations: u32::try_from(iterations)
            .map_err(|_| corrupt("iteration count", &iterations.to_string()))?,
        user: row.text("user_name")?,
        salt: row.bytes("salt")?,
        stored_key: row.bytes("stored_key")?,
        server_key: row.bytes("server_key")?,
    })
}

pub(crate) fn acl_from_row(row: &impl RowRead) -> Result<AclBinding> {
    let resource_type = row.text("resource_type")?;
    let pattern_type = row.text("pattern_type")?;
    let operation = row.text("operation")?;
    let permission = row.text("permission")?;
    Ok(AclBinding {
        resource_type: ResourceType::from_name(&resource_type)
            .ok_or_else(|| corrupt("resource type", &resource_type))?,
        pattern_type: PatternType::from_name(&pattern_type)
            .ok_or_else(|| corrupt("pattern type", &pattern_type))?,
        operation: AclOperation::from_name(&operation)
            .ok_or_else(|| corrupt("operation", &operation))?,
        permission: AclPermission::from_name(&permission)
            .ok_or_else(|| corrupt("permission", &permission))?,
        principal: row.text("principal")?,
        host: row.text("host")?,
        resource_name: row.text("resource_name")?,
    })
}

/// Checks a credential before it is stored.
pub(crate) fn validate_credential(c: &ScramCredential) -> Result<()> {
    let invalid = |reason: &str| {
        Err(MetadataError::InvalidRequest {
            reason: reason.to_string(),
        })
    };
    if c.user.is_empty() {
        return invalid("a user name is not empty");
    }
    if c.salt.is_empty() || c.stored_key.is_empty() || c.server_key.is_empty() {
        return invalid("a SCRAM credential has a salt, a stored key and a server key");
    }
    if c.iterations == 0 || i32::try_from(c.iterations).is_err() {
        return invalid("a SCRAM iteration count is positive");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            principal: "User:alice".into(),
            host: "*".into(),
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn codes_and_names_round_trip() {
        for op in AclOperation::VARIANTS {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
            assert_eq!(AclOperation::from_name(op.name()), Some(*op));
        }
        assert_eq!(
            AclOperation::from_name("IDEMPOTENT_WRITE"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            ResourceType::from_name("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(ResourceType::from_code(6), None);
    }

    #[test]
    fn filters_select_what_kafka_selects() {
        let literal = binding("orders", PatternType::Literal);
        let star = binding("*", PatternType::Literal);
        let prefixed = binding("ord", PatternType::Prefixed);
        let mut f = AclFilter::any();
        assert!(f.matches(&literal) && f.matches(&star) && f.matches(&prefixed));
        f.resource_name = Some("orders".into());
        f.pattern_type = PatternType::Match;
        assert!(f.matches(&literal) && f.matches(&star) && f.matches(&prefixed));
        f.pattern_type = PatternType::Literal;
        assert!(f.matches(&literal) && !f.matches(&star) && !f.matches(&prefixed));
        f.pattern_type = PatternType::Any;
        assert!(f.matches(&literal) && !f.matches(&prefixed));
        f.resource_name = Some("payments".into());
        f.pattern_type = PatternType::Match;
        assert!(!f.matches(&literal) && f.matches(&star) && !f.matches(&prefixed));
    }

    #[test]
    fn bindings_are_validated() {
        assert!(binding("orders", PatternType::Literal).validate().is_ok());
        assert!(binding("orders", PatternType::Match).validate().is_err());
        let mut b = binding("orders", PatternType::Literal);
        b.principal = "alice".into();
        assert!(b.validate().is_err());
        let mut b = binding("orders", PatternType::Literal);
        b.resource_type = ResourceType::Cluster;
        assert!(b.validate().is_err());
        b.resource_name = CLUSTER_RESOURCE.into();
        assert!(b.validate().is_ok());
        b.host = "10.0.0.1".into();
        assert!(b.validate().is_ok());
        b.host = "client.example.com".into();
        assert!(b.validate().is_err(), "hosts are addresses, as in Kafka");
    }
}
