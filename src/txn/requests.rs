//! The client requests: InitProducerId, AddPartitionsToTxn (and its verify-only form),
//! AddOffsetsToTxn, EndTxn. Each checks against the committed state and either answers now or
//! emits a write whose completion answers it (`progress.rs`).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;

use super::coordinator::{Cause, Meta, PartitionResults, Txn, TxnCoordinator, EPOCH_EXHAUSTED};
use super::records::STRING_LEN_MAX;
use super::state::TxnState;
use super::Reply;

/// What AddPartitionsToTxn and AddOffsetsToTxn answer on success.
enum AddKind {
    Partitions,
    Offsets,
}

impl TxnCoordinator {
    /// InitProducerId with a transactional id. `expected` is KIP-360's producer id and epoch
    /// of a producer that re-initializes after an error. Ok is the producer id and epoch to use.
    pub fn init_producer_id(
        &mut self,
        now_ms: u64,
        token: u64,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Reply<Result<(i64, i16), ResponseError>> {
        if txn_id.is_empty() || txn_id.len() > STRING_LEN_MAX {
            return Reply::Now(Err(ResponseError::InvalidRequest));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Reply::Now(Err(ResponseError::InvalidTransactionTimeout));
        }
        if let Some(e) = self.check_owner(txn_id) {
            return Reply::Now(Err(e));
        }
        let now = now_ms as i64;
        let Some(txn) = self.txns.get(txn_id) else {
            // A new transactional id: a new producer id at epoch 0, whatever `expected` says.
            let Some(pid) = self.allocate_producer_id() else {
                return Reply::Now(Err(ResponseError::CoordinatorNotAvailable));
            };
            let partition = self.partition_of(txn_id);
            self.txns.insert(txn_id.to_string(), Txn::new(partition));
            let target = empty_meta(pid, 0, timeout_ms, now);
            self.begin_write(txn_id, target, Cause::Init { token, retry_as: None });
            return Reply::Later;
        };
        if txn.pending.is_some() {
            return Reply::Now(Err(ResponseError::ConcurrentTransactions));
        }
        let meta = txn.meta.clone().expect("a transactional id without a pending write has a record");
        let retry_as = txn.retry_as;
        if let Some((pid, _)) = expected {
            if pid != meta.producer_id && Some(pid) != retry_as.map(|r| r.0) {
                return Reply::Now(Err(ResponseError::ProducerFenced));
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Reply::Now(Err(ResponseError::ConcurrentTransactions)),
            TxnState::Ongoing => {
                self.fence(now_ms, txn_id, Some(token));
                Reply::Later
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let (identity, retry_as) = match expected {
                    None => (self.next_identity(&meta), None),
                    Some(e) if e == (meta.producer_id, meta.producer_epoch) => (self.next_identity(&meta), Some(e)),
                    // A retry of an InitProducerId that already moved this producer on.
                    Some(e) if Some(e) == retry_as => (Some((meta.producer_id, meta.producer_epoch)), retry_as),
                    Some(_) => return Reply::Now(Err(ResponseError::ProducerFenced)),
                };
                let Some((pid, epoch)) = identity else {
                    return Reply::Now(Err(ResponseError::CoordinatorNotAvailable));
                };
                let target = empty_meta(pid, epoch, timeout_ms, now);
                self.begin_write(txn_id, target, Cause::Init { token, retry_as });
                Reply::Later
            }
            TxnState::PrepareEpochFence | TxnState::Dead => unreachable!("txn {txn_id} rests in {}", meta.state),
        }
    }

    /// The producer id and epoch after an epoch bump: epoch + 1, or a new producer id at epoch 0
    /// when the epoch would reach `EPOCH_EXHAUSTED`. None when no producer id is left.
    fn next_identity(&mut self, meta: &Meta) -> Option<(i64, i16)> {
        if meta.producer_epoch >= EPOCH_EXHAUSTED - 1 {
            let pid = self.allocate_producer_id()?;
            let (id, old, epoch) = (pid, meta.producer_id, meta.producer_epoch);
            self.trace.emit(|| format!("txn producer id {old} epoch {epoch} exhausted: new producer id {id}"));
            Some((pid, 0))
        } else {
            Some((meta.producer_id, meta.producer_epoch + 1))
        }
    }

    /// AddPartitionsToTxn. With `verify_only` (KIP-890 part 1, asked by a partition leader before
    /// the first transactional append) nothing changes: a partition gets NONE if the transaction
    /// is Ongoing with this producer id and epoch, holds the partition and is not being ended,
    /// else INVALID_TXN_STATE (Kafka answers TRANSACTION_ABORTABLE for a partition not in the
    /// transaction; INVALID_TXN_STATE makes the leader refuse the append just the same). A
    /// wrong producer id or epoch gets INVALID_PRODUCER_ID_MAPPING / PRODUCER_FENCED, as in
    /// Kafka.
    #[allow(clippy::too_many_arguments)]
    pub fn add_partitions(
        &mut self,
        now_ms: u64,
        token: u64,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        verify_only: bool,
    ) -> Reply<PartitionResults> {
        let all = |e: Option<ResponseError>| partitions.iter().map(|tp| (tp.clone(), e)).collect::<PartitionResults>();
        if verify_only {
            return Reply::Now(self.verify(txn_id, producer_id, producer_epoch, partitions));
        }
        if partitions.iter().any(|tp| tp.topic.len() > STRING_LEN_MAX) {
            return Reply::Now(all(Some(ResponseError::InvalidRequest)));
        }
        match self.add(now_ms, token, txn_id, producer_id, producer_epoch, partitions, AddKind::Partitions) {
            Reply::Now(result) => Reply::Now(all(result.err())),
            Reply::Later => Reply::Later,
        }
    }

    /// AddOffsetsToTxn: adds `group_partition`, the `__consumer_offsets` partition of the
    /// group, so the offsets the producer commits get the transaction's marker.
    pub fn add_offsets(
        &mut self,
        now_ms: u64,
        token: u64,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_partition: TopicPartition,
    ) -> Reply<Result<(), ResponseError>> {
        if group_partition.topic.len() > STRING_LEN_MAX {
            return Reply::Now(Err(ResponseError::InvalidRequest));
        }
        self.add(now_ms, token, txn_id, producer_id, producer_epoch, &[group_partition], AddKind::Offsets)
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        now_ms: u64,
        token: u64,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        kind: AddKind,
    ) -> Reply<Result<(), ResponseError>> {
        if txn_id.is_empty() {
            return Reply::Now(Err(ResponseError::InvalidRequest));
        }
        if let Some(e) = self.check_owner(txn_id) {
            return Reply::Now(Err(e));
        }
        let Some(txn) = self.txns.get(txn_id) else {
            return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
        };
        let Some(meta) = &txn.meta else {
            return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
        };
        if meta.producer_id != producer_id {
            return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
        }
        if meta.producer_epoch != producer_epoch {
            return Reply::Now(Err(ResponseError::ProducerFenced));
        }
        if txn.pending.is_some() || meta.state.is_prepare() {
            return Reply::Now(Err(ResponseError::ConcurrentTransactions));
        }
        let new: BTreeSet<TopicPartition> = partitions.iter().filter(|tp| !meta.partitions.contains(tp)).cloned().collect();
        // Nothing to add: an empty list changes nothing (not even Empty -> Ongoing), and
        // partitions already in the open transaction are answered at once, as Kafka does.
        if partitions.is_empty() || (meta.state == TxnState::Ongoing && new.is_empty()) {
            return Reply::Now(Ok(()));
        }
        let mut target = meta.clone();
        match meta.state {
            TxnState::Ongoing => {}
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                target.start_ms = now_ms as i64;
                target.partitions.clear();
            }
            s => unreachable!("txn {txn_id}: add partitions in {s}"),
        }
        target.state = TxnState::Ongoing;
        target.partitions.extend(new);
        target.last_update_ms = now_ms as i64;
        let cause = match kind {
            AddKind::Partitions => Cause::AddPartitions { token, partitions: partitions.to_vec() },
            AddKind::Offsets => Cause::AddOffsets { token },
        };
        self.begin_write(txn_id, target, cause);
        Reply::Later
    }

    fn verify(&self, txn_id: &str, producer_id: i64, producer_epoch: i16, partitions: &[TopicPartition]) -> PartitionResults {
        let all = |e: ResponseError| partitions.iter().map(|tp| (tp.clone(), Some(e))).collect::<PartitionResults>();
        if txn_id.is_empty() {
            return all(ResponseError::InvalidRequest);
        }
        if let Some(e) = self.check_owner(txn_id) {
            return all(e);
        }
        let Some((txn, meta)) = self.txns.get(txn_id).and_then(|t| Some((t, t.meta.as_ref()?))) else {
            return all(ResponseError::InvalidProducerIdMapping);
        };
        if meta.producer_id != producer_id {
            return all(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return all(ResponseError::ProducerFenced);
        }
        // An EndTxn (or a fence) whose record is pending has closed the transaction to new data.
        let ending = matches!(txn.pending.as_ref().map(|p| &p.cause), Some(Cause::End { .. } | Cause::Fence { .. }));
        let open = meta.state == TxnState::Ongoing && !ending;
        partitions
            .iter()
            .map(|tp| (tp.clone(), (!(open && meta.partitions.contains(tp))).then_some(ResponseError::InvalidTxnState)))
            .collect()
    }

    /// EndTxn (commit or abort). Ok carries the producer id and epoch the producer uses next:
    /// unchanged under TV1; under TV2 the epoch the PrepareX record took (epoch + 1), or a new
    /// producer id at epoch 0 once the epoch is exhausted. A fenced epoch gets PRODUCER_FENCED
    /// (never INVALID_PRODUCER_EPOCH, which older brokers sent).
    pub fn end_txn(
        &mut self,
        now_ms: u64,
        token: u64,
        txn_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Reply<Result<(i64, i16), ResponseError>> {
        if txn_id.is_empty() {
            return Reply::Now(Err(ResponseError::InvalidRequest));
        }
        if let Some(e) = self.check_owner(txn_id) {
            return Reply::Now(Err(e));
        }
        let Some((txn, meta)) = self.txns.get(txn_id).and_then(|t| Some((t, t.meta.clone()?))) else {
            return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
        };
        let current = (meta.producer_id, meta.producer_epoch);
        let (ok, invalid) = (Reply::Now(Ok(current)), Reply::Now(Err(ResponseError::InvalidTxnState)));
        let concurrent = Reply::Now(Err(ResponseError::ConcurrentTransactions));
        let fenced = Reply::Now(Err(ResponseError::ProducerFenced));
        use TxnState::*;
        if !self.tv2() {
            if producer_id != meta.producer_id {
                return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
            }
            if producer_epoch != meta.producer_epoch {
                return fenced;
            }
            if txn.pending.is_some() {
                return concurrent;
            }
            return match (meta.state, commit) {
                (Ongoing, _) => self.prepare(now_ms, token, txn_id, &meta, commit),
                (CompleteCommit, true) | (CompleteAbort, false) => ok,
                (PrepareCommit, true) | (PrepareAbort, false) => concurrent,
                (Empty | CompleteCommit | CompleteAbort | PrepareCommit | PrepareAbort, _) => invalid,
                (PrepareEpochFence | Dead, _) => unreachable!("txn {txn_id} rests in {}", meta.state),
            };
        }
        // TV2 (Kafka's `endTransaction` above transaction version 2): (producer id, epoch)
        // names one transaction, so a retry is told apart from the next transaction's EndTxn by
        // its epoch: the retry carries the epoch before the bump.
        let retry_on_overflow = producer_id != meta.producer_id && txn.retry_as == Some((producer_id, producer_epoch));
        let retry_on_bump = producer_id == meta.producer_id && producer_epoch.checked_add(1) == Some(meta.producer_epoch);
        if producer_id != meta.producer_id && !retry_on_overflow {
            return Reply::Now(Err(ResponseError::InvalidProducerIdMapping));
        }
        let same = producer_id == meta.producer_id && producer_epoch == meta.producer_epoch;
        let valid_epoch = match meta.state {
            Ongoing | Empty => same,
            PrepareCommit | PrepareAbort => retry_on_bump,
            CompleteCommit | CompleteAbort => retry_on_bump || retry_on_overflow || same,
            PrepareEpochFence | Dead => unreachable!("txn {txn_id} rests in {}", meta.state),
        };
        if !valid_epoch {
            return fenced;
        }
        if txn.pending.is_some() {
            return concurrent;
        }
        let retry = retry_on_bump || retry_on_overflow;
        match (meta.state, commit) {
            (Ongoing, _) => self.prepare(now_ms, token, txn_id, &meta, commit),
            (CompleteCommit, true) | (CompleteAbort, false) if retry => ok,
            // An abort with no transaction open: PrepareAbort without partitions, which moves
            // straight on to CompleteAbort (and bumps the epoch).
            (Empty | CompleteCommit | CompleteAbort, false) if !retry => self.prepare(now_ms, token, txn_id, &meta, false),
            (PrepareCommit, true) | (PrepareAbort, false) => concurrent,
            _ => invalid,
        }
    }

    /// Writes PrepareCommit/PrepareAbort for an EndTxn.
    fn prepare(&mut self, now_ms: u64, token: u64, txn_id: &str, meta: &Meta, commit: bool) -> Reply<Result<(i64, i16), ResponseError>> {
        let mut target = meta.clone();
        if meta.state != TxnState::Ongoing {
            // TV2's abort without an open transaction: it starts and ends now.
            target.partitions.clear();
            target.start_ms = now_ms as i64;
        }
        target.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        target.last_update_ms = now_ms as i64;
        let mut defer = false;
        if self.tv2() {
            target.producer_epoch = bump(meta.producer_epoch);
            // The client may not hold this epoch: it gets a new producer id once CompleteX has it.
            defer = target.producer_epoch >= EPOCH_EXHAUSTED;
        }
        self.begin_write(txn_id, target, Cause::End { token, commit, defer });
        Reply::Later
    }

    /// Aborts `txn_id`'s open transaction for a new producer (InitProducerId, `token`) or a
    /// timeout: the epoch is bumped (PrepareEpochFence, never handed out), and PrepareAbort is
    /// written with it; under TV2 the abort bumps once more, as every EndTxn does, so the fenced
    /// epoch is not mistaken for a retry of the abort.
    pub(super) fn fence(&mut self, now_ms: u64, txn_id: &str, token: Option<u64>) {
        let meta = self.txns[txn_id].meta.clone().expect("fencing a transaction with a record");
        assert_eq!(meta.state, TxnState::Ongoing, "txn {txn_id}: fence outside Ongoing");
        let fence_epoch = bump(meta.producer_epoch);
        let mut target = meta;
        target.state = TxnState::PrepareAbort;
        target.producer_epoch = if self.tv2() { bump(fence_epoch) } else { fence_epoch };
        target.last_update_ms = now_ms as i64;
        self.begin_write(txn_id, target, Cause::Fence { token, fence_epoch });
    }
}

/// epoch + 1, kept at i16::MAX for a foreign log that already reached it (ours never does).
pub(super) fn bump(epoch: i16) -> i16 {
    epoch.saturating_add(1)
}

fn empty_meta(producer_id: i64, producer_epoch: i16, timeout_ms: i32, now: i64) -> Meta {
    Meta {
        producer_id,
        producer_epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now,
    }
}
