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

/// What a group of anomalies is about: its partition, offsets, nodes and first time.
pub struct Subject<'a> {
    pub tp: &'a str,
    pub offsets: &'a BTreeSet<i64>,
    pub nodes: &'a BTreeSet<String>,
    pub first_ms: u64,
}

/// Causes for the anomalies of `subject` (acknowledged as `acks` says), up to `until_ms`.
pub fn causes(facts: &Facts, subject: &Subject<'_>, acks: &Acks, until_ms: u64) -> Vec<Cause> {
    let (tp, offsets) = (subject.tp, subject.offsets);
    let mut out: Vec<Cause> = Vec::new();
    out.extend(late_end_txns(facts, until_ms));
    out.extend(aborts_after(facts, tp, offsets));
    out.extend(faults_on(facts, subject.nodes, subject.first_ms));
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

/// Offsets whose next transaction marker on the partition is an abort: their transaction
/// was aborted, and its records stay in the log (read_uncommitted readers return them).
fn aborts_after(facts: &Facts, tp: &str, offsets: &BTreeSet<i64>) -> Vec<Cause> {
    let mut markers: Vec<_> = facts.markers.iter().filter(|m| m.tp == tp).collect();
    markers.sort_by_key(|m| (m.offset, m.time_ms));
    let mut by_marker: std::collections::BTreeMap<usize, Vec<i64>> = std::collections::BTreeMap::new();
    for o in offsets {
        if let Some(i) = markers.iter().position(|m| m.offset > *o) {
            if !markers[i].commit {
                by_marker.entry(i).or_default().push(*o);
            }
        }
    }
    by_marker
        .iter()
        .take(CAUSES_PER_RULE_MAX)
        .map(|(i, before)| {
            let m = markers[*i];
            Cause {
                time_ms: m.time_ms,
                text: format!(
                    "the transaction of {} was aborted: {} wrote its abort marker at {tp} offset {} at {}, and {} offset(s) of these anomalies ({}) lie before it with no commit marker between",
                    m.producer,
                    m.node,
                    m.offset,
                    secs(m.time_ms),
                    before.len(),
                    range(before[0], before[before.len() - 1])
                ),
            }
        })
        .collect()
}

/// An EndTxn held past a transaction boundary (KAFKA-17754): while it waited, its client's
/// transaction ended another way and the next one began; handled late and accepted, it
/// decided that next transaction.
fn late_end_txns(facts: &Facts, until_ms: u64) -> Vec<Cause> {
    let mut out = Vec::new();
    for r in facts.late_requests.iter().filter(|r| r.api == "EndTxn") {
        let Some(handled) = r.handled_ms.filter(|t| *t <= until_ms) else { continue };
        let Some(e) = facts.end_txns.iter().find(|e| e.node == r.node && e.time_ms == handled) else { continue };
        let Some(begun) = facts.txn_begins.iter().rfind(|b| b.node == r.node && b.txn == e.txn && b.time_ms > r.held_ms && b.time_ms <= handled) else { continue };
        let what = if e.commit { "commit" } else { "abort" };
        let text = match &e.refused {
            Some(err) => format!(
                "{} held an EndTxn({what}) of {} (producer epoch {}) from {} to {}; meanwhile the next transaction began ({} at {}), and the late EndTxn was refused with {err}",
                r.node, e.txn, e.epoch, secs(r.held_ms), secs(handled), e.txn, secs(begun.time_ms)
            ),
            None => format!(
                "EndTxn of epoch {} applied to a later transaction: {} held an EndTxn({what}) of {} from {} to {}; meanwhile that transaction ended on a retry and later ones began under the same producer epoch (the last Ongoing at {}); handled late, the EndTxn decided the one in progress ({what}) at {}",
                e.epoch, r.node, e.txn, secs(r.held_ms), secs(handled), secs(begun.time_ms), secs(handled)
            ),
        };
        out.push(Cause { time_ms: handled, text });
    }
    out.truncate(CAUSES_PER_RULE_MAX);
    out
}

/// Faults injected into the nodes the anomalies name, before the first of them was seen.
fn faults_on(facts: &Facts, nodes: &BTreeSet<String>, first_ms: u64) -> Vec<Cause> {
    facts
        .faults
        .iter()
        .filter(|f| !f.heal && f.time_ms <= first_ms && f.nodes.iter().any(|n| nodes.contains(n)))
        .take(CAUSES_PER_RULE_MAX)
        .map(|f| Cause { time_ms: f.time_ms, text: format!("{} was hit by the fault {}{} at {}, before these anomalies were seen", f.nodes.join(","), f.verb, if f.rest.is_empty() { String::new() } else { format!(" {}", f.rest) }, secs(f.time_ms)) })
        .collect()
}

/// A rule that matches many times states its first few.
const CAUSES_PER_RULE_MAX: usize = 3;

fn range(first: i64, last: i64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..={last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;
    use crate::trace::Trace;

    fn facts(lines: &[(u64, &str, &str)]) -> Facts {
        let mut t = Trace::default();
        lines.iter().for_each(|(ms, n, e)| t.record(*ms, n, e));
        Facts::read(&t)
    }

    #[test]
    fn a_truncation_is_a_cause_only_for_offsets_acknowledged_before_it() {
        let mut run = Run::new();
        run.send_ok("p-0", 0, 0, 5);
        let acks = Acks::from_history(&run.history);
        let f = facts(&[(1000, "broker-0", "truncate orders/0 9 -> 3 (to own high watermark)"), (0, "broker-1", "truncate orders/0 20 -> 10 (out of range)")]);
        let offsets: BTreeSet<i64> = [5, 6].into();
        let nodes = BTreeSet::new();
        let subject = Subject { tp: "orders/0", offsets: &offsets, nodes: &nodes, first_ms: 0 };
        let found = causes(&f, &subject, &acks, u64::MAX);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].text.starts_with("broker-0 truncated orders/0 from offset 9 to 3 at 1.000 s (to own high watermark), removing 1 acknowledged offset(s)"), "{}", found[0].text);
    }

    #[test]
    fn records_followed_by_an_abort_marker_are_explained_by_it() {
        let f = facts(&[(10, "broker-0", "marker orders/0 4 commit pid=7 epoch=0"), (20, "broker-0", "marker orders/0 8 abort pid=7 epoch=1")]);
        let offsets: BTreeSet<i64> = [2, 5, 6].into();
        let nodes = BTreeSet::new();
        let subject = Subject { tp: "orders/0", offsets: &offsets, nodes: &nodes, first_ms: 0 };
        let found = causes(&f, &subject, &Acks::default(), u64::MAX);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].text.contains("producer id 7 epoch 1 was aborted") && found[0].text.contains("2 offset(s) of these anomalies (5..=6)"), "{}", found[0].text);
    }

    #[test]
    fn a_held_end_txn_accepted_after_the_next_transaction_began_is_a_cause_and_a_refused_one_says_so() {
        let trace = |refused: &'static str| {
            facts(&[
                (100, "broker-0", "hold-request: holding EndTxn from p-0"),
                (200, "broker-0", "txn-state p-0 pid=5 epoch=0 CompleteCommit -> Ongoing"),
                (300, "broker-0", "hold-request: handling the held EndTxn from p-0"),
                (300, "broker-0", refused),
            ])
        };
        let offsets: BTreeSet<i64> = [1].into();
        let nodes = BTreeSet::new();
        let subject = Subject { tp: "orders/0", offsets: &offsets, nodes: &nodes, first_ms: 0 };
        let found = causes(&trace("end-txn p-0 pid=5 epoch=0 commit=true"), &subject, &Acks::default(), u64::MAX);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].text.starts_with("EndTxn of epoch 0 applied to a later transaction: broker-0 held an EndTxn(commit) of p-0 from 0.100 s to 0.300 s"), "{}", found[0].text);
        let found = causes(&trace("end-txn p-0 pid=5 epoch=0 commit=true: refused ProducerFenced"), &subject, &Acks::default(), u64::MAX);
        assert!(found[0].text.ends_with("the late EndTxn was refused with ProducerFenced"), "{}", found[0].text);
        // Before it was handled, it explains nothing.
        assert!(causes(&trace("end-txn p-0 pid=5 epoch=0 commit=true"), &subject, &Acks::default(), 250).is_empty());
    }
}
