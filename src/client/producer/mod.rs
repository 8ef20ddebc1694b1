//! The producer, as Kafka's `KafkaProducer` works: `send` appends the record to a per-partition
//! batch in the accumulator and returns at once with a future of the outcome; a sender task
//! drains ready batches (full, or older than `linger.ms`) into one Produce request per leader,
//! keeps up to `max.in.flight.requests.per.connection` requests in flight on a pipelined
//! connection, and retries failed batches within `delivery.timeout.ms`.
//!
//! With `enable.idempotence` (the default) the producer gets a producer id from InitProducerId
//! and numbers each partition's records; retried batches keep their sequence numbers, so the
//! broker recognises a retry of a batch it already has (KAFKA.md §1.9). A batch whose fate is
//! unknown when it is given up leaves its partition's sequence unresolved: the producer bumps its
//! epoch and starts that partition's sequences again at 0 (KIP-360).
//!
//! Every outcome says whether the record was surely not written (definite) or may have been
//! (indefinite). Must run inside a `LocalSet`: the sender and each connection are local tasks.

mod accumulator;
mod sender;
mod transactions;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::seam::{Clock, Network};

use accumulator::{Accumulator, PendingRecord};
use sender::Sender;
pub use transactions::{GroupMetadata, TxnError, TxnErrorKind};

