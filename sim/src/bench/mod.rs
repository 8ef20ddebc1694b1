//! `stormlog bench`: how fast the harness runs seeds, per engine. The standard scenario
//! (`scenarios/bench_standard.toml`) one seed at a time and `--jobs` at a time, a bare-engine
//! baseline of the same hosts and traffic with no broker logic, and scaling series over
//! messages and brokers with fitted exponents; a table or JSON.
//!
//! `plan` decides what runs (each simulation in its own child process); `measure` is one
//! child's simulation; `baseline` is the bare engine; `fit` the least-squares exponent;
//! `summary` the numbers; `render` the table; `wall` the one wall clock. Nothing here runs
//! inside a simulation or changes one.

pub mod baseline;
pub mod fit;
pub mod measure;
pub mod plan;
pub mod render;
pub mod summary;
pub mod wall;

pub use measure::{measure_seed, Measurement, Variant};
pub use plan::{BenchEngine, BenchOptions};
pub use summary::BenchReport;

use crate::scenario::{Scenario, ScenarioError};

/// The standard scenario, built in so that `stormlog bench` runs from anywhere.
pub const STANDARD_SCENARIO: &str = include_str!("../../../scenarios/bench_standard.toml");

/// The scenario the bench runs: the file given, or the built-in standard one.
pub fn load_scenario(path: Option<&std::path::Path>) -> Result<Scenario, ScenarioError> {
    let s = match path {
        Some(p) => Scenario::load(p)?,
        None => Scenario::parse("scenarios/bench_standard.toml", STANDARD_SCENARIO)?,
    };
    crate::support::check_supported(&s)?;
    Ok(s)
}

/// Runs the bench over `opts`; `progress` hears what is running.
pub fn run(opts: &BenchOptions, command: String, progress: &dyn Fn(&str)) -> Result<BenchReport, String> {
    let s = load_scenario(opts.scenario.as_deref()).map_err(|e| e.to_string())?;
    let standard = Variant { brokers: s.cluster.brokers, rate_x: 1 };
    let mut engines = Vec::new();
    for &engine in &opts.engines {
        if !engine.is_built() {
            engines.push(summary::EngineReport::not_built(engine));
            continue;
        }
        let run = plan::run_turmoil(opts, standard, progress)?;
        engines.push(summary::EngineReport::measured(engine, opts, standard, &run));
    }
    Ok(BenchReport::new(command, &s, engines))
}
