//! `lost-write`: a send acknowledged at (topic, partition, offset) whose value no poll ever
//! read, although a consumer read across that offset: it read the partition at or below the
//! offset and also above it. Consumers read partitions in offset order, so reading past an
//! acknowledged offset without meeting its value means the log no longer holds it there. A
//! consumer that only ever read above the offset (one that started at `latest`, or took the
//! partition over from a committed offset) proves nothing about it.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, SendOutcome, SendRecord};

pub const KIND: &str = "lost-write";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.sends.iter().filter_map(|s| report(idx, s)).collect()
}

/// The reads that prove `send` lost (time order), or `None` if it is not a lost write.
/// Shared with `unseen`, which must not report the same value twice.
pub(crate) fn evidence<'a>(
    idx: &'a HistoryIndex,
    send: &SendRecord,
) -> Option<Vec<&'a Observation>> {
    if send.outcome != SendOutcome::Ok || idx.was_read(&send.value) {
        return None;
    }
    let (tp, offset) = send.ack.as_ref()?;
    let crossed = idx.readers_at_or_below(tp, *offset);
    let above: Vec<&Observation> = idx.reads_above(tp, *offset).into_iter().filter(|o| crossed.contains(o.process.as_str())).collect();
    (!above.is_empty()).then_some(above)
}

fn report(idx: &HistoryIndex, send: &SendRecord) -> Option<Anomaly> {
    let above = evidence(idx, send)?;
    let (tp, offset) = send.ack.as_ref()?;
    let top = idx.max_read(tp)?;
    let first = above[0];
    let explanation =
        format!(
        "{} was acknowledged to {} at {} offset {} at {} ms but no poll ever read it, although \
         polls read {} up to offset {} (first past it: offset {} {})",
        send.value, send.process, tp, offset, send.time_ms, tp, top.offset, first.offset,
        first.describe()
    );
    let nodes = [send.process.as_str(), top.process.as_str()];
    Some(
        Anomaly::new(KIND, send.time_ms, tp)
            .with_nodes(nodes)
            .with_offsets(vec![*offset, top.offset])
            .with_values(vec![send.value.clone()])
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::Run;

    #[test]
    fn an_acked_write_skipped_by_a_later_read_is_lost() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 0, 1);
        r.send_ok("p-0", 2, 0, 2);
        r.poll("c-0", &[(0, 0, "p-0:0"), (0, 2, "p-0:2")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        let lw = &found[0];
        assert_eq!((lw.kind.as_str(), lw.partition), ("lost-write", 0));
        assert_eq!(lw.offsets, vec![1, 2]);
        assert_eq!(lw.values, vec![b.clone()]);
        assert_eq!(lw.nodes, vec!["c-0".to_string(), "p-0".to_string()]);
        assert_eq!(lw.time_ms, r.ack_time(&b));
        assert!(lw.explanation.contains("offset 1") && lw.explanation.contains("up to offset 2"));
    }

    #[test]
    fn reads_only_above_the_offset_prove_nothing() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.send_ok("p-0", 2, 0, 2);
        // A consumer that started at the end of the partition (auto.offset.reset=latest).
        r.poll("c-0", &[(0, 2, "p-0:2")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn an_info_send_that_was_never_read_is_not_lost() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_unacked("p-0", 1, OpKind::Info);
        r.send_ok("p-0", 2, 0, 1);
        r.poll("c-0", &[(0, 0, "p-0:0"), (0, 1, "p-0:2")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn an_acked_write_above_everything_read_is_not_lost() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn a_write_read_at_another_offset_is_not_lost() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 5);
        r.poll("c-0", &[(0, 0, "p-0:0"), (0, 1, "p-0:1"), (0, 9, "x")]);
        assert!(r.check(check).is_empty());
    }
}
