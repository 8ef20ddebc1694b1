//! `stormlog shrink`: makes a failing seed smaller while the same anomaly kind still appears.
//! The random nemesis's faults are first made explicit (the nodes they hit, when, for how
//! long), then delta debugging drops faults, then fault windows, the run's length, the
//! producers and consumers and the messages they send are cut down one at a time. Every
//! candidate is a scenario that went through the emitter and the reader, so what is written
//! is exactly what was tested.
//!
//! It runs seeds and judges them; it never changes a checker or the system.

mod ddmin;

use crate::run::{run_seed, SeedOutcome};
use crate::scenario::{Expect, FaultSpec, Outcome, Scenario};

pub use ddmin::ddmin;

/// Faults are not moved before this: brokers come up and producers start in the first
/// seconds.
const FIRST_FAULT_MS_MIN: u64 = 2_000;

/// How big a failing run is, in the units shrinking reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub faults: usize,
    /// Sum of the faults' durations.
    pub fault_ms: u64,
    /// Messages the producers sent (send operations in the history).
    pub messages: usize,
    /// Kafka requests and responses on the simulated network.
    pub wire_messages: usize,
    pub producers: u32,
    pub consumers: u32,
    /// Chaos plus heal.
    pub sim_ms: u64,
}

impl Size {
    pub fn of(s: &Scenario, o: &SeedOutcome) -> Size {
        let faults: Vec<&FaultSpec> = s.faults.iter().chain(&o.drawn_faults).collect();
        Size {
            faults: faults.len(),
            fault_ms: faults.iter().filter_map(|f| f.duration_ms).sum(),
            messages: o.history.ops().iter().filter(|op| op.f == crate::history::OpFn::Send && op.kind == crate::history::OpKind::Invoke).count(),
            wire_messages: o.wire.sent_count(),
            producers: s.producers.iter().map(|p| p.count).sum(),
            consumers: s.consumers.iter().map(|c| c.count).sum(),
            sim_ms: s.duration_ms + s.heal_ms,
        }
    }

    /// "faults 14 -> 2, ..." for the note shrink prints.
    pub fn compare(&self, after: &Size) -> String {
        let rows = [
            ("faults", self.faults as u64, after.faults as u64),
            ("fault time ms", self.fault_ms, after.fault_ms),
            ("messages sent", self.messages as u64, after.messages as u64),
            ("wire messages", self.wire_messages as u64, after.wire_messages as u64),
            ("producers", self.producers.into(), after.producers.into()),
            ("consumers", self.consumers.into(), after.consumers.into()),
            ("simulated ms", self.sim_ms, after.sim_ms),
        ];
        rows.iter().map(|(what, a, b)| format!("{what} {a} -> {b}")).collect::<Vec<_>>().join(", ")
    }
}

/// The result: the smaller scenario (with an explicit schedule) and how it compares.
pub struct Shrunk {
    pub scenario: Scenario,
    pub kind: String,
    pub seed: u64,
    pub before: Size,
    pub after: Size,
    pub runs: u32,
    /// The run budget ran out before every pass finished.
    pub exhausted: bool,
}

/// The anomaly kind a shrink keeps: the first expected kind the seed shows (for a violation
/// scenario), else the seed's first anomaly.
pub fn kind_to_keep(s: &Scenario, o: &SeedOutcome) -> Option<String> {
    let expected = o.anomalies.iter().find(|a| s.expect.outcome == Outcome::Violation && s.expect.anomalies.contains(&a.kind));
    expected.or(o.anomalies.first()).map(|a| a.kind.clone())
}

/// The scenario with the nemesis's draws of this seed as scripted faults, in time order.
pub fn explicit(s: &Scenario, o: &SeedOutcome) -> Scenario {
    let mut faults: Vec<FaultSpec> = s.faults.iter().chain(&o.drawn_faults).cloned().collect();
    faults.sort_by_key(|f| f.at_ms);
    Scenario { nemesis: None, faults, ..s.clone() }
}

