//! White-box invariants over read-only snapshots of node state (DESIGN.md §6), checked after
//! every simulation step: one leader per partition epoch (`multiple-leaders`), leader epochs
//! never go back on a node (`epoch-regression`), a leader's high watermark never goes back
//! within its epoch (`hw-regression`); and, once a run ends, replicas agree on every batch
//! below the high watermark (`divergent-replicas`). Checkers observe; they never act.
//!
//! A restarted process legitimately starts from nothing, so per-node memory is kept per
//! incarnation: the world counts starts, and a new start forgets the old one's history.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use stormlog::broker::{PartitionSnapshot, OFFSETS_TOPIC};
use stormlog::group::GroupSnapshot;
use stormlog::log::{split_batches, Log, LogConfig};
use stormlog::seam::{MemStorage, Storage};

use crate::checkers::index::Tp;
use crate::checkers::Anomaly;

type Key = (String, String, i32); // (node, topic, partition)

#[derive(Default)]
pub struct Invariants {
    incarnation: BTreeMap<String, u64>,
    epoch: BTreeMap<Key, i32>,
    /// (node, tp) -> (epoch, hw) of the last time it led.
    leader_hw: BTreeMap<Key, (i32, i64)>,
    /// (topic, partition, epoch) -> the first node seen leading it.
    leaders: BTreeMap<(String, i32, i32), String>,
    reported: BTreeSet<(String, String, i32, i32)>,
    /// (group, topic, partition) -> (highest committed offset a coordinator showed, where).
    committed: BTreeMap<(String, String, i32), (i64, String)>,
    /// (topic, partition) -> (the leader's LSO while below its HW, since when): how long the
    /// last stable offset has not moved.
    lso_since: BTreeMap<(String, i32), (i64, u64)>,
    /// (topic, partition) -> every rise of the highest last stable offset any leader showed,
    /// as (time, LSO): when each offset became readable with read_committed.
    lso_rises: BTreeMap<(String, i32), Vec<(u64, i64)>>,
    pub anomalies: Vec<Anomaly>,
}

fn tp_of(s: &PartitionSnapshot) -> Tp {
    Tp { topic: s.tp.topic.clone(), partition: s.tp.partition }
}

impl Invariants {
    /// Looks at every node's latest snapshots; `incarnation(node)` counts its starts.
    pub fn observe(&mut self, now_ms: u64, snapshots: &BTreeMap<String, Vec<PartitionSnapshot>>, incarnation: impl Fn(&str) -> u64) {
        for (node, snaps) in snapshots {
            let inc = incarnation(node);
            if self.incarnation.insert(node.clone(), inc) != Some(inc) {
                self.forget(node);
            }
            for s in snaps {
                self.check_epoch(now_ms, node, s);
                if s.is_leader {
                    self.check_single_leader(now_ms, node, s);
                    self.check_hw(now_ms, node, s);
                    self.track_lso(now_ms, s);
                }
            }
        }
    }

    fn track_lso(&mut self, now_ms: u64, s: &PartitionSnapshot) {
        let key = (s.tp.topic.clone(), s.tp.partition);
        let rises = self.lso_rises.entry(key.clone()).or_default();
        if rises.last().is_none_or(|(_, lso)| s.lso > *lso) {
            rises.push((now_ms, s.lso));
        }
        if s.lso >= s.hw {
            self.lso_since.remove(&key);
            return;
        }
        match self.lso_since.get(&key) {
            Some((lso, _)) if *lso == s.lso => {}
            _ => {
                self.lso_since.insert(key, (s.lso, now_ms));
            }
        }
    }

    /// When the record at `offset` became readable with read_committed: the first time a
    /// leader's last stable offset passed it.
    fn readable_at(&self, tp: &Tp, offset: i64) -> Option<u64> {
        let rises = self.lso_rises.get(&(tp.topic.clone(), tp.partition))?;
        rises.iter().find(|(_, lso)| *lso > offset).map(|(t, _)| *t)
    }

