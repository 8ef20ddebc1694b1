//! The Jepsen-style history of client operations: what each client asked for (`invoke`) and
//! what it was told (`ok`, `fail` = definitely nothing happened, `info` = may or may not have
//! happened). This module owns the data model, the invariant "every invoke gets exactly one
//! completion", and the JSONL format the checkers and reports read back.
//!
//! Extension beyond the Jepsen format: a completion carries `invoke_index`, the index of the
//! invoke it completes. Jepsen pairs by process because its processes are single-threaded;
//! stormlog producers keep several sends in flight, so pairing must be explicit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpFn {
    Send,
    Poll,
    /// A consumer's assignment changed (group rebalance, or a standalone consumer's
    /// partitions); invoke and ok at the same instant.
    Assign,
    /// The application finished processing records (after `processing_ms` each).
    Process,
    /// An offset commit (sync, async, or auto-commit) for a group.
    Commit,
    /// A transaction: its sends and its end (commit or abort).
    Txn,
}

/// One produced message. `partition`/`offset` are only known once the broker acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendValue {
    pub topic: String,
    pub key: Option<String>,
    /// Unique per message across the whole run, e.g. "p-0:17".
    pub value: String,
    /// Per-producer send order: 0, 1, 2, ...
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

impl SendValue {
    /// A send as invoked: position not known yet.
    pub fn new(topic: &str, key: Option<&str>, value: &str, seq: u64) -> Self {
        SendValue {
            topic: topic.to_string(),
            key: key.map(str::to_string),
            value: value.to_string(),
            seq,
            partition: None,
            offset: None,
        }
    }

    /// The same send as acknowledged at `(partition, offset)`.
    pub fn acked(&self, partition: i32, offset: i64) -> Self {
        SendValue {
            partition: Some(partition),
            offset: Some(offset),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollValue {
    pub records: Vec<PolledRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: i32,
}

/// A consumer's whole assignment after a change. `generation` is the group generation the
/// assignment belongs to (-1 for a standalone consumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignValue {
    pub group: Option<String>,
    pub generation: i32,
    pub partitions: Vec<PartitionRef>,
}

/// Records whose processing finished, by a consumer of `group` (None: standalone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessValue {
    pub group: Option<String>,
    pub records: Vec<PolledRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset to consume (Kafka's committed offset).
    pub offset: i64,
}

/// An offset commit. `how` is "sync", "async", "auto" or "before-process"; on `ok` the
/// coordinator stored every offset, on `fail` none, on `info` it may have stored them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitValue {
    pub group: String,
    pub how: String,
    pub offsets: Vec<CommittedOffset>,
}

/// One transaction of a transactional producer. `commit` is what the application asked for
/// (false: an abort). On `ok` that happened; on `fail` the transaction is surely not committed
/// (aborted by the application, the coordinator or a newer instance); on `info` either may
/// have happened. `values` are the transaction's messages, sent with their own `send` ops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnValue {
    pub transactional_id: String,
    /// Per transactional id, 0, 1, 2, ... across restarts.
    pub txn: u64,
    pub commit: bool,
    pub values: Vec<String>,
}

/// Untagged because `f` already names the variant; `History` rejects a value that does not
/// match its `f`, so the two can never disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpValue {
    Send(SendValue),
    Poll(PollValue),
    Assign(AssignValue),
    Process(ProcessValue),
    Commit(CommitValue),
    Txn(TxnValue),
}

impl OpValue {
    pub fn fits(&self, f: OpFn) -> bool {
        matches!(
            (self, f),
            (OpValue::Send(_), OpFn::Send)
                | (OpValue::Poll(_), OpFn::Poll)
                | (OpValue::Assign(_), OpFn::Assign)
                | (OpValue::Process(_), OpFn::Process)
                | (OpValue::Commit(_), OpFn::Commit)
                | (OpValue::Txn(_), OpFn::Txn)
        )
    }

