//! `duplicate`: one value observed (by ok acks or polls) at two or more distinct positions,
//! in one partition or across partitions. Re-reading the same position is a consumer
//! re-delivery, not a second copy in the log, so positions are compared, not observations.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, Tp};
use std::collections::BTreeMap;

pub const KIND: &str = "duplicate";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.values()
        .filter_map(|(value, obs)| report(value, &obs))
        .collect()
}

fn report(value: &str, obs: &[&Observation]) -> Option<Anomaly> {
    // First observation of each distinct position; `obs` is in time order.
    let mut first: BTreeMap<(&Tp, i64), &Observation> = BTreeMap::new();
    for o in obs {
        first.entry((&o.tp, o.offset)).or_insert(o);
    }
    if first.len() < 2 {
        return None;
    }
    let mut seen_at: Vec<u64> = first.values().map(|o| o.time_ms).collect();
    seen_at.sort_unstable();
    let ((tp, _), _) = first.iter().next()?;
    let places: Vec<String> = first
        .iter()
        .map(|((tp, off), o)| format!("{tp} offset {off} ({})", o.describe()))
        .collect();
    let explanation = format!(
        "{value} was observed at {} distinct positions: {}",
        first.len(),
        places.join(", ")
    );
    Some(
        Anomaly::new(KIND, seen_at[1], tp)
            .with_nodes(obs.iter().map(|o| o.process.as_str()))
            .with_offsets(first.keys().map(|(_, off)| *off).collect())
            .with_values(vec![value.to_string()])
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn one_value_at_two_offsets_is_a_duplicate() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 3);
        r.poll("c-0", &[(0, 3, "p-0:0"), (0, 4, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].partition, found[0].offsets.clone()),
            (0, vec![3, 4])
        );
        assert_eq!(found[0].values, vec!["p-0:0"]);
        assert_eq!(found[0].nodes, vec!["c-0", "p-0"]);
        assert!(found[0].explanation.contains("2 distinct positions"));
    }

    #[test]
    fn one_value_in_two_partitions_is_a_duplicate() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 3);
        r.poll("c-0", &[(1, 0, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1);
        assert!(found[0].explanation.contains("orders/0 offset 3"));
        assert!(found[0].explanation.contains("orders/1 offset 0"));
    }

    #[test]
    fn rereading_the_same_offset_is_not_a_duplicate() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 3);
        r.poll("c-0", &[(0, 3, "p-0:0")]);
        r.poll("c-0", &[(0, 3, "p-0:0")]);
        r.poll("c-1", &[(0, 3, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }
}
