//! The transactional workloads, through the public client API only:
//!
//! - a transactional producer sends `records_per_txn` messages per transaction and commits, or
//!   aborts with `abort_probability`;
//! - a consume-transform-produce consumer (`commit = "transactional"`) writes each polled
//!   record to its output topic and commits the consumed offsets in the same transaction.
//!
//! A message of a transaction is recorded as a send that completes when the transaction does:
//! `ok` at its offset once the commit succeeded, `fail` when the transaction surely did not
//! commit (aborted by the application, by the coordinator, or by a newer instance's
//! InitProducerId), `info` when the commit's outcome is unknown. Each transaction is also a
//! `txn` op listing its messages. A process that dies mid-transaction leaves it open in
//! `TxnCarry`: its restarted instance settles it once its own InitProducerId succeeded, which
//! (KAFKA.md §1.10) aborts whatever the old instance had not asked to commit.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use stormlog::client::{Delivery, Producer, ProducerConfig, TxnError, TxnErrorKind};
use stormlog::seam::Network;

use crate::engine::{SimClock, TurmoilNetwork};
use crate::history::{CommitValue, CommittedOffset, History, OpFn, OpKind, OpValue, PolledRecord, ProcessValue, SendValue, TxnValue};
use crate::workload::sim_now_ms;

/// A transaction's messages as invoked: (send op id, the send).
type Sends = Vec<(u64, SendValue)>;

/// A transaction not settled yet.
pub struct OpenTxn {
    txn_op: u64,
    value: TxnValue,
    sends: Sends,
    /// Offsets from the produce acknowledgements, by send op id.
    offsets: BTreeMap<u64, (i32, i64)>,
    /// EndTxn(commit) went out: the outcome is unknown unless answered.
    commit_sent: bool,
    /// The consumed records this transaction processes (consume-transform-produce).
    processed: Vec<PolledRecord>,
    /// The `commit` op of the consumed offsets sent to the transaction: it happens exactly
    /// when the transaction commits.
    offsets_commit: Option<(u64, CommitValue)>,
}

/// What must survive a restart of a transactional process.
#[derive(Default)]
pub struct TxnCarry {
    pub next_txn: u64,
    pub next_seq: u64,
    pub open: Option<OpenTxn>,
}

/// How a transaction ended, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Committed,
    /// Surely not committed.
    NotCommitted,
    Unknown,
}

pub struct TxnRecorder {
    pub process: String,
    pub transactional_id: String,
    pub history: Rc<RefCell<History>>,
    pub carry: Rc<RefCell<TxnCarry>>,
    /// The consumer group whose processing the transactions carry, if any.
    pub group: Option<String>,
}

impl TxnRecorder {
    /// Opens transaction bookkeeping (the `txn` op is invoked now).
    fn open(&self, commit_intent: bool) {
        let mut carry = self.carry.borrow_mut();
        let txn = carry.next_txn;
        carry.next_txn += 1;
        let value = TxnValue { transactional_id: self.transactional_id.clone(), txn, commit: commit_intent, values: Vec::new() };
        let txn_op = self.history.borrow_mut().invoke(sim_now_ms(), &self.process, OpFn::Txn, OpValue::Txn(value.clone()));
        carry.open = Some(OpenTxn { txn_op, value, sends: Vec::new(), offsets: BTreeMap::new(), commit_sent: false, processed: Vec::new(), offsets_commit: None });
    }

    fn with_open<R>(&self, f: impl FnOnce(&mut OpenTxn) -> R) -> Option<R> {
        self.carry.borrow_mut().open.as_mut().map(f)
    }

    /// Sends one message in the open transaction; the outcome is recorded when it settles.
    async fn send(&self, producer: &Producer, topic: &str, key: Option<String>, value: String) -> Option<Delivery> {
        let seq = {
            let mut carry = self.carry.borrow_mut();
            carry.next_seq += 1;
            carry.next_seq - 1
        };
        let sent = SendValue::new(topic, key.as_deref(), &value, seq);
        let id = self.history.borrow_mut().invoke(sim_now_ms(), &self.process, OpFn::Send, OpValue::Send(sent.clone()));
        self.with_open(|t| {
            t.sends.push((id, sent));
            t.value.values.push(value.clone());
        });
        producer.send(topic, key.map(Bytes::from), Bytes::from(value)).await.ok()
    }

