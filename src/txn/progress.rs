//! What moves a transaction on once a request was accepted: committed (or failed) writes,
//! written markers, the CompleteX write, and the timeout that aborts forgotten transactions.

use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;

use super::coordinator::{write_error, Cause, MarkerJob, Meta, TxnCoordinator, TxnReady, COMPLETE_RETRY_MS, EPOCH_EXHAUSTED};
use super::state::TxnState;

impl TxnCoordinator {
    /// The write `id` (from `take_writes`) is committed (the high watermark passed it) or
    /// failed. Only now does the state move; a failure leaves it as it was and answers the
    /// waiting client with a retriable error. Unknown ids (the partition was unloaded since)
    /// are ignored. A write reported failed that commits after all is found by the next load,
    /// as in Kafka.
    pub fn write_completed(&mut self, now_ms: u64, id: u64, result: Result<(), ResponseError>) {
        let Some(txn_id) = self.pending_ids.remove(&id) else {
            self.trace.emit(|| format!("txn write {id} completed ({result:?}) but is not pending here: ignored"));
            return;
        };
        let txn = self.txns.get_mut(&txn_id).expect("pending write of a known txn");
        let pending = txn.pending.take().expect("pending write recorded");
        match result {
            Ok(()) => self.committed(now_ms, &txn_id, pending.target, pending.cause),
            Err(e) => self.failed(now_ms, &txn_id, pending.cause, e),
        }
    }

    fn committed(&mut self, now_ms: u64, txn_id: &str, target: Meta, cause: Cause) {
        let from = self.txns[txn_id].state();
        let tv2 = self.tv2();
        let (pid, epoch) = (target.producer_id, target.producer_epoch);
        // A new transactional id starts Empty (Kafka creates its metadata Empty at epoch -1).
        let mut state = from.unwrap_or(TxnState::Empty);
        if let Cause::Fence { fence_epoch, .. } = cause {
            crate::sometimes!("txn_epoch_fence");
            state = self.transit(txn_id, state, TxnState::PrepareEpochFence, pid, fence_epoch);
        }
        self.transit(txn_id, state, target.state, pid, epoch);
        let txn = self.txns.get_mut(txn_id).expect("known txn");
        txn.meta = Some(target.clone());
        match cause {
            Cause::Init { token, retry_as } => {
                txn.retry_as = retry_as;
                self.ready.push(TxnReady::InitProducerId { token, result: Ok((pid, epoch)) });
            }
            Cause::AddPartitions { token, partitions } => {
                let result = partitions.into_iter().map(|tp| (tp, None)).collect();
                self.ready.push(TxnReady::AddPartitions { token, result });
            }
            Cause::AddOffsets { token } => self.ready.push(TxnReady::AddOffsets { token, result: Ok(()) }),
            Cause::End { token, defer, .. } => {
                if tv2 {
                    // The epoch moved on: older identities are no longer retries.
                    txn.retry_as = None;
                }
                if defer {
                    txn.deferred_end = Some(token);
                } else {
                    // The client is answered once the decision is logged, before any marker.
                    self.ready.push(TxnReady::EndTxn { token, result: Ok((pid, epoch)) });
                }
                self.send_markers(now_ms, txn_id);
            }
            Cause::Fence { token, .. } => {
                txn.retry_as = None;
                if let Some(token) = token {
                    // The new producer retries and gets the epoch after the abort's.
                    self.ready.push(TxnReady::InitProducerId { token, result: Err(ResponseError::ConcurrentTransactions) });
                }
                self.send_markers(now_ms, txn_id);
            }
            Cause::Complete { rotated_from } => {
                if rotated_from.is_some() {
                    txn.retry_as = rotated_from;
                }
                if let Some(token) = txn.deferred_end.take() {
                    self.ready.push(TxnReady::EndTxn { token, result: Ok((pid, epoch)) });
                }
            }
        }
    }

    fn failed(&mut self, now_ms: u64, txn_id: &str, cause: Cause, e: ResponseError) {
        let error = write_error(e);
        self.trace.emit(|| format!("txn {txn_id} write failed: {e:?} ({cause:?}); answered {error:?}"));
        let txn = self.txns.get_mut(txn_id).expect("known txn");
        match cause {
            Cause::Init { token, .. } => self.ready.push(TxnReady::InitProducerId { token, result: Err(error) }),
            Cause::AddPartitions { token, partitions } => {
                let result = partitions.into_iter().map(|tp| (tp, Some(error))).collect();
                self.ready.push(TxnReady::AddPartitions { token, result });
            }
            Cause::AddOffsets { token } => self.ready.push(TxnReady::AddOffsets { token, result: Err(error) }),
            Cause::End { token, .. } => self.ready.push(TxnReady::EndTxn { token, result: Err(error) }),
            // A timeout's fence is tried again at the next abort check.
            Cause::Fence { token, .. } => {
                if let Some(token) = token {
                    self.ready.push(TxnReady::InitProducerId { token, result: Err(error) });
                }
            }
            Cause::Complete { .. } => txn.complete_retry_at = Some(now_ms + COMPLETE_RETRY_MS),
        }
        if txn.meta.is_none() {
            // The first record of a new transactional id never made it: forget the id (its
            // producer id is not reused).
            self.txns.remove(txn_id);
        }
    }

