//! The broker's side of consumer groups: FindCoordinator, the group requests handed to the
//! sans-IO `GroupCoordinator`, and the `__consumer_offsets` partitions it lives in. A broker
//! coordinates the groups whose offsets partition it leads: it loads the partition's log when it
//! becomes leader (the failover replay) and forgets those groups when it stops leading it.
//! Offset commits are appended to that partition and answered once the high watermark passes
//! them (acks=all), so a committed offset survives what an acknowledged record survives.

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};

use crate::group::{partition_for, ClientInfo, Ready, Reply};
use crate::ids::TopicPartition;
use crate::log::LogError;

use super::core::{reply, BrokerCore, Handled, RequestCtx};
use super::partition::Role;
use super::purgatory::{ParkedCommit, ParkedOp};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long a parked join or sync may wait beyond the group's own timers before the broker
/// gives up on it (the coordinator always answers first unless something is wrong).
const GROUP_PARK_SLACK_MS: u64 = 10_000;

/// One offset to commit: partition, offset, leader epoch, metadata.
pub type CommitOffset = (TopicPartition, i64, i32, String);

impl BrokerCore {
    fn offsets_partition(&self, group: &str) -> TopicPartition {
        TopicPartition::new(OFFSETS_TOPIC, partition_for(group, self.config.group.offsets_partitions))
    }

    /// None when `group` is served here now; else NOT_COORDINATOR, or
    /// COORDINATOR_LOAD_IN_PROGRESS while its partition's replayed tail is not committed.
    pub(super) fn group_coordinator_check(&self, group: &str) -> Option<ResponseError> {
        if let Some(e) = self.groups.check_owner(group) {
            return Some(e);
        }
        self.groups_still_loading(self.offsets_partition(group).partition).then_some(ResponseError::CoordinatorLoadInProgress)
    }

    /// Whether offsets partition `partition` was loaded from a log whose end the high
    /// watermark has not reached yet.
    pub(super) fn groups_still_loading(&self, partition: i32) -> bool {
        let Some(ready_at) = self.groups_loading.get(&partition) else { return false };
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        self.partitions.get(&tp).is_none_or(|p| p.hw() < *ready_at)
    }

