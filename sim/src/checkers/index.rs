//! `HistoryIndex`: the history digested once into the shapes every checker needs: one record
//! per send with its outcome, and every observed (value, topic-partition, offset) triple, from
//! ok acks and from ok polls, looked up by value and by position.
//!
//! Only `ok` polls contribute reads: a poll that failed or timed out delivered nothing the
//! client could act on. Observations are kept in time order, so "the first observation" of
//! something is the moment it became visible.

use crate::history::{History, Op, OpKind, SendValue};
use std::collections::BTreeMap;
use std::fmt;

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

#[derive(Debug, Clone, Default)]
pub struct HistoryIndex {
    pub sends: Vec<SendRecord>,
    /// In (time, op) order.
    pub observations: Vec<Observation>,
    /// Time of the last op; 0 for an empty history.
    pub end_ms: u64,
    sends_by_value: BTreeMap<String, Vec<usize>>,
    by_value: BTreeMap<String, Vec<usize>>,
    by_position: BTreeMap<(Tp, i64), Vec<usize>>,
    /// Per partition, the observation holding the highest offset any poll read.
    max_read: BTreeMap<Tp, usize>,
}

impl HistoryIndex {
    pub fn build(history: &History) -> Self {
        let mut idx = HistoryIndex::default();
        let mut send_of_invoke: BTreeMap<u64, usize> = BTreeMap::new();
        for op in history.ops() {
            idx.end_ms = idx.end_ms.max(op.time_ms);
            match (op.kind, op.invoke_index) {
                (OpKind::Invoke, _) => idx.add_invoke(op, &mut send_of_invoke),
                (_, Some(inv)) => idx.add_completion(op, send_of_invoke.get(&inv).copied()),
                (_, None) => {}
            }
        }
        idx.observations.sort_by_key(|o| (o.time_ms, o.op));
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

    fn add_completion(&mut self, op: &Op, send: Option<usize>) {
        match (send, op.value.as_send()) {
            (Some(i), Some(v)) => self.complete_send(op, i, v),
            _ if op.kind == OpKind::Ok => self.add_reads(op),
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

    fn add_reads(&mut self, op: &Op) {
        let Some(poll) = op.value.as_poll() else {
            return;
        };
        for r in &poll.records {
            self.observations.push(Observation {
                time_ms: op.time_ms,
                op: op.index,
                process: op.process.clone(),
                tp: Tp::new(&r.topic, r.partition),
                offset: r.offset,
                value: r.value.clone(),
                source: Source::Read,
            });
        }
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

    /// The read with the highest offset in `tp` (the first such read, if several).
    pub fn max_read(&self, tp: &Tp) -> Option<&Observation> {
        self.max_read.get(tp).map(|&i| &self.observations[i])
    }

    fn resolve(&self, ids: &[usize]) -> Vec<&Observation> {
        ids.iter().map(|&i| &self.observations[i]).collect()
    }
}
