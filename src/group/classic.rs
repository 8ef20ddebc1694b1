//! `ClassicGroup`: one group's members, generation, timers and offsets, and the helpers every
//! handler shares (the one transition function, member removal, protocol choice, invariants).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;
use crate::observe::Tracer;

use super::coordinator::{outbox_entry, GroupConfig, GroupSnapshot, Ready};
use super::records::{GroupMetadataValue, GroupRecord, MemberMetadataValue};
use super::responses::{join_error, sync_error};
use super::state::GroupState;

/// What a group operation may produce besides its direct answer. Borrowed from the coordinator
/// for the length of one call.
pub(super) struct Effects<'a> {
    pub now_ms: u64,
    pub config: &'a GroupConfig,
    pub trace: &'a Tracer,
    pub ready: &'a mut Vec<Ready>,
    pub records: &'a mut Vec<(i32, Bytes, Option<Bytes>)>,
}

/// A request the coordinator holds until it can answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Parked {
    pub token: u64,
    pub version: i16,
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// The generation `assignment` was given in; -1 before the first.
    pub assignment_generation: i32,
    /// The last heartbeat, join, sync or commit: the session runs from here.
    pub last_seen_ms: u64,
    pub awaiting_join: Option<Parked>,
    pub awaiting_sync: Option<Parked>,
}

impl Member {
    /// When the session expires. A member with a parked join or sync is exempt (Kafka's
    /// `hasSatisfiedHeartbeat`): the rebalance timeout governs it, and its session restarts
    /// when the request is answered.
    pub fn session_deadline_ms(&self) -> Option<u64> {
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            return None;
        }
        Some(self.last_seen_ms + self.session_timeout_ms.max(0) as u64)
    }

    /// The member's metadata for `protocol` (empty if it does not list it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }
}

/// Kafka's two kinds of delayed join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinTimer {
    /// `InitialDelayedJoin`: a rebalance out of Empty completes only at its deadline, which
    /// moves on (by the delay, within the rebalance timeout) while new members keep arriving.
    Initial { deadline_ms: u64, delay_ms: u64, remaining_ms: u64 },
    /// `DelayedJoin`: completes as soon as every member has joined, or at the deadline.
    Rebalance { deadline_ms: u64 },
}

impl JoinTimer {
    pub fn deadline_ms(self) -> u64 {
        match self {
            JoinTimer::Initial { deadline_ms, .. } | JoinTimer::Rebalance { deadline_ms } => deadline_ms,
        }
    }
}

/// A group timer, ordered so that simultaneous ones fire in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerEvent {
    /// A member id handed out with MEMBER_ID_REQUIRED was not used within its session timeout.
    PendingExpired(String),
    SessionExpired(String),
    JoinDeadline,
    /// Members that got the join response did not send SyncGroup in time.
    SyncDeadline,
    /// Empty, without offsets or pending members, for `offsets_retention_check_interval_ms`.
    Delete,
}

pub(super) struct ClassicGroup {
    pub id: String,
    pub partition: i32,
    pub state: GroupState,
    pub state_since_ms: u64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation; None while Empty.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In the order they joined.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire.
    pub pending: BTreeMap<String, u64>,
    /// Members that got this generation's join response but have not sent SyncGroup.
    pub pending_sync: BTreeSet<String>,
    pub join_timer: Option<JoinTimer>,
    pub sync_deadline_ms: Option<u64>,
    /// A member joined during an initial delayed join (Kafka's `newMemberAdded`).
    pub new_member_added: bool,
    pub offsets: BTreeMap<TopicPartition, CommittedOffset>,
}

