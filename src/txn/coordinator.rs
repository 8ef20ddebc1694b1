//! `TxnCoordinator`: every transactional id whose `__transaction_state` partition this broker
//! leads, as a sans-IO state machine. This file holds the coordinator's state, its outputs and
//! the one place where a transactional id's state moves (`TxnCoordinator::transit`). Request
//! handlers live in `requests.rs`, write completions, markers and timers in `progress.rs`,
//! loading in `load.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::group::partition_for;
use crate::ids::TopicPartition;
use crate::observe::Tracer;

use super::records::{TxnLogValue, TxnRecord};
use super::state::TxnState;

/// The broker settings the coordinator obeys (Kafka's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`: transactional ids are spread over this many
    /// partitions of `__transaction_state`.
    pub partitions: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often open
    /// transactions older than their timeout are looked for and aborted.
    pub abort_check_interval_ms: u64,
    /// Transaction version 2 (current Kafka): every EndTxn bumps the producer epoch. False is
    /// TV1 (the behaviour switch `txn_same_epoch_across_transactions`).
    pub epoch_bump_per_txn: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig { partitions: 50, max_timeout_ms: 900_000, abort_check_interval_ms: 10_000, epoch_bump_per_txn: true }
    }
}

/// A record to append to `__transaction_state` partition `partition`, in the order taken. Once
/// the high watermark passed it (or the append failed) the broker calls
/// `write_completed(now, id, ..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnWrite {
    pub id: u64,
    pub partition: i32,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// WriteTxnMarkers to send: one marker per partition, to the partition's leader. The broker
/// retries failures itself and reports each partition that took its marker with
/// `markers_written`. A job is void once its transaction-state partition is unloaded (its
/// successor re-emits the markers it still needs); acks of a void job must not be reported:
/// under TV1, (producer id, epoch) does not tell two transactions of a producer apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub txn_id: String,
    pub producer_id: i64,
    /// The epoch the markers carry: the PrepareCommit/PrepareAbort record's.
    pub producer_epoch: i16,
    /// The leader epoch of the transaction-state partition when it was loaded here.
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// Per-partition answer of AddPartitionsToTxn: None is NONE.
pub type PartitionResults = Vec<(TopicPartition, Option<ResponseError>)>;

/// The answer to a request that was answered `Later`.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnReady {
    InitProducerId { token: u64, result: Result<(i64, i16), ResponseError> },
    AddPartitions { token: u64, result: PartitionResults },
    AddOffsets { token: u64, result: Result<(), ResponseError> },
    /// Ok carries the producer id and epoch the producer uses next.
    EndTxn { token: u64, result: Result<(i64, i16), ResponseError> },
}

impl TxnReady {
    pub fn token(&self) -> u64 {
        match self {
            TxnReady::InitProducerId { token, .. }
            | TxnReady::AddPartitions { token, .. }
            | TxnReady::AddOffsets { token, .. }
            | TxnReady::EndTxn { token, .. } => *token,
        }
    }
}

/// One transactional id as white-box checks see it: exactly its last committed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSnapshot {
    pub txn_id: String,
    /// Its `__transaction_state` partition.
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    /// The transaction's partitions; in PrepareX all of them, whether their marker is written
    /// or not; empty in Empty and CompleteX.
    pub partitions: Vec<TopicPartition>,
    /// When the current (or last) transaction started; None before the first.
    pub start_ms: Option<u64>,
    pub timeout_ms: i32,
}

/// Epochs from here on are never handed to a producer: an epoch that would reach it comes with
/// a new producer id instead (Kafka's `isEpochExhausted` is `>= Short.MaxValue - 1`; we keep
/// one more in reserve so that a TV2 fence, which bumps twice, still fits an i16).
pub(super) const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// How long a CompleteCommit/CompleteAbort write that failed (or could not get a producer id)
/// waits before it is tried again: until then the transaction stays PrepareX.
pub(super) const COMPLETE_RETRY_MS: u64 = 100;

