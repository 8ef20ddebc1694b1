//! Producers and consumers driven through the public client API only, recording every
//! operation in the history: a send is invoked, then ok (acknowledged at an offset), fail
//! (definitely not written) or info (may have been written); a poll that returned records is
//! recorded with them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use stormlog::client::{CommitKind, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, Listener, Producer, ProducerConfig};
use stormlog::seam::{Entropy, Network};

use crate::engine::{SimClock, TurmoilNetwork};
use tokio::sync::Notify;

use crate::history::{AssignValue, CommitValue, CommittedOffset, History, OpFn, OpKind, OpValue, PartitionRef, PollValue, PolledRecord, ProcessValue, SendValue};
use crate::scenario::CommitMode;

/// Simulated milliseconds since the run began, as the current host sees them.
pub fn sim_now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Waits while the process is paused (its application loop does nothing meanwhile).
pub(crate) async fn while_paused(paused: &Cell<bool>) {
    while paused.get() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One producer instance; what must survive its restarts lives here.
pub struct ProducerWork {
    pub process: String,
    pub topic: String,
    pub messages: u64,
    pub rate_per_sec: f64,
    pub keys: u32,
    pub start_ms: u64,
    pub stop_ms: u64,
    /// After a restart, resend every message not acknowledged before it (as an application
    /// that keeps its own list of what it still owes would).
    pub restart_resend: bool,
    pub config: ProducerConfig,
    pub bootstrap: Vec<String>,
    pub clock: SimClock,
    pub history: Rc<RefCell<History>>,
    /// The next message number: a restarted producer goes on with new messages.
    pub next_seq: Rc<Cell<u64>>,
    /// Messages sent and not (yet) acknowledged, with their keys: what a restart resends.
    pub unacked: Rc<RefCell<BTreeMap<u64, Option<String>>>>,
    pub entropy: Rc<RefCell<Entropy>>,
    pub paused: Rc<Cell<bool>>,
    /// The simulated network, tapped for the wire log.
    pub net: TurmoilNetwork,
    /// Transactional producers: how transactions are cut and what survives restarts.
    pub txn: Option<TxnSettings>,
}

pub struct TxnSettings {
    pub records_per_txn: u32,
    pub abort_probability: f64,
    pub carry: Rc<RefCell<crate::txn_work::TxnCarry>>,
}

/// A consume-transform-produce consumer's producer side.
pub struct TransformSettings {
    pub producer: ProducerConfig,
    pub output_topic: String,
    pub abort_probability: f64,
    pub rewind_on_abort: bool,
    /// Draws which transactions the application aborts.
    pub entropy: RefCell<Entropy>,
    pub carry: Rc<RefCell<crate::txn_work::TxnCarry>>,
}

impl ProducerWork {
    /// Sends at `rate_per_sec` without waiting for outcomes (as applications use Kafka's
    /// producer); each outcome is recorded when its batch completes.
    pub async fn run(self: Rc<Self>) {
        if self.txn.is_some() {
            return self.run_transactional().await;
        }
        let net: Rc<dyn Network> = Rc::new(self.net.clone());
        let producer = Rc::new(Producer::new(net, Rc::new(self.clock.clone()), self.bootstrap.clone(), self.config.clone()));
        if self.restart_resend {
            let owed: Vec<(u64, Option<String>)> = self.unacked.borrow().iter().map(|(s, k)| (*s, k.clone())).collect();
            for (seq, key) in owed {
                if sim_now_ms() >= self.stop_ms {
                    return;
                }
                self.send_one(&producer, seq, key).await;
            }
        }
        let interval_ms = (1000.0 / self.rate_per_sec).max(1.0) as u64;
        loop {
            let seq = self.next_seq.get();
            if seq >= self.messages {
                return;
            }
            let due = self.start_ms + seq * interval_ms;
            let now = sim_now_ms();
            if due > now {
                tokio::time::sleep(Duration::from_millis(due - now)).await;
            }
            while_paused(&self.paused).await;
            if sim_now_ms() >= self.stop_ms {
                return;
            }
            self.next_seq.set(seq + 1);
            let key = (self.keys > 0).then(|| format!("k{}", self.entropy.borrow_mut().range_u64(0, u64::from(self.keys) - 1)));
            self.send_one(&producer, seq, key).await;
        }
    }

    async fn send_one(self: &Rc<Self>, producer: &Rc<Producer>, seq: u64, key: Option<String>) {
        let value = format!("{}:{seq}", self.process);
        let sent = SendValue::new(&self.topic, key.as_deref(), &value, seq);
        let id = self.history.borrow_mut().invoke(sim_now_ms(), &self.process, OpFn::Send, OpValue::Send(sent.clone()));
        self.unacked.borrow_mut().insert(seq, key.clone());
        let delivery = producer.send(&self.topic, key.map(Bytes::from), Bytes::from(value)).await;
        let this = self.clone();
        // The task holds the producer so that it outlives the send loop's end.
        let keep = producer.clone();
        tokio::task::spawn_local(async move {
            let result = match delivery {
                Ok(d) => d.wait().await,
                Err(e) => Err(e),
            };
            drop(keep);
            let mut h = this.history.borrow_mut();
            match result {
                Ok(md) => {
                    this.unacked.borrow_mut().remove(&seq);
                    match md.offset {
                        Some(offset) => h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Send(sent.acked(md.partition, offset)), None),
                        // acks=0: the send succeeds once it is on the wire, with no offset
                        // (Kafka's RecordMetadata says -1). The application counts it done.
                        None => h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Send(SendValue { partition: Some(md.partition), ..sent }), None),
                    }
                }
                Err(e) => {
                    let kind = if e.definite { OpKind::Fail } else { OpKind::Info };
                    h.complete(id, sim_now_ms(), kind, OpValue::Send(sent), Some(e.message));
                }
            }
        });
    }
}

