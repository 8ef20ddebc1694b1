//! The broker: serves Kafka requests for the partitions it hosts and replicates them.
//!
//! `core` is sans-IO: frames in, frames out, time as an argument, parked requests as data.
//! `node` is the thin async shell shared by the simulator and `stormlog serve`: it accepts
//! connections, moves bytes, runs the replica fetchers and sleeps until the next deadline.
//! Brokers learn partitions, leaders and ISRs from the controller's metadata log; a leader
//! proposes ISR changes to the controller (AlterPartition) and adopts them once committed.

mod admin;
mod config;
mod controller_link;
mod core;
mod fetch;
mod groups;
mod metadata;
mod node;
mod outbound;
mod partition;
mod produce;
mod producer_ids;
mod purgatory;
mod replica_fetcher;
mod txn;

pub use self::core::{AlterIsr, BrokerCore, Handled};
pub use config::BrokerConfig;
pub use groups::OFFSETS_TOPIC;
pub use metadata::{BrokerAddress, ClusterMetadata, PartitionAssignment};
pub use node::{run_broker, BrokerEnv, GroupProbe, RequestHold, SnapshotProbe};
pub use outbound::Outbound;
pub use partition::PartitionSnapshot;
pub use txn::TXN_TOPIC;