/// The durable image of one transactional id: what its last committed record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// -1 before the first transaction.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl Meta {
    pub fn to_value(&self) -> TxnLogValue {
        // Kafka writes Empty records with null partitions and every other state with an array.
        let partitions = (self.state != TxnState::Empty).then(|| self.partitions.iter().cloned().collect());
        TxnLogValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }

    /// Empty and CompleteX hold no partitions whatever the record says.
    pub fn from_value(v: TxnLogValue) -> Meta {
        let partitions = match v.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => BTreeSet::new(),
            _ => v.partitions.unwrap_or_default().into_iter().collect(),
        };
        Meta {
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
        }
    }
}

/// Why a write is pending, and who waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cause {
    /// InitProducerId: Empty with a new epoch (or producer id). `retry_as` is the identity a
    /// retry of this request may present once it succeeded.
    Init { token: u64, retry_as: Option<(i64, i16)> },
    AddPartitions { token: u64, partitions: Vec<TopicPartition> },
    AddOffsets { token: u64 },
    /// EndTxn: PrepareCommit/PrepareAbort. `defer`: the answer waits for CompleteX, which
    /// brings the new producer id (TV2, epoch exhausted).
    End { token: u64, commit: bool, defer: bool },
    /// Ongoing -> PrepareEpochFence -> PrepareAbort, for an InitProducerId (answered
    /// CONCURRENT_TRANSACTIONS) or a timeout (no one waits).
    Fence { token: Option<u64>, fence_epoch: i16 },
    /// All markers are written: CompleteCommit/CompleteAbort. `rotated_from` is the old producer
    /// id and the epoch its client held, when TV2 moved the transactional id to a new one.
    Complete { rotated_from: Option<(i64, i16)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub write_id: u64,
    /// The state once the write is committed.
    pub target: Meta,
    pub cause: Cause,
}

/// One transactional id served here.
#[derive(Debug, Clone)]
pub(super) struct Txn {
    pub partition: i32,
    /// None until its first record (InitProducerId's) is committed.
    pub meta: Option<Meta>,
    pub pending: Option<Pending>,
    /// In PrepareX: the partitions whose marker was not reported written yet.
    pub outstanding: BTreeSet<TopicPartition>,
    /// In memory only: the (producer id, epoch) a client may still present as a retry of a
    /// request that moved it on (an InitProducerId with an expected epoch, a TV2 rotation).
    pub retry_as: Option<(i64, i16)>,
    /// An EndTxn answered when CompleteX is committed (TV2 rotation).
    pub deferred_end: Option<u64>,
    /// When to try the CompleteX write again.
    pub complete_retry_at: Option<u64>,
}

impl Txn {
    pub fn new(partition: i32) -> Txn {
        Txn {
            partition,
            meta: None,
            pending: None,
            outstanding: BTreeSet::new(),
            retry_as: None,
            deferred_end: None,
            complete_retry_at: None,
        }
    }

    /// Its committed state (None while its first record is pending).
    pub fn state(&self) -> Option<TxnState> {
        self.meta.as_ref().map(|m| m.state)
    }
}

