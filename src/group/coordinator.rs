//! `GroupCoordinator`: every classic group whose `__consumer_offsets` partition this broker
//! leads, as a sans-IO state machine. Requests go in with the time; answers to parked requests,
//! records to append and the next deadline come out (`take_ready`, `take_records`,
//! `next_deadline`). The broker owns the log, the parking of requests and the clock.
//!
//! The request handlers live in `join.rs`, `membership.rs` and `offsets.rs`, loading in
//! `load.rs`; this file holds the coordinator's state, its timers and its outputs.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use crate::ids::TopicPartition;
use crate::observe::Tracer;

use super::classic::{ClassicGroup, CommittedOffset, Effects, TimerEvent};
use super::records::GroupRecord;
use super::state::GroupState;

/// The broker settings the coordinator obeys (Kafka's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members, so a starting fleet does not rebalance once per member.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: u64,
    /// `offsets.topic.num.partitions`: the groups are spread over this many partitions.
    pub offsets_partitions: u32,
    /// `offsets.retention.check.interval.ms`: an Empty group with no committed offsets and no
    /// pending member is deleted (Dead, tombstone) this long after it became Empty.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`: the longest metadata string an offset commit may carry.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_partitions: 50,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4_096,
        }
    }
}

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions`: Java's `String.hashCode` over UTF-16
/// code units, and `Utils.abs`, which maps `i32::MIN` to 0 (it is not a bit mask: "my-group"
/// hashes to -1906497762 and lands on partition 12 of 50, not 36).
pub fn partition_for(group_id: &str, partitions: u32) -> i32 {
    assert!(partitions > 0 && partitions <= i32::MAX as u32, "offsets partitions {partitions}");
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions as i32
}

/// An answer now, or the promise of one through `take_ready`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    Now(T),
    /// The coordinator kept the request's token; its answer comes out of `take_ready()` (possibly
    /// already before this call returns, so drain `take_ready` after every call).
    Later,
}

/// The answer to a parked JoinGroup or SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    Join { token: u64, response: JoinGroupResponse },
    Sync { token: u64, response: SyncGroupResponse },
}

impl Ready {
    pub fn token(&self) -> u64 {
        match self {
            Ready::Join { token, .. } | Ready::Sync { token, .. } => *token,
        }
    }
}

/// Who sent a JoinGroup (from the request header and the connection), kept in the member's
/// record. `join_group` uses the empty client id and host, as Kafka would for a client that
/// sends none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

/// One group as white-box checks and traces see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group: String,
    pub partition: i32,
    pub state: &'static str,
    pub generation: i32,
    /// In join order; the first is the next leader if the current one leaves.
    pub members: Vec<String>,
    pub offsets: Vec<(TopicPartition, i64)>,
    pub leader: Option<String>,
    pub protocol: Option<String>,
}

/// The classic group coordinator of one broker.
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    node_id: i32,
    nonce: u64,
    /// The `n` of the next member id.
    next_member_seq: u64,
    pub(super) trace: Tracer,
    /// Offsets partitions led here and loaded.
    pub(super) loaded: BTreeSet<i32>,
    pub(super) groups: BTreeMap<String, ClassicGroup>,
    pub(super) ready: Vec<Ready>,
    pub(super) records: Vec<(i32, Bytes, Option<Bytes>)>,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id then
    /// group: they become the group's offsets when the transaction's COMMIT marker reaches the
    /// group's offsets partition, and are dropped on ABORT (Kafka's
    /// `pendingTransactionalOffsetCommits`).
    pub(super) txn_offsets: BTreeMap<i64, BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>>,
}

/// The longest string a record can hold (i16 length).
pub(super) const STRING_LEN_MAX: usize = i16::MAX as usize;

/// A bound on the timer events one group may fire in one tick: each event removes a member or
/// moves the state forward, so hitting it means a timer that does not advance (a bug).
const TIMER_EVENTS_PER_TICK_MAX: usize = 10_000;

impl GroupCoordinator {
    /// `node_id` and `nonce` make member ids unique across coordinators and restarts,
    /// deterministically: member ids are `{client_id}-{node_id}-{nonce:x}-{n}`.
    pub fn new(config: GroupConfig, node_id: i32, nonce: u64, trace: Tracer) -> Self {
        assert!(config.offsets_partitions > 0, "offsets.topic.num.partitions must be positive");
        assert!(
            config.min_session_timeout_ms <= config.max_session_timeout_ms,
            "session timeout bounds {}..{}",
            config.min_session_timeout_ms,
            config.max_session_timeout_ms
        );
        GroupCoordinator {
            config,
            node_id,
            nonce,
            next_member_seq: 0,
            trace,
            loaded: BTreeSet::new(),
            groups: BTreeMap::new(),
            ready: Vec::new(),
            records: Vec::new(),
            txn_offsets: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The offsets partition that holds `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_partitions)
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.contains(&partition)
    }

    /// None when `group` is served here, else the error for the client (NOT_COORDINATOR).
    pub fn check_owner(&self, group: &str) -> Option<ResponseError> {
        (!self.is_loaded(self.partition_of(group))).then_some(ResponseError::NotCoordinator)
    }

    /// The checks every group API but the offset ones makes first (Kafka's
    /// `validateGroupStatus`): a usable group id, then ownership.
    pub(super) fn check_group_id(&self, group: &str) -> Result<(), ResponseError> {
        // Kafka accepts any non-empty id; ours must also fit the i16 length of its records.
        if group.is_empty() || group.len() > STRING_LEN_MAX {
            return Err(ResponseError::InvalidGroupId);
        }
        self.check_owner(group).map_or(Ok(()), Err)
    }

    /// A fresh member id, never one the group already knows (a restarted coordinator with the
    /// same nonce could otherwise hand out a loaded member's id again).
    pub(super) fn new_member_id(&mut self, client_id: &str, group: &str) -> String {
        let client_id = truncate(client_id, STRING_LEN_MAX - 64);
        loop {
            let n = self.next_member_seq;
            self.next_member_seq += 1;
            let id = format!("{client_id}-{}-{:x}-{n}", self.node_id, self.nonce);
            let taken = self.groups.get(group).is_some_and(|g| g.knows(&id));
            if !taken {
                return id;
            }
        }
    }

    /// Runs `f` on a loaded group with the coordinator's outputs, then checks the group's
    /// invariants. None if the group does not exist.
    pub(super) fn with_group<R>(
        &mut self,
        now_ms: u64,
        group: &str,
        f: impl FnOnce(&mut ClassicGroup, &mut Effects<'_>) -> R,
    ) -> Option<R> {
        let g = self.groups.get_mut(group)?;
        let mut fx = Effects { now_ms, config: &self.config, trace: &self.trace, ready: &mut self.ready, records: &mut self.records };
        let out = f(g, &mut fx);
        g.assert_invariants();
        Some(out)
    }

    /// Creates `group` as Empty (on its partition, which must be loaded) if it does not exist.
    pub(super) fn group_or_create(&mut self, now_ms: u64, group: &str) -> &mut ClassicGroup {
        let partition = self.partition_of(group);
        assert!(self.is_loaded(partition), "group {group} created on unloaded partition {partition}");
        let trace = &self.trace;
        self.groups.entry(group.to_string()).or_insert_with(|| {
            trace.emit(|| format!("group {group} created Empty (offsets partition {partition})"));
            ClassicGroup::new(group.to_string(), partition, now_ms)
        })
    }

    /// Timers: session expiry, join completion by rebalance timeout or initial delay, sync
    /// timeout, deletion of empty groups. Call at least at `next_deadline()`.
    pub fn tick(&mut self, now_ms: u64) {
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_event(&self.config).is_some_and(|(at, _)| at <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let deleted = self
                .with_group(now_ms, &id, |g, fx| {
                    for _ in 0..TIMER_EVENTS_PER_TICK_MAX {
                        match g.next_event(fx.config) {
                            Some((at, event)) if at <= now_ms => {
                                // A late tick acts as if each timer fired on time, so what it
                                // starts (sessions, new deadlines) counts from then.
                                fx.now_ms = at;
                                if event == TimerEvent::Delete {
                                    g.delete(fx);
                                    return true;
                                }
                                g.fire(fx, event);
                            }
                            _ => return false,
                        }
                    }
                    panic!("group {}: timers did not settle after {TIMER_EVENTS_PER_TICK_MAX} events", g.id);
                })
                .expect("due group exists");
            if deleted {
                self.groups.remove(&id);
            }
        }
    }

    /// The earliest time at which `tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.groups.values().filter_map(|g| g.next_event(&self.config).map(|(at, _)| at)).min()
    }

    /// Answers for parked joins and syncs, in the order they were decided.
    pub fn take_ready(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.ready)
    }

    /// Group metadata records to append to offsets partition `.0`: on the transition to Stable
    /// (with the assignment), on the transition to Empty, and a tombstone when a group is
    /// deleted. Best effort: the broker appends them without waiting for anybody.
    pub fn take_records(&mut self) -> Vec<(i32, Bytes, Option<Bytes>)> {
        std::mem::take(&mut self.records)
    }

    /// Every loaded group, by group id.
    pub fn snapshot(&self) -> Vec<GroupSnapshot> {
        self.groups.values().map(ClassicGroup::snapshot).collect()
    }

    /// The state of one group, if it is loaded here.
    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// Asserts every group's invariants (white-box tests call this after each step; the
    /// coordinator checks the group it touched after every call).
    pub fn assert_invariants(&self) {
        for (id, g) in &self.groups {
            assert_eq!(id, &g.id, "group map key");
            assert!(self.loaded.contains(&g.partition), "group {id} on unloaded partition {}", g.partition);
            g.assert_invariants();
        }
    }
}

/// The encoded form of a record for the outbox.
pub(super) fn outbox_entry(partition: i32, record: &GroupRecord) -> (i32, Bytes, Option<Bytes>) {
    let (key, value) = record.encode();
    (partition, key, value)
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
