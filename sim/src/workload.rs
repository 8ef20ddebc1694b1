//! Producers and consumers driven through the public client API only, recording every
//! operation in the history: a send is invoked, then ok (acknowledged at an offset), fail
//! (definitely not written) or info (may have been written); a poll that returned records is
//! recorded with them.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use stormlog::client::{Consumer, ConsumerConfig, Producer, ProducerConfig};
use stormlog::seam::{Entropy, Network};

use crate::engine::{SimClock, TurmoilNetwork};
use crate::history::{History, OpFn, OpKind, OpValue, PollValue, PolledRecord, SendValue};

/// Simulated milliseconds since the run began, as the current host sees them.
pub fn sim_now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
}

impl ProducerWork {
    /// Sends at `rate_per_sec` without waiting for outcomes (as applications use Kafka's
    /// producer); each outcome is recorded when its batch completes.
    pub async fn run(self: Rc<Self>) {
        let net: Rc<dyn Network> = Rc::new(TurmoilNetwork);
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
                        None => h.complete(id, sim_now_ms(), OpKind::Info, OpValue::Send(sent), Some("acks=0: no acknowledgement".into())),
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

/// One consumer instance.
pub struct ConsumerWork {
    pub process: String,
    pub topics: Vec<String>,
    pub processing_ms: u64,
    pub config: ConsumerConfig,
    pub bootstrap: Vec<String>,
    pub history: Rc<RefCell<History>>,
}

impl ConsumerWork {
    pub async fn run(self: Rc<Self>) {
        let net: Rc<dyn Network> = Rc::new(TurmoilNetwork);
        let mut consumer = Consumer::new(net, self.bootstrap.clone(), self.config.clone(), self.topics.clone());
        loop {
            let invoked_ms = sim_now_ms();
            let records = consumer.poll().await;
            if records.is_empty() {
                // Nothing arrived (or nothing was reachable): do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let polled: Vec<PolledRecord> = records
                .iter()
                .map(|r| PolledRecord {
                    topic: r.tp.topic.clone(),
                    partition: r.tp.partition,
                    offset: r.offset,
                    key: r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
                })
                .collect();
            {
                let mut h = self.history.borrow_mut();
                let id = h.invoke(invoked_ms, &self.process, OpFn::Poll, OpValue::Poll(PollValue { records: Vec::new() }));
                h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Poll(PollValue { records: polled }), None);
            }
            if self.processing_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.processing_ms * records.len() as u64)).await;
            }
        }
    }
}
