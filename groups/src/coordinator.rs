//! The coordinator: every group's state machine behind one lock, a ticker for timeouts,
//! and committed offsets in the metadata service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use serde::{Deserialize, Serialize};
use silt_metadata::{CatalogStore, GroupOffset, GroupOffsetStore, validate_group_id};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::consumer::{ConsumerGroup, HeartbeatRequest, HeartbeatResponse, TopicInfo};
use crate::error::GroupError;
use crate::state::{Group, GroupState, Outcome, Timing};
pub use crate::state::{JoinRequest, JoinResponse, SyncRequest};

/// Group coordinator settings (Kafka's `group.*` broker settings).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// KIP-848 groups: how often members heartbeat, and when silence removes them
    /// (Kafka's `group.consumer.heartbeat.interval.ms` / `session.timeout.ms`).
    pub consumer_heartbeat_interval: Duration,
    pub consumer_session_timeout: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            consumer_heartbeat_interval: Duration::from_secs(2),
            consumer_session_timeout: Duration::from_secs(45),
        }
    }
}

/// One line of ListGroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
    /// The assignment decoded as the consumer protocol's (topic, partitions), if it is one.
    pub assigned: Vec<(String, Vec<i32>)>,
    /// KIP-848 members: their epoch and subscription.
    pub member_epoch: i32,
    pub subscribed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    /// Kafka's name of the state (for KIP-848 groups: Empty, Assigning, Reconciling, Stable).
    pub state_name: String,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberDescription>,
}

struct Inner {
    groups: Mutex<HashMap<String, Group>>,
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    config: GroupConfig,
    timing: Timing,
    metadata: Arc<dyn GroupOffsetStore>,
    /// The topics KIP-848 assignments are computed over.
    catalog: Arc<dyn CatalogStore>,
    stop: CancellationToken,
}

/// The coordinator of every group on this node. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("timing", &self.inner.timing)
            .finish()
    }
}

/// Decodes a consumer-protocol assignment into (topic, partitions).
fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let mut buf = bytes.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), tp.partitions))
                .collect()
        })
        .unwrap_or_default()
}