    /// `fractured-visibility` (opt-in): a committed transaction that became readable on its
    /// partitions at different times, so that a read_committed reader could, in between, see
    /// it on one partition and not on another. Kafka promises atomicity, not a cross-partition
    /// snapshot: each partition's marker lands on its own (KAFKA.md matrix row 16).
    pub fn check_visibility(&self, idx: &crate::checkers::index::HistoryIndex) -> Vec<Anomaly> {
        use crate::checkers::index::SendOutcome;
        let mut out = Vec::new();
        for t in idx.txns.iter().filter(|t| t.kind == crate::history::OpKind::Ok && t.value.commit) {
            // The transaction's last record on each partition.
            let mut last: BTreeMap<Tp, i64> = BTreeMap::new();
            for v in &t.value.values {
                if let Some((tp, o)) = idx.sends_of(v).find(|s| s.outcome == SendOutcome::Ok).and_then(|s| s.ack.clone()) {
                    let e = last.entry(tp).or_insert(o);
                    *e = (*e).max(o);
                }
            }
            let seen: Vec<(Tp, u64)> = last.iter().filter_map(|(tp, o)| Some((tp.clone(), self.readable_at(tp, *o)?))).collect();
            if seen.len() < 2 || seen.len() < last.len() {
                continue;
            }
            let (first_tp, first) = seen.iter().min_by_key(|(_, t)| *t).cloned().expect("two or more");
            let (last_tp, latest) = seen.iter().max_by_key(|(_, t)| *t).cloned().expect("two or more");
            if latest == first {
                continue;
            }
            out.push(
                Anomaly::new("fractured-visibility", first, &last_tp)
                    .with_nodes([t.process.as_str()])
                    .with_offsets(vec![last[&last_tp]])
                    .explained(format!(
                        "transaction {} of {} (its commit acknowledged at {} ms) became readable with read_committed on {first_tp} at {first} ms but on {last_tp} only at {latest} ms: for {} ms a reader could see part of it",
                        t.value.txn,
                        t.value.transactional_id,
                        t.time_ms,
                        latest - first
                    )),
            );
        }
        out
    }

