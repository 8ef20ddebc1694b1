//! Per-seed reports, `reports/<scenario>/<seed>/`: `report.md` (the anomaly in plain words,
//! the white-box causes the trace shows, the fault timeline, the scenario as run, provenance
//! and the repro command), `report.html` (the same text with a timeline of every node and a
//! message diagram around the anomaly), the history as JSON lines and the trace. Nothing in
//! them depends on the wall clock, so the same seed on the same checkout writes the same bytes.
//!
//! `facts` reads the trace back, `story` the history, `cause` derives causes, `content` lays
//! out the text as `document` blocks, `lanes` and `diagram` draw the figures, `html` makes the
//! page; `provenance` says which build wrote it.

mod cause;
mod content;
mod diagram;
mod document;
mod facts;
mod html;
mod lanes;
mod provenance;
mod story;

use std::fs;
use std::path::{Path, PathBuf};

pub use provenance::Provenance;

use crate::run::SeedOutcome;
use crate::scenario::Scenario;

/// The one-line command that replays `seed` of the scenario at `path` (as a swarm seed when
/// the run drew its fault mix per seed).
pub fn repro_command(path: &str, seed: u64, swarm: bool) -> String {
    let flag = if swarm { " --swarm" } else { "" };
    format!("cargo run --release -- repro {path} --seed {seed}{flag}")
}

/// Text for XML and HTML: `&`, `<`, `>` and `"` escaped.
pub fn escape_xml(text: &str) -> String {
    document::escape(text)
}

/// Writes the report of `o` (a seed of `s`, as it ran) under `dir/<scenario>/<seed>/`.
pub fn write(dir: &Path, s: &Scenario, o: &SeedOutcome, swarm: bool, provenance: &Provenance) -> std::io::Result<PathBuf> {
    let out = dir.join(&s.name).join(o.seed.to_string());
    fs::create_dir_all(&out)?;
    fs::write(out.join("history.jsonl"), o.history.to_jsonl())?;
    fs::write(out.join("trace.txt"), o.trace.to_text())?;
    fs::write(out.join("report.md"), markdown(s, o, swarm, provenance))?;
    fs::write(out.join("report.html"), html(s, o, swarm, provenance))?;
    Ok(out)
}

pub fn markdown(s: &Scenario, o: &SeedOutcome, swarm: bool, provenance: &Provenance) -> String {
    let input = content::Input { scenario: s, outcome: o, swarm, provenance };
    document::to_markdown(&content::blocks(&input, false))
}

pub fn html(s: &Scenario, o: &SeedOutcome, swarm: bool, provenance: &Provenance) -> String {
    let input = content::Input { scenario: s, outcome: o, swarm, provenance };
    html::page(&format!("{} — seed {}", s.name, o.seed), &content::blocks(&input, true))
}
