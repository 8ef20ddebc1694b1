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

/// The distinct leader epochs in which some broker became leader of `tp`, in order.
fn leader_epochs(o: &sim::run::SeedOutcome, tp: &str) -> Vec<i32> {
    let marker = format!("become-leader {tp} epoch=");
    let mut epochs: Vec<i32> = o
        .trace
        .lines()
        .iter()
        .filter_map(|l| l.split(&marker).nth(1))
        .filter_map(|r| r.split(' ').next().and_then(|e| e.parse().ok()))
        .collect();
    epochs.dedup();
    epochs
}

/// Whether leadership of `tp` moved to a new epoch during the run (a failover happened).
fn failed_over(o: &sim::run::SeedOutcome, tp: &str) -> bool {
    leader_epochs(o, tp).len() >= 2
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
fn the_crashed_broker_is_fenced_and_rejoins_the_isr() {
    let s = load("smoke.toml");
    let o = run_seed(&s, 0).unwrap();
    let lines = o.trace.lines();
    assert!(lines.iter().any(|l| l.contains("broker-2 fault crash")));
    assert!(lines.iter().any(|l| l.contains("controller-0 metadata") && l.contains("fence broker-2")), "the crashed broker was never fenced");
    assert!(lines.iter().any(|l| l.contains("isr orders/0") && l.ends_with("-> [0, 1, 2]")), "the ISR never regrew");
}

#[test]
fn acks1_leader_crash_before_replication_loses_what_it_acknowledged() {
    let s = load("acks1_leader_crash_before_replication_loses_acknowledged_writes.toml");
    let o = run_seed(&s, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "lost-write"), "{:?}", o.anomalies);
    let lines = o.trace.lines();
    // The mechanism, not only the outcome: a follower is elected, and the old leader later
    // truncates its unreplicated tail because the new leader's epoch diverges from it.
    assert!(failed_over(&o, "orders/0"), "no failover: {:?}", leader_epochs(&o, "orders/0"));
    assert!(lines.iter().any(|l| l.contains("truncate orders/0") && l.contains("diverging epoch")), "no epoch truncation");
    insta::assert_snapshot!("acks1_crash_seed0_report", report::markdown(&s, &o, false, &report::Provenance::fixed()));
}

#[test]
fn acks_all_keeps_everything_through_the_same_failover() {
    let s = load("acks_all_leader_crash_before_replication_keeps_acknowledged_writes.toml");
    for seed in 0..2 {
        let o = run_seed(&s, seed).unwrap();
        assert!(o.failure.is_none() && o.anomalies.is_empty(), "seed {seed}: {:?} {:?}", o.failure, o.anomalies);
        assert!(failed_over(&o, "orders/0"), "seed {seed}: no failover happened");
    }
}

#[test]
fn an_unclean_election_truncates_committed_data_and_a_clean_one_waits() {
    let s = load("unclean_election_loses_committed_data.toml");
    let o = run_seed(&s, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "inconsistent-offsets" || a.kind == "lost-write"), "{:?}", o.anomalies);
    assert!(o.trace.lines().iter().any(|l| l.contains("change orders/0 leader=Some(2)") && l.contains("unclean=true")), "no unclean election");

    let s = load("clean_election_waits_for_the_isr.toml");
    let o = run_seed(&s, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().all(|a| a.kind == "duplicate"), "{:?}", o.anomalies);
    assert!(!o.trace.lines().iter().any(|l| l.contains("unclean=true")), "an unclean election happened with the switch off");
}

#[test]
fn an_isolated_leader_is_replaced_and_held_messages_arrive_late_without_loss() {
    let s = load("isolated_leader_with_acks_all_keeps_acknowledged_writes.toml");
    let o = run_seed(&s, 1).unwrap();
    assert!(o.failure.is_none() && o.anomalies.is_empty(), "{:?} {:?}", o.failure, o.anomalies);
    let lines = o.trace.lines();
    assert!(lines.iter().any(|l| l.contains("fault partition from")), "the isolation never happened");
    assert!(lines.iter().any(|l| l.contains("fault hold")) && lines.iter().any(|l| l.contains("heal release")), "no hold/release");
    assert!(failed_over(&o, "orders/0"), "no new leader was elected");
    let acked = o.history.ops().iter().filter(|op| format!("{:?}", op.kind) == "Ok").count();
    assert!(acked > 2000, "only {acked} ok operations: the run was not exercised");
}

