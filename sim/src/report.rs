//! Per-seed report files: `reports/<scenario>/<seed>/` with a Markdown summary, the history as
//! JSON lines and the trace. Nothing in them depends on the wall clock, so the same seed writes
//! the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::SeedOutcome;
use crate::scenario::Scenario;

/// The one-line command that replays `seed` of the scenario at `path` (as a swarm seed when
/// the run drew its fault mix per seed).
pub fn repro_command(path: &str, seed: u64, swarm: bool) -> String {
    let flag = if swarm { " --swarm" } else { "" };
    format!("cargo run --release -- repro {path} --seed {seed}{flag}")
}

pub fn write(dir: &Path, s: &Scenario, o: &SeedOutcome, swarm: bool) -> std::io::Result<PathBuf> {
    let out = dir.join(&s.name).join(o.seed.to_string());
    fs::create_dir_all(&out)?;
    fs::write(out.join("history.jsonl"), o.history.to_jsonl())?;
    fs::write(out.join("trace.txt"), o.trace.to_text())?;
    fs::write(out.join("report.md"), summary(s, o, swarm))?;
    Ok(out)
}

pub fn summary(s: &Scenario, o: &SeedOutcome, swarm: bool) -> String {
    let mut md = format!("# {} — seed {}\n\n{}\n\n", s.name, o.seed, s.description);
    md += &format!("- scenario file: `{}`\n- simulated time: {} ms\n- trace: {} events, hash `{}`\n\n", s.path, o.sim_ms, o.trace.len(), o.trace.hash());
    if let Some(f) = &o.failure {
        md += &format!("## The system failed\n\n```\n{f}\n```\n\n");
    }
    md += "## Anomalies\n\n";
    if o.anomalies.is_empty() {
        md += "None.\n\n";
    }
    for a in &o.anomalies {
        md += &format!(
            "- **{}** at {} ms on {}/{} (offsets {:?}; nodes {}): {}\n",
            a.kind,
            a.time_ms,
            a.topic,
            a.partition,
            a.offsets,
            a.nodes.join(", "),
            a.explanation
        );
    }
    md += &format!("\n## Reproduce\n\n```\n{}\n```\n", repro_command(&s.path, o.seed, swarm));
    md
}
