//! The brokers Kafka clients see: the live nodes (this one always among them), and which
//! one "leads" each partition. Leadership is only a routing hint — any node accepts any
//! partition — spread over the nodes that ingest so that producers spread their load.

use std::sync::Mutex;
use std::time::Duration;

use silt_metadata::{NodeInfo, Role, Topic};
use tokio::time::Instant;
use tracing::debug;

use crate::KafkaState;

/// How long a node list is reused before asking the metadata service again.
const NODES_TTL: Duration = Duration::from_secs(1);

/// A short-lived cache of the live nodes.
#[derive(Debug, Default)]
pub struct NodeCache {
    cached: Mutex<Option<(Instant, Vec<NodeInfo>)>>,
}

/// The brokers of one answer, and the leader candidates among them.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub(crate) brokers: Vec<NodeInfo>,
    leaders: Vec<i32>,
}

impl Cluster {
    /// The broker that leads `partition` of `topic`: stable for a given set of nodes, and
    /// spread so that consecutive partitions land on different nodes.
    pub(crate) fn leader(&self, topic: &Topic, partition: i32) -> i32 {
        let n = self.leaders.len() as u64;
        let (_, low) = topic.id.as_u64_pair();
        let index = (low % n + partition.max(0) as u64) % n;
        self.leaders[index as usize]
    }
}

/// This node as a broker.
pub(crate) fn this_node(state: &KafkaState) -> NodeInfo {
    NodeInfo {
        node_id: state.config.node_id,
        kafka_host: state.config.advertised_host.clone(),
        kafka_port: state.config.advertised_port,
        http_url: String::new(),
        roles: state.config.roles.clone(),
        rack: state.config.rack.clone(),
    }
}

pub(crate) async fn cluster(state: &KafkaState) -> Cluster {
    let mut nodes = {
        let cached = state.nodes.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < NODES_TTL)
            .map(|(_, nodes)| nodes.clone())
    };
    if nodes.is_none() {
        match state.metadata.live_nodes().await {
            Ok(live) => {
                let mut cached = state.nodes.cached.lock().unwrap_or_else(|e| e.into_inner());
                *cached = Some((Instant::now(), live.clone()));
                nodes = Some(live);
            }
            Err(e) => debug!(error = %e, "live nodes unavailable; answering with this node alone"),
        }
    }
    let mut brokers: Vec<NodeInfo> = nodes
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.has_role(Role::Ingest) || n.has_role(Role::Reader))
        .collect();
    let me = this_node(state);
    match brokers.iter_mut().find(|n| n.node_id == me.node_id) {
        Some(entry) => *entry = me,
        None => brokers.push(me),
    }
    brokers.sort_by_key(|n| n.node_id);
    let mut leaders: Vec<i32> = brokers
        .iter()
        .filter(|n| n.has_role(Role::Ingest) && n.has_role(Role::Reader))
        .map(|n| n.node_id)
        .collect();
    if leaders.is_empty() {
        leaders = brokers.iter().map(|n| n.node_id).collect();
    }
    Cluster { brokers, leaders }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_is_spread_and_stable() {
        let cluster = Cluster {
            brokers: Vec::new(),
            leaders: vec![1, 2, 3],
        };
        let topic = Topic {
            id: uuid::Uuid::now_v7(),
            name: "t".into(),
            partitions: 6,
            config: Default::default(),
            created_at_ms: 0,
        };
        let leaders: Vec<i32> = (0..6).map(|p| cluster.leader(&topic, p)).collect();
        for id in [1, 2, 3] {
            assert_eq!(
                leaders.iter().filter(|l| **l == id).count(),
                2,
                "{leaders:?}"
            );
        }
        let again: Vec<i32> = (0..6).map(|p| cluster.leader(&topic, p)).collect();
        assert_eq!(leaders, again);
    }
}