/// One consumer instance. What it processed, polled and committed goes to the history; with a
/// group, so do its assignment changes.
pub struct ConsumerWork {
    pub process: String,
    pub group: Option<String>,
    pub topics: Vec<String>,
    pub processing_ms: u64,
    pub commit: CommitMode,
    /// 0: process in the polling loop; N: hand records to N workers (by key) and poll again.
    pub threads: u32,
    pub start_ms: u64,
    pub config: ConsumerConfig,
    pub bootstrap: Vec<String>,
    pub history: Rc<RefCell<History>>,
    pub paused: Rc<Cell<bool>>,
    /// The simulated network, tapped for the wire log.
    pub net: TurmoilNetwork,
    /// `commit = "transactional"`.
    pub txn: Option<TransformSettings>,
}

impl ConsumerWork {
    pub async fn run(self: Rc<Self>) {
        let now = sim_now_ms();
        if self.start_ms > now {
            tokio::time::sleep(Duration::from_millis(self.start_ms - now)).await;
        }
        let net: Rc<dyn Network> = Rc::new(self.net.clone());
        let mut consumer = Consumer::new(net, self.bootstrap.clone(), self.config.clone(), self.topics.clone());
        consumer.set_listener(self.listener());
        if self.txn.is_some() {
            return self.run_transform(consumer).await;
        }
        let workers: Vec<Rc<Worker>> = (0..self.threads).map(|_| Worker::start(self.clone())).collect();
        loop {
            while_paused(&self.paused).await;
            let invoked_ms = sim_now_ms();
            let records = consumer.poll().await;
            if records.is_empty() {
                // Nothing arrived (or nothing was reachable): do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let polled: Vec<PolledRecord> = records.iter().map(polled_record).collect();
            {
                let mut h = self.history.borrow_mut();
                let id = h.invoke(invoked_ms, &self.process, OpFn::Poll, OpValue::Poll(PollValue { records: Vec::new() }));
                h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Poll(PollValue { records: polled.clone() }), None);
            }
            if !workers.is_empty() {
                // Handed off: the loop polls again while workers process (KAFKA.md §1.13).
                for r in polled {
                    let n = worker_for(&r, workers.len());
                    workers[n].push(r);
                }
                continue;
            }
            if self.commit == CommitMode::BeforeProcess {
                let _ = consumer.commit_sync(None).await;
            }
            for r in polled {
                self.process_one(r).await;
            }
            match self.commit {
                CommitMode::SyncAfterProcess => {
                    let _ = consumer.commit_sync(None).await;
                }
                CommitMode::AsyncAfterProcess => consumer.commit_async(None),
                _ => {}
            }
        }
    }

