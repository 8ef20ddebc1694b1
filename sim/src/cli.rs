//! The `stormlog` command line (SCENARIOS.md, "CLI"): run, repro, meta, list, bench, serve. Seed first,
//! repro last: every run names its scenario and seed before anything else, and every failure
//! ends with the command that reproduces it.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::report;
use crate::run::{judge, run_seed, SeedOutcome, Verdict};
use crate::scenario::{Scenario, ScenarioError};
use crate::trace::first_difference;

pub const EXIT_MET: i32 = 0;
pub const EXIT_BAD_INPUT: i32 = 1;
pub const EXIT_UNMET: i32 = 2;
pub const EXIT_PANIC: i32 = 101;

#[derive(Parser, Debug)]
#[command(name = "stormlog", version, about = "Kafka's guarantees, checked by seed in a deterministic simulation")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    /// One JUnit test case per scenario, printed when every scenario has run.
    Junit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Turmoil,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every scenario over its seeds and judge it against its [expect].
    Run {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        seeds: Option<u64>,
        #[arg(long, env = "STORMLOG_SEED")]
        seed: Option<u64>,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        #[arg(long, value_enum, default_value_t = Engine::Turmoil)]
        engine: Engine,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Run only shard K of N (1-based): the seeds whose position modulo N is K-1. Shards'
        /// JSON lines merge by concatenation.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Swarm testing: each seed also draws which fault kinds are on and how often.
        #[arg(long)]
        swarm: bool,
    },
    /// Replay one seed in full detail and write its report.
    Repro {
        scenario: PathBuf,
        #[arg(long, env = "STORMLOG_SEED")]
        seed: u64,
        /// Replay the seed as a swarm seed (its fault mix drawn from the seed).
        #[arg(long)]
        swarm: bool,
        /// Also write the trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
    },
    /// Run each seed twice and compare the traces.
    Meta {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        #[arg(long)]
        swarm: bool,
    },
    /// Write a smaller scenario, with an explicit fault schedule, whose seed still shows the
    /// same anomaly kind.
    Shrink {
        scenario: PathBuf,
        #[arg(long, env = "STORMLOG_SEED")]
        seed: u64,
        /// Where to write the shrunk scenario (default: reports/<scenario>/<seed>/shrunk.toml).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Shrink the seed as a swarm seed (its fault mix drawn from the seed).
        #[arg(long)]
        swarm: bool,
        /// At most this many simulation runs.
        #[arg(long, default_value_t = 300)]
        runs_max: u32,
    },
    /// List scenarios with their descriptions and expectations.
    List { folder: Option<PathBuf> },
    /// Measure how fast seeds run, per engine: simulated seconds and events per wall second,
    /// seeds per minute, peak memory, the ratio to a bare-engine baseline, and scaling series.
    Bench {
        /// The scenario to measure (default: the built-in scenarios/bench_standard.toml).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Engines to report (repeatable); engines this build lacks are reported as such.
        #[arg(long, value_enum)]
        engine: Vec<crate::bench::BenchEngine>,
        /// Seeds run one at a time for the per-simulation numbers (default 5; --quick 1).
        #[arg(long)]
        seeds: Option<u64>,
        /// Simulations at a time for seeds per minute.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Seeds run for seeds per minute (default 6; --quick 2).
        #[arg(long)]
        throughput_seeds: Option<u64>,
        /// Seeds per point of the scaling series (default 3; --quick 1; at most --seeds).
        #[arg(long)]
        series_seeds: Option<u64>,
        /// One seed per point: a quick look rather than numbers to quote.
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// A real cluster on localhost (real TCP, real files) from the same node code; prints the
    /// bootstrap address, then `ready` once every topic has leaders. Ctrl-C stops it; started
    /// again on the same data directory, it recovers from disk.
    Serve {
        #[arg(long, default_value_t = 3)]
        brokers: u32,
        #[arg(long, default_value_t = 1)]
        controllers: u32,
        /// Broker b listens on port + b, controller c on port + 100 + c.
        #[arg(long, default_value_t = 9092)]
        port: u16,
        #[arg(long, default_value = "stormlog-data")]
        data_dir: PathBuf,
        /// A topic to create at start, `name:partitions:replication_factor` (repeatable).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// A broker or controller setting by Kafka's key, `key=value` (repeatable).
        #[arg(long = "config")]
        config: Vec<String>,
        /// Run only this node of the cluster (`broker-1`, `controller-0`), e.g. one process
        /// per node; every process gets the same cluster flags.
        #[arg(long)]
        node: Option<String>,
        /// Print every node's trace lines on stderr.
        #[arg(long)]
        trace: bool,
    },
    /// One measured simulation for `bench` (a child process per simulation); prints one JSON line.
    #[command(hide = true)]
    BenchSeed {
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        brokers: Option<u32>,
        #[arg(long, default_value_t = 1)]
        rate_x: u32,
        /// Skip the bare-engine baseline of the same traffic.
        #[arg(long)]
        no_baseline: bool,
        /// Also run the bare engine with the same hosts and no traffic.
        #[arg(long)]
        idle_baseline: bool,
    },
}

