//! The authoriser's decisions, on bindings stored in a real (SQLite) metadata store.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use silt_auth::{AclSettings, Authenticator, Authorizer, Principal, scram};
use silt_metadata::{
    AclBinding, AclFilter, AclOperation as Op, AclPermission, MetadataStore, PatternType,
    ResourceType, ScramMechanism, SqliteStore,
};

fn binding(
    principal: &str,
    resource_type: ResourceType,
    name: &str,
    pattern: PatternType,
    op: Op,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        principal: principal.into(),
        host: "*".into(),
        resource_type,
        resource_name: name.into(),
        pattern_type: pattern,
        operation: op,
        permission,
    }
}

fn allow(principal: &str, name: &str, pattern: PatternType, op: Op) -> AclBinding {
    binding(
        principal,
        ResourceType::Topic,
        name,
        pattern,
        op,
        AclPermission::Allow,
    )
}

async fn store() -> (tempfile::TempDir, Arc<dyn MetadataStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .expect("store");
    (dir, Arc::new(store))
}

fn settings(allow_if_no_acls: bool) -> AclSettings {
    AclSettings {
        enabled: true,
        super_users: HashSet::from(["User:admin".to_string()]),
        allow_if_no_acls,
    }
}

#[tokio::test]
async fn decisions_follow_kafkas_rules() {
    let (_dir, store) = store().await;
    let auth = Authorizer::new(settings(false), store);
    let alice = Principal::user("alice");
    let bob = Principal::user("bob");
    let topic = ResourceType::Topic;
    let host: Option<IpAddr> = Some("10.0.0.7".parse().expect("ip"));
    auth.create(&[
        allow("User:alice", "orders", PatternType::Literal, Op::Read),
        allow("User:alice", "pay", PatternType::Prefixed, Op::Write),
        allow("User:*", "public", PatternType::Literal, Op::All),
        binding(
            "User:bob",
            topic,
            "public",
            PatternType::Literal,
            Op::Write,
            AclPermission::Deny,
        ),
        binding(
            "User:alice",
            ResourceType::Group,
            "g",
            PatternType::Literal,
            Op::Read,
            AclPermission::Allow,
        ),
    ])
    .await
    .expect("create");

    assert!(auth.authorize(&alice, host, Op::Read, topic, "orders"));
    // Read implies Describe, not Write.
    assert!(auth.authorize(&alice, host, Op::Describe, topic, "orders"));
    assert!(!auth.authorize(&alice, host, Op::Write, topic, "orders"));
    assert!(!auth.authorize(&bob, host, Op::Read, topic, "orders"));
    // Prefixed patterns.
    assert!(auth.authorize(&alice, host, Op::Write, topic, "payments"));
    assert!(!auth.authorize(&alice, host, Op::Write, topic, "pa"));
    // A wildcard principal, and deny winning over it.
    assert!(auth.authorize(&bob, host, Op::Read, topic, "public"));
    assert!(!auth.authorize(&bob, host, Op::Write, topic, "public"));
    assert!(auth.authorize(&alice, host, Op::Write, topic, "public"));
    // Resource types are distinct.
    assert!(auth.authorize(&alice, host, Op::Read, ResourceType::Group, "g"));
    assert!(!auth.authorize(&alice, host, Op::Read, topic, "g"));
    // No ACL at all: closed, except to super users.
    assert!(!auth.authorize(&alice, host, Op::Read, topic, "unnamed"));
    assert!(auth.authorize(
        &Principal::user("admin"),
        host,
        Op::Delete,
        topic,
        "unnamed"
    ));
    // Some allowed Write on a topic is enough for an idempotent producer.
    assert!(auth.authorize_any(&alice, host, Op::Write, topic));
    // Everyone may write `public` (User:*), but bob is denied it: no topic is left him.
    assert!(auth.authorize_any(&Principal::user("carol"), host, Op::Write, topic));
    assert!(!auth.authorize_any(&bob, host, Op::Write, topic));
    assert!(!auth.authorize_any(&bob, host, Op::Write, ResourceType::Group));
}

