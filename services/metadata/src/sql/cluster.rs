//! The cluster's own state beside the log: consumer groups' committed offsets, live
//! nodes, users' credentials, ACLs and cluster secrets; and the local high-watermark
//! channels.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use super::SqlStore;
use super::db::args;
use crate::error::{MetadataError, Result};
use crate::model::{GroupOffset, NodeInfo};
use crate::names::validate_group_id;
use crate::rows::{RowRead, group_offset_from_row};
use crate::security::{
    ACL_COLUMNS, AclBinding, CREDENTIAL_COLUMNS, ScramCredential, ScramMechanism, acl_from_row,
    credential_from_row, validate_credential,
};
use crate::store::{GroupOffsetStore, NodeStore, SecurityStore, Watch};
use crate::watch::WatchEvent;

/// An ACL binding's seven columns, in table order.
macro_rules! acl_args {
    ($b:expr) => {
        args![
            &$b.principal,
            &$b.host,
            $b.resource_type.name(),
            &$b.resource_name,
            $b.pattern_type.name(),
            $b.operation.name(),
            $b.permission.name()
        ]
    };
}

#[async_trait]
impl GroupOffsetStore for SqlStore {
    async fn commit_group_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<()> {
        validate_group_id(group)?;
        let mut tx = self.begin_write().await?;
        write_group_offsets(&mut tx, group, offsets).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        let rows = self
            .pool
            .fetch_all(
                "SELECT topic, partition, committed_offset, metadata, commit_time_ms FROM group_offsets \
                 WHERE group_id = $1 ORDER BY topic, partition",
                args![group],
            )
            .await?;
        rows.iter().map(group_offset_from_row).collect()
    }

    async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        match partitions {
            None => {
                tx.execute(
                    "DELETE FROM group_offsets WHERE group_id = $1",
                    args![group],
                )
                .await?;
            }
            Some(partitions) => {
                for (topic, partition) in partitions {
                    tx.execute(
                        "DELETE FROM group_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
                        args![group, topic, *partition],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<String>> {
        let rows = self
            .pool
            .fetch_all(
                "SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id",
                args![],
            )
            .await?;
        rows.iter().map(|r| r.text("group_id")).collect()
    }
}

#[async_trait]
impl NodeStore for SqlStore {
    async fn heartbeat_node(&self, node: &NodeInfo, ttl: Duration) -> Result<()> {
        let info = serde_json::to_string(node).map_err(|e| MetadataError::InvalidRequest {
            reason: format!("node info: {e}"),
        })?;
        let expires = self.now_ms() + ttl.as_millis() as i64;
        let mut tx = self.begin_write().await?;
        tx.execute(
            "INSERT INTO nodes (node_id, info, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (node_id) DO UPDATE SET info = excluded.info, expires_at_ms = excluded.expires_at_ms",
            args![node.node_id, &info, expires],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_node(&self, node_id: i32) -> Result<()> {
        let mut tx = self.begin_write().await?;
        tx.execute("DELETE FROM nodes WHERE node_id = $1", args![node_id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let rows = self
            .pool
            .fetch_all(
                "SELECT info FROM nodes WHERE expires_at_ms > $1 ORDER BY node_id",
                args![self.now_ms()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                serde_json::from_str(&row.text("info")?).map_err(|e| MetadataError::Corrupt {
                    reason: format!("node info: {e}"),
                })
            })
            .collect()
    }
}

#[async_trait]
impl SecurityStore for SqlStore {
    async fn set_scram_credential(&self, credential: &ScramCredential) -> Result<()> {
        validate_credential(credential)?;
        let mut tx = self.begin_write().await?;
        tx.execute(
            &format!(
                "INSERT INTO scram_credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_name, mechanism) DO UPDATE SET iterations = excluded.iterations, \
                 salt = excluded.salt, stored_key = excluded.stored_key, \
                 server_key = excluded.server_key"
            ),
            args![
                &credential.user,
                credential.mechanism.name(),
                credential.iterations,
                &credential.salt,
                &credential.stored_key,
                &credential.server_key
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let removed = tx
            .execute(
                "DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2",
                args![user, mechanism.name()],
            )
            .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        let row = self
            .pool
            .fetch_optional(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM scram_credentials \
                     WHERE user_name = $1 AND mechanism = $2"
                ),
                args![user, mechanism.name()],
            )
            .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn scram_credentials(&self) -> Result<Vec<ScramCredential>> {
        let rows = self
            .pool
            .fetch_all(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM scram_credentials ORDER BY user_name, mechanism"
                ),
                args![],
            )
            .await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        for b in bindings {
            b.validate()?;
        }
        let mut tx = self.begin_write().await?;
        for b in bindings {
            tx.execute(
                &format!(
                    "INSERT INTO acls ({ACL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING"
                ),
                acl_args!(b),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_acls(&self, bindings: &[AclBinding]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for b in bindings {
            removed += tx
                .execute(
                    "DELETE FROM acls WHERE principal = $1 AND host = $2 AND resource_type = $3 \
                     AND resource_name = $4 AND pattern_type = $5 AND operation = $6 \
                     AND permission = $7",
                    acl_args!(b),
                )
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn acls(&self) -> Result<Vec<AclBinding>> {
        let rows = self
            .pool
            .fetch_all(
                &format!(
                    "SELECT {ACL_COLUMNS} FROM acls \
                     ORDER BY resource_type, resource_name, principal, operation"
                ),
                args![],
            )
            .await?;
        rows.iter().map(acl_from_row).collect()
    }

    async fn cluster_secret(&self, name: &str, proposed: &[u8]) -> Result<Vec<u8>> {
        if proposed.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "a cluster secret is not empty".into(),
            });
        }
        let mut tx = self.begin_write().await?;
        tx.execute(
            "INSERT INTO cluster_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            args![name, proposed],
        )
        .await?;
        let secret = tx
            .fetch_one(
                "SELECT secret FROM cluster_secrets WHERE name = $1",
                args![name],
            )
            .await?
            .bytes("secret")?;
        tx.commit().await?;
        Ok(secret)
    }
}

impl Watch for SqlStore {
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent> {
        self.watchers.feed()
    }

    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        self.watchers.subscribe(topic, partition)
    }
}

/// Stores `group`'s committed offsets inside `tx`; a negative offset clears one.
pub(crate) async fn write_group_offsets(
    tx: &mut super::db::Tx<'_>,
    group: &str,
    offsets: &[GroupOffset],
) -> Result<()> {
    for o in offsets {
        if o.offset < 0 {
            // What every client reads a negative committed offset as: none.
            tx.execute(
                "DELETE FROM group_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
                args![group, &o.topic, o.partition],
            )
            .await?;
            continue;
        }
        tx.execute(
                "INSERT INTO group_offsets (group_id, topic, partition, committed_offset, metadata, commit_time_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
                 commit_time_ms = excluded.commit_time_ms",
                args![
                    group,
                    &o.topic,
                    o.partition,
                    o.offset,
                    &o.metadata,
                    o.commit_time_ms
                ],
            )
            .await?;
    }
    Ok(())
}
