//! The producer, in its first form: one record per Produce request, awaited before the next,
//! with Kafka's retry and delivery-timeout rules and no idempotence (batching, pipelining and
//! the idempotent producer come later). Every outcome says whether the record was surely not
//! written (definite) or may have been (indefinite).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::time::Instant;

use crate::ids::{BrokerId, TopicPartition};
use crate::seam::{Clock, Network};

use super::connection::Connection;
use super::metadata::MetadataCache;
use super::partitioner::partition_for_key;

const PRODUCE_VERSION: i16 = 9;

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

/// Producer configuration with Kafka's names and defaults.
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
        }
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

/// The outcome of one attempt.
enum Attempt {
    Acked(Option<i64>),
    /// Retriable; `maybe_written` when the record may be in the log anyway.
    Retry { maybe_written: bool, message: String },
    Fatal { maybe_written: bool, message: String },
}

pub struct Producer {
    net: Rc<dyn Network>,
    clock: Rc<dyn Clock>,
    bootstrap: Vec<String>,
    config: ProducerConfig,
    metadata: Option<MetadataCache>,
    conns: BTreeMap<BrokerId, Connection>,
    next_unkeyed: i32,
}

impl Producer {
    pub fn new(net: Rc<dyn Network>, clock: Rc<dyn Clock>, bootstrap: Vec<String>, config: ProducerConfig) -> Producer {
        Producer { net, clock, bootstrap, config, metadata: None, conns: BTreeMap::new(), next_unkeyed: 0 }
    }

