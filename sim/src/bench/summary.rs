//! The bench's numbers, from its raw measurements: per engine the standard run's rates, seeds
//! per minute, peak memory, the ratio to the bare engine, and the scaling series with their
//! fitted exponents. Serializes as the `--format json` output.

use serde::Serialize;

use super::fit::power_law_exponent;
use super::measure::{Measurement, Variant};
use super::plan::{BenchEngine, BenchOptions, EngineRun};
use crate::scenario::Scenario;

/// What every number means, carried in the JSON so that it explains itself.
pub const DEFINITIONS: [(&str, &str); 8] = [
    ("events", "trace events: lines of the run's trace (SeedOutcome.trace), one per thing a node or the harness did"),
    ("frames", "Kafka frames (requests and responses) written over simulated TCP, counted per link by the engine adapter"),
    ("messages", "in the scaling series, the records the producers are asked to send: every producer's rate_per_sec times x1, x2, x4, x8"),
    ("idle_bare_engine", "the bare engine with the same hosts, tick and simulated time and no traffic at all: the cost of ticking alone"),
    ("sim_s_per_wall_s", "simulated seconds per wall second, one simulation at a time (total simulated / total wall)"),
    ("seeds_per_min", "whole seeds (run, checkers included) finished per wall minute with `jobs` simulations at a time"),
    ("peak_rss_mb", "peak resident memory (VmHWM) of the child process that ran one simulation, the largest over the seeds"),
    ("ratio_to_bare_engine", "stormlog's wall time over the bare-engine baseline's: the same turmoil hosts, tick, latency and simulated time, exchanging the same number of frames of the same sizes on the same links, with no broker logic"),
];

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub brokers: u32,
    pub controllers: u32,
    pub partitions: u32,
    pub replication_factor: u32,
    pub producers: u32,
    pub producer_rate_per_sec: f64,
    pub consumers: u32,
    pub duration_ms: u64,
    pub heal_ms: u64,
}

impl ScenarioInfo {
    pub fn of(s: &Scenario) -> ScenarioInfo {
        ScenarioInfo {
            name: s.name.clone(),
            brokers: s.cluster.brokers,
            controllers: s.cluster.controllers,
            partitions: s.topics.iter().map(|t| t.partitions).sum(),
            replication_factor: s.topics.iter().map(|t| t.replication_factor).max().unwrap_or(0),
            producers: s.producers.iter().map(|p| p.count).sum(),
            producer_rate_per_sec: s.producers.first().map_or(0.0, |p| p.rate_per_sec),
            consumers: s.consumers.iter().map(|c| c.count).sum(),
            duration_ms: s.duration_ms,
            heal_ms: s.heal_ms,
        }
    }
}

/// Numbers over a set of simulations of one variant, run one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub variant: Variant,
    pub seeds: Vec<u64>,
    pub wall_ms_per_seed: f64,
    pub sim_s_per_wall_s: f64,
    pub events_per_seed: f64,
    pub events_per_wall_s: f64,
    pub frames_per_seed: f64,
    pub frames_per_wall_s: f64,
    pub acked_sends_per_seed: f64,
    pub peak_rss_mb: Option<f64>,
    pub bare_engine_wall_ms_per_seed: Option<f64>,
    pub bare_engine_sim_s_per_wall_s: Option<f64>,
    pub bare_engine_frames_per_seed: Option<f64>,
    pub ratio_to_bare_engine: Option<f64>,
    pub idle_bare_engine_wall_ms_per_seed: Option<f64>,
    /// Seeds that showed anomalies or a system failure, with what they showed.
    pub seeds_with_anomalies: Vec<(u64, Vec<String>)>,
}

