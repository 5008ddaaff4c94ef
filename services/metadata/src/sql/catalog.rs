//! Topics: names, partition counts and configs.

use async_trait::async_trait;
use uuid::Uuid;

use super::SqlStore;
use super::db::args;
use crate::error::{MetadataError, Result};
use crate::model::{Topic, TopicConfig};
use crate::names::validate_topic_name;
use crate::rows::{TOPIC_COLUMNS, topic_from_row};
use crate::sql::MAX_PARTITIONS;
use crate::store::CatalogStore;

/// Adds partitions `$1..$2` of topic `$3` (a recursive count: both databases have it).
const ADD_PARTITIONS: &str = "WITH RECURSIVE p(n) AS (SELECT $1 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < $2) \
     INSERT INTO partitions (topic_id, partition) SELECT $3, n FROM p";

fn config_json(config: &TopicConfig) -> Result<String> {
    serde_json::to_string(config).map_err(|e| MetadataError::InvalidRequest {
        reason: e.to_string(),
    })
}

#[async_trait]
impl CatalogStore for SqlStore {
    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<Topic> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(MetadataError::InvalidPartitionCount {
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let topic = Topic {
            id: Uuid::now_v7(),
            name: name.to_string(),
            partitions,
            config,
            created_at_ms: self.now_ms(),
        };
        let json = config_json(&topic.config)?;
        let id = topic.id.to_string();
        let mut tx = self.begin_write().await?;
        let inserted = tx
            .execute(
                "INSERT INTO topics (id, name, partitions, config, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                args![&id, name, partitions, &json, topic.created_at_ms],
            )
            .await?;
        if inserted == 0 {
            return Err(MetadataError::TopicExists {
                topic: name.to_string(),
            });
        }
        tx.execute(ADD_PARTITIONS, args![0, partitions, &id])
            .await?;
        tx.commit().await?;
        Ok(topic)
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done = tx
            .execute("DELETE FROM topics WHERE name = $1", args![name])
            .await?;
        if done == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        tx.commit().await?;
        self.watchers.remove_topic(name);
        Ok(())
    }

    async fn set_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let json = config_json(&config)?;
        let mut tx = self.begin_write().await?;
        let done = tx
            .execute(
                "UPDATE topics SET config = $1 WHERE name = $2",
                args![&json, name],
            )
            .await?;
        if done == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        tx.commit().await?;
        self.get_topic(name).await
    }

    async fn add_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        let mut tx = self.begin_write().await?;
        let row = tx
            .fetch_optional(
                &format!(
                    "SELECT {TOPIC_COLUMNS} FROM topics WHERE name = $1{}",
                    self.for_update()
                ),
                args![name],
            )
            .await?;
        let Some(row) = row else {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        };
        let topic = topic_from_row(&row)?;
        if partitions <= topic.partitions || partitions > MAX_PARTITIONS {
            return Err(MetadataError::InvalidPartitionCount {
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let id = topic.id.to_string();
        tx.execute(
            "UPDATE topics SET partitions = $1 WHERE id = $2",
            args![partitions, &id],
        )
        .await?;
        tx.execute(ADD_PARTITIONS, args![topic.partitions, partitions, &id])
            .await?;
        tx.commit().await?;
        Ok(Topic {
            partitions,
            ..topic
        })
    }

    async fn topic(&self, name: &str) -> Result<Topic> {
        self.get_topic(name).await
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let rows = self
            .pool
            .fetch_all(
                &format!("SELECT {TOPIC_COLUMNS} FROM topics ORDER BY name"),
                args![],
            )
            .await?;
        rows.iter().map(topic_from_row).collect()
    }
}
