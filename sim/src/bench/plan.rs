//! What `stormlog bench` runs and in which order: the standard scenario's seeds one at a time
//! (per-simulation numbers), then more seeds `jobs` at a time (seeds per minute), then the
//! scaling series (messages x1, x2, x4, x8; brokers 3, 5, 7). Every simulation is a child
//! process (`stormlog bench-seed`), so each one's peak memory is its own.

use std::path::PathBuf;
use std::process::Command;

use clap::ValueEnum;

use super::measure::{Baselines, Measurement, Variant};
use super::wall::timed;

/// The simulation engines the bench knows about. madsim is a dimension of the report before it
/// is an engine of the harness: until it is built it is reported as such, never guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum BenchEngine {
    Turmoil,
    Madsim,
}

impl BenchEngine {
    pub fn name(self) -> &'static str {
        match self {
            BenchEngine::Turmoil => "turmoil",
            BenchEngine::Madsim => "madsim",
        }
    }

    /// Whether this build can run the engine.
    pub fn is_built(self) -> bool {
        self == BenchEngine::Turmoil
    }
}

/// How much the bench runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// The scenario file; None runs the built-in copy of `scenarios/bench_standard.toml`.
    pub scenario: Option<PathBuf>,
    pub engines: Vec<BenchEngine>,
    /// Seeds run one at a time for the per-simulation numbers (seeds 0..seeds).
    pub seeds: u64,
    /// Seeds run `jobs` at a time for seeds per minute (the seeds after those).
    pub throughput_seeds: u64,
    pub jobs: usize,
    /// Seeds per point of the scaling series (the first of the standard seeds).
    pub series_seeds: u64,
    pub rate_xs: Vec<u32>,
    pub brokers: Vec<u32>,
}

impl BenchOptions {
    /// The default bench: a few minutes on two cores.
    pub fn full() -> BenchOptions {
        BenchOptions {
            scenario: None,
            engines: vec![BenchEngine::Turmoil, BenchEngine::Madsim],
            seeds: 5,
            throughput_seeds: 6,
            jobs: 2,
            series_seeds: 3,
            rate_xs: vec![1, 2, 4, 8],
            brokers: vec![3, 5, 7],
        }
    }

    /// `--quick`: one seed per point, for a smoke check of the bench itself.
    pub fn quick() -> BenchOptions {
        BenchOptions { seeds: 1, throughput_seeds: 2, series_seeds: 1, ..BenchOptions::full() }
    }
}

/// What one engine's bench produced: the raw measurements, grouped by phase.
#[derive(Debug, Clone, Default)]
pub struct EngineRun {
    pub standard: Vec<Measurement>,
    pub throughput: Vec<Measurement>,
    pub throughput_wall_s: f64,
    pub series: Vec<Measurement>,
}

/// One child simulation: `stormlog bench-seed`, its one JSON line parsed.
fn run_child(scenario: Option<&PathBuf>, variant: Variant, seed: u64, baselines: Baselines) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the stormlog binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench-seed", "--seed", &seed.to_string(), "--brokers", &variant.brokers.to_string(), "--rate-x", &variant.rate_x.to_string()]);
    if let Some(p) = scenario {
        cmd.arg("--scenario").arg(p);
    }
    if !baselines.traffic {
        cmd.arg("--no-baseline");
    }
    if baselines.idle {
        cmd.arg("--idle-baseline");
    }
    let out = cmd.output().map_err(|e| format!("cannot start a bench child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match (out.status.success(), line) {
        (true, Some(l)) => serde_json::from_str(l).map_err(|e| format!("bench child for seed {seed} {variant:?} printed bad JSON ({e}): {l}")),
        _ => Err(format!("bench child for seed {seed} {variant:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// Runs `tasks` as child processes, `jobs` at a time; results in task order.
fn run_children(scenario: Option<&PathBuf>, tasks: &[(Variant, u64)], jobs: usize, baselines: Baselines, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>, String> {
    let jobs = jobs.max(1);
    let mut results: Vec<(usize, Result<Measurement, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                scope.spawn(move || {
                    tasks.iter().enumerate().skip(j).step_by(jobs).map(|(i, (v, seed))| (i, run_child(scenario, *v, *seed, baselines))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a bench runner thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(results.len());
    for (_, r) in results {
        let m = r?;
        let bare = m.baseline_wall_ms.map(|b| format!(" (bare engine {b:.0} ms)")).unwrap_or_default();
        progress(&format!("seed {} brokers {} messages x{}: {:.0} ms wall{bare}", m.seed, m.variant.brokers, m.variant.rate_x, m.wall_ms));
        out.push(m);
    }
    Ok(out)
}

/// The scaling series' variants other than the standard one, each over `series_seeds` seeds.
pub fn series_tasks(opts: &BenchOptions, standard: Variant) -> Vec<(Variant, u64)> {
    let mut variants: Vec<Variant> = opts.rate_xs.iter().map(|&x| Variant { brokers: standard.brokers, rate_x: x }).collect();
    variants.extend(opts.brokers.iter().map(|&b| Variant { brokers: b, rate_x: standard.rate_x }));
    variants.sort();
    variants.dedup();
    variants.retain(|v| *v != standard);
    variants.iter().flat_map(|v| (0..opts.series_seeds).map(move |s| (*v, s))).collect()
}

/// Runs the turmoil bench: standard, throughput, series.
pub fn run_turmoil(opts: &BenchOptions, standard: Variant, progress: &dyn Fn(&str)) -> Result<EngineRun, String> {
    let scenario = opts.scenario.as_ref();
    let sequential: Vec<(Variant, u64)> = (0..opts.seeds).map(|s| (standard, s)).collect();
    progress(&format!("turmoil: {} standard seed(s), one at a time", sequential.len()));
    let standard_runs = run_children(scenario, &sequential, 1, Baselines { traffic: true, idle: true }, progress)?;
    let parallel: Vec<(Variant, u64)> = (opts.seeds..opts.seeds + opts.throughput_seeds).map(|s| (standard, s)).collect();
    progress(&format!("turmoil: {} more seed(s), {} at a time", parallel.len(), opts.jobs));
    let (throughput, wall) = timed(|| run_children(scenario, &parallel, opts.jobs, Baselines { traffic: false, idle: false }, progress));
    let series = series_tasks(opts, standard);
    progress(&format!("turmoil: scaling series, {} simulation(s)", series.len()));
    let series_runs = run_children(scenario, &series, 1, Baselines { traffic: true, idle: false }, progress)?;
    Ok(EngineRun { standard: standard_runs, throughput: throughput?, throughput_wall_s: wall.as_secs_f64(), series: series_runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_runs_each_other_variant_over_its_seeds_once() {
        let opts = BenchOptions { series_seeds: 2, ..BenchOptions::full() };
        let standard = Variant { brokers: 3, rate_x: 1 };
        let tasks = series_tasks(&opts, standard);
        let variants: Vec<Variant> = tasks.iter().map(|t| t.0).collect();
        assert_eq!(tasks.len(), 5 * 2, "x2, x4, x8 and brokers 5, 7: {tasks:?}");
        assert!(!variants.contains(&standard), "the standard runs reuse the standard seeds");
        assert!(variants.contains(&Variant { brokers: 7, rate_x: 1 }));
        assert!(variants.contains(&Variant { brokers: 3, rate_x: 8 }));
    }
}
