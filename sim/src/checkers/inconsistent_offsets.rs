//! `inconsistent-offsets`: two different values observed at one (topic, partition, offset),
//! across ok acks and polls. A log position is written once; two values there mean replicas
//! disagreed about history and clients saw both versions.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, Tp};
use std::collections::BTreeMap;

pub const KIND: &str = "inconsistent-offsets";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.positions()
        .filter_map(|(tp, offset, obs)| report(tp, offset, &obs))
        .collect()
}

fn report(tp: &Tp, offset: i64, obs: &[&Observation]) -> Option<Anomaly> {
    // First observation of each distinct value; `obs` is in time order.
    let mut first: BTreeMap<&str, &Observation> = BTreeMap::new();
    for o in obs {
        first.entry(o.value.as_str()).or_insert(o);
    }
    if first.len() < 2 {
        return None;
    }
    let mut seen_at: Vec<u64> = first.values().map(|o| o.time_ms).collect();
    seen_at.sort_unstable();
    let versions: Vec<String> = first
        .iter()
        .map(|(v, o)| format!("{v} ({})", o.describe()))
        .collect();
    let explanation = format!(
        "{tp} offset {offset} was observed holding {} different values: {}",
        first.len(),
        versions.join(", ")
    );
    Some(
        Anomaly::new(KIND, seen_at[1], tp)
            .with_nodes(obs.iter().map(|o| o.process.as_str()))
            .with_offsets(vec![offset])
            .with_values(first.keys().map(|v| v.to_string()).collect())
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn an_ack_and_a_read_disagreeing_at_one_offset_are_inconsistent() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 5);
        r.send_ok("p-1", 0, 0, 5);
        r.poll("c-0", &[(0, 5, "p-1:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].partition, found[0].offsets.clone()), (0, vec![5]));
        assert_eq!(found[0].values, vec!["p-0:0", "p-1:0"]);
        assert_eq!(found[0].nodes, vec!["c-0", "p-0", "p-1"]);
        assert_eq!(found[0].time_ms, r.ack_time("p-1:0"));
        assert!(found[0].explanation.contains("orders/0 offset 5"));
    }

    #[test]
    fn two_reads_disagreeing_at_one_offset_are_inconsistent() {
        let mut r = Run::new();
        r.poll("c-0", &[(2, 7, "a")]);
        r.poll("c-1", &[(2, 7, "b")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].partition, found[0].offsets.clone()), (2, vec![7]));
    }

    #[test]
    fn the_same_offset_in_different_partitions_is_not_inconsistent() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 5);
        r.send_ok("p-0", 1, 1, 5);
        r.poll("c-0", &[(0, 5, "p-0:0"), (1, 5, "p-0:1")]);
        r.poll("c-0", &[(0, 5, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }
}
