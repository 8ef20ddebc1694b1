//! OffsetCommit and OffsetFetch (KAFKA.md §1.12, §1.13). A commit is validated here, appended
//! by the broker as records from `offset_commit_records`, and becomes visible once the append
//! is replicated (`offsets_committed`), as Kafka does with acks=-1 on `__consumer_offsets`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;

use super::coordinator::{GroupCoordinator, STRING_LEN_MAX};
use super::classic::CommittedOffset;
use super::records::{GroupRecord, OffsetValue};
use super::state::GroupState;

/// One partition's commit: (partition, offset, leader epoch, metadata).
pub type OffsetEntry = (TopicPartition, i64, i32, String);

impl GroupCoordinator {
    /// OffsetCommit validation, in Kafka's order (`ClassicGroup.validateOffsetCommit`): an
    /// unknown group takes commits only outside group management (generation < 0, creating an
    /// Empty group); Dead → COORDINATOR_NOT_AVAILABLE; generation < 0 on an Empty group is
    /// accepted; then UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, and REBALANCE_IN_PROGRESS while
    /// CompletingRebalance. PreparingRebalance and Stable accept the current generation, and an
    /// accepted commit from a member refreshes its session.
    pub fn validate_offset_commit(&mut self, now_ms: u64, group: &str, member_id: &str, generation: i32) -> Result<(), ResponseError> {
        // The empty group id is valid for offsets (Kafka keeps it for old clients).
        if group.len() > STRING_LEN_MAX {
            return Err(ResponseError::InvalidGroupId);
        }
        if let Some(e) = self.check_owner(group) {
            return Err(e);
        }
        let Some(state) = self.groups.get(group).map(|g| g.state) else {
            if generation < 0 {
                self.group_or_create(now_ms, group);
                return Ok(());
            }
            // A generation from a group this coordinator does not know: an older life of it.
            return Err(ResponseError::IllegalGeneration);
        };
        if state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation < 0 && state == GroupState::Empty {
            return Ok(());
        }
        self.with_group(now_ms, group, |g, fx| {
            if !g.has_member(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation != g.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            if state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            g.touch(fx.now_ms, member_id);
            Ok(())
        })
        .expect("group exists")
    }

    /// OFFSET_METADATA_TOO_LARGE when `metadata` exceeds `offset.metadata.max.bytes`. Call it
    /// per partition before `offset_commit_records`, whose records cannot hold longer strings.
    pub fn check_offset_metadata(&self, metadata: &str) -> Option<ResponseError> {
        (metadata.len() > self.config.offset_metadata_max_bytes.min(STRING_LEN_MAX)).then_some(ResponseError::OffsetMetadataTooLarge)
    }

    /// The records to append to `partition_of(group)` for a validated commit. Record strings
    /// have i16 lengths: topics must exist (the broker answers UNKNOWN_TOPIC_OR_PARTITION
    /// otherwise, as Kafka does) and metadata must pass `check_offset_metadata`.
    pub fn offset_commit_records(&self, group: &str, commit_timestamp: i64, offsets: &[OffsetEntry]) -> Vec<(Bytes, Option<Bytes>)> {
        offsets
            .iter()
            .map(|(tp, offset, leader_epoch, metadata)| {
                let value = OffsetValue { offset: *offset, leader_epoch: *leader_epoch, metadata: metadata.clone(), commit_timestamp };
                GroupRecord::Offset { group: group.to_string(), tp: tp.clone(), value: Some(value) }.encode()
            })
            .collect()
    }

    /// The append of a commit's records was replicated: fetch_offsets now returns them. Ignored
    /// if the group's partition was unloaded meanwhile; a group deleted meanwhile comes back
    /// Empty to hold them.
    pub fn offsets_committed(&mut self, group: &str, offsets: &[OffsetEntry]) {
        let partition = self.partition_of(group);
        if !self.is_loaded(partition) {
            self.trace.emit(|| format!("group {group} commit of {} offsets dropped: partition {partition} unloaded", offsets.len()));
            return;
        }
        // Creation time only matters to an Empty group's deletion timer, which offsets stop.
        let g = self.group_or_create(0, group);
        for (tp, offset, leader_epoch, metadata) in offsets {
            let committed = CommittedOffset { offset: *offset, leader_epoch: *leader_epoch, metadata: metadata.clone() };
            g.offsets.insert(tp.clone(), committed);
        }
        self.trace.emit(|| {
            let list: Vec<String> = offsets.iter().map(|(tp, o, _, _)| format!("{tp}={o}")).collect();
            format!("group {group} committed {}", list.join(" "))
        });
    }

    /// A TxnOffsetCommit's records were replicated: the offsets wait for producer `pid`'s
    /// transaction to end.
    pub fn txn_offsets_pending(&mut self, group: &str, pid: i64, offsets: &[OffsetEntry]) {
        let pending = self.txn_offsets.entry(pid).or_default().entry(group.to_string()).or_default();
        for (tp, offset, leader_epoch, metadata) in offsets {
            pending.insert(tp.clone(), CommittedOffset { offset: *offset, leader_epoch: *leader_epoch, metadata: metadata.clone() });
        }
        self.trace.emit(|| format!("group {group} txn offsets pending pid={pid} {}", offsets.iter().map(|(tp, o, _, _)| format!("{tp}={o}")).collect::<Vec<_>>().join(" ")));
    }

    /// Producer `pid`'s transaction ended with a marker in offsets partition `partition`
    /// (replicated): its pending offsets for that partition's groups become committed on
    /// COMMIT and are dropped on ABORT.
    pub fn complete_txn_offsets(&mut self, partition: i32, pid: i64, commit: bool) {
        let n = self.config.offsets_partitions;
        let Some(by_group) = self.txn_offsets.get_mut(&pid) else { return };
        let groups: Vec<String> = by_group.keys().filter(|g| super::coordinator::partition_for(g, n) == partition).cloned().collect();
        let mut moved = Vec::new();
        for g in groups {
            let offsets = by_group.remove(&g).unwrap_or_default();
            moved.push((g, offsets));
        }
        if by_group.is_empty() {
            self.txn_offsets.remove(&pid);
        }
        for (group, offsets) in moved {
            let list: Vec<String> = offsets.iter().map(|(tp, c)| format!("{tp}={}", c.offset)).collect();
            self.trace.emit(|| format!("group {group} txn offsets pid={pid} {} {}", if commit { "committed" } else { "aborted" }, list.join(" ")));
            if commit && self.is_loaded(partition) {
                let g = self.group_or_create(0, &group);
                g.offsets.extend(offsets);
            }
        }
    }

    /// Whether `group` has transactional offsets not yet decided for `tp` (an OffsetFetch
    /// asking for stable offsets gets UNSTABLE_OFFSET_COMMIT meanwhile, KIP-447).
    pub fn has_pending_txn_offset(&self, group: &str, tp: &TopicPartition) -> bool {
        self.txn_offsets.values().any(|by_group| by_group.get(group).is_some_and(|o| o.contains_key(tp)))
    }

    /// OffsetFetch: (offset, leader epoch, metadata) per partition; `None` asks for every
    /// partition with a committed offset. A partition without one answers offset -1 (epoch -1,
    /// empty metadata). Loading is synchronous, so COORDINATOR_LOAD_IN_PROGRESS never happens.
    pub fn fetch_offsets(&self, group: &str, tps: Option<&[TopicPartition]>) -> Result<Vec<OffsetEntry>, ResponseError> {
        if let Some(e) = self.check_owner(group) {
            return Err(e);
        }
        let committed = self.groups.get(group).map(|g| &g.offsets);
        let entry = |tp: &TopicPartition, c: Option<&CommittedOffset>| match c {
            Some(c) => (tp.clone(), c.offset, c.leader_epoch, c.metadata.clone()),
            None => (tp.clone(), -1, -1, String::new()),
        };
        Ok(match tps {
            Some(tps) => tps.iter().map(|tp| entry(tp, committed.and_then(|o| o.get(tp)))).collect(),
            None => committed.into_iter().flatten().map(|(tp, c)| entry(tp, Some(c))).collect(),
        })
    }
}
