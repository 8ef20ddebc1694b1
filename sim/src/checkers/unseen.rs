//! `unseen`: a send acknowledged `ok` whose value no poll read by the end of the history.
//! Usually many values at once (a consumer that stopped early), so this reports one anomaly
//! per partition. Values that are `lost-write` are left to that checker.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, SendOutcome, SendRecord, Tp};
use super::lost_write;
use std::collections::BTreeMap;

pub const KIND: &str = "unseen";
/// At most this many values (and their offsets) are listed per anomaly.
pub const MAX_LISTED: usize = 20;

/// An ok ack without a position cannot be placed; it is grouped under partition -1, offset -1.
const UNKNOWN: i64 = -1;

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    let mut by_tp: BTreeMap<Tp, Vec<(i64, &SendRecord)>> = BTreeMap::new();
    for s in idx.sends.iter().filter(|s| is_unseen(idx, s)) {
        let (tp, offset) = match &s.ack {
            Some((tp, o)) => (tp.clone(), *o),
            None => (Tp::new(&s.topic, UNKNOWN as i32), UNKNOWN),
        };
        by_tp.entry(tp).or_default().push((offset, s));
    }
    by_tp
        .into_iter()
        .map(|(tp, sends)| report(idx, &tp, sends))
        .collect()
}

fn is_unseen(idx: &HistoryIndex, s: &SendRecord) -> bool {
    s.outcome == SendOutcome::Ok
        && !idx.was_read(&s.value)
        && lost_write::evidence(idx, s).is_none()
}

fn report(idx: &HistoryIndex, tp: &Tp, mut sends: Vec<(i64, &SendRecord)>) -> Anomaly {
    sends.sort_by(|a, b| (a.0, &a.1.value).cmp(&(b.0, &b.1.value)));
    let total = sends.len();
    let listed = &sends[..total.min(MAX_LISTED)];
    let (lo, hi) = (sends[0].0, sends[total - 1].0);
    let explanation = format!(
        "{total} acknowledged value(s) in {tp} (offsets {lo} to {hi}) were never read by any \
         poll by the end of the history at {} ms{}",
        idx.end_ms,
        if total > MAX_LISTED {
            format!("; the first {MAX_LISTED} are listed")
        } else {
            String::new()
        }
    );
    Anomaly::new(KIND, idx.end_ms, tp)
        .with_nodes(sends.iter().map(|(_, s)| s.process.as_str()))
        .with_offsets(listed.iter().map(|(o, _)| *o).collect())
        .with_values(listed.iter().map(|(_, s)| s.value.clone()).collect())
        .explained(explanation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::Run;

    #[test]
    fn acked_values_nobody_read_are_unseen_once_per_partition() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.send_ok("p-1", 0, 0, 2);
        r.send_ok("p-1", 1, 1, 0);
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].partition, found[0].offsets.clone()),
            (0, vec![1, 2])
        );
        assert_eq!(found[0].values, vec!["p-0:1", "p-1:0"]);
        assert_eq!(found[0].nodes, vec!["p-0", "p-1"]);
        assert!(found[0]
            .explanation
            .starts_with("2 acknowledged value(s) in orders/0"));
        assert_eq!(
            (found[1].partition, found[1].values.clone()),
            (1, vec!["p-1:1".to_string()])
        );
    }

    #[test]
    fn a_failed_send_never_read_is_not_unseen() {
        let mut r = Run::new();
        r.send_unacked("p-0", 0, OpKind::Fail);
        r.send_unacked("p-0", 1, OpKind::Info);
        r.send_ok("p-0", 2, 0, 0);
        r.poll("c-0", &[(0, 0, "p-0:2")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn a_lost_write_is_not_also_unseen() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.send_ok("p-0", 2, 0, 2);
        r.poll("c-0", &[(0, 0, "p-0:0"), (0, 2, "p-0:2")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn only_twenty_values_are_listed_but_all_are_counted() {
        let mut r = Run::new();
        for seq in 0..25 {
            r.send_ok("p-0", seq, 0, seq as i64);
        }
        let found = r.check(check);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].values.len(), MAX_LISTED);
        assert_eq!(found[0].offsets, (0..20).collect::<Vec<i64>>());
        assert!(found[0].explanation.starts_with("25 acknowledged value(s)"));
    }
}
