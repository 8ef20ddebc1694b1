//! The consumer, in its first form: assigned every partition of its topics (no group yet),
//! positions reset by `auto.offset.reset`, fetching from each leader in turn.

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, FetchRequest, FetchResponse, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::ids::{BrokerId, TopicPartition};
use crate::seam::Network;

use super::connection::Connection;
use super::error::ClientError;
use super::metadata::MetadataCache;
use super::offsets::{list_offset, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};

const FETCH_VERSION: i16 = 12;

/// `auto.offset.reset`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    None,
}

/// Consumer configuration with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub client_id: String,
    /// `auto.offset.reset` (default latest)
    pub auto_offset_reset: OffsetReset,
    /// `fetch.max.wait.ms` (default 500)
    pub fetch_max_wait_ms: i32,
    /// `max.partition.fetch.bytes` (default 1 MiB)
    pub max_partition_fetch_bytes: i32,
    /// `request.timeout.ms` (default 30000)
    pub request_timeout_ms: u64,
    /// `socket.connection.setup.timeout.ms` (default 10000)
    pub connection_setup_timeout_ms: u64,
    /// `isolation.level`: 0 read_uncommitted (default), 1 read_committed
    pub isolation_level: i8,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            client_id: "consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            connection_setup_timeout_ms: 10_000,
            isolation_level: 0,
        }
    }
}

/// One record handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub tp: TopicPartition,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

pub struct Consumer {
    net: Rc<dyn Network>,
    bootstrap: Vec<String>,
    config: ConsumerConfig,
    topics: Vec<String>,
    metadata: Option<MetadataCache>,
    conns: BTreeMap<BrokerId, Connection>,
    /// Next offset to read per assigned partition (None: to be reset).
    positions: BTreeMap<TopicPartition, Option<i64>>,
}