    /// Sends one record and waits for its outcome, retrying within `delivery.timeout.ms`.
    pub async fn send(&mut self, topic: &str, key: Option<Bytes>, value: Bytes) -> Result<RecordMetadata, SendError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.delivery_timeout_ms);
        let mut maybe_written = false;
        let mut partition = None;
        let mut attempts: u32 = 0;
        loop {
            let outcome = match self.pick_partition(topic, key.as_deref(), &mut partition).await {
                Ok(p) => self.attempt(&TopicPartition::new(topic, p), key.clone(), value.clone()).await,
                Err(message) => Attempt::Retry { maybe_written: false, message },
            };
            let message = match outcome {
                Attempt::Acked(offset) => return Ok(RecordMetadata { partition: partition.unwrap_or(-1), offset }),
                Attempt::Fatal { maybe_written: m, message } => {
                    self.metadata = None;
                    return Err(SendError { definite: !(maybe_written || m), partition, message });
                }
                Attempt::Retry { maybe_written: m, message } => {
                    maybe_written |= m;
                    message
                }
            };
            attempts += 1;
            // Whatever went wrong may be stale metadata (no leader yet, a moved leader): the
            // next send, retried or not, must not trust it.
            self.metadata = None;
            let backoff = Duration::from_millis(self.config.retry_backoff_ms);
            if attempts > self.config.retries || Instant::now() + backoff >= deadline {
                let message = format!("gave up after {attempts} attempts: {message}");
                return Err(SendError { definite: !maybe_written, partition, message });
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// The record's partition, chosen once per record so retries go to the same place.
    async fn pick_partition(&mut self, topic: &str, key: Option<&[u8]>, chosen: &mut Option<i32>) -> Result<i32, String> {
        if let Some(p) = chosen {
            return Ok(*p);
        }
        let metadata = self.metadata().await?;
        let n = metadata.partitions(topic).ok_or_else(|| format!("unknown topic {topic}"))?;
        let p = match key {
            Some(k) => partition_for_key(k, n),
            None => {
                self.next_unkeyed = (self.next_unkeyed + 1) % n;
                self.next_unkeyed
            }
        };
        *chosen = Some(p);
        Ok(p)
    }

    async fn metadata(&mut self) -> Result<&MetadataCache, String> {
        if self.metadata.is_none() {
            let timeouts = (self.config.connection_setup_timeout_ms, self.config.request_timeout_ms);
            let m = MetadataCache::fetch(self.net.as_ref(), &self.bootstrap, &self.config.client_id, timeouts)
                .await
                .map_err(|e| format!("metadata: {e}"))?;
            self.metadata = Some(m);
        }
        Ok(self.metadata.as_ref().expect("just filled"))
    }

    async fn attempt(&mut self, tp: &TopicPartition, key: Option<Bytes>, value: Bytes) -> Attempt {
        let leader = match self.metadata().await.map(|m| m.leader_addr(tp)) {
            Ok(Some(l)) => l,
            Ok(None) => return Attempt::Retry { maybe_written: false, message: format!("no leader for {tp}") },
            Err(message) => return Attempt::Retry { maybe_written: false, message },
        };
        let request = self.produce_request(tp, key, value);
        let (acks, timeout) = (self.config.acks, self.config.request_timeout_ms);
        let conn = match self.connection(leader.0, &leader.1).await {
            Ok(c) => c,
            Err(message) => return Attempt::Retry { maybe_written: false, message },
        };
        if acks == Acks::None {
            return match conn.send_only(ApiKey::Produce, PRODUCE_VERSION, request).await {
                Ok(()) => Attempt::Acked(None),
                Err(e) => {
                    self.conns.remove(&leader.0);
                    Attempt::Retry { maybe_written: e.is_indefinite(), message: e.to_string() }
                }
            };
        }
        match conn.request(ApiKey::Produce, PRODUCE_VERSION, request, timeout).await {
            Ok(ResponseKind::Produce(resp)) => classify(&resp, tp),
            Ok(other) => Attempt::Fatal { maybe_written: true, message: format!("unexpected response {other:?}") },
            Err(e) => {
                self.conns.remove(&leader.0);
                Attempt::Retry { maybe_written: e.is_indefinite(), message: e.to_string() }
            }
        }
    }

    async fn connection(&mut self, id: BrokerId, addr: &str) -> Result<&mut Connection, String> {
        if !self.conns.contains_key(&id) {
            let c = Connection::connect(self.net.as_ref(), addr, &self.config.client_id, self.config.connection_setup_timeout_ms)
                .await
                .map_err(|e| e.to_string())?;
            self.conns.insert(id, c);
        }
        Ok(self.conns.get_mut(&id).expect("just inserted"))
    }

    fn produce_request(&self, tp: &TopicPartition, key: Option<Bytes>, value: Bytes) -> RequestKind {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: self.clock.now_ms(),
            key,
            value: Some(value),
            headers: IndexMap::new(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("encoding one uncompressed record cannot fail");
        let pd = PartitionProduceData::default().with_index(tp.partition).with_records(Some(buf.freeze()));
        let td = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
            .with_partition_data(vec![pd]);
        let timeout = i32::try_from(self.config.request_timeout_ms).unwrap_or(i32::MAX);
        RequestKind::Produce(
            ProduceRequest::default().with_acks(self.config.acks.wire()).with_timeout_ms(timeout).with_topic_data(vec![td]),
        )
    }
}

/// Reads the one partition's answer out of a produce response.
fn classify(resp: &ProduceResponse, tp: &TopicPartition) -> Attempt {
    let pr = resp
        .responses
        .iter()
        .filter(|t| t.name.as_str() == tp.topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.partition);
    let Some(pr) = pr else {
        return Attempt::Fatal { maybe_written: true, message: format!("no answer for {tp}") };
    };
    let Some(err) = ResponseError::try_from_code(pr.error_code) else {
        return Attempt::Acked(Some(pr.base_offset));
    };
    // KAFKA.md §5: these may have been appended (and may yet be committed).
    let maybe_written = matches!(
        err,
        ResponseError::RequestTimedOut | ResponseError::NotLeaderOrFollower | ResponseError::NotEnoughReplicasAfterAppend | ResponseError::KafkaStorageError
    );
    let message = format!("{err:?}");
    if err.is_retriable() {
        Attempt::Retry { maybe_written, message }
    } else {
        Attempt::Fatal { maybe_written, message }
    }
}