/// What `stormlog bench`'s flags ask for.
pub fn bench_options(quick: bool, scenario: Option<PathBuf>, engines: Vec<crate::bench::BenchEngine>, counts: (Option<u64>, Option<u64>, Option<u64>), jobs: usize) -> crate::bench::BenchOptions {
    let base = if quick { crate::bench::BenchOptions::quick() } else { crate::bench::BenchOptions::full() };
    let (seeds, throughput_seeds, series_seeds) = counts;
    let seeds = seeds.unwrap_or(base.seeds).max(1);
    let mut engines = if engines.is_empty() { base.engines.clone() } else { engines };
    engines.sort();
    engines.dedup();
    crate::bench::BenchOptions {
        scenario,
        engines,
        seeds,
        throughput_seeds: throughput_seeds.unwrap_or(base.throughput_seeds).max(1),
        jobs: jobs.max(1),
        series_seeds: series_seeds.unwrap_or(base.series_seeds).clamp(1, seeds),
        ..base
    }
}

/// Runs the command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Run { paths, seeds, seed, first_seed, jobs, engine: _, format, report_dir, shard, swarm } => {
            let seeds = SeedChoice { count: seeds, single: seed, first: first_seed, shard };
            cmd_run(&paths, seeds, RunOptions { jobs: jobs.max(1), format, swarm }, &report_dir)
        }
        Command::Repro { scenario, seed, swarm, trace, report_dir } => cmd_repro(&scenario, seed, swarm, trace.as_deref(), &report_dir),
        Command::Meta { scenarios, seeds, first_seed, swarm } => cmd_meta(&scenarios, first_seed, seeds, swarm),
        Command::Shrink { scenario, seed, output, swarm, runs_max } => cmd_shrink(&scenario, seed, output, swarm, runs_max),
        Command::List { folder } => cmd_list(folder.as_deref().unwrap_or(Path::new("scenarios"))),
        Command::Bench { scenario, engine, seeds, jobs, throughput_seeds, series_seeds, quick, format } => {
            let opts = bench_options(quick, scenario, engine, (seeds, throughput_seeds, series_seeds), jobs);
            Ok(cmd_bench(&opts, format))
        }
        Command::Serve { brokers, controllers, port, data_dir, topics, config, node, trace } => {
            crate::serve::cmd_serve(crate::serve::ServeOptions { brokers, controllers, port, data_dir, topics, config, node, trace })
        }
        Command::BenchSeed { scenario, seed, brokers, rate_x, no_baseline, idle_baseline } => {
            let baselines = crate::bench::measure::Baselines { traffic: !no_baseline, idle: idle_baseline };
            cmd_bench_seed(scenario.as_deref(), seed, crate::bench::Variant { brokers: brokers.unwrap_or(0), rate_x }, baselines)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}