/// `acks`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer configuration with Kafka's names and defaults (Kafka 4.x).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client_id: String,
    /// `acks` (default all)
    pub acks: Acks,
    /// `retries` (default i32::MAX)
    pub retries: u32,
    /// `retry.backoff.ms` (default 100)
    pub retry_backoff_ms: u64,
    /// `request.timeout.ms` (default 30000)
    pub request_timeout_ms: u64,
    /// `socket.connection.setup.timeout.ms` (default 10000)
    pub connection_setup_timeout_ms: u64,
    /// `delivery.timeout.ms` (default 120000)
    pub delivery_timeout_ms: u64,
    /// `batch.size` in bytes (default 16384)
    pub batch_size: usize,
    /// `linger.ms` (default 5 since Kafka 4.0, KIP-1030)
    pub linger_ms: u64,
    /// `buffer.memory` in bytes (default 32 MiB)
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` waits for buffer space (default 60000)
    pub max_block_ms: u64,
    /// `max.in.flight.requests.per.connection` (default 5)
    pub max_in_flight: usize,
    /// `enable.idempotence` (default true)
    pub enable_idempotence: bool,
    /// Behaviour switch `producer_resequences_on_out_of_order`: treat OUT_OF_ORDER_SEQUENCE_NUMBER
    /// as retriable and resend the batch with new sequence numbers (the client bug of KAFKA.md
    /// §3 row 18). Off in every real Kafka client.
    pub resequence_on_out_of_order: bool,
    /// `transactional.id` (default none): makes the producer transactional.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000): the coordinator aborts a transaction open longer.
    pub transaction_timeout_ms: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client_id: "producer".into(),
            acks: Acks::All,
            retries: i32::MAX as u32,
            retry_backoff_ms: 100,
            request_timeout_ms: 30_000,
            connection_setup_timeout_ms: 10_000,
            delivery_timeout_ms: 120_000,
            batch_size: 16_384,
            linger_ms: 5,
            buffer_memory: 32 * 1024 * 1024,
            max_block_ms: 60_000,
            max_in_flight: 5,
            enable_idempotence: true,
            resequence_on_out_of_order: false,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
        }
    }
}

impl ProducerConfig {
    /// Kafka's `ProducerConfig` checks: idempotence needs acks=all, retries > 0 and at most 5
    /// requests in flight. Names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("max.in.flight.requests.per.connection must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch.size must be at least 1".into());
        }
        if self.transactional_id.is_some() && !self.enable_idempotence {
            return Err("transactional.id requires enable.idempotence=true".into());
        }
        if self.enable_idempotence {
            if self.acks != Acks::All {
                return Err("enable.idempotence=true requires acks=all".into());
            }
            if self.retries == 0 {
                return Err("enable.idempotence=true requires retries > 0".into());
            }
            if self.max_in_flight > 5 {
                return Err("enable.idempotence=true requires max.in.flight.requests.per.connection <= 5".into());
            }
        }
        Ok(())
    }
}

/// Where an acknowledged record went (`offset` is None with acks=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A send that did not succeed. `definite`: no attempt can have written the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub definite: bool,
    pub partition: Option<i32>,
    pub message: String,
}

/// The outcome of one `send`, delivered when its batch completes.
pub struct Delivery(oneshot::Receiver<Result<RecordMetadata, SendError>>);

impl Delivery {
    pub async fn wait(self) -> Result<RecordMetadata, SendError> {
        self.0.await.unwrap_or_else(|_| {
            Err(SendError { definite: false, partition: None, message: "producer closed before the outcome was known".into() })
        })
    }
}

/// What the sender and `send` share.
pub(crate) struct Shared {
    pub acc: RefCell<Accumulator>,
    /// The transaction coordinator connection (transactional producers).
    pub txn: RefCell<transactions::TxnLink>,
    /// Wakes the sender: a record was appended, a request completed.
    pub wake: Notify,
    /// Wakes blocked `send`s: buffer space was freed.
    pub space: Notify,
}

pub struct Producer {
    shared: Rc<Shared>,
    clock: Rc<dyn Clock>,
    config: ProducerConfig,
    sender: JoinHandle<()>,
    net: Rc<dyn Network>,
    bootstrap: Vec<String>,
}

impl Producer {
    /// Starts the producer's sender task. Must run inside a `LocalSet`. The configuration must
    /// pass [`ProducerConfig::validate`].
    pub fn new(net: Rc<dyn Network>, clock: Rc<dyn Clock>, bootstrap: Vec<String>, config: ProducerConfig) -> Producer {
        debug_assert!(config.validate().is_ok(), "{:?}", config.validate());
        let mut acc = Accumulator::new(config.clone());
        if config.transactional_id.is_some() {
            acc.txn_added = Some(Default::default());
        }
        let txn = RefCell::new(transactions::TxnLink::default());
        let shared = Rc::new(Shared { acc: RefCell::new(acc), txn, wake: Notify::new(), space: Notify::new() });
        let sender = Sender::new(net.clone(), bootstrap.clone(), config.clone(), shared.clone());
        let sender = tokio::task::spawn_local(sender.run());
        Producer { shared, clock, config, sender, net, bootstrap }
    }

    /// Appends a record to its partition's batch; waits (at most `max.block.ms`) while the
    /// accumulator holds `buffer.memory` bytes. The returned [`Delivery`] resolves when the
    /// batch completes.
    pub async fn send(&self, topic: &str, key: Option<Bytes>, value: Bytes) -> Result<Delivery, SendError> {
        if self.config.transactional_id.is_some() && !self.in_transaction() {
            return Err(SendError { definite: true, partition: None, message: "a transactional producer sends only inside a transaction".into() });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.max_block_ms);
        let size = accumulator::record_size(key.as_ref(), &value);
        loop {
            // Registered before the check, so a release between check and wait is not missed.
            let freed = self.shared.space.notified();
            if self.shared.acc.borrow().has_room(size) {
                break;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(SendError {
                    definite: true,
                    partition: None,
                    message: format!("buffer.memory full for {} ms (max.block.ms)", self.config.max_block_ms),
                });
            }
        }
        let partition = loop {
            let freed = self.shared.space.notified();
            if let Some(p) = self.shared.acc.borrow_mut().choose_partition(topic, key.as_deref()) {
                break p;
            }
            // Kafka's `waitOnMetadata`: the sender fetches metadata, `send` waits for the topic.
            self.shared.acc.borrow_mut().metadata_wanted = true;
            self.shared.wake.notify_one();
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(SendError {
                    definite: true,
                    partition: None,
                    message: format!("topic {topic} not present in metadata after {} ms (max.block.ms)", self.config.max_block_ms),
                });
            }
        };
        let (done, rx) = oneshot::channel();
        let keyed = key.is_some();
        let record = PendingRecord { key, value, timestamp: self.clock.now_ms(), done };
        let tp = crate::ids::TopicPartition::new(topic, partition);
        self.shared.acc.borrow_mut().append(tp, keyed, record, size);
        self.shared.wake.notify_one();
        Ok(Delivery(rx))
    }

    /// Records waiting in the accumulator or in flight.
    pub fn pending(&self) -> usize {
        self.shared.acc.borrow().pending_records()
    }

    /// The producer id and epoch in use (idempotent producers, once initialised).
    pub fn producer_id_and_epoch(&self) -> Option<(i64, i16)> {
        self.shared.acc.borrow().producer_id_and_epoch()
    }
}

impl Drop for Producer {
    /// Dropping the producer stops it where it is (like a crash): outcomes not yet known stay
    /// unknown. Call sites that want every outcome wait on their deliveries first.
    fn drop(&mut self) {
        self.sender.abort();
    }
}
