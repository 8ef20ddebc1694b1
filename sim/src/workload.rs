//! Producers and consumers driven through the public client API only, recording every
//! operation in the history: a send is invoked, then ok (acknowledged at an offset), fail
//! (definitely not written) or info (may have been written); a poll that returned records is
//! recorded with them.

use std::cell::{Cell, RefCell};
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
    pub config: ProducerConfig,
    pub bootstrap: Vec<String>,
    pub clock: SimClock,
    pub history: Rc<RefCell<History>>,
    /// The next message number: a restarted producer goes on with new messages.
    pub next_seq: Rc<Cell<u64>>,
    pub entropy: Rc<RefCell<Entropy>>,
}

impl ProducerWork {
    pub async fn run(self: Rc<Self>) {
        let net: Rc<dyn Network> = Rc::new(TurmoilNetwork);
        let mut producer = Producer::new(net, Rc::new(self.clock.clone()), self.bootstrap.clone(), self.config.clone());
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
            self.send_one(&mut producer, seq).await;
        }
    }

    async fn send_one(&self, producer: &mut Producer, seq: u64) {
        let value = format!("{}:{seq}", self.process);
        let key = (self.keys > 0).then(|| format!("k{}", self.entropy.borrow_mut().range_u64(0, u64::from(self.keys) - 1)));
        let sent = SendValue::new(&self.topic, key.as_deref(), &value, seq);
        let id = self.history.borrow_mut().invoke(sim_now_ms(), &self.process, OpFn::Send, OpValue::Send(sent.clone()));
        let result = producer.send(&self.topic, key.map(Bytes::from), Bytes::from(value)).await;
        let mut h = self.history.borrow_mut();
        match result {
            Ok(md) => match md.offset {
                Some(offset) => h.complete(id, sim_now_ms(), OpKind::Ok, OpValue::Send(sent.acked(md.partition, offset)), None),
                None => h.complete(id, sim_now_ms(), OpKind::Info, OpValue::Send(sent), Some("acks=0: no acknowledgement".into())),
            },
            Err(e) => {
                let kind = if e.definite { OpKind::Fail } else { OpKind::Info };
                h.complete(id, sim_now_ms(), kind, OpValue::Send(sent), Some(e.message));
            }
        }
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
