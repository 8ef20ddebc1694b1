//! `redelivery`: within one consumer group, the same record value processed more than once:
//! two ok `process` ops (or one op listing it twice) of members of the group, whether by one
//! member or by different members. Values are unique per message, so a value processed twice
//! was delivered to the application twice: what at-least-once allows and exactly-once
//! forbids. Standalone consumers (no group) are not judged, and neither is the same value
//! processed once in each of two groups (every group gets every record).
//!
//! One anomaly per (group, value), at the second processing.

use super::anomaly::Anomaly;
use super::index::{Delivery, HistoryIndex};

pub const KIND: &str = "redelivery";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.group_deliveries()
        .filter_map(|(group, value, ds)| report(group, value, &ds))
        .collect()
}

/// `ds` is in time order.
fn report(group: &str, value: &str, ds: &[&Delivery]) -> Option<Anomaly> {
    let (first, second) = (ds.first()?, ds.get(1)?);
    let each: Vec<String> = (ds.iter())
        .map(|d| {
            format!(
                "by {} at {} ms ({} offset {})",
                d.process, d.time_ms, d.tp, d.offset
            )
        })
        .collect();
    let explanation = format!(
        "{value} was processed {} times in group {group}: {}",
        ds.len(),
        each.join(", ")
    );
    Some(
        Anomaly::new(KIND, second.time_ms, &first.tp)
            .with_nodes(ds.iter().map(|d| d.process.as_str()))
            .with_offsets(ds.iter().map(|d| d.offset).collect())
            .with_values(vec![value.to_string()])
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn one_value_processed_by_two_members_of_a_group_is_a_redelivery() {
        let mut r = Run::new();
        r.process("c-0", Some("g"), &[(0, 3, "p-0:3"), (0, 4, "p-0:4")]);
        r.assign("c-1", Some("g"), 2, &[0]);
        let t = r.process("c-1", Some("g"), &[(0, 4, "p-0:4"), (0, 5, "p-0:5")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!((a.kind.as_str(), a.partition), ("redelivery", 0));
        assert_eq!(a.values, vec!["p-0:4"]);
        assert_eq!(a.offsets, vec![4, 4]);
        assert_eq!(a.nodes, vec!["c-0", "c-1"]);
        assert_eq!(a.time_ms, t);
        assert!(a
            .explanation
            .starts_with("p-0:4 was processed 2 times in group g: by c-0"));
    }

    #[test]
    fn one_member_processing_a_value_twice_is_a_redelivery() {
        let mut r = Run::new();
        r.process("c-0", Some("g"), &[(1, 0, "p-0:0")]);
        r.process("c-0", Some("g"), &[(1, 0, "p-0:0")]);
        r.process("c-0", Some("g"), &[(1, 0, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].partition, found[0].offsets.clone()),
            (1, vec![0, 0, 0])
        );
        assert_eq!(found[0].nodes, vec!["c-0"]);
    }

    #[test]
    fn one_value_processed_once_in_each_of_two_groups_is_not_a_redelivery() {
        let mut r = Run::new();
        r.process("c-0", Some("g1"), &[(0, 0, "p-0:0")]);
        r.process("d-0", Some("g2"), &[(0, 0, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn standalone_consumers_are_not_judged() {
        let mut r = Run::new();
        r.process("c-0", None, &[(0, 0, "p-0:0")]);
        r.process("c-0", None, &[(0, 0, "p-0:0")]);
        r.process("c-1", Some("g"), &[(0, 0, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }
}