    /// Settles the open transaction (if any) in the history.
    fn settle(&self, how: Settled, why: Option<String>) {
        let Some(open) = self.carry.borrow_mut().open.take() else { return };
        let now = sim_now_ms();
        let mut h = self.history.borrow_mut();
        for (id, sent) in &open.sends {
            match (how, open.offsets.get(id)) {
                (Settled::Committed, Some((p, o))) => h.complete(*id, now, OpKind::Ok, OpValue::Send(sent.acked(*p, *o)), None),
                // Committed without an acknowledged offset cannot happen (commit needs every
                // send acknowledged); record it as unknown rather than invent an offset.
                (Settled::Committed, None) | (Settled::Unknown, _) => h.complete(*id, now, OpKind::Info, OpValue::Send(sent.clone()), why.clone()),
                (Settled::NotCommitted, _) => h.complete(*id, now, OpKind::Fail, OpValue::Send(sent.clone()), why.clone()),
            }
        }
        let kind = match how {
            Settled::Committed => OpKind::Ok,
            Settled::NotCommitted if !open.value.commit => OpKind::Ok,
            Settled::NotCommitted => OpKind::Fail,
            Settled::Unknown => OpKind::Info,
        };
        // The consumed offsets were committed, and the records processed, exactly when the
        // transaction committed; when its client never learned the outcome, maybe.
        let happened = match how {
            Settled::Committed => OpKind::Ok,
            Settled::NotCommitted => OpKind::Fail,
            Settled::Unknown => OpKind::Info,
        };
        if let Some((op, value)) = open.offsets_commit {
            h.complete(op, now, happened, OpValue::Commit(value), why.clone());
        }
        if happened != OpKind::Fail && !open.processed.is_empty() {
            let value = OpValue::Process(ProcessValue { group: self.group.clone(), records: open.processed });
            let id = h.invoke(now, &self.process, OpFn::Process, value.clone());
            h.complete(id, now, happened, value, why.clone());
        }
        h.complete(open.txn_op, now, kind, OpValue::Txn(open.value.clone()), why);
    }

    /// The consumed offsets go into the open transaction (sendOffsetsToTransaction): recorded
    /// as a `commit` op of the group that completes with the transaction.
    fn offsets_sent(&self, offsets: &BTreeMap<stormlog::ids::TopicPartition, i64>) {
        let Some(group) = self.group.clone() else { return };
        let offsets = offsets.iter().map(|(tp, o)| CommittedOffset { topic: tp.topic.clone(), partition: tp.partition, offset: *o }).collect();
        let value = CommitValue { group, how: "transactional".into(), offsets };
        let op = self.history.borrow_mut().invoke(sim_now_ms(), &self.process, OpFn::Commit, OpValue::Commit(value.clone()));
        self.with_open(|t| t.offsets_commit = Some((op, value)));
    }

    /// After this instance's InitProducerId: whatever an earlier instance left open is aborted
    /// unless it had asked to commit.
    fn settle_inherited(&self) {
        let commit_sent = self.carry.borrow().open.as_ref().map(|t| t.commit_sent);
        match commit_sent {
            Some(false) => self.settle(Settled::NotCommitted, Some("aborted: a new instance's InitProducerId fenced the open transaction".into())),
            Some(true) => self.settle(Settled::Unknown, Some("the process ended before its commit was answered".into())),
            None => {}
        }
    }

