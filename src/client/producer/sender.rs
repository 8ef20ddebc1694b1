//! The sender task (Kafka's `Sender`): keeps metadata and the producer id fresh, drains ready
//! batches into Produce requests, and turns each partition's answer into success, a retry or a
//! failure. Connections are opened in the background, so one unreachable broker does not stall
//! the partitions led by others.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};
use tokio::time::{Duration, Instant};

use crate::client::error::ClientError;
use crate::client::metadata::MetadataCache;
use crate::client::pipeline::{Pipeline, Reply};
use crate::ids::{BrokerId, TopicPartition};
use crate::seam::Network;

use super::accumulator::Batch;
use super::{Acks, ProducerConfig, Shared};

const PRODUCE_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// Kafka's `reconnect.backoff.ms` default.
const RECONNECT_BACKOFF_MS: u64 = 50;

enum Link {
    Connecting,
    Up(Rc<Pipeline>),
    /// The last attempt failed; do not try again before this.
    Down(Instant),
}

pub(crate) struct Sender {
    net: Rc<dyn Network>,
    bootstrap: Vec<String>,
    config: ProducerConfig,
    shared: Rc<Shared>,
    links: Rc<RefCell<BTreeMap<BrokerId, Link>>>,
    last_metadata_attempt: Option<Instant>,
}

impl Sender {
    pub fn new(net: Rc<dyn Network>, bootstrap: Vec<String>, config: ProducerConfig, shared: Rc<Shared>) -> Sender {
        Sender { net, bootstrap, config, shared, links: Rc::new(RefCell::new(BTreeMap::new())), last_metadata_attempt: None }
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(self.config.retry_backoff_ms.max(1))
    }

