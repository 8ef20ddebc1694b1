//! `HistoryIndex`: the history digested once into the shapes every checker needs: one record
//! per send with its outcome, and every observed (value, topic-partition, offset) triple, from
//! ok acks and from ok polls, looked up by value and by position. For the consumers: every
//! pair of records of one partition that one consumer process read back to back (`PollPair`),
//! the records ok `process` ops report processed (`Delivery`), and the ok offset commits.
//!
//! Only `ok` polls contribute reads: a poll that failed or timed out delivered nothing the
//! client could act on. Likewise only `ok` process and commit ops count. Observations and
//! deliveries are kept in time order, so "the first observation" of something is the moment
//! it became visible.

use crate::history::{
    CommitValue, History, Op, OpFn, OpKind, OpValue, PollValue, ProcessValue, SendValue,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Bound, RangeBounds};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tp {
    pub topic: String,
    pub partition: i32,
}

impl Tp {
    pub fn new(topic: &str, partition: i32) -> Self {
        Tp {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What the producer was told. A send still open at the end of the history counts as `Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendRecord {
    pub invoke: u64,
    pub process: String,
    pub topic: String,
    pub value: String,
    pub seq: u64,
    pub outcome: SendOutcome,
    /// Position the broker acknowledged; only on `ok` with both partition and offset set.
    pub ack: Option<(Tp, i64)>,
    /// Completion time, or the invoke time while the send is open.
    pub time_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Ack,
    Read,
}

/// "`value` was seen at `tp`@`offset`", by a producer's ack or a consumer's poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub time_ms: u64,
    /// Index of the completion op that carried it.
    pub op: u64,
    pub process: String,
    pub tp: Tp,
    pub offset: i64,
    pub value: String,
    pub source: Source,
}

impl Observation {
    /// "ack to p-0 at 12 ms" / "read by c-1 at 40 ms", for explanations.
    pub fn describe(&self) -> String {
        match self.source {
            Source::Ack => format!("ack to {} at {} ms", self.process, self.time_ms),
            Source::Read => format!("read by {} at {} ms", self.process, self.time_ms),
        }
    }
}

/// One record read by an ok poll, as one end of a `PollPair`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollEnd {
    /// Index of the poll's completion op.
    pub op: u64,
    pub time_ms: u64,
    pub offset: i64,
    pub value: String,
}

/// Two records of `tp` that `process` read one right after the other: adjacent in one poll,
/// or the last of one poll and the first of the next poll of `tp` by that process, with no
/// `assign` op of the process in between (an assignment change restarts every position).
#[derive(Debug, Clone, PartialEq)]
pub struct PollPair {
    pub process: String,
    pub tp: Tp,
    pub earlier: PollEnd,
    pub later: PollEnd,
}

impl PollPair {
    pub fn within_one_poll(&self) -> bool {
        self.earlier.op == self.later.op
    }
}

/// One record an ok `process` op reports processed.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Index of the process op's completion.
    pub op: u64,
    pub time_ms: u64,
    pub process: String,
    /// `None` for a standalone consumer.
    pub group: Option<String>,
    pub tp: Tp,
    pub offset: i64,
    pub value: String,
}

/// An ok offset commit: the coordinator stored every offset in it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRecord {
    /// Index of the commit's completion op.
    pub op: u64,
    pub time_ms: u64,
    pub process: String,
    pub group: String,
    /// "sync", "async", "auto" or "before-process".
    pub how: String,
    /// (partition, next offset to consume), as committed.
    pub offsets: Vec<(Tp, i64)>,
}

/// A transaction as its producer was told it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRecord {
    pub op: u64,
    pub time_ms: u64,
    pub process: String,
    pub kind: OpKind,
    pub value: crate::history::TxnValue,
}

#[derive(Debug, Clone, Default)]
pub struct HistoryIndex {
    pub sends: Vec<SendRecord>,
    /// In (time, op) order.
    pub observations: Vec<Observation>,
    /// In history order of the later read.
    pub poll_pairs: Vec<PollPair>,
    /// In (time, op) order.
    pub deliveries: Vec<Delivery>,
    /// Ok commits in history order of their completions.
    pub commits: Vec<CommitRecord>,
    /// Completed transactions (`txn` ops), in history order of their completions.
    pub txns: Vec<TxnRecord>,
    /// Time of the last op; 0 for an empty history.
    pub end_ms: u64,
    sends_by_value: BTreeMap<String, Vec<usize>>,
    by_value: BTreeMap<String, Vec<usize>>,
    by_position: BTreeMap<(Tp, i64), Vec<usize>>,
    /// Per partition, the observation holding the highest offset any poll read.
    max_read: BTreeMap<Tp, usize>,
    /// (group, value) -> deliveries, for grouped consumers only.
    by_group_value: BTreeMap<(String, String), Vec<usize>>,
    /// Every (group, partition, offset) some member processed.
    group_processed: BTreeSet<(String, Tp, i64)>,
    /// Every (group, partition, offset) an info process op may have processed (a transaction
    /// whose commit outcome its client never learned).
    group_maybe_processed: BTreeSet<(String, Tp, i64)>,
    /// (group, partition) -> (offset, commit) of the last ok commit of that partition.
    final_commit: BTreeMap<(String, Tp), (i64, usize)>,
}

/// Per consumer process, the last record of each partition it read since its last assignment
/// change: the earlier end of its next `PollPair`. Only needed while building.
type LastRead = BTreeMap<String, BTreeMap<Tp, PollEnd>>;

impl HistoryIndex {
    pub fn build(history: &History) -> Self {
        let mut idx = HistoryIndex::default();
        let mut send_of_invoke: BTreeMap<u64, usize> = BTreeMap::new();
        let mut last_read = LastRead::new();
        for op in history.ops() {
            idx.end_ms = idx.end_ms.max(op.time_ms);
            match (op.kind, op.invoke_index) {
                (OpKind::Invoke, _) if op.f == OpFn::Assign => {
                    // Any assignment change, whatever its outcome, may have moved every position.
                    last_read.remove(&op.process);
                }
                (OpKind::Invoke, _) => idx.add_invoke(op, &mut send_of_invoke),
                (_, Some(inv)) => {
                    let send = send_of_invoke.get(&inv).copied();
                    idx.add_completion(op, send, &mut last_read);
                }
                (_, None) => {}
            }
        }
        idx.observations.sort_by_key(|o| (o.time_ms, o.op));
        idx.deliveries.sort_by_key(|d| (d.time_ms, d.op));
        idx.build_lookups();
        idx
    }

    fn add_invoke(&mut self, op: &Op, send_of_invoke: &mut BTreeMap<u64, usize>) {
        let Some(s) = op.value.as_send() else { return };
        send_of_invoke.insert(op.index, self.sends.len());
        self.sends.push(SendRecord {
            invoke: op.index,
            process: op.process.clone(),
            topic: s.topic.clone(),
            value: s.value.clone(),
            seq: s.seq,
            outcome: SendOutcome::Info,
            ack: None,
            time_ms: op.time_ms,
        });
    }

    fn add_completion(&mut self, op: &Op, send: Option<usize>, last_read: &mut LastRead) {
        if let (Some(i), Some(v)) = (send, op.value.as_send()) {
            return self.complete_send(op, i, v);
        }
        if let OpValue::Txn(t) = &op.value {
            self.txns.push(TxnRecord { op: op.index, time_ms: op.time_ms, process: op.process.clone(), kind: op.kind, value: t.clone() });
            return;
        }
        if let (OpKind::Info, OpValue::Process(p)) = (op.kind, &op.value) {
            if let Some(group) = &p.group {
                for r in &p.records {
                    self.group_maybe_processed.insert((group.clone(), Tp::new(&r.topic, r.partition), r.offset));
                }
            }
        }
        if op.kind != OpKind::Ok {
            return;
        }
        match &op.value {
            OpValue::Poll(p) => self.add_reads(op, p, last_read),
            OpValue::Process(p) => self.add_deliveries(op, p),
            OpValue::Commit(c) => self.add_commit(op, c),
            _ => {}
        }
    }

    fn complete_send(&mut self, op: &Op, i: usize, v: &SendValue) {
        let rec = &mut self.sends[i];
        rec.time_ms = op.time_ms;
        rec.outcome = match op.kind {
            OpKind::Ok => SendOutcome::Ok,
            OpKind::Fail => SendOutcome::Fail,
            _ => SendOutcome::Info,
        };
        let (OpKind::Ok, Some(p), Some(o)) = (op.kind, v.partition, v.offset) else {
            return;
        };
        let tp = Tp::new(&v.topic, p);
        rec.ack = Some((tp.clone(), o));
        self.observations.push(Observation {
            time_ms: op.time_ms,
            op: op.index,
            process: op.process.clone(),
            tp,
            offset: o,
            value: v.value.clone(),
            source: Source::Ack,
        });
    }

    fn add_reads(&mut self, op: &Op, poll: &PollValue, last_read: &mut LastRead) {
        let last_read = last_read.entry(op.process.clone()).or_default();
        for r in &poll.records {
            let tp = Tp::new(&r.topic, r.partition);
            self.observations.push(Observation {
                time_ms: op.time_ms,
                op: op.index,
                process: op.process.clone(),
                tp: tp.clone(),
                offset: r.offset,
                value: r.value.clone(),
                source: Source::Read,
            });
            let end = PollEnd {
                op: op.index,
                time_ms: op.time_ms,
                offset: r.offset,
                value: r.value.clone(),
            };
            if let Some(earlier) = last_read.insert(tp.clone(), end.clone()) {
                self.poll_pairs.push(PollPair {
                    process: op.process.clone(),
                    tp,
                    earlier,
                    later: end,
                });
            }
        }
    }

    fn add_deliveries(&mut self, op: &Op, p: &ProcessValue) {
        for r in &p.records {
            self.deliveries.push(Delivery {
                op: op.index,
                time_ms: op.time_ms,
                process: op.process.clone(),
                group: p.group.clone(),
                tp: Tp::new(&r.topic, r.partition),
                offset: r.offset,
                value: r.value.clone(),
            });
        }
    }

    fn add_commit(&mut self, op: &Op, c: &CommitValue) {
        self.commits.push(CommitRecord {
            op: op.index,
            time_ms: op.time_ms,
            process: op.process.clone(),
            group: c.group.clone(),
            how: c.how.clone(),
            offsets: (c.offsets.iter())
                .map(|o| (Tp::new(&o.topic, o.partition), o.offset))
                .collect(),
        });
    }

    fn build_lookups(&mut self) {
        for (i, s) in self.sends.iter().enumerate() {
            self.sends_by_value
                .entry(s.value.clone())
                .or_default()
                .push(i);
        }
        for (i, o) in self.observations.iter().enumerate() {
            self.by_value.entry(o.value.clone()).or_default().push(i);
            self.by_position
                .entry((o.tp.clone(), o.offset))
                .or_default()
                .push(i);
            if o.source == Source::Read {
                let top = self.max_read.entry(o.tp.clone()).or_insert(i);
                if o.offset > self.observations[*top].offset {
                    *top = i;
                }
            }
        }
        for (i, d) in self.deliveries.iter().enumerate() {
            let Some(group) = &d.group else { continue };
            self.by_group_value
                .entry((group.clone(), d.value.clone()))
                .or_default()
                .push(i);
            self.group_processed
                .insert((group.clone(), d.tp.clone(), d.offset));
        }
        for (i, c) in self.commits.iter().enumerate() {
            for (tp, offset) in &c.offsets {
                // Later commits overwrite: the last one in history order is final.
                self.final_commit
                    .insert((c.group.clone(), tp.clone()), (*offset, i));
            }
        }
    }

    /// Every send of `value` (more than one only if the harness resent it).
    pub fn sends_of(&self, value: &str) -> impl Iterator<Item = &SendRecord> {
        let ids = self
            .sends_by_value
            .get(value)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        ids.iter().map(|&i| &self.sends[i])
    }

    /// The first send of `value`: whose producer and seq the message carries.
    pub fn first_send_of(&self, value: &str) -> Option<&SendRecord> {
        self.sends_of(value).next()
    }

    /// Observations of `value`, in time order.
    pub fn observations_of(&self, value: &str) -> impl Iterator<Item = &Observation> {
        let ids = self.by_value.get(value).map(Vec::as_slice).unwrap_or(&[]);
        ids.iter().map(|&i| &self.observations[i])
    }

    pub fn reads_of(&self, value: &str) -> impl Iterator<Item = &Observation> {
        self.observations_of(value)
            .filter(|o| o.source == Source::Read)
    }

    pub fn was_read(&self, value: &str) -> bool {
        self.reads_of(value).next().is_some()
    }

    /// Every observed value with its observations in time order, values in sorted order.
    pub fn values(&self) -> impl Iterator<Item = (&str, Vec<&Observation>)> {
        self.by_value
            .iter()
            .map(|(v, ids)| (v.as_str(), self.resolve(ids)))
    }

    /// Every observed position with its observations in time order, positions sorted.
    pub fn positions(&self) -> impl Iterator<Item = (&Tp, i64, Vec<&Observation>)> {
        self.by_position
            .iter()
            .map(|((tp, o), ids)| (tp, *o, self.resolve(ids)))
    }

    /// Reads of `tp` at offsets strictly above `offset`, in time order.
    /// The processes that read `tp` at some offset at or below `offset`.
    pub fn readers_at_or_below(&self, tp: &Tp, offset: i64) -> BTreeSet<&str> {
        let from = (tp.clone(), i64::MIN);
        let to = (tp.clone(), offset);
        self.by_position
            .range(from..=to)
            .flat_map(|(_, ids)| ids.iter().map(|&i| &self.observations[i]))
            .filter(|o| o.source == Source::Read)
            .map(|o| o.process.as_str())
            .collect()
    }

    pub fn reads_above(&self, tp: &Tp, offset: i64) -> Vec<&Observation> {
        let from = (tp.clone(), offset.saturating_add(1));
        let to = (tp.clone(), i64::MAX);
        let mut out: Vec<&Observation> = (self.by_position.range(from..=to))
            .flat_map(|(_, ids)| ids.iter().map(|&i| &self.observations[i]))
            .filter(|o| o.source == Source::Read)
            .collect();
        out.sort_by_key(|o| (o.time_ms, o.op));
        out
    }

    /// Every position of `tp` with an offset in `offsets` that some ok ack or ok poll showed
    /// holding a record, in offset order, with its observations in time order.
    pub fn positions_in(
        &self,
        tp: &Tp,
        offsets: impl RangeBounds<i64>,
    ) -> impl Iterator<Item = (i64, Vec<&Observation>)> {
        let first = match offsets.start_bound() {
            Bound::Included(o) => Some(*o),
            Bound::Excluded(o) => o.checked_add(1),
            Bound::Unbounded => Some(i64::MIN),
        };
        let last = match offsets.end_bound() {
            Bound::Included(o) => Some(*o),
            Bound::Excluded(o) => o.checked_sub(1),
            Bound::Unbounded => Some(i64::MAX),
        };
        // `BTreeMap::range` panics on an inverted range, so an empty one is never asked for.
        let range = match (first, last) {
            (Some(a), Some(b)) if a <= b => Some((tp.clone(), a)..=(tp.clone(), b)),
            _ => None,
        };
        (range.into_iter())
            .flat_map(|r| self.by_position.range(r))
            .map(|((_, o), ids)| (*o, self.resolve(ids)))
    }

    /// Every value some member of a group processed, with those deliveries in time order;
    /// ordered by (group, value). Standalone consumers' deliveries are not included.
    pub fn group_deliveries(&self) -> impl Iterator<Item = (&str, &str, Vec<&Delivery>)> {
        self.by_group_value.iter().map(|((g, v), ids)| {
            let ds = ids.iter().map(|&i| &self.deliveries[i]).collect();
            (g.as_str(), v.as_str(), ds)
        })
    }

    /// Whether an ok process op of a member of `group` included the record at `tp`@`offset`.
    pub fn group_processed(&self, group: &str, tp: &Tp, offset: i64) -> bool {
        self.group_processed
            .contains(&(group.to_string(), tp.clone(), offset))
    }

    /// Whether an info process op of a member of `group` may have processed the record.
    pub fn group_maybe_processed(&self, group: &str, tp: &Tp, offset: i64) -> bool {
        self.group_maybe_processed.contains(&(group.to_string(), tp.clone(), offset))
    }

    /// Per (group, partition), the offset of the last ok commit that included the partition,
    /// with that commit; ordered by (group, partition).
    pub fn final_commits(&self) -> impl Iterator<Item = (&Tp, i64, &CommitRecord)> {
        self.final_commit
            .iter()
            .map(|((_, tp), (o, i))| (tp, *o, &self.commits[*i]))
    }

    /// The read with the highest offset in `tp` (the first such read, if several).
    pub fn max_read(&self, tp: &Tp) -> Option<&Observation> {
        self.max_read.get(tp).map(|&i| &self.observations[i])
    }

    fn resolve(&self, ids: &[usize]) -> Vec<&Observation> {
        ids.iter().map(|&i| &self.observations[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::{Run, TOPIC};

    #[test]
    fn positions_in_takes_any_range_and_an_empty_one_finds_nothing() {
        let mut r = Run::new();
        for seq in 0..4 {
            r.send_ok("p-0", seq, 0, seq as i64 * 2);
        }
        r.send_ok("p-0", 9, 1, 3);
        let idx = HistoryIndex::build(&r.history);
        let tp = Tp::new(TOPIC, 0);
        let offsets = |r: Vec<(i64, Vec<&Observation>)>| r.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            offsets(idx.positions_in(&tp, ..).collect()),
            vec![0, 2, 4, 6]
        );
        assert_eq!(offsets(idx.positions_in(&tp, 1..6).collect()), vec![2, 4]);
        assert_eq!(
            offsets(idx.positions_in(&tp, 2..=6).collect()),
            vec![2, 4, 6]
        );
        assert_eq!(offsets(idx.positions_in(&tp, ..4).collect()), vec![0, 2]);
        assert!(idx.positions_in(&tp, 3..3).next().is_none());
        let (from, to) = (5, 1);
        assert!(idx.positions_in(&tp, from..to).next().is_none());
        assert!(idx.positions_in(&tp, i64::MAX..).next().is_none());
    }

    #[test]
    fn poll_pairs_link_back_to_back_reads_until_an_assignment_change() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 0, "a"), (1, 0, "x"), (0, 1, "b")]);
        r.poll("c-1", &[(0, 5, "z")]);
        r.poll("c-0", &[(0, 2, "c")]);
        r.assign("c-0", Some("g"), 1, &[0, 1]);
        r.poll("c-0", &[(1, 1, "y")]);
        let idx = HistoryIndex::build(&r.history);
        let pairs: Vec<(&str, i32, i64, i64, bool)> = (idx.poll_pairs.iter())
            .map(|p| {
                let (a, b) = (&p.earlier, &p.later);
                (
                    p.process.as_str(),
                    p.tp.partition,
                    a.offset,
                    b.offset,
                    p.within_one_poll(),
                )
            })
            .collect();
        assert_eq!(pairs, vec![("c-0", 0, 0, 1, true), ("c-0", 0, 1, 2, false)]);
    }

    #[test]
    fn only_ok_processing_and_ok_commits_are_indexed_and_the_last_commit_is_final() {
        let mut r = Run::new();
        r.process("c-0", Some("g"), &[(0, 0, "a")]);
        r.process("c-0", None, &[(0, 1, "b")]);
        r.commit("c-0", "g", "sync", OpKind::Ok, &[(0, 5), (1, 2)]);
        r.commit("c-0", "g", "sync", OpKind::Ok, &[(0, 3)]);
        r.commit("c-0", "g", "sync", OpKind::Fail, &[(0, 9)]);
        let idx = HistoryIndex::build(&r.history);
        assert_eq!(idx.deliveries.len(), 2);
        assert_eq!(idx.commits.len(), 2);
        let tp0 = Tp::new(TOPIC, 0);
        assert!(idx.group_processed("g", &tp0, 0));
        assert!(!idx.group_processed("g", &tp0, 1));
        let finals: Vec<(i32, i64)> = (idx.final_commits())
            .map(|(tp, o, _)| (tp.partition, o))
            .collect();
        assert_eq!(finals, vec![(0, 3), (1, 2)]);
        let groups: Vec<(&str, &str)> = (idx.group_deliveries()).map(|(g, v, _)| (g, v)).collect();
        assert_eq!(groups, vec![("g", "a")]);
    }
}
