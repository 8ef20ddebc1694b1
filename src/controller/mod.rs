//! The KRaft-style controller core (KAFKA.md §1.4, §1.5, §1.15; DESIGN.md §2).
//!
//! Responsible for the cluster metadata: broker registrations, fencing, topics, partition
//! leaders and ISRs. The Raft quorum carries its records; this module only *proposes* records
//! (`ControllerCore::handle_*`, `tick`) and *replays* committed ones (`replay`). State changes
//! only through `replay`, so the live path and recovery after a restart are the same path.
//! The core must not touch the network, storage, the wall clock or the Raft log itself; the
//! shell (`node`) does that.
//!
//! - `records`: the metadata records and their encoding.
//! - `state`: `MetadataImage`, the replayed state, and the invariants checked after every record.
//! - `election`: Kafka's leader-election and partition-change rules (`PartitionChangeBuilder`).
//! - `core`: `ControllerCore`, request handling, heartbeat sessions and fencing.
//! - `node` / `requests`: the async shell (Raft + core behind one listener) and its Kafka
//!   request handlers; `wire`: the metadata log as record batches, topic ids.

pub mod core;
pub mod election;
mod node;
mod quorum;
pub mod records;
mod requests;
pub mod state;
pub mod wire;

pub use self::core::{ControllerConfig, ControllerCore, ControllerError, HeartbeatReply};
pub use election::{build_partition_change, elect_leader, ElectionResult};
pub use node::{run_controller, ControllerEnv};
pub use records::{decode, encode, MetadataRecord};
pub use state::{BrokerRegistration, MetadataImage, PartitionState, TopicImage, NO_LEADER};
