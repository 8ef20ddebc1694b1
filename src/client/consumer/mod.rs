//! The consumer: standalone (every partition of its topics) or a member of a group (`group.id`:
//! the coordinator's rebalances decide its partitions, see `group`). `poll` returns at most
//! `max.poll.records` records and advances the positions past exactly what it returned; with
//! `enable.auto.commit` those positions are committed at the start of a later `poll`, before a
//! rebalance and on `close` (KAFKA.md §1.13).

mod aborted;
mod group;

pub use group::{CommitError, CommitKind, ConsumerEvent, GroupSettings, Listener};

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, FetchRequest, FetchResponse, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::ids::{BrokerId, TopicPartition};
use crate::seam::Network;

use super::assignor::Assignor;
use group::{GroupMember, Joined};

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
    /// `group.id`: None for a standalone consumer of every partition of its topics.
    pub group_id: Option<String>,
    /// `enable.auto.commit` (default true; only with a group)
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000)
    pub auto_commit_interval_ms: u64,
    /// `max.poll.records` (default 500)
    pub max_poll_records: usize,
    /// `max.poll.interval.ms` (default 300000): also the rebalance timeout
    pub max_poll_interval_ms: u64,
    /// `session.timeout.ms` (default 45000)
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` (default 3000)
    pub heartbeat_interval_ms: u64,
    /// `partition.assignment.strategy` (Kafka 4's default lists range first)
    pub assignors: Vec<Assignor>,
    /// `retry.backoff.ms` (default 100)
    pub retry_backoff_ms: u64,
    /// `default.api.timeout.ms` (default 60000): how long commitSync retries
    pub default_api_timeout_ms: u64,
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
            group_id: None,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            max_poll_records: 500,
            max_poll_interval_ms: 300_000,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            assignors: vec![Assignor::Range],
            retry_backoff_ms: 100,
            default_api_timeout_ms: 60_000,
        }
    }
}

impl ConsumerConfig {
    /// Kafka's client-side checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.group_id.is_some() && self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err("heartbeat.interval.ms must be lower than session.timeout.ms".into());
        }
        if self.max_poll_records == 0 {
            return Err("max.poll.records must be at least 1".into());
        }
        if self.group_id.is_some() && self.assignors.is_empty() {
            return Err("partition.assignment.strategy must name at least one assignor".into());
        }
        Ok(())
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
    /// Next offset to return per assigned partition (None: to be looked up or reset).
    positions: BTreeMap<TopicPartition, Option<i64>>,
    /// The last high watermark each fetch reported (for lag).
    high_watermarks: BTreeMap<TopicPartition, i64>,
    group: Option<Rc<GroupMember>>,
    listener: Option<Listener>,
    /// Whether the standalone assignment was announced to the listener.
    announced: bool,
    /// The assignment revoked before a rejoin, sent as `owned` so the sticky assignor can keep
    /// it (the eager protocol revokes everything first).
    previously_owned: Vec<TopicPartition>,
    /// Why the last attempt to join the group failed (for diagnostics).
    last_error: Option<String>,
    /// As the group leader: the partition counts the assignment was computed from.
    assigned_counts: Option<BTreeMap<String, i32>>,
    next_auto_commit: tokio::time::Instant,
}

impl Consumer {
    pub fn new(net: Rc<dyn Network>, bootstrap: Vec<String>, config: ConsumerConfig, topics: Vec<String>) -> Consumer {
        let group = config.group_id.as_ref().map(|g| {
            let settings = GroupSettings {
                group_id: g.clone(),
                session_timeout_ms: config.session_timeout_ms,
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                max_poll_interval_ms: config.max_poll_interval_ms,
                assignors: config.assignors.clone(),
                request_timeout_ms: config.request_timeout_ms,
                connection_setup_timeout_ms: config.connection_setup_timeout_ms,
                retry_backoff_ms: config.retry_backoff_ms,
                default_api_timeout_ms: config.default_api_timeout_ms,
                require_stable: config.isolation_level == 1,
            };
            GroupMember::new(net.clone(), bootstrap.clone(), config.client_id.clone(), settings)
        });
        let next_auto_commit = tokio::time::Instant::now() + Duration::from_millis(config.auto_commit_interval_ms);
        Consumer {
            net,
            bootstrap,
            config,
            topics,
            metadata: None,
            conns: BTreeMap::new(),
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            group,
            listener: None,
            announced: false,
            previously_owned: Vec::new(),
            last_error: None,
            assigned_counts: None,
            next_auto_commit,
        }
    }

    /// Where assignment changes and commit outcomes are reported (Kafka's rebalance listener
    /// and commit callback in one).
    pub fn set_listener(&mut self, listener: Listener) {
        if let Some(g) = &self.group {
            g.set_listener(listener.clone());
        }
        self.listener = Some(listener);
    }

    fn emit(&self, event: &ConsumerEvent) {
        if let Some(l) = &self.listener {
            l(event);
        }
    }

    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).copied().flatten()
    }

    /// The group membership to hand to `Producer::send_offsets_to_transaction` (None without a
    /// group).
    pub fn group_metadata(&self) -> Option<crate::client::GroupMetadata> {
        let g = self.group.as_ref()?;
        Some(crate::client::GroupMetadata { group_id: g.group_id().to_string(), generation_id: g.generation(), member_id: g.member_id() })
    }

    /// Why the last attempt to join the group failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The current assignment.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Forgets every position, so the next poll starts again from the group's committed
    /// offsets (what an application does after aborting a transaction it consumed into).
    pub fn rewind_to_committed(&mut self) {
        for p in self.positions.values_mut() {
            *p = None;
        }
    }

    /// Moves the position of an assigned partition.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.positions.get_mut(tp) {
            *p = Some(offset);
        }
    }

    /// Records between the position and the last known high watermark.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        Some((self.high_watermarks.get(tp)? - self.position(tp)?).max(0))
    }

    /// The positions of every assigned partition with one: what a commit of "everything
    /// returned so far" stores.
    pub fn consumed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions.iter().filter_map(|(tp, p)| p.map(|p| (tp.clone(), p))).collect()
    }

    /// commitSync of `offsets` (None: everything returned so far).
    pub async fn commit_sync(&mut self, offsets: Option<BTreeMap<TopicPartition, i64>>) -> Result<(), CommitError> {
        self.commit(CommitKind::Sync, offsets).await
    }

    async fn commit(&mut self, kind: CommitKind, offsets: Option<BTreeMap<TopicPartition, i64>>) -> Result<(), CommitError> {
        let Some(g) = self.group.clone() else {
            return Err(CommitError { message: "no group.id: nothing to commit to".into(), definite: true });
        };
        let offsets = offsets.unwrap_or_else(|| self.consumed_offsets());
        if offsets.is_empty() {
            return Ok(());
        }
        let id = g.start_commit(kind, &offsets);
        let result = g.commit(&offsets, true).await;
        g.finish_commit(id, &result);
        result
    }

    /// commitAsync of `offsets` (None: everything returned so far): one attempt, no retry; the
    /// outcome goes to the listener.
    pub fn commit_async(&mut self, offsets: Option<BTreeMap<TopicPartition, i64>>) {
        self.commit_async_as(CommitKind::Async, offsets);
    }

    fn commit_async_as(&mut self, kind: CommitKind, offsets: Option<BTreeMap<TopicPartition, i64>>) {
        let Some(g) = self.group.clone() else { return };
        let offsets = offsets.unwrap_or_else(|| self.consumed_offsets());
        if offsets.is_empty() {
            return;
        }
        let id = g.start_commit(kind, &offsets);
        tokio::task::spawn_local(async move {
            let result = g.commit(&offsets, false).await;
            g.finish_commit(id, &result);
        });
    }

    /// Kafka's close: a last auto-commit (sync), then LeaveGroup.
    pub async fn close(&mut self) {
        let Some(g) = self.group.clone() else { return };
        if self.config.enable_auto_commit && g.generation() >= 0 {
            let _ = self.commit(CommitKind::Auto, None).await;
        }
        g.leave("the consumer is being closed").await;
        g.stop();
    }

    /// The eager protocol's revocation before a rejoin: auto-commit what was returned (sync),
    /// then drop every partition.
    async fn prepare_rejoin(&mut self) {
        let Some(g) = self.group.clone() else { return };
        if self.positions.is_empty() {
            return;
        }
        if self.config.enable_auto_commit && g.generation() >= 0 {
            let _ = self.commit(CommitKind::Auto, None).await;
        }
        self.previously_owned = self.assignment();
        self.positions.clear();
        self.emit(&ConsumerEvent::Assigned { generation: -1, partitions: Vec::new() });
    }

    /// Joins (or rejoins) the group when needed; true once the member has an assignment.
    async fn ensure_group(&mut self) -> bool {
        let Some(g) = self.group.clone() else { return true };
        if !g.rejoin_needed() {
            return true;
        }
        self.prepare_rejoin().await;
        // A subscribed topic the cached metadata does not know yet: ask again before joining
        // (the leader assigns from it, as Kafka's client refreshes for unknown topics).
        let known = |m: &MetadataCache| self.topics.iter().all(|t| m.partitions(t).is_some());
        if !self.metadata.as_ref().is_some_and(known) && self.refresh_metadata().await.is_err() {
            return false;
        }
        let counts: BTreeMap<String, i32> = match &self.metadata {
            Some(m) => self.topics.iter().filter_map(|t| m.partitions(t).map(|n| (t.clone(), n))).collect(),
            None => return false,
        };
        match g.join(&self.topics, &self.previously_owned, &counts).await {
            Joined::Assigned { generation, partitions, leader } => {
                self.assigned_counts = leader.then_some(counts);
                self.positions = partitions.iter().map(|tp| (tp.clone(), None)).collect();
                self.emit(&ConsumerEvent::Assigned { generation, partitions });
                true
            }
            Joined::Retry(why) => {
                self.last_error = Some(why);
                tokio::time::sleep(Duration::from_millis(self.config.retry_backoff_ms)).await;
                false
            }
        }
    }

    /// Kafka's leader compares the metadata it assigned from with what it sees now: a topic
    /// that appeared or grew needs a new assignment.
    fn check_leader_metadata(&mut self) {
        let (Some(g), Some(used), Some(m)) = (&self.group, &self.assigned_counts, &self.metadata) else { return };
        let now: BTreeMap<String, i32> = self.topics.iter().filter_map(|t| m.partitions(t).map(|n| (t.clone(), n))).collect();
        if &now != used {
            g.request_rejoin();
            self.assigned_counts = None;
        }
    }

    /// Positions of newly assigned partitions from the group's committed offsets; partitions
    /// without one are left to `auto.offset.reset`.
    async fn fetch_committed_positions(&mut self) -> bool {
        let Some(g) = self.group.clone() else { return true };
        let missing: Vec<TopicPartition> = self.positions.iter().filter(|(_, p)| p.is_none()).map(|(tp, _)| tp.clone()).collect();
        if missing.is_empty() {
            return true;
        }
        match g.fetch_committed(&missing).await {
            Ok(committed) => {
                for (tp, offset) in committed {
                    if let (Some(pos), Some(o)) = (self.positions.get_mut(&tp), offset) {
                        *pos = Some(o);
                    }
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Fetches once from every leader of the assigned partitions; returns what arrived, in
    /// partition then offset order. Failures are absorbed: they drop the connection and the
    /// metadata so the next poll starts afresh.
    pub async fn poll(&mut self) -> Vec<ConsumedRecord> {
        if let Some(g) = &self.group {
            g.polled();
        }
        self.poll_inner().await
    }

    async fn poll_inner(&mut self) -> Vec<ConsumedRecord> {
        if self.group.is_some() {
            if !self.ensure_group().await || !self.fetch_committed_positions().await {
                return Vec::new();
            }
            if self.config.enable_auto_commit && tokio::time::Instant::now() >= self.next_auto_commit {
                // Kafka's maybeAutoCommitOffsetsAsync, before this poll fetches: the positions
                // past what earlier polls returned.
                self.next_auto_commit = tokio::time::Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
                self.commit_async_as(CommitKind::Auto, None);
            }
        } else if self.refresh_assignment().await.is_err() {
            return Vec::new();
        } else if !self.announced {
            self.announced = true;
            self.emit(&ConsumerEvent::Assigned { generation: -1, partitions: self.assignment() });
        }
        if self.metadata.is_none() && self.refresh_metadata().await.is_err() {
            return Vec::new();
        }
        self.check_leader_metadata();
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

    async fn refresh_metadata(&mut self) -> Result<(), ClientError> {
        let timeouts = (self.config.connection_setup_timeout_ms, self.config.request_timeout_ms);
        self.metadata = Some(MetadataCache::fetch(self.net.as_ref(), &self.bootstrap, &self.config.client_id, timeouts).await?);
        Ok(())
    }

    /// A standalone consumer is assigned every partition of its topics.
    async fn refresh_assignment(&mut self) -> Result<(), ClientError> {
        if self.metadata.is_some() {
            return Ok(());
        }
        self.refresh_metadata().await?;
        let m = self.metadata.as_ref().expect("just fetched");
        for topic in &self.topics {
            for p in 0..m.partitions(topic).unwrap_or(0) {
                self.positions.entry(TopicPartition::new(topic.clone(), p)).or_insert(None);
            }
        }
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

    /// Takes records at or past each position, up to `max.poll.records` in all: a partition's
    /// position moves past exactly what was taken (the rest is fetched again next time).
    /// Errors reset positions or the metadata.
    fn absorb(&mut self, resp: &FetchResponse, out: &mut Vec<ConsumedRecord>) -> Result<(), ClientError> {
        for t in &resp.responses {
            for pd in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), pd.partition_index);
                if !self.positions.contains_key(&tp) {
                    // Revoked while the fetch was in flight.
                    continue;
                }
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
                self.high_watermarks.insert(tp.clone(), pd.high_watermark);
                let Some(records) = &pd.records else { continue };
                let mut buf = records.clone();
                let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| ClientError::Protocol(format!("{tp}: {e}")))?;
                let mut pos = self.position(&tp).unwrap_or(0);
                // read_committed: Kafka's filter over the aborted transactions the broker listed
                // (it runs over every record, below the position too, to track its state).
                let mut aborted = (self.config.isolation_level == 1)
                    .then(|| aborted::AbortedFilter::new(pd.aborted_transactions.iter().flatten().map(|a| (a.producer_id.0, a.first_offset))));
                for r in sets.iter().flat_map(|s| s.records.iter()) {
                    let keep = aborted.as_mut().is_none_or(|f| f.keep(r));
                    if r.offset < pos {
                        continue;
                    }
                    if !r.control && keep {
                        if out.len() >= self.config.max_poll_records {
                            break;
                        }
                        out.push(ConsumedRecord { tp: tp.clone(), offset: r.offset, key: r.key.clone(), value: r.value.clone() });
                    }
                    pos = r.offset + 1;
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
