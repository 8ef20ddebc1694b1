//! The broker's side of transactions (KAFKA.md §1.10, §1.11):
//!
//! - as **transaction coordinator**: FindCoordinator (key type 1), InitProducerId with a
//!   transactional id, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn handed to the sans-IO
//!   `TxnCoordinator`, whose records go to `__transaction_state` (answered once replicated) and
//!   whose markers go to the partitions' leaders as WriteTxnMarkers (retried until written);
//! - as **partition leader**: transactional produce, with KIP-890's verification of a
//!   transaction's first write to a partition (an AddPartitionsToTxn `verify_only` to the
//!   coordinator, unless the switch `txn_no_partition_verification` is on), and WriteTxnMarkers
//!   appending control batches, answered once replicated;
//! - as **group coordinator**: TxnOffsetCommit, whose offsets wait for the transaction's marker.

use std::collections::BTreeMap;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, ProducerId, RequestKind, ResponseKind, TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder, TimestampType};

use crate::group::partition_for;
use crate::ids::{BrokerId, TopicPartition};
use crate::log::{ControlType, LogError};
use crate::txn::{MarkerJob, Reply, TxnReady};

use super::core::{reply, BrokerCore, Handled, RequestCtx};
use super::groups::{CommitOffset, OFFSETS_TOPIC};
use super::outbound::Outbound;
use super::partition::Role;
use super::purgatory::{ParkedCommit, ParkedMarkers, ParkedOp, ParkedVerify};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// How long a parked coordinator request waits before the broker gives up on it.
const TXN_PARK_MS: u64 = 30_000;
/// How long a `__transaction_state` append may wait for replication before it fails.
const TXN_WRITE_TIMEOUT_MS: u64 = 10_000;
/// Retry delay for a marker whose partition leader refused or did not answer.
const MARKER_RETRY_MS: u64 = 100;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
const VERIFY_VERSION: i16 = 4;
/// `transaction.state.log.min.isr`
const TXN_LOG_MIN_ISR: usize = 2;

/// What a queued outbound request was for.
#[derive(Debug)]
pub(super) enum OutboundPurpose {
    /// WriteTxnMarkers for these marker-work keys.
    Markers(Vec<MarkerKey>),
    /// A verification for a parked produce (its purgatory id).
    Verify(u64),
}

/// (transactional id, producer id, marker epoch, partition)
pub(super) type MarkerKey = (String, i64, i16, TopicPartition);

/// One partition's marker still to be written.
#[derive(Debug, Clone)]
pub(super) struct MarkerTask {
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub in_flight: bool,
    pub retry_at: u64,
    /// The `__transaction_state` partition whose coordinator asked for it.
    pub txn_partition: i32,
}

/// The broker's transaction bookkeeping (besides the coordinator itself).
#[derive(Debug, Default)]
pub(super) struct TxnBroker {
    /// Answers to parked coordinator requests, by token.
    pub answers: BTreeMap<u64, ResponseKind>,
    /// `__transaction_state` appends waiting for the high watermark: write id → (partition,
    /// offset the HW must reach, deadline).
    pub writes: BTreeMap<u64, (TopicPartition, i64, u64)>,
    pub markers: BTreeMap<MarkerKey, MarkerTask>,
    pub outbox: Vec<Outbound>,
    pub pending: BTreeMap<u64, OutboundPurpose>,
    pub next_token: u64,
    /// Verification answers by parked produce id: per partition, None = verified.
    pub verified: BTreeMap<u64, Vec<(TopicPartition, Option<ResponseError>)>>,
    /// Transaction-state partitions loaded from a log end the HW has not reached yet.
    pub loading: BTreeMap<i32, i64>,
}

impl BrokerCore {
    fn txn_partition_of(&self, txn_id: &str) -> TopicPartition {
        TopicPartition::new(TXN_TOPIC, self.txns.partition_of(txn_id))
    }

    /// None when `txn_id` is coordinated here now.
    fn txn_coordinator_check(&self, txn_id: &str) -> Option<ResponseError> {
        if let Some(e) = self.txns.check_owner(txn_id) {
            return Some(e);
        }
        let tp = self.txn_partition_of(txn_id);
        let loading = self.txn.loading.get(&tp.partition).is_some_and(|end| self.partitions.get(&tp).is_none_or(|p| p.hw() < *end));
        loading.then_some(ResponseError::CoordinatorLoadInProgress)
    }

