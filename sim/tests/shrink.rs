//! `stormlog shrink` on a catalog violation: the random nemesis's faults made explicit, then
//! fewer faults and fewer messages, and the written scenario still fails the same way.

use std::path::Path;

use sim::run::run_seed;
use sim::scenario::Scenario;
use sim::shrink::shrink;

#[test]
fn shrinking_a_random_fault_violation_keeps_the_lost_write_with_fewer_faults_and_messages() {
    let name = "acks1_under_random_faults_loses_acknowledged_writes.toml";
    let mut s = Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(name)).unwrap();
    s.path = format!("scenarios/{name}");
    let mut notes = Vec::new();
    let shrunk = shrink(&s, 0, 40, &mut |n| notes.push(n.to_string())).unwrap();
    eprintln!("{}\n{}", notes.join("\n"), shrunk.before.compare(&shrunk.after));
    assert_eq!(shrunk.kind, "lost-write");
    assert!(shrunk.scenario.nemesis.is_none(), "the schedule must be explicit");
    assert!(shrunk.after.faults < shrunk.before.faults, "{}", shrunk.before.compare(&shrunk.after));
    assert!(shrunk.after.messages < shrunk.before.messages, "{}", shrunk.before.compare(&shrunk.after));
    assert!(shrunk.after.wire_messages < shrunk.before.wire_messages, "{}", shrunk.before.compare(&shrunk.after));
    // What is written is what was tested: read it back and run it.
    let written = Scenario::parse("shrunk.toml", &shrunk.scenario.to_toml()).unwrap();
    assert_eq!(written.faults, shrunk.scenario.faults);
    let o = run_seed(&written, 0).unwrap();
    assert!(o.anomalies.iter().any(|a| a.kind == "lost-write"), "the shrunk scenario no longer fails the same way");
}

#[test]
fn the_nemesis_draws_made_explicit_replay_the_same_run() {
    let name = "acks1_under_random_faults_loses_acknowledged_writes.toml";
    let s = Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(name)).unwrap();
    let drawn = run_seed(&s, 2).unwrap();
    assert!(drawn.drawn_faults.len() >= 5, "{:?}", drawn.drawn_faults);
    let explicit = sim::shrink::explicit(&s, &drawn);
    let written = Scenario::parse("explicit.toml", &explicit.to_toml()).unwrap();
    let replayed = run_seed(&written, 2).unwrap();
    assert!(replayed.drawn_faults.is_empty());
    if let Some((line, a, b)) = sim::trace::first_difference(&drawn.trace, &replayed.trace) {
        panic!("the explicit schedule parts from the nemesis run at event {line}:\n  {a:?}\n  {b:?}");
    }
}
