//! Taking over and giving up an offsets partition. Loading replays the partition's log the way
//! compaction would leave it (last record per key wins, tombstones delete), so a new
//! coordinator serves the groups and offsets its predecessor wrote.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;

use super::coordinator::{partition_for, GroupCoordinator, Ready};
use super::classic::{ClassicGroup, CommittedOffset, Effects, Member};
use super::records::{GroupMetadataValue, GroupRecord, OffsetValue};
use super::responses::{join_error, sync_error};
use super::state::GroupState;

impl GroupCoordinator {
    /// After `load`: the offset records producer `pid` wrote into a transaction that has no
    /// marker yet go back to waiting for it, as they did at the previous coordinator.
    pub fn restore_txn_offsets(&mut self, partition: i32, pid: i64, records: &[(Bytes, Option<Bytes>)]) {
        let mut by_group: BTreeMap<String, Vec<super::offsets::OffsetEntry>> = BTreeMap::new();
        for (key, value) in records {
            let Ok(GroupRecord::Offset { group, tp, value: Some(v) }) = GroupRecord::decode(key, value.as_deref()) else { continue };
            if partition_for(&group, self.config.offsets_partitions) == partition {
                by_group.entry(group).or_default().push((tp, v.offset, v.leader_epoch, v.metadata));
            }
        }
        for (group, offsets) in by_group {
            self.txn_offsets_pending(&group, pid, &offsets);
        }
    }

    /// This broker became leader of offsets partition `partition`: rebuild its groups and
    /// offsets from every (key, value) of its log, in log order. Groups with members are Stable
    /// at their stored generation, their sessions restarted at `now_ms`; groups without are
    /// Empty. Undecodable records are skipped with a trace line (the log came from disk).
    /// Loading a partition already loaded first unloads it.
    pub fn load(&mut self, now_ms: u64, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) {
        if self.is_loaded(partition) {
            self.unload(partition);
        }
        let mut metadata: BTreeMap<String, Option<GroupMetadataValue>> = BTreeMap::new();
        let mut offsets: BTreeMap<(String, TopicPartition), Option<OffsetValue>> = BTreeMap::new();
        let mut skipped = 0usize;
        for (index, (key, value)) in records.iter().enumerate() {
            let record = match GroupRecord::decode(key, value.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    skipped += 1;
                    self.trace.emit(|| format!("offsets partition {partition} record {index} skipped: {e}"));
                    continue;
                }
            };
            let home = partition_for(record.group(), self.config.offsets_partitions);
            if home != partition {
                skipped += 1;
                let group = record.group();
                self.trace.emit(|| format!("offsets partition {partition} record {index} skipped: group {group} belongs to partition {home}"));
                continue;
            }
            match record {
                GroupRecord::Offset { group, tp, value } => {
                    offsets.insert((group, tp), value);
                }
                GroupRecord::Group { group, value } => {
                    metadata.insert(group, value);
                }
            }
        }
        self.loaded.insert(partition);
        for (group, value) in metadata {
            if let Some(value) = value {
                let g = self.group_from_record(now_ms, partition, group.clone(), value);
                self.groups.insert(group, g);
            }
        }
        for ((group, tp), value) in offsets {
            if let Some(v) = value {
                let committed = CommittedOffset { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata };
                self.group_or_create(now_ms, &group).offsets.insert(tp, committed);
            }
        }
        let groups: Vec<String> = self.groups.values().filter(|g| g.partition == partition).map(loaded_summary).collect();
        let (count, groups) = (records.len(), groups.join(", "));
        self.trace.emit(|| format!("offsets partition {partition} loaded: {count} records, {skipped} skipped, groups [{groups}]"));
        self.assert_invariants();
    }

    /// A group as its last GroupMetadata record left it. A record whose members lack a protocol
    /// or a leader cannot be served as Stable: the group loads Empty at that generation.
    fn group_from_record(&self, now_ms: u64, partition: i32, id: String, v: GroupMetadataValue) -> ClassicGroup {
        let mut g = ClassicGroup::new(id, partition, now_ms);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        let mut ids: Vec<&str> = v.members.iter().map(|m| m.member_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let consistent = ids.len() == v.members.len() && v.protocol.is_some() && g.protocol_type.is_some();
        if v.members.is_empty() || !consistent {
            if !v.members.is_empty() {
                let (id, count) = (&g.id, v.members.len());
                self.trace.emit(|| format!("group {id} record inconsistent (protocol {:?}, {count} members): loaded Empty", v.protocol));
            }
            return g;
        }
        let protocol = v.protocol.expect("checked");
        g.members = v
            .members
            .into_iter()
            .map(|m| Member {
                id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                assignment_generation: v.generation,
                last_seen_ms: now_ms,
                awaiting_join: None,
                awaiting_sync: None,
            })
            .collect();
        let leader_is_member = v.leader.as_deref().is_some_and(|l| g.has_member(l));
        g.leader = if leader_is_member { v.leader } else { g.members.first().map(|m| m.id.clone()) };
        g.protocol = Some(protocol);
        // Loading creates the group in its stored state; it is not a transition.
        g.state = GroupState::Stable;
        g
    }

    /// Leadership of `partition` moved away: its groups are forgotten (Dead), and every parked
    /// join or sync of theirs is answered with NOT_COORDINATOR so the client looks again.
    /// Group records not yet taken for that partition are dropped: this broker can no longer
    /// append them.
    pub fn unload(&mut self, partition: i32) {
        if !self.loaded.remove(&partition) {
            return;
        }
        let ids: Vec<String> = self.groups.values().filter(|g| g.partition == partition).map(|g| g.id.clone()).collect();
        for id in &ids {
            let mut g = self.groups.remove(id).expect("listed above");
            let (config, trace) = (&self.config, &self.trace);
            let mut fx = Effects { now_ms: g.state_since_ms, config, trace, ready: &mut self.ready, records: &mut self.records };
            answer_parked_not_coordinator(&mut g, &mut fx);
            g.transition(&mut fx, GroupState::Dead, &format!("offsets partition {partition} unloaded"));
        }
        self.records.retain(|(p, _, _)| *p != partition);
        let offsets_partitions = self.config.offsets_partitions;
        for by_group in self.txn_offsets.values_mut() {
            by_group.retain(|g, _| super::coordinator::partition_for(g, offsets_partitions) != partition);
        }
        self.txn_offsets.retain(|_, by_group| !by_group.is_empty());
        self.trace.emit(|| format!("offsets partition {partition} unloaded: {} groups", ids.len()));
    }
}

fn answer_parked_not_coordinator(g: &mut ClassicGroup, fx: &mut Effects<'_>) {
    for m in &mut g.members {
        if let Some(p) = m.awaiting_join.take() {
            fx.ready.push(Ready::Join { token: p.token, response: join_error(p.version, &m.id, ResponseError::NotCoordinator) });
        }
        if let Some(p) = m.awaiting_sync.take() {
            fx.ready.push(Ready::Sync { token: p.token, response: sync_error(p.version, ResponseError::NotCoordinator) });
        }
    }
}

fn loaded_summary(g: &ClassicGroup) -> String {
    format!("{} {} gen {} members {} offsets {}", g.id, g.state, g.generation, g.members.len(), g.offsets.len())
}
