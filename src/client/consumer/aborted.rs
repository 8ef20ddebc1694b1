//! The `read_committed` filter of a consumer (KAFKA.md §1.11; Kafka's `CompletedFetch`): a
//! fetch up to the LSO returns every record, aborted ones included, plus the aborted
//! transactions `(producer id, first offset)` overlapping it. Walking the records in offset
//! order, a producer becomes "aborted" once its aborted transaction's first offset is reached
//! and stops being so at its ABORT marker; its transactional records in between are dropped.
//! Control records (markers) are never returned. Pure.

use std::collections::{BTreeSet, VecDeque};

use kafka_protocol::records::Record;

use crate::log::ControlType;

/// Decides, record by record, what a `read_committed` consumer returns from one fetched
/// partition.
#[derive(Debug, Clone, Default)]
pub struct AbortedFilter {
    /// Aborted transactions not reached yet, as (first offset, producer id), ascending.
    pending: VecDeque<(i64, i64)>,
    /// Producers inside an aborted transaction at the current position.
    aborted_pids: BTreeSet<i64>,
}

impl AbortedFilter {
    /// A filter for a fetch response's aborted transactions, given as `(producer id, first
    /// offset)` in any order.
    pub fn new(aborted: impl IntoIterator<Item = (i64, i64)>) -> AbortedFilter {
        let mut pending: Vec<(i64, i64)> = aborted.into_iter().map(|(p, f)| (f, p)).collect();
        pending.sort_unstable();
        AbortedFilter {
            pending: pending.into(),
            aborted_pids: BTreeSet::new(),
        }
    }