    /// Emits the markers of a transaction that just reached PrepareX (or was loaded in it); one
    /// without partitions goes straight on to CompleteX.
    pub(super) fn send_markers(&mut self, now_ms: u64, txn_id: &str) {
        let txn = self.txns.get_mut(txn_id).expect("known txn");
        let meta = txn.meta.as_ref().expect("PrepareX has a record");
        assert!(meta.state.is_prepare(), "txn {txn_id}: markers in {}", meta.state);
        txn.outstanding = meta.partitions.clone();
        if txn.outstanding.is_empty() {
            self.start_complete(now_ms, txn_id);
            return;
        }
        let coordinator_epoch = self.loaded[&txn.partition];
        self.trace.emit(|| {
            let (what, n) = (if meta.state == TxnState::PrepareCommit { "commit" } else { "abort" }, meta.partitions.len());
            format!("txn {txn_id} markers: {what} pid={} epoch={} to {n} partitions", meta.producer_id, meta.producer_epoch)
        });
        self.markers.push(MarkerJob {
            txn_id: txn_id.to_string(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            coordinator_epoch,
            commit: meta.state == TxnState::PrepareCommit,
            partitions: meta.partitions.iter().cloned().collect(),
        });
    }

    /// WriteTxnMarkers succeeded on `partitions` for the transaction of `txn_id` whose markers
    /// carry `producer_id` and `producer_epoch`. Once every partition has its marker, CompleteX
    /// is written. Reports that match no transaction in PrepareX (stale, duplicate, or for a
    /// partition not in it) are ignored.
    pub fn markers_written(&mut self, now_ms: u64, txn_id: &str, producer_id: i64, producer_epoch: i16, partitions: &[TopicPartition]) {
        let Some(txn) = self.txns.get_mut(txn_id) else {
            self.trace.emit(|| format!("txn {txn_id}: markers written, but it is not served here: ignored"));
            return;
        };
        let matches = txn.meta.as_ref().is_some_and(|m| {
            m.state.is_prepare() && m.producer_id == producer_id && m.producer_epoch == producer_epoch
        });
        if !matches || txn.outstanding.is_empty() {
            self.trace.emit(|| format!("txn {txn_id}: markers of pid={producer_id} epoch={producer_epoch} written, not awaited: ignored"));
            return;
        }
        for tp in partitions {
            txn.outstanding.remove(tp);
        }
        if txn.outstanding.is_empty() && txn.pending.is_none() {
            self.start_complete(now_ms, txn_id);
        }
    }

    /// Writes CompleteCommit/CompleteAbort for a PrepareX transaction whose markers are all
    /// written. Under TV2 an exhausted epoch moves the transactional id to a new producer id
    /// here (the client learns it from its deferred EndTxn answer).
    pub(super) fn start_complete(&mut self, now_ms: u64, txn_id: &str) {
        let txn = &self.txns[txn_id];
        let meta = txn.meta.clone().expect("PrepareX has a record");
        assert!(meta.state.is_prepare() && txn.outstanding.is_empty() && txn.pending.is_none(), "txn {txn_id}: not ready to complete");
        let mut target = meta.clone();
        target.state = if meta.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        target.partitions.clear();
        target.last_update_ms = now_ms as i64;
        let mut rotated_from = None;
        if self.tv2() && meta.producer_epoch >= EPOCH_EXHAUSTED {
            let Some(pid) = self.allocate_producer_id() else {
                self.trace.emit(|| format!("txn {txn_id}: no producer id for the rotation at completion; retrying"));
                self.txns.get_mut(txn_id).expect("known").complete_retry_at = Some(now_ms + COMPLETE_RETRY_MS);
                return;
            };
            target.producer_id = pid;
            target.producer_epoch = 0;
            rotated_from = Some((meta.producer_id, meta.producer_epoch - 1));
        }
        self.txns.get_mut(txn_id).expect("known").complete_retry_at = None;
        self.begin_write(txn_id, target, Cause::Complete { rotated_from });
    }

    /// Kafka's `abortTimedOutTransactions`: every Ongoing transaction older than its timeout,
    /// with no write pending, is fenced and aborted.
    pub(super) fn abort_timed_out(&mut self, now_ms: u64) {
        let due: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.pending.is_none())
            .filter(|(_, t)| {
                t.meta.as_ref().is_some_and(|m| {
                    m.state == TxnState::Ongoing && m.start_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms as i64
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            crate::sometimes!("txn_timeout_abort");
            self.trace.emit(|| format!("txn {id} timed out: aborting"));
            self.fence(now_ms, &id, None);
        }
    }
}