impl Consumer {
    pub fn new(net: Rc<dyn Network>, bootstrap: Vec<String>, config: ConsumerConfig, topics: Vec<String>) -> Consumer {
        Consumer { net, bootstrap, config, topics, metadata: None, conns: BTreeMap::new(), positions: BTreeMap::new() }
    }

    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).copied().flatten()
    }

    /// Fetches once from every leader of the assigned partitions; returns what arrived, in
    /// partition then offset order. Failures are absorbed: they drop the connection and the
    /// metadata so the next poll starts afresh.
    pub async fn poll(&mut self) -> Vec<ConsumedRecord> {
        if self.refresh_assignment().await.is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let by_leader = self.by_leader();
        // A topic the brokers do not know yet, or a partition without a known leader, needs
        // fresh metadata (Kafka's client refreshes on exactly this), or the consumer would
        // never learn where to read it.
        let unknown_topic = self.metadata.as_ref().is_some_and(|m| self.topics.iter().any(|t| m.partitions(t).is_none()));
        if unknown_topic || by_leader.values().map(Vec::len).sum::<usize>() < self.positions.len() {
            self.metadata = None;
        }
        for (leader, tps) in by_leader {
            let wait = if out.is_empty() { self.config.fetch_max_wait_ms } else { 0 };
            if self.fetch_from(leader, &tps, wait, &mut out).await.is_err() {
                self.conns.remove(&leader);
                self.metadata = None;
            }
        }
        out
    }

    async fn refresh_assignment(&mut self) -> Result<(), ClientError> {
        if self.metadata.is_some() {
            return Ok(());
        }
        let timeouts = (self.config.connection_setup_timeout_ms, self.config.request_timeout_ms);
        let m = MetadataCache::fetch(self.net.as_ref(), &self.bootstrap, &self.config.client_id, timeouts).await?;
        for topic in &self.topics {
            for p in 0..m.partitions(topic).unwrap_or(0) {
                self.positions.entry(TopicPartition::new(topic.clone(), p)).or_insert(None);
            }
        }
        self.metadata = Some(m);
        Ok(())
    }

    fn by_leader(&self) -> BTreeMap<BrokerId, Vec<TopicPartition>> {
        let mut out: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
        let Some(m) = &self.metadata else { return out };
        for tp in self.positions.keys() {
            if let Some((leader, _)) = m.leader_addr(tp) {
                out.entry(leader).or_default().push(tp.clone());
            }
        }
        out
    }

    async fn fetch_from(&mut self, leader: BrokerId, tps: &[TopicPartition], wait_ms: i32, out: &mut Vec<ConsumedRecord>) -> Result<(), ClientError> {
        for tp in tps {
            if self.position(tp).is_none() {
                self.reset_position(leader, tp).await?;
            }
        }
        let req = self.fetch_request(tps, wait_ms);
        let timeout = self.config.request_timeout_ms + u64::try_from(wait_ms).unwrap_or(0);
        let conn = self.connection(leader).await?;
        match conn.request(ApiKey::Fetch, FETCH_VERSION, req, timeout).await? {
            ResponseKind::Fetch(resp) => self.absorb(&resp, out),
            other => Err(ClientError::Protocol(format!("expected Fetch, got {other:?}"))),
        }
    }

    fn fetch_request(&self, tps: &[TopicPartition], wait_ms: i32) -> RequestKind {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for tp in tps {
            let fp = FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(self.position(tp).unwrap_or(0))
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes);
            topics.entry(tp.topic.as_str()).or_default().push(fp);
        }
        let topics = topics
            .into_iter()
            .map(|(t, ps)| FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect();
        RequestKind::Fetch(
            FetchRequest::default()
                .with_replica_id(WireBrokerId(-1))
                .with_max_wait_ms(wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(50 * 1024 * 1024)
                .with_isolation_level(self.config.isolation_level)
                .with_session_epoch(-1)
                .with_topics(topics),
        )
    }

    /// Takes records at or past each position; errors reset positions or the metadata.
    fn absorb(&mut self, resp: &FetchResponse, out: &mut Vec<ConsumedRecord>) -> Result<(), ClientError> {
        for t in &resp.responses {
            for pd in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), pd.partition_index);
                match ResponseError::try_from_code(pd.error_code) {
                    None => {}
                    Some(ResponseError::OffsetOutOfRange) => {
                        self.positions.insert(tp, None);
                        continue;
                    }
                    Some(_) => {
                        self.metadata = None;
                        continue;
                    }
                }
                let Some(records) = &pd.records else { continue };
                let mut buf = records.clone();
                let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| ClientError::Protocol(format!("{tp}: {e}")))?;
                let mut pos = self.position(&tp).unwrap_or(0);
                for r in sets.iter().flat_map(|s| s.records.iter()) {
                    if r.offset >= pos && !r.control {
                        out.push(ConsumedRecord { tp: tp.clone(), offset: r.offset, key: r.key.clone(), value: r.value.clone() });
                    }
                    pos = pos.max(r.offset + 1);
                }
                self.positions.insert(tp, Some(pos));
            }
        }
        Ok(())
    }

    async fn reset_position(&mut self, leader: BrokerId, tp: &TopicPartition) -> Result<(), ClientError> {
        let timestamp = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
            OffsetReset::None => return Err(ClientError::Protocol(format!("no position for {tp} and auto.offset.reset=none"))),
        };
        let (isolation, timeout) = (self.config.isolation_level, self.config.request_timeout_ms);
        let conn = self.connection(leader).await?;
        let offset = list_offset(conn, tp, timestamp, -1, isolation, timeout).await?;
        self.positions.insert(tp.clone(), Some(offset));
        Ok(())
    }

    async fn connection(&mut self, id: BrokerId) -> Result<&mut Connection, ClientError> {
        if !self.conns.contains_key(&id) {
            let addr = self
                .metadata
                .as_ref()
                .and_then(|m| m.brokers.get(&id).cloned())
                .ok_or_else(|| ClientError::Connect(format!("no address for {id}")))?;
            let c = Connection::connect(self.net.as_ref(), &addr, &self.config.client_id, self.config.connection_setup_timeout_ms).await?;
            self.conns.insert(id, c);
        }
        Ok(self.conns.get_mut(&id).expect("just inserted"))
    }
}
