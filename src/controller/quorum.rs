//! The controller quorum on Kafka's wire: the Raft core's messages as Vote, BeginQuorumEpoch,
//! EndQuorumEpoch and Fetch (of `__cluster_metadata`), requests sent by one task per peer
//! voter, responses fed back to the core as coming from that peer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData as FetchPartitionData};
use kafka_protocol::messages::{
    begin_quorum_epoch_request as bqe_req, begin_quorum_epoch_response as bqe_resp, end_quorum_epoch_request as eqe_req,
    end_quorum_epoch_response as eqe_resp, vote_request as vote_req, vote_response as vote_resp, ApiKey, BeginQuorumEpochRequest,
    BeginQuorumEpochResponse, BrokerId as WireBrokerId, EndQuorumEpochRequest, EndQuorumEpochResponse, FetchRequest, FetchResponse, RequestKind,
    ResponseKind, TopicName, VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;

use crate::client::Connection;
use crate::raft::{Message, NodeId, RaftError};
use crate::seam::Network;

use super::node::Shared;
use super::wire::{decode_entries, encode_entries, METADATA_TOPIC};

const QUORUM_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Messages queued per peer before the oldest are dropped (Raft re-sends what matters).
const PEER_QUEUE_MAX: usize = 256;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn error_code(e: Option<RaftError>) -> i16 {
    match e {
        None => 0,
        Some(RaftError::FencedLeaderEpoch) => ResponseError::FencedLeaderEpoch.code(),
        Some(RaftError::NotLeader) => ResponseError::NotLeaderOrFollower.code(),
        Some(RaftError::UnknownLeaderEpoch) => ResponseError::UnknownLeaderEpoch.code(),
        Some(RaftError::InconsistentVoterSet) => ResponseError::InconsistentVoterSet.code(),
    }
}

fn raft_error(code: i16) -> Option<RaftError> {
    match ResponseError::try_from_code(code)? {
        ResponseError::FencedLeaderEpoch => Some(RaftError::FencedLeaderEpoch),
        ResponseError::UnknownLeaderEpoch => Some(RaftError::UnknownLeaderEpoch),
        ResponseError::InconsistentVoterSet => Some(RaftError::InconsistentVoterSet),
        _ => Some(RaftError::NotLeader),
    }
}

fn leader(id: i32) -> Option<NodeId> {
    (id >= 0).then_some(id)
}

/// A Raft request as the Kafka request that carries it.
pub(super) fn to_request(msg: &Message) -> Option<(ApiKey, i16, RequestKind)> {
    Some(match msg {
        Message::VoteRequest { candidate_epoch, candidate_id, last_offset_epoch, last_offset } => {
            let p = vote_req::PartitionData::default()
                .with_replica_epoch(*candidate_epoch)
                .with_replica_id(WireBrokerId(*candidate_id))
                .with_last_offset_epoch(*last_offset_epoch)
                .with_last_offset(*last_offset);
            let t = vote_req::TopicData::default().with_topic_name(topic()).with_partitions(vec![p]);
            (ApiKey::Vote, 0, RequestKind::Vote(VoteRequest::default().with_topics(vec![t])))
        }
        Message::BeginQuorumEpochRequest { leader_epoch, leader_id } => {
            let p = bqe_req::PartitionData::default().with_leader_id(WireBrokerId(*leader_id)).with_leader_epoch(*leader_epoch);
            let t = bqe_req::TopicData::default().with_topic_name(topic()).with_partitions(vec![p]);
            (ApiKey::BeginQuorumEpoch, 0, RequestKind::BeginQuorumEpoch(BeginQuorumEpochRequest::default().with_topics(vec![t])))
        }
        Message::EndQuorumEpochRequest { leader_epoch, leader_id, preferred_successors } => {
            let p = eqe_req::PartitionData::default()
                .with_leader_id(WireBrokerId(*leader_id))
                .with_leader_epoch(*leader_epoch)
                .with_preferred_successors(preferred_successors.clone());
            let t = eqe_req::TopicData::default().with_topic_name(topic()).with_partitions(vec![p]);
            (ApiKey::EndQuorumEpoch, 0, RequestKind::EndQuorumEpoch(EndQuorumEpochRequest::default().with_topics(vec![t])))
        }
        Message::FetchRequest { replica_id, current_leader_epoch, fetch_offset, last_fetched_epoch } => {
            let p = FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(*current_leader_epoch)
                .with_fetch_offset(*fetch_offset)
                .with_last_fetched_epoch(*last_fetched_epoch)
                .with_partition_max_bytes(1 << 20);
            let t = FetchTopic::default().with_topic(topic()).with_partitions(vec![p]);
            let req = FetchRequest::default().with_replica_id(WireBrokerId(*replica_id)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![t]);
            (ApiKey::Fetch, 12, RequestKind::Fetch(req))
        }
        _ => return None,
    })
}

/// A Kafka request from a voter as the Raft message it carries, with the sender's id when
/// the request names it. None for what is not quorum traffic.
pub(super) fn from_request(req: &RequestKind) -> Option<(Option<NodeId>, Message)> {
    match req {
        RequestKind::Vote(r) => {
            let p = r.topics.first()?.partitions.first()?;
            let msg = Message::VoteRequest { candidate_epoch: p.replica_epoch, candidate_id: p.replica_id.0, last_offset_epoch: p.last_offset_epoch, last_offset: p.last_offset };
            Some((Some(p.replica_id.0), msg))
        }
        RequestKind::BeginQuorumEpoch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            Some((Some(p.leader_id.0), Message::BeginQuorumEpochRequest { leader_epoch: p.leader_epoch, leader_id: p.leader_id.0 }))
        }
        RequestKind::EndQuorumEpoch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            let msg = Message::EndQuorumEpochRequest { leader_epoch: p.leader_epoch, leader_id: p.leader_id.0, preferred_successors: p.preferred_successors.clone() };
            Some((Some(p.leader_id.0), msg))
        }
        RequestKind::Fetch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            let msg = Message::FetchRequest { replica_id: r.replica_id.0, current_leader_epoch: p.current_leader_epoch, fetch_offset: p.fetch_offset, last_fetched_epoch: p.last_fetched_epoch };
            Some((Some(r.replica_id.0), msg))
        }
        _ => None,
    }
}

