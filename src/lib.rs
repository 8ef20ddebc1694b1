//! stormlog: a Kafka-like replicated log, written so that the whole cluster can run inside a
//! seeded, deterministic simulation and, unchanged, on real TCP and real files.
//!
//! `seam` is the only door to the world (network, storage, clock, entropy); `protocol` is
//! Kafka's wire format; `log` stores record batches; `replication` holds the per-partition
//! rules (ISR, high watermark); `broker` serves requests; `client` speaks to brokers.

pub mod broker;
pub mod client;
pub mod ids;
pub mod log;
pub mod observe;
pub mod protocol;
pub mod replication;
pub mod seam;