    /// Whether to return `r`; records must come in offset order. A control record is never
    /// returned, and an ABORT marker ends its producer's aborted transaction; a transactional
    /// record is returned unless its producer is inside an aborted transaction; any other
    /// record is returned. A control record whose key is no readable marker is dropped and
    /// changes nothing.
    pub fn keep(&mut self, r: &Record) -> bool {
        while let Some(&(first_offset, pid)) = self.pending.front() {
            if first_offset > r.offset {
                break;
            }
            self.aborted_pids.insert(pid);
            self.pending.pop_front();
        }
        if r.control {
            let key = r.key.as_deref().unwrap_or_default();
            if ControlType::from_key(key) == Some(ControlType::Abort) {
                self.aborted_pids.remove(&r.producer_id);
            }
            return false;
        }
        !r.transactional || !self.aborted_pids.contains(&r.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::txn_model::producer_batch;
    use crate::log::txn_model::{op, Harness};
    use crate::log::{encode_marker_batch, ControlType};
    use kafka_protocol::records::RecordBatchDecoder;
    use proptest::prelude::*;

    /// Decodes concatenated batches, placing batch `i` at `offsets[i]`.
    fn records(batches: &[(Vec<u8>, i64)]) -> Vec<Record> {
        let mut out = Vec::new();
        for (b, offset) in batches {
            let mut b = b.clone();
            crate::log::set_base_offset(&mut b, *offset);
            let sets = RecordBatchDecoder::decode_all(&mut bytes::Bytes::from(b)).unwrap();
            out.extend(sets.into_iter().flat_map(|s| s.records));
        }
        out
    }

    fn values(n: usize, tag: &str) -> Vec<String> {
        (0..n).map(|i| format!("{tag}{i}")).collect()
    }

    fn kept(filter: &mut AbortedFilter, rs: &[Record]) -> Vec<String> {
        let kept = rs.iter().filter(|r| filter.keep(r));
        let value = |r: &Record| {
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
        };
        kept.map(value).collect()
    }

    #[test]
    fn aborted_records_and_markers_are_dropped_committed_and_plain_ones_kept() {
        let rs = records(&[
            (producer_batch(1, 0, 0, true, &values(2, "a")), 0), // 0-1 aborted
            (producer_batch(2, 0, 0, true, &values(1, "c")), 2), // 2 committed
            (producer_batch(-1, -1, -1, false, &values(1, "p")), 3), // 3 plain
            (
                encode_marker_batch(1, 0, 0, ControlType::Abort, 0).to_vec(),
                4,
            ),
            (
                encode_marker_batch(2, 0, 0, ControlType::Commit, 0).to_vec(),
                5,
            ),
            (producer_batch(1, 0, 2, true, &values(1, "n")), 6), // 6 pid 1's next txn, committed
            (
                encode_marker_batch(1, 0, 0, ControlType::Commit, 0).to_vec(),
                7,
            ),
        ]);
        let mut filter = AbortedFilter::new([(1, 0)]);
        assert_eq!(kept(&mut filter, &rs), vec!["c0", "p0", "n0"]);
        let mut read_uncommitted = AbortedFilter::new([]);
        assert_eq!(
            kept(&mut read_uncommitted, &rs),
            vec!["a0", "a1", "c0", "p0", "n0"]
        );
    }

    #[test]
    fn a_producer_is_aborted_only_from_its_transactions_first_offset_to_its_abort_marker() {
        let rs = records(&[
            (producer_batch(1, 0, 0, true, &values(1, "x")), 0), // committed before
            (
                encode_marker_batch(1, 0, 0, ControlType::Commit, 0).to_vec(),
                1,
            ),
            (producer_batch(1, 0, 1, true, &values(2, "y")), 2), // aborted, from 2
            (
                encode_marker_batch(1, 0, 0, ControlType::Abort, 0).to_vec(),
                4,
            ),
            (producer_batch(1, 0, 3, true, &values(1, "z")), 5), // aborted again, from 5
            (
                encode_marker_batch(1, 0, 0, ControlType::Abort, 0).to_vec(),
                6,
            ),
        ]);
        // Unordered input; a fetch starting mid-transaction sees its entry too.
        let mut filter = AbortedFilter::new([(1, 5), (1, 2)]);
        assert_eq!(kept(&mut filter, &rs), vec!["x0"]);
        let mut from_mid = AbortedFilter::new([(1, 2), (1, 5)]);
        assert_eq!(kept(&mut from_mid, &rs[3..]), Vec::<String>::new());
    }

    #[test]
    fn a_control_record_without_a_marker_key_is_dropped_and_changes_nothing() {
        let mut rs = records(&[
            (producer_batch(1, 0, 0, true, &values(1, "a")), 0),
            (
                encode_marker_batch(1, 0, 0, ControlType::Abort, 0).to_vec(),
                1,
            ),
            (producer_batch(1, 0, 1, true, &values(1, "b")), 2),
        ]);
        rs[1].key = Some(bytes::Bytes::from_static(&[0, 0]));
        let mut filter = AbortedFilter::new([(1, 0)]);
        assert_eq!(
            kept(&mut filter, &rs),
            Vec::<String>::new(),
            "pid 1 stays aborted"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// End to end over the log model's random histories: reading the log up to the LSO
        /// and filtering with the log's aborted transactions yields exactly the records of
        /// committed transactions and the non-transactional records below the LSO.
        #[test]
        fn read_committed_sees_exactly_the_committed_records_below_the_lso(
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let mut h = Harness::new();
            for op in &ops {
                h.apply(op)?;
                let lso = h.log.last_stable_offset(h.model.hw());
                let aborted = h.log.aborted_txns(0, lso);
                let mut filter = AbortedFilter::new(aborted.iter().map(|t| (t.producer_id, t.first_offset)));
                let bytes = h.log.read(0, usize::MAX).unwrap().bytes;
                let sets = RecordBatchDecoder::decode_all(&mut bytes::Bytes::from(bytes)).unwrap();
                let below: Vec<Record> = sets.into_iter().flat_map(|s| s.records).filter(|r| r.offset < lso).collect();
                prop_assert!(below.windows(2).all(|w| w[0].offset < w[1].offset));
                prop_assert_eq!(kept(&mut filter, &below), h.model.committed_values(lso), "after {:?}", op);
            }
        }
    }
}
