//! Runs one seed of a scenario through its phases (chaos with the scripted faults, then heal:
//! every node up, every link repaired) and checks the history; and judges a scenario's seeds
//! against its `[expect]`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::checkers::{check_all, Anomaly};
use crate::engine::traffic::{reset_traffic, take_traffic, Traffic};
use crate::faults::FaultPlayer;
use crate::history::History;
use crate::invariants::{check_divergence, check_groups, check_leaders, Invariants};
use crate::nemesis::NemesisPlayer;
use crate::scenario::{FaultSpec, Outcome, Scenario, ScenarioError};
use crate::support::check_supported;
use crate::trace::Trace;
use crate::wire::Wire;
use crate::world::World;

/// What one seed produced.
pub struct SeedOutcome {
    pub seed: u64,
    pub anomalies: Vec<Anomaly>,
    pub trace: Trace,
    pub history: History,
    /// Every Kafka frame that crossed the network (for the report's message diagram).
    pub wire: Wire,
    pub sim_ms: u64,
    /// What crossed the simulated network, per link (observed only).
    pub traffic: Traffic,
    /// A panic inside the system (a failed assertion is a bug found) or a node that died.
    pub failure: Option<String>,
    /// The faults the random nemesis drew, as scripted faults on the nodes they hit.
    pub drawn_faults: Vec<FaultSpec>,
    /// The coverage marks (`sometimes!`) the run reached.
    pub marks: Vec<String>,
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set while a simulation is being driven: only its panics are the system's bugs to
    /// remember; any other panic is the harness's own and is printed as usual.
    static DRIVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside simulated tasks are caught by their runtime; this hook remembers them so
/// the run can stop and report the bug instead of carrying on.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !DRIVING.with(|d| d.get()) {
                return default(info);
            }
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            PANIC.with(|p| p.borrow_mut().get_or_insert(format!("{msg}{at}")).clone());
        }));
    });
}

fn take_panic() -> Option<String> {
    PANIC.with(|p| p.borrow_mut().take())
}

/// Runs `seed` of `s`. Errors only for a scenario this build cannot run.
pub fn run_seed(s: &Scenario, seed: u64) -> Result<SeedOutcome, ScenarioError> {
    check_supported(s)?;
    install_panic_hook();
    take_panic();
    reset_traffic();
    stormlog::observe::marks::take();
    let mut world = World::build(s, seed)?;
    world.trace.borrow_mut().record(0, "harness", &format!("scenario {} seed {seed}", s.name));
    let mut invariants = Invariants::default();
    let mut drawn_faults = Vec::new();
    DRIVING.with(|d| d.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| drive(s, seed, &mut world, &mut invariants, &mut drawn_faults)));
    DRIVING.with(|d| d.set(false));
    let failure = match result {
        Ok(Ok(())) => take_panic(),
        Ok(Err(e)) => Some(take_panic().unwrap_or(e)),
        Err(_) => Some(take_panic().unwrap_or_else(|| "panic".into())),
    };
    let sim_ms = world.elapsed_ms();
    let mut history = world.history.borrow().clone();
    history.close_pending_as_info(sim_ms);
    let trace = world.trace.borrow().clone();
    let traffic = take_traffic();
    let mut anomalies = check_all(&history, &s.checks.disable);
    let unclean = unclean_elections(&trace);
    let partitions: Vec<(String, i32)> = s.topics.iter().flat_map(|t| (0..t.partitions as i32).map(|p| (t.name.clone(), p))).collect();
    let snapshots = world.snapshot_map();
    let lso_check = invariants.check_lso(sim_ms, &snapshots, lso_limit_ms(s));
    let visibility = if s.checks.enable.is_empty() { Vec::new() } else { invariants.check_visibility(&crate::checkers::index::HistoryIndex::build(&history)) };
    let white_box = invariants
        .anomalies
        .into_iter()
        .chain(check_divergence(sim_ms, &snapshots, &world.broker_disks(), &unclean))
        .chain(if failure.is_none() { check_leaders(sim_ms, &snapshots, &partitions) } else { Vec::new() })
        .chain(if failure.is_none() { check_groups(sim_ms, &world.coordinator_views(), &group_sizes(s)) } else { Vec::new() })
        .chain(if failure.is_none() { lso_check } else { Vec::new() });
    anomalies.extend(white_box.filter(|a| !s.checks.disable.contains(&a.kind)));
    if s.checks.enable.iter().any(|c| c == "fractured-visibility") {
        anomalies.extend(visibility);
    }
    crate::checkers::sort_anomalies(&mut anomalies);
    let wire = world.wire.replace(Wire::default());
    let marks = stormlog::observe::marks::take().into_iter().map(String::from).collect();
    Ok(SeedOutcome { seed, anomalies, trace, history, wire, sim_ms, traffic, failure, drawn_faults, marks })
}

/// How long a last stable offset may stay put below the HW before it is `stuck-lso`: the
/// longest `transaction.timeout.ms` of the scenario's transactional clients, plus the
/// coordinator's abort interval, plus 10 s for the abort's markers.
fn lso_limit_ms(s: &Scenario) -> u64 {
    let timeout = s
        .producers
        .iter()
        .filter_map(|p| p.config.get("transaction.timeout.ms").and_then(|v| v.as_i64()))
        .map(|t| u64::try_from(t).unwrap_or(0))
        .max()
        .unwrap_or(60_000);
    timeout + stormlog::txn::TxnConfig::default().abort_check_interval_ms + 10_000
}