/// A Raft response as the Kafka response that carries it.
pub(super) fn to_response(msg: &Message) -> Option<ResponseKind> {
    Some(match msg {
        Message::VoteResponse { error, leader_epoch, leader_id, vote_granted } => {
            let p = vote_resp::PartitionData::default()
                .with_error_code(error_code(*error))
                .with_leader_id(WireBrokerId(leader_id.unwrap_or(-1)))
                .with_leader_epoch(*leader_epoch)
                .with_vote_granted(*vote_granted);
            ResponseKind::Vote(VoteResponse::default().with_topics(vec![vote_resp::TopicData::default().with_topic_name(topic()).with_partitions(vec![p])]))
        }
        Message::BeginQuorumEpochResponse { error, leader_epoch, leader_id } => {
            let p = bqe_resp::PartitionData::default().with_error_code(error_code(*error)).with_leader_id(WireBrokerId(leader_id.unwrap_or(-1))).with_leader_epoch(*leader_epoch);
            let t = bqe_resp::TopicData::default().with_topic_name(topic()).with_partitions(vec![p]);
            ResponseKind::BeginQuorumEpoch(BeginQuorumEpochResponse::default().with_topics(vec![t]))
        }
        Message::EndQuorumEpochResponse { error, leader_epoch, leader_id } => {
            let p = eqe_resp::PartitionData::default().with_error_code(error_code(*error)).with_leader_id(WireBrokerId(leader_id.unwrap_or(-1))).with_leader_epoch(*leader_epoch);
            let t = eqe_resp::TopicData::default().with_topic_name(topic()).with_partitions(vec![p]);
            ResponseKind::EndQuorumEpoch(EndQuorumEpochResponse::default().with_topics(vec![t]))
        }
        Message::FetchResponse { error, leader_epoch, leader_id, high_watermark, diverging_epoch, entries } => {
            let (e, end) = diverging_epoch.unwrap_or((-1, -1));
            let p = FetchPartitionData::default()
                .with_partition_index(0)
                .with_error_code(error_code(*error))
                .with_high_watermark(*high_watermark)
                .with_last_stable_offset(*high_watermark)
                .with_log_start_offset(0)
                .with_diverging_epoch(EpochEndOffset::default().with_epoch(e).with_end_offset(end))
                .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(WireBrokerId(leader_id.unwrap_or(-1))).with_leader_epoch(*leader_epoch))
                .with_records(Some(encode_entries(entries)));
            ResponseKind::Fetch(FetchResponse::default().with_responses(vec![FetchableTopicResponse::default().with_topic(topic()).with_partitions(vec![p])]))
        }
        _ => return None,
    })
}

