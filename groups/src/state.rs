//! One group's membership state machine. Pure: every method takes the current time, so
//! tests drive it with a simulated clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::GroupError;

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses (DescribeGroups, ListGroups).
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// Timing rules shared by all groups.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
}

/// A JoinGroup as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// Supported protocols in order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394: a new member must first obtain a member id (JoinGroup v4+).
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResponse {
    pub fn error(error: GroupError, member_id: String) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            member_id,
            ..Self::default()
        }
    }
}

/// A SyncGroup as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

pub(crate) type SyncResult = Result<Bytes, GroupError>;

pub(crate) enum Outcome<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) last_seen: Instant,
    /// Order of first joining: the longest-standing member leads.
    joined: u64,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn fail_waiters(&mut self, error: GroupError) {
        if let Some(w) = self.join_waiter.take() {
            let _ = w.send(JoinResponse::error(error.clone(), self.id.clone()));
        }
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.send(Err(error));
        }
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the instant given.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
    next_join: u64,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::now_v7())
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            next_join: 0,
        }
    }

    fn member_by_instance(&self, instance: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.id.as_str())
    }

    /// Protocols every member (and, if given, the candidate list) supports.
    fn compatible(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    pub(crate) fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
    ) -> Outcome<JoinResponse> {
        let fail = |e, id: &str| Outcome::Now(JoinResponse::error(e, id.to_string()));
        if req.session_timeout < timing.min_session_timeout
            || req.session_timeout > timing.max_session_timeout
        {
            let e = GroupError::InvalidSessionTimeout {
                got_ms: req.session_timeout.as_millis() as i32,
                min_ms: timing.min_session_timeout.as_millis() as i32,
                max_ms: timing.max_session_timeout.as_millis() as i32,
            };
            return fail(e, &req.member_id);
        }
        // A rejoining member's own protocols do not count against it.
        let others_ok = {
            let mut probe = std::mem::take(&mut self.members);
            let me = probe.remove(&req.member_id);
            self.members = probe;
            let ok = self.compatible(&req.protocol_type, &req.protocols);
            if let Some(me) = me {
                self.members.insert(me.id.clone(), me);
            }
            ok || (self.members.len() == 1 && self.members.contains_key(&req.member_id))
        };
        if !others_ok {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        }

        let member_id = if req.member_id.is_empty() {
            match req
                .group_instance_id
                .as_deref()
                .and_then(|i| self.member_by_instance(i))
            {
                // A static member restarting: it takes over its old identity.
                Some(old) => {
                    let old = old.to_string();
                    let new_id = new_member_id(&req.client_id);
                    if let Some(mut member) = self.members.remove(&old) {
                        member.fail_waiters(GroupError::FencedInstanceId);
                        member.id = new_id.clone();
                        if self.leader.as_deref() == Some(old.as_str()) {
                            self.leader = Some(new_id.clone());
                        }
                        self.members.insert(new_id.clone(), member);
                    }
                    new_id
                }
                None if req.require_known_member_id && req.group_instance_id.is_none() => {
                    let new_id = new_member_id(&req.client_id);
                    self.pending
                        .insert(new_id.clone(), now + req.session_timeout);
                    return fail(
                        GroupError::MemberIdRequired {
                            member_id: new_id.clone(),
                        },
                        &new_id,
                    );
                }
                None => new_member_id(&req.client_id),
            }
        } else if self.members.contains_key(&req.member_id)
            || self.pending.remove(&req.member_id).is_some()
        {
            req.member_id.clone()
        } else if req
            .group_instance_id
            .as_deref()
            .is_some_and(|i| self.member_by_instance(i).is_some())
        {
            return fail(GroupError::FencedInstanceId, &req.member_id);
        } else {
            return fail(GroupError::UnknownMemberId, &req.member_id);
        };

        let (tx, rx) = oneshot::channel();
        let joined = self.next_join;
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: None,
                client_id: String::new(),
                client_host: String::new(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_seen: now,
                joined,
                join_waiter: None,
                sync_waiter: None,
            });
        if member.joined == joined {
            self.next_join += 1;
        }
        member.instance_id = req.group_instance_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.protocols = req.protocols.clone();
        member.last_seen = now;
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResponse::error(
                GroupError::RebalanceInProgress,
                member_id.clone(),
            ));
        }
        self.protocol_type = Some(req.protocol_type.clone());
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, timing);
        }
        self.try_complete_join(now);
        Outcome::Wait(rx)
    }

    fn prepare_rebalance(&mut self, now: Instant, timing: &Timing) {
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if self.state == GroupState::Empty {
            self.initial_delay_until = Some(now + timing.initial_rebalance_delay.min(longest));
        }
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + longest);
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(GroupError::RebalanceInProgress));
            }
        }
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !((all_joined && delay_over) || deadline_passed) {
            return;
        }
        // Members that did not rejoin in time leave the group.
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        let leader_present = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_present {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined)
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let mut everyone: Vec<&Member> = self.members.values().collect();
        everyone.sort_by_key(|m| m.joined);
        let roster: Vec<(String, Option<String>, Bytes)> = everyone
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_seen = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResponse {
                    error: None,
                    generation_id: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// The protocol all members support that most members prefer.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().min_by_key(|m| m.joined)?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(*c).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
                )
            })
            .map(|c| (*c).clone())
    }

    fn check_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), GroupError> {
        let Some(member) = self.members.get(member_id) else {
            if instance.is_some_and(|i| self.member_by_instance(i).is_some()) {
                return Err(GroupError::FencedInstanceId);
            }
            return Err(GroupError::UnknownMemberId);
        };
        if instance.is_some() && member.instance_id.as_deref() != instance {
            return Err(GroupError::FencedInstanceId);
        }
        Ok(())
    }

    fn check_generation(&self, generation: i32) -> Result<(), GroupError> {
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self, req: SyncRequest, now: Instant) -> Outcome<SyncResult> {
        if let Err(e) = self
            .check_member(&req.member_id, req.group_instance_id.as_deref())
            .and_then(|()| self.check_generation(req.generation_id))
        {
            return Outcome::Now(Err(e));
        }
        let mismatch =
            |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if mismatch(&req.protocol_type, &self.protocol_type)
            || mismatch(&req.protocol_name, &self.protocol)
        {
            return Outcome::Now(Err(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => Outcome::Now(Err(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                let member = self.members.get_mut(&req.member_id);
                Outcome::Now(member.map_or(Err(GroupError::UnknownMemberId), |m| {
                    m.last_seen = now;
                    Ok(m.assignment.clone())
                }))
            }
            GroupState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                if is_leader {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    self.state = GroupState::Stable;
                    for m in self.members.values_mut() {
                        m.assignment = given.get(&m.id).cloned().unwrap_or_default();
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(Ok(m.assignment.clone()));
                        }
                    }
                }
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return Outcome::Now(Err(GroupError::UnknownMemberId));
                };
                member.last_seen = now;
                if is_leader {
                    return Outcome::Now(Ok(member.assignment.clone()));
                }
                let (tx, rx) = oneshot::channel();
                if let Some(old) = member.sync_waiter.replace(tx) {
                    let _ = old.send(Err(GroupError::RebalanceInProgress));
                }
                Outcome::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => Outcome::Now(Err(GroupError::UnknownMemberId)),
        }
    }

    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, instance)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.check_generation(generation)
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
        timing: &Timing,
    ) -> Result<(), GroupError> {
        let id = if member_id.is_empty() {
            instance
                .and_then(|i| self.member_by_instance(i))
                .map(str::to_string)
                .ok_or(GroupError::UnknownMemberId)?
        } else {
            self.check_member(member_id, instance)?;
            member_id.to_string()
        };
        self.remove_members(&[id], now, timing);
        Ok(())
    }

    fn remove_members(&mut self, ids: &[String], now: Instant, timing: &Timing) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            if let Some(mut m) = self.members.remove(id) {
                m.fail_waiters(GroupError::UnknownMemberId);
            }
            if self.leader.as_ref() == Some(id) {
                self.leader = None;
            }
        }
        if self.members.is_empty() {
            if self.state != GroupState::Empty {
                self.generation += 1;
            }
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
            self.initial_delay_until = None;
        } else {
            if self.state != GroupState::PreparingRebalance {
                self.prepare_rebalance(now, timing);
            }
            self.try_complete_join(now);
        }
    }

    /// Expires stale member ids and silent members, and ends rebalances whose time is up.
    pub(crate) fn tick(&mut self, now: Instant, timing: &Timing) {
        self.pending.retain(|_, until| *until > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now > m.last_seen + m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        // As in Kafka, also while a rebalance waits for members to rejoin: one that has
        // stopped heartbeating is gone, and the rebalance need not wait its whole
        // rebalance timeout (max.poll.interval.ms) for it. Live members heartbeat
        // through a rebalance until they rejoin.
        if !expired.is_empty() {
            tracing::info!(group = %self.id, members = ?expired, "members expired (no heartbeat within their session timeout)");
            self.remove_members(&expired, now, timing);
        }
        // Members waiting for the leader's assignment also expire if it never comes.
        let stuck: Vec<String> = self
            .members
            .values()
            .filter(|m| m.sync_waiter.is_some() && now > m.last_seen + m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        if !stuck.is_empty() {
            self.remove_members(&stuck, now, timing);
        }
        self.try_complete_join(now);
    }

    /// Checks an OffsetCommit against the group, counting it as a heartbeat.
    pub(crate) fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if generation < 0 && member_id.is_empty() && self.members.is_empty() {
            // Offsets stored by a client that does not use group membership.
            return Ok(());
        }
        self.check_member(member_id, instance)?;
        self.check_generation(generation)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A model test: simulated clients that follow the protocol (join, the leader assigns
    //! partitions round robin, sync, heartbeat, leave, go silent) in random order against
    //! the state machine. Invariant: whenever the group is Stable, every partition has
    //! exactly one owner among the current members, and all members share the generation.
    use super::*;
    use proptest::prelude::*;

    const PARTITIONS: u8 = 6;

    fn timing() -> Timing {
        Timing {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(60),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Sync(usize),
        Heartbeat(usize),
        Leave(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize).prop_map(Op::Join),
            (0..4usize).prop_map(Op::Sync),
            (0..4usize).prop_map(Op::Heartbeat),
            (0..4usize).prop_map(Op::Leave),
            (1..2000u64).prop_map(Op::Advance),
        ]
    }

    #[derive(Default)]
    struct Client {
        member_id: String,
        generation: i32,
        joining: Option<oneshot::Receiver<JoinResponse>>,
        syncing: Option<oneshot::Receiver<SyncResult>>,
        leader_roster: Option<Vec<String>>,
        assignment: Option<Vec<u8>>,
    }

    fn join_request(client: &Client, n: usize) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: client.member_id.clone(),
            group_instance_id: None,
            client_id: format!("c{n}"),
            client_host: "h".into(),
            session_timeout: Duration::from_millis(1000),
            rebalance_timeout: Duration::from_millis(1500),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: true,
        }
    }

    fn round_robin(roster: &[String]) -> Vec<(String, Bytes)> {
        roster
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mine: Vec<u8> = (0..PARTITIONS)
                    .filter(|p| *p as usize % roster.len() == i)
                    .collect();
                (id.clone(), Bytes::from(mine))
            })
            .collect()
    }

    fn poll_responses(clients: &mut [Client]) {
        for c in clients.iter_mut() {
            if let Some(rx) = c.joining.as_mut() {
                match rx.try_recv() {
                    Ok(r) => {
                        c.joining = None;
                        if let Some(GroupError::MemberIdRequired { member_id }) = &r.error {
                            c.member_id = member_id.clone();
                        } else if r.error.is_none() {
                            c.member_id = r.member_id.clone();
                            c.generation = r.generation_id;
                            c.leader_roster = (r.leader == r.member_id)
                                .then(|| r.members.iter().map(|m| m.0.clone()).collect());
                            c.assignment = None;
                        } else {
                            c.member_id.clear();
                        }
                    }
                    Err(oneshot::error::TryRecvError::Closed) => c.joining = None,
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
            }
            if let Some(rx) = c.syncing.as_mut() {
                match rx.try_recv() {
                    Ok(Ok(a)) => {
                        c.syncing = None;
                        c.assignment = Some(a.to_vec());
                    }
                    Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => c.syncing = None,
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
            }
        }
    }

    #[test]
    fn a_restarted_static_member_takes_over_and_fences_its_old_self() {
        let t = timing();
        let now = Instant::now();
        let mut group = Group::new("g");
        let mut req = join_request(&Client::default(), 0);
        req.group_instance_id = Some("pod-0".into());
        let Outcome::Wait(mut rx) = group.join(req.clone(), now, &t) else {
            panic!("a static member joins without the member-id round trip");
        };
        group.tick(now + Duration::from_millis(400), &t);
        let first = rx.try_recv().expect("joined");
        assert!(first.error.is_none());
        let old_id = first.member_id.clone();
        // The process restarts and joins again with the same instance id.
        let later = now + Duration::from_millis(500);
        let Outcome::Wait(mut rx) = group.join(req, later, &t) else {
            panic!("rejoin waits for the rebalance");
        };
        group.tick(later, &t);
        let second = rx.try_recv().expect("rejoined");
        assert!(second.error.is_none(), "{:?}", second.error);
        assert_ne!(second.member_id, old_id);
        assert_eq!(
            group.members.len(),
            1,
            "the old identity is taken over, not duplicated"
        );
        // The old incarnation is fenced.
        assert_eq!(
            group.heartbeat(&old_id, Some("pod-0"), second.generation_id, later),
            Err(GroupError::FencedInstanceId)
        );
        assert_eq!(
            group.heartbeat(
                &second.member_id,
                Some("pod-0"),
                second.generation_id,
                later
            ),
            Ok(())
        );
    }

    #[test]
    fn a_rebalance_does_not_wait_for_a_member_whose_session_expired() {
        let t = timing();
        let now = Instant::now();
        let mut group = Group::new("g");
        let mut req = join_request(&Client::default(), 0);
        req.group_instance_id = Some("pod-0".into());
        req.rebalance_timeout = Duration::from_secs(300);
        let Outcome::Wait(mut rx) = group.join(req.clone(), now, &t) else {
            panic!("a static member joins at once");
        };
        group.tick(now + Duration::from_millis(400), &t);
        assert!(rx.try_recv().expect("joined").error.is_none());
        // pod-0 dies (no heartbeat from now); pod-1 joins and a rebalance begins.
        req.group_instance_id = Some("pod-1".into());
        let later = now + Duration::from_millis(500);
        let Outcome::Wait(mut rx) = group.join(req, later, &t) else {
            panic!("the join waits for the rebalance");
        };
        group.tick(now + Duration::from_millis(900), &t);
        assert!(
            rx.try_recv().is_err(),
            "pod-0's session has not expired yet"
        );
        // Past pod-0's 1 s session, not its 300 s rebalance timeout, the join completes.
        group.tick(now + Duration::from_millis(1600), &t);
        let joined = rx.try_recv().expect("joined without the dead member");
        assert!(joined.error.is_none(), "{:?}", joined.error);
        assert_eq!(group.members.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn a_stable_group_gives_every_partition_exactly_one_owner(ops in proptest::collection::vec(op(), 1..120)) {
            let t = timing();
            let mut now = Instant::now();
            let mut group = Group::new("g");
            let mut clients: Vec<Client> = (0..4).map(|_| Client::default()).collect();
            for op in ops {
                match op {
                    Op::Join(n) => {
                        let req = join_request(&clients[n], n);
                        match group.join(req, now, &t) {
                            Outcome::Now(r) => {
                                if let Some(GroupError::MemberIdRequired { member_id }) = r.error {
                                    clients[n].member_id = member_id;
                                } else {
                                    clients[n].member_id.clear();
                                }
                            }
                            Outcome::Wait(rx) => clients[n].joining = Some(rx),
                        }
                    }
                    Op::Sync(n) => {
                        let c = &clients[n];
                        if c.member_id.is_empty() || c.joining.is_some() { continue; }
                        let assignments = c.leader_roster.as_deref().map(round_robin).unwrap_or_default();
                        let req = SyncRequest {
                            group_id: "g".into(),
                            generation_id: c.generation,
                            member_id: c.member_id.clone(),
                            group_instance_id: None,
                            protocol_type: Some("consumer".into()),
                            protocol_name: Some("range".into()),
                            assignments,
                        };
                        match group.sync(req, now) {
                            Outcome::Now(Ok(a)) => clients[n].assignment = Some(a.to_vec()),
                            Outcome::Now(Err(_)) => {}
                            Outcome::Wait(rx) => clients[n].syncing = Some(rx),
                        }
                    }
                    Op::Heartbeat(n) => {
                        let c = &clients[n];
                        if !c.member_id.is_empty() {
                            let _ = group.heartbeat(&c.member_id, None, c.generation, now);
                        }
                    }
                    Op::Leave(n) => {
                        let id = std::mem::take(&mut clients[n].member_id);
                        if !id.is_empty() {
                            let _ = group.leave(&id, None, now, &t);
                        }
                        clients[n] = Client::default();
                    }
                    Op::Advance(ms) => {
                        now += Duration::from_millis(ms);
                        group.tick(now, &t);
                    }
                }
                poll_responses(&mut clients);

                if group.state == GroupState::Stable {
                    let mut owners = vec![0usize; PARTITIONS as usize];
                    for m in group.members.values() {
                        for p in m.assignment.iter() {
                            owners[*p as usize] += 1;
                        }
                    }
                    prop_assert!(owners.iter().all(|n| *n == 1), "owners {:?} with {} members", owners, group.members.len());
                }
                for m in group.members.values() {
                    prop_assert!(group.state != GroupState::Empty, "an empty group has member {}", m.id);
                }
                if let Some(leader) = &group.leader {
                    prop_assert!(group.members.contains_key(leader) || group.state == GroupState::Empty);
                }
            }
        }
    }
}