    /// Liveness at the end of the heal phase (`stuck-lso`): a partition whose last stable
    /// offset stayed below its high watermark, unmoved, for longer than `limit_ms` (the longest
    /// transaction timeout plus the coordinator's abort interval: by then every open
    /// transaction must have been committed or aborted).
    pub fn check_lso(&self, now_ms: u64, snapshots: &BTreeMap<String, Vec<PartitionSnapshot>>, limit_ms: u64) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (node, snaps) in snapshots {
            for s in snaps.iter().filter(|s| s.is_leader && s.lso < s.hw && !s.tp.topic.starts_with("__")) {
                let Some((lso, since)) = self.lso_since.get(&(s.tp.topic.clone(), s.tp.partition)) else { continue };
                if *lso == s.lso && now_ms.saturating_sub(*since) > limit_ms {
                    out.push(
                        Anomaly::new("stuck-lso", now_ms, &tp_of(s))
                            .with_nodes([node.as_str()])
                            .with_offsets(vec![s.lso])
                            .explained(format!(
                                "{} last stable offset stayed at {} (high watermark {}) from {since} ms to the end of the heal phase at {now_ms} ms: a transaction open since then was never committed or aborted, so read_committed consumers stall there",
                                s.tp, s.lso, s.hw
                            )),
                    );
                }
            }
        }
        out
    }

    /// `committed-offset-regression`: a group's committed offset, as its current coordinator
    /// shows it, must never go below what a coordinator showed before (a failover that replays
    /// less than was acknowledged, or a late commit overwriting a newer one).
    pub fn observe_groups(&mut self, now_ms: u64, views: &[(String, GroupSnapshot)]) {
        for (node, g) in views {
            for (tp, offset) in &g.offsets {
                let key = (g.group.clone(), tp.topic.clone(), tp.partition);
                match self.committed.get(&key) {
                    Some((max, seen_on)) if offset < max => {
                        let (max, seen_on) = (*max, seen_on.clone());
                        let a = Anomaly::new("committed-offset-regression", now_ms, &Tp { topic: tp.topic.clone(), partition: tp.partition })
                            .with_nodes([node.as_str()])
                            .explained(format!(
                                "group {} committed offset for {tp} is {offset} on coordinator {node}, below {max} shown earlier by {seen_on}",
                                g.group
                            ));
                        let kind = format!("committed-offset-regression/{}", g.group);
                        self.report(&kind, (tp.topic.clone(), tp.partition, i32::try_from(*offset).unwrap_or(i32::MAX)), a);
                    }
                    Some((max, _)) if offset == max => {}
                    _ => {
                        self.committed.insert(key, (*offset, node.clone()));
                    }
                }
            }
        }
    }

    fn forget(&mut self, node: &str) {
        self.epoch.retain(|(n, _, _), _| n != node);
        self.leader_hw.retain(|(n, _, _), _| n != node);
    }

    fn report(&mut self, kind: &str, key: (String, i32, i32), a: Anomaly) {
        if self.reported.insert((kind.to_string(), key.0, key.1, key.2)) {
            self.anomalies.push(a);
        }
    }

    fn check_epoch(&mut self, now_ms: u64, node: &str, s: &PartitionSnapshot) {
        let key = (node.to_string(), s.tp.topic.clone(), s.tp.partition);
        let before = self.epoch.insert(key, s.leader_epoch);
        if let Some(before) = before.filter(|b| *b > s.leader_epoch) {
            let a = Anomaly::new("epoch-regression", now_ms, &tp_of(s))
                .with_nodes([node])
                .explained(format!("{node} went back from leader epoch {before} to {} for {} without restarting", s.leader_epoch, s.tp));
            self.report("epoch-regression", (s.tp.topic.clone(), s.tp.partition, s.leader_epoch), a);
        }
    }

    fn check_single_leader(&mut self, now_ms: u64, node: &str, s: &PartitionSnapshot) {
        let key = (s.tp.topic.clone(), s.tp.partition, s.leader_epoch);
        let first = self.leaders.entry(key.clone()).or_insert_with(|| node.to_string()).clone();
        if first != node {
            let a = Anomaly::new("multiple-leaders", now_ms, &tp_of(s))
                .with_nodes([first.as_str(), node])
                .explained(format!("{first} and {node} both led {} in leader epoch {}", s.tp, s.leader_epoch));
            self.report("multiple-leaders", key, a);
        }
    }

    fn check_hw(&mut self, now_ms: u64, node: &str, s: &PartitionSnapshot) {
        let key = (node.to_string(), s.tp.topic.clone(), s.tp.partition);
        let before = self.leader_hw.insert(key, (s.leader_epoch, s.hw));
        if let Some((epoch, hw)) = before.filter(|(e, h)| *e == s.leader_epoch && *h > s.hw) {
            let a = Anomaly::new("hw-regression", now_ms, &tp_of(s))
                .with_nodes([node])
                .with_offsets(vec![hw, s.hw])
                .explained(format!("{node}'s high watermark for {} went back from {hw} to {} in leader epoch {epoch}", s.tp, s.hw));
            self.report("hw-regression", (s.tp.topic.clone(), s.tp.partition, epoch), a);
        }
    }
}

/// Liveness at the end of the heal phase: every partition has a leader (`no-leader`).
pub fn check_leaders(now_ms: u64, snapshots: &BTreeMap<String, Vec<PartitionSnapshot>>, partitions: &[(String, i32)]) -> Vec<Anomaly> {
    partitions
        .iter()
        .filter(|(t, p)| !snapshots.values().flatten().any(|s| s.is_leader && s.tp.topic == *t && s.tp.partition == *p))
        .map(|(t, p)| {
            Anomaly::new("no-leader", now_ms, &Tp { topic: t.clone(), partition: *p })
                .explained(format!("{t}/{p} had no leader at the end of the heal phase, with every fault healed"))
        })
        .collect()
}

