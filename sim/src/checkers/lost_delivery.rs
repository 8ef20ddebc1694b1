//! `lost-delivery`: a record below a group's final committed offset that no member of the
//! group ever processed. Per group and partition the final committed offset is the offset in
//! the last ok `commit` op of the group (in history order of completions) that includes the
//! partition; commits that failed or may have failed do not count, and a later commit lower
//! than an earlier one still wins (it is what the coordinator holds at the end). Every offset
//! below it where a record is known to exist (an ok ack placed it there, or any ok poll read
//! it there) must appear in some ok `process` op of the group; the group has promised never to
//! deliver it again, so a record it skipped is lost to the application.
//!
//! One anomaly per (group, partition, offset), at the final commit.

use super::anomaly::Anomaly;
use super::index::{CommitRecord, HistoryIndex, Observation, Tp};

pub const KIND: &str = "lost-delivery";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (tp, committed, commit) in idx.final_commits() {
        for (offset, obs) in idx.positions_in(tp, ..committed) {
            // A transaction whose outcome its client never learned may have processed it.
            if !idx.group_processed(&commit.group, tp, offset) && !idx.group_maybe_processed(&commit.group, tp, offset) {
                out.push(report(tp, offset, &obs, committed, commit));
            }
        }
    }
    out
}

/// `obs` is in time order and not empty.
fn report(
    tp: &Tp,
    offset: i64,
    obs: &[&Observation],
    committed: i64,
    commit: &CommitRecord,
) -> Anomaly {
    let mut values: Vec<String> = Vec::new();
    for o in obs {
        if !values.contains(&o.value) {
            values.push(o.value.clone());
        }
    }
    let explanation = format!(
        "group {} committed {tp} offset {committed} ({} commit by {} at {} ms) but no member \
         ever processed the record at offset {offset} ({}, {})",
        commit.group,
        commit.how,
        commit.process,
        commit.time_ms,
        values.join(", "),
        obs[0].describe()
    );
    Anomaly::new(KIND, commit.time_ms, tp)
        .with_nodes([commit.process.as_str()])
        .with_offsets(vec![offset])
        .with_values(values)
        .explained(explanation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::Run;

    fn three_sends(r: &mut Run) {
        for seq in 0..3 {
            r.send_ok("p-0", seq, 0, seq as i64);
        }
    }

    #[test]
    fn a_record_below_the_committed_offset_nobody_processed_is_lost() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.process("c-0", Some("g"), &[(0, 0, "p-0:0"), (0, 2, "p-0:2")]);
        let t = r.commit("c-0", "g", "sync", OpKind::Ok, &[(0, 3)]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!((a.kind.as_str(), a.partition), ("lost-delivery", 0));
        assert_eq!(
            (a.offsets.clone(), a.values.clone()),
            (vec![1], vec!["p-0:1".to_string()])
        );
        assert_eq!(a.nodes, vec!["c-0"]);
        assert_eq!(a.time_ms, t);
        assert!(a
            .explanation
            .starts_with("group g committed orders/0 offset 3 (sync commit by c-0"));
        assert!(a.explanation.contains("at offset 1 (p-0:1, ack to p-0"));
    }

    #[test]
    fn a_record_maybe_processed_in_a_transaction_of_unknown_outcome_is_not_lost() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.process("c-0", Some("g"), &[(0, 0, "p-0:0")]);
        r.process_as("c-0", Some("g"), &[(0, 1, "p-0:1")], OpKind::Info);
        r.process_as("c-0", Some("g"), &[(0, 2, "p-0:2")], OpKind::Fail);
        r.commit("c-0", "g", "transactional", OpKind::Ok, &[(0, 3)]);
        let found = r.check(check);
        assert_eq!(found.iter().map(|a| a.offsets.clone()).collect::<Vec<_>>(), vec![vec![2]], "{found:?}");
    }

    #[test]
    fn only_offsets_below_the_committed_one_count() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.process("c-0", Some("g"), &[(0, 0, "p-0:0")]);
        r.commit("c-0", "g", "auto", OpKind::Ok, &[(0, 1)]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn the_last_ok_commit_counts_even_when_it_is_lower() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.process("c-0", Some("g"), &[(0, 0, "p-0:0")]);
        r.commit("c-0", "g", "async", OpKind::Ok, &[(0, 3)]);
        r.commit("c-1", "g", "sync", OpKind::Ok, &[(0, 1)]);
        r.commit("c-1", "g", "sync", OpKind::Fail, &[(0, 3)]);
        r.commit("c-1", "g", "sync", OpKind::Info, &[(0, 3)]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn only_the_committing_groups_processing_counts() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.process("d-0", Some("other"), &[(0, 0, "p-0:0"), (0, 1, "p-0:1")]);
        r.process("c-0", None, &[(0, 0, "p-0:0")]);
        r.process("c-0", Some("g"), &[(0, 1, "p-0:1")]);
        r.commit("c-0", "g", "sync", OpKind::Ok, &[(0, 2)]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].offsets, vec![0]);
        assert!(found[0].explanation.starts_with("group g "));
    }

    #[test]
    fn a_group_that_never_committed_a_partition_loses_nothing_in_it() {
        let mut r = Run::new();
        three_sends(&mut r);
        r.send_ok("p-0", 3, 1, 0);
        r.commit("c-0", "g", "sync", OpKind::Ok, &[(1, 1)]);
        r.commit("d-0", "other", "sync", OpKind::Ok, &[(0, 3)]);
        r.process("c-0", Some("g"), &[(1, 0, "p-0:3")]);
        let found = r.check(check);
        let lost: Vec<(i32, i64)> = found.iter().map(|a| (a.partition, a.offsets[0])).collect();
        assert_eq!(lost, vec![(0, 0), (0, 1), (0, 2)], "{found:?}");
        assert!(found
            .iter()
            .all(|a| a.explanation.starts_with("group other ")));
    }

    #[test]
    fn positions_only_a_poll_read_count_and_unknown_ones_do_not() {
        let mut r = Run::new();
        r.poll("c-0", &[(0, 1, "x")]);
        r.commit("c-0", "g", "sync", OpKind::Ok, &[(0, 5)]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].offsets.clone(), found[0].values.clone()),
            (vec![1], vec!["x".to_string()])
        );
    }
}