impl ClassicGroup {
    pub fn new(id: String, partition: i32, now_ms: u64) -> Self {
        ClassicGroup {
            id,
            partition,
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            sync_deadline_ms: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    /// A member or a pending member.
    pub fn knows(&self, id: &str) -> bool {
        self.has_member(id) || self.pending.contains_key(id)
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// The one place the state changes. An illegal transition can only come from our own logic.
    pub fn transition(&mut self, fx: &mut Effects<'_>, to: GroupState, reason: &str) {
        let from = self.state;
        if let Err(e) = self.state.transition(to) {
            panic!("group {}: {e} ({reason})", self.id);
        }
        self.state_since_ms = fx.now_ms;
        fx.trace.emit(|| format!("group {} {from} -> {to} ({reason})", self.id));
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub fn rebalance_timeout_ms(&self) -> u64 {
        self.members.iter().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0)
    }

    /// Kafka's `supportsProtocols`, judged against the members other than `joining`: a group
    /// without them takes any non-empty protocol type and list; otherwise the type must match and
    /// one protocol must be supported by everyone.
    pub fn supports_protocols(&self, joining: &str, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let mut others = self.members.iter().filter(|m| m.id != joining).peekable();
        if others.peek().is_none() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let others: Vec<&Member> = others.collect();
        protocols.iter().any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// Every member awaits a join and no member id handed out is still unused (Kafka's
    /// `hasAllMembersJoined`).
    pub fn all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// The protocol every member supports with the most first-choice votes; ties go to the one
    /// the leader lists first (Kafka leaves ties to hash order).
    pub fn select_protocol(&self) -> String {
        let leader = self.leader.as_deref().and_then(|l| self.member(l)).expect("a group with members has a leader");
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        assert!(!candidates.is_empty(), "group {}: no protocol common to all members", self.id);
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            let vote = m.protocols.iter().find_map(|(name, _)| candidates.iter().position(|c| c == name));
            votes[vote.expect("every member supports every candidate")] += 1;
        }
        let most = *votes.iter().max().expect("candidates");
        let winner = votes.iter().position(|v| *v == most).expect("max exists");
        candidates[winner].to_string()
    }

    /// Removes a member: its parked requests are answered with UNKNOWN_MEMBER_ID (so a live
    /// client rejoins), and the first remaining member becomes leader if it led.
    pub fn remove_member(&mut self, fx: &mut Effects<'_>, id: &str, reason: &str) -> bool {
        let Some(index) = self.members.iter().position(|m| m.id == id) else {
            return false;
        };
        let m = self.members.remove(index);
        if let Some(p) = m.awaiting_join {
            fx.ready.push(Ready::Join { token: p.token, response: join_error(p.version, id, ResponseError::UnknownMemberId) });
        }
        if let Some(p) = m.awaiting_sync {
            fx.ready.push(Ready::Sync { token: p.token, response: sync_error(p.version, ResponseError::UnknownMemberId) });
        }
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        fx.trace.emit(|| format!("group {} member {id} removed ({reason}); {} left", self.id, self.members.len()));
        true
    }

    /// The GroupMetadata record of the current state.
    pub fn metadata_record(&self, now_ms: u64) -> GroupRecord {
        let protocol = self.protocol.clone();
        let members = self
            .members
            .iter()
            .map(|m| MemberMetadataValue {
                member_id: m.id.clone(),
                group_instance_id: None,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: m.rebalance_timeout_ms,
                session_timeout: m.session_timeout_ms,
                subscription: protocol.as_deref().map(|p| m.metadata(p)).unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let value = GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol,
            leader: self.leader.clone(),
            current_state_timestamp: i64::try_from(now_ms).unwrap_or(i64::MAX),
            members,
        };
        GroupRecord::Group { group: self.id.clone(), value: Some(value) }
    }

    pub fn emit_metadata(&self, fx: &mut Effects<'_>) {
        fx.records.push(outbox_entry(self.partition, &self.metadata_record(fx.now_ms)));
    }

    /// The next timer and when it fires.
    pub fn next_event(&self, config: &GroupConfig) -> Option<(u64, TimerEvent)> {
        let pending = self.pending.iter().map(|(id, at)| (*at, TimerEvent::PendingExpired(id.clone())));
        let sessions = self
            .members
            .iter()
            .filter_map(|m| m.session_deadline_ms().map(|at| (at, TimerEvent::SessionExpired(m.id.clone()))));
        let join = self.join_timer.map(|t| (t.deadline_ms(), TimerEvent::JoinDeadline));
        let sync = self.sync_deadline_ms.filter(|_| !self.pending_sync.is_empty()).map(|at| (at, TimerEvent::SyncDeadline));
        let delete = self
            .is_deletable()
            .then(|| (self.state_since_ms + config.offsets_retention_check_interval_ms, TimerEvent::Delete));
        pending.chain(sessions).chain(join).chain(sync).chain(delete).min()
    }

    /// Empty with nothing worth keeping: no offsets, no member id about to be used.
    pub fn is_deletable(&self) -> bool {
        self.state == GroupState::Empty && self.offsets.is_empty() && self.pending.is_empty()
    }

    /// Fires one due timer (all but `Delete`, which the coordinator handles by dropping the group).
    pub fn fire(&mut self, fx: &mut Effects<'_>, event: TimerEvent) {
        match event {
            TimerEvent::PendingExpired(id) => {
                self.pending.remove(&id);
                fx.trace.emit(|| format!("group {} pending member {id} expired before joining", self.id));
                self.try_complete_join(fx);
            }
            TimerEvent::SessionExpired(id) => self.remove_member_and_rebalance(fx, &id, "session timeout expired"),
            TimerEvent::JoinDeadline => self.on_join_deadline(fx),
            TimerEvent::SyncDeadline => self.on_sync_deadline(fx),
            TimerEvent::Delete => unreachable!("the coordinator deletes groups"),
        }
    }

    /// The group is deleted: Dead, and a tombstone so a reload does not bring it back.
    pub fn delete(&mut self, fx: &mut Effects<'_>) {
        assert!(self.is_deletable(), "group {} deleted in state {}", self.id, self.state);
        self.transition(fx, GroupState::Dead, "empty without offsets");
        let tombstone = GroupRecord::Group { group: self.id.clone(), value: None };
        fx.records.push(outbox_entry(self.partition, &tombstone));
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group: self.id.clone(),
            partition: self.partition,
            state: self.state.name(),
            generation: self.generation,
            members: self.members.iter().map(|m| m.id.clone()).collect(),
            offsets: self.offsets.iter().map(|(tp, c)| (tp.clone(), c.offset)).collect(),
            leader: self.leader.clone(),
            protocol: self.protocol.clone(),
        }
    }

    /// What must hold between calls, whatever happened.
    pub fn assert_invariants(&self) {
        use GroupState::*;
        let id = &self.id;
        let state = self.state;
        let ids: BTreeSet<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), self.members.len(), "group {id}: duplicate member ids");
        assert!(self.pending.keys().all(|p| !ids.contains(p.as_str())), "group {id}: a pending member is also a member");
        match &self.leader {
            Some(l) => assert!(ids.contains(l.as_str()), "group {id}: leader {l} is not a member"),
            None => assert!(self.members.is_empty(), "group {id}: members without a leader"),
        }
        if matches!(state, Empty | Dead) {
            assert!(self.members.is_empty(), "group {id}: {state} with members");
        }
        if matches!(state, CompletingRebalance | Stable) {
            assert!(!self.members.is_empty() && self.protocol.is_some(), "group {id}: {state} without members or protocol");
        }
        assert_eq!(self.join_timer.is_some(), state == PreparingRebalance, "group {id}: join timer in {state}");
        for m in &self.members {
            assert!(m.awaiting_join.is_none() || state == PreparingRebalance, "group {id}: {} awaits a join in {state}", m.id);
            assert!(m.awaiting_sync.is_none() || state == CompletingRebalance, "group {id}: {} awaits a sync in {state}", m.id);
            if state == Stable {
                let generation = self.generation;
                assert_eq!(m.assignment_generation, generation, "group {id}: {} has no assignment of generation {generation}", m.id);
            }
        }
        assert!(self.pending_sync.iter().all(|p| ids.contains(p.as_str())), "group {id}: pending sync of a non-member");
    }
}
