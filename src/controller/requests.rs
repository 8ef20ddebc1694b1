//! The controller's request handlers: Kafka messages in, core calls, Kafka messages out.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_response::{PartitionData as AlterPartitionData, TopicData as AlterTopicData};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData as FetchPartitionData};
use kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId as WireBrokerId,
    BrokerRegistrationRequest, BrokerRegistrationResponse, FetchRequest, FetchResponse,
};

use super::core::{ControllerError, HeartbeatReply};
use super::node::Shared;
use super::wire::{encode_entries, topic_id, METADATA_TOPIC};

/// Committed entries sent per metadata fetch.
const METADATA_FETCH_ENTRIES_MAX: i64 = 500;

fn code(r: &Result<impl Sized, ControllerError>) -> i16 {
    r.as_ref().err().map_or(0, |e| e.code())
}

pub(super) async fn broker_registration(sh: &Shared, r: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
    let id = r.broker_id.0;
    let incarnation = r.incarnation_id.as_u64_pair().1;
    let (host, port) = r.listeners.first().map_or((String::new(), 0), |l| (l.host.to_string(), l.port));
    let result = sh
        .with_core(|core, next, now| {
            let (records, epoch) = core.handle_broker_registration(now, id, incarnation, &host, port, next)?;
            Ok((records, epoch))
        })
        .await;
    let epoch = *result.as_ref().unwrap_or(&-1);
    BrokerRegistrationResponse::default().with_error_code(code(&result)).with_broker_epoch(epoch)
}

pub(super) async fn broker_heartbeat(sh: &Shared, r: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
    let (id, epoch) = (r.broker_id.0, r.broker_epoch);
    // Kafka's rule: a broker is caught up once it has replayed its own registration record,
    // whose offset is its broker epoch.
    let caught_up = r.current_metadata_offset >= epoch;
    let result = sh.with_core(|core, _, now| core.handle_broker_heartbeat(now, id, epoch, caught_up, r.want_fence)).await;
    let reply = *result.as_ref().unwrap_or(&HeartbeatReply { is_fenced: true, should_shut_down: false });
    BrokerHeartbeatResponse::default()
        .with_error_code(code(&result))
        .with_is_caught_up(caught_up)
        .with_is_fenced(reply.is_fenced)
        .with_should_shut_down(reply.should_shut_down)
}

pub(super) async fn alter_partition(sh: &Shared, r: AlterPartitionRequest) -> AlterPartitionResponse {
    let mut topics = Vec::new();
    for t in &r.topics {
        let name = sh.core.borrow().image().topics().keys().find(|n| topic_id(n) == t.topic_id).cloned();
        let mut parts = Vec::new();
        for p in &t.partitions {
            let out = AlterPartitionData::default().with_partition_index(p.partition_index);
            let Some(name) = &name else {
                parts.push(out.with_error_code(ResponseError::UnknownTopicId.code()));
                continue;
            };
            let isr: Vec<i32> = p.new_isr.iter().map(|b| b.0).chain(p.new_isr_with_epochs.iter().map(|s| s.broker_id.0)).collect();
            let partition = u32::try_from(p.partition_index).unwrap_or(u32::MAX);
            let result = sh
                .with_core(|core, _, _| {
                    core.handle_alter_partition(r.broker_id.0, r.broker_epoch, name, partition, p.leader_epoch, p.partition_epoch, isr.clone()).map(|recs| (recs, ()))
                })
                .await;
            let out = out.with_error_code(code(&result));
            let state = sh.core.borrow().image().partition(name, partition).cloned();
            parts.push(match (result, state) {
                (Ok(()), Some(s)) => out
                    .with_leader_id(WireBrokerId(s.leader))
                    .with_leader_epoch(s.leader_epoch)
                    .with_isr(s.isr.iter().map(|b| WireBrokerId(*b)).collect())
                    .with_partition_epoch(s.partition_epoch),
                _ => out,
            });
        }
        topics.push(AlterTopicData::default().with_topic_id(t.topic_id).with_partitions(parts));
    }
    AlterPartitionResponse::default().with_topics(topics)
}

/// A broker reading the metadata log (a KRaft observer): committed entries from its offset,
/// waiting up to `max_wait_ms` for new ones.
pub(super) async fn metadata_fetch(sh: &Shared, r: FetchRequest) -> FetchResponse {
    let offset = r.topics.first().and_then(|t| t.partitions.first()).map_or(0, |p| p.fetch_offset);
    let deadline = sh.started + Duration::from_millis(sh.now_ms() + u64::try_from(r.max_wait_ms.max(0)).unwrap_or(0));
    loop {
        let changed = sh.changed.notified();
        if !sh.is_leader() {
            return metadata_answer(ResponseError::NotLeaderOrFollower.code(), -1, Bytes::new());
        }
        let (hw, leo) = {
            let raft = sh.raft.borrow();
            (raft.high_watermark(), raft.log_end_offset())
        };
        if offset > leo || offset < 0 {
            return metadata_answer(ResponseError::OffsetOutOfRange.code(), hw, Bytes::new());
        }
        if offset < hw {
            let raft = sh.raft.borrow();
            let entries: Vec<_> = (offset..hw.min(offset + METADATA_FETCH_ENTRIES_MAX)).filter_map(|o| raft.entry(o).cloned()).collect();
            return metadata_answer(0, hw, encode_entries(&entries));
        }
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => return metadata_answer(0, hw, Bytes::new()),
        }
    }
}

fn metadata_answer(error_code: i16, hw: i64, records: Bytes) -> FetchResponse {
    let pd = FetchPartitionData::default()
        .with_partition_index(0)
        .with_error_code(error_code)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(0)
        .with_records(Some(records));
    let topic = FetchableTopicResponse::default()
        .with_topic(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![pd]);
    FetchResponse::default().with_responses(vec![topic])
}
