//! `poll-skip`: a consumer process jumped over records it should have read. For two
//! consecutive ok polls of a partition by one process (no `assign` op of that process in
//! between; see `nonmonotonic_poll`), with the earlier poll's last offset o1 and the later
//! poll's first offset o2 > o1 + 1: if some record is known to exist at an offset strictly
//! between o1 and o2 (an ok ack placed it there, or any ok poll by any process read it
//! there), the process skipped it. A gap where nothing is known is not a skip: control
//! records (transaction markers) and truncation leave offsets without records.
//!
//! Gaps inside one poll are not judged here (a fetch returns what the log held; a value
//! missing there is `lost-write`'s business). One anomaly per skipping pair of polls, at the
//! later poll, listing the skipped offsets with one value each.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, PollPair};

pub const KIND: &str = "poll-skip";
/// At most this many skipped offsets (and their values) are listed per anomaly.
pub const MAX_LISTED: usize = 20;

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.poll_pairs
        .iter()
        .filter(|p| !p.within_one_poll() && p.later.offset > p.earlier.offset.saturating_add(1))
        .filter_map(|p| report(idx, p))
        .collect()
}

fn report(idx: &HistoryIndex, p: &PollPair) -> Option<Anomaly> {
    let (a, b) = (&p.earlier, &p.later);
    // The first observation at each skipped offset: the value it holds and how we know.
    let skipped: Vec<(i64, &Observation)> = idx
        .positions_in(&p.tp, a.offset.saturating_add(1)..b.offset)
        .filter_map(|(o, obs)| Some((o, *obs.first()?)))
        .collect();
    if skipped.is_empty() {
        return None;
    }
    let listed = &skipped[..skipped.len().min(MAX_LISTED)];
    let described: Vec<String> = (listed.iter())
        .map(|(o, ob)| format!("{o} ({}, {})", ob.value, ob.describe()))
        .collect();
    let explanation = format!(
        "{} read {} up to offset {} at {} ms, then its next poll of {} started at offset {} at \
         {} ms, skipping {} offset(s) known to hold records: {}{}",
        p.process,
        p.tp,
        a.offset,
        a.time_ms,
        p.tp,
        b.offset,
        b.time_ms,
        skipped.len(),
        described.join(", "),
        if skipped.len() > MAX_LISTED {
            format!("; the first {MAX_LISTED} are listed")
        } else {
            String::new()
        }
    );
    Some(
        Anomaly::new(KIND, b.time_ms, &p.tp)
            .with_nodes([p.process.as_str()])
            .with_offsets(listed.iter().map(|(o, _)| *o).collect())
            .with_values(listed.iter().map(|(_, ob)| ob.value.clone()).collect())
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn jumping_over_an_acked_record_between_polls_is_a_skip() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 0, 1);
        let c = r.send_ok("p-0", 2, 0, 2);
        r.send_ok("p-0", 3, 0, 3);
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        let t = r.poll("c-0", &[(0, 3, "p-0:3")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        let s = &found[0];
        assert_eq!((s.kind.as_str(), s.partition), ("poll-skip", 0));
        assert_eq!(s.offsets, vec![1, 2]);
        assert_eq!(s.values, vec![b, c]);
        assert_eq!(s.nodes, vec!["c-0"]);
        assert_eq!(s.time_ms, t);
        assert!(s.explanation.contains("up to offset 0") && s.explanation.contains("offset 3"));
        assert!(s.explanation.contains("skipping 2 offset(s)"));
    }

    #[test]
    fn a_record_another_consumer_read_makes_a_gap_a_skip() {
        let mut r = Run::new();
        r.poll("c-1", &[(0, 5, "x")]);
        r.poll("c-0", &[(0, 4, "w")]);
        r.poll("c-0", &[(0, 6, "y")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].offsets.clone(), found[0].values.clone()),
            (vec![5], vec!["x".to_string()])
        );
        assert!(found[0].explanation.contains("read by c-1"));
    }

    #[test]
    fn a_gap_with_nothing_known_in_it_is_not_a_skip() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 3);
        r.send_ok("p-0", 2, 1, 1);
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        r.poll("c-0", &[(0, 3, "p-0:1")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn a_gap_inside_one_poll_is_not_a_skip() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 1);
        r.poll("c-0", &[(0, 0, "a"), (0, 2, "b")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn an_assign_between_two_polls_suppresses_the_skip() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 1);
        r.poll("c-0", &[(0, 0, "a")]);
        r.assign("c-0", None, -1, &[0]);
        r.poll("c-0", &[(0, 2, "b")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn polls_of_other_partitions_in_between_do_not_break_the_pairing() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 1);
        r.poll("c-0", &[(0, 0, "a")]);
        r.poll("c-0", &[(1, 0, "x")]);
        r.poll("c-1", &[(0, 0, "a")]);
        r.poll("c-0", &[(1, 1, "y"), (0, 2, "b")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].partition, found[0].offsets.clone()), (0, vec![1]));
    }

    #[test]
    fn only_twenty_skipped_offsets_are_listed_but_all_are_counted() {
        let mut r = Run::new();
        for seq in 0..30 {
            r.send_ok("p-0", seq, 0, seq as i64);
        }
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        r.poll("c-0", &[(0, 29, "p-0:29")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offsets, (1..=20).collect::<Vec<i64>>());
        assert!(found[0].explanation.contains("skipping 28 offset(s)"));
    }
}
