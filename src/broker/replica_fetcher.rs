//! The follower side of replication, sans-IO: which leaders to fetch from, the Fetch request
//! to send (with our replica id and log end offsets), and what to do with the answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId as WireBrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::ids::{BrokerId, TopicPartition};
use crate::replication::{follower_truncation, TruncationRules, TruncationStep};

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
                Role::Follower { leader, .. } => leader,
                Role::Leader(_) => None,
            })
            .collect();
        leaders.sort();
        leaders.dedup();
        leaders
    }

    /// The follower Fetch for every partition we follow on `leader`, at our log end offsets.
    /// Partitions in backoff after an error are left out; the request may then be empty.
    pub fn replica_fetch_request(&self, leader: BrokerId, now_ms: u64) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for p in self.partitions.values() {
            if !matches!(p.role, Role::Follower { leader: Some(l), .. } if l == leader) || p.fetch_delayed_until_ms > now_ms {
                continue;
            }
            // Before KIP-101 followers sent no epoch, so leaders could not detect divergence;
            // before KIP-279 they checked once on becoming a follower, then fetched on.
            let no_epoch = self.config.truncate_to_hw_on_become_follower || (self.config.single_step_epoch_truncation && p.divergence_checked);
            let last_fetched_epoch = if no_epoch { -1 } else { p.epochs.latest_epoch().unwrap_or(-1) };
            let fp = FetchPartition::default()
                .with_partition(p.tp.partition)
                .with_current_leader_epoch(p.leader_epoch)
                .with_fetch_offset(p.leo())
                .with_last_fetched_epoch(last_fetched_epoch)
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
    ///
    /// A partition's answer is used only if the partition is still where the request left it:
    /// a follower of `leader` in the same leader epoch at the same fetch offset (Kafka's
    /// `AbstractFetcherThread` checks the same). A response that arrives after this broker
    /// became leader, or after a truncation, is stale and dropped; appending it would put the
    /// old leader's records into the new epoch.
    pub fn handle_replica_fetch_response(&mut self, leader: BrokerId, req: &FetchRequest, resp: &FetchResponse, now_ms: u64) -> Vec<TopicPartition> {
        let backoff = self.config.replica_fetch_backoff_ms;
        let mut sent = std::collections::BTreeMap::new();
        for t in &req.topics {
            for fp in &t.partitions {
                sent.insert(TopicPartition::new(t.topic.as_str(), fp.partition), (fp.current_leader_epoch, fp.fetch_offset));
            }
        }
        let mut out_of_range = Vec::new();
        for t in &resp.responses {
            for pd in &t.partitions {
                let tp = TopicPartition::new(t.topic.as_str(), pd.partition_index);
                let current = self.partitions.get(&tp).and_then(|p| match p.role {
                    Role::Follower { leader: Some(l), .. } if l == leader => Some((p.leader_epoch, p.leo())),
                    _ => None,
                });
                if current.is_none() || current != sent.get(&tp).copied() {
                    self.trace.emit(|| format!("replica-fetch-stale {tp}"));
                    continue;
                }
                match ResponseError::try_from_code(pd.error_code) {
                    None if pd.diverging_epoch.epoch >= 0 => self.on_diverging_epoch(&tp, (pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset)),
                    None => self.append_from_leader(&tp, pd.records.as_deref().unwrap_or(&[]), pd.high_watermark),
                    Some(ResponseError::OffsetOutOfRange) => out_of_range.push(tp),
                    Some(e) => {
                        self.trace.emit(|| format!("replica-fetch-error {tp} {e:?}"));
                        if let Some(p) = self.partitions.get_mut(&tp) {
                            p.fetch_delayed_until_ms = now_ms + backoff;
                        }
                    }
                }
            }
        }
        out_of_range
    }

    fn append_from_leader(&mut self, tp: &TopicPartition, records: &[u8], leader_hw: i64) {
        let Some(p) = self.partitions.get_mut(tp) else { return };
        if !records.is_empty() {
            match p.append_as_follower(records) {
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

    /// The leader says our log diverges from its own at `answer` = (epoch, end offset): take
    /// one truncation step (KAFKA.md §1.6); an iterative step asks the leader again.
    pub fn on_diverging_epoch(&mut self, tp: &TopicPartition, answer: (i32, i64)) {
        let rules = TruncationRules { single_step: self.config.single_step_epoch_truncation };
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let (to, ask) = match follower_truncation(p.epochs.entries(), p.leo(), answer, rules) {
            TruncationStep::TruncateTo(o) => (o, None),
            TruncationStep::TruncateAndAskAgain { truncate_to, epoch } => (truncate_to, Some(epoch)),
            TruncationStep::FallBackToHighWatermark => (p.hw(), None),
        };
        let leo = p.leo();
        p.divergence_checked = true;
        match p.truncate_to(to) {
            Ok(()) => {
                crate::sometimes!("epoch_truncation");
                self.trace.emit(|| format!("truncate {tp} {leo} -> {} (diverging epoch {} end {})", p.leo(), answer.0, answer.1))
            }
            Err(e) => self.trace.emit(|| format!("truncate-failed {tp} {e}")),
        }
        if let Some(epoch) = ask {
            self.epoch_queries.push((tp.clone(), epoch));
        }
    }

    /// OffsetForLeaderEpoch questions the fetcher should ask `leader` before fetching again.
    pub fn poll_epoch_queries(&mut self) -> Vec<(TopicPartition, i32)> {
        std::mem::take(&mut self.epoch_queries)
    }

    /// Cuts a follower's log to the leader's end after OFFSET_OUT_OF_RANGE (a follower ahead of
    /// its leader, after an unclean election or with epochs off): Kafka's rule, which keeps
    /// the logs apart when the offsets below were also rewritten.
    pub fn truncate_follower(&mut self, tp: &TopicPartition, leader_end: i64) {
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        if leader_end >= leo {
            return;
        }
        match p.truncate_to(leader_end) {
            Ok(()) => self.trace.emit(|| format!("truncate {tp} {leo} -> {} (out of range)", p.leo())),
            Err(e) => self.trace.emit(|| format!("truncate-failed {tp} {e}")),
        }
    }
}

/// The OffsetForLeaderEpoch question a follower asks its leader for one partition.
pub(super) fn offset_for_leader_epoch_request(me: BrokerId, tp: &TopicPartition, current_leader_epoch: i32, epoch: i32) -> kafka_protocol::messages::RequestKind {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    use kafka_protocol::messages::OffsetForLeaderEpochRequest;
    let partition = OffsetForLeaderPartition::default().with_partition(tp.partition).with_current_leader_epoch(current_leader_epoch).with_leader_epoch(epoch);
    let topic = OffsetForLeaderTopic::default().with_topic(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![partition]);
    kafka_protocol::messages::RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_replica_id(WireBrokerId(me.0)).with_topics(vec![topic]))
}
