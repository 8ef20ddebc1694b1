//! The catalog's first scenarios, run through the harness as a user would: verdicts,
//! determinism, and a pinned seed's report under a snapshot.

use std::path::Path;

use sim::report;
use sim::run::{judge, run_seed};
use sim::scenario::Scenario;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(name);
    let mut s = Scenario::load(&path).expect("catalog scenario loads");
    // Reports and snapshots show the path as users type it, from the repository root.
    s.path = format!("scenarios/{name}");
    s
}

#[test]
fn smoke_is_clean_over_three_seeds() {
    let s = load("smoke.toml");
    let mut outcomes = Vec::new();
    for seed in 0..3 {
        let o = run_seed(&s, seed).unwrap();
        assert!(o.failure.is_none(), "seed {seed}: {:?}", o.failure);
        assert!(o.anomalies.is_empty(), "seed {seed}: {:?}", o.anomalies);
        let acked = o.history.ops().iter().filter(|op| format!("{:?}", op.kind) == "Ok").count();
        assert!(acked > 1000, "seed {seed}: only {acked} ok operations: the workload did not run");
        outcomes.push((seed, Vec::new(), false));
    }
    assert!(judge(&s, &outcomes).met);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let s = load("smoke.toml");
    let a = run_seed(&s, 7).unwrap();
    let b = run_seed(&s, 7).unwrap();
    assert_eq!(a.trace.lines(), b.trace.lines());
    assert_eq!(a.trace.hash(), b.trace.hash());
    let c = run_seed(&s, 8).unwrap();
    assert_ne!(a.trace.hash(), c.trace.hash(), "different seeds should not replay the same run");
}

#[test]
fn the_follower_crash_really_shrinks_and_regrows_the_isr() {
    let s = load("smoke.toml");
    let o = run_seed(&s, 0).unwrap();
    let lines = o.trace.lines();
    assert!(lines.iter().any(|l| l.contains("broker-2 fault crash")));
    assert!(lines.iter().any(|l| l.contains("isr orders/0 [0, 1, 2] -> [0, 1]")), "ISR never shrank");
    assert!(lines.iter().any(|l| l.contains("isr orders/0 [0, 1] -> [0, 1, 2]")), "ISR never regrew");
}

#[test]
fn acks1_leader_power_loss_shows_reused_offsets() {
    let s = load("acks1_leader_power_loss_loses_acknowledged_writes.toml");
    let o = run_seed(&s, 2).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "inconsistent-offsets"), "{:?}", o.anomalies);
    insta::assert_snapshot!("acks1_seed2_report", report::summary(&s, &o));
}

#[test]
fn fsync_per_message_closes_the_power_loss_window() {
    let s = load("acks1_leader_power_loss_with_fsync_per_message_keeps_acknowledged_writes.toml");
    for seed in 0..2 {
        let o = run_seed(&s, seed).unwrap();
        assert!(o.failure.is_none() && o.anomalies.is_empty(), "seed {seed}: {:?} {:?}", o.failure, o.anomalies);
        let reopened = o.trace.lines().iter().find(|l| l.contains("broker-0 open orders/0") && !l.trim_start().starts_with("0 ")).cloned();
        let leo: i64 = reopened.as_deref().and_then(|l| l.split("leo=").nth(1)).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("the leader reopened its log");
        assert!(leo > 100, "seed {seed}: the killed leader came back with only {leo} records");
    }
}
