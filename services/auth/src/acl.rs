//! Authorisation in Kafka's model: ACL bindings from the metadata service, super users
//! from configuration, deny winning over allow, and the implied operations (Read, Write,
//! Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs; All implies
//! everything).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use silt_metadata::{
    ANY_HOST, AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType,
    SecurityStore, WILDCARD,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::Principal;

/// How the authoriser decides.
#[derive(Debug, Clone, Default)]
pub struct AclSettings {
    /// Whether ACLs are enforced at all. Off, every principal may do everything (and the
    /// ACL APIs still store bindings, for when they are switched on).
    pub enabled: bool,
    /// Principals allowed everything (`User:admin`).
    pub super_users: HashSet<String>,
    /// Allow an operation on a resource no ACL names at all (Kafka's
    /// `allow.everyone.if.no.acl.found`); off, such resources are closed to all but super
    /// users.
    pub allow_if_no_acls: bool,
}

/// Decides whether a principal may perform an operation on a resource. Bindings are
/// cached in memory: refreshed from the metadata service periodically and at once after
/// this node changes them.
pub struct Authorizer {
    settings: AclSettings,
    metadata: Arc<dyn SecurityStore>,
    bindings: RwLock<Arc<Index>>,
    reloading: tokio::sync::Mutex<()>,
    /// Bumped at each reload: long-lived answers wait on it to check their caller again.
    reloads: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A resource name no binding can name literally (names are not empty and hold no NUL
/// in practice), standing for "some resource of this type" in [`Authorizer::authorize_any`].
const UNNAMED: &str = "\0";

/// The operations whose permission grants `op` too.
fn granting(op: AclOperation) -> &'static [AclOperation] {
    use AclOperation::*;
    match op {
        Describe => &[All, Describe, Read, Write, Delete, Alter],
        DescribeConfigs => &[All, DescribeConfigs, AlterConfigs],
        Read => &[All, Read],
        Write => &[All, Write],
        Create => &[All, Create],
        Delete => &[All, Delete],
        Alter => &[All, Alter],
        ClusterAction => &[All, ClusterAction],
        AlterConfigs => &[All, AlterConfigs],
        IdempotentWrite => &[All, IdempotentWrite],
        All => &[All],
        Any => &[],
    }
}

/// The bindings, arranged for lookups: literal names by resource, then the literal `*`
/// bindings and the prefixed ones per resource type (usually few), so a decision does
/// not scan every binding.
#[derive(Default)]
struct Index {
    all: Vec<AclBinding>,
    literal: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    wildcard: HashMap<ResourceType, Vec<AclBinding>>,
    prefixed: HashMap<ResourceType, Vec<AclBinding>>,
}

impl Index {
    fn new(all: Vec<AclBinding>) -> Self {
        let mut index = Self::default();
        for b in &all {
            let slot = match b.pattern_type {
                PatternType::Literal if b.resource_name == WILDCARD => {
                    index.wildcard.entry(b.resource_type).or_default()
                }
                PatternType::Literal => index
                    .literal
                    .entry(b.resource_type)
                    .or_default()
                    .entry(b.resource_name.clone())
                    .or_default(),
                PatternType::Prefixed => index.prefixed.entry(b.resource_type).or_default(),
                _ => continue,
            };
            slot.push(b.clone());
        }
        index.all = all;
        index
    }

    /// The bindings that apply to the resource.
    fn applying<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literal = self
            .literal
            .get(&resource_type)
            .and_then(|by_name| by_name.get(name))
            .into_iter()
            .flatten();
        let wildcard = self.wildcard.get(&resource_type).into_iter().flatten();
        let prefixed = self
            .prefixed
            .get(&resource_type)
            .into_iter()
            .flatten()
            .filter(move |b| name.starts_with(&b.resource_name));
        literal.chain(wildcard).chain(prefixed)
    }
}

#[cfg(test)]
fn applies_to(b: &AclBinding, resource_type: ResourceType, name: &str) -> bool {
    b.resource_type == resource_type
        && match b.pattern_type {
            PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.resource_name),
            _ => false,
        }
}

fn names(b: &AclBinding, principal: &Principal, host: Option<IpAddr>) -> bool {
    let principal_matches = b.principal == principal.as_str()
        || b.principal
            .split_once(':')
            .is_some_and(|(kind, name)| name == WILDCARD && kind == principal.kind());
    // Addresses compare as addresses: an IPv4 client on a dual-stack listener
    // (::ffff:10.0.0.5) is 10.0.0.5, and IPv6 may be written compressed or not.
    let host_matches = b.host == ANY_HOST
        || host.is_some_and(|h| {
            b.host
                .parse::<IpAddr>()
                .is_ok_and(|named| named.to_canonical() == h.to_canonical())
        });
    principal_matches && host_matches
}

