//! The produce path on the leader (KAFKA.md §1.2): min-ISR check, append, then answer by
//! `acks`: 0 never, 1 after the local append, all once the high watermark passes the records.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::ids::TopicPartition;
use crate::log::{LogError, ProducerStateError};

use super::core::{reply, BrokerCore, Handled, RequestCtx};
use super::partition::Role;
use super::purgatory::{ParkedOp, ParkedProduce};

const ACKS_ALL: i16 = -1;

impl BrokerCore {
    pub(super) fn handle_produce(&mut self, now_ms: u64, ctx: RequestCtx, req: ProduceRequest) -> Handled {
        let to_verify = self.partitions_to_verify(&req);
        if !to_verify.is_empty() && req.acks != 0 {
            return self.verify_then_produce(now_ms, ctx, req, to_verify);
        }
        let (acks, deadline) = (req.acks, now_ms + u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
        match self.produce_now(now_ms, req, &BTreeMap::new()) {
            _ if acks == 0 => Handled::NoReply,
            Err(response) => reply(ctx, kafka_protocol::messages::ResponseKind::Produce(response)),
            Ok(op) => self.park(now_ms, ctx, deadline, op),
        }
    }

    /// Appends every partition of `req` except those in `refused` (answered with their error).
    /// Err is the final answer; Ok is what waits for the high watermark (acks=all).
    pub(super) fn produce_now(&mut self, now_ms: u64, req: ProduceRequest, refused: &BTreeMap<TopicPartition, ResponseError>) -> Result<ParkedOp, ProduceResponse> {
        let mut response = ProduceResponse::default();
        let mut waiting = Vec::new();
        for (ti, topic) in req.topic_data.iter().enumerate() {
            let mut tr = TopicProduceResponse::default().with_name(topic.name.clone());
            for (pi, pd) in topic.partition_data.iter().enumerate() {
                let tp = TopicPartition::new(topic.name.as_str(), pd.index);
                let (pr, wait_for) = match refused.get(&tp) {
                    Some(e) => (partition_error(pd.index, *e), None),
                    None => self.produce_partition(now_ms, &tp, pd.records.as_ref(), req.acks, req.transactional_id.is_some()),
                };
                if let Some(required) = wait_for {
                    waiting.push((tp, required, ti, pi));
                }
                tr.partition_responses.push(pr.with_index(pd.index));
            }
            response.responses.push(tr);
        }
        if waiting.is_empty() {
            return Err(response);
        }
        Ok(ParkedOp::Produce(ParkedProduce { response, waiting }))
    }

    /// Appends to one partition. Returns the partition's answer as it stands and, for
    /// `acks=all`, the offset the high watermark must reach before the answer is final.
    fn produce_partition(&mut self, now_ms: u64, tp: &TopicPartition, records: Option<&Bytes>, acks: i16, transactional_request: bool) -> (PartitionProduceResponse, Option<i64>) {
        let message_max = self.config.message_max_bytes;
        let min_isr = self.config.min_insync_replicas;
        let Some(p) = self.partitions.get_mut(tp) else {
            return (partition_error(tp.partition, ResponseError::UnknownTopicOrPartition), None);
        };
        let Role::Leader(state) = &p.role else {
            return (partition_error(tp.partition, ResponseError::NotLeaderOrFollower), None);
        };
        let records = match records {
            Some(r) if !r.is_empty() => r,
            _ => return (partition_error(tp.partition, ResponseError::CorruptMessage), None),
        };
        if records.len() > message_max {
            return (partition_error(tp.partition, ResponseError::MessageTooLarge), None);
        }
        // A transactional batch needs the request's transactional id, and the other way round.
        let transactional_batch = crate::log::BatchHeader::parse(records).is_ok_and(|h| h.is_transactional());
        if transactional_batch != transactional_request {
            return (partition_error(tp.partition, ResponseError::InvalidRecord), None);
        }
        let effective_min_isr = min_isr.min(p.replicas.len());
        if acks == ACKS_ALL && state.isr.len() < effective_min_isr {
            return (partition_error(tp.partition, ResponseError::NotEnoughReplicas), None);
        }
        let epoch = p.leader_epoch;
        let info = match p.log.append_as_leader(records, epoch) {
            Ok(info) => info,
            Err(LogError::Batch { .. }) => return (partition_error(tp.partition, ResponseError::CorruptMessage), None),
            Err(LogError::InvalidRecord(_)) => return (partition_error(tp.partition, ResponseError::InvalidRecord), None),
            Err(LogError::Producer(e)) => {
                self.trace.emit(|| format!("produce-refused {tp} {e}"));
                return (partition_error(tp.partition, producer_error_code(e)), None);
            }
            Err(e) => {
                self.trace.emit(|| format!("append-failed {tp} {e}"));
                return (partition_error(tp.partition, ResponseError::KafkaStorageError), None);
            }
        };
        if info.duplicate {
            self.trace.emit(|| format!("duplicate {tp} {}..={} acks={acks}", info.first_offset, info.last_offset));
        } else {
            self.trace.emit(|| format!("append {tp} {}..={} acks={acks}", info.first_offset, info.last_offset));
        }
        let log_start = p.log.log_start_offset();
        self.maybe_advance_hw(now_ms, tp);
        let pr = PartitionProduceResponse::default()
            .with_base_offset(info.first_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(log_start);
        let wait_for = (acks == ACKS_ALL).then_some(info.last_offset + 1);
        (pr, wait_for)
    }

    /// Completes what it can of a parked acks=all produce; Some when every partition is final.
    pub(super) fn try_complete_produce(&mut self, pp: &mut ParkedProduce, expired: bool) -> Option<ProduceResponse> {
        let min_isr = self.config.min_insync_replicas;
        let mut still_waiting = Vec::new();
        for (tp, required, ti, pi) in pp.waiting.drain(..) {
            let outcome = match self.partitions.get(&tp).map(|p| (&p.role, p.replicas.len())) {
                Some((Role::Leader(s), rf)) if s.hw >= required => {
                    // The records are committed; an ISR below min.insync means they were
                    // acknowledged by fewer replicas than asked for, which Kafka reports.
                    if s.isr.len() >= min_isr.min(rf) { None } else { Some(ResponseError::NotEnoughReplicasAfterAppend) }
                }
                Some((Role::Leader(_), _)) if !expired => {
                    still_waiting.push((tp, required, ti, pi));
                    continue;
                }
                Some((Role::Leader(_), _)) => Some(ResponseError::RequestTimedOut),
                _ => Some(ResponseError::NotLeaderOrFollower),
            };
            if let Some(err) = outcome {
                let pr = &mut pp.response.responses[ti].partition_responses[pi];
                pr.error_code = err.code();
                pr.base_offset = -1;
            }
        }
        pp.waiting = still_waiting;
        pp.waiting.is_empty().then(|| std::mem::take(&mut pp.response))
    }
}

/// Kafka's error for a batch or marker the producer state refuses.
pub(super) fn producer_error_code(e: ProducerStateError) -> ResponseError {
    match e {
        ProducerStateError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerStateError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        ProducerStateError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        ProducerStateError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
    }
}

fn partition_error(index: i32, err: ResponseError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}
