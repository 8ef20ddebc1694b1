//! stormlog's chaos harness: builds a simulated cluster from a scenario file, drives a
//! workload through the public clients, injects faults, records a Jepsen-style history and a
//! trace, and checks Kafka's guarantees over them.
//!
//! `scenario` reads and validates scenario files; `support` says what this build can run;
//! `engine` is the simulated side of the seam; `world` builds the simulation and holds the
//! fault verbs; `faults` plays scripted faults; `nemesis` draws random ones; `swarm` draws the fault mix per seed; `workload` drives clients (`txn_work` its transactional side); `history` and
//! `checkers` judge what clients saw; `invariants` check what nodes believe; `trace` records
//! what nodes did; `wire` the Kafka frames they exchanged; `run` runs seeds;
//! `report` writes what a person reads; `junit` what a CI system reads; `shrink` makes a failing
//! run smaller; `bench` measures how fast seeds run; `serve` runs a real cluster from the same
//! node code; `cli` is the `stormlog` binary.

pub mod bench;
pub mod checkers;
pub mod cli;
pub mod engine;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod junit;
pub mod nemesis;
pub mod report;
pub mod request_hold;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod shrink;
pub mod support;
pub mod swarm;
pub mod trace;
pub mod wire;
pub mod txn_work;
pub mod workload;
pub mod world;

#[cfg(test)]
mod testkit;