/// How many consumer instances each group of the scenario has.
fn group_sizes(s: &Scenario) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in &s.consumers {
        if let Some(g) = &c.group {
            *out.entry(g.clone()).or_insert(0) += c.count as usize;
        }
    }
    out
}

/// Partitions the controller moved through an unclean election, from its trace lines.
fn unclean_elections(trace: &Trace) -> BTreeSet<(String, i32)> {
    trace
        .lines()
        .iter()
        .filter(|l| l.contains(" change ") && l.contains("unclean=true"))
        .filter_map(|l| {
            let tp = l.split(" change ").nth(1)?.split(' ').next()?;
            let (topic, p) = tp.rsplit_once('/')?;
            Some((topic.to_string(), p.parse().ok()?))
        })
        .collect()
}

fn drive(s: &Scenario, seed: u64, world: &mut World<'_>, invariants: &mut Invariants, drawn: &mut Vec<FaultSpec>) -> Result<(), String> {
    let mut faults = FaultPlayer::new(s);
    let mut nemesis = s.nemesis.as_ref().map(|n| NemesisPlayer::new(n, seed));
    let result = drive_phases(s, world, invariants, &mut faults, nemesis.as_mut());
    *drawn = nemesis.map(|n| n.drawn).unwrap_or_default();
    result
}

fn drive_phases(s: &Scenario, world: &mut World<'_>, invariants: &mut Invariants, faults: &mut FaultPlayer, mut nemesis: Option<&mut NemesisPlayer>) -> Result<(), String> {
    let chaos_end = s.duration_ms;
    let total = s.duration_ms + s.heal_ms;
    let mut healed = false;
    while world.elapsed_ms() < total {
        let now = world.elapsed_ms();
        if now >= chaos_end && !healed {
            world.heal_all();
            healed = true;
        } else if !healed {
            faults.apply_due(now, world);
            if let Some(n) = nemesis.as_mut() {
                n.apply_due(now, world);
            }
        }
        world.step()?;
        if let Some(p) = take_panic() {
            return Err(p);
        }
        if world.take_snapshots_changed() {
            invariants.observe(world.elapsed_ms(), &world.snapshot_map(), |n| world.incarnation(n));
            invariants.observe_groups(world.elapsed_ms(), &world.coordinator_views());
        }
    }
    Ok(())
}

/// A scenario's verdict over the seeds that ran.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub met: bool,
    pub seeds: u64,
    pub seeds_with_anomalies: u64,
    pub anomaly_counts: BTreeMap<String, u64>,
    /// Seeds whose anomalies go against the expectation (clean) or show it (violation).
    pub notable_seeds: Vec<u64>,
    pub failures: Vec<u64>,
    pub reason: String,
}

/// `[expect] marks`: each must be reached by at least one seed, or the expectation is not met
/// (the run never got to the state it is about).
pub fn require_marks<'a>(s: &Scenario, v: &mut Verdict, reached: impl Iterator<Item = &'a [String]>) {
    if s.expect.marks.is_empty() {
        return;
    }
    let reached: std::collections::BTreeSet<&String> = reached.flatten().collect();
    let missing: Vec<&String> = s.expect.marks.iter().filter(|m| !reached.contains(m)).collect();
    if missing.is_empty() {
        v.reason += &format!("; reached the marks {:?}", s.expect.marks);
    } else {
        v.met = false;
        v.reason += &format!("; no seed reached the marks {missing:?}");
    }
}

/// Judges seeds (in seed order) against `[expect]`.
pub fn judge(s: &Scenario, outcomes: &[(u64, Vec<String>, bool)]) -> Verdict {
    let mut counts = BTreeMap::new();
    let mut with = 0;
    for (_, kinds, _) in outcomes {
        if !kinds.is_empty() {
            with += 1;
        }
        for k in kinds {
            *counts.entry(k.clone()).or_insert(0) += 1;
        }
    }
    let failures: Vec<u64> = outcomes.iter().filter(|o| o.2).map(|o| o.0).collect();
    let (met, notable, reason) = match s.expect.outcome {
        Outcome::Clean => {
            let bad: Vec<u64> = outcomes.iter().filter(|(_, k, _)| k.iter().any(|a| !s.expect.allow.contains(a))).map(|o| o.0).collect();
            let allowed = if s.expect.allow.is_empty() { String::new() } else { format!(" outside the allowed {:?}", s.expect.allow) };
            let reason = if bad.is_empty() { format!("no seed showed an anomaly{allowed}") } else { format!("{} seed(s) showed anomalies{allowed}", bad.len()) };
            (bad.is_empty(), bad, reason)
        }
        Outcome::Violation => {
            let within = s.expect.within_seeds.unwrap_or(u64::MAX);
            let hits: Vec<u64> = outcomes
                .iter()
                .enumerate()
                .filter(|(i, (_, k, _))| (*i as u64) < within && k.iter().any(|a| s.expect.anomalies.contains(a)))
                .map(|(_, o)| o.0)
                .collect();
            let reason = if hits.is_empty() {
                format!("none of {:?} appeared", s.expect.anomalies)
            } else {
                format!("{:?} found in {} seed(s)", s.expect.anomalies, hits.len())
            };
            (!hits.is_empty(), hits, reason)
        }
    };
    let met = met && failures.is_empty();
    Verdict { met, seeds: outcomes.len() as u64, seeds_with_anomalies: with, anomaly_counts: counts, notable_seeds: notable, failures, reason }
}
