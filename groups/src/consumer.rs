//! KIP-848 consumer groups (`group.protocol=consumer`): the coordinator computes the
//! assignment (uniform or range) and hands it out incrementally through heartbeats, with
//! epochs. A partition reaches its new owner only after the previous owner has reported
//! it revoked, so no partition ever has two owners.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::GroupError;

/// A topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: uuid::Uuid,
    pub partitions: i32,
}

pub type TopicPartitions = BTreeSet<(String, i32)>;

/// A ConsumerGroupHeartbeat as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub rebalance_timeout: Duration,
    /// None: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; None: unchanged.
    pub owned: Option<TopicPartitions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's full assignment, when it changed; None otherwise.
    pub assignment: Option<TopicPartitions>,
}

#[derive(Debug, Clone)]
pub(crate) struct CMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) epoch: i32,
    pub(crate) subscribed: Vec<String>,
    pub(crate) assigned: TopicPartitions,
    pub(crate) session_timeout: Duration,
    pub(crate) last_seen: Instant,
    /// What the member was last told, to send assignments only when they change.
    told: Option<TopicPartitions>,
}

#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) assignor: String,
    pub(crate) members: BTreeMap<String, CMember>,
    pub(crate) target: HashMap<String, TopicPartitions>,
    /// Partition counts of subscribed topics when the target was computed.
    topics_seen: BTreeMap<String, i32>,
}

pub(crate) const ASSIGNORS: [&str; 2] = ["uniform", "range"];

impl ConsumerGroup {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            epoch: 0,
            assignment_epoch: 0,
            assignor: "uniform".into(),
            members: BTreeMap::new(),
            target: HashMap::new(),
            topics_seen: BTreeMap::new(),
        }
    }

    /// Kafka's state names for consumer groups.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub(crate) fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &HashMap<String, TopicInfo>,
        session_timeout: Duration,
        now: Instant,
    ) -> Result<HeartbeatResponse, GroupError> {
        if let Some(a) = &req.server_assignor
            && !ASSIGNORS.contains(&a.as_str())
        {
            return Err(GroupError::UnsupportedAssignor);
        }
        match req.member_epoch {
            -1 | -2 => {
                if self.members.remove(&req.member_id).is_some() {
                    self.target.remove(&req.member_id);
                    self.epoch += 1;
                }
                Ok(HeartbeatResponse {
                    member_id: req.member_id,
                    member_epoch: req.member_epoch,
                    assignment: None,
                })
            }
            0 => {
                let id = if req.member_id.is_empty() {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    req.member_id.clone()
                };
                if let Some(instance) = &req.instance_id
                    && self
                        .members
                        .values()
                        .any(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                {
                    return Err(GroupError::UnreleasedInstanceId);
                }
                let subscribed = req.subscribed_topics.clone().unwrap_or_default();
                // A (re)joining member starts from nothing.
                self.members.insert(
                    id.clone(),
                    CMember {
                        id: id.clone(),
                        instance_id: req.instance_id.clone(),
                        client_id: req.client_id.clone(),
                        epoch: 0,
                        subscribed,
                        assigned: TopicPartitions::new(),
                        session_timeout,
                        last_seen: now,
                        told: None,
                    },
                );
                if let Some(a) = &req.server_assignor {
                    self.assignor = a.clone();
                }
                self.epoch += 1;
                Ok(self.reconcile(&id, None, topics))
            }
            epoch => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return Err(GroupError::UnknownMemberId);
                };
                if epoch != member.epoch {
                    return Err(GroupError::FencedMemberEpoch);
                }
                member.last_seen = now;
                if let Some(topics) = &req.subscribed_topics
                    && *topics != member.subscribed
                {
                    member.subscribed = topics.clone();
                    self.epoch += 1;
                }
                if let Some(a) = &req.server_assignor
                    && *a != self.assignor
                {
                    self.assignor = a.clone();
                    self.epoch += 1;
                }
                Ok(self.reconcile(&req.member_id, req.owned, topics))
            }
        }
    }

    /// Brings the target assignment up to date, then moves `member` toward its target:
    /// first it revokes what it must give up, then it receives what is free.
    fn reconcile(
        &mut self,
        member_id: &str,
        owned: Option<TopicPartitions>,
        topics: &HashMap<String, TopicInfo>,
    ) -> HeartbeatResponse {
        let seen: BTreeMap<String, i32> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .map(|t| (t.clone(), topics.get(t).map_or(0, |i| i.partitions)))
            .collect();
        if seen != self.topics_seen {
            self.topics_seen = seen;
            self.epoch += 1;
        }
        if self.assignment_epoch < self.epoch {
            self.target = assign(&self.assignor, &self.members, &self.target, topics);
            self.assignment_epoch = self.epoch;
        }
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        // Partitions some other member still holds cannot be handed out yet.
        let held_elsewhere: TopicPartitions = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.assigned.iter().cloned())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return HeartbeatResponse {
                member_id: member_id.to_string(),
                member_epoch: -1,
                assignment: None,
            };
        };
        let owned = owned.unwrap_or_else(|| member.assigned.clone());
        let keep: TopicPartitions = owned.intersection(&target).cloned().collect();
        let must_revoke = owned.difference(&target).next().is_some();
        let next = if must_revoke {
            // Give up first; the epoch moves on once the member has done so. Until it
            // confirms, it still holds everything it owns: nobody else may get those.
            member.assigned = owned;
            keep
        } else {
            member.epoch = assignment_epoch;
            let free = target
                .iter()
                .filter(|tp| !held_elsewhere.contains(*tp))
                .cloned();
            let next: TopicPartitions = keep.into_iter().chain(free).collect();
            member.assigned = next.clone();
            next
        };
        let changed = member.told.as_ref() != Some(&next);
        if changed {
            member.told = Some(next.clone());
        }
        HeartbeatResponse {
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            assignment: changed.then_some(next),
        }
    }

    /// Removes members silent for longer than their session timeout.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| now > m.last_seen + m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
            self.target.remove(id);
        }
        if !expired.is_empty() {
            self.epoch += 1;
        }
        expired
    }

    /// Checks an OffsetCommit from a member of this group.
    pub(crate) fn validate_commit(
        &mut self,
        member_id: &str,
        epoch: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if epoch > member.epoch {
            return Err(GroupError::FencedMemberEpoch);
        }
        if epoch < member.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        member.last_seen = now;
        Ok(())
    }
}

