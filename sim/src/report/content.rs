//! The report's text, section by section, as blocks that render to Markdown and HTML alike:
//! summary, what went wrong (per anomaly kind and partition, with the values' stories and the
//! white-box causes), the figures, the fault timeline, leadership, the scenario as run,
//! provenance, and the repro command last.

use std::collections::BTreeSet;

use crate::checkers::Anomaly;
use crate::run::SeedOutcome;
use crate::scenario::Scenario;

use super::cause::{causes, Cause, Subject};
use super::document::Block;
use super::facts::{secs, Facts};
use super::provenance::Provenance;
use super::story::{describe, value_stories, Acks};
use super::{diagram, lanes, repro_command};

/// Groups shown in detail; the rest are counted.
const GROUPS_MAX: usize = 8;
/// Anomalies listed per group.
const LISTED_MAX: usize = 10;
/// Values told in full per group.
const VALUES_MAX: usize = 4;
const LEADERSHIP_ROWS_MAX: usize = 40;
const FAULT_ROWS_MAX: usize = 100;

/// Everything a report is written from.
pub struct Input<'a> {
    /// The scenario as it ran (for a swarm seed, with its drawn fault mix).
    pub scenario: &'a Scenario,
    pub outcome: &'a SeedOutcome,
    pub swarm: bool,
    pub provenance: &'a Provenance,
}

/// Anomalies of one kind on one partition, in time order.
pub struct Group<'a> {
    pub kind: &'a str,
    pub tp: String,
    pub anomalies: Vec<&'a Anomaly>,
}

pub fn groups(anomalies: &[Anomaly]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for a in anomalies {
        let tp = format!("{}/{}", a.topic, a.partition);
        match out.iter_mut().find(|g| g.kind == a.kind && g.tp == tp) {
            Some(g) => g.anomalies.push(a),
            None => out.push(Group { kind: &a.kind, tp, anomalies: vec![a] }),
        }
    }
    out
}

/// The report's blocks; with `figures`, the SVG figures are drawn into them.
pub fn blocks(input: &Input<'_>, figures: bool) -> Vec<Block> {
    let (s, o) = (input.scenario, input.outcome);
    let facts = Facts::read(&o.trace);
    let acks = Acks::from_history(&o.history);
    let groups = groups(&o.anomalies);
    let group_causes: Vec<Vec<Cause>> = groups.iter().map(|g| group_causes(g, &facts, &acks, o.sim_ms)).collect();
    let mut b = vec![Block::Heading(1, format!("{} — seed {}", s.name, o.seed)), Block::Para(s.description.clone())];
    b.extend(summary(input, &groups));
    b.push(Block::Heading(2, "What went wrong".into()));
    if groups.is_empty() {
        b.push(Block::Para("No anomaly was found in this seed.".into()));
    }
    for (g, c) in groups.iter().zip(&group_causes).take(GROUPS_MAX) {
        b.extend(group_blocks(g, c, o, &facts));
    }
    if groups.len() > GROUPS_MAX {
        let rest: Vec<String> = groups[GROUPS_MAX..].iter().map(|g| format!("{} on {} ({})", g.kind, g.tp, g.anomalies.len())).collect();
        b.push(Block::Para(format!("Also: {}.", rest.join(", "))));
    }
    let end_ms = s.duration_ms + s.heal_ms;
    let focus = focus_ms(&groups, &group_causes, &o.history);
    b.push(Block::Heading(2, "Timeline".into()));
    b.push(Block::Para("One lane per node: fault bars (crash red, power loss dark red, partition orange, hold purple, pause grey), client operations (ok green, info amber, fail red), leaders elected (blue triangles), unclean elections (red dots) and the first anomaly of each kind (dashed red).".into()));
    let timeline = if figures { lanes::svg(&facts, &o.history, &o.anomalies, end_ms) } else { String::new() };
    b.push(Block::Figure("Timeline of the run".into(), timeline));
    b.push(Block::Heading(2, "Messages around the anomaly".into()));
    b.push(Block::Para(format!(
        "The {} Kafka requests and responses sent nearest {} (solid: request, dashed: response, red cross: never read), with the nodes' own events in red.",
        diagram::MESSAGES_MAX,
        secs(focus)
    )));
    let messages = if figures { diagram::svg(&o.wire, &o.trace, focus) } else { String::new() };
    b.push(Block::Figure(format!("Message diagram around {}", secs(focus)), messages));
    b.extend(fault_timeline(&facts));
    b.extend(leadership(&facts));
    b.push(Block::Heading(2, "Scenario as run".into()));
    b.push(Block::Para("Every default filled in; a swarm seed shows the fault mix it drew.".into()));
    b.push(Block::Code("toml", s.to_toml()));
    b.push(Block::Heading(2, "Provenance".into()));
    let p = input.provenance;
    b.push(Block::List(vec![
        format!("seed: {}", o.seed),
        format!("commit: `{}`", p.commit),
        format!("Cargo.lock sha256: `{}`", p.cargo_lock),
        format!("toolchain: `{}`", p.toolchain),
        "engine: turmoil".into(),
    ]));
    b.push(Block::Heading(2, "Reproduce".into()));
    b.push(Block::Code("sh", repro_command(&s.path, o.seed, input.swarm)));
    b
}

