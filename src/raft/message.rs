//! The KRaft RPCs as plain data: Vote, BeginQuorumEpoch, EndQuorumEpoch and Fetch (KIP-595).
//!
//! Field names follow Kafka's request and response schemas for the metadata partition; the
//! node never encodes them. A shell maps them to Kafka's wire messages, and the test harness
//! passes them around as they are.

use std::fmt;

/// A controller's id, Kafka's `node.id` (an `int32` on the wire).
pub type NodeId = i32;

/// One record of the replicated log. An empty payload is the leader-change marker a new leader
/// writes at the start of its epoch (Kafka's `LeaderChangeMessage` control record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// Kafka's error codes as the Raft RPCs use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftError {
    /// The request's epoch is older than the receiver's (`FENCED_LEADER_EPOCH`).
    FencedLeaderEpoch,
    /// The receiver is not the leader (`NOT_LEADER_OR_FOLLOWER`).
    NotLeader,
    /// The request's epoch is newer than the receiver's (`UNKNOWN_LEADER_EPOCH`).
    UnknownLeaderEpoch,
    /// The sender is not a voter the receiver knows (`INCONSISTENT_VOTER_SET`).
    InconsistentVoterSet,
}

impl fmt::Display for RaftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RaftError::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            RaftError::NotLeader => "NOT_LEADER_OR_FOLLOWER",
            RaftError::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            RaftError::InconsistentVoterSet => "INCONSISTENT_VOTER_SET",
        };
        f.write_str(name)
    }
}

impl std::error::Error for RaftError {}

/// A Raft RPC between two controllers. Every response carries the responder's epoch and known
/// leader, so any message can move a stale node forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    VoteRequest {
        candidate_epoch: i32,
        candidate_id: NodeId,
        last_offset_epoch: i32,
        /// The candidate's log end offset.
        last_offset: i64,
    },
    VoteResponse {
        error: Option<RaftError>,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
        vote_granted: bool,
    },
    BeginQuorumEpochRequest {
        leader_epoch: i32,
        leader_id: NodeId,
    },
    BeginQuorumEpochResponse {
        error: Option<RaftError>,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
    },
    EndQuorumEpochRequest {
        leader_epoch: i32,
        leader_id: NodeId,
        preferred_successors: Vec<NodeId>,
    },
    EndQuorumEpochResponse {
        error: Option<RaftError>,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
    },
    FetchRequest {
        replica_id: NodeId,
        current_leader_epoch: i32,
        /// The follower's log end offset: everything below it is fsynced on the follower.
        fetch_offset: i64,
        /// The epoch of the follower's last entry (0 for an empty log).
        last_fetched_epoch: i32,
    },
    FetchResponse {
        error: Option<RaftError>,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
        high_watermark: i64,
        /// `(epoch, end offset)`: the leader's largest epoch not above the follower's last
        /// fetched epoch, and where it ends in the leader's log. Set only on divergence.
        diverging_epoch: Option<(i32, i64)>,
        entries: Vec<Entry>,
    },
}
