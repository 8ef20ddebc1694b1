//! `stuck-producer`: a producer that sent and was never once acknowledged. Besides being a
//! liveness failure in its own right, it keeps a run from passing as clean when no write ever
//! went through: every other checker is trivially happy with an empty log.

use std::collections::BTreeMap;

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, SendOutcome, Tp};

pub const KIND: &str = "stuck-producer";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    // process -> (topic, sends, acknowledged)
    let mut per: BTreeMap<&str, (&str, usize, usize)> = BTreeMap::new();
    for s in &idx.sends {
        let e = per.entry(s.process.as_str()).or_insert((s.topic.as_str(), 0, 0));
        e.1 += 1;
        if s.outcome == SendOutcome::Ok {
            e.2 += 1;
        }
    }
    per.into_iter()
        .filter(|(_, (_, sent, acked))| *sent > 0 && *acked == 0)
        .map(|(process, (topic, sent, _))| {
            Anomaly::new(KIND, idx.end_ms, &Tp { topic: topic.to_string(), partition: -1 })
                .with_nodes([process])
                .explained(format!("{process} sent {sent} message(s) to {topic} and none was ever acknowledged"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::history::OpKind;
    use crate::testkit::Run;

    #[test]
    fn a_producer_never_acknowledged_is_stuck() {
        let mut run = Run::new();
        run.send_unacked("p-0", 0, OpKind::Fail);
        run.send_unacked("p-0", 1, OpKind::Info);
        let found = run.check(super::check);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes, vec!["p-0".to_string()]);
    }

    #[test]
    fn one_acknowledgement_is_enough() {
        let mut run = Run::new();
        run.send_unacked("p-0", 0, OpKind::Fail);
        run.send_ok("p-0", 1, 0, 0);
        assert!(run.check(super::check).is_empty());
    }
}