    /// Waits for the open transaction's acknowledgements, then commits (or aborts when
    /// `commit_intent` is false or a send failed). Returns whether the producer can go on (not
    /// after a fatal error or an unknown commit outcome) and whether the transaction committed.
    async fn finish(&self, producer: &Producer, deliveries: Vec<(u64, Option<Delivery>)>, commit_intent: bool) -> (bool, bool) {
        let mut all_ok = true;
        for (id, d) in deliveries {
            let result = match d {
                Some(d) => d.wait().await,
                None => {
                    all_ok = false;
                    continue;
                }
            };
            match result {
                Ok(md) => {
                    if let Some(o) = md.offset {
                        self.with_open(|t| t.offsets.insert(id, (md.partition, o)));
                    }
                }
                Err(_) => all_ok = false,
            }
        }
        if commit_intent && all_ok {
            self.with_open(|t| t.commit_sent = true);
            match producer.commit_transaction().await {
                Ok(()) => {
                    self.settle(Settled::Committed, None);
                    return (true, true);
                }
                Err(e) if e.kind == TxnErrorKind::Abortable && !e.may_have_committed => {
                    // Nothing was committed: EndTxn was not sent. Abort and go on.
                    self.with_open(|t| t.commit_sent = false);
                    return (self.abort(producer, format!("commit refused: {}", e.message)).await, false);
                }
                Err(e) => {
                    let how = if e.may_have_committed { Settled::Unknown } else { Settled::NotCommitted };
                    self.settle(how, Some(e.to_string()));
                    return (false, false);
                }
            }
        }
        let why = if commit_intent { "a send of the transaction failed".to_string() } else { "aborted by the application".to_string() };
        (self.abort(producer, why).await, false)
    }

    async fn abort(&self, producer: &Producer, why: String) -> bool {
        let result = producer.abort_transaction().await;
        // Commit was never asked for: whatever the abort's answer, nothing of this
        // transaction is committed.
        self.settle(Settled::NotCommitted, Some(why));
        result.is_ok()
    }
}