    /// The broker leading `tp` according to the metadata.
    fn leader_of(&self, tp: &TopicPartition) -> Option<BrokerId> {
        self.metadata.assignment(tp).and_then(|a| a.leader)
    }

    /// FindCoordinator with key type 1: the leader of the id's `__transaction_state` partition.
    pub(super) fn txn_coordinator_of(&self, key: &str) -> Option<BrokerId> {
        self.leader_of(&self.txn_partition_of(key))
    }

    fn queue_outbound(&mut self, to: BrokerId, api_key: ApiKey, version: i16, body: RequestKind, purpose: OutboundPurpose) -> u64 {
        let token = self.txn.next_token;
        self.txn.next_token += 1;
        let timeout_ms = self.config.replica_socket_timeout_ms;
        self.txn.outbox.push(Outbound { token, to, api_key, version, body, timeout_ms });
        self.txn.pending.insert(token, purpose);
        token
    }

    /// Requests for the shell to send to other brokers.
    pub fn poll_outbound(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.txn.outbox)
    }

    /// The answer (or failure) of a request from `poll_outbound`.
    pub fn on_outbound_reply(&mut self, now_ms: u64, token: u64, reply: Result<ResponseKind, String>) {
        let Some(purpose) = self.txn.pending.remove(&token) else { return };
        match purpose {
            OutboundPurpose::Markers(keys) => self.on_markers_reply(now_ms, keys, reply),
            OutboundPurpose::Verify(parked) => self.on_verify_reply(parked, reply),
        }
        self.after_txn_work(now_ms);
    }

    // ----- coordinator requests -----

    fn park_txn(&mut self, now_ms: u64, ctx: RequestCtx, token: u64) -> Handled {
        self.park_reserved(now_ms, ctx, token, now_ms + TXN_PARK_MS, ParkedOp::Txn)
    }

    pub(super) fn handle_init_producer_id_txn(&mut self, now_ms: u64, ctx: RequestCtx, req: &InitProducerIdRequest, txn_id: &str) -> Handled {
        let fail = |e: ResponseError| ResponseKind::InitProducerId(InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1));
        if let Some(e) = self.txn_coordinator_check(txn_id) {
            return reply(ctx, fail(e));
        }
        let expected = (ctx.version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        let token = self.purgatory.reserve();
        let answer = self.txns.init_producer_id(now_ms, token, txn_id, req.transaction_timeout_ms, expected);
        self.after_txn_work(now_ms);
        match answer {
            Reply::Now(r) => reply(ctx, init_response(r)),
            Reply::Later => self.park_txn(now_ms, ctx, token),
        }
    }

    pub(super) fn handle_add_partitions_to_txn(&mut self, now_ms: u64, ctx: RequestCtx, req: AddPartitionsToTxnRequest) -> Handled {
        if ctx.version >= 4 {
            // The broker-to-broker form: verification only (KIP-890 part 1).
            let results = req.transactions.iter().map(|t| self.verify_one(now_ms, t)).collect();
            return reply(ctx, ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse::default().with_results_by_transaction(results)));
        }
        let txn_id = req.v3_and_below_transactional_id.to_string();
        let tps: Vec<TopicPartition> = req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(move |p| TopicPartition::new(t.name.as_str(), *p))).collect();
        if let Some(e) = self.txn_coordinator_check(&txn_id) {
            return reply(ctx, add_partitions_response(&tps.iter().map(|tp| (tp.clone(), Some(e))).collect::<Vec<_>>()));
        }
        let token = self.purgatory.reserve();
        let answer = self.txns.add_partitions(now_ms, token, &txn_id, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, &tps, false);
        self.after_txn_work(now_ms);
        match answer {
            Reply::Now(r) => reply(ctx, add_partitions_response(&r)),
            Reply::Later => self.park_txn(now_ms, ctx, token),
        }
    }

    fn verify_one(&mut self, now_ms: u64, t: &AddPartitionsToTxnTransaction) -> AddPartitionsToTxnResult {
        let txn_id = t.transactional_id.to_string();
        let tps: Vec<TopicPartition> = t.topics.iter().flat_map(|tt| tt.partitions.iter().map(move |p| TopicPartition::new(tt.name.as_str(), *p))).collect();
        let results: Vec<(TopicPartition, Option<ResponseError>)> = match (self.txn_coordinator_check(&txn_id), t.verify_only) {
            (Some(e), _) => tps.iter().map(|tp| (tp.clone(), Some(e))).collect(),
            // Only verification is served in this form (stormlog's clients add partitions
            // themselves, with versions 0-3).
            (None, false) => tps.iter().map(|tp| (tp.clone(), Some(ResponseError::InvalidRequest))).collect(),
            (None, true) => match self.txns.add_partitions(now_ms, 0, &txn_id, t.producer_id.0, t.producer_epoch, &tps, true) {
                Reply::Now(r) => r,
                Reply::Later => tps.iter().map(|tp| (tp.clone(), Some(ResponseError::ConcurrentTransactions))).collect(),
            },
        };
        AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id.clone()).with_topic_results(topic_results(&results))
    }

    pub(super) fn handle_add_offsets_to_txn(&mut self, now_ms: u64, ctx: RequestCtx, req: &AddOffsetsToTxnRequest) -> Handled {
        let txn_id = req.transactional_id.to_string();
        if let Some(e) = self.txn_coordinator_check(&txn_id) {
            return reply(ctx, ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(e.code())));
        }
        let group_tp = TopicPartition::new(OFFSETS_TOPIC, partition_for(req.group_id.as_str(), self.config.group.offsets_partitions));
        let token = self.purgatory.reserve();
        let answer = self.txns.add_offsets(now_ms, token, &txn_id, req.producer_id.0, req.producer_epoch, group_tp);
        self.after_txn_work(now_ms);
        match answer {
            Reply::Now(r) => reply(ctx, ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(r.err().map_or(0, |e| e.code())))),
            Reply::Later => self.park_txn(now_ms, ctx, token),
        }
    }

    pub(super) fn handle_end_txn(&mut self, now_ms: u64, ctx: RequestCtx, req: &EndTxnRequest) -> Handled {
        let txn_id = req.transactional_id.to_string();
        if let Some(e) = self.txn_coordinator_check(&txn_id) {
            return reply(ctx, end_txn_response(Err(e)));
        }
        let token = self.purgatory.reserve();
        let answer = self.txns.end_txn(now_ms, token, &txn_id, req.producer_id.0, req.producer_epoch, req.committed);
        self.trace.emit(|| {
            let refused = match &answer {
                Reply::Now(Err(e)) => format!(": refused {e:?}"),
                _ => String::new(),
            };
            format!("end-txn {txn_id} pid={} epoch={} commit={}{refused}", req.producer_id.0, req.producer_epoch, req.committed)
        });
        self.after_txn_work(now_ms);
        match answer {
            Reply::Now(r) => reply(ctx, end_txn_response(r)),
            Reply::Later => self.park_txn(now_ms, ctx, token),
        }
    }

    /// A parked coordinator request: answered once the coordinator has its answer.
    pub(super) fn try_complete_txn(&mut self, token: u64, api: ApiKey, expired: bool) -> Option<ResponseKind> {
        if let Some(answer) = self.txn.answers.remove(&token) {
            return Some(answer);
        }
        if !expired {
            return None;
        }
        let e = ResponseError::RequestTimedOut;
        Some(match api {
            ApiKey::InitProducerId => init_response(Err(ResponseError::ConcurrentTransactions)),
            ApiKey::AddPartitionsToTxn => add_partitions_response(&[]),
            ApiKey::AddOffsetsToTxn => ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(ResponseError::ConcurrentTransactions.code())),
            _ => end_txn_response(Err(e)),
        })
    }

    /// Moves the coordinator's output where it goes: answers, `__transaction_state` appends,
    /// marker work; completes replicated appends; sends due markers. Called after anything that
    /// may have changed coordinator state or a high watermark.
    pub(super) fn after_txn_work(&mut self, now_ms: u64) {
        for _ in 0..8 {
            let mut progressed = false;
            for ready in self.txns.take_ready() {
                progressed = true;
                let (token, answer) = match ready {
                    TxnReady::InitProducerId { token, result } => (token, init_response(result)),
                    TxnReady::AddPartitions { token, result } => (token, add_partitions_response(&result)),
                    TxnReady::AddOffsets { token, result } => (token, ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code())))),
                    TxnReady::EndTxn { token, result } => (token, end_txn_response(result)),
                };
                self.txn.answers.insert(token, answer);
            }
            for w in self.txns.take_writes() {
                progressed = true;
                let tp = TopicPartition::new(TXN_TOPIC, w.partition);
                match self.append_txn_record(now_ms, &tp, w.key, w.value) {
                    Ok(required) => {
                        self.txn.writes.insert(w.id, (tp, required, now_ms + TXN_WRITE_TIMEOUT_MS));
                    }
                    Err(e) => self.txns.write_completed(now_ms, w.id, Err(e)),
                }
            }
            for job in self.txns.take_markers() {
                progressed = true;
                self.add_marker_work(&job);
            }
            progressed |= self.complete_txn_writes(now_ms);
            if !progressed {
                break;
            }
        }
        self.send_due_markers(now_ms);
    }

    fn append_txn_record(&mut self, now_ms: u64, tp: &TopicPartition, key: Bytes, value: Option<Bytes>) -> Result<i64, ResponseError> {
        let Some(p) = self.partitions.get_mut(tp) else { return Err(ResponseError::NotCoordinator) };
        let Role::Leader(state) = &p.role else { return Err(ResponseError::NotCoordinator) };
        if state.isr.len() < TXN_LOG_MIN_ISR.min(p.replicas.len()) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let epoch = p.leader_epoch;
        let batch = encode_plain(&[(key, value)], -1, -1, false);
        let info = p.log.append_as_leader(&batch, epoch).map_err(|_| ResponseError::NotCoordinator)?;
        self.trace.emit(|| format!("append {tp} {}..={} (txn state)", info.first_offset, info.last_offset));
        self.maybe_advance_hw(now_ms, tp);
        Ok(info.last_offset + 1)
    }

    /// Reports the `__transaction_state` appends the HW passed (or that failed); whether any.
    fn complete_txn_writes(&mut self, now_ms: u64) -> bool {
        let mut done = Vec::new();
        for (id, (tp, required, deadline)) in &self.txn.writes {
            let outcome = match self.partitions.get(tp).map(|p| &p.role) {
                Some(Role::Leader(s)) if s.hw >= *required => Some(Ok(())),
                Some(Role::Leader(_)) if now_ms < *deadline => None,
                Some(Role::Leader(_)) => Some(Err(ResponseError::CoordinatorNotAvailable)),
                _ => Some(Err(ResponseError::NotCoordinator)),
            };
            if let Some(o) = outcome {
                done.push((*id, o));
            }
        }
        for (id, outcome) in &done {
            self.txn.writes.remove(id);
            self.txns.write_completed(now_ms, *id, *outcome);
        }
        !done.is_empty()
    }

    fn add_marker_work(&mut self, job: &MarkerJob) {
        let txn_partition = self.txn_partition_of(&job.txn_id).partition;
        for tp in &job.partitions {
            let key = (job.txn_id.clone(), job.producer_id, job.producer_epoch, tp.clone());
            self.txn.markers.insert(key, MarkerTask { coordinator_epoch: job.coordinator_epoch, commit: job.commit, in_flight: false, retry_at: 0, txn_partition });
        }
    }

    /// WriteTxnMarkers to each leader for the markers due now, one request per leader.
    fn send_due_markers(&mut self, now_ms: u64) {
        let mut by_leader: BTreeMap<BrokerId, Vec<MarkerKey>> = BTreeMap::new();
        for (key, task) in &self.txn.markers {
            if task.in_flight || task.retry_at > now_ms {
                continue;
            }
            if let Some(leader) = self.leader_of(&key.3) {
                by_leader.entry(leader).or_default().push(key.clone());
            }
        }
        for (leader, keys) in by_leader {
            let mut markers: Vec<WritableTxnMarker> = Vec::new();
            for key in &keys {
                let task = self.txn.markers.get_mut(key).expect("listed above");
                task.in_flight = true;
                let (_, pid, epoch, tp) = key;
                let topic = WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partition_indexes(vec![tp.partition]);
                markers.push(
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(*pid))
                        .with_producer_epoch(*epoch)
                        .with_transaction_result(task.commit)
                        .with_coordinator_epoch(task.coordinator_epoch)
                        .with_topics(vec![topic]),
                );
            }
            let body = RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(markers));
            self.queue_outbound(leader, ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION, body, OutboundPurpose::Markers(keys));
        }
    }

    fn on_markers_reply(&mut self, now_ms: u64, keys: Vec<MarkerKey>, reply: Result<ResponseKind, String>) {
        // Markers are sent one per partition, in key order; answers come in request order.
        let codes: Vec<i16> = match &reply {
            Ok(ResponseKind::WriteTxnMarkers(r)) => r.markers.iter().flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))).collect(),
            _ => Vec::new(),
        };
        for (i, key) in keys.into_iter().enumerate() {
            let Some(task) = self.txn.markers.get_mut(&key) else { continue };
            task.in_flight = false;
            match codes.get(i) {
                Some(0) => {
                    self.txn.markers.remove(&key);
                    let (txn_id, pid, epoch, tp) = key;
                    if self.txns.is_loaded(self.txn_partition_of(&txn_id).partition) {
                        self.txns.markers_written(now_ms, &txn_id, pid, epoch, &[tp]);
                    }
                }
                _ => task.retry_at = now_ms + MARKER_RETRY_MS,
            }
        }
    }

    /// This broker leads a `__transaction_state` partition now: load its transactions.
    pub(super) fn load_txns(&mut self, now_ms: u64, tp: &TopicPartition) {
        if tp.topic != TXN_TOPIC {
            return;
        }
        let Some(p) = self.partitions.get(tp) else { return };
        let (records, _undecided) = read_keyed_records(p, &self.trace);
        let (end, hw, epoch) = (p.leo(), p.hw(), p.leader_epoch);
        self.txns.load(now_ms, tp.partition, epoch, records);
        if hw < end {
            self.txn.loading.insert(tp.partition, end);
            self.trace.emit(|| format!("txns-loading {tp} until hw reaches {end}"));
        }
        self.after_txn_work(now_ms);
    }

    pub(super) fn unload_txns(&mut self, now_ms: u64, tp: &TopicPartition) {
        if tp.topic != TXN_TOPIC {
            return;
        }
        self.txn.loading.remove(&tp.partition);
        if self.txns.is_loaded(tp.partition) {
            self.txns.unload(tp.partition);
            self.trace.emit(|| format!("txns-unloaded {tp}"));
        }
        // Its markers are the new coordinator's to send now.
        self.txn.markers.retain(|_, t| t.txn_partition != tp.partition);
        let failed: Vec<u64> = self.txn.writes.iter().filter(|(_, (wtp, _, _))| wtp == tp).map(|(id, _)| *id).collect();
        for id in failed {
            self.txn.writes.remove(&id);
            self.txns.write_completed(now_ms, id, Err(ResponseError::NotCoordinator));
        }
    }

    // ----- partition leader: markers and verification -----

    pub(super) fn handle_write_txn_markers(&mut self, now_ms: u64, ctx: RequestCtx, req: &WriteTxnMarkersRequest) -> Handled {
        let mut response = WriteTxnMarkersResponse::default();
        let mut waiting = Vec::new();
        for (mi, m) in req.markers.iter().enumerate() {
            let mut mr = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
            for (ti, t) in m.topics.iter().enumerate() {
                let mut tr = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
                for (pi, &partition) in t.partition_indexes.iter().enumerate() {
                    let tp = TopicPartition::new(t.name.as_str(), partition);
                    let code = match self.append_marker(now_ms, &tp, m) {
                        Ok(required) => {
                            waiting.push((tp, required, mi, ti, pi, m.producer_id.0, m.transaction_result));
                            0
                        }
                        Err(e) => e.code(),
                    };
                    tr.partitions.push(WritableTxnMarkerPartitionResult::default().with_partition_index(partition).with_error_code(code));
                }
                mr.topics.push(tr);
            }
            response.markers.push(mr);
        }
        if waiting.is_empty() {
            return reply(ctx, ResponseKind::WriteTxnMarkers(response));
        }
        let deadline = now_ms + TXN_WRITE_TIMEOUT_MS;
        self.park(now_ms, ctx, deadline, ParkedOp::Markers(ParkedMarkers { response, waiting }))
    }

    fn append_marker(&mut self, now_ms: u64, tp: &TopicPartition, m: &WritableTxnMarker) -> Result<i64, ResponseError> {
        let min_isr = self.config.min_insync_replicas;
        let Some(p) = self.partitions.get_mut(tp) else { return Err(ResponseError::UnknownTopicOrPartition) };
        let Role::Leader(state) = &p.role else { return Err(ResponseError::NotLeaderOrFollower) };
        if state.isr.len() < min_isr.min(p.replicas.len()) {
            return Err(ResponseError::NotEnoughReplicas);
        }
        let kind = if m.transaction_result { ControlType::Commit } else { ControlType::Abort };
        let epoch = p.leader_epoch;
        let info = match p.log.append_marker_as_leader(m.producer_id.0, m.producer_epoch, m.coordinator_epoch, kind, epoch, i64::try_from(now_ms).unwrap_or(0)) {
            Ok(info) => info,
            Err(LogError::Producer(e)) => {
                self.trace.emit(|| format!("marker-refused {tp} pid={} {e}", m.producer_id.0));
                return Err(super::produce::producer_error_code(e));
            }
            Err(e) => {
                self.trace.emit(|| format!("marker-append-failed {tp} {e}"));
                return Err(ResponseError::KafkaStorageError);
            }
        };
        let what = if m.transaction_result { "commit" } else { "abort" };
        self.trace.emit(|| format!("marker {tp} {} {what} pid={} epoch={}", info.first_offset, m.producer_id.0, m.producer_epoch));
        self.maybe_advance_hw(now_ms, tp);
        Ok(info.last_offset + 1)
    }

    /// A parked WriteTxnMarkers: final once every marker is replicated (or its leadership or
    /// time ran out). A replicated marker on an offsets partition settles the transaction's
    /// offsets there.
    pub(super) fn try_complete_markers(&mut self, pm: &mut ParkedMarkers, expired: bool) -> Option<WriteTxnMarkersResponse> {
        let mut still = Vec::new();
        for (tp, required, mi, ti, pi, pid, commit) in pm.waiting.drain(..) {
            let outcome = match self.partitions.get(&tp).map(|p| &p.role) {
                Some(Role::Leader(s)) if s.hw >= required => None,
                Some(Role::Leader(_)) if !expired => {
                    still.push((tp, required, mi, ti, pi, pid, commit));
                    continue;
                }
                Some(Role::Leader(_)) => Some(ResponseError::RequestTimedOut),
                _ => Some(ResponseError::NotLeaderOrFollower),
            };
            match outcome {
                None if tp.topic == OFFSETS_TOPIC => self.groups.complete_txn_offsets(tp.partition, pid, commit),
                None => {}
                Some(e) => pm.response.markers[mi].topics[ti].partitions[pi].error_code = e.code(),
            }
        }
        pm.waiting = still;
        pm.waiting.is_empty().then(|| std::mem::take(&mut pm.response))
    }

    /// Partitions of a transactional produce that need KIP-890 verification: transactional
    /// batches of a producer with no transaction open on the partition yet.
    pub(super) fn partitions_to_verify(&self, req: &ProduceRequest) -> Vec<(TopicPartition, i64, i16)> {
        if !self.config.txn_partition_verification || req.transactional_id.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for t in &req.topic_data {
            for pd in &t.partition_data {
                let tp = TopicPartition::new(t.name.as_str(), pd.index);
                let Some(h) = pd.records.as_ref().and_then(|r| crate::log::BatchHeader::parse(r).ok()) else { continue };
                if !h.is_transactional() || h.producer_id < 0 {
                    continue;
                }
                let Some(p) = self.partitions.get(&tp).filter(|p| p.is_leader()) else { continue };
                let open = p.log.ongoing_txns().iter().any(|(pid, _)| *pid == h.producer_id);
                if !open {
                    out.push((tp, h.producer_id, h.producer_epoch));
                }
            }
        }
        out
    }

    /// Parks a transactional produce while its coordinator verifies its partitions.
    pub(super) fn verify_then_produce(&mut self, now_ms: u64, ctx: RequestCtx, req: ProduceRequest, to_verify: Vec<(TopicPartition, i64, i16)>) -> Handled {
        let txn_id = req.transactional_id.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let id = self.purgatory.reserve();
        let tps: Vec<TopicPartition> = to_verify.iter().map(|(tp, _, _)| tp.clone()).collect();
        match self.txn_coordinator_of(&txn_id) {
            None => {
                self.txn.verified.insert(id, tps.iter().map(|tp| (tp.clone(), Some(ResponseError::CoordinatorNotAvailable))).collect());
            }
            Some(coordinator) => {
                let (pid, epoch) = (to_verify[0].1, to_verify[0].2);
                let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
                for tp in &tps {
                    match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(tp.partition),
                        None => topics.push(AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![tp.partition])),
                    }
                }
                let txn = AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_verify_only(true)
                    .with_topics(topics);
                let body = RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default().with_transactions(vec![txn]));
                self.queue_outbound(coordinator, ApiKey::AddPartitionsToTxn, VERIFY_VERSION, body, OutboundPurpose::Verify(id));
            }
        }
        let deadline = now_ms + u64::try_from(req.timeout_ms.max(0)).unwrap_or(0);
        self.park_reserved(now_ms, ctx, id, deadline, ParkedOp::Verify(ParkedVerify { request: Some(req), tps }))
    }

    fn on_verify_reply(&mut self, parked: u64, reply: Result<ResponseKind, String>) {
        let results: Vec<(TopicPartition, Option<ResponseError>)> = match reply {
            Ok(ResponseKind::AddPartitionsToTxn(r)) => r
                .results_by_transaction
                .iter()
                .flat_map(|t| t.topic_results.iter())
                .flat_map(|t| t.results_by_partition.iter().map(move |p| (TopicPartition::new(t.name.as_str(), p.partition_index), ResponseError::try_from_code(p.partition_error_code))))
                .collect(),
            // The coordinator could not be asked: the client retries.
            _ => Vec::new(),
        };
        self.txn.verified.insert(parked, results);
    }

    /// A parked verification: once answered, the produce runs with the partitions that
    /// failed verification refused (INVALID_TXN_STATE, or the coordinator's retriable error).
    /// Returns the parked op to continue with, or the answer.
    pub(super) fn try_complete_verify(&mut self, now_ms: u64, id: u64, pv: &mut ParkedVerify, expired: bool) -> Option<Result<ParkedOp, kafka_protocol::messages::ProduceResponse>> {
        let results = match self.txn.verified.remove(&id) {
            Some(r) => r,
            None if expired => Vec::new(),
            None => return None,
        };
        let refused: BTreeMap<TopicPartition, ResponseError> = pv
            .tps
            .iter()
            .map(|tp| {
                let verdict = results.iter().find(|(t, _)| t == tp).map_or(Some(ResponseError::CoordinatorNotAvailable), |(_, e)| *e);
                (tp.clone(), verdict)
            })
            .filter_map(|(tp, e)| e.map(|e| (tp, e)))
            .collect();
        for (tp, e) in &refused {
            crate::sometimes!("txn_verification_failed");
            self.trace.emit(|| format!("txn-verification-failed {tp} {e:?}"));
        }
        let req = pv.request.take().expect("verified once");
        Some(self.produce_now(now_ms, req, &refused))
    }

    // ----- group coordinator: TxnOffsetCommit -----

    pub(super) fn handle_txn_offset_commit(&mut self, now_ms: u64, ctx: RequestCtx, req: TxnOffsetCommitRequest) -> Handled {
        let group = req.group_id.to_string();
        let offsets = super::groups::commit_offsets(req.topics.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| (t.name.as_str(), p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref()))
        }));
        let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
        let check = match self.group_coordinator_check(&group) {
            Some(e) => Err(e),
            // Before KIP-447 (v0-2) there is no generation to check.
            None if ctx.version < 3 || (req.generation_id < 0 && req.member_id.is_empty()) => Ok(()),
            None => self.groups.validate_offset_commit(now_ms, &group, req.member_id.as_str(), req.generation_id),
        };
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition_for(&group, self.config.group.offsets_partitions));
        let stored = check.and_then(|()| {
            let records = self.groups.offset_commit_records(&group, i64::try_from(now_ms).unwrap_or(i64::MAX), &offsets);
            self.append_txn_offsets(now_ms, &tp, &records, pid, epoch)
        });
        let response = txn_commit_response(&offsets, stored.as_ref().err().copied());
        match stored {
            Err(_) => reply(ctx, ResponseKind::TxnOffsetCommit(response)),
            Ok(required) => {
                let response = super::groups::commit_response(&offsets, None);
                let op = ParkedCommit { tp, required, group, offsets, response, txn_producer: Some(pid) };
                self.park(now_ms, ctx, now_ms + 5_000, ParkedOp::OffsetCommit(op))
            }
        }
    }

    /// Appends a transaction's offset records to an offsets partition as a transactional
    /// batch of producer `pid`, so the transaction's marker there settles them.
    fn append_txn_offsets(&mut self, now_ms: u64, tp: &TopicPartition, records: &[(Bytes, Option<Bytes>)], pid: i64, epoch: i16) -> Result<i64, ResponseError> {
        let min_isr = self.config.min_insync_replicas;
        let Some(p) = self.partitions.get_mut(tp) else { return Err(ResponseError::NotCoordinator) };
        let Role::Leader(state) = &p.role else { return Err(ResponseError::NotCoordinator) };
        if state.isr.len() < min_isr.min(p.replicas.len()) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let leader_epoch = p.leader_epoch;
        let batch = encode_plain(records, pid, epoch, true);
        let info = match p.log.append_as_coordinator(&batch, leader_epoch) {
            Ok(info) => info,
            Err(LogError::Producer(e)) => return Err(super::produce::producer_error_code(e)),
            Err(_) => return Err(ResponseError::NotCoordinator),
        };
        self.trace.emit(|| format!("append {tp} {}..={} (txn offsets pid={pid})", info.first_offset, info.last_offset));
        self.maybe_advance_hw(now_ms, tp);
        Ok(info.last_offset + 1)
    }
}

