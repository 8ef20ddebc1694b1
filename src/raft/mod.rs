//! A KRaft-style Raft quorum member (KIP-595) as a sans-IO core.
//!
//! `RaftNode` elects a leader with Vote / BeginQuorumEpoch / EndQuorumEpoch and replicates by
//! pull: followers Fetch from the leader, whose high watermark advances once a majority of
//! voters has fetched past an offset and an entry of its own epoch is among them. It owns no
//! network, clock or thread: time is an argument, randomness comes from the `Entropy` it is
//! given, messages leave through `poll_outbound`, and the only I/O is its own `Storage` (the
//! `quorum-state` file and the log), fsynced before anything depending on it is sent. It must
//! not know about brokers, metadata records or the wire encoding: a shell maps `Message` to
//! Kafka's RPCs and a state machine replays what `poll_committed` returns.

mod config;
mod election;
mod leader;
mod log;
mod message;
mod node;
mod quorum_state;
mod replication;
mod role;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use config::RaftConfig;
pub use message::{Entry, Message, NodeId, RaftError};
pub use node::RaftNode;
pub use role::Role;