/// A transactional producer and its InitProducerId, retried until it succeeds or `stop_ms`.
async fn start_producer(net: &TurmoilNetwork, config: &ProducerConfig, bootstrap: &[String], clock: &SimClock, stop_ms: u64) -> Option<Producer> {
    loop {
        if sim_now_ms() >= stop_ms {
            return None;
        }
        let net: Rc<dyn Network> = Rc::new(net.clone());
        let producer = Producer::new(net, Rc::new(clock.clone()), bootstrap.to_vec(), config.clone());
        match producer.init_transactions().await {
            Ok(()) => return Some(producer),
            Err(TxnError { .. }) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

impl crate::workload::ProducerWork {
    /// Transactions of `records_per_txn` messages, at `rate_per_sec`.
    pub async fn run_transactional(self: Rc<Self>) {
        let t = self.txn.as_ref().expect("transactional");
        let rec = TxnRecorder {
            process: self.process.clone(),
            transactional_id: self.config.transactional_id.clone().unwrap_or_default(),
            history: self.history.clone(),
            carry: t.carry.clone(),
            group: None,
        };
        let interval_ms = (1000.0 / self.rate_per_sec).max(1.0) as u64;
        'restart: loop {
            let Some(producer) = start_producer(&self.net, &self.config, &self.bootstrap, &self.clock, self.stop_ms).await else { return };
            rec.settle_inherited();
            loop {
                if self.next_seq.get() >= self.messages || sim_now_ms() >= self.stop_ms {
                    return;
                }
                let commit_intent = !self.entropy.borrow_mut().chance(t.abort_probability);
                if producer.begin_transaction().is_err() {
                    continue 'restart;
                }
                rec.open(commit_intent);
                let mut deliveries = Vec::new();
                for _ in 0..t.records_per_txn {
                    let seq = self.next_seq.get();
                    if seq >= self.messages {
                        break;
                    }
                    let due = self.start_ms + seq * interval_ms;
                    let now = sim_now_ms();
                    if due > now {
                        tokio::time::sleep(Duration::from_millis(due - now)).await;
                    }
                    crate::workload::while_paused(&self.paused).await;
                    if sim_now_ms() >= self.stop_ms {
                        break;
                    }
                    self.next_seq.set(seq + 1);
                    let key = (self.keys > 0).then(|| format!("k{}", self.entropy.borrow_mut().range_u64(0, u64::from(self.keys) - 1)));
                    let d = rec.send(&producer, &self.topic, key, format!("{}:{seq}", self.process)).await;
                    let id = rec.with_open(|t| t.sends.last().map(|(id, _)| *id)).flatten().unwrap_or(0);
                    deliveries.push((id, d));
                }
                if !rec.finish(&producer, deliveries, commit_intent).await.0 {
                    continue 'restart;
                }
            }
        }
    }
}

impl crate::workload::ConsumerWork {
    /// Back to the committed offsets. Recorded as an `assign` of the unchanged assignment: like
    /// a rebalance, a seek moves positions, so the next poll may go back (not a
    /// `nonmonotonic-poll`).
    fn rewind(&self, consumer: &mut stormlog::client::Consumer) {
        consumer.rewind_to_committed();
        let generation = consumer.group_metadata().map_or(-1, |g| g.generation_id);
        let partitions = consumer.assignment().iter().map(|tp| crate::history::PartitionRef { topic: tp.topic.clone(), partition: tp.partition }).collect();
        let value = OpValue::Assign(crate::history::AssignValue { group: self.group.clone(), generation, partitions });
        let mut h = self.history.borrow_mut();
        let id = h.invoke(sim_now_ms(), &self.process, OpFn::Assign, value.clone());
        h.complete(id, sim_now_ms(), OpKind::Ok, value, None);
    }

    /// Consume-transform-produce: each poll's records are written to the output topic and the
    /// consumed offsets committed in one transaction; an abort rewinds to the committed offsets.
    pub async fn run_transform(self: Rc<Self>, mut consumer: stormlog::client::Consumer) {
        let t = self.txn.as_ref().expect("transactional commit");
        let rec = TxnRecorder {
            process: self.process.clone(),
            transactional_id: t.producer.transactional_id.clone().unwrap_or_default(),
            history: self.history.clone(),
            carry: t.carry.clone(),
            group: self.group.clone(),
        };
        let clock = SimClock::default();
        'restart: loop {
            let Some(producer) = start_producer(&self.net, &t.producer, &self.bootstrap, &clock, u64::MAX).await else { return };
            rec.settle_inherited();
            self.rewind(&mut consumer);
            loop {
                crate::workload::while_paused(&self.paused).await;
                let invoked_ms = sim_now_ms();
                let records = consumer.poll().await;
                if records.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let polled: Vec<PolledRecord> = records.iter().map(crate::workload::polled_record).collect();
                {
                    let mut h = self.history.borrow_mut();
                    let id = h.invoke(invoked_ms, &self.process, OpFn::Poll, OpValue::Poll(crate::history::PollValue { records: Vec::new() }));
                    h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Poll(crate::history::PollValue { records: polled.clone() }), None);
                }
                let Some(group) = consumer.group_metadata() else { continue };
                if producer.begin_transaction().is_err() {
                    continue 'restart;
                }
                // The application's own decision, drawn before anything is sent.
                let abort_on_purpose = t.entropy.borrow_mut().chance(t.abort_probability);
                rec.open(!abort_on_purpose);
                rec.with_open(|o| o.processed = polled.clone());
                let mut deliveries = Vec::new();
                for r in &polled {
                    if self.processing_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(self.processing_ms)).await;
                    }
                    let out = format!("{}>{}", r.value, t.output_topic);
                    let d = rec.send(&producer, &t.output_topic, r.key.clone(), out).await;
                    let id = rec.with_open(|o| o.sends.last().map(|(id, _)| *id)).flatten().unwrap_or(0);
                    deliveries.push((id, d));
                }
                let offsets = consumer.consumed_offsets();
                rec.offsets_sent(&offsets);
                let offsets_ok = producer.send_offsets_to_transaction(&offsets, &group).await.is_ok();
                let (ok, committed) = rec.finish(&producer, deliveries, offsets_ok && !abort_on_purpose).await;
                if !committed && t.rewind_on_abort {
                    self.rewind(&mut consumer);
                }
                if !ok {
                    continue 'restart;
                }
            }
        }
    }
}