#[tokio::test]
async fn hosts_deny_and_the_no_acl_default() {
    let (_dir, store) = store().await;
    let auth = Authorizer::new(settings(true), store);
    let alice = Principal::user("alice");
    let topic = ResourceType::Topic;
    let mut from_one_host = allow("User:alice", "t", PatternType::Literal, Op::Read);
    from_one_host.host = "10.0.0.1".into();
    auth.create(&[from_one_host]).await.expect("create");
    let one: Option<IpAddr> = Some("10.0.0.1".parse().expect("ip"));
    let other: Option<IpAddr> = Some("10.0.0.2".parse().expect("ip"));
    assert!(auth.authorize(&alice, one, Op::Read, topic, "t"));
    assert!(!auth.authorize(&alice, other, Op::Read, topic, "t"));
    // The same address written otherwise: IPv4-mapped IPv6 of a dual-stack listener.
    let mapped: Option<IpAddr> = Some("::ffff:10.0.0.1".parse().expect("ip"));
    assert!(auth.authorize(&alice, mapped, Op::Read, topic, "t"));
    // allow_if_no_acls lets an idempotent producer in when no topic ACL names it.
    assert!(auth.authorize_any(&alice, other, Op::Write, topic));
    // allow_if_no_acls opens only resources no binding names.
    assert!(auth.authorize(&alice, other, Op::Write, topic, "elsewhere"));
    assert!(!auth.authorize(&alice, other, Op::Write, topic, "t"));
    // A deny on All closes every operation, Describe included.
    auth.create(&[binding(
        "User:alice",
        topic,
        "t",
        PatternType::Literal,
        Op::All,
        AclPermission::Deny,
    )])
    .await
    .expect("create");
    assert!(!auth.authorize(&alice, one, Op::Read, topic, "t"));
    assert!(!auth.authorize(&alice, one, Op::Describe, topic, "t"));
}

#[tokio::test]
async fn deleting_by_filter_returns_what_it_removed_and_takes_effect() {
    let (_dir, store) = store().await;
    let auth = Authorizer::new(settings(false), store.clone());
    let alice = Principal::user("alice");
    auth.create(&[
        allow("User:alice", "a", PatternType::Literal, Op::Read),
        allow("User:alice", "b", PatternType::Literal, Op::Read),
        allow("User:bob", "a", PatternType::Literal, Op::Read),
    ])
    .await
    .expect("create");
    assert!(auth.authorize(&alice, None, Op::Read, ResourceType::Topic, "a"));
    let mut filter = AclFilter::any();
    filter.principal = Some("User:alice".into());
    filter.resource_name = Some("a".into());
    let removed = auth.delete(&[filter]).await.expect("delete");
    assert_eq!(
        removed,
        vec![vec![allow(
            "User:alice",
            "a",
            PatternType::Literal,
            Op::Read
        )]]
    );
    assert!(!auth.authorize(&alice, None, Op::Read, ResourceType::Topic, "a"));
    assert_eq!(
        auth.describe(&AclFilter::any()).await.expect("list").len(),
        2
    );
    // Another node's change is seen after a refresh.
    store
        .create_acls(&[allow("User:alice", "a", PatternType::Literal, Op::Read)])
        .await
        .expect("create");
    assert!(!auth.authorize(&alice, None, Op::Read, ResourceType::Topic, "a"));
    auth.refresh().await.expect("refresh");
    assert!(auth.authorize(&alice, None, Op::Read, ResourceType::Topic, "a"));
}

#[tokio::test]
async fn passwords_are_checked_against_stored_credentials() {
    let (_dir, store) = store().await;
    store
        .set_scram_credential(&scram::new_credential(
            "alice",
            "wonderland",
            ScramMechanism::Sha256,
            4096,
        ))
        .await
        .expect("set");
    let auth = Authenticator::new(store.clone(), Vec::new());
    assert!(
        auth.check_password("alice", "wonderland")
            .await
            .expect("check")
    );
    // Remembered, and still right.
    assert!(
        auth.check_password("alice", "wonderland")
            .await
            .expect("check")
    );
    assert!(
        !auth
            .check_password("alice", "Wonderland")
            .await
            .expect("check")
    );
    assert!(
        !auth
            .check_password("nobody", "wonderland")
            .await
            .expect("check")
    );
    // The SHA-512 credential is preferred when both exist.
    store
        .set_scram_credential(&scram::new_credential(
            "alice",
            "looking-glass",
            ScramMechanism::Sha512,
            4096,
        ))
        .await
        .expect("set");
    assert!(
        auth.check_password("alice", "looking-glass")
            .await
            .expect("check")
    );
    // A changed or removed password stops working at once, remembered or not.
    assert!(
        !auth
            .check_password("alice", "wonderland")
            .await
            .expect("check")
    );
    for m in [ScramMechanism::Sha512, ScramMechanism::Sha256] {
        store
            .delete_scram_credential("alice", m)
            .await
            .expect("delete");
    }
    assert!(
        !auth
            .check_password("alice", "looking-glass")
            .await
            .expect("check")
    );
}