/// Shrinks seed `seed` of `s` (as it runs, swarm draws included) within `runs_max` runs.
/// `note` hears each step that made the run smaller.
pub fn shrink(s: &Scenario, seed: u64, runs_max: u32, note: &mut dyn FnMut(&str)) -> Result<Shrunk, String> {
    let original = run_seed(s, seed).map_err(|e| e.to_string())?;
    let kind = kind_to_keep(s, &original).ok_or_else(|| format!("seed {seed} of {} shows no anomaly: nothing to shrink", s.name))?;
    let before = Size::of(s, &original);
    let mut sh = Shrinker { seed, kind: kind.clone(), runs: 1, runs_max, best: named(s, seed, &kind), best_outcome: original };
    let start = explicit(&sh.best, &sh.best_outcome);
    if !sh.accept(start) {
        return Err(format!("with its {} drawn faults made explicit, seed {seed} no longer shows {kind}: the schedule cannot be shrunk", before.faults));
    }
    note(&format!("{} faults made explicit; still shows {kind}", sh.best.faults.len()));
    sh.faults(note);
    sh.fault_windows(note);
    sh.earlier(note);
    sh.length(note);
    sh.clients(note);
    sh.messages(note);
    let after = Size::of(&sh.best, &sh.best_outcome);
    Ok(Shrunk { exhausted: sh.runs >= sh.runs_max, scenario: sh.best, kind, seed, before, after, runs: sh.runs })
}

/// The scenario renamed and re-expected as the shrunk run it will become.
fn named(s: &Scenario, seed: u64, kind: &str) -> Scenario {
    Scenario {
        name: format!("{}_shrunk_seed{seed}", s.name),
        description: format!("Shrunk by `stormlog shrink` from {} seed {seed}, still showing {kind}. {}", s.path, s.description),
        seeds: seed + 1,
        expect: Expect { outcome: Outcome::Violation, anomalies: vec![kind.to_string()], within_seeds: None, allow: Vec::new(), marks: Vec::new() },
        ..s.clone()
    }
}

struct Shrinker {
    seed: u64,
    kind: String,
    runs: u32,
    runs_max: u32,
    best: Scenario,
    best_outcome: SeedOutcome,
}

impl Shrinker {
    /// Runs `candidate` (after a trip through the emitter and the reader); its outcome when it
    /// still shows the kind.
    fn check(&mut self, candidate: &Scenario) -> Option<(Scenario, SeedOutcome)> {
        if self.runs >= self.runs_max {
            return None;
        }
        let text = candidate.to_toml();
        let parsed = Scenario::parse(&candidate.path, &text).ok()?;
        crate::support::check_supported(&parsed).ok()?;
        self.runs += 1;
        let o = run_seed(&parsed, self.seed).ok()?;
        o.anomalies.iter().any(|a| a.kind == self.kind).then_some((parsed, o))
    }

    fn accept(&mut self, candidate: Scenario) -> bool {
        match self.check(&candidate) {
            Some((s, o)) => {
                self.best = Scenario { path: candidate.path, ..s };
                self.best_outcome = o;
                true
            }
            None => false,
        }
    }

    fn faults(&mut self, note: &mut dyn FnMut(&str)) {
        let (base, before) = (self.best.clone(), self.best.faults.len());
        let mut last: Option<(Scenario, SeedOutcome)> = None;
        let kept = ddmin(base.faults.clone(), &mut |subset: &[FaultSpec]| {
            let candidate = Scenario { faults: subset.to_vec(), ..base.clone() };
            match self.check(&candidate) {
                Some(found) => {
                    last = Some(found);
                    true
                }
                None => false,
            }
        });
        if kept.len() < before {
            // The last successful test is the kept subset's own run: ddmin ends on it.
            match last.filter(|(s, _)| s.faults == kept) {
                Some((s, o)) => {
                    self.best = Scenario { path: base.path.clone(), ..s };
                    self.best_outcome = o;
                }
                None => {
                    if !self.accept(Scenario { faults: kept, ..base }) {
                        return;
                    }
                }
            }
            note(&format!("faults {before} -> {} (delta debugging)", self.best.faults.len()));
        }
    }

    fn fault_windows(&mut self, note: &mut dyn FnMut(&str)) {
        for i in 0..self.best.faults.len() {
            let Some(d) = self.best.faults[i].duration_ms else { continue };
            let kept = self.number(d, 100, |s, v| s.faults[i].duration_ms = Some(v));
            if kept < d {
                note(&format!("fault {i} ({} at {} ms) lasts {d} -> {kept} ms", self.best.faults[i].action, self.best.faults[i].at_ms));
            }
        }
    }