    pub(super) fn handle_find_coordinator(&self, req: &FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
        let keys: Vec<String> = if version >= 4 { req.coordinator_keys.iter().map(ToString::to_string).collect() } else { vec![req.key.to_string()] };
        let found: Vec<Coordinator> = keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(StrBytes::from_string(key.clone())).with_node_id(WireBrokerId(-1)).with_host(StrBytes::from_static_str("")).with_port(-1);
                let leader = match req.key_type {
                    0 => {
                        let tp = self.offsets_partition(key);
                        self.metadata.topics.get(OFFSETS_TOPIC).and_then(|ps| ps.get(tp.partition as usize)).and_then(|a| a.leader)
                    }
                    1 => self.txn_coordinator_of(key),
                    _ => return c.with_error_code(ResponseError::InvalidRequest.code()),
                };
                match leader.and_then(|l| self.metadata.brokers.get(&l).map(|a| (l, a))) {
                    Some((l, a)) => c.with_node_id(WireBrokerId(l.0)).with_host(StrBytes::from_string(a.host.clone())).with_port(i32::from(a.port)),
                    None => c.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                }
            })
            .collect();
        if version >= 4 {
            return FindCoordinatorResponse::default().with_coordinators(found);
        }
        let c = found.into_iter().next().unwrap_or_default();
        let mut r = FindCoordinatorResponse::default().with_error_code(c.error_code).with_node_id(c.node_id).with_host(c.host).with_port(c.port);
        if version >= 1 {
            r = r.with_error_message(None);
        }
        r
    }

    pub(super) fn handle_join_group(&mut self, now_ms: u64, ctx: RequestCtx, req: JoinGroupRequest, client_id: String) -> Handled {
        if let Some(e) = self.group_coordinator_check(req.group_id.as_str()) {
            let resp = JoinGroupResponse::default().with_error_code(e.code()).with_generation_id(-1);
            return reply(ctx, ResponseKind::JoinGroup(resp));
        }
        let token = self.purgatory.reserve();
        let wait = u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms)).unwrap_or(0);
        let client = ClientInfo { client_id, client_host: String::new() };
        let answer = self.groups.join_group_from(now_ms, token, &req, ctx.version, &client);
        self.drain_groups(now_ms);
        match answer {
            Reply::Now(resp) => reply(ctx, ResponseKind::JoinGroup(resp)),
            Reply::Later => self.park_reserved(now_ms, ctx, token, now_ms + wait + GROUP_PARK_SLACK_MS, ParkedOp::Group),
        }
    }

    pub(super) fn handle_sync_group(&mut self, now_ms: u64, ctx: RequestCtx, req: SyncGroupRequest) -> Handled {
        if let Some(e) = self.group_coordinator_check(req.group_id.as_str()) {
            return reply(ctx, ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(e.code())));
        }
        let token = self.purgatory.reserve();
        let answer = self.groups.sync_group(now_ms, token, &req, ctx.version);
        self.drain_groups(now_ms);
        match answer {
            Reply::Now(resp) => reply(ctx, ResponseKind::SyncGroup(resp)),
            // The coordinator removes members that do not sync within the rebalance timeout,
            // which answers this request; the broker's own deadline is only a backstop.
            Reply::Later => self.park_reserved(now_ms, ctx, token, now_ms + 30 * 60_000, ParkedOp::Group),
        }
    }

    pub(super) fn handle_heartbeat(&mut self, now_ms: u64, req: &HeartbeatRequest) -> ResponseKind {
        let resp = match self.group_coordinator_check(req.group_id.as_str()) {
            Some(e) => kafka_protocol::messages::HeartbeatResponse::default().with_error_code(e.code()),
            None => self.groups.heartbeat(now_ms, req),
        };
        self.drain_groups(now_ms);
        ResponseKind::Heartbeat(resp)
    }

    pub(super) fn handle_leave_group(&mut self, now_ms: u64, req: &LeaveGroupRequest, version: i16) -> ResponseKind {
        let resp = match self.group_coordinator_check(req.group_id.as_str()) {
            Some(e) => kafka_protocol::messages::LeaveGroupResponse::default().with_error_code(e.code()),
            None => self.groups.leave_group(now_ms, req, version),
        };
        self.drain_groups(now_ms);
        ResponseKind::LeaveGroup(resp)
    }

    /// A parked join or sync: answered once the coordinator has its response.
    pub(super) fn try_complete_group(&mut self, token: u64, api: kafka_protocol::messages::ApiKey, expired: bool) -> Option<ResponseKind> {
        if let Some(answer) = self.group_answers.remove(&token) {
            return Some(answer);
        }
        if !expired {
            return None;
        }
        let code = ResponseError::RebalanceInProgress.code();
        Some(match api {
            kafka_protocol::messages::ApiKey::JoinGroup => ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(code).with_generation_id(-1)),
            _ => ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code)),
        })
    }

    /// Moves the coordinator's finished answers to where parked requests look, and appends its
    /// group metadata records (best effort: a lost one only costs members a rejoin).
    pub(super) fn drain_groups(&mut self, now_ms: u64) {
        for ready in self.groups.take_ready() {
            match ready {
                Ready::Join { token, response } => self.group_answers.insert(token, ResponseKind::JoinGroup(response)),
                Ready::Sync { token, response } => self.group_answers.insert(token, ResponseKind::SyncGroup(response)),
            };
        }
        for (partition, key, value) in self.groups.take_records() {
            let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
            if let Err(e) = self.append_group_records(now_ms, &tp, &[(key, value)]) {
                self.trace.emit(|| format!("group-metadata-append-failed {tp} {e:?}"));
            }
        }
    }

    /// Appends records to an offsets partition this broker leads; the offset the high watermark
    /// must pass for them to be committed.
    fn append_group_records(&mut self, now_ms: u64, tp: &TopicPartition, records: &[(Bytes, Option<Bytes>)]) -> Result<i64, ResponseError> {
        let min_isr = self.config.min_insync_replicas;
        let Some(p) = self.partitions.get_mut(tp) else { return Err(ResponseError::NotCoordinator) };
        let Role::Leader(state) = &p.role else { return Err(ResponseError::NotCoordinator) };
        if state.isr.len() < min_isr.min(p.replicas.len()) {
            // Kafka maps NOT_ENOUGH_REPLICAS on the offsets topic to COORDINATOR_NOT_AVAILABLE.
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let epoch = p.leader_epoch;
        let info = match p.log.append_as_leader(&encode_records(records), epoch) {
            Ok(info) => info,
            Err(LogError::Batch { .. } | LogError::InvalidRecord(_)) => return Err(ResponseError::InvalidCommitOffsetSize),
            Err(_) => return Err(ResponseError::NotCoordinator),
        };
        self.trace.emit(|| format!("append {tp} {}..={} (group records)", info.first_offset, info.last_offset));
        self.maybe_advance_hw(now_ms, tp);
        Ok(info.last_offset + 1)
    }

    pub(super) fn handle_offset_commit(&mut self, now_ms: u64, ctx: RequestCtx, req: OffsetCommitRequest) -> Handled {
        let group = req.group_id.to_string();
        let offsets = commit_offsets(req.topics.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| (t.name.as_str(), p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref()))
        }));
        let check = match self.group_coordinator_check(&group) {
            Some(e) => Err(e),
            None => self.groups.validate_offset_commit(now_ms, &group, req.member_id.as_str(), req.generation_id_or_member_epoch),
        };
        let tp = self.offsets_partition(&group);
        let check = check.and_then(|()| match offsets.iter().find_map(|(_, _, _, m)| self.groups.check_offset_metadata(m)) {
            Some(e) => Err(e),
            None => Ok(()),
        });
        let stored = check.and_then(|()| {
            let records = self.groups.offset_commit_records(&group, i64::try_from(now_ms).unwrap_or(i64::MAX), &offsets);
            self.append_group_records(now_ms, &tp, &records)
        });
        self.drain_groups(now_ms);
        let response = commit_response(&offsets, stored.as_ref().err().copied());
        match stored {
            Err(_) => reply(ctx, ResponseKind::OffsetCommit(response)),
            Ok(required) => {
                let timeout = 5_000; // offsets.commit.timeout.ms
                let op = ParkedCommit { tp, required, group, offsets, response, txn_producer: None };
                self.park(now_ms, ctx, now_ms + timeout, ParkedOp::OffsetCommit(op))
            }
        }
    }

    /// A parked commit: final once the high watermark passed its records (the offsets become
    /// visible), the partition's leadership moved, or the commit timed out.
    pub(super) fn try_complete_commit(&mut self, pc: &mut ParkedCommit, expired: bool) -> Option<OffsetCommitResponse> {
        let outcome = match self.partitions.get(&pc.tp).map(|p| &p.role) {
            Some(Role::Leader(s)) if s.hw >= pc.required => None,
            Some(Role::Leader(_)) if !expired => return None,
            // Kafka answers a commit whose append timed out with COORDINATOR_NOT_AVAILABLE:
            // the client retries, and the offsets may or may not have been stored.
            Some(Role::Leader(_)) => Some(ResponseError::CoordinatorNotAvailable),
            _ => Some(ResponseError::NotCoordinator),
        };
        match outcome {
            None => {
                match pc.txn_producer {
                    Some(pid) => self.groups.txn_offsets_pending(&pc.group, pid, &pc.offsets),
                    None => {
                        self.groups.offsets_committed(&pc.group, &pc.offsets);
                        self.trace.emit(|| format!("offsets-committed {} {}", pc.group, describe_offsets(&pc.offsets)));
                    }
                }
                Some(std::mem::take(&mut pc.response))
            }
            Some(e) => Some(commit_response(&pc.offsets, Some(e))),
        }
    }

    pub(super) fn handle_offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let group = req.group_id.as_str();
        let wanted: Option<Vec<TopicPartition>> =
            req.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|p| TopicPartition::new(t.name.as_str(), *p))).collect());
        let found = match self.group_coordinator_check(group) {
            Some(e) => Err(e),
            None => self.groups.fetch_offsets(group, wanted.as_deref()),
        };
        let offsets = match found {
            Ok(o) => o,
            Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
        };
        let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
        for (tp, offset, epoch, metadata) in offsets {
            // KIP-447: a consumer asking for stable offsets waits while a transaction that
            // commits offsets for the partition is undecided.
            let unstable = req.require_stable && self.groups.has_pending_txn_offset(group, &tp);
            let p = OffsetFetchResponsePartition::default()
                .with_error_code(if unstable { ResponseError::UnstableOffsetCommit.code() } else { 0 })
                .with_partition_index(tp.partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(StrBytes::from_string(metadata)));
            match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(OffsetFetchResponseTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![p])),
            }
        }
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// This broker now leads `tp`: if it is an offsets partition, its groups are served here
    /// from what its log holds (the new leader's log is the truth followers truncate to).
    pub(super) fn load_groups(&mut self, now_ms: u64, tp: &TopicPartition) {
        if tp.topic != OFFSETS_TOPIC {
            return;
        }
        let Some(p) = self.partitions.get(tp) else { return };
        let (records, undecided) = super::txn::read_keyed_records(p, &self.trace);
        let end = p.leo();
        self.groups.load(now_ms, tp.partition, records);
        for (pid, records) in undecided {
            // TxnOffsetCommits whose transaction has no marker yet: pending again, so that the
            // marker, when it comes, commits or drops them (KIP-447 keeps them unstable).
            self.groups.restore_txn_offsets(tp.partition, pid, &records);
        }
        if p.hw() < end {
            self.groups_loading.insert(tp.partition, end);
            self.trace.emit(|| format!("groups-loading {tp} until hw reaches {end}"));
        }
        self.drain_groups(now_ms);
    }

    pub(super) fn unload_groups(&mut self, tp: &TopicPartition) {
        if tp.topic == OFFSETS_TOPIC {
            self.groups_loading.remove(&tp.partition);
        }
        if tp.topic == OFFSETS_TOPIC && self.groups.is_loaded(tp.partition) {
            self.groups.unload(tp.partition);
            self.trace.emit(|| format!("groups-unloaded {tp}"));
        }
    }
}