    pub fn as_send(&self) -> Option<&SendValue> {
        match self {
            OpValue::Send(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_poll(&self) -> Option<&PollValue> {
        match self {
            OpValue::Poll(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_assign(&self) -> Option<&AssignValue> {
        match self {
            OpValue::Assign(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_process(&self) -> Option<&ProcessValue> {
        match self {
            OpValue::Process(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_txn(&self) -> Option<&TxnValue> {
        match self {
            OpValue::Txn(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_commit(&self) -> Option<&CommitValue> {
        match self {
            OpValue::Commit(c) => Some(c),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, 0-based.
    pub index: u64,
    pub time_ms: u64,
    /// "p-0", "c-1", ...
    pub process: String,
    #[serde(rename = "type")]
    pub kind: OpKind,
    pub f: OpFn,
    pub value: OpValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On a completion: the index of the invoke it completes. `None` on invokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_index: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    ops: Vec<Op>,
    /// Invokes without a completion yet; BTreeSet so `pending` is in history order.
    open: BTreeSet<u64>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invoke and returns its op id (its index), which `complete` takes.
    pub fn invoke(&mut self, time_ms: u64, process: &str, f: OpFn, value: OpValue) -> u64 {
        assert!(
            value.fits(f),
            "invoke of {f:?} with a value of the other kind: {value:?}"
        );
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            time_ms,
            process: process.to_string(),
            kind: OpKind::Invoke,
            f,
            value,
            error: None,
            invoke_index: None,
        });
        self.open.insert(index);
        index
    }

    /// Records the one completion of `invoke_id`. Panics on a second completion, an unknown
    /// invoke, `kind == Invoke` or a value that does not match the invoke's `f`: each is a bug
    /// in the harness, and a history that hides it would make every checker verdict suspect.
    pub fn complete(
        &mut self,
        invoke_id: u64,
        time_ms: u64,
        kind: OpKind,
        value: OpValue,
        error: Option<String>,
    ) {
        assert!(
            kind != OpKind::Invoke,
            "complete() needs ok, fail or info, not invoke"
        );
        let inv = self
            .ops
            .get(invoke_id as usize)
            .expect("complete() of an unknown invoke");
        assert!(
            inv.kind == OpKind::Invoke,
            "op {invoke_id} is not an invoke"
        );
        assert!(
            value.fits(inv.f),
            "completion value does not match {:?}: {value:?}",
            inv.f
        );
        assert!(
            self.open.remove(&invoke_id),
            "invoke {invoke_id} was already completed"
        );
        let (process, f) = (inv.process.clone(), inv.f);
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            time_ms,
            process,
            kind,
            f,
            value,
            error,
            invoke_index: Some(invoke_id),
        });
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Invokes not completed yet, in history order.
    pub fn pending(&self) -> Vec<u64> {
        self.open.iter().copied().collect()
    }

    /// At the end of a run nobody will ever learn what happened to an open operation, which
    /// is exactly what `info` means.
    pub fn close_pending_as_info(&mut self, time_ms: u64) {
        for id in self.pending() {
            let value = self.ops[id as usize].value.clone();
            self.complete(
                id,
                time_ms,
                OpKind::Info,
                value,
                Some("run ended".to_string()),
            );
        }
    }

    /// One JSON object per line, fields in declaration order (serde_json keeps struct order).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&serde_json::to_string(op).expect("an Op always serializes"));
            out.push('\n');
        }
        out
    }

    /// Parses `to_jsonl` output and re-checks every invariant `invoke`/`complete` enforce,
    /// reporting the first violation with its line number instead of panicking.
    pub fn from_jsonl(s: &str) -> Result<History, String> {
        let mut history = History::new();
        let lines = s.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        for (n, line) in lines {
            let op: Op = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            history
                .accept(op)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(history)
    }

    fn accept(&mut self, op: Op) -> Result<(), String> {
        if op.index != self.ops.len() as u64 {
            return Err(format!(
                "index {} where {} was expected",
                op.index,
                self.ops.len()
            ));
        }
        if !op.value.fits(op.f) {
            return Err(format!("value does not match f = {:?}", op.f));
        }
        match (op.kind, op.invoke_index) {
            (OpKind::Invoke, None) => {
                self.open.insert(op.index);
            }
            (OpKind::Invoke, Some(_)) => return Err("an invoke with invoke_index".to_string()),
            (_, None) => return Err("a completion without invoke_index".to_string()),
            (_, Some(inv)) => self.accept_completion(&op, inv)?,
        }
        self.ops.push(op);
        Ok(())
    }

    fn accept_completion(&mut self, op: &Op, inv: u64) -> Result<(), String> {
        if !self.open.contains(&inv) {
            return Err(format!("completes {inv}, which is not an open invoke"));
        }
        let invoke = &self.ops[inv as usize];
        if invoke.process != op.process || invoke.f != op.f {
            return Err(format!("completes {inv} but process or f differ"));
        }
        self.open.remove(&inv);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut h = History::new();
        let send = SendValue::new("orders", Some("k1"), "p-0:0", 0);
        let s = h.invoke(1, "p-0", OpFn::Send, OpValue::Send(send.clone()));
        let p = h.invoke(2, "c-0", OpFn::Poll, OpValue::Poll(PollValue::default()));
        h.complete(s, 3, OpKind::Ok, OpValue::Send(send.acked(0, 0)), None);
        let rec = PolledRecord {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
            key: Some("k1".into()),
            value: "p-0:0".into(),
        };
        h.complete(
            p,
            4,
            OpKind::Ok,
            OpValue::Poll(PollValue { records: vec![rec] }),
            None,
        );
        let lost = SendValue::new("orders", None, "p-0:1", 1);
        h.invoke(5, "p-0", OpFn::Send, OpValue::Send(lost));
        h.close_pending_as_info(9);
        h
    }

    #[test]
    fn a_history_survives_a_jsonl_round_trip_unchanged() {
        let h = sample();
        let text = h.to_jsonl();
        assert_eq!(text.lines().count(), 6);
        let back = History::from_jsonl(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.to_jsonl(), text);
    }

    #[test]
    fn group_operations_survive_a_jsonl_round_trip_as_their_own_kind() {
        let mut h = History::new();
        let rec = PolledRecord { topic: "t".into(), partition: 1, offset: 4, key: None, value: "p-0:3".into() };
        let assign = OpValue::Assign(AssignValue {
            group: Some("g".into()),
            generation: 2,
            partitions: vec![PartitionRef { topic: "t".into(), partition: 1 }],
        });
        let a = h.invoke(1, "c-0", OpFn::Assign, assign.clone());
        h.complete(a, 1, OpKind::Ok, assign, None);
        let process = OpValue::Process(ProcessValue { group: Some("g".into()), records: vec![rec] });
        let p = h.invoke(2, "c-0", OpFn::Process, process.clone());
        h.complete(p, 3, OpKind::Ok, process, None);
        let commit = OpValue::Commit(CommitValue {
            group: "g".into(),
            how: "sync".into(),
            offsets: vec![CommittedOffset { topic: "t".into(), partition: 1, offset: 5 }],
        });
        let c = h.invoke(4, "c-0", OpFn::Commit, commit.clone());
        h.complete(c, 5, OpKind::Fail, commit, Some("REBALANCE_IN_PROGRESS".into()));
        let back = History::from_jsonl(&h.to_jsonl()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn jsonl_fields_come_out_in_a_fixed_order() {
        let first = sample().to_jsonl().lines().next().unwrap().to_string();
        assert_eq!(
            first,
            r#"{"index":0,"time_ms":1,"process":"p-0","type":"invoke","f":"send","value":{"topic":"orders","key":"k1","value":"p-0:0","seq":0}}"#
        );
    }

    #[test]
    fn closing_the_run_turns_every_open_invoke_into_info() {
        let h = sample();
        assert!(h.pending().is_empty());
        let last = h.ops().last().unwrap();
        assert_eq!((last.kind, last.invoke_index), (OpKind::Info, Some(4)));
        assert_eq!(last.error.as_deref(), Some("run ended"));
    }

    #[test]
    fn pending_lists_open_invokes_in_order() {
        let mut h = History::new();
        let a = h.invoke(
            0,
            "p-0",
            OpFn::Send,
            OpValue::Send(SendValue::new("t", None, "a", 0)),
        );
        let b = h.invoke(
            0,
            "p-0",
            OpFn::Send,
            OpValue::Send(SendValue::new("t", None, "b", 1)),
        );
        assert_eq!(h.pending(), vec![a, b]);
        h.complete(
            a,
            1,
            OpKind::Fail,
            h.ops()[0].value.clone(),
            Some("NOT_ENOUGH_REPLICAS".into()),
        );
        assert_eq!(h.pending(), vec![b]);
    }

    #[test]
    #[should_panic(expected = "already completed")]
    fn completing_an_invoke_twice_is_a_bug() {
        let mut h = History::new();
        let v = OpValue::Poll(PollValue::default());
        let id = h.invoke(0, "c-0", OpFn::Poll, v.clone());
        h.complete(id, 1, OpKind::Ok, v.clone(), None);
        h.complete(id, 2, OpKind::Ok, v, None);
    }

    #[test]
    fn a_completion_of_nothing_is_rejected_when_parsing() {
        let mut text = sample().to_jsonl();
        text.push_str(
            r#"{"index":6,"time_ms":9,"process":"c-0","type":"ok","f":"poll","value":{"records":[]},"invoke_index":1}"#,
        );
        let err = History::from_jsonl(&text).unwrap_err();
        assert!(err.starts_with("line 7:"), "{err}");
    }
}