/// Computes the target assignment with the named assignor. `uniform` balances all
/// subscribed partitions over the members and keeps partitions where they were when that
/// stays balanced; `range` gives each member a contiguous range of each topic.
pub(crate) fn assign(
    assignor: &str,
    members: &BTreeMap<String, CMember>,
    previous: &HashMap<String, TopicPartitions>,
    topics: &HashMap<String, TopicInfo>,
) -> HashMap<String, TopicPartitions> {
    let mut out: HashMap<String, TopicPartitions> = members
        .keys()
        .map(|id| (id.clone(), TopicPartitions::new()))
        .collect();
    let subscribed: BTreeSet<&String> =
        members.values().flat_map(|m| m.subscribed.iter()).collect();
    if assignor == "range" {
        for topic in subscribed {
            let Some(info) = topics.get(topic) else {
                continue;
            };
            let eligible: Vec<&String> = members
                .values()
                .filter(|m| m.subscribed.contains(topic))
                .map(|m| &m.id)
                .collect();
            let n = eligible.len() as i32;
            if n == 0 {
                continue;
            }
            let (per, extra) = (info.partitions / n, info.partitions % n);
            let mut next = 0;
            for (i, id) in eligible.iter().enumerate() {
                let count = per + i32::from((i as i32) < extra);
                for p in next..next + count {
                    out.entry((*id).clone())
                        .or_default()
                        .insert((topic.clone(), p));
                }
                next += count;
            }
        }
        return out;
    }
    // Uniform, sticky: keep previous owners up to the fair share, then fill the smallest.
    let all: Vec<(String, i32)> = subscribed
        .iter()
        .filter_map(|t| topics.get(*t).map(|i| (t, i.partitions)))
        .flat_map(|(t, n)| (0..n).map(move |p| ((*t).clone(), p)))
        .collect();
    let share = all.len().div_ceil(members.len().max(1));
    let mut unassigned = Vec::new();
    for tp in all {
        let keeper = previous.iter().find(|(id, owned)| {
            owned.contains(&tp)
                && members
                    .get(*id)
                    .is_some_and(|m| m.subscribed.contains(&tp.0))
                && out.get(*id).is_some_and(|o| o.len() < share)
        });
        match keeper {
            Some((id, _)) => {
                let id = id.clone();
                out.entry(id).or_default().insert(tp);
            }
            None => unassigned.push(tp),
        }
    }
    for tp in unassigned {
        let target = members
            .values()
            .filter(|m| m.subscribed.contains(&tp.0))
            .min_by_key(|m| (out.get(&m.id).map_or(0, BTreeSet::len), m.id.clone()))
            .map(|m| m.id.clone());
        if let Some(id) = target {
            out.entry(id).or_default().insert(tp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> HashMap<String, TopicInfo> {
        HashMap::from([(
            "t".to_string(),
            TopicInfo {
                id: uuid::Uuid::nil(),
                partitions: 6,
            },
        )])
    }

    fn join(g: &mut ConsumerGroup, id: &str, now: Instant) -> HeartbeatResponse {
        g.heartbeat(
            HeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                member_epoch: 0,
                instance_id: None,
                client_id: "c".into(),
                rebalance_timeout: Duration::from_secs(30),
                subscribed_topics: Some(vec!["t".into()]),
                server_assignor: None,
                owned: None,
            },
            &topics(),
            Duration::from_secs(10),
            now,
        )
        .expect("joined")
    }

    fn beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        owned: &TopicPartitions,
        now: Instant,
    ) -> HeartbeatResponse {
        g.heartbeat(
            HeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                member_epoch: epoch,
                instance_id: None,
                client_id: "c".into(),
                rebalance_timeout: Duration::from_secs(30),
                subscribed_topics: None,
                server_assignor: None,
                owned: Some(owned.clone()),
            },
            &topics(),
            Duration::from_secs(10),
            now,
        )
        .expect("heartbeat")
    }

    #[test]
    fn partitions_move_only_after_their_owner_revokes_them() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a = join(&mut g, "a", now);
        let a_owned = a.assignment.expect("assignment");
        assert_eq!(a_owned.len(), 6);
        // b joins: the target splits 3/3, but a still owns everything.
        let b = join(&mut g, "b", now);
        assert_eq!(b.assignment.expect("assignment").len(), 0);
        // a is told to give three up (its epoch stays until it has).
        let a2 = beat(&mut g, "a", a.member_epoch, &a_owned, now);
        let a_kept = a2.assignment.expect("revocation");
        assert_eq!(a_kept.len(), 3);
        assert_eq!(a2.member_epoch, a.member_epoch);
        // a confirms; its epoch moves on. Then b gets the freed partitions.
        let a3 = beat(&mut g, "a", a2.member_epoch, &a_kept, now);
        assert!(a3.member_epoch > a.member_epoch);
        let b2 = beat(&mut g, "b", b.member_epoch, &TopicPartitions::new(), now);
        let b_owned = b2.assignment.expect("assignment");
        assert_eq!(b_owned.len(), 3);
        assert!(a_kept.is_disjoint(&b_owned));
        assert_eq!(g.state_name(), "Stable");
        // A stale epoch is fenced.
        let err = g
            .heartbeat(
                HeartbeatRequest {
                    group_id: "g".into(),
                    member_id: "a".into(),
                    member_epoch: 1,
                    instance_id: None,
                    client_id: "c".into(),
                    rebalance_timeout: Duration::from_secs(30),
                    subscribed_topics: None,
                    server_assignor: None,
                    owned: None,
                },
                &topics(),
                Duration::from_secs(10),
                now,
            )
            .expect_err("fenced");
        assert_eq!(err, GroupError::FencedMemberEpoch);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Join(usize),
            Beat(usize),
            Leave(usize),
            Expire(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..4usize).prop_map(Op::Join),
                (0..4usize).prop_map(Op::Beat),
                (0..4usize).prop_map(Op::Beat),
                (0..4usize).prop_map(Op::Leave),
                (1..20_000u64).prop_map(Op::Expire),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]
            /// Members that do what they are told (own exactly what they were last given):
            /// no partition is ever given to two members, and once every member is at the
            /// assignment epoch, every partition has an owner.
            #[test]
            fn no_partition_ever_has_two_owners(ops in proptest::collection::vec(op(), 1..150)) {
                let mut now = Instant::now();
                let mut g = ConsumerGroup::new("g");
                let mut epochs: Vec<Option<i32>> = vec![None; 4];
                let mut owned: Vec<TopicPartitions> = vec![TopicPartitions::new(); 4];
                let mut revoking: Vec<Option<TopicPartitions>> = vec![None; 4];
                for op in ops {
                    match op {
                        Op::Join(n) => {
                            let r = join(&mut g, &format!("m{n}"), now);
                            epochs[n] = Some(r.member_epoch);
                            owned[n] = r.assignment.unwrap_or_default();
                            revoking[n] = None;
                        }
                        Op::Beat(n) => {
                            let Some(e) = epochs[n] else { continue };
                            // A revocation takes effect only now, when the member reports it.
                            if let Some(smaller) = revoking[n].take() {
                                owned[n] = smaller;
                            }
                            let req = HeartbeatRequest {
                                group_id: "g".into(),
                                member_id: format!("m{n}"),
                                member_epoch: e,
                                instance_id: None,
                                client_id: "c".into(),
                                rebalance_timeout: Duration::from_secs(30),
                                subscribed_topics: None,
                                server_assignor: None,
                                owned: Some(owned[n].clone()),
                            };
                            match g.heartbeat(req, &topics(), Duration::from_secs(10), now) {
                                Ok(r) => {
                                    epochs[n] = Some(r.member_epoch);
                                    if let Some(a) = r.assignment {
                                        if a.is_subset(&owned[n]) && a != owned[n] {
                                            // Told to give some up: it keeps consuming them
                                            // until it has finished and says so.
                                            revoking[n] = Some(a);
                                        } else {
                                            owned[n] = a;
                                        }
                                    }
                                }
                                Err(_) => {
                                    epochs[n] = None;
                                    owned[n].clear();
                                    revoking[n] = None;
                                }
                            }
                        }
                        Op::Leave(n) => {
                            if epochs[n].take().is_some() {
                                let mut r = join_like(&format!("m{n}"));
                                r.member_epoch = -1;
                                let _ = g.heartbeat(r, &topics(), Duration::from_secs(10), now);
                            }
                            owned[n].clear();
                            revoking[n] = None;
                        }
                        Op::Expire(ms) => {
                            now += Duration::from_millis(ms);
                            for id in g.expire(now) {
                                let n: usize = id[1..].parse().expect("index");
                                epochs[n] = None;
                                owned[n].clear();
                                revoking[n] = None;
                            }
                        }
                    }
                    let mut seen = TopicPartitions::new();
                    for (n, o) in owned.iter().enumerate() {
                        if epochs[n].is_none() { continue; }
                        for tp in o {
                            prop_assert!(seen.insert(tp.clone()), "{:?} owned twice", tp);
                        }
                    }
                    let settled = g.members.values().all(|m| m.epoch == g.assignment_epoch && m.assigned == g.target[&m.id]);
                    if settled && !g.members.is_empty() && g.assignment_epoch == g.epoch {
                        prop_assert_eq!(seen.len(), 6);
                    }
                }
            }
        }

        fn join_like(id: &str) -> HeartbeatRequest {
            HeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                member_epoch: 0,
                instance_id: None,
                client_id: "c".into(),
                rebalance_timeout: Duration::from_secs(30),
                subscribed_topics: Some(vec!["t".into()]),
                server_assignor: None,
                owned: None,
            }
        }
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let mut members = BTreeMap::new();
        for id in ["a", "b", "c", "d"] {
            members.insert(
                id.to_string(),
                CMember {
                    id: id.into(),
                    instance_id: None,
                    client_id: String::new(),
                    epoch: 0,
                    subscribed: vec!["t".into()],
                    assigned: TopicPartitions::new(),
                    session_timeout: Duration::from_secs(1),
                    last_seen: Instant::now(),
                    told: None,
                },
            );
        }
        let out = assign("range", &members, &HashMap::new(), &topics());
        let ps = |id: &str| out[id].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(
            (ps("a"), ps("b"), ps("c"), ps("d")),
            (vec![0, 1], vec![2, 3], vec![4], vec![5])
        );
        let uniform = assign("uniform", &members, &HashMap::new(), &topics());
        let sizes: Vec<usize> = uniform.values().map(BTreeSet::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 6);
        assert!(sizes.iter().all(|n| (1..=2).contains(n)));
    }
}