/// The transaction coordinator of one broker.
pub struct TxnCoordinator {
    pub(super) config: TxnConfig,
    broker_id: i32,
    pub(super) trace: Tracer,
    /// Transaction-state partitions led here and loaded, with their coordinator epoch.
    pub(super) loaded: BTreeMap<i32, i32>,
    pub(super) txns: BTreeMap<String, Txn>,
    /// Pending write id -> transactional id.
    pub(super) pending_ids: BTreeMap<u64, String>,
    /// The producer-id block: [next, end).
    next_producer_id: i64,
    producer_id_end: i64,
    next_write_id: u64,
    pub(super) next_abort_check_ms: u64,
    pub(super) writes: Vec<TxnWrite>,
    pub(super) markers: Vec<MarkerJob>,
    pub(super) ready: Vec<TxnReady>,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig, broker_id: i32, trace: Tracer) -> Self {
        assert!(config.partitions > 0, "transaction.state.log.num.partitions must be positive");
        assert!(config.max_timeout_ms > 0, "transaction.max.timeout.ms must be positive");
        assert!(config.abort_check_interval_ms > 0, "the abort check interval must be positive");
        TxnCoordinator {
            next_abort_check_ms: config.abort_check_interval_ms,
            config,
            broker_id,
            trace,
            loaded: BTreeMap::new(),
            txns: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            next_producer_id: 0,
            producer_id_end: 0,
            next_write_id: 1,
            writes: Vec::new(),
            markers: Vec::new(),
            ready: Vec::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    pub(super) fn tv2(&self) -> bool {
        self.config.epoch_bump_per_txn
    }

    /// Hands the coordinator producer ids [next, end) (replacing what is left of the previous
    /// block). When none are left, requests that need one answer COORDINATOR_NOT_AVAILABLE.
    pub fn set_producer_id_block(&mut self, next: i64, end: i64) {
        assert!(0 <= next && next <= end, "producer id block [{next}, {end})");
        self.next_producer_id = next;
        self.producer_id_end = end;
        self.trace.emit(|| format!("txn producer id block [{next}, {end})"));
    }

    /// How many producer ids are left in the block.
    pub fn producer_ids_left(&self) -> i64 {
        self.producer_id_end - self.next_producer_id
    }

    pub(super) fn allocate_producer_id(&mut self) -> Option<i64> {
        if self.next_producer_id >= self.producer_id_end {
            return None;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Some(id)
    }

    /// The `__transaction_state` partition of `txn_id` (Kafka's `partitionFor`).
    pub fn partition_of(&self, txn_id: &str) -> i32 {
        partition_for(txn_id, self.config.partitions as u32)
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.contains_key(&partition)
    }

    /// None when `txn_id` is served here, else the error for the client (NOT_COORDINATOR).
    pub fn check_owner(&self, txn_id: &str) -> Option<ResponseError> {
        (!self.is_loaded(self.partition_of(txn_id))).then_some(ResponseError::NotCoordinator)
    }

    /// Emits `target` as the record of `txn_id` and parks `cause` until `write_completed`.
    pub(super) fn begin_write(&mut self, txn_id: &str, target: Meta, cause: Cause) {
        let id = self.next_write_id;
        self.next_write_id += 1;
        let txn = self.txns.get_mut(txn_id).expect("writing a known transactional id");
        assert!(txn.pending.is_none(), "txn {txn_id}: second pending write");
        let (key, value) = TxnRecord { transactional_id: txn_id.to_string(), value: Some(target.to_value()) }.encode();
        self.writes.push(TxnWrite { id, partition: txn.partition, key, value });
        self.trace.emit(|| {
            format!(
                "txn {txn_id} write {id}: {} pid={} epoch={} ({cause:?})",
                target.state, target.producer_id, target.producer_epoch
            )
        });
        txn.pending = Some(Pending { write_id: id, target, cause });
        self.pending_ids.insert(id, txn_id.to_string());
    }

    /// The one place a transactional id's state moves: through the table, with a trace line.
    /// `pid` and `epoch` are the producer's after the move.
    pub(super) fn transit(&self, txn_id: &str, from: TxnState, to: TxnState, pid: i64, epoch: i16) -> TxnState {
        let mut state = from;
        if let Err(e) = state.transition(to, self.tv2()) {
            panic!("txn {txn_id}: {e}");
        }
        self.trace.emit(|| format!("txn-state {txn_id} pid={pid} epoch={epoch} {from} -> {to}"));
        state
    }

    /// Timers: aborting timed-out transactions (every `abort_check_interval_ms`) and retrying
    /// CompleteX writes. Call at least at `next_deadline()`.
    pub fn tick(&mut self, now_ms: u64) {
        if now_ms >= self.next_abort_check_ms {
            self.abort_timed_out(now_ms);
            self.next_abort_check_ms = now_ms + self.config.abort_check_interval_ms;
        }
        let due: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.pending.is_none() && t.complete_retry_at.is_some_and(|at| at <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.start_complete(now_ms, &id);
        }
    }

    /// The earliest time at which `tick` has something to do: the next abort check while a
    /// transaction is open, a CompleteX retry.
    pub fn next_deadline(&self) -> Option<u64> {
        let open = self.txns.values().any(|t| t.state() == Some(TxnState::Ongoing));
        let check = open.then_some(self.next_abort_check_ms);
        let retries = self.txns.values().filter(|t| t.pending.is_none()).filter_map(|t| t.complete_retry_at);
        check.into_iter().chain(retries).min()
    }

    /// Records to append, in order.
    pub fn take_writes(&mut self) -> Vec<TxnWrite> {
        std::mem::take(&mut self.writes)
    }

    /// Marker jobs to send.
    pub fn take_markers(&mut self) -> Vec<MarkerJob> {
        std::mem::take(&mut self.markers)
    }

    /// Answers to requests answered `Later`, in the order they were decided.
    pub fn take_ready(&mut self) -> Vec<TxnReady> {
        std::mem::take(&mut self.ready)
    }

    /// Every transactional id with a committed record, by id.
    pub fn snapshot(&self) -> Vec<TxnSnapshot> {
        self.txns
            .iter()
            .filter_map(|(id, t)| {
                let m = t.meta.as_ref()?;
                Some(TxnSnapshot {
                    txn_id: id.clone(),
                    partition: t.partition,
                    producer_id: m.producer_id,
                    producer_epoch: m.producer_epoch,
                    state: m.state,
                    partitions: m.partitions.iter().cloned().collect(),
                    start_ms: u64::try_from(m.start_ms).ok(),
                    timeout_ms: m.timeout_ms,
                })
            })
            .collect()
    }

    /// The committed state of one transactional id, if it is served here.
    pub fn txn_state(&self, txn_id: &str) -> Option<TxnState> {
        self.txns.get(txn_id).and_then(Txn::state)
    }

    /// Whether a write is pending for `txn_id`.
    pub fn has_pending_write(&self, txn_id: &str) -> bool {
        self.txns.get(txn_id).is_some_and(|t| t.pending.is_some())
    }

    /// Asserts the coordinator's invariants (white-box tests call this after every step).
    pub fn assert_invariants(&self) {
        for (id, t) in &self.txns {
            assert!(self.is_loaded(t.partition), "txn {id} on unloaded partition {}", t.partition);
            assert_eq!(t.partition, self.partition_of(id), "txn {id} partition");
            match &t.meta {
                None => assert!(
                    matches!(t.pending, Some(Pending { cause: Cause::Init { .. }, .. })),
                    "txn {id} has no record and no pending InitProducerId"
                ),
                Some(m) => {
                    assert!(!matches!(m.state, TxnState::PrepareEpochFence | TxnState::Dead), "txn {id} rests in {}", m.state);
                    if matches!(m.state, TxnState::Empty) || m.state.is_complete() {
                        assert!(m.partitions.is_empty(), "txn {id} {} with partitions", m.state);
                    }
                    if !t.outstanding.is_empty() {
                        assert!(m.state.is_prepare(), "txn {id}: markers outstanding in {}", m.state);
                        assert!(t.outstanding.is_subset(&m.partitions), "txn {id}: markers outside the transaction");
                    }
                    if t.deferred_end.is_some() {
                        assert!(m.state.is_prepare(), "txn {id}: deferred EndTxn in {}", m.state);
                    }
                }
            }
            if let Some(p) = &t.pending {
                assert_eq!(self.pending_ids.get(&p.write_id).map(String::as_str), Some(id.as_str()), "txn {id} pending id");
            }
        }
        for (wid, id) in &self.pending_ids {
            let t = self.txns.get(id).unwrap_or_else(|| panic!("pending write {wid} of unknown txn {id}"));
            assert_eq!(t.pending.as_ref().map(|p| p.write_id), Some(*wid), "pending write {wid}");
        }
    }
}

/// What a failed append tells the client: retriable, and NOT_COORDINATOR when this broker is
/// no longer the leader (Kafka's `appendTransactionToLog` mapping, simplified).
pub(super) fn write_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError | ResponseError::NotCoordinator => {
            ResponseError::NotCoordinator
        }
        _ => ResponseError::CoordinatorNotAvailable,
    }
}