    /// The whole schedule moved earlier (not into the warm-up), so that the run can end
    /// sooner and send less.
    fn earlier(&mut self, note: &mut dyn FnMut(&str)) {
        let Some(first) = self.best.faults.iter().map(|f| f.at_ms).min() else { return };
        let kept = self.number(first, FIRST_FAULT_MS_MIN.min(first), |s, v| {
            // Relative to the schedule as it is now: `number` may have moved it already.
            let now = s.faults.iter().map(|f| f.at_ms).min().unwrap_or(v);
            s.faults.iter_mut().for_each(|f| f.at_ms = f.at_ms - now + v);
        });
        if kept < first {
            note(&format!("schedule moved earlier: first fault at {first} -> {kept} ms"));
        }
    }

    /// A shorter chaos phase (never before the last fault ends) and a shorter heal phase.
    fn length(&mut self, note: &mut dyn FnMut(&str)) {
        let last_fault_ms = self.best.faults.iter().map(|f| f.at_ms + f.duration_ms.unwrap_or(0)).max().unwrap_or(0);
        let (chaos, heal) = (self.best.duration_ms, self.best.heal_ms);
        let chaos_kept = self.number(chaos, (last_fault_ms + 1_000).max(2_000), |s, v| s.duration_ms = v);
        let heal_kept = self.number(heal, 5_000, |s, v| s.heal_ms = v);
        if chaos_kept < chaos || heal_kept < heal {
            note(&format!("chaos {chaos} -> {chaos_kept} ms, heal {heal} -> {heal_kept} ms"));
        }
    }

    fn clients(&mut self, note: &mut dyn FnMut(&str)) {
        for i in 0..self.best.producers.len() {
            let n = self.best.producers[i].count;
            let kept = self.number(n.into(), 1, |s, v| s.producers[i].count = v as u32);
            if kept < n.into() {
                note(&format!("producers {}: {n} -> {kept}", self.best.producers[i].name));
            }
        }
        for i in 0..self.best.consumers.len() {
            let n = self.best.consumers[i].count;
            let kept = self.number(n.into(), 1, |s, v| s.consumers[i].count = v as u32);
            if kept < n.into() {
                note(&format!("consumers {}: {n} -> {kept}", self.best.consumers[i].name));
            }
        }
    }

    /// Fewer messages per producer: first what it really sent (the rest of a large budget was
    /// never used), then less.
    fn messages(&mut self, note: &mut dyn FnMut(&str)) {
        for i in 0..self.best.producers.len() {
            let (name, budget) = (self.best.producers[i].name.clone(), self.best.producers[i].messages);
            let prefix = format!("{name}-");
            let sent = self.best_outcome.history.ops().iter().filter_map(|op| op.value.as_send().filter(|_| op.process.starts_with(&prefix)).map(|s| s.seq + 1)).max().unwrap_or(budget);
            let mut kept = budget;
            if sent < budget && self.accept(with(&self.best, |s| s.producers[i].messages = sent)) {
                kept = sent;
            }
            kept = self.number(kept, 1, |s, v| s.producers[i].messages = v);
            if kept < budget {
                note(&format!("messages per {name} instance {budget} -> {kept}"));
            }
        }
    }

    /// The smallest value in `[min, current]` that still fails, searched by halving the gap
    /// (a handful of runs); `set` puts a value into a scenario.
    fn number(&mut self, current: u64, min: u64, set: impl Fn(&mut Scenario, u64)) -> u64 {
        if current <= min {
            return current;
        }
        if self.accept(with(&self.best, |s| set(s, min))) {
            return min;
        }
        let (mut bad, mut good) = (min, current);
        while good - bad > (good / 8).max(1) {
            let mid = bad + (good - bad) / 2;
            if self.accept(with(&self.best, |s| set(s, mid))) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        good
    }
}

fn with(s: &Scenario, change: impl FnOnce(&mut Scenario)) -> Scenario {
    let mut out = s.clone();
    change(&mut out);
    out
}
