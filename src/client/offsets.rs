//! ListOffsets: where a partition starts or ends, asked of its leader. Used by consumers to
//! reset a position and by followers to find the leader's end after OFFSET_OUT_OF_RANGE.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, ListOffsetsRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::ids::TopicPartition;

use super::connection::Connection;
use super::error::ClientError;

const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets timestamps with a special meaning.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// The offset `tp`'s leader gives for `timestamp`; `replica_id` is -1 for consumers.
pub async fn list_offset(
    conn: &mut Connection,
    tp: &TopicPartition,
    timestamp: i64,
    replica_id: i32,
    isolation_level: i8,
    timeout_ms: u64,
) -> Result<i64, ClientError> {
    let partition = ListOffsetsPartition::default().with_partition_index(tp.partition).with_timestamp(timestamp).with_current_leader_epoch(-1);
    let topic = ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![partition]);
    let req = ListOffsetsRequest::default().with_replica_id(WireBrokerId(replica_id)).with_isolation_level(isolation_level).with_topics(vec![topic]);
    let ResponseKind::ListOffsets(resp) = conn.request(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, RequestKind::ListOffsets(req), timeout_ms).await? else {
        return Err(ClientError::Protocol("expected a ListOffsets response".into()));
    };
    let p = resp.topics.iter().flat_map(|t| t.partitions.iter()).find(|p| p.partition_index == tp.partition);
    match p {
        Some(p) if p.error_code == 0 => Ok(p.offset),
        Some(p) => Err(ClientError::Protocol(format!("ListOffsets for {tp}: error {}", p.error_code))),
        None => Err(ClientError::Protocol(format!("ListOffsets for {tp}: no answer"))),
    }
}