/// Liveness at the end of the heal phase: every consumer group is Stable at its current
/// coordinator with every consumer instance of the group as a member (`group-unstable`).
pub fn check_groups(now_ms: u64, views: &[(String, GroupSnapshot)], expected: &BTreeMap<String, usize>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (group, members) in expected {
        let view = views.iter().find(|(_, g)| &g.group == group);
        let problem = match view {
            None => Some("no broker coordinates it".to_string()),
            Some((node, g)) if g.state != "Stable" || g.members.len() != *members => Some(format!(
                "its coordinator {node} has it {} in generation {} with {} of its {members} consumers as members",
                g.state,
                g.generation,
                g.members.len()
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let nodes: Vec<&str> = view.map(|(n, _)| n.as_str()).into_iter().collect();
            out.push(
                Anomaly::new("group-unstable", now_ms, &Tp { topic: OFFSETS_TOPIC.to_string(), partition: view.map_or(-1, |(_, g)| g.partition) })
                    .with_nodes(nodes)
                    .explained(format!("group {group} was not stable at the end of the heal phase, with every fault healed: {problem}")),
            );
        }
    }
    out
}

/// The batches of a replica's log as (base offset, last offset, CRC), read from its disk.
fn batch_digests(disk: &MemStorage, topic: &str, partition: i32, upto: i64) -> Vec<(i64, i64, u32)> {
    let storage: Rc<dyn Storage> = Rc::new(disk.clone());
    let Ok(log) = Log::open(storage, &format!("{topic}-{partition}"), LogConfig::default()) else { return Vec::new() };
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < upto.min(log.log_end_offset()) {
        let Ok(read) = log.read(offset, 1 << 20) else { break };
        let Ok(batches) = split_batches(&read.bytes) else { break };
        let Some(last) = batches.last().map(|(h, _)| h.last_offset()) else { break };
        out.extend(batches.iter().filter(|(h, _)| h.last_offset() < upto).map(|(h, _)| (h.base_offset, h.last_offset(), h.crc)));
        offset = last + 1;
    }
    out
}

/// At the end of a run: every replica of a partition holds the leader's batches below the
/// leader's high watermark (as far as its own log reaches). `unclean` names the partitions
/// that had an unclean election, which Kafka allows to diverge; the report says so.
pub fn check_divergence(
    now_ms: u64,
    snapshots: &BTreeMap<String, Vec<PartitionSnapshot>>,
    disks: &BTreeMap<String, MemStorage>,
    unclean: &BTreeSet<(String, i32)>,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (leader, snaps) in snapshots {
        for s in snaps.iter().filter(|s| s.is_leader) {
            let Some(disk) = disks.get(leader) else { continue };
            let reference = batch_digests(disk, &s.tp.topic, s.tp.partition, s.hw);
            for (node, other) in snapshots.iter().filter(|(n, _)| *n != leader) {
                let Some(f) = other.iter().find(|p| p.tp == s.tp) else { continue };
                let Some(fdisk) = disks.get(node) else { continue };
                let theirs = batch_digests(fdisk, &s.tp.topic, s.tp.partition, s.hw.min(f.leo));
                if let Some(at) = reference.iter().zip(theirs.iter()).position(|(a, b)| a != b) {
                    let offset = reference[at].0;
                    let why = if unclean.contains(&(s.tp.topic.clone(), s.tp.partition)) { " after an unclean leader election (Kafka allows this)" } else { "" };
                    out.push(
                        Anomaly::new("divergent-replicas", now_ms, &tp_of(s))
                            .with_nodes([leader.as_str(), node.as_str()])
                            .with_offsets(vec![offset])
                            .explained(format!("{leader} (leader, HW {}) and {node} hold different batches at {} offset {offset}{why}", s.hw, s.tp)),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {

    fn group_view(state: &'static str, members: usize) -> (String, GroupSnapshot) {
        let g = GroupSnapshot {
            group: "g".into(),
            partition: 7,
            state,
            generation: 3,
            members: (0..members).map(|m| format!("c-{m}")).collect(),
            offsets: Vec::new(),
            leader: None,
            protocol: None,
        };
        ("broker-1".to_string(), g)
    }

    #[test]
    fn a_group_must_end_stable_with_every_consumer() {
        let expected: BTreeMap<String, usize> = [("g".to_string(), 2)].into_iter().collect();
        assert!(check_groups(9, &[group_view("Stable", 2)], &expected).is_empty());
        for views in [vec![group_view("PreparingRebalance", 2)], vec![group_view("Stable", 1)], vec![]] {
            let found = check_groups(9, &views, &expected);
            assert_eq!(found.len(), 1, "{views:?}");
            assert_eq!(found[0].kind, "group-unstable");
        }
    }

    #[test]
    fn committed_offsets_going_back_at_the_coordinator_are_a_regression() {
        let mut inv = Invariants::default();
        let tp = stormlog::ids::TopicPartition::new("t", 0);
        let mut view = group_view("Stable", 1);
        view.1.offsets = vec![(tp.clone(), 10)];
        inv.observe_groups(1, std::slice::from_ref(&view));
        view.1.offsets = vec![(tp.clone(), 12)];
        inv.observe_groups(2, std::slice::from_ref(&view));
        assert!(inv.anomalies.is_empty());
        view.1.offsets = vec![(tp, 11)];
        inv.observe_groups(3, std::slice::from_ref(&view));
        assert_eq!(inv.anomalies.len(), 1);
        assert_eq!(inv.anomalies[0].kind, "committed-offset-regression");
    }
    use super::*;
    use stormlog::ids::{BrokerId, TopicPartition};
    use stormlog::log::build_test_batch;

    fn snap(leader: bool, epoch: i32, hw: i64) -> PartitionSnapshot {
        PartitionSnapshot { tp: TopicPartition::new("t", 0), is_leader: leader, leader_epoch: epoch, leo: hw, hw, lso: hw, isr: vec![BrokerId(0)] }
    }

    fn world(entries: &[(&str, PartitionSnapshot)]) -> BTreeMap<String, Vec<PartitionSnapshot>> {
        entries.iter().map(|(n, s)| (n.to_string(), vec![s.clone()])).collect()
    }

    fn kinds(inv: &Invariants) -> Vec<&str> {
        inv.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_transaction_readable_on_its_partitions_at_different_times_is_fractured() {
        use crate::checkers::index::HistoryIndex;
        use crate::history::{OpFn, OpKind, OpValue, TxnValue};
        let mut r = crate::testkit::Run::new();
        let a = r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 1, 0);
        let c = r.send_ok("p-0", 2, 0, 1);
        let d = r.send_ok("p-0", 3, 1, 1);
        for (txn, values) in [(0, vec![a, b]), (1, vec![c, d])] {
            let value = TxnValue { transactional_id: "p-0".into(), txn, commit: true, values };
            let id = r.history.invoke(5, "p-0", OpFn::Txn, OpValue::Txn(value.clone()));
            r.history.complete(id, 6, OpKind::Ok, OpValue::Txn(value), None);
        }
        let leading = |p: i32, lso: i64| PartitionSnapshot { tp: TopicPartition::new("orders", p), is_leader: true, leader_epoch: 0, leo: 2, hw: lso, lso, isr: vec![BrokerId(0)] };
        let at = |p0: i64, p1: i64| -> BTreeMap<String, Vec<PartitionSnapshot>> { [("broker-0".to_string(), vec![leading(0, p0), leading(1, p1)])].into_iter().collect() };
        let mut inv = Invariants::default();
        inv.observe(10, &at(0, 0), |_| 1);
        // Transaction 0 becomes readable on orders/0 at 11 ms and on orders/1 at 15 ms;
        // transaction 1 on both at 20 ms.
        inv.observe(11, &at(1, 0), |_| 1);
        inv.observe(15, &at(1, 1), |_| 1);
        inv.observe(20, &at(2, 2), |_| 1);
        let found = inv.check_visibility(&HistoryIndex::build(&r.history));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind.as_str(), found[0].time_ms, found[0].partition), ("fractured-visibility", 11, 1));
        assert!(found[0].explanation.contains("on orders/0 at 11 ms but on orders/1 only at 15 ms: for 4 ms"), "{}", found[0].explanation);
    }

    #[test]
    fn two_leaders_in_one_epoch_are_reported_once() {
        let mut inv = Invariants::default();
        inv.observe(1, &world(&[("broker-0", snap(true, 3, 0)), ("broker-1", snap(true, 3, 0))]), |_| 1);
        inv.observe(2, &world(&[("broker-0", snap(true, 3, 0)), ("broker-1", snap(true, 3, 0))]), |_| 1);
        assert_eq!(kinds(&inv), ["multiple-leaders"]);
    }

    #[test]
    fn leaders_in_different_epochs_are_fine() {
        let mut inv = Invariants::default();
        inv.observe(1, &world(&[("broker-0", snap(true, 3, 0)), ("broker-1", snap(false, 3, 0))]), |_| 1);
        inv.observe(2, &world(&[("broker-0", snap(true, 3, 0)), ("broker-1", snap(true, 4, 0))]), |_| 1);
        assert!(inv.anomalies.is_empty(), "{:?}", inv.anomalies);
    }

    #[test]
    fn an_epoch_going_back_is_a_regression_unless_the_node_restarted() {
        let mut inv = Invariants::default();
        inv.observe(1, &world(&[("broker-0", snap(false, 5, 0))]), |_| 1);
        inv.observe(2, &world(&[("broker-0", snap(false, 2, 0))]), |_| 2);
        assert!(inv.anomalies.is_empty(), "a restart starts over: {:?}", inv.anomalies);
        inv.observe(3, &world(&[("broker-0", snap(false, 1, 0))]), |_| 2);
        assert_eq!(kinds(&inv), ["epoch-regression"]);
    }

    #[test]
    fn a_leader_hw_going_back_within_its_epoch_is_a_regression() {
        let mut inv = Invariants::default();
        inv.observe(1, &world(&[("broker-0", snap(true, 2, 10))]), |_| 1);
        inv.observe(2, &world(&[("broker-0", snap(true, 3, 4))]), |_| 1);
        assert!(inv.anomalies.is_empty(), "a new epoch may start lower: {:?}", inv.anomalies);
        inv.observe(3, &world(&[("broker-0", snap(true, 3, 3))]), |_| 1);
        assert_eq!(kinds(&inv), ["hw-regression"]);
        assert_eq!(inv.anomalies[0].offsets, vec![4, 3]);
    }

    fn disk_with(values: &[&[u8]]) -> MemStorage {
        let disk = MemStorage::new();
        let mut log = Log::open(Rc::new(disk.clone()), "t-0", LogConfig::default()).unwrap();
        for v in values {
            log.append_as_leader(&build_test_batch(0, &[v]), 0).unwrap();
        }
        disk
    }

    #[test]
    fn replicas_that_differ_below_the_hw_are_divergent() {
        let snaps = world(&[("broker-0", snap(true, 1, 3)), ("broker-1", snap(false, 1, 3))]);
        let same: BTreeMap<String, MemStorage> = [("broker-0", disk_with(&[b"a", b"b", b"c"])), ("broker-1", disk_with(&[b"a", b"b", b"c"]))].into_iter().map(|(n, d)| (n.to_string(), d)).collect();
        assert!(check_divergence(9, &snaps, &same, &BTreeSet::new()).is_empty());
        let apart: BTreeMap<String, MemStorage> = [("broker-0", disk_with(&[b"a", b"b", b"c"])), ("broker-1", disk_with(&[b"a", b"x", b"c"]))].into_iter().map(|(n, d)| (n.to_string(), d)).collect();
        let found = check_divergence(9, &snaps, &apart, &BTreeSet::from([("t".to_string(), 0)]));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind.as_str(), found[0].offsets.clone()), ("divergent-replicas", vec![1]));
        assert!(found[0].explanation.contains("unclean"), "{}", found[0].explanation);
    }

    #[test]
    fn a_partition_nobody_leads_after_heal_is_reported() {
        let snaps = world(&[("broker-0", snap(true, 1, 0)), ("broker-1", snap(false, 1, 0))]);
        assert!(check_leaders(5, &snaps, &[("t".to_string(), 0)]).is_empty());
        let found = check_leaders(5, &snaps, &[("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind.as_str(), found[0].partition), ("no-leader", 1));
    }

    #[test]
    fn an_lso_that_does_not_move_below_the_hw_past_the_limit_is_stuck() {
        let mut inv = Invariants::default();
        let mut s = snap(true, 1, 10);
        s.lso = 4;
        let snaps = |s: &PartitionSnapshot| BTreeMap::from([("broker-0".to_string(), vec![s.clone()])]);
        inv.observe(1_000, &snaps(&s), |_| 0);
        inv.observe(20_000, &snaps(&s), |_| 0);
        assert!(inv.check_lso(20_000, &snaps(&s), 30_000).is_empty(), "within the limit");
        let stuck = inv.check_lso(40_000, &snaps(&s), 30_000);
        assert_eq!((stuck.len(), stuck[0].kind.as_str()), (1, "stuck-lso"));
        s.lso = 6; // it moved: the clock starts again
        inv.observe(41_000, &snaps(&s), |_| 0);
        assert!(inv.check_lso(60_000, &snaps(&s), 30_000).is_empty());
    }
}
