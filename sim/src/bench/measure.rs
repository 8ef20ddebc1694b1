//! One measured simulation, as a child process runs it (`stormlog bench-seed`): the stormlog
//! run of one seed of one variant of the scenario, its wall time and the process's peak
//! memory, then the bare-engine baseline sized from the run's traffic, and its wall time. One
//! process per simulation so that peak memory (VmHWM) belongs to that simulation alone.

use serde::{Deserialize, Serialize};

use super::baseline::{plan_for, run_baseline, BaselineOutcome};
use super::wall::timed;
use crate::history::{OpFn, OpKind};
use crate::run::run_seed;
use crate::scenario::Scenario;

/// What the scaling series varies: the number of brokers and a multiplier on every
/// producer's rate (so on the messages a run carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Variant {
    pub brokers: u32,
    pub rate_x: u32,
}

impl Variant {
    /// The scenario as this variant runs it; an error if its topics cannot be placed on its
    /// brokers.
    pub fn apply(&self, s: &Scenario) -> Result<Scenario, String> {
        assert!(self.rate_x >= 1, "variant {self:?}");
        if let Some(t) = s.topics.iter().find(|t| t.replication_factor > self.brokers) {
            return Err(format!("{} brokers cannot hold topic {} with replication_factor {}", self.brokers, t.name, t.replication_factor));
        }
        let mut out = s.clone();
        out.cluster.brokers = self.brokers;
        for p in &mut out.producers {
            p.rate_per_sec *= f64::from(self.rate_x);
        }
        Ok(out)
    }
}

/// One simulation's numbers. Events are trace events (one per line of the run's trace);
/// frames are Kafka frames (requests and responses) written over simulated TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub seed: u64,
    pub variant: Variant,
    pub sim_ms: u64,
    pub wall_ms: f64,
    pub events: u64,
    pub frames: u64,
    pub frame_bytes: u64,
    pub links: u64,
    /// Sends acknowledged to producers.
    pub acked_sends: u64,
    /// Anomaly kinds the seed showed that the scenario's `[expect]` does not allow (the bench
    /// reports them; `run` judges them).
    pub anomalies: Vec<String>,
    pub failure: Option<String>,
    /// The process's peak resident memory after the stormlog run (VmHWM), where the OS says.
    pub peak_rss_kb: Option<u64>,
    /// The bare-engine baseline of the same hosts and traffic (skipped where only seeds per
    /// minute are wanted).
    pub baseline: Option<BaselineOutcome>,
    pub baseline_wall_ms: Option<f64>,
    /// The bare engine with the same hosts and no traffic at all: the cost of ticking alone.
    pub idle_wall_ms: Option<f64>,
}

/// Which baselines a measured simulation also runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baselines {
    pub traffic: bool,
    pub idle: bool,
}

/// The process's peak resident set size in KiB (Linux `/proc/self/status` VmHWM).
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs one seed of `variant` of `s`, then the baselines asked for.
pub fn measure_seed(s: &Scenario, variant: Variant, seed: u64, baselines: Baselines) -> Result<Measurement, String> {
    let scenario = variant.apply(s)?;
    let (outcome, wall) = timed(|| run_seed(&scenario, seed));
    let o = outcome.map_err(|e| e.to_string())?;
    let peak = peak_rss_kb();
    let mut anomalies: Vec<String> = o.anomalies.iter().map(|a| a.kind.clone()).filter(|k| !s.expect.allow.contains(k)).collect();
    anomalies.sort();
    anomalies.dedup();
    let acked_sends = o.history.ops().iter().filter(|op| op.f == OpFn::Send && op.kind == OpKind::Ok).count() as u64;
    let mut plan = plan_for(&scenario, seed, o.sim_ms, &o.traffic);
    let (baseline, baseline_wall) = if baselines.traffic {
        let (b, wall) = timed(|| run_baseline(&plan));
        (Some(b?), Some(wall.as_secs_f64() * 1000.0))
    } else {
        (None, None)
    };
    plan.links.clear();
    let idle_wall_ms = if baselines.idle {
        let (b, wall) = timed(|| run_baseline(&plan));
        b?;
        Some(wall.as_secs_f64() * 1000.0)
    } else {
        None
    };
    Ok(Measurement {
        seed,
        variant,
        sim_ms: o.sim_ms,
        wall_ms: wall.as_secs_f64() * 1000.0,
        events: o.trace.len() as u64,
        frames: o.traffic.values().map(|t| t.frames()).sum(),
        frame_bytes: o.traffic.values().map(|t| t.bytes()).sum(),
        links: o.traffic.len() as u64,
        acked_sends,
        anomalies,
        failure: o.failure.clone(),
        peak_rss_kb: peak,
        baseline,
        baseline_wall_ms: baseline_wall,
        idle_wall_ms,
    })
}