/// A Kafka response from a voter as the Raft response it carries.
pub(super) fn from_response(resp: &ResponseKind) -> Option<Message> {
    Some(match resp {
        ResponseKind::Vote(r) => {
            let p = r.topics.first()?.partitions.first()?;
            let error = raft_error(if r.error_code != 0 { r.error_code } else { p.error_code });
            Message::VoteResponse { error, leader_epoch: p.leader_epoch, leader_id: leader(p.leader_id.0), vote_granted: p.vote_granted }
        }
        ResponseKind::BeginQuorumEpoch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            Message::BeginQuorumEpochResponse { error: raft_error(p.error_code), leader_epoch: p.leader_epoch, leader_id: leader(p.leader_id.0) }
        }
        ResponseKind::EndQuorumEpoch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            Message::EndQuorumEpochResponse { error: raft_error(p.error_code), leader_epoch: p.leader_epoch, leader_id: leader(p.leader_id.0) }
        }
        ResponseKind::Fetch(r) => {
            let p = r.responses.first()?.partitions.first()?;
            let diverging_epoch = (p.diverging_epoch.epoch >= 0).then_some((p.diverging_epoch.epoch, p.diverging_epoch.end_offset));
            let entries = decode_entries(p.records.as_ref().unwrap_or(&bytes::Bytes::new())).ok()?;
            Message::FetchResponse {
                error: raft_error(p.error_code),
                leader_epoch: p.current_leader.leader_epoch,
                leader_id: leader(p.current_leader.leader_id.0),
                high_watermark: p.high_watermark,
                diverging_epoch,
                entries,
            }
        }
        _ => return None,
    })
}

/// Requests waiting to go to one peer voter.
#[derive(Default)]
pub(super) struct PeerQueue {
    queue: RefCell<VecDeque<Message>>,
    ready: Notify,
}

impl PeerQueue {
    pub fn push(&self, msg: Message) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= PEER_QUEUE_MAX {
            q.pop_front();
        }
        q.push_back(msg);
        self.ready.notify_one();
    }
}

/// Sends queued requests to `peer` one at a time and feeds each answer back to Raft. A lost
/// connection drops the request: Raft's own timers retry what matters.
pub(super) async fn peer_sender(sh: Rc<Shared>, peer: NodeId, addr: String, net: Rc<dyn Network>, queue: Rc<PeerQueue>) {
    let client_id = format!("controller-{}", sh.id);
    let mut conn: Option<Connection> = None;
    loop {
        let next = queue.queue.borrow_mut().pop_front();
        let Some(msg) = next else {
            queue.ready.notified().await;
            continue;
        };
        let Some((key, version, req)) = to_request(&msg) else { continue };
        if conn.is_none() {
            conn = Connection::connect(net.as_ref(), &addr, &client_id, QUORUM_REQUEST_TIMEOUT_MS).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match c.request(key, version, req, QUORUM_REQUEST_TIMEOUT_MS).await {
            Ok(resp) => {
                if let Some(answer) = from_response(&resp) {
                    sh.raft.borrow_mut().handle_message(sh.now_ms(), peer, answer);
                    sh.changed.notify_waiters();
                }
            }
            Err(_) => conn = None,
        }
    }
}
