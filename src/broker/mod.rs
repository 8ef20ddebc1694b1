//! The broker: serves Kafka requests for the partitions it hosts and replicates them.
//!
//! `core` is sans-IO: frames in, frames out, time as an argument, parked requests as data.
//! `node` is the thin async shell shared by the simulator and `stormlog serve`: it accepts
//! connections, moves bytes, runs the replica fetchers and sleeps until the next deadline.
//! Until the controller lands, leadership is static: the first replica of each assignment
//! leads at epoch 0, and the leader alone decides ISR changes.

mod admin;
mod config;
mod core;
mod fetch;
mod metadata;
mod node;
mod partition;
mod produce;
mod purgatory;
mod replica_fetcher;

pub use self::core::{BrokerCore, Handled};
pub use config::BrokerConfig;
pub use metadata::{BrokerAddress, ClusterMetadata, PartitionAssignment};
pub use node::{run_broker, BrokerEnv};
pub use partition::PartitionSnapshot;