impl Authorizer {
    pub fn new(settings: AclSettings, metadata: Arc<dyn SecurityStore>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            metadata,
            bindings: RwLock::new(Arc::new(Index::default())),
            reloading: tokio::sync::Mutex::new(()),
            reloads: tokio::sync::watch::channel(0).0,
        })
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn is_super_user(&self, principal: &Principal) -> bool {
        self.settings.super_users.contains(principal.as_str())
    }

    fn snapshot(&self) -> Arc<Index> {
        self.bindings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reloads the bindings from the metadata service.
    pub async fn refresh(&self) -> silt_metadata::Result<()> {
        // One reload at a time: a periodic reload that read before a local change cannot
        // install its older view after the reload that change made.
        let _one = self.reloading.lock().await;
        let fresh = self.metadata.acls().await?;
        *self
            .bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Index::new(fresh));
        self.reloads.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// A receiver that sees each reload of the bindings (local changes at once, other
    /// nodes' within the refresh period).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Refreshes the bindings every `every` until `stop` (changes made through other
    /// nodes take effect here within that time).
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match me.refresh().await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        warn!(error = %e, "reloading ACLs failed; the last ones loaded stay in force");
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// Whether `principal`, connecting from `host`, may perform `op` on the resource.
    pub fn authorize(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.settings.enabled || self.is_super_user(principal) {
            return true;
        }
        let bindings = self.snapshot();
        let mut any_acl = false;
        let mut allowed = false;
        for b in bindings.applying(resource_type, name) {
            any_acl = true;
            if !names(b, principal, host) {
                continue;
            }
            match b.permission {
                AclPermission::Deny if b.operation == AclOperation::All || b.operation == op => {
                    return false;
                }
                AclPermission::Allow if granting(op).contains(&b.operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_acl && self.settings.allow_if_no_acls)
    }

    /// Whether `principal` may perform `op` on at least one resource of the type (Kafka
    /// allows an idempotent producer with Write on any topic).
    pub fn authorize_any(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.settings.enabled || self.is_super_user(principal) {
            return true;
        }
        // As Kafka: a resource no ACL names decides first (allowed with
        // allow_if_no_acls, unless a wildcard binding says otherwise).
        if self.authorize(principal, host, op, resource_type, UNNAMED) {
            return true;
        }
        self.snapshot().all.iter().any(|b| {
            b.resource_type == resource_type
                && b.permission == AclPermission::Allow
                && granting(op).contains(&b.operation)
                && names(b, principal, host)
                && self.authorize(principal, host, op, resource_type, &b.resource_name)
        })
    }

    /// Stores bindings and applies them on this node at once.
    pub async fn create(&self, bindings: &[AclBinding]) -> silt_metadata::Result<()> {
        self.metadata.create_acls(bindings).await?;
        self.refresh().await
    }

    /// Stored bindings the filter selects.
    pub async fn describe(&self, filter: &AclFilter) -> silt_metadata::Result<Vec<AclBinding>> {
        Ok(self
            .metadata
            .acls()
            .await?
            .into_iter()
            .filter(|b| filter.matches(b))
            .collect())
    }

    /// Removes the bindings each filter selects; returns them, per filter.
    pub async fn delete(
        &self,
        filters: &[AclFilter],
    ) -> silt_metadata::Result<Vec<Vec<AclBinding>>> {
        let all = self.metadata.acls().await?;
        let selected: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| all.iter().filter(|b| f.matches(b)).cloned().collect())
            .collect();
        let doomed: Vec<AclBinding> = selected
            .iter()
            .flatten()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !doomed.is_empty() {
            self.metadata.delete_acls(&doomed).await?;
        }
        self.refresh().await?;
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index finds exactly the bindings the plain rule says apply.
    #[test]
    fn the_index_finds_what_applies() {
        let names = ["orders", "orders-eu", "ord", "*", "pay", "o"];
        let mut all = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for pattern in [PatternType::Literal, PatternType::Prefixed] {
                for rt in [ResourceType::Topic, ResourceType::Group] {
                    all.push(AclBinding {
                        principal: format!("User:u{i}"),
                        host: "*".into(),
                        resource_type: rt,
                        resource_name: (*name).into(),
                        pattern_type: pattern,
                        operation: AclOperation::Read,
                        permission: AclPermission::Allow,
                    });
                }
            }
        }
        let index = Index::new(all.clone());
        for rt in [
            ResourceType::Topic,
            ResourceType::Group,
            ResourceType::Cluster,
        ] {
            for name in ["orders", "orders-eu-1", "o", "payments", "x", "*"] {
                let mut want: Vec<_> = all.iter().filter(|b| applies_to(b, rt, name)).collect();
                let mut got: Vec<_> = index.applying(rt, name).collect();
                want.sort_by_key(|b| format!("{b:?}"));
                got.sort_by_key(|b| format!("{b:?}"));
                assert_eq!(got, want, "{rt:?} {name}");
            }
        }
    }
}
