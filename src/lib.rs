//! stormlog: a Kafka-like replicated log, written so that the whole cluster can run inside a
//! seeded, deterministic simulation and, unchanged, on real TCP and real files.
//!
//! `seam` is the only door to the world (network, storage, clock, entropy); `protocol` is
//! Kafka's wire format; `log` stores record batches; `replication` holds the per-partition
//! rules (ISR, high watermark, epoch truncation); `broker` serves requests; `client` speaks to
//! brokers; `raft` is the KRaft-style quorum that replicates the metadata log; `controller`
//! turns requests into metadata records and replays them; `group` is the consumer-group
//! coordinator.

pub mod broker;
pub mod client;
pub mod controller;
pub mod group;
pub mod ids;
pub mod log;
pub mod observe;
pub mod protocol;
pub mod raft;
pub mod replication;
pub mod seam;
pub mod txn;