/// The scenario files named: files as given, folders' `*.toml` in name order.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| ScenarioError::new(&p.display().to_string(), "", format!("a readable folder ({e})")))?;
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| f.extension().is_some_and(|x| x == "toml")).collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    let scenarios = scenario_files(paths)?.iter().map(|f| Scenario::load(f)).collect::<Result<Vec<_>, _>>()?;
    for s in &scenarios {
        crate::support::check_supported(s)?;
    }
    Ok(scenarios)
}

#[derive(Clone, Copy)]
struct SeedChoice {
    count: Option<u64>,
    single: Option<u64>,
    first: u64,
    shard: Option<(u64, u64)>,
}

impl SeedChoice {
    fn for_scenario(&self, s: &Scenario) -> Vec<u64> {
        let all: Vec<u64> = match self.single {
            Some(seed) => vec![seed],
            None => (self.first..self.first + self.count.unwrap_or(s.seeds)).collect(),
        };
        match self.shard {
            Some((k, n)) => all.into_iter().enumerate().filter(|(i, _)| *i as u64 % n == k - 1).map(|(_, s)| s).collect(),
            None => all,
        }
    }
}

/// `K/N` with 1 <= K <= N.
fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let err = || format!("expected K/N with 1 <= K <= N, found {text:?}");
    let (k, n) = text.split_once('/').ok_or_else(err)?;
    let (k, n): (u64, u64) = (k.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
    if k == 0 || n == 0 || k > n {
        return Err(err());
    }
    Ok((k, n))
}

#[derive(Clone, Copy)]
struct RunOptions {
    jobs: usize,
    format: Format,
    swarm: bool,
}

/// One seed, as the swarm draws it when swarming; the draw's description with it.
fn run_one(s: &Scenario, seed: u64, swarm: bool) -> Result<(SeedOutcome, Option<String>), ScenarioError> {
    if !swarm {
        return run_seed(s, seed).map(|o| (o, None));
    }
    let (drawn, description) = crate::swarm::draw(s, seed);
    run_seed(&drawn, seed).map(|o| (o, Some(description)))
}

type SeedResult = (SeedOutcome, Option<String>, u128);

/// A progress bar for a sweep, on stderr: only for people (human format, a terminal); JSON
/// output stays silent.
fn progress(format: Format, seeds: usize) -> indicatif::ProgressBar {
    if format != Format::Human || seeds < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(seeds as u64);
    let style = indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} seeds  {elapsed}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Runs seeds on `jobs` threads, one simulation per thread; results in seed order.
fn run_seeds(s: &Scenario, seeds: &[u64], jobs: usize, swarm: bool, bar: &indicatif::ProgressBar) -> Result<Vec<SeedResult>, ScenarioError> {
    let chunks: Vec<Vec<u64>> = (0..jobs).map(|j| seeds.iter().copied().skip(j).step_by(jobs).collect()).collect();
    let mut all = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|seed| {
                            let r = timed(|| run_one(s, seed, swarm));
                            bar.inc(1);
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a seed runner thread panicked outside the simulation")).collect::<Vec<_>>()
    });
    all.sort_by_key(|(o, _)| o.as_ref().map_or(0, |(o, _)| o.seed));
    all.into_iter().map(|(o, ms)| o.map(|(o, d)| (o, d, ms))).collect()
}

/// Wall time is metadata about the run, never an input to it.
#[allow(clippy::disallowed_methods)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, u128) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed().as_millis())
}

