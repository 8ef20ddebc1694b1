//! White-box causes: facts from the trace that explain a group of anomalies on one partition,
//! each stated only when the recorded data shows it (an unclean election, a leader elected
//! with a log shorter than acknowledged offsets, a truncation or a power loss that removed
//! acknowledged offsets). No explanation is written per scenario.

use std::collections::BTreeSet;

use super::facts::{secs, Facts};
use super::story::Acks;

/// One cause, at the simulated time it happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cause {
    pub time_ms: u64,
    pub text: String,
}

/// Causes for anomalies on `tp` at `offsets` (acknowledged as `acks` says), up to `until_ms`.
pub fn causes(facts: &Facts, tp: &str, offsets: &BTreeSet<i64>, acks: &Acks, until_ms: u64) -> Vec<Cause> {
    let mut out: Vec<Cause> = Vec::new();
    out.extend(unclean_elections(facts, tp, until_ms));
    out.extend(short_leaders(facts, tp, offsets, acks, until_ms));
    out.extend(truncations(facts, tp, offsets, acks, until_ms));
    out.extend(power_losses(facts, tp, offsets, until_ms));
    out.sort();
    out.dedup();
    out
}

fn unclean_elections(facts: &Facts, tp: &str, until_ms: u64) -> Vec<Cause> {
    let mut isr_before: Option<&str> = None;
    let mut out = Vec::new();
    for c in facts.changes.iter().filter(|c| c.tp == tp && c.time_ms <= until_ms) {
        if c.unclean {
            let leader = c.leader.as_deref().unwrap_or("a replica");
            let was = isr_before.map(|i| format!(" while the ISR was {i}")).unwrap_or_default();
            out.push(Cause {
                time_ms: c.time_ms,
                text: format!("leader elected from outside the ISR at {}: {} made {leader} leader of {tp}{was} (metadata record {})", secs(c.time_ms), c.node, c.record),
            });
        }
        if let Some(isr) = &c.isr {
            isr_before = Some(isr);
        }
    }
    out
}

/// A leader elected with its log ending below offsets that had already been acknowledged.
fn short_leaders(facts: &Facts, tp: &str, offsets: &BTreeSet<i64>, acks: &Acks, until_ms: u64) -> Vec<Cause> {
    facts
        .leaders
        .iter()
        .filter(|b| b.tp == tp && b.time_ms <= until_ms)
        .filter_map(|b| {
            let missing: Vec<i64> = offsets.iter().copied().filter(|o| *o >= b.leo && acks.acked_before(tp, *o, b.time_ms)).collect();
            let (first, last) = (missing.first()?, missing.last()?);
            Some(Cause {
                time_ms: b.time_ms,
                text: format!(
                    "{} became leader of {tp} in epoch {} at {} with its log ending at offset {}, below {} acknowledged offset(s) of these anomalies ({})",
                    b.node,
                    b.epoch,
                    secs(b.time_ms),
                    b.leo,
                    missing.len(),
                    range(*first, *last)
                ),
            })
        })
        .collect()
}

fn truncations(facts: &Facts, tp: &str, offsets: &BTreeSet<i64>, acks: &Acks, until_ms: u64) -> Vec<Cause> {
    facts
        .truncations
        .iter()
        .filter(|t| t.tp == tp && t.time_ms <= until_ms)
        .filter_map(|t| {
            let removed: Vec<i64> = offsets.range(t.to..t.from).copied().filter(|o| acks.acked_before(tp, *o, t.time_ms)).collect();
            let (first, last) = (removed.first()?, removed.last()?);
            Some(Cause {
                time_ms: t.time_ms,
                text: format!(
                    "{} truncated {tp} from offset {} to {} at {} ({}), removing {} acknowledged offset(s) of these anomalies ({})",
                    t.node,
                    t.from,
                    t.to,
                    secs(t.time_ms),
                    t.why,
                    removed.len(),
                    range(*first, *last)
                ),
            })
        })
        .collect()
}

fn power_losses(facts: &Facts, tp: &str, offsets: &BTreeSet<i64>, until_ms: u64) -> Vec<Cause> {
    facts
        .reopens
        .iter()
        .filter(|r| r.tp == tp && r.after_kill && r.time_ms <= until_ms)
        .filter_map(|r| {
            let before = r.leo_before.filter(|b| *b > r.leo)?;
            let lost = offsets.range(r.leo..before).count();
            (lost > 0 || offsets.is_empty()).then(|| Cause {
                time_ms: r.time_ms,
                text: format!(
                    "{} lost offsets {} of {tp} in a power loss: its log had reached offset {before} and ended at {} when it reopened at {} ({} of them offsets of these anomalies)",
                    r.node,
                    range(r.leo, before - 1),
                    r.leo,
                    secs(r.time_ms),
                    lost
                ),
            })
        })
        .collect()
}

fn range(first: i64, last: i64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..={last}")
    }
}