impl Summary {
    pub fn of(runs: &[Measurement]) -> Option<Summary> {
        let first = runs.first()?;
        let n = runs.len() as f64;
        let sum = |f: &dyn Fn(&Measurement) -> f64| runs.iter().map(f).sum::<f64>();
        let wall_s = sum(&|m| m.wall_ms) / 1000.0;
        let sim_s = sum(&|m| m.sim_ms as f64) / 1000.0;
        let per_s = |total: f64, secs: f64| if secs > 0.0 { total / secs } else { 0.0 };
        // Baseline numbers only where every run has one.
        let all = |f: &dyn Fn(&Measurement) -> Option<f64>| runs.iter().map(f).collect::<Option<Vec<f64>>>().map(|v| v.iter().sum::<f64>());
        let bare_wall_s = all(&|m| m.baseline_wall_ms).map(|ms| ms / 1000.0);
        let bare_sim_s = all(&|m| m.baseline.map(|b| b.sim_ms as f64)).map(|ms| ms / 1000.0);
        Some(Summary {
            variant: first.variant,
            seeds: runs.iter().map(|m| m.seed).collect(),
            wall_ms_per_seed: wall_s * 1000.0 / n,
            sim_s_per_wall_s: per_s(sim_s, wall_s),
            events_per_seed: sum(&|m| m.events as f64) / n,
            events_per_wall_s: per_s(sum(&|m| m.events as f64), wall_s),
            frames_per_seed: sum(&|m| m.frames as f64) / n,
            frames_per_wall_s: per_s(sum(&|m| m.frames as f64), wall_s),
            acked_sends_per_seed: sum(&|m| m.acked_sends as f64) / n,
            peak_rss_mb: runs.iter().filter_map(|m| m.peak_rss_kb).max().map(|kb| kb as f64 / 1024.0),
            bare_engine_wall_ms_per_seed: bare_wall_s.map(|s| s * 1000.0 / n),
            bare_engine_sim_s_per_wall_s: bare_sim_s.zip(bare_wall_s).map(|(sim, wall)| per_s(sim, wall)),
            bare_engine_frames_per_seed: all(&|m| m.baseline.map(|b| b.frames as f64)).map(|f| f / n),
            ratio_to_bare_engine: bare_wall_s.map(|b| per_s(wall_s, b)),
            idle_bare_engine_wall_ms_per_seed: all(&|m| m.idle_wall_ms).map(|ms| ms / n),
            seeds_with_anomalies: runs
                .iter()
                .filter(|m| !m.anomalies.is_empty() || m.failure.is_some())
                .map(|m| (m.seed, m.anomalies.iter().cloned().chain(m.failure.iter().map(|f| format!("failure: {f}"))).collect()))
                .collect(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub jobs: usize,
    pub seeds: u64,
    pub wall_s: f64,
    pub seeds_per_min: f64,
    /// Seeds per minute one at a time, from the standard seeds, for comparison.
    pub seeds_per_min_one_job: f64,
}

/// One scaling series: wall time against what it varies, with the fitted exponent.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// "messages" (x is the producer-rate multiplier) or "brokers" (x is the broker count).
    pub dimension: String,
    pub points: Vec<(u32, Summary)>,
    /// Exponent k of wall ~ x^k, least squares over every simulation's (x, wall) on log-log.
    pub exponent: Option<f64>,
    /// The same against the frames the runs really carried, not the nominal x.
    pub exponent_vs_frames: Option<f64>,
    pub bare_engine_exponent: Option<f64>,
}

impl Series {
    fn of(dimension: &str, runs: &[&Measurement], x_of: impl Fn(&Variant) -> u32) -> Series {
        let mut xs: Vec<u32> = runs.iter().map(|m| x_of(&m.variant)).collect();
        xs.sort();
        xs.dedup();
        let points = xs
            .iter()
            .filter_map(|x| {
                let at: Vec<Measurement> = runs.iter().filter(|m| x_of(&m.variant) == *x).map(|m| (*m).clone()).collect();
                Summary::of(&at).map(|s| (*x, s))
            })
            .collect();
        let fit = |f: &dyn Fn(&Measurement) -> Option<(f64, f64)>| power_law_exponent(&runs.iter().map(|m| f(m)).collect::<Option<Vec<_>>>()?);
        Series {
            dimension: dimension.to_string(),
            points,
            exponent: fit(&|m| Some((f64::from(x_of(&m.variant)), m.wall_ms))),
            exponent_vs_frames: fit(&|m| Some((m.frames as f64, m.wall_ms))),
            bare_engine_exponent: fit(&|m| Some((f64::from(x_of(&m.variant)), m.baseline_wall_ms?))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    pub engine: String,
    /// "measured" or "not built yet".
    pub status: String,
    pub standard: Option<Summary>,
    pub throughput: Option<Throughput>,
    pub scaling: Vec<Series>,
}

impl EngineReport {
    pub fn not_built(engine: BenchEngine) -> EngineReport {
        EngineReport { engine: engine.name().to_string(), status: "not built yet".to_string(), standard: None, throughput: None, scaling: Vec::new() }
    }

    pub fn measured(engine: BenchEngine, opts: &BenchOptions, standard: Variant, run: &EngineRun) -> EngineReport {
        let summary = Summary::of(&run.standard);
        let throughput = Throughput {
            jobs: opts.jobs,
            seeds: run.throughput.len() as u64,
            wall_s: run.throughput_wall_s,
            seeds_per_min: if run.throughput_wall_s > 0.0 { run.throughput.len() as f64 * 60.0 / run.throughput_wall_s } else { 0.0 },
            seeds_per_min_one_job: summary.as_ref().map_or(0.0, |s| if s.wall_ms_per_seed > 0.0 { 60_000.0 / s.wall_ms_per_seed } else { 0.0 }),
        };
        // The series reuse the standard seeds that every other point ran too.
        let shared: Vec<&Measurement> = run.standard.iter().filter(|m| m.seed < opts.series_seeds).chain(run.series.iter()).collect();
        let by_rate: Vec<&Measurement> = shared.iter().copied().filter(|m| m.variant.brokers == standard.brokers && opts.rate_xs.contains(&m.variant.rate_x)).collect();
        let by_brokers: Vec<&Measurement> = shared.iter().copied().filter(|m| m.variant.rate_x == standard.rate_x && opts.brokers.contains(&m.variant.brokers)).collect();
        let mut scaling = Vec::new();
        if opts.rate_xs.len() > 1 {
            scaling.push(Series::of("messages", &by_rate, |v| v.rate_x));
        }
        if opts.brokers.len() > 1 {
            scaling.push(Series::of("brokers", &by_brokers, |v| v.brokers));
        }
        EngineReport { engine: engine.name().to_string(), status: "measured".to_string(), standard: summary, throughput: Some(throughput), scaling }
    }
}

/// The whole bench, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub command: String,
    pub scenario: ScenarioInfo,
    pub definitions: std::collections::BTreeMap<String, String>,
    pub engines: Vec<EngineReport>,
}

impl BenchReport {
    pub fn new(command: String, s: &Scenario, engines: Vec<EngineReport>) -> BenchReport {
        let definitions = DEFINITIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BenchReport { command, scenario: ScenarioInfo::of(s), definitions, engines }
    }
}