    pub async fn run(mut self) {
        loop {
            let mut wake: Option<Instant> = None;
            let mut wake_at = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
            let now = Instant::now();

            let wants_metadata = {
                let acc = self.shared.acc.borrow();
                acc.metadata.is_none() || acc.metadata_stale || acc.metadata_wanted
            };
            if wants_metadata {
                let due = self.last_metadata_attempt.map_or(now, |t| t + self.backoff());
                if due <= now {
                    self.refresh_metadata().await;
                    continue;
                }
                wake_at(due);
            }
            if self.config.enable_idempotence && self.config.transactional_id.is_none() && self.shared.acc.borrow().producer.is_none() {
                match self.init_producer_id().await {
                    Ok(p) => self.shared.acc.borrow_mut().producer = Some(p),
                    Err(_) => tokio::time::sleep(self.backoff()).await,
                }
                continue;
            }

            if self.config.transactional_id.is_some() && !self.shared.acc.borrow().txn_wanted.is_empty() {
                super::transactions::add_wanted_partitions(&self.net, &self.bootstrap, &self.config, &self.shared).await;
                if let Some(t) = self.shared.txn.borrow().add_retry_at() {
                    wake_at(t);
                }
            }

            let expired = self.shared.acc.borrow_mut().expire(now);
            if !expired.is_empty() {
                for b in expired {
                    self.shared.acc.borrow_mut().release(&b);
                    let n = b.records.len();
                    b.fail(false, format!("expiring {n} record(s): delivery.timeout.ms ({} ms) passed since batch creation", self.config.delivery_timeout_ms));
                }
                self.shared.space.notify_waiters();
            }
            self.shared.acc.borrow_mut().bump_epoch_if_needed();

            let (ready, next_check) = {
                let mut acc = self.shared.acc.borrow_mut();
                acc.drain(now, &mut |node, addr| self.link_ready(node, addr, now))
            };
            if let Some(t) = next_check {
                wake_at(t);
            }
            if self.shared.acc.borrow().metadata_stale {
                // A partition without a known leader: ask again after the backoff (Kafka's
                // sender requests a metadata update for unknown leaders). Nothing else would
                // wake this loop before the delivery timeout.
                wake_at(self.last_metadata_attempt.map_or(now, |t| t + self.backoff()));
            }
            if let Some(t) = self.shared.acc.borrow().next_expiry() {
                wake_at(t);
            }
            for (node, batches) in ready {
                self.send_produce(node, batches);
            }
            if !self.shared.acc.borrow().txn_wanted.is_empty() {
                // Partitions wait for AddPartitionsToTxn: go again now, or at its retry time.
                match self.shared.txn.borrow().add_retry_at() {
                    Some(t) if t > now => wake_at(t),
                    _ => continue,
                }
            }
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.shared.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Whether requests can go to `node` now; starts connecting when they cannot yet.
    fn link_ready(&self, node: BrokerId, addr: &str, now: Instant) -> bool {
        let mut links = self.links.borrow_mut();
        match links.get(&node) {
            Some(Link::Up(p)) if !p.is_closed() => return true,
            Some(Link::Connecting) => return false,
            Some(Link::Down(until)) if *until > now => return false,
            _ => {}
        }
        let addr = addr.to_string();
        links.insert(node, Link::Connecting);
        let (net, links, shared) = (self.net.clone(), self.links.clone(), self.shared.clone());
        let (client_id, timeout) = (self.config.client_id.clone(), self.config.connection_setup_timeout_ms);
        tokio::task::spawn_local(async move {
            let link = match Pipeline::connect(net.as_ref(), &addr, &client_id, timeout).await {
                Ok(p) => Link::Up(Rc::new(p)),
                Err(_) => {
                    // The leader we know may be gone: ask again who leads.
                    shared.acc.borrow_mut().metadata_stale = true;
                    Link::Down(Instant::now() + Duration::from_millis(RECONNECT_BACKOFF_MS))
                }
            };
            links.borrow_mut().insert(node, link);
            shared.wake.notify_one();
        });
        false
    }

    async fn refresh_metadata(&mut self) {
        self.last_metadata_attempt = Some(Instant::now());
        let timeouts = (self.config.connection_setup_timeout_ms, self.config.request_timeout_ms);
        if let Ok(m) = MetadataCache::fetch(self.net.as_ref(), &self.bootstrap, &self.config.client_id, timeouts).await {
            let mut acc = self.shared.acc.borrow_mut();
            acc.metadata = Some(m);
            acc.metadata_stale = false;
            acc.metadata_wanted = false;
        }
        // Blocked sends look again, whether or not their topic is now known.
        self.shared.space.notify_waiters();
    }

    /// InitProducerId without a transactional id, from any broker that answers.
    async fn init_producer_id(&self) -> Result<(i64, i16), ClientError> {
        let brokers: Vec<String> = match self.shared.acc.borrow().metadata.as_ref() {
            Some(m) if !m.brokers.is_empty() => m.brokers.values().cloned().collect(),
            _ => self.bootstrap.clone(),
        };
        let timeout = i32::try_from(self.config.delivery_timeout_ms).unwrap_or(i32::MAX);
        let req = RequestKind::InitProducerId(
            InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(timeout).with_producer_id((-1).into()).with_producer_epoch(-1),
        );
        let mut last = ClientError::Connect("no brokers".into());
        for addr in brokers {
            let conn = match Pipeline::connect(self.net.as_ref(), &addr, &self.config.client_id, self.config.connection_setup_timeout_ms).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match conn.request(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, &req, self.config.request_timeout_ms).await {
                Ok(ResponseKind::InitProducerId(r)) if r.error_code == 0 => return Ok((r.producer_id.0, r.producer_epoch)),
                Ok(ResponseKind::InitProducerId(r)) => last = ClientError::Protocol(format!("InitProducerId error {}", r.error_code)),
                Ok(other) => last = ClientError::Protocol(format!("expected InitProducerId, got {other:?}")),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn send_produce(&self, node: BrokerId, batches: Vec<Batch>) {
        let pipeline = match self.links.borrow().get(&node) {
            Some(Link::Up(p)) => p.clone(),
            _ => unreachable!("drain only hands out batches for connected brokers"),
        };
        let request = produce_request(&self.config, &batches);
        let expects_response = self.config.acks != Acks::None;
        let reply = pipeline.start(ApiKey::Produce, PRODUCE_VERSION, &request, self.config.request_timeout_ms, expects_response);
        *self.shared.acc.borrow_mut().in_flight_by_node.entry(node).or_default() += 1;
        let shared = self.shared.clone();
        let links = self.links.clone();
        let config = self.config.clone();
        tokio::task::spawn_local(async move {
            let reply: Reply = reply.await.unwrap_or_else(|_| Err(ClientError::Io("connection task ended".into())));
            if reply.is_err() {
                // A broken or silent connection is dropped (unless already replaced); the next
                // drain reconnects.
                let stale = matches!(links.borrow().get(&node), Some(Link::Up(p)) if Rc::ptr_eq(p, &pipeline));
                if stale {
                    links.borrow_mut().remove(&node);
                }
            }
            complete(&shared, &config, node, batches, reply);
            shared.wake.notify_one();
            shared.space.notify_waiters();
        });
    }
}

/// One Produce request carrying one batch per partition.
fn produce_request(config: &ProducerConfig, batches: &[Batch]) -> RequestKind {
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for b in batches {
        topics.entry(b.tp.topic.as_str()).or_default().push(PartitionProduceData::default().with_index(b.tp.partition).with_records(Some(encode_batch(b, config.transactional_id.is_some()))));
    }
    let topic_data = topics
        .into_iter()
        .map(|(name, parts)| TopicProduceData::default().with_name(TopicName(StrBytes::from_string(name.to_string()))).with_partition_data(parts))
        .collect();
    let timeout = i32::try_from(config.request_timeout_ms).unwrap_or(i32::MAX);
    let txn_id = config.transactional_id.clone().map(|t| kafka_protocol::messages::TransactionalId(StrBytes::from_string(t)));
    RequestKind::Produce(ProduceRequest::default().with_transactional_id(txn_id).with_acks(config.acks.wire()).with_timeout_ms(timeout).with_topic_data(topic_data))
}

fn encode_batch(b: &Batch, transactional: bool) -> bytes::Bytes {
    let (pid, epoch, base) = b.sequence.map_or((-1, -1, -1), |s| (s.producer_id, s.epoch, s.base));
    let records: Vec<Record> = b
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder derives the batch's base sequence from these; only it is stored.
            sequence: if base < 0 { -1 } else { base.wrapping_add(i as i32) },
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: Some(r.value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    crate::protocol::encode_batch_v2(&records)
}

/// What to do with one batch after its request completed.
enum Verdict {
    Done(Option<i64>),
    Retry { maybe_written: bool, message: String, refresh: bool },
    Fail { maybe_written: bool, message: String },
}

fn complete(shared: &Shared, config: &ProducerConfig, node: BrokerId, batches: Vec<Batch>, reply: Reply) {
    let now = Instant::now();
    let mut acc = shared.acc.borrow_mut();
    acc.request_done(node);
    for mut batch in batches {
        acc.landed(&batch.tp);
        let verdict = match &reply {
            Ok(None) => Verdict::Done(None),
            Ok(Some(ResponseKind::Produce(resp))) => partition_verdict(resp, &batch),
            Ok(Some(other)) => Verdict::Fail { maybe_written: true, message: format!("unexpected response {other:?}") },
            Err(e) => Verdict::Retry { maybe_written: e.is_indefinite(), message: e.to_string(), refresh: true },
        };
        let verdict = match verdict {
            Verdict::Fail { maybe_written, message } if message == OUT_OF_ORDER => {
                idempotent_out_of_order(&mut acc, config, &batch, maybe_written)
            }
            v => v,
        };
        match verdict {
            Verdict::Done(offset) => {
                if let Some(seq) = batch.sequence {
                    acc.acked(&batch.tp, seq, batch.record_count());
                }
                acc.release(&batch);
                batch.succeed(offset);
            }
            Verdict::Retry { maybe_written, message, refresh } => {
                acc.metadata_stale |= refresh;
                batch.maybe_written |= maybe_written;
                batch.attempts += 1;
                let expired = now >= acc.delivery_deadline(&batch);
                if batch.attempts > config.retries || expired {
                    if batch.sequence.is_some() && batch.maybe_written {
                        acc.needs_bump = true;
                    }
                    acc.release(&batch);
                    let why = if expired { "delivery.timeout.ms passed" } else { "retries exhausted" };
                    let attempts = batch.attempts;
                    if acc.txn_added.is_some() {
                        acc.txn_abortable.get_or_insert_with(|| format!("{why}: {message}"));
                    }
                    batch.fail(false, format!("{why} after {attempts} attempts: {message}"));
                } else {
                    acc.requeue(batch, now);
                }
            }
            Verdict::Fail { maybe_written, message } => {
                acc.release(&batch);
                if acc.txn_added.is_some() {
                    acc.txn_abortable.get_or_insert_with(|| message.clone());
                }
                batch.fail(maybe_written, message);
            }
        }
    }
}

const OUT_OF_ORDER: &str = "OutOfOrderSequenceNumber";

/// OUT_OF_ORDER_SEQUENCE_NUMBER for an idempotent batch (Kafka's `TransactionManager.canRetry`):
/// when an earlier batch of ours is what the broker is missing, this batch is retried after it;
/// when this batch is the first unacknowledged one, the broker has lost acknowledged state: the
/// batch fails and the producer bumps its epoch. Switch 7 instead resends it with new sequence
/// numbers, which is how a client turns the error into duplicates.
fn idempotent_out_of_order(acc: &mut super::accumulator::Accumulator, config: &ProducerConfig, batch: &Batch, maybe_written: bool) -> Verdict {
    let message = OUT_OF_ORDER.to_string();
    let Some(seq) = batch.sequence else {
        return Verdict::Fail { maybe_written, message };
    };
    if config.resequence_on_out_of_order {
        acc.needs_bump = true;
        return Verdict::Retry { maybe_written: false, message, refresh: false };
    }
    if acc.is_first_unacked(&batch.tp, seq) {
        acc.needs_bump = true;
        Verdict::Fail { maybe_written, message }
    } else {
        Verdict::Retry { maybe_written: false, message, refresh: false }
    }
}

/// Reads one batch's answer out of a produce response.
fn partition_verdict(resp: &ProduceResponse, batch: &Batch) -> Verdict {
    let tp: &TopicPartition = &batch.tp;
    let pr = resp
        .responses
        .iter()
        .filter(|t| t.name.as_str() == tp.topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.partition);
    let Some(pr) = pr else {
        return Verdict::Fail { maybe_written: true, message: format!("no answer for {tp}") };
    };
    let Some(err) = ResponseError::try_from_code(pr.error_code) else {
        return Verdict::Done(Some(pr.base_offset));
    };
    // KAFKA.md §5: these may have been appended (and may yet be committed).
    let maybe_written = matches!(
        err,
        ResponseError::RequestTimedOut | ResponseError::NotLeaderOrFollower | ResponseError::NotEnoughReplicasAfterAppend | ResponseError::KafkaStorageError
    );
    let refresh = matches!(
        err,
        ResponseError::NotLeaderOrFollower | ResponseError::UnknownTopicOrPartition | ResponseError::LeaderNotAvailable | ResponseError::KafkaStorageError
    );
    let message = format!("{err:?}");
    match err {
        ResponseError::OutOfOrderSequenceNumber => Verdict::Fail { maybe_written, message },
        _ if err.is_retriable() => Verdict::Retry { maybe_written, message, refresh },
        _ => Verdict::Fail { maybe_written, message },
    }
}
