//! `reorder`: one producer's messages a and b, with a sent before b (a.seq < b.seq), found in
//! one partition with offset(a) > offset(b). One anomaly per (producer, partition), naming the
//! first offending pair in send order and counting all of them.
//!
//! A message's position comes from reads when there are any (they show where it sits in the
//! log now), else from its ack. A message read at several offsets is a `duplicate`; for
//! ordering its lowest read position counts.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, Source, Tp};
use std::collections::BTreeMap;

pub const KIND: &str = "reorder";

/// A producer's message with the position this checker attributes to it.
struct Placed<'a> {
    seq: u64,
    offset: i64,
    value: &'a str,
    /// When that position was first observed.
    known_ms: u64,
}

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    let mut groups: BTreeMap<(&str, &Tp), Vec<Placed>> = BTreeMap::new();
    for (value, obs) in idx.values() {
        let (Some(send), Some(at)) = (idx.first_send_of(value), position(&obs)) else {
            continue;
        };
        let placed = Placed {
            seq: send.seq,
            offset: at.offset,
            value,
            known_ms: at.time_ms,
        };
        groups
            .entry((send.process.as_str(), &at.tp))
            .or_default()
            .push(placed);
    }
    groups
        .into_iter()
        .filter_map(|((p, tp), msgs)| report(p, tp, msgs))
        .collect()
}

/// Reads take priority over acks; `min_by_key` keeps the first of equals, and `obs` is in time
/// order, so the result is the first observation of the chosen position.
fn position<'a>(obs: &[&'a Observation]) -> Option<&'a Observation> {
    let key = |o: &&&Observation| (o.tp.clone(), o.offset);
    let read = obs
        .iter()
        .filter(|o| o.source == Source::Read)
        .min_by_key(key);
    read.or_else(|| obs.iter().min_by_key(key)).copied()
}

fn report(producer: &str, tp: &Tp, mut msgs: Vec<Placed>) -> Option<Anomaly> {
    msgs.sort_by(|a, b| (a.seq, a.offset, a.value).cmp(&(b.seq, b.offset, b.value)));
    let (a, b) = first_pair(&msgs)?;
    let pairs = count_inversions(msgs.iter().map(|m| m.offset).collect());
    let explanation =
        format!(
        "{producer} sent {} (seq {}) before {} (seq {}) but in {tp} {} is at offset {} and {} at \
         offset {}; {pairs} out-of-order pair(s) among {} of its messages in {tp}",
        a.value, a.seq, b.value, b.seq, a.value, a.offset, b.value, b.offset, msgs.len()
    );
    Some(
        Anomaly::new(KIND, a.known_ms.max(b.known_ms), tp)
            .with_nodes([producer])
            .with_offsets(vec![a.offset, b.offset])
            .with_values(vec![a.value.to_string(), b.value.to_string()])
            .explained(explanation),
    )
}

/// The first message (in send order) placed below an earlier one, paired with the earlier
/// message at the highest offset so far. `msgs` is sorted by seq.
fn first_pair<'m, 'a>(msgs: &'m [Placed<'a>]) -> Option<(&'m Placed<'a>, &'m Placed<'a>)> {
    let mut top = msgs.first()?;
    for m in &msgs[1..] {
        if m.offset < top.offset && m.seq > top.seq {
            return Some((top, m));
        }
        if m.offset > top.offset {
            top = m;
        }
    }
    None
}

/// Pairs i < j with xs[i] > xs[j].
fn count_inversions(xs: Vec<i64>) -> u64 {
    sort_counting(&xs).1
}

/// Merge sort that counts inversions on the way: O(n log n), since a run can hold many
/// thousands of messages per producer and partition.
fn sort_counting(xs: &[i64]) -> (Vec<i64>, u64) {
    if xs.len() < 2 {
        return (xs.to_vec(), 0);
    }
    let (left, lc) = sort_counting(&xs[..xs.len() / 2]);
    let (right, rc) = sort_counting(&xs[xs.len() / 2..]);
    let mut out = Vec::with_capacity(xs.len());
    let (mut i, mut j, mut count) = (0, 0, lc + rc);
    while i < left.len() && j < right.len() {
        if left[i] <= right[j] {
            out.push(left[i]);
            i += 1;
        } else {
            // Every remaining left element is greater than right[j] and came before it.
            count += (left.len() - i) as u64;
            out.push(right[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Run;

    #[test]
    fn a_later_send_at_a_lower_offset_is_a_reorder() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 2);
        r.send_ok("p-0", 2, 0, 1);
        r.send_ok("p-0", 3, 0, 3);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].partition, found[0].offsets.clone()),
            (0, vec![2, 1])
        );
        assert_eq!(found[0].values, vec!["p-0:1", "p-0:2"]);
        assert_eq!(found[0].nodes, vec!["p-0"]);
        assert_eq!(found[0].time_ms, r.ack_time("p-0:2"));
        assert!(found[0]
            .explanation
            .contains("1 out-of-order pair(s) among 4"));
    }

    #[test]
    fn read_offsets_take_priority_over_acks() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.poll("c-0", &[(0, 0, "p-0:1"), (0, 1, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].offsets, vec![1, 0]);
    }

    #[test]
    fn interleaving_producers_and_partitions_is_not_a_reorder() {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 1);
        r.send_ok("p-1", 0, 0, 0);
        r.send_ok("p-0", 1, 1, 0);
        r.send_ok("p-0", 2, 0, 2);
        r.poll(
            "c-0",
            &[
                (0, 0, "p-1:0"),
                (0, 1, "p-0:0"),
                (0, 2, "p-0:2"),
                (1, 0, "p-0:1"),
            ],
        );
        assert!(r.check(check).is_empty());
    }

    #[test]
    fn inversions_are_counted_in_full() {
        assert_eq!(count_inversions(vec![]), 0);
        assert_eq!(count_inversions(vec![1, 2, 3]), 0);
        assert_eq!(count_inversions(vec![3, 2, 1]), 3);
        assert_eq!(count_inversions(vec![2, 4, 1, 3, 5]), 3);
        assert_eq!(count_inversions(vec![1, 1, 0]), 2);
    }
}
