//! Micro benchmarks of what authentication and authorisation cost per request: an ACL
//! decision against many bindings (every Kafka request with ACLs on), the server side of
//! a SCRAM exchange (once per connection), and a password check (PLAIN, HTTP basic auth:
//! once per connection, or per 30 s for HTTP). `cargo bench -p silt-auth`.

use std::sync::Arc;

use base64::Engine;

use criterion::{Criterion, criterion_group, criterion_main};
use silt_auth::scram::{self, ScramServer};
use silt_auth::{AclSettings, Authorizer, Principal};
use silt_metadata::{
    AclBinding, AclOperation, AclPermission, MetadataStore, PatternType, ResourceType,
    ScramMechanism, SqliteStore,
};

fn bindings(n: usize) -> Vec<AclBinding> {
    (0..n)
        .map(|i| AclBinding {
            principal: format!("User:user-{}", i % 50),
            host: "*".into(),
            resource_type: ResourceType::Topic,
            resource_name: format!("topic-{i}"),
            pattern_type: if i % 10 == 0 {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            },
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        })
        .collect()
}

fn authorize(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    for n in [10, 1000] {
        let store: Arc<dyn MetadataStore> = Arc::new(
            runtime
                .block_on(SqliteStore::open(&dir.path().join(format!("m{n}.db"))))
                .expect("store"),
        );
        let auth = Authorizer::new(
            AclSettings {
                enabled: true,
                ..AclSettings::default()
            },
            store,
        );
        runtime
            .block_on(auth.create(&bindings(n)))
            .expect("bindings");
        let who = Principal::user("user-7");
        let name = format!("topic-{}", n / 2 + 7);
        c.bench_function(&format!("authorize Write, {n} bindings"), |b| {
            b.iter(|| {
                std::hint::black_box(auth.authorize(
                    &who,
                    None,
                    AclOperation::Write,
                    ResourceType::Topic,
                    &name,
                ))
            })
        });
    }
}

fn exchanges(c: &mut Criterion) {
    for mechanism in ScramMechanism::ALL {
        let credential = scram::new_credential("alice", "pw", mechanism, 8192);
        let proof =
            base64::engine::general_purpose::STANDARD
                .encode(vec![7u8; credential.stored_key.len()]);
        // The client's final message is computed once; the server's work is measured.
        c.bench_function(
            &format!("{} server exchange (8192 iterations)", mechanism.name()),
            |b| {
                b.iter(|| {
                    let mut server = ScramServer::new(mechanism);
                    server
                        .client_first(b"n,,n=alice,r=abcdefghijklmnop")
                        .expect("first");
                    let first = String::from_utf8(server.server_first(Some(credential.clone())))
                        .expect("utf-8");
                    let nonce = &first[2..first.find(',').expect("nonce")];
                    // A proof of the right length but wrong: the server does all its
                    // work (signature, key, comparison) and refuses.
                    let last = format!("c=biws,r={nonce},p={proof}");
                    std::hint::black_box(server.client_final(last.as_bytes()).is_err());
                })
            },
        );
    }
    let credential = scram::new_credential("alice", "pw", ScramMechanism::Sha512, 8192);
    c.bench_function(
        "password check (PLAIN, basic auth), SHA-512, 8192 iterations",
        |b| b.iter(|| std::hint::black_box(scram::verify_password(&credential, "pw"))),
    );
}

criterion_group!(benches, authorize, exchanges);
criterion_main!(benches);