/// The offsets of an OffsetCommit or TxnOffsetCommit: (topic, partition, offset, leader
/// epoch, metadata) per partition.
pub(super) fn commit_offsets<'a>(parts: impl Iterator<Item = (&'a str, i32, i64, i32, Option<&'a StrBytes>)>) -> Vec<CommitOffset> {
    parts.map(|(topic, partition, offset, epoch, metadata)| (TopicPartition::new(topic, partition), offset, epoch, metadata.map(ToString::to_string).unwrap_or_default())).collect()
}

pub(super) fn commit_response(offsets: &[CommitOffset], error: Option<ResponseError>) -> OffsetCommitResponse {
    let code = error.map_or(0, |e| e.code());
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (tp, ..) in offsets {
        let p = OffsetCommitResponsePartition::default().with_partition_index(tp.partition).with_error_code(code);
        match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(OffsetCommitResponseTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![p])),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

fn describe_offsets(offsets: &[CommitOffset]) -> String {
    offsets.iter().map(|(tp, o, ..)| format!("{tp}={o}")).collect::<Vec<_>>().join(",")
}

/// One uncompressed v2 batch of keyed records, as the coordinator writes them.
fn encode_records(records: &[(Bytes, Option<Bytes>)]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: Some(key.clone()),
            value: value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    crate::protocol::encode_batch_v2(&records)
}