fn cmd_run(paths: &[PathBuf], seeds: SeedChoice, opts: RunOptions, report_dir: &Path) -> Result<i32, ScenarioError> {
    let RunOptions { jobs, format, swarm } = opts;
    let scenarios = load_all(paths)?;
    let mut code = EXIT_MET;
    let mut cases = Vec::new();
    let mut written: Vec<String> = Vec::new();
    let provenance = report::Provenance::detect();
    for s in &scenarios {
        let seed_list = seeds.for_scenario(s);
        if format == Format::Human {
            println!("scenario {} ({}), seeds {}, engine turmoil", s.name, s.path, describe_seeds(&seed_list));
        }
        let bar = progress(format, seed_list.len());
        let results = run_seeds(s, &seed_list, jobs, swarm, &bar)?;
        bar.finish_and_clear();
        let mut verdict = judge(s, &results.iter().map(|(o, _, _)| (o.seed, kinds(o), o.failure.is_some())).collect::<Vec<_>>());
        crate::run::require_marks(s, &mut verdict, results.iter().map(|(o, _, _)| o.marks.as_slice()));
        for (o, drawn, wall_ms) in &results {
            match format {
                Format::Json => println!("{}", seed_json(s, o, drawn.as_deref(), *wall_ms)),
                Format::Human => println!("  {}{}", seed_line(o), drawn.as_ref().map(|d| format!("  [{d}]")).unwrap_or_default()),
                Format::Junit => {}
            }
        }
        let wall_ms: u128 = results.iter().map(|(_, _, ms)| *ms).sum();
        let outcomes: Vec<(SeedOutcome, u128)> = results.into_iter().map(|(o, _, ms)| (o, ms)).collect();
        let reports = write_reports(s, &outcomes, &verdict, report_dir, &provenance, swarm);
        written.extend(reports.iter().map(|(_, at)| at.clone()));
        match format {
            Format::Json => println!("{}", summary_json(s, &verdict, &reports)),
            Format::Human => print_verdict(s, &verdict, &reports, swarm),
            Format::Junit => cases.push(crate::junit::Case::new(s, &verdict, &reports, swarm, wall_ms)),
        }
        code = code.max(if !verdict.failures.is_empty() { EXIT_PANIC } else if verdict.met { EXIT_MET } else { EXIT_UNMET });
    }
    match format {
        Format::Junit => print!("{}", crate::junit::document(&cases)),
        Format::Human => print_reports_summary(&written, report_dir),
        Format::Json => {}
    }
    Ok(code)
}

/// Where the run's reports went, last, so that a person finds them after a long sweep.
fn print_reports_summary(written: &[String], dir: &Path) {
    if written.is_empty() {
        println!("reports: none written (no seed went against its expectation)");
        return;
    }
    println!("reports: {} written under {}/ (report.md, report.html, history.jsonl, trace.txt each):", written.len(), dir.display());
    for at in written {
        println!("  {at}");
    }
}

fn describe_seeds(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if a != b => format!("{a}..={b}"),
        (Some(a), _) => a.to_string(),
        _ => "none".into(),
    }
}

fn kinds(o: &SeedOutcome) -> Vec<String> {
    let mut k: Vec<String> = o.anomalies.iter().map(|a| a.kind.clone()).collect();
    k.dedup();
    k
}

fn seed_line(o: &SeedOutcome) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for a in &o.anomalies {
        *counts.entry(a.kind.as_str()).or_default() += 1;
    }
    let found = if counts.is_empty() { "no anomaly".to_string() } else { counts.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ") };
    let failed = o.failure.as_ref().map(|f| format!("  SYSTEM FAILURE: {f}")).unwrap_or_default();
    format!("seed {}: {found}  (trace {}, {} events, sim {} ms){failed}", o.seed, o.trace.hash(), o.trace.len(), o.sim_ms)
}

