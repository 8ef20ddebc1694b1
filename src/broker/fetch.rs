//! The fetch path on the leader: followers (replica id >= 0) read up to the log end and report
//! their progress; consumers read up to the high watermark. An empty fetch waits for data up
//! to its `max_wait_ms`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, ResponseKind};

use crate::ids::{BrokerId, TopicPartition};
use crate::log::split_batches;
use crate::replication::diverging_epoch;

use super::core::{reply, BrokerCore, Handled, RequestCtx};
use super::purgatory::{ParkedFetch, ParkedOp};

impl BrokerCore {
    pub(super) fn handle_fetch(&mut self, now_ms: u64, ctx: RequestCtx, req: FetchRequest) -> Handled {
        let replica = replica_id(&req, ctx.version);
        if let Some(follower) = replica {
            self.record_follower_fetch(now_ms, follower, &req);
        }
        let (resp, bytes, errors) = self.build_fetch_response(&req, replica.is_some());
        let min_bytes = usize::try_from(req.min_bytes.max(1)).unwrap_or(1);
        if bytes >= min_bytes || errors || req.max_wait_ms <= 0 {
            return reply(ctx, ResponseKind::Fetch(resp));
        }
        let deadline = now_ms + u64::try_from(req.max_wait_ms).unwrap_or(0);
        self.park(now_ms, ctx, deadline, ParkedOp::Fetch(ParkedFetch { request: req }))
    }

    pub(super) fn try_complete_fetch(&mut self, pf: &mut ParkedFetch, expired: bool) -> Option<FetchResponse> {
        let from_replica = pf.request.replica_id.0 >= 0 || pf.request.replica_state.replica_id.0 >= 0;
        let (resp, bytes, errors) = self.build_fetch_response(&pf.request, from_replica);
        (expired || errors || bytes > 0).then_some(resp)
    }

    /// A follower's fetch offset is its log end: record it, then let the ISR and HW follow.
    fn record_follower_fetch(&mut self, now_ms: u64, follower: BrokerId, req: &FetchRequest) {
        for t in &req.topics {
            for fp in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), fp.partition);
                let Some(p) = self.partitions.get_mut(&tp) else { continue };
                let leo = p.leo();
                // Kafka rejects an out-of-range, fenced or diverging fetch before it updates
                // follower state: such a follower holds data the leader does not.
                if fp.fetch_offset > leo || fp.fetch_offset < p.log.log_start_offset() || epoch_error(p.leader_epoch, fp.current_leader_epoch).is_some() {
                    continue;
                }
                if fp.last_fetched_epoch >= 0 && diverging_epoch(p.epochs.entries(), leo, fp.last_fetched_epoch, fp.fetch_offset).is_some() {
                    continue;
                }
                if let Some(state) = p.leader_state() {
                    state.on_follower_fetch(now_ms, follower, fp.fetch_offset, leo);
                }
                self.maybe_expand_isr(&tp, follower);
                self.maybe_advance_hw(now_ms, &tp);
            }
        }
    }

    /// The response for `req` as the log stands now, its record bytes, and whether any
    /// partition carries an error.
    fn build_fetch_response(&self, req: &FetchRequest, from_replica: bool) -> (FetchResponse, usize, bool) {
        let mut total = 0usize;
        let mut errors = false;
        let max_total = usize::try_from(req.max_bytes.max(1)).unwrap_or(usize::MAX);
        let mut responses = Vec::new();
        for t in &req.topics {
            let mut parts = Vec::new();
            for fp in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), fp.partition);
                let budget = usize::try_from(fp.partition_max_bytes.max(1)).unwrap_or(1).min(max_total.saturating_sub(total).max(1));
                let pd = self.fetch_partition(&tp, fp, budget, from_replica, req.isolation_level);
                errors |= pd.error_code != 0;
                total += pd.records.as_ref().map_or(0, Bytes::len);
                parts.push(pd);
            }
            responses.push(FetchableTopicResponse::default().with_topic(t.topic.clone()).with_partitions(parts));
        }
        (FetchResponse::default().with_responses(responses), total, errors)
    }

    /// `isolation` 1 is read_committed: up to the last stable offset, with the aborted
    /// transactions in range (KAFKA.md §1.11).
    fn fetch_partition(&self, tp: &TopicPartition, fp: &FetchPartition, max_bytes: usize, from_replica: bool, isolation: i8) -> PartitionData {
        let offset = fp.fetch_offset;
        let pd = PartitionData::default().with_partition_index(tp.partition).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
        let Some(p) = self.partitions.get(tp) else {
            return pd.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        if let Some(err) = epoch_error(p.leader_epoch, fp.current_leader_epoch) {
            return pd.with_error_code(err.code());
        }
        if !p.is_leader() {
            return pd.with_error_code(ResponseError::NotLeaderOrFollower.code());
        }
        let (start, leo, hw) = (p.log.log_start_offset(), p.leo(), p.hw());
        let lso = p.log.last_stable_offset(hw);
        let pd = pd.with_high_watermark(hw).with_last_stable_offset(lso).with_log_start_offset(start).with_aborted_transactions(Some(Vec::new()));
        if from_replica && fp.last_fetched_epoch >= 0 {
            if let Some((epoch, end)) = diverging_epoch(p.epochs.entries(), leo, fp.last_fetched_epoch, offset) {
                return pd.with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end)).with_records(Some(Bytes::new()));
            }
        }
        if offset < start || offset > leo {
            return pd.with_error_code(ResponseError::OffsetOutOfRange.code());
        }
        let upper = match (from_replica, isolation) {
            (true, _) => leo,
            (false, 1) => lso,
            (false, _) => hw,
        };
        if offset >= upper {
            return pd.with_records(Some(Bytes::new()));
        }
        let aborted: Vec<AbortedTransaction> = match (from_replica, isolation) {
            (false, 1) => p
                .log
                .aborted_txns(offset, upper)
                .iter()
                .map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset))
                .collect(),
            _ => Vec::new(),
        };
        let pd = pd.with_aborted_transactions(Some(aborted));
        match p.log.read(offset, max_bytes) {
            Ok(read) => pd.with_records(Some(below(&read.bytes, upper))),
            Err(e) => {
                self.trace.emit(|| format!("read-failed {tp} {e}"));
                pd.with_error_code(ResponseError::KafkaStorageError.code())
            }
        }
    }
}

/// KIP-320: a request from an older leader epoch is fenced; one from a newer epoch than ours
/// means we have not heard of it yet. -1 means the client does not say.
pub(super) fn epoch_error(ours: i32, theirs: i32) -> Option<ResponseError> {
    match theirs {
        t if t < 0 => None,
        t if t < ours => Some(ResponseError::FencedLeaderEpoch),
        t if t > ours => Some(ResponseError::UnknownLeaderEpoch),
        _ => None,
    }
}

/// The leading whole batches of `bytes` that end below `upper`: consumers never see a batch
/// the high watermark has not passed.
fn below(bytes: &[u8], upper: i64) -> Bytes {
    let batches = split_batches(bytes).unwrap_or_default();
    let end = batches.iter().take_while(|(h, _)| h.last_offset() < upper).last().map_or(0, |(_, r)| r.end);
    Bytes::copy_from_slice(&bytes[..end])
}

/// The fetching replica, if a follower sent this (the id moved into `replica_state` in v15).
fn replica_id(req: &FetchRequest, version: i16) -> Option<BrokerId> {
    let id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    (id >= 0).then_some(BrokerId(id))
}