fn summary(input: &Input<'_>, groups: &[Group<'_>]) -> Vec<Block> {
    let (s, o) = (input.scenario, input.outcome);
    let mut items = Vec::new();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    o.anomalies.iter().for_each(|a| *counts.entry(a.kind.as_str()).or_default() += 1);
    let found = if counts.is_empty() { "none".to_string() } else { counts.iter().map(|(k, n)| format!("**{k}** x{n}")).collect::<Vec<_>>().join(", ") };
    items.push(format!("anomalies: {found} (on {} partition(s))", groups.iter().map(|g| g.tp.as_str()).collect::<BTreeSet<_>>().len()));
    items.push(format!("expected: {} {:?}", s.expect.outcome.name(), s.expect.anomalies));
    items.push(format!("seed: {}", o.seed));
    items.push(format!("scenario file: `{}`", s.path));
    items.push(format!("simulated time: {} ms (chaos {} ms, heal {} ms)", o.sim_ms, s.duration_ms, s.heal_ms));
    items.push(format!("trace: {} events, hash `{}`", o.trace.len(), o.trace.hash()));
    let dropped = if o.wire.dropped() > 0 { format!(" ({} more not recorded: the wire log was full)", o.wire.dropped()) } else { String::new() };
    items.push(format!("messages on the wire: {} sent{dropped}", o.wire.sent_count()));
    let mut b = vec![Block::Heading(2, "Summary".into()), Block::List(items)];
    if let Some(f) = &o.failure {
        b.push(Block::Heading(2, "The system failed".into()));
        b.push(Block::Code("", f.clone()));
    }
    b
}

/// Causes anywhere in the run: an anomaly's time is when it became observable (for a lost
/// write, its acknowledgement), and what lost it may come later.
fn group_causes(g: &Group<'_>, facts: &Facts, acks: &Acks, end_ms: u64) -> Vec<Cause> {
    let offsets: BTreeSet<i64> = g.anomalies.iter().flat_map(|a| a.offsets.iter().copied()).collect();
    let nodes: BTreeSet<String> = g.anomalies.iter().flat_map(|a| a.nodes.iter().cloned()).collect();
    let subject = Subject { tp: &g.tp, offsets: &offsets, nodes: &nodes, first_ms: g.anomalies[0].time_ms };
    causes(facts, &subject, acks, end_ms)
}

