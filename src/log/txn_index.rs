//! What a partition log remembers of ended transactions (KAFKA.md §1.11; Kafka's
//! `ProducerStateManager.unreplicatedTxns`, `TransactionIndex`): the completed transactions whose
//! marker may not be below the high watermark yet, which still hold the last stable offset back,
//! and the aborted-transaction index a `read_committed` fetch answers from. Open transactions
//! live in the producer entries. Pure, and rebuilt with them whenever the log is replayed.

use std::collections::BTreeMap;

use super::producer_state::CompletedTxn;

/// One aborted transaction on this partition: its first data offset and its marker's offset.
/// A fetch returns `(producer_id, first_offset)` of those it overlaps, so a `read_committed`
/// consumer can drop their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the ABORT marker.
    pub last_offset: i64,
}

/// Completed transactions that still matter for the LSO, and every aborted one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TxnIndex {
    /// Completed transactions by marker offset, kept until `on_high_watermark` passes their
    /// marker: a marker not yet below the HW may still be truncated away, reopening its
    /// transaction, so the transaction counts as unstable until then.
    unreplicated: BTreeMap<i64, CompletedTxn>,
    /// Every aborted transaction by marker offset (offsets are unique, so is the key).
    aborted: BTreeMap<i64, AbortedTxn>,
}

impl TxnIndex {
    /// Notes a transaction a marker just ended.
    pub fn complete(&mut self, txn: CompletedTxn) {
        self.unreplicated.insert(txn.last_offset, txn);
        if txn.aborted {
            let aborted = AbortedTxn {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
            };
            self.aborted.insert(txn.last_offset, aborted);
        }
    }

    /// Forgets completed transactions whose marker is below `high_watermark`: they can no
    /// longer hold the LSO back at this or any higher HW. Only a memory bound; see
    /// [`TxnIndex::last_stable_offset`] for the HW this must not exceed.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.unreplicated = self.unreplicated.split_off(&high_watermark);
    }

    /// `min(hw, first offset of any open transaction, first offset of any completed
    /// transaction whose marker is at or above hw)` (Kafka's `firstUnstableOffset` bounded by
    /// the HW). Exact for any `high_watermark` at or above the largest one given to
    /// `on_high_watermark` since the index was last rebuilt.
    pub fn last_stable_offset(&self, high_watermark: i64, first_ongoing: Option<i64>) -> i64 {
        let unreplicated = self.unreplicated.range(high_watermark..);
        let first_completed = unreplicated.map(|(_, t)| t.first_offset).min();
        [Some(high_watermark), first_ongoing, first_completed]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(high_watermark)
    }

    /// Aborted transactions overlapping the fetch range `[from_offset, upper)`
    /// (`last_offset >= from_offset && first_offset < upper`), by first offset.
    pub fn aborted_txns(&self, from_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        let overlapping = self.aborted.range(from_offset..).map(|(_, t)| *t);
        let mut out: Vec<AbortedTxn> = overlapping.filter(|t| t.first_offset < upper).collect();
        out.sort_by_key(|t| t.first_offset);
        out
    }

    pub fn clear(&mut self) {
        self.unreplicated.clear();
        self.aborted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(pid: i64, first_offset: i64, last_offset: i64, aborted: bool) -> CompletedTxn {
        CompletedTxn {
            producer_id: pid,
            first_offset,
            last_offset,
            aborted,
        }
    }

    fn aborted(pid: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset,
            last_offset,
        }
    }

    #[test]
    fn the_lso_is_the_hw_without_transactions() {
        let idx = TxnIndex::default();
        assert_eq!(idx.last_stable_offset(7, None), 7);
        assert_eq!(idx.last_stable_offset(7, Some(9)), 7);
        assert_eq!(idx.last_stable_offset(7, Some(3)), 3);
    }

    #[test]
    fn a_completed_transaction_is_unstable_until_its_marker_is_below_the_hw() {
        let mut idx = TxnIndex::default();
        idx.complete(done(1, 2, 6, false));
        assert_eq!(idx.last_stable_offset(5, None), 2);
        assert_eq!(
            idx.last_stable_offset(6, None),
            2,
            "the marker itself is not below"
        );
        assert_eq!(idx.last_stable_offset(7, None), 7);
        assert_eq!(idx.last_stable_offset(7, Some(4)), 4);
        idx.on_high_watermark(6);
        assert_eq!(
            idx.last_stable_offset(6, None),
            2,
            "kept: marker 6 is not below hw 6"
        );
        idx.on_high_watermark(7);
        assert_eq!(idx.unreplicated.len(), 0);
        assert_eq!(idx.last_stable_offset(7, None), 7);
    }

    #[test]
    fn aborted_txns_are_the_overlapping_ones_by_first_offset() {
        let mut idx = TxnIndex::default();
        idx.complete(done(1, 0, 9, true)); // [0, 9]
        idx.complete(done(2, 3, 5, true)); // [3, 5]
        idx.complete(done(3, 6, 7, false)); // committed: never listed
        idx.complete(done(4, 10, 12, true)); // [10, 12]
        let pids = |idx: &TxnIndex, from, upper| -> Vec<i64> {
            idx.aborted_txns(from, upper)
                .iter()
                .map(|t| t.producer_id)
                .collect()
        };
        assert_eq!(
            idx.aborted_txns(0, 100),
            vec![aborted(1, 0, 9), aborted(2, 3, 5), aborted(4, 10, 12)]
        );
        assert_eq!(
            pids(&idx, 5, 100),
            vec![1, 2, 4],
            "a marker at from still overlaps"
        );
        assert_eq!(pids(&idx, 6, 100), vec![1, 4]);
        assert_eq!(
            pids(&idx, 0, 3),
            vec![1],
            "first offset at upper is outside"
        );
        assert_eq!(pids(&idx, 0, 4), vec![1, 2]);
        assert_eq!(pids(&idx, 10, 11), vec![4]);
        assert_eq!(pids(&idx, 13, 20), Vec::<i64>::new());
        idx.on_high_watermark(100);
        assert_eq!(
            pids(&idx, 0, 100),
            vec![1, 2, 4],
            "the HW never prunes the aborted index"
        );
        idx.clear();
        assert_eq!(idx, TxnIndex::default());
    }
}