#[test]
fn a_new_active_controller_keeps_the_metadata_and_does_the_fencing() {
    let s = load("controller_failover_keeps_committed_metadata.toml");
    let o = run_seed(&s, 0).unwrap();
    assert!(o.failure.is_none() && o.anomalies.is_empty(), "{:?} {:?}", o.failure, o.anomalies);
    let lines = o.trace.lines();
    let first = lines.iter().find(|l| l.contains("controller-active")).expect("a controller became active");
    let killed = first.split_whitespace().nth(1).expect("node name").to_string();
    assert!(lines.iter().any(|l| l.contains(&format!("{killed} fault kill"))), "the active controller was the one killed");
    let second = lines.iter().filter(|l| l.contains("controller-active")).find(|l| !l.contains(&killed)).expect("another controller took over");
    let new = second.split_whitespace().nth(1).unwrap();
    assert!(lines.iter().any(|l| l.contains(&format!("{new} metadata")) && l.contains("fence broker-")), "the new controller fenced nobody");
}

#[test]
fn the_last_replica_standing_loses_what_power_loss_took_but_not_what_a_crash_kept() {
    let lost = load("min_insync_1_last_replica_power_loss_loses_acknowledged_writes.toml");
    let o = run_seed(&lost, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "inconsistent-offsets" || a.kind == "lost-write"), "{:?}", o.anomalies);
    let kept = load("min_insync_1_last_replica_process_crash_keeps_acknowledged_writes.toml");
    let o = run_seed(&kept, 0).unwrap();
    assert!(o.failure.is_none() && o.anomalies.is_empty(), "{:?} {:?}", o.failure, o.anomalies);
    // The restarted leader must not act on leadership its previous incarnation held.
    let restarted = o.trace.lines().iter().position(|l| l.contains("heal restart")).expect("a restart");
    let before: Vec<i32> = leader_epochs(&o, "orders/0");
    let first_epoch = *before.first().expect("a first leader");
    let stale = o.trace.lines()[restarted..].iter().find(|l| l.contains(&format!("become-leader orders/0 epoch={first_epoch} ")));
    assert!(stale.is_none(), "a restarted broker led in its dead incarnation's epoch: {stale:?}");
}

#[test]
fn acks_all_is_not_fsync_a_correlated_power_loss_shows_the_difference() {
    // The log end each broker reopened orders/0 with after the power loss (at 20 s).
    let reopen_leos = |o: &sim::run::SeedOutcome| -> Vec<i64> {
        o.trace
            .lines()
            .iter()
            .filter(|l| l.contains("open orders/0 leo="))
            .filter(|l| l.split_whitespace().next().and_then(|t| t.parse::<u64>().ok()).is_some_and(|ms| ms >= 20_000))
            .filter_map(|l| l.split("leo=").nth(1).and_then(|n| n.parse().ok()))
            .collect()
    };
    let lost = load("correlated_power_loss_loses_acknowledged_writes.toml");
    let o = run_seed(&lost, 0).unwrap();
    assert!(o.anomalies.iter().any(|a| a.kind == "inconsistent-offsets" || a.kind == "lost-write"), "{:?}", o.anomalies);
    let kept = load("correlated_power_loss_with_fsync_per_message_keeps_acknowledged_writes.toml");
    let k = run_seed(&kept, 0).unwrap();
    assert!(k.failure.is_none() && k.anomalies.is_empty(), "{:?} {:?}", k.failure, k.anomalies);
    let (without, with) = (reopen_leos(&o), reopen_leos(&k));
    assert_eq!(with.len(), 3, "{with:?}");
    assert!(with.iter().all(|l| *l == with[0] && *l > 100), "fsynced replicas came back unequal or empty: {with:?}");
    assert!(without.iter().all(|l| *l < with[0]), "unsynced replicas kept more than the fsynced ones: {without:?} vs {with:?}");
}

