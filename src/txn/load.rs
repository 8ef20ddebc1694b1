//! Taking over and giving up a `__transaction_state` partition. Loading replays the partition's
//! log the way compaction would leave it (last record per key wins, tombstones delete), so a
//! new coordinator serves the transactional ids its predecessor wrote and finishes the
//! transactions it had decided.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::group::partition_for;

use super::coordinator::{Cause, Meta, Txn, TxnCoordinator, TxnReady};
use super::records::{TxnLogValue, TxnRecord};
use super::state::TxnState;

impl TxnCoordinator {
    /// This broker became leader of transaction-state partition `partition` at leader epoch
    /// `coordinator_epoch`: rebuild its transactional ids from every (key, value) of its log, in
    /// log order. Transactions found in PrepareCommit/PrepareAbort resume their markers
    /// (`take_markers`). Undecodable records, records of another partition's ids and records
    /// in a state that is never logged (PrepareEpochFence) are skipped with a trace line; a Dead
    /// record deletes its id like a tombstone. Loading a partition already loaded first unloads
    /// it.
    pub fn load(&mut self, now_ms: u64, partition: i32, coordinator_epoch: i32, records: Vec<(Bytes, Option<Bytes>)>) {
        if self.is_loaded(partition) {
            self.unload(partition);
        }
        let mut latest: BTreeMap<String, Option<TxnLogValue>> = BTreeMap::new();
        let mut skipped = 0usize;
        for (index, (key, value)) in records.iter().enumerate() {
            let record = match TxnRecord::decode(key, value.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    skipped += 1;
                    self.trace.emit(|| format!("txn partition {partition} record {index} skipped: {e}"));
                    continue;
                }
            };
            let id = record.transactional_id;
            let home = partition_for(&id, self.config.partitions as u32);
            if home != partition {
                skipped += 1;
                self.trace.emit(|| format!("txn partition {partition} record {index} skipped: {id} belongs to partition {home}"));
                continue;
            }
            match record.value {
                Some(v) if v.state == TxnState::PrepareEpochFence => {
                    skipped += 1;
                    self.trace.emit(|| format!("txn partition {partition} record {index} skipped: {id} logged in PrepareEpochFence"));
                }
                Some(v) if v.state == TxnState::Dead => {
                    latest.insert(id, None);
                }
                value => {
                    latest.insert(id, value);
                }
            }
        }
        self.loaded.insert(partition, coordinator_epoch);
        let mut summary = Vec::new();
        let mut resume = Vec::new();
        for (id, value) in latest {
            let Some(value) = value else { continue };
            let meta = Meta::from_value(value);
            summary.push(format!("{id} {} pid={} epoch={}", meta.state, meta.producer_id, meta.producer_epoch));
            if meta.state.is_prepare() {
                resume.push(id.clone());
            }
            let mut txn = Txn::new(partition);
            // Loading creates the id in its logged state; it is not a transition.
            txn.meta = Some(meta);
            self.txns.insert(id, txn);
        }
        let (count, summary) = (records.len(), summary.join(", "));
        self.trace.emit(|| {
            format!("txn partition {partition} loaded at coordinator epoch {coordinator_epoch}: {count} records, {skipped} skipped, [{summary}]")
        });
        for id in resume {
            self.send_markers(now_ms, &id);
        }
        self.assert_invariants();
    }

    /// Leadership of `partition` moved away: its transactional ids are forgotten, every request
    /// waiting on one of their writes is answered NOT_COORDINATOR, and the writes and marker jobs
    /// not yet taken for that partition are dropped (their successor re-derives them from the
    /// log).
    pub fn unload(&mut self, partition: i32) {
        if self.loaded.remove(&partition).is_none() {
            return;
        }
        let ids: Vec<String> = self.txns.iter().filter(|(_, t)| t.partition == partition).map(|(id, _)| id.clone()).collect();
        let nc = ResponseError::NotCoordinator;
        for id in &ids {
            let txn = self.txns.remove(id).expect("listed above");
            if let Some(p) = txn.pending {
                self.pending_ids.remove(&p.write_id);
                match p.cause {
                    Cause::Init { token, .. } | Cause::Fence { token: Some(token), .. } => {
                        self.ready.push(TxnReady::InitProducerId { token, result: Err(nc) });
                    }
                    Cause::AddPartitions { token, partitions } => {
                        let result = partitions.into_iter().map(|tp| (tp, Some(nc))).collect();
                        self.ready.push(TxnReady::AddPartitions { token, result });
                    }
                    Cause::AddOffsets { token } => self.ready.push(TxnReady::AddOffsets { token, result: Err(nc) }),
                    Cause::End { token, .. } => self.ready.push(TxnReady::EndTxn { token, result: Err(nc) }),
                    Cause::Fence { token: None, .. } | Cause::Complete { .. } => {}
                }
            }
            if let Some(token) = txn.deferred_end {
                self.ready.push(TxnReady::EndTxn { token, result: Err(nc) });
            }
        }
        self.writes.retain(|w| w.partition != partition);
        let config_partitions = self.config.partitions as u32;
        self.markers.retain(|m| partition_for(&m.txn_id, config_partitions) != partition);
        self.trace.emit(|| format!("txn partition {partition} unloaded: {} transactional ids", ids.len()));
    }
}