fn group_blocks(g: &Group<'_>, causes: &[Cause], o: &SeedOutcome, facts: &Facts) -> Vec<Block> {
    let first = g.anomalies[0];
    let mut b = vec![Block::Heading(3, format!("{} on {} ({} found)", g.kind, g.tp, g.anomalies.len()))];
    b.push(Block::Para(format!("First at {}: {}", secs(first.time_ms), first.explanation)));
    b.push(Block::Para(format!("Nodes: {}. Offsets: {}. Values: {}.", list(&first.nodes), list_num(&first.offsets), list(&first.values))));
    let values: BTreeSet<String> = first.values.iter().take(VALUES_MAX).cloned().collect();
    if !values.is_empty() {
        let stories = value_stories(&o.history, &values);
        b.push(Block::Para("What the history says about its values:".into()));
        b.push(Block::List(stories.iter().map(|(v, st)| describe(v, st, facts)).collect()));
    }
    if causes.is_empty() {
        b.push(Block::Para("Why: no white-box cause could be derived from the trace for these anomalies.".into()));
    } else {
        b.push(Block::Para("Why (from the trace):".into()));
        b.push(Block::List(causes.iter().map(|c| c.text.clone()).collect()));
    }
    if g.anomalies.len() > 1 {
        let mut items: Vec<String> = g
            .anomalies
            .iter()
            .take(LISTED_MAX)
            .map(|a| format!("at {}: offsets {}; values {}; nodes {}", secs(a.time_ms), list_num(&a.offsets), list(&a.values), list(&a.nodes)))
            .collect();
        if g.anomalies.len() > LISTED_MAX {
            items.push(format!("... and {} more", g.anomalies.len() - LISTED_MAX));
        }
        b.push(Block::List(items));
    }
    b
}

/// Where the message diagram looks: the first cause of the first group, else the first
/// acknowledgement of a value it names, else the anomaly itself.
fn focus_ms(groups: &[Group<'_>], causes: &[Vec<Cause>], history: &crate::history::History) -> u64 {
    let Some(g) = groups.first() else { return 0 };
    if let Some(c) = causes.first().and_then(|c| c.first()) {
        return c.time_ms;
    }
    let first = g.anomalies[0];
    let values: BTreeSet<String> = first.values.iter().take(1).cloned().collect();
    value_stories(history, &values).values().find_map(|s| s.outcome.as_ref().map(|(t, _, _)| *t)).unwrap_or(first.time_ms)
}

fn fault_timeline(facts: &Facts) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Fault timeline".into())];
    if facts.faults.is_empty() {
        b.push(Block::Para("No fault was injected.".into()));
        return b;
    }
    let rows: Vec<Vec<String>> = facts
        .faults
        .iter()
        .take(FAULT_ROWS_MAX)
        .map(|f| {
            let what = format!("{} {}{}", if f.heal { "heal" } else { "fault" }, f.verb, if f.rest.is_empty() { String::new() } else { format!(" {}", f.rest) });
            vec![secs(f.time_ms), f.nodes.join(", "), what]
        })
        .collect();
    b.push(Block::Table(vec!["time".into(), "nodes".into(), "event".into()], rows));
    if facts.faults.len() > FAULT_ROWS_MAX {
        b.push(Block::Para(format!("... and {} more events in `trace.txt`.", facts.faults.len() - FAULT_ROWS_MAX)));
    }
    b
}

fn leadership(facts: &Facts) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Leadership changes".into())];
    let own: Vec<_> = facts.leaders.iter().filter(|l| !l.tp.starts_with("__")).collect();
    let rows: Vec<Vec<String>> = own.iter().take(LEADERSHIP_ROWS_MAX).map(|l| vec![secs(l.time_ms), l.tp.clone(), l.node.clone(), l.epoch.to_string(), l.leo.to_string(), l.isr.clone()]).collect();
    if rows.is_empty() {
        b.push(Block::Para("No leader was elected for the scenario's topics.".into()));
        return b;
    }
    b.push(Block::Table(["time", "partition", "leader", "epoch", "log end", "isr"].map(String::from).to_vec(), rows));
    if own.len() > LEADERSHIP_ROWS_MAX {
        b.push(Block::Para(format!("... and {} more in `trace.txt`.", own.len() - LEADERSHIP_ROWS_MAX)));
    }
    b
}

/// Items listed inline: at most this many, then how many there are.
const INLINE_MAX: usize = 10;

fn list(items: &[String]) -> String {
    inline(items.iter().map(|i| format!("`{i}`")).collect())
}

fn list_num(items: &[i64]) -> String {
    inline(items.iter().map(i64::to_string).collect())
}

fn inline(items: Vec<String>) -> String {
    match items.len() {
        0 => "none".into(),
        n if n > INLINE_MAX => format!("{}, ... ({n} in all)", items[..INLINE_MAX].join(", ")),
        _ => items.join(", "),
    }
}