    /// The application's work on one record, then its record in the history.
    async fn process_one(&self, r: PolledRecord) {
        while_paused(&self.paused).await;
        let started = sim_now_ms();
        if self.processing_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.processing_ms)).await;
        }
        let value = OpValue::Process(ProcessValue { group: self.group.clone(), records: vec![r] });
        let mut h = self.history.borrow_mut();
        let id = h.invoke(started, &self.process, OpFn::Process, value.clone());
        h.complete(id, sim_now_ms(), OpKind::Ok, value, None);
    }

    /// Records assignment changes and commits as the consumer reports them.
    fn listener(self: &Rc<Self>) -> Listener {
        let this = Rc::downgrade(self);
        let open: Rc<RefCell<BTreeMap<u64, (u64, CommitValue)>>> = Rc::default();
        Rc::new(move |event: &ConsumerEvent| {
            let Some(this) = this.upgrade() else { return };
            let mut h = this.history.borrow_mut();
            let now = sim_now_ms();
            match event {
                ConsumerEvent::Assigned { generation, partitions } => {
                    let partitions = partitions.iter().map(|tp| PartitionRef { topic: tp.topic.clone(), partition: tp.partition }).collect();
                    let value = OpValue::Assign(AssignValue { group: this.group.clone(), generation: *generation, partitions });
                    let id = h.invoke(now, &this.process, OpFn::Assign, value.clone());
                    h.complete(id, now, OpKind::Ok, value, None);
                }
                ConsumerEvent::CommitStarted { id, kind, offsets } => {
                    let how = if this.commit == CommitMode::BeforeProcess && *kind == CommitKind::Sync { "before-process" } else { kind.name() };
                    let offsets = offsets.iter().map(|(tp, o)| CommittedOffset { topic: tp.topic.clone(), partition: tp.partition, offset: *o }).collect();
                    let value = CommitValue { group: this.group.clone().unwrap_or_default(), how: how.to_string(), offsets };
                    let op = h.invoke(now, &this.process, OpFn::Commit, OpValue::Commit(value.clone()));
                    open.borrow_mut().insert(*id, (op, value));
                }
                ConsumerEvent::CommitFinished { id, result } => {
                    let Some((op, value)) = open.borrow_mut().remove(id) else { return };
                    match result {
                        Ok(()) => h.complete(op, now, OpKind::Ok, OpValue::Commit(value), None),
                        Err(e) => {
                            let kind = if e.definite { OpKind::Fail } else { OpKind::Info };
                            h.complete(op, now, kind, OpValue::Commit(value), Some(e.message.clone()));
                        }
                    }
                }
                ConsumerEvent::Left { .. } => {}
            }
        })
    }
}

pub(crate) fn polled_record(r: &ConsumedRecord) -> PolledRecord {
    PolledRecord {
        topic: r.tp.topic.clone(),
        partition: r.tp.partition,
        offset: r.offset,
        key: r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
    }
}

/// Records of one key go to one worker (per-key order kept); keyless ones by partition.
fn worker_for(r: &PolledRecord, workers: usize) -> usize {
    let key = r.key.clone().unwrap_or_else(|| format!("{}/{}", r.topic, r.partition));
    let h = key.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % workers as u64) as usize
}

/// A processing worker: its queue dies with the process, as a thread pool's would.
struct Worker {
    queue: RefCell<VecDeque<PolledRecord>>,
    wake: Notify,
}

impl Worker {
    fn start(work: Rc<ConsumerWork>) -> Rc<Worker> {
        let w = Rc::new(Worker { queue: RefCell::default(), wake: Notify::new() });
        let me = w.clone();
        tokio::task::spawn_local(async move {
            loop {
                let next = me.queue.borrow_mut().pop_front();
                match next {
                    Some(r) => work.process_one(r).await,
                    None => me.wake.notified().await,
                }
            }
        });
        w
    }

    fn push(&self, r: PolledRecord) {
        self.queue.borrow_mut().push_back(r);
        self.wake.notify_one();
    }
}
