//! `nonmonotonic-poll`: a consumer process read a partition going backwards or standing still.
//! Within one ok poll a partition's offsets must strictly increase; across two consecutive ok
//! polls of a partition by one process (the name survives restarts), with no `assign` op of
//! that process in between, the later poll's first offset must be above the earlier poll's
//! last. An assignment change resets every position (eager rebalances revoke everything and
//! positions restart from the committed offset), so re-reading after one is not reported.
//!
//! One anomaly per offending pair of back-to-back reads (`PollPair`), at the later read.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, PollPair};

pub const KIND: &str = "nonmonotonic-poll";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.poll_pairs
        .iter()
        .filter(|p| p.later.offset <= p.earlier.offset)
        .map(report)
        .collect()
}

fn report(p: &PollPair) -> Anomaly {
    let (a, b) = (&p.earlier, &p.later);
    let explanation = if p.within_one_poll() {
        format!(
            "{} read {} offset {} ({}) after offset {} ({}) within one poll at {} ms",
            p.process, p.tp, b.offset, b.value, a.offset, a.value, b.time_ms
        )
    } else {
        format!(
            "{} read {} up to offset {} ({}) at {} ms, then its next poll of {} started at \
             offset {} ({}) at {} ms, with no assignment change in between",
            p.process, p.tp, a.offset, a.value, a.time_ms, p.tp, b.offset, b.value, b.time_ms
        )
    };
    Anomaly::new(KIND, b.time_ms, &p.tp)
        .with_nodes([p.process.as_str()])
        .with_offsets(vec![a.offset, b.offset])
        .with_values(vec![a.value.clone(), b.value.clone()])
        .explained(explanation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn a_poll_starting_at_or_below_the_previous_one_is_nonmonotonic() {
        let mut r = Run::new();
        let t1 = r.poll("c-0", &[(0, 0, "a"), (0, 1, "b"), (0, 2, "c")]);
        let t2 = r.poll("c-0", &[(0, 1, "b"), (0, 2, "c")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!((a.kind.as_str(), a.partition), ("nonmonotonic-poll", 0));
        assert_eq!(a.offsets, vec![2, 1]);
        assert_eq!(a.values, vec!["c", "b"]);
        assert_eq!(a.nodes, vec!["c-0"]);
        assert_eq!(a.time_ms, t2);
        assert!(a
            .explanation
            .contains(&format!("up to offset 2 (c) at {t1} ms")));
        assert!(a.explanation.contains(&format!("offset 1 (b) at {t2} ms")));
    }

    #[test]
    fn rereading_the_last_offset_is_nonmonotonic() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 4, "a")]);
        r.poll("c-0", &[(0, 4, "a")]);
        assert_eq!(r.check(check).len(), 1);
    }

    #[test]
    fn offsets_going_back_within_one_poll_are_nonmonotonic() {
        let mut r = Run::new();
        let t = r.poll("c-0", &[(0, 3, "a"), (1, 0, "x"), (0, 2, "b"), (0, 5, "c")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].offsets.clone(), found[0].time_ms),
            (vec![3, 2], t)
        );
        assert!(found[0].explanation.contains("within one poll"));
    }

    #[test]
    fn an_assign_between_two_polls_resets_the_position() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 0, "a"), (0, 1, "b")]);
        r.assign("c-0", Some("g"), 2, &[0]);
        r.poll("c-0", &[(0, 0, "a"), (0, 1, "b")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn an_assign_of_another_process_does_not_reset_the_position() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 0, "a"), (0, 1, "b")]);
        r.assign("c-1", Some("g"), 2, &[0]);
        r.poll("c-0", &[(0, 0, "a")]);
        assert_eq!(r.check(check).len(), 1);
    }

    #[test]
    fn other_processes_and_partitions_are_tracked_apart() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 5, "a"), (1, 7, "x")]);
        r.poll("c-1", &[(0, 0, "z"), (0, 1, "y")]);
        r.poll("c-0", &[(1, 8, "w"), (0, 6, "b")]);
        r.poll("c-0", &[(1, 9, "v")]);
        assert!(r.check(check).is_empty());
    }
}