/// Reads the keyed records of a partition's log in order (a coordinator's replay on failover).
/// Records of a transaction (TxnOffsetCommit in `__consumer_offsets`) count from their COMMIT
/// marker on and are dropped at an ABORT; those of a transaction still undecided at the log
/// end are left out (their offsets are not restored as pending: a known gap).
/// A keyed partition's records as a new owner replays them: the plain ones and those of
/// committed transactions, in log order, and the records of transactions still undecided at the
/// end of the log, by producer id (their marker is yet to come).
pub(super) type KeyedRecords = (Vec<(Bytes, Option<Bytes>)>, BTreeMap<i64, Vec<(Bytes, Option<Bytes>)>>);

pub(super) fn read_keyed_records(p: &super::partition::Partition, trace: &crate::observe::Tracer) -> KeyedRecords {
    let mut records = Vec::new();
    let mut open: BTreeMap<i64, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
    let mut next = p.log.log_start_offset();
    let end = p.leo();
    while next < end {
        let read = match p.log.read(next, 1 << 20) {
            Ok(r) if !r.bytes.is_empty() => r,
            Ok(_) => break,
            Err(e) => {
                trace.emit(|| format!("load-failed {} at {next}: {e}", p.tp));
                break;
            }
        };
        let mut buf = Bytes::from(read.bytes);
        let Ok(batches) = RecordBatchDecoder::decode_all(&mut buf) else {
            trace.emit(|| format!("load-failed {} at {next}: undecodable batch", p.tp));
            break;
        };
        for r in batches.iter().flat_map(|b| b.records.iter()) {
            if r.offset >= next {
                match (&r.key, r.control, r.transactional) {
                    (Some(key), true, _) => {
                        let done = open.remove(&r.producer_id).unwrap_or_default();
                        if ControlType::from_key(key) == Some(ControlType::Commit) {
                            records.extend(done);
                        }
                    }
                    (Some(key), false, true) => open.entry(r.producer_id).or_default().push((key.clone(), r.value.clone())),
                    (Some(key), false, false) => records.push((key.clone(), r.value.clone())),
                    (None, ..) => {}
                }
            }
            next = next.max(r.offset + 1);
        }
    }
    (records, open)
}

