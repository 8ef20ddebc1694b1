//! Scenario files: the TOML schema of SCENARIOS.md ("Scenario file (TOML)"), read into typed
//! values and validated completely before anything runs, with errors that name the file, the
//! key path and what was expected; and the way back to TOML for the shrinker.
//!
//! This module owns parsing, defaults and validation only. It does not resolve targets at
//! run time (`leader:orders/0` becomes a broker when the fault starts), draw nemesis faults or
//! interpret Kafka config values beyond their types: those belong to the harness.

mod config;
mod emit;
mod error;
mod read;
mod schema;
mod section;
mod target;
mod validate;

#[cfg(test)]
mod tests;

pub use config::ConfigValue;
pub use error::ScenarioError;
pub use schema::{
    Checks, Cluster, CommitMode, ConsumerSpec, Expect, FaultKind, FaultSpec, Nemesis,
    NemesisTargets, NetworkSpec, Outcome, ProducerSpec, Scenario, TopicSpec, ANOMALIES, BEHAVIOURS,
};
pub use target::{Peer, Target};
pub use validate::api_key;
