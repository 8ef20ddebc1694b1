//! Test-only builder for small hand-written histories on topic "orders": each call is one
//! client operation, invoked and completed one millisecond apart, so times are predictable.

use crate::checkers::{Anomaly, HistoryIndex};
use crate::history::{
    AssignValue, CommitValue, CommittedOffset, History, OpFn, OpKind, OpValue, PartitionRef,
    PollValue, PolledRecord, ProcessValue, SendValue,
};

pub const TOPIC: &str = "orders";

pub struct Run {
    pub history: History,
    now: u64,
}

impl Run {
    pub fn new() -> Self {
        Run {
            history: History::new(),
            now: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    /// Sends "{producer}:{seq}" and has it acked at (partition, offset); returns the value.
    pub fn send_ok(&mut self, producer: &str, seq: u64, partition: i32, offset: i64) -> String {
        let (id, v) = self.invoke_send(producer, seq);
        let t = self.tick();
        let acked = OpValue::Send(v.acked(partition, offset));
        self.history.complete(id, t, OpKind::Ok, acked, None);
        v.value
    }

    /// Sends "{producer}:{seq}" and completes it `fail` or `info`; returns the value.
    pub fn send_unacked(&mut self, producer: &str, seq: u64, kind: OpKind) -> String {
        let (id, v) = self.invoke_send(producer, seq);
        let t = self.tick();
        let err = Some(format!("{kind:?}"));
        self.history
            .complete(id, t, kind, OpValue::Send(v.clone()), err);
        v.value
    }

    fn invoke_send(&mut self, producer: &str, seq: u64) -> (u64, SendValue) {
        let v = SendValue::new(TOPIC, None, &format!("{producer}:{seq}"), seq);
        let t = self.tick();
        (
            self.history
                .invoke(t, producer, OpFn::Send, OpValue::Send(v.clone())),
            v,
        )
    }

    /// An ok poll by `consumer` returning (partition, offset, value) records; returns the
    /// completion time.
    pub fn poll(&mut self, consumer: &str, records: &[(i32, i64, &str)]) -> u64 {
        let t = self.tick();
        let id = self
            .history
            .invoke(t, consumer, OpFn::Poll, OpValue::Poll(PollValue::default()));
        let records = polled(records);
        let t = self.tick();
        self.history.complete(
            id,
            t,
            OpKind::Ok,
            OpValue::Poll(PollValue { records }),
            None,
        );
        t
    }

    /// `consumer` (of `group`, or standalone with `None`) is now assigned `partitions`;
    /// invoked and ok at one instant, which it returns.
    pub fn assign(
        &mut self,
        consumer: &str,
        group: Option<&str>,
        generation: i32,
        partitions: &[i32],
    ) -> u64 {
        let value = OpValue::Assign(AssignValue {
            group: group.map(str::to_string),
            generation,
            partitions: (partitions.iter())
                .map(|&partition| PartitionRef {
                    topic: TOPIC.to_string(),
                    partition,
                })
                .collect(),
        });
        let t = self.tick();
        let id = self
            .history
            .invoke(t, consumer, OpFn::Assign, value.clone());
        self.history.complete(id, t, OpKind::Ok, value, None);
        t
    }

    /// An ok process op: `consumer` (of `group`, or standalone) finished processing the
    /// (partition, offset, value) records; returns the completion time.
    pub fn process(
        &mut self,
        consumer: &str,
        group: Option<&str>,
        records: &[(i32, i64, &str)],
    ) -> u64 {
        self.process_as(consumer, group, records, OpKind::Ok)
    }

    /// A process op completed `kind` (info: a transaction whose outcome was never learned).
    pub fn process_as(
        &mut self,
        consumer: &str,
        group: Option<&str>,
        records: &[(i32, i64, &str)],
        kind: OpKind,
    ) -> u64 {
        let value = OpValue::Process(ProcessValue {
            group: group.map(str::to_string),
            records: polled(records),
        });
        let t = self.tick();
        let id = self
            .history
            .invoke(t, consumer, OpFn::Process, value.clone());
        let t = self.tick();
        self.history.complete(id, t, kind, value, None);
        t
    }

    /// A commit of (partition, next offset) by `consumer` for `group`, done `how` ("sync",
    /// "async", ...) and completed `kind`; returns the completion time.
    pub fn commit(
        &mut self,
        consumer: &str,
        group: &str,
        how: &str,
        kind: OpKind,
        offsets: &[(i32, i64)],
    ) -> u64 {
        let value = OpValue::Commit(CommitValue {
            group: group.to_string(),
            how: how.to_string(),
            offsets: (offsets.iter())
                .map(|&(partition, offset)| CommittedOffset {
                    topic: TOPIC.to_string(),
                    partition,
                    offset,
                })
                .collect(),
        });
        let t = self.tick();
        let id = self
            .history
            .invoke(t, consumer, OpFn::Commit, value.clone());
        let t = self.tick();
        let err = (kind != OpKind::Ok).then(|| format!("{kind:?}"));
        self.history.complete(id, t, kind, value, err);
        t
    }

    /// Time of the ack of `value` (the completion of its first send).
    pub fn ack_time(&self, value: &str) -> u64 {
        let idx = HistoryIndex::build(&self.history);
        idx.first_send_of(value).expect("value was sent").time_ms
    }

    pub fn check(&self, checker: fn(&HistoryIndex) -> Vec<Anomaly>) -> Vec<Anomaly> {
        checker(&HistoryIndex::build(&self.history))
    }
}

fn polled(records: &[(i32, i64, &str)]) -> Vec<PolledRecord> {
    records
        .iter()
        .map(|&(partition, offset, value)| PolledRecord {
            topic: TOPIC.to_string(),
            partition,
            offset,
            key: None,
            value: value.to_string(),
        })
        .collect()
}
