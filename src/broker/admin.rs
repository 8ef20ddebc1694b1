//! Metadata and ListOffsets: what clients ask before they produce or fetch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::ids::TopicPartition;

use super::core::BrokerCore;

/// ListOffsets timestamps with a special meaning.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

impl BrokerCore {
    pub(super) fn handle_metadata(&self, req: &MetadataRequest) -> MetadataResponse {
        let brokers = self
            .metadata
            .brokers
            .iter()
            .map(|(id, a)| {
                MetadataResponseBroker::default()
                    .with_node_id(WireBrokerId(id.0))
                    .with_host(StrBytes::from_string(a.host.clone()))
                    .with_port(i32::from(a.port))
            })
            .collect();
        let names: Vec<String> = match &req.topics {
            None => self.metadata.topics.keys().cloned().collect(),
            Some(ts) => ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect(),
        };
        let topics = names.iter().map(|n| self.topic_metadata(n)).collect();
        let controller = self.metadata.brokers.keys().next().map_or(-1, |b| b.0);
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(StrBytes::from_string(self.metadata.cluster_id.clone())))
            .with_controller_id(WireBrokerId(controller))
            .with_topics(topics)
    }

    fn topic_metadata(&self, name: &str) -> MetadataResponseTopic {
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_is_internal(name == super::groups::OFFSETS_TOPIC);
        let Some(parts) = self.metadata.topics.get(name) else {
            return topic.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        let partitions = parts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let wire = |v: &[crate::ids::BrokerId]| v.iter().map(|b| WireBrokerId(b.0)).collect::<Vec<_>>();
                let partition = MetadataResponsePartition::default()
                    .with_partition_index(i as i32)
                    .with_leader_id(WireBrokerId(a.leader.map_or(-1, |b| b.0)))
                    .with_leader_epoch(a.leader_epoch)
                    .with_replica_nodes(wire(&a.replicas))
                    .with_isr_nodes(wire(&a.isr));
                match a.leader {
                    Some(_) => partition,
                    None => partition.with_error_code(ResponseError::LeaderNotAvailable.code()),
                }
            })
            .collect();
        topic.with_partitions(partitions)
    }

    pub(super) fn handle_list_offsets(&self, req: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        let from_replica = req.replica_id.0 >= 0;
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                        self.list_offset(&tp, p.timestamp, from_replica, version, req.isolation_level).with_partition_index(p.partition_index)
                    })
                    .collect();
                ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// `isolation` 1 (read_committed) answers the last stable offset for "latest".
    fn list_offset(&self, tp: &TopicPartition, timestamp: i64, from_replica: bool, version: i16, isolation: i8) -> ListOffsetsPartitionResponse {
        let resp = ListOffsetsPartitionResponse::default().with_timestamp(-1).with_offset(-1);
        let Some(p) = self.partitions.get(tp) else {
            return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        if !p.is_leader() {
            return resp.with_error_code(ResponseError::NotLeaderOrFollower.code());
        }
        let offset = match timestamp {
            EARLIEST => p.log.log_start_offset(),
            // A follower truncating after OFFSET_OUT_OF_RANGE needs our log end; consumers
            // only ever see up to the high watermark.
            LATEST if from_replica => p.leo(),
            LATEST if isolation == 1 => p.log.last_stable_offset(p.hw()),
            LATEST => p.hw(),
            // No time index yet: say so rather than answer a wrong offset.
            _ => return resp.with_error_code(ResponseError::InvalidRequest.code()),
        };
        // The leader epoch field exists from v4; older versions must leave it at its default.
        let epoch = if version >= 4 { p.leader_epoch } else { -1 };
        resp.with_offset(offset).with_leader_epoch(epoch)
    }
}

impl BrokerCore {
    /// OffsetForLeaderEpoch: where `leader_epoch` ends in the leader's log (KIP-101/279), for a
    /// follower walking back to the point where their logs agree.
    pub(super) fn handle_offset_for_leader_epoch(&self, req: &OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let tp = TopicPartition::new(t.topic.as_str(), p.partition);
                        self.epoch_end_offset(&tp, p.current_leader_epoch, p.leader_epoch).with_partition(p.partition)
                    })
                    .collect();
                OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(partitions)
            })
            .collect();
        OffsetForLeaderEpochResponse::default().with_topics(topics)
    }

    fn epoch_end_offset(&self, tp: &TopicPartition, current_leader_epoch: i32, epoch: i32) -> EpochEndOffset {
        let answer = EpochEndOffset::default().with_leader_epoch(-1).with_end_offset(-1);
        let Some(p) = self.partitions.get(tp) else {
            return answer.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        if let Some(err) = super::fetch::epoch_error(p.leader_epoch, current_leader_epoch) {
            return answer.with_error_code(err.code());
        }
        if !p.is_leader() {
            return answer.with_error_code(ResponseError::NotLeaderOrFollower.code());
        }
        let (e, end) = p.epochs.end_offset_for(epoch, p.leo());
        answer.with_leader_epoch(e).with_end_offset(end)
    }
}