impl Coordinator {
    /// Starts the coordinator and its timeout ticker on the current runtime: committed
    /// offsets live in `metadata`, assignments are computed over the topics of `catalog`.
    pub fn start(
        config: GroupConfig,
        metadata: Arc<dyn GroupOffsetStore>,
        catalog: Arc<dyn CatalogStore>,
    ) -> Self {
        let inner = Arc::new(Inner {
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            config: config.clone(),
            timing: Timing {
                initial_rebalance_delay: config.initial_rebalance_delay,
                min_session_timeout: config.min_session_timeout,
                max_session_timeout: config.max_session_timeout,
            },
            metadata,
            catalog,
            stop: CancellationToken::new(),
        });
        let ticker = Arc::downgrade(&inner);
        let stop = inner.stop.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    () = stop.cancelled() => return,
                }
                let Some(inner) = ticker.upgrade() else {
                    return;
                };
                let now = Instant::now();
                {
                    let mut groups = inner.groups.lock().unwrap_or_else(|e| e.into_inner());
                    for group in groups.values_mut() {
                        group.tick(now, &inner.timing);
                    }
                }
                let mut consumer_groups = inner
                    .consumer_groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for group in consumer_groups.values_mut() {
                    let expired = group.expire(now);
                    if !expired.is_empty() {
                        tracing::info!(group = %group.id, members = ?expired, "consumer-group members expired");
                    }
                }
            }
        });
        Self { inner }
    }

    /// Stops the timeout ticker.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }

    fn with_group<T>(
        &self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Option<T> {
        let mut groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
        if create {
            Some(f(groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id))))
        } else {
            groups.get_mut(group_id).map(f)
        }
    }

    pub async fn join(&self, req: JoinRequest) -> JoinResponse {
        if validate_group_id(&req.group_id).is_err() {
            return JoinResponse::error(GroupError::InvalidGroupId, req.member_id);
        }
        let member_id = req.member_id.clone();
        let group_id = req.group_id.clone();
        if self.consumer_group_active(&group_id) {
            return JoinResponse::error(GroupError::InconsistentGroupProtocol, member_id);
        }
        let outcome = self.with_group(&group_id, true, |g| {
            g.join(req, Instant::now(), &self.inner.timing)
        });
        match outcome {
            Some(Outcome::Now(r)) => r,
            Some(Outcome::Wait(rx)) => rx.await.unwrap_or_else(|_| {
                JoinResponse::error(GroupError::RebalanceInProgress, member_id)
            }),
            None => JoinResponse::error(GroupError::CoordinatorNotAvailable, member_id),
        }
    }

    pub async fn sync(&self, req: SyncRequest) -> Result<Bytes, GroupError> {
        let group_id = req.group_id.clone();
        let outcome = self
            .with_group(&group_id, false, |g| g.sync(req, Instant::now()))
            .ok_or(GroupError::UnknownMemberId)?;
        match outcome {
            Outcome::Now(r) => r,
            Outcome::Wait(rx) => rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.with_group(group_id, false, |g| {
            g.heartbeat(member_id, instance, generation, Instant::now())
        })
        .unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// Removes members; one result per (member id, instance id).
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        let now = Instant::now();
        self.with_group(group_id, false, |g| {
            members
                .iter()
                .map(|(m, i)| g.leave(m, i.as_deref(), now, &self.inner.timing))
                .collect()
        })
        .unwrap_or_else(|| {
            members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect()
        })
    }

    /// Checks an offset committer against the group: a member of a KIP-848 group with
    /// members, else of the classic group (made if `create`), else `absent`.
    fn check_committer(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        create: bool,
        absent: GroupError,
    ) -> Result<(), GroupError> {
        validate_group_id(group_id)?;
        let now = Instant::now();
        let consumer = {
            let mut groups = self
                .inner
                .consumer_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            groups
                .get_mut(group_id)
                .filter(|g| !g.members.is_empty())
                .map(|g| g.validate_commit(member_id, generation, now))
        };
        if let Some(checked) = consumer {
            return checked;
        }
        self.with_group(group_id, create, |g| {
            g.validate_commit(member_id, instance, generation, now)
        })
        .unwrap_or(Err(absent))
    }

    /// Stores committed offsets after checking the committer belongs to the group's
    /// current generation (or the group has no members: offsets-only use).
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: &[GroupOffset],
    ) -> Result<(), GroupError> {
        let offsets_only = generation < 0 && member_id.is_empty();
        self.check_committer(
            group_id,
            member_id,
            instance,
            generation,
            offsets_only,
            GroupError::UnknownMemberId,
        )?;
        self.inner
            .metadata
            .commit_group_offsets(group_id, offsets)
            .await?;
        Ok(())
    }

    /// Checks who commits offsets in a transaction (KIP-447): a producer that names a
    /// member and generation must be that member, in the group's current generation, so a
    /// zombie left from before a rebalance cannot commit; one that names neither (older
    /// clients, or no group membership) is not checked. Stores nothing.
    pub fn check_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && generation < 0 && instance.is_none() {
            validate_group_id(group_id)?;
            return Ok(());
        }
        self.check_committer(
            group_id,
            member_id,
            instance,
            generation,
            false,
            GroupError::IllegalGeneration {
                got: generation,
                current: -1,
            },
        )
    }

    /// Committed offsets of a group (all, or those of `partitions`).
    pub async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<GroupOffset>, GroupError> {
        Ok(self.inner.metadata.group_offsets(group_id).await?)
    }

    /// Groups known to this coordinator, plus groups that only have committed offsets.
    pub async fn list(&self) -> Result<Vec<GroupSummary>, GroupError> {
        let mut out: HashMap<String, GroupSummary> = {
            let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
            groups
                .values()
                .map(|g| {
                    let summary = GroupSummary {
                        group_id: g.id.clone(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        state: g.state,
                    };
                    (g.id.clone(), summary)
                })
                .collect()
        };
        {
            let groups = self
                .inner
                .consumer_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for g in groups.values().filter(|g| !g.members.is_empty()) {
                out.insert(
                    g.id.clone(),
                    GroupSummary {
                        group_id: g.id.clone(),
                        protocol_type: "consumer".into(),
                        state: GroupState::Stable,
                    },
                );
            }
        }
        for id in self.inner.metadata.groups().await? {
            out.entry(id.clone()).or_insert(GroupSummary {
                group_id: id,
                protocol_type: "consumer".into(),
                state: GroupState::Empty,
            });
        }
        let mut list: Vec<GroupSummary> = out.into_values().collect();
        list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(list)
    }

    /// A group's state and members; an unknown group is described as Dead, as in Kafka.
    pub async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        if let Some(d) = self.describe_consumer(group_id) {
            return Ok(d);
        }
        let described = self.with_group(group_id, false, |g| GroupDescription {
            group_id: g.id.clone(),
            state: g.state,
            state_name: g.state.kafka_name().to_string(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            generation: g.generation,
            leader: g.leader.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: g
                        .protocol
                        .as_ref()
                        .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                    assigned: decode_assignment(&m.assignment),
                    member_epoch: g.generation,
                    subscribed: Vec::new(),
                })
                .collect(),
        });
        if let Some(d) = described {
            return Ok(d);
        }
        let has_offsets = !self
            .inner
            .metadata
            .group_offsets(group_id)
            .await?
            .is_empty();
        let state = if has_offsets {
            GroupState::Empty
        } else {
            GroupState::Dead
        };
        Ok(GroupDescription {
            group_id: group_id.to_string(),
            state,
            state_name: state.kafka_name().to_string(),
            protocol_type: if has_offsets {
                "consumer".into()
            } else {
                String::new()
            },
            protocol: String::new(),
            generation: 0,
            leader: None,
            members: Vec::new(),
        })
    }

    fn consumer_group_active(&self, group_id: &str) -> bool {
        let groups = self
            .inner
            .consumer_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    /// How often KIP-848 members should heartbeat.
    pub fn consumer_heartbeat_interval(&self) -> Duration {
        self.inner.config.consumer_heartbeat_interval
    }

    /// A KIP-848 ConsumerGroupHeartbeat, assigned over the topics the metadata service
    /// has now.
    pub async fn consumer_heartbeat_current(
        &self,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, GroupError> {
        let topics: HashMap<String, TopicInfo> = self
            .inner
            .catalog
            .topics()
            .await?
            .into_iter()
            .map(|t| {
                let info = TopicInfo {
                    id: t.id,
                    partitions: t.partitions,
                };
                (t.name, info)
            })
            .collect();
        self.consumer_heartbeat(req, &topics)
    }

    /// A KIP-848 ConsumerGroupHeartbeat. `topics` is the current topic list (name -> id,
    /// partitions), from which the assignment is computed.
    pub fn consumer_heartbeat(
        &self,
        req: HeartbeatRequest,
        topics: &HashMap<String, TopicInfo>,
    ) -> Result<HeartbeatResponse, GroupError> {
        validate_group_id(&req.group_id)?;
        let classic_busy = {
            let groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
            groups
                .get(&req.group_id)
                .is_some_and(|g| !g.members.is_empty())
        };
        if classic_busy {
            // A group is either classic or consumer, as in Kafka.
            return Err(GroupError::GroupIdNotFound);
        }
        let mut groups = self
            .inner
            .consumer_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(&req.group_id));
        group.heartbeat(
            req,
            topics,
            self.inner.config.consumer_session_timeout,
            Instant::now(),
        )
    }

    fn describe_consumer(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self
            .inner
            .consumer_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let g = groups.get(group_id).filter(|g| !g.members.is_empty())?;
        Some(GroupDescription {
            group_id: g.id.clone(),
            state: GroupState::Stable,
            state_name: g.state_name().to_string(),
            protocol_type: "consumer".into(),
            protocol: g.assignor.clone(),
            generation: g.epoch,
            leader: None,
            members: g
                .members
                .values()
                .map(|m| {
                    let mut assigned: Vec<(String, Vec<i32>)> = Vec::new();
                    for (topic, p) in &m.assigned {
                        match assigned.last_mut() {
                            Some((t, ps)) if t == topic => ps.push(*p),
                            _ => assigned.push((topic.clone(), vec![*p])),
                        }
                    }
                    MemberDescription {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: String::new(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                        assigned,
                        member_epoch: m.epoch,
                        subscribed: m.subscribed.clone(),
                    }
                })
                .collect(),
        })
    }

    /// Deletes an empty group and its committed offsets.
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        if self.consumer_group_active(group_id) {
            return Err(GroupError::NonEmptyGroup);
        }
        let state = self.with_group(group_id, false, |g| g.state);
        match state {
            Some(GroupState::Empty | GroupState::Dead) => {}
            Some(_) => return Err(GroupError::NonEmptyGroup),
            None => {
                if self
                    .inner
                    .metadata
                    .group_offsets(group_id)
                    .await?
                    .is_empty()
                {
                    return Err(GroupError::GroupIdNotFound);
                }
            }
        }
        self.inner
            .metadata
            .delete_group_offsets(group_id, None)
            .await?;
        let mut groups = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
        if groups.get(group_id).is_some_and(|g| g.members.is_empty()) {
            groups.remove(group_id);
        }
        Ok(())
    }

    /// Deletes the committed offsets of some partitions (OffsetDelete). Refused for
    /// partitions the group is consuming while it has members.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        let described = self.describe(group_id).await?;
        if described.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        self.inner
            .metadata
            .delete_group_offsets(group_id, Some(partitions))
            .await?;
        Ok(())
    }
}