/// Reports for seeds that went against the expectation, and for every system failure.
fn write_reports(s: &Scenario, outcomes: &[(SeedOutcome, u128)], v: &Verdict, dir: &Path, provenance: &report::Provenance, swarm: bool) -> Vec<(u64, String)> {
    let unexpected = |seed: u64| v.failures.contains(&seed) || (s.expect.outcome == crate::scenario::Outcome::Clean && v.notable_seeds.contains(&seed));
    outcomes
        .iter()
        .filter(|(o, _)| unexpected(o.seed))
        .map(|(o, _)| {
            let at = write_report(dir, s, o, swarm, provenance).map(|p| p.display().to_string()).unwrap_or_else(|e| format!("(report not written: {e})"));
            (o.seed, at)
        })
        .collect()
}

/// A seed's report, written from the scenario as the seed ran it (a swarm seed's own draw).
fn write_report(dir: &Path, s: &Scenario, o: &SeedOutcome, swarm: bool, provenance: &report::Provenance) -> std::io::Result<PathBuf> {
    if swarm {
        return report::write(dir, &crate::swarm::draw(s, o.seed).0, o, swarm, provenance);
    }
    report::write(dir, s, o, swarm, provenance)
}

fn print_verdict(s: &Scenario, v: &Verdict, reports: &[(u64, String)], swarm: bool) {
    let expect = s.expect.outcome.name();
    let status = if v.met { "MET" } else { "NOT MET" };
    println!("{}: expect {expect}: {} seeds, {} with anomalies: {} — {status}", s.name, v.seeds, v.seeds_with_anomalies, v.reason);
    for (seed, at) in reports {
        println!("  report for seed {seed}: {at}");
        println!("  repro: {}", report::repro_command(&s.path, *seed, swarm));
    }
    if !v.met && reports.is_empty() {
        if let Some(seed) = v.notable_seeds.first().or(v.failures.first()) {
            println!("  repro: {}", report::repro_command(&s.path, *seed, swarm));
        }
    }
}

fn seed_json(s: &Scenario, o: &SeedOutcome, swarm: Option<&str>, wall_ms: u128) -> String {
    serde_json::json!({
        "scenario": s.name, "seed": o.seed, "engine": "turmoil", "anomalies": o.anomalies,
        "trace_hash": o.trace.hash(), "sim_ms": o.sim_ms, "events": o.trace.len(), "wall_ms": wall_ms,
        "failure": o.failure, "swarm": swarm, "marks": o.marks,
    })
    .to_string()
}

fn summary_json(s: &Scenario, v: &Verdict, reports: &[(u64, String)]) -> String {
    let reports: Vec<&String> = reports.iter().map(|(_, at)| at).collect();
    serde_json::json!({
        "scenario": s.name, "summary": true, "expect": s.expect.outcome.name(), "met": v.met,
        "seeds": v.seeds, "seeds_with_anomalies": v.seeds_with_anomalies, "anomaly_counts": v.anomaly_counts,
        "reports": reports,
    })
    .to_string()
}

fn cmd_repro(path: &Path, seed: u64, swarm: bool, trace_out: Option<&Path>, report_dir: &Path) -> Result<i32, ScenarioError> {
    let s = &load_all(&[path.to_path_buf()])?[0];
    println!("scenario {} ({}), seed {seed}, engine turmoil", s.name, s.path);
    let (o, wall_ms) = timed(|| run_one(s, seed, swarm));
    let (o, drawn) = o?;
    if let Some(d) = drawn {
        println!("{d}");
    }
    for a in &o.anomalies {
        println!("{} at {} ms, {}/{} offsets {:?} values {:?} nodes [{}]", a.kind, a.time_ms, a.topic, a.partition, a.offsets, a.values, a.nodes.join(", "));
        println!("    {}", a.explanation);
    }
    if o.anomalies.is_empty() {
        println!("no anomaly");
    }
    if let Some(f) = &o.failure {
        println!("SYSTEM FAILURE: {f}");
    }
    println!("trace hash {} ({} events, {} messages, sim {} ms, wall {wall_ms} ms)", o.trace.hash(), o.trace.len(), o.wire.sent_count(), o.sim_ms);
    if let Some(t) = trace_out {
        std::fs::write(t, o.trace.to_text()).map_err(|e| ScenarioError::new(&t.display().to_string(), "", format!("a writable file ({e})")))?;
    }
    match write_report(report_dir, s, &o, swarm, &report::Provenance::detect()) {
        Ok(p) => println!("report: {}", p.display()),
        Err(e) => println!("report not written: {e}"),
    }
    println!("repro: {}", report::repro_command(&s.path, seed, swarm));
    let mut v = judge(s, &[(o.seed, kinds(&o), o.failure.is_some())]);
    crate::run::require_marks(s, &mut v, std::iter::once(o.marks.as_slice()));
    Ok(if o.failure.is_some() { EXIT_PANIC } else if v.met { EXIT_MET } else { EXIT_UNMET })
}