#[test]
fn the_random_nemesis_really_injects_faults_and_the_safe_configuration_survives_them() {
    let s = load("safe_config_under_random_faults_keeps_acknowledged_writes.toml");
    for seed in [3, 11] {
        let o = run_seed(&s, seed).unwrap();
        assert!(o.failure.is_none() && o.anomalies.is_empty(), "seed {seed}: {:?} {:?}", o.failure, o.anomalies);
        let faults = o.trace.lines().iter().filter(|l| l.contains(" fault ")).count();
        let heals = o.trace.lines().iter().filter(|l| l.contains(" heal ")).count();
        assert!(faults >= 5, "seed {seed}: only {faults} faults were drawn");
        assert!(heals >= faults, "seed {seed}: {faults} faults but {heals} heals");
    }
    // The same seed draws the same faults.
    let a = run_seed(&s, 3).unwrap();
    let b = run_seed(&s, 3).unwrap();
    assert_eq!(a.trace.hash(), b.trace.hash());
}

#[test]
fn truncating_to_the_own_high_watermark_loses_what_epochs_keep() {
    let old = load("truncate_to_hw_on_become_follower_loses_acknowledged_writes.toml");
    let o = run_seed(&old, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "lost-write" || a.kind == "inconsistent-offsets"), "{:?}", o.anomalies);
    assert!(o.trace.lines().iter().any(|l| l.contains("(to own high watermark)")), "the switch never truncated");
    let new = load("epoch_truncation_keeps_acknowledged_writes_through_leader_changes.toml");
    let n = run_seed(&new, 0).unwrap();
    assert!(n.failure.is_none() && n.anomalies.is_empty(), "{:?} {:?}", n.failure, n.anomalies);
    assert!(!n.trace.lines().iter().any(|l| l.contains("(to own high watermark)")), "epochs should not truncate to the HW");
}

#[test]
fn single_step_truncation_diverges_where_the_iterative_walk_does_not() {
    let old = load("single_step_epoch_truncation_leaves_divergent_replicas.toml");
    let o = run_seed(&old, 0).unwrap();
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.iter().any(|a| a.kind == "divergent-replicas"), "{:?}", o.anomalies);
    let new = load("iterative_epoch_truncation_leaves_no_divergent_replicas.toml");
    let n = run_seed(&new, 0).unwrap();
    assert!(n.failure.is_none(), "{:?}", n.failure);
    assert!(!n.anomalies.iter().any(|a| a.kind == "divergent-replicas"), "{:?}", n.anomalies);
    // Same schedule, different truncation: single-step stops at min(leader end, own end),
    // the walk goes back to where the epochs agree.
    let truncations = |o: &sim::run::SeedOutcome| -> Vec<String> { o.trace.lines().iter().filter(|l| l.contains("truncate orders/0")).cloned().collect() };
    assert_ne!(truncations(&o), truncations(&n));
}

#[test]
fn a_producer_whose_partition_goes_offline_retries_once_it_has_a_leader_again() {
    // Seed 31 of the exactly-once scenario: out/0's only in-sync replica crashes, the partition
    // has no leader for a while, and the transactional producer holds a batch for it. The
    // sender used to wait for the delivery timeout (120 s) instead of asking for metadata
    // again, so its transaction never finished and its input partitions were never consumed.
    let s = load("exactly_once_consume_transform_produce_under_crashes.toml");
    let o = run_seed(&s, 31).expect("runs");
    assert!(o.trace.lines().iter().any(|l| l.contains("change out/0 leader=Some(-1)")), "the seed still takes out/0 offline");
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert!(o.anomalies.is_empty(), "{:?}", o.anomalies.iter().map(|a| format!("{} {}/{}", a.kind, a.topic, a.partition)).collect::<Vec<_>>());
}