/// One uncompressed v2 batch of keyed records; transactional with `pid`/`epoch` when asked.
fn encode_plain(records: &[(Bytes, Option<Bytes>)], pid: i64, epoch: i16, transactional: bool) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: Some(key.clone()),
            value: value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    crate::protocol::encode_batch_v2(&records)
}

fn init_response(r: Result<(i64, i16), ResponseError>) -> ResponseKind {
    let resp = match r {
        Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
    };
    ResponseKind::InitProducerId(resp)
}

fn end_txn_response(r: Result<(i64, i16), ResponseError>) -> ResponseKind {
    let resp = match r {
        Ok((pid, epoch)) => EndTxnResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(e) => EndTxnResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
    };
    ResponseKind::EndTxn(resp)
}

fn topic_results(results: &[(TopicPartition, Option<ResponseError>)]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, e) in results {
        let p = AddPartitionsToTxnPartitionResult::default().with_partition_index(tp.partition).with_partition_error_code(e.map_or(0, |e| e.code()));
        match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
            Some(t) => t.results_by_partition.push(p),
            None => topics.push(AddPartitionsToTxnTopicResult::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_results_by_partition(vec![p])),
        }
    }
    topics
}

fn add_partitions_response(results: &[(TopicPartition, Option<ResponseError>)]) -> ResponseKind {
    let mut resp = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results(results));
    if results.is_empty() {
        resp.error_code = ResponseError::ConcurrentTransactions.code();
    }
    ResponseKind::AddPartitionsToTxn(resp)
}

pub(super) fn txn_commit_response(offsets: &[CommitOffset], error: Option<ResponseError>) -> TxnOffsetCommitResponse {
    let code = error.map_or(0, |e| e.code());
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (tp, ..) in offsets {
        let p = TxnOffsetCommitResponsePartition::default().with_partition_index(tp.partition).with_error_code(code);
        match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(TxnOffsetCommitResponseTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![p])),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// The TxnOffsetCommit answer with the codes of an OffsetCommit-shaped one.
pub(super) fn txn_commit_response_from(r: &kafka_protocol::messages::OffsetCommitResponse) -> TxnOffsetCommitResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(p.error_code)).collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