fn cmd_meta(paths: &[PathBuf], first: u64, count: u64, swarm: bool) -> Result<i32, ScenarioError> {
    let mut code = EXIT_MET;
    for s in &load_all(paths)? {
        println!("scenario {} ({}), seeds {first}..{}, each run twice", s.name, s.path, first + count);
        for seed in first..first + count {
            let (a, _) = run_one(s, seed, swarm)?;
            let (b, _) = run_one(s, seed, swarm)?;
            match first_difference(&a.trace, &b.trace) {
                None => println!("  seed {seed}: identical (trace {}, {} events)", a.trace.hash(), a.trace.len()),
                Some((line, x, y)) => {
                    code = EXIT_UNMET;
                    println!("  seed {seed}: DIVERGED at event {line}\n    first:  {}\n    second: {}", x.unwrap_or("(end)"), y.unwrap_or("(end)"));
                    println!("  repro: {}", report::repro_command(&s.path, seed, swarm));
                }
            }
        }
    }
    Ok(code)
}

fn cmd_shrink(path: &Path, seed: u64, output: Option<PathBuf>, swarm: bool, runs_max: u32) -> Result<i32, ScenarioError> {
    let loaded = &load_all(&[path.to_path_buf()])?[0];
    let s = if swarm { crate::swarm::draw(loaded, seed).0 } else { loaded.clone() };
    println!("scenario {} ({}), seed {seed}, engine turmoil: shrinking (at most {runs_max} runs)", s.name, s.path);
    let shrunk = match crate::shrink::shrink(&s, seed, runs_max, &mut |step| println!("  {step}")) {
        Ok(x) => x,
        Err(why) => {
            println!("cannot shrink: {why}");
            return Ok(EXIT_UNMET);
        }
    };
    let out = output.unwrap_or_else(|| PathBuf::from("reports").join(&s.name).join(seed.to_string()).join("shrunk.toml"));
    let bad_path = |e: std::io::Error| ScenarioError::new(&out.display().to_string(), "", format!("a writable file ({e})"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(bad_path)?;
    }
    let header = format!("# Written by `stormlog shrink {} --seed {seed}{}`: {} in {} runs.
", s.path, if swarm { " --swarm" } else { "" }, shrunk.before.compare(&shrunk.after), shrunk.runs);
    std::fs::write(&out, header + &shrunk.scenario.to_toml()).map_err(bad_path)?;
    let exhausted = if shrunk.exhausted { " (run budget used up: --runs-max allows more)" } else { "" };
    println!("still shows {} after {} runs{exhausted}", shrunk.kind, shrunk.runs);
    println!("smaller: {}", shrunk.before.compare(&shrunk.after));
    println!("wrote {}", out.display());
    println!("repro: {}", report::repro_command(&out.display().to_string(), seed, false));
    Ok(EXIT_MET)
}

fn cmd_list(folder: &Path) -> Result<i32, ScenarioError> {
    for f in scenario_files(&[folder.to_path_buf()])? {
        let s = Scenario::load(&f)?;
        let expect = match s.expect.outcome {
            crate::scenario::Outcome::Clean => "clean".to_string(),
            crate::scenario::Outcome::Violation => format!("violation {:?}", s.expect.anomalies),
        };
        println!("{:<40} {:<32} {}", s.name, expect, s.description);
    }
    Ok(EXIT_MET)
}

/// The command line that reproduces a bench, as its output quotes it.
fn bench_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("stormlog {}", args.join(" "))
}

fn cmd_bench(opts: &crate::bench::BenchOptions, format: Format) -> i32 {
    if format == Format::Junit {
        eprintln!("error: --format junit: bench judges nothing, so it has no test cases; use --format human or json");
        return EXIT_BAD_INPUT;
    }
    let progress = |line: &str| {
        if format == Format::Human {
            eprintln!("  {line}");
        }
    };
    match crate::bench::run(opts, bench_command(), &progress) {
        Ok(report) => {
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
                Format::Human | Format::Junit => print!("{}", crate::bench::render::human(&report)),
            }
            EXIT_MET
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}

/// One measured simulation; `variant.brokers` 0 means the scenario's own count.
fn cmd_bench_seed(path: Option<&Path>, seed: u64, variant: crate::bench::Variant, baselines: crate::bench::measure::Baselines) -> Result<i32, ScenarioError> {
    let s = crate::bench::load_scenario(path)?;
    let brokers = if variant.brokers == 0 { s.cluster.brokers } else { variant.brokers };
    let variant = crate::bench::Variant { brokers, rate_x: variant.rate_x.max(1) };
    let applied = variant.apply(&s).map_err(|e| ScenarioError::new(&s.path, "cluster.brokers", e))?;
    crate::support::check_supported(&applied)?;
    match crate::bench::measure_seed(&s, variant, seed, baselines) {
        Ok(m) => {
            println!("{}", serde_json::to_string(&m).unwrap_or_default());
            Ok(EXIT_MET)
        }
        Err(e) => Err(ScenarioError::new(&s.path, "", format!("a scenario the bench can run ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchEngine;

    fn bench_opts(args: &[&str]) -> crate::bench::BenchOptions {
        let cli = Cli::try_parse_from(args).expect("bench arguments parse");
        let Command::Bench { scenario, engine, seeds, jobs, throughput_seeds, series_seeds, quick, format: _ } = cli.command else {
            panic!("not a bench command: {args:?}");
        };
        bench_options(quick, scenario, engine, (seeds, throughput_seeds, series_seeds), jobs)
    }

    #[test]
    fn bench_defaults_report_both_engines_with_two_jobs() {
        let opts = bench_opts(&["stormlog", "bench"]);
        assert_eq!(opts.engines, vec![BenchEngine::Turmoil, BenchEngine::Madsim]);
        assert_eq!(opts.jobs, 2);
        assert_eq!(opts.rate_xs, vec![1, 2, 4, 8]);
        assert_eq!(opts.brokers, vec![3, 5, 7]);
        assert_eq!(opts.scenario, None);
        assert!(opts.series_seeds <= opts.seeds);
    }

    #[test]
    fn bench_flags_override_the_defaults_and_series_seeds_stay_within_seeds() {
        let opts = bench_opts(&["stormlog", "bench", "--quick", "--engine", "turmoil", "--engine", "turmoil", "--jobs", "0", "--series-seeds", "9"]);
        assert_eq!(opts.engines, vec![BenchEngine::Turmoil]);
        assert_eq!((opts.seeds, opts.series_seeds, opts.jobs), (1, 1, 1));
        let opts = bench_opts(&["stormlog", "bench", "--seeds", "4", "--throughput-seeds", "8", "--scenario", "x.toml"]);
        assert_eq!((opts.seeds, opts.throughput_seeds), (4, 8));
        assert_eq!(opts.scenario, Some(PathBuf::from("x.toml")));
        assert!(Cli::try_parse_from(["stormlog", "bench", "--engine", "qemu"]).is_err());
    }
}
