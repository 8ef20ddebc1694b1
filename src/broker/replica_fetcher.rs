//! The follower side of replication, sans-IO: which leaders to fetch from, the Fetch request
//! to send (with our replica id and log end offsets), and what to do with the answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId as WireBrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::ids::{BrokerId, TopicPartition};

use super::core::BrokerCore;
use super::partition::Role;

/// Fetch version followers use: the newest that still names topics.
pub const REPLICA_FETCH_VERSION: i16 = 12;

impl BrokerCore {
    /// The leaders this broker follows, each fetched by its own fetcher.
    pub fn fetch_leaders(&self) -> Vec<BrokerId> {
        let mut leaders: Vec<BrokerId> = self
            .partitions
            .values()
            .filter_map(|p| match p.role {
                Role::Follower { leader, .. } => Some(leader),
                Role::Leader(_) => None,
            })
            .collect();
        leaders.sort();
        leaders.dedup();
        leaders
    }

    /// The follower Fetch for every partition we follow on `leader`, at our log end offsets.
    pub fn replica_fetch_request(&self, leader: BrokerId) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for p in self.partitions.values() {
            if !matches!(p.role, Role::Follower { leader: l, .. } if l == leader) {
                continue;
            }
            let fp = FetchPartition::default()
                .with_partition(p.tp.partition)
                .with_current_leader_epoch(p.leader_epoch)
                .with_fetch_offset(p.leo())
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(p.log.log_start_offset())
                .with_partition_max_bytes(i32::try_from(self.config.replica_fetch_max_bytes).unwrap_or(i32::MAX));
            match topics.last_mut() {
                Some(t) if t.topic.as_str() == p.tp.topic => t.partitions.push(fp),
                _ => topics.push(FetchTopic::default().with_topic(TopicName(StrBytes::from_string(p.tp.topic.clone()))).with_partitions(vec![fp])),
            }
        }
        FetchRequest::default()
            .with_replica_id(WireBrokerId(self.me.0))
            .with_max_wait_ms(i32::try_from(self.config.replica_fetch_wait_max_ms).unwrap_or(500))
            .with_min_bytes(1)
            .with_max_bytes(i32::try_from(self.config.replica_fetch_max_bytes).unwrap_or(i32::MAX))
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    /// Appends what the leader sent and follows its HW. Returns the partitions whose fetch
    /// offset the leader rejected as out of range: they need truncating to the leader's end.
    pub fn handle_replica_fetch_response(&mut self, resp: &FetchResponse) -> Vec<TopicPartition> {
        let mut out_of_range = Vec::new();
        for t in &resp.responses {
            for pd in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), pd.partition_index);
                match ResponseError::try_from_code(pd.error_code) {
                    None => self.append_from_leader(&tp, pd.records.as_deref().unwrap_or(&[]), pd.high_watermark),
                    Some(ResponseError::OffsetOutOfRange) => out_of_range.push(tp),
                    Some(e) => self.trace.emit(|| format!("replica-fetch-error {tp} {e:?}")),
                }
            }
        }
        out_of_range
    }

    fn append_from_leader(&mut self, tp: &TopicPartition, records: &[u8], leader_hw: i64) {
        let Some(p) = self.partitions.get_mut(tp) else { return };
        if !records.is_empty() {
            match p.log.append_as_follower(records) {
                Ok(info) => self.trace.emit(|| format!("replicate {tp} {}..={}", info.first_offset, info.last_offset)),
                Err(e) => {
                    self.trace.emit(|| format!("replicate-failed {tp} {e}"));
                    return;
                }
            }
        }
        let leo = p.leo();
        if let Role::Follower { hw, .. } = &mut p.role {
            // A follower's HW is the leader's, bounded by what it holds itself.
            let new_hw = leader_hw.min(leo);
            if new_hw != *hw {
                *hw = new_hw;
                self.trace.emit(|| format!("follower-hw {tp} {new_hw}"));
            }
        }
    }

    /// Cuts a follower's log to the leader's end after OFFSET_OUT_OF_RANGE: the legacy rule,
    /// which can silently lose or diverge data (it is what leader epochs replaced).
    pub fn truncate_follower(&mut self, tp: &TopicPartition, leader_end: i64) {
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        if leader_end >= leo {
            return;
        }
        match p.log.truncate_to(leader_end) {
            Ok(()) => self.trace.emit(|| format!("truncate {tp} {leo} -> {}", leader_end)),
            Err(e) => self.trace.emit(|| format!("truncate-failed {tp} {e}")),
        }
        if let Role::Follower { hw, .. } = &mut p.role {
            *hw = (*hw).min(leader_end);
        }
    }
}
