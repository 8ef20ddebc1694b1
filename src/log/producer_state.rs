//! The idempotent and transactional producer state of one partition (KIP-98/KIP-360; Kafka's
//! `ProducerStateManager`, `ProducerStateEntry`, `ProducerAppendInfo`): per producer id the
//! current epoch, the sequence/offset ranges of the last [`NUM_BATCHES_TO_RETAIN`] batches, the
//! first offset of its open transaction and the epoch of the coordinator that last ended one.
//! `check` validates a client batch (duplicate, fenced epoch, sequence gap, non-transactional
//! write inside a transaction); `record` applies an append without validation (leader after a
//! successful check, follower, log replay). `check_marker`/`apply_marker` do the same for the
//! transaction markers that end a transaction. Pure.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::control::ControlType;

/// How many batches per producer are kept to answer retries as duplicates (Kafka's value).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// The coordinator epoch of a producer no marker has been seen for (Kafka's `-1`).
pub const UNKNOWN_COORDINATOR_EPOCH: i32 = -1;

/// The sequence `inc` after `seq`, wrapping from `i32::MAX` to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(seq: i32, inc: i32) -> i32 {
    if i64::from(seq) + i64::from(inc) > i64::from(i32::MAX) {
        // Here seq > i32::MAX - inc with inc > 0 and seq > 0, so nothing below overflows.
        inc - (i32::MAX - seq) - 1
    } else {
        // Only input outside Kafka's domain (negative sequences) can wrap here; never panic.
        seq.wrapping_add(inc)
    }
}

/// Sequence and offset range of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What the partition knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`NUM_BATCHES_TO_RETAIN`], all of epoch `epoch`.
    batches: VecDeque<BatchMetadata>,
    /// The largest batch timestamp appended (Kafka's `lastTimestamp`), for expiry.
    last_timestamp: i64,
    /// The offset of the first batch of the producer's open transaction on this partition
    /// (Kafka's `currentTxnFirstOffset`); `None` when no transaction is open.
    current_txn_first_offset: Option<i64>,
    /// The epoch of the coordinator that wrote the last marker for this producer
    /// ([`UNKNOWN_COORDINATOR_EPOCH`] before any); markers from older coordinators are fenced.
    coordinator_epoch: i32,
    /// The entry was created by a marker, so nothing is known of the sequences of its epoch:
    /// the next batch of that epoch is accepted at any sequence (see [`ProducerStateManager::apply_marker`]).
    sequence_unknown: bool,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: i64::MIN,
            current_txn_first_offset: None,
            coordinator_epoch: UNKNOWN_COORDINATOR_EPOCH,
            sequence_unknown: false,
        }
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The retained batches, oldest first.
    pub fn batches(&self) -> &VecDeque<BatchMetadata> {
        &self.batches
    }

    /// The last sequence appended in the current epoch, if any batch is retained.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// The first offset of the producer's open transaction, if one is open.
    pub fn current_txn_first_offset(&self) -> Option<i64> {
        self.current_txn_first_offset
    }

    /// The epoch of the coordinator that wrote this producer's last marker (-1: none seen).
    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// Adopts `epoch`; a different one (higher or lower) clears the retained batches, which
    /// belong to the old epoch (Kafka's `maybeUpdateProducerEpoch`).
    fn update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
            self.sequence_unknown = false;
        }
    }
}

/// The verdict on a client batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it (then `record` it).
    Append,
    /// A retry of a retained batch: answer success with these original offsets, do not append.
    Duplicate { first_offset: i64, last_offset: i64 },
}

/// A transaction a marker has ended on this partition: its first data offset, the marker's
/// offset, and whether it was aborted (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the marker.
    pub last_offset: i64,
    pub aborted: bool,
}

/// Why a client batch or a marker is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerStateError {
    /// The batch's (or marker's) epoch is older than the producer's current one (a fenced
    /// zombie).
    InvalidProducerEpoch { current: i16, got: i16 },
    /// The batch's first sequence is not the next one expected.
    OutOfOrderSequence { expected: i32, got: i32 },
    /// A non-transactional batch from a producer whose transaction starting at `txn_first_offset`
    /// is still open (Kafka's `INVALID_TXN_STATE`).
    InvalidTxnState { txn_first_offset: i64 },
    /// A marker from a coordinator older than the one that wrote the producer's last marker
    /// (Kafka's `TRANSACTION_COORDINATOR_FENCED`).
    CoordinatorFenced { current: i32, got: i32 },
}

impl fmt::Display for ProducerStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidProducerEpoch { current, got } => {
                write!(
                    f,
                    "producer epoch {got} is older than current epoch {current}"
                )
            }
            Self::OutOfOrderSequence { expected, got } => {
                write!(f, "out of order sequence: expected {expected}, got {got}")
            }
            Self::InvalidTxnState { txn_first_offset } => write!(
                f,
                "non-transactional batch while the producer's transaction from offset \
                 {txn_first_offset} is open"
            ),
            Self::CoordinatorFenced { current, got } => write!(
                f,
                "coordinator epoch {got} is older than current coordinator epoch {current}"
            ),
        }
    }
}

impl std::error::Error for ProducerStateError {}

/// The producer state of one partition. Producer ids below 0 are not idempotent: never checked,
/// never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    entries: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a client-origin batch, in Kafka's order: duplicate, fenced epoch, epoch bump
    /// (must start at sequence 0), next sequence in the same epoch, and last, a
    /// non-transactional batch while the producer has a transaction open (`InvalidTxnState`,
    /// checked after the sequence as in Kafka's `ProducerAppendInfo.appendDataBatch`). An
    /// unknown producer id (never seen, or its state lost) is accepted at any sequence, as
    /// Kafka does.
    ///
    /// An entry with an epoch but no retained batch expects sequence 0 (Kafka's `NO_SEQUENCE`
    /// is -1 and `inSequence(-1, s)` holds only for `s == 0`): that is an entry whose epoch a
    /// marker bumped (transaction version 2 restarts sequences at 0 under the new epoch). The
    /// exception is an entry a marker created for an unknown producer: its sequences are as
    /// unknown as the producer was, so the first batch of that epoch is accepted at any sequence.
    pub fn check(
        &self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        transactional: bool,
    ) -> Result<SequenceCheck, ProducerStateError> {
        let Some(entry) = self.entries.get(&pid).filter(|_| pid >= 0) else {
            return Ok(SequenceCheck::Append);
        };
        // Kafka's `batchWithSequenceRange` takes the first (oldest) match.
        let same = |b: &&BatchMetadata| b.first_seq == first_seq && b.last_seq == last_seq;
        if let Some(b) = entry
            .batches
            .iter()
            .find(same)
            .filter(|_| epoch == entry.epoch)
        {
            let (first_offset, last_offset) = (b.first_offset, b.last_offset);
            crate::sometimes!("duplicate_batch");
            return Ok(SequenceCheck::Duplicate {
                first_offset,
                last_offset,
            });
        }
        if epoch < entry.epoch {
            let (current, got) = (entry.epoch, epoch);
            return Err(ProducerStateError::InvalidProducerEpoch { current, got });
        }
        let expected = match entry.last_seq() {
            Some(last) if epoch == entry.epoch => Some(increment_sequence(last, 1)),
            None if epoch == entry.epoch && entry.sequence_unknown => None,
            _ => Some(0), // an epoch bump, or an entry without batches (see above)
        };
        if let Some(expected) = expected.filter(|e| *e != first_seq) {
            let got = first_seq;
            return Err(ProducerStateError::OutOfOrderSequence { expected, got });
        }
        match entry.current_txn_first_offset {
            Some(txn_first_offset) if !transactional => {
                Err(ProducerStateError::InvalidTxnState { txn_first_offset })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended data batch without validating it. Any epoch different from the
    /// stored one, higher (a bump) or lower (stale replicated data), becomes the entry's epoch
    /// and clears the retained batches: this is Kafka's `ProducerStateEntry.maybeUpdateProducerEpoch`,
    /// which replication-origin appends reach after only a warning. The newest batch always wins.
    /// A transactional batch opens a transaction at `first_offset` unless one is open; a
    /// non-transactional one leaves an open transaction alone (only replicated data can do
    /// that, the leader refused it with `InvalidTxnState`).
    #[allow(clippy::too_many_arguments)] // one batch header's fields, as `check` takes them
    pub fn record(
        &mut self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        first_offset: i64,
        last_offset: i64,
        transactional: bool,
    ) {
        if pid < 0 {
            return;
        }
        let entry = self
            .entries
            .entry(pid)
            .or_insert_with(|| ProducerEntry::new(epoch));
        entry.update_epoch(epoch);
        entry.sequence_unknown = false;
        while entry.batches.len() >= NUM_BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        let batch = BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset,
        };
        entry.batches.push_back(batch);
        if transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
        }
    }

    /// Checks a marker the coordinator asks the leader to write, in Kafka's order
    /// (`ProducerAppendInfo.appendEndTxnMarker`): a marker epoch older than the producer's is
    /// `InvalidProducerEpoch`, then a coordinator epoch older than the last one seen is
    /// `CoordinatorFenced`. The epoch rule is transaction version 1's (`>=`); it also admits
    /// version 2's bumped epochs, and a retried version 2 marker (same epoch) is tolerated as
    /// Kafka does since KAFKA-19999. An unknown producer accepts any marker.
    pub fn check_marker(
        &self,
        pid: i64,
        marker_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerStateError> {
        let Some(entry) = self.entries.get(&pid).filter(|_| pid >= 0) else {
            return Ok(());
        };
        if marker_epoch < entry.epoch {
            let (current, got) = (entry.epoch, marker_epoch);
            return Err(ProducerStateError::InvalidProducerEpoch { current, got });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            let (current, got) = (entry.coordinator_epoch, coordinator_epoch);
            return Err(ProducerStateError::CoordinatorFenced { current, got });
        }
        Ok(())
    }

    /// Applies a marker at `marker_offset` without validating it (leader after `check_marker`,
    /// follower, log replay): closes the producer's open transaction, returning it, or returns
    /// `None` when none was open (an empty transaction leaves no trace in the LSO or the aborted
    /// index, as in Kafka). The marker's coordinator epoch becomes the known one.
    ///
    /// A marker epoch different from the entry's becomes its epoch and clears the retained
    /// batches (transaction version 2: EndTxn bumps the epoch, the marker carries the new one
    /// and the producer restarts at sequence 0); the same epoch keeps them (version 1: the
    /// producer continues its sequences in the next transaction). A marker for an unknown
    /// producer creates an entry with that epoch and no batches; as nothing tells the two
    /// versions apart there, the entry accepts its epoch's next batch at any sequence, like an
    /// unknown producer (a version 2 producer sends 0, a version 1 producer whose state was
    /// lost sends whatever it is at).
    pub fn apply_marker(
        &mut self,
        pid: i64,
        marker_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
        marker_offset: i64,
    ) -> Option<CompletedTxn> {
        if pid < 0 {
            return None;
        }
        let entry = self.entries.entry(pid).or_insert_with(|| ProducerEntry {
            sequence_unknown: true,
            ..ProducerEntry::new(marker_epoch)
        });
        entry.update_epoch(marker_epoch);
        entry.coordinator_epoch = coordinator_epoch;
        let first_offset = entry.current_txn_first_offset.take()?;
        Some(CompletedTxn {
            producer_id: pid,
            first_offset,
            last_offset: marker_offset,
            aborted: kind == ControlType::Abort,
        })
    }

    /// Notes a batch timestamp for `pid` (Kafka keeps the largest as `lastTimestamp`).
    pub fn touch(&mut self, pid: i64, timestamp: i64) {
        if let Some(e) = self.entries.get_mut(&pid) {
            e.last_timestamp = e.last_timestamp.max(timestamp);
        }
    }

    /// Forgets producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (`producer.id.expiration.ms`, KIP-854); returns how many. A forgotten producer's next
    /// batch is accepted with any sequence, so a late retry can then be a duplicate. A producer
    /// with an open transaction is never forgotten (Kafka's `isProducerExpired`): its first
    /// offset holds the LSO back until a marker ends it.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.entries.len()
    }

    /// Open transactions as `(producer id, first offset)`, by producer id.
    pub fn ongoing_txns(&self) -> Vec<(i64, i64)> {
        let open = self.entries.iter();
        open.filter_map(|(pid, e)| Some((*pid, e.current_txn_first_offset?)))
            .collect()
    }

    /// The smallest first offset of any open transaction (Kafka's `firstUnstableOffset`
    /// before markers are taken into account).
    pub fn first_ongoing_offset(&self) -> Option<i64> {
        let open = self.entries.values();
        open.filter_map(|e| e.current_txn_first_offset).min()
    }

    /// Forgets every producer (before rebuilding the state by replaying the log).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn entry(&self, pid: i64) -> Option<&ProducerEntry> {
        self.entries.get(&pid)
    }

    /// Number of producer ids with state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ProducerStateError::*;
    use SequenceCheck::*;

    /// Records batches of `lens` records for `pid`/`epoch` from `seq` at offsets from `offset`.
    fn feed(m: &mut ProducerStateManager, pid: i64, epoch: i16, mut seq: i32, lens: &[i32]) {
        let mut offset = 100;
        for &n in lens {
            let last = increment_sequence(seq, n - 1);
            m.record(pid, epoch, seq, last, offset, offset + i64::from(n) - 1, false);
            offset += i64::from(n);
            seq = increment_sequence(last, 1);
        }
    }

    fn oos(expected: i32, got: i32) -> Result<SequenceCheck, ProducerStateError> {
        Err(OutOfOrderSequence { expected, got })
    }

    fn dup(first_offset: i64, last_offset: i64) -> Result<SequenceCheck, ProducerStateError> {
        Ok(Duplicate {
            first_offset,
            last_offset,
        })
    }

    #[test]
    fn increment_wraps_at_i32_max() {
        assert_eq!(increment_sequence(0, 1), 1);
        assert_eq!(increment_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(increment_sequence(-1, 1), 0);
    }

    #[test]
    fn next_sequence_is_appended_and_wraps() {
        let mut m = ProducerStateManager::new();
        feed(&mut m, 7, 0, i32::MAX - 3, &[3]); // MAX-3 ..= MAX-1
        assert_eq!(m.check(7, 0, i32::MAX, 1, false), Ok(Append)); // MAX, 0, 1
        m.record(7, 0, i32::MAX, 1, 103, 105, false);
        assert_eq!(m.check(7, 0, 2, 2, false), Ok(Append));
        assert_eq!(m.check(7, 0, 3, 3, false), oos(2, 3));
        assert_eq!(m.check(7, 0, 1, 1, false), oos(2, 1));
        assert_eq!(m.check(7, 0, i32::MAX, 1, false), dup(103, 105));
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut m = ProducerStateManager::new();
        feed(&mut m, 1, 0, 0, &[2, 2, 2, 2, 2, 2]); // seqs 0-1 .. 10-11, offsets 100..112
        let retained = m.entry(1).map(|e| e.batches().len());
        assert_eq!(retained, Some(NUM_BATCHES_TO_RETAIN));
        assert_eq!(m.check(1, 0, 0, 1, false), oos(12, 0)); // 6th newest: forgotten
        assert_eq!(m.check(1, 0, 2, 3, false), dup(102, 103)); // 5th newest
        assert_eq!(m.check(1, 0, 10, 11, false), dup(110, 111));
        assert_eq!(m.check(1, 0, 10, 10, false), oos(12, 10)); // same first sequence, other batch
        assert_eq!(m.check(1, 0, 12, 14, false), Ok(Append));
    }

    #[test]
    fn epoch_bump_must_start_at_zero_and_clears_batches() {
        let mut m = ProducerStateManager::new();
        feed(&mut m, 3, 1, 0, &[4, 4]);
        assert_eq!(m.check(3, 2, 8, 8, false), oos(0, 8));
        assert_eq!(m.check(3, 2, 0, 0, false), Ok(Append));
        // A retry of an old-epoch batch under the new epoch is no duplicate.
        assert_eq!(m.check(3, 2, 4, 7, false), oos(0, 4));
        m.record(3, 2, 0, 0, 200, 200, false);
        let e = m.entry(3).map(|e| (e.epoch(), e.batches().len()));
        assert_eq!(e, Some((2, 1)));
        assert_eq!(m.check(3, 2, 1, 1, false), Ok(Append));
    }

    #[test]
    fn old_epoch_is_fenced_even_for_a_retry() {
        let mut m = ProducerStateManager::new();
        feed(&mut m, 3, 1, 0, &[4]);
        m.record(3, 2, 0, 0, 200, 200, false);
        let fenced = Err(InvalidProducerEpoch { current: 2, got: 1 });
        assert_eq!(m.check(3, 1, 0, 3, false), fenced);
        assert_eq!(m.check(3, 1, 1, 1, false), fenced);
        assert!(fenced.is_err_and(|e| e.to_string().contains("older")));
    }

    #[test]
    fn unknown_and_non_idempotent_producers_accept_anything() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.check(5, 3, 12345, 12347, false), Ok(Append));
        assert_eq!(m.check(-1, -1, -1, -1, false), Ok(Append));
        m.record(-1, -1, -1, -1, 0, 9, false);
        assert!(m.is_empty());
        feed(&mut m, 5, 0, 0, &[1]);
        assert_eq!(m.check(6, 0, 99, 99, false), Ok(Append));
        m.clear();
        assert_eq!(m.check(5, 0, 99, 99, false), Ok(Append)); // state lost: a late retry is accepted
    }

    #[test]
    fn record_is_unvalidated_and_the_newest_batch_wins() {
        let mut m = ProducerStateManager::new();
        feed(&mut m, 9, 2, 0, &[1, 1]);
        m.record(9, 2, 50, 50, 300, 300, false); // a gap, accepted
        assert_eq!(m.entry(9).and_then(ProducerEntry::last_seq), Some(50));
        m.record(9, 1, 7, 7, 301, 301, false); // stale epoch from replication: adopted
        let e = m.entry(9).map(|e| (e.epoch(), e.batches().len()));
        assert_eq!(e, Some((1, 1)));
        assert_eq!(m.check(9, 1, 8, 8, false), Ok(Append));
        assert_eq!(m.check(9, 2, 0, 0, false), Ok(Append));
        feed(&mut m, 10, 0, 0, &[1]);
        assert_eq!(m.len(), 2);
    }

    // ---- transactions ----

    const COMMIT: ControlType = ControlType::Commit;
    const ABORT: ControlType = ControlType::Abort;

    fn txn(pid: i64, first_offset: i64, last_offset: i64, aborted: bool) -> Option<CompletedTxn> {
        Some(CompletedTxn {
            producer_id: pid,
            first_offset,
            last_offset,
            aborted,
        })
    }

    #[test]
    fn a_transactional_batch_opens_a_transaction_at_its_first_offset() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, 0, 1, 10, 11, true);
        m.record(1, 0, 2, 2, 15, 15, true);
        m.record(2, 0, 0, 0, 12, 12, false);
        assert_eq!(m.entry(1).and_then(ProducerEntry::current_txn_first_offset), Some(10));
        assert_eq!(m.ongoing_txns(), vec![(1, 10)]);
        assert_eq!(m.first_ongoing_offset(), Some(10));
        m.record(3, 0, 0, 0, 16, 16, true);
        assert_eq!(m.ongoing_txns(), vec![(1, 10), (3, 16)]);
        assert_eq!(m.apply_marker(1, 0, 0, COMMIT, 17), txn(1, 10, 17, false));
        assert_eq!(m.first_ongoing_offset(), Some(16));
    }

    #[test]
    fn a_non_transactional_batch_inside_a_transaction_is_invalid_txn_state() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, 0, 0, 10, 10, true);
        let invalid = Err(InvalidTxnState { txn_first_offset: 10 });
        assert_eq!(m.check(1, 0, 1, 1, false), invalid);
        assert_eq!(m.check(1, 0, 1, 1, true), Ok(Append));
        // Kafka's order: duplicates, epoch and sequence come first.
        assert_eq!(m.check(1, 0, 0, 0, false), dup(10, 10));
        assert_eq!(m.check(1, 0, 5, 5, false), oos(1, 5));
        // A bumped epoch does not close the transaction; only a marker does.
        assert_eq!(m.check(1, 1, 0, 0, false), invalid);
        assert!(invalid.is_err_and(|e| e.to_string().contains("offset 10 is open")));
        m.apply_marker(1, 0, 0, COMMIT, 11);
        assert_eq!(m.check(1, 0, 1, 1, false), Ok(Append));
    }

    #[test]
    fn markers_from_older_epochs_or_coordinators_are_fenced() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.check_marker(1, 0, -1), Ok(()), "unknown producer");
        m.record(1, 2, 0, 0, 10, 10, true);
        m.apply_marker(1, 2, 5, ABORT, 11);
        assert_eq!(m.entry(1).map(ProducerEntry::coordinator_epoch), Some(5));
        let stale_coordinator = Err(CoordinatorFenced { current: 5, got: 4 });
        assert_eq!(m.check_marker(1, 2, 4), stale_coordinator);
        assert_eq!(m.check_marker(1, 3, 4), stale_coordinator);
        assert!(stale_coordinator.is_err_and(|e| e.to_string().contains("coordinator epoch 4")));
        let stale_epoch = Err(InvalidProducerEpoch { current: 2, got: 1 });
        assert_eq!(m.check_marker(1, 1, 6), stale_epoch);
        assert_eq!(m.check_marker(1, 1, 4), stale_epoch, "the epoch is checked first");
        assert_eq!(m.check_marker(1, 2, 5), Ok(()), "a retried marker (TV1, or TV2 KAFKA-19999)");
        assert_eq!(m.check_marker(1, 3, 6), Ok(()));
    }

    #[test]
    fn a_same_epoch_marker_keeps_the_sequences_as_transaction_version_1_does() {
        let mut m = ProducerStateManager::new();
        m.record(1, 3, 0, 4, 10, 14, true);
        assert_eq!(m.apply_marker(1, 3, 0, COMMIT, 15), txn(1, 10, 15, false));
        assert_eq!(m.entry(1).map(|e| (e.epoch(), e.last_seq())), Some((3, Some(4))));
        assert_eq!(m.check(1, 3, 5, 5, true), Ok(Append));
        assert_eq!(m.check(1, 3, 0, 0, true), oos(5, 0));
        assert_eq!(m.check(1, 3, 0, 4, true), dup(10, 14));
        assert_eq!(m.entry(1).and_then(ProducerEntry::current_txn_first_offset), None);
    }

    #[test]
    fn a_bumped_marker_epoch_restarts_sequences_as_transaction_version_2_does() {
        let mut m = ProducerStateManager::new();
        m.record(1, 3, 0, 4, 10, 14, true);
        assert_eq!(m.apply_marker(1, 4, 0, ABORT, 15), txn(1, 10, 15, true));
        assert_eq!(m.entry(1).map(|e| (e.epoch(), e.batches().len())), Some((4, 0)));
        assert_eq!(m.check(1, 4, 5, 5, true), oos(0, 5));
        assert_eq!(m.check(1, 4, 0, 4, true), Ok(Append), "no duplicate across epochs");
        assert_eq!(m.check(1, 3, 5, 5, true), Err(InvalidProducerEpoch { current: 4, got: 3 }));
        assert_eq!(m.check_marker(1, 3, 0), Err(InvalidProducerEpoch { current: 4, got: 3 }));
    }

    #[test]
    fn a_marker_without_an_open_transaction_completes_nothing() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, 0, 0, 10, 10, false);
        assert_eq!(m.apply_marker(1, 0, 2, COMMIT, 11), None);
        assert_eq!(m.apply_marker(1, 0, 2, ABORT, 12), None);
        assert_eq!(m.entry(1).map(ProducerEntry::coordinator_epoch), Some(2));
        assert_eq!(m.apply_marker(-1, 0, 2, ABORT, 13), None);
        assert_eq!(m.len(), 1, "pid -1 is never stored");
    }

    #[test]
    fn a_marker_for_an_unknown_producer_leaves_its_sequence_unknown_for_that_epoch() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.apply_marker(7, 2, 1, COMMIT, 40), None);
        let e = m.entry(7).map(|e| (e.epoch(), e.batches().len(), e.coordinator_epoch()));
        assert_eq!(e, Some((2, 0, 1)));
        // Same epoch: a TV1 producer continuing, or a TV2 producer starting at 0.
        assert_eq!(m.check(7, 2, 33, 33, true), Ok(Append));
        assert_eq!(m.check(7, 2, 0, 0, true), Ok(Append));
        assert_eq!(m.check(7, 1, 0, 0, true), Err(InvalidProducerEpoch { current: 2, got: 1 }));
        // A later bump is a known restart at 0, and a recorded batch makes the sequence known.
        let mut bumped = m.clone();
        bumped.apply_marker(7, 3, 1, ABORT, 41);
        assert_eq!(bumped.check(7, 3, 33, 33, true), oos(0, 33));
        m.record(7, 2, 33, 33, 41, 41, true);
        assert_eq!(m.check(7, 2, 35, 35, true), oos(34, 35));
    }

    #[test]
    fn expiry_never_drops_a_producer_with_an_open_transaction() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, 0, 0, 10, 10, true);
        m.touch(1, 100);
        m.record(2, 0, 0, 0, 11, 11, false);
        m.touch(2, 100);
        assert_eq!(m.remove_expired(1_000_000, 1_000), 1);
        assert_eq!(m.ongoing_txns(), vec![(1, 10)]);
        assert!(m.entry(2).is_none());
        m.apply_marker(1, 0, 0, COMMIT, 12);
        assert_eq!(m.remove_expired(1_000_000, 1_000), 1, "closed: expires like any other");
        assert!(m.is_empty());
    }

    // ---- model-based properties ----

    type Verdict = Result<SequenceCheck, ProducerStateError>;
    const SPAN: i64 = 1 << 31;

    /// The model's own sequence arithmetic (mod 2^31), independent of `increment_sequence`.
    fn seq_add(seq: i32, d: i64) -> i32 {
        i32::try_from((i64::from(seq) + d).rem_euclid(SPAN)).unwrap_or(0)
    }

    /// The full, never trimmed history of (pid, epoch, batch) in record order, plus the
    /// implementation under test, fed the same records.
    #[derive(Default)]
    struct Model {
        history: Vec<(i64, i16, BatchMetadata)>,
        sut: ProducerStateManager,
    }

    impl Model {
        fn of(&self, pid: i64) -> Vec<(i16, BatchMetadata)> {
            let mine = self.history.iter().filter(|h| h.0 == pid);
            mine.map(|h| (h.1, h.2)).collect()
        }

        /// The spec, decided from the full history.
        fn check(&self, pid: i64, epoch: i16, first: i32, last: i32) -> Verdict {
            let all = self.of(pid);
            let Some(&(current, newest)) = all.last().filter(|_| pid >= 0) else {
                return Ok(Append);
            };
            let run = all.iter().rev().take_while(|h| h.0 == current).count();
            let window = &all[all.len() - run.min(NUM_BATCHES_TO_RETAIN)..];
            let same = |b: &BatchMetadata| (b.first_seq, b.last_seq) == (first, last);
            match window.iter().find(|(_, b)| same(b)) {
                Some((_, b)) if epoch == current => return dup(b.first_offset, b.last_offset),
                _ => {}
            }
            let expected = match epoch {
                e if e < current => return Err(InvalidProducerEpoch { current, got: e }),
                e if e > current => 0,
                _ => seq_add(newest.last_seq, 1),
            };
            if first == expected {
                Ok(Append)
            } else {
                oos(expected, first)
            }
        }

        /// Records in both; returns the batch's first offset.
        fn record(&mut self, pid: i64, epoch: i16, first: i32, last: i32) -> i64 {
            let first_offset = self.history.last().map_or(0, |h| h.2.last_offset + 1);
            let len = (i64::from(last) - i64::from(first)).rem_euclid(SPAN) + 1;
            let last_offset = first_offset + len - 1;
            self.sut
                .record(pid, epoch, first, last, first_offset, last_offset, false);
            let b = BatchMetadata {
                first_seq: first,
                last_seq: last,
                first_offset,
                last_offset,
            };
            self.history.push((pid, epoch, b));
            first_offset
        }
    }

    #[derive(Debug, Clone)]
    enum Seq {
        /// The next expected sequence (0 when unknown) plus a gap.
        Next(i64),
        Zero,
        Raw(i32),
        /// Resend the n-th newest batch this pid ever had, with its epoch.
        Retry(usize),
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// pid, epoch change relative to the current one, sequence, record count.
        Client(i64, i16, Seq, i64),
        /// pid, absolute epoch, first sequence, record count.
        Replicate(i64, i16, i32, i64),
    }

    fn raw_seq() -> impl Strategy<Value = i32> {
        prop_oneof![0i32..10, (i32::MAX - 6)..=i32::MAX]
    }

    fn op() -> impl Strategy<Value = Op> {
        let pid = prop_oneof![6 => 0i64..3, 1 => Just(-1i64)];
        let delta =
            prop_oneof![6 => Just(0i16), 2 => Just(1i16), 1 => Just(2i16), 2 => Just(-1i16)];
        let seq = prop_oneof![
            6 => Just(Seq::Next(0)),
            2 => (-3i64..4).prop_map(Seq::Next),
            2 => Just(Seq::Zero),
            1 => raw_seq().prop_map(Seq::Raw),
            4 => (0usize..8).prop_map(Seq::Retry),
        ];
        prop_oneof![
            6 => (pid.clone(), delta, seq, 1i64..5).prop_map(|(p, d, s, n)| Op::Client(p, d, s, n)),
            1 => (pid, 0i16..3, raw_seq(), 1i64..5).prop_map(|(p, e, s, n)| Op::Replicate(p, e, s, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn matches_the_full_history_model(ops in prop::collection::vec(op(), 1..80)) {
            let mut model = Model::default();
            for op in ops {
                match op {
                    Op::Replicate(pid, epoch, first, n) => {
                        model.record(pid, epoch, first, seq_add(first, n - 1));
                    }
                    Op::Client(pid, delta, seq, n) => {
                        let all = model.of(pid);
                        let current = all.last().map_or(0, |h| h.0);
                        let mut epoch = current.saturating_add(delta).max(0);
                        let (first, last) = match seq {
                            Seq::Retry(k) if k < all.len() => {
                                let (e, b) = all[all.len() - 1 - k];
                                epoch = e;
                                (b.first_seq, b.last_seq)
                            }
                            other => {
                                let first = match other {
                                    Seq::Next(gap) => seq_add(all.last().map_or(-1, |h| h.1.last_seq), 1 + gap),
                                    Seq::Raw(s) => s,
                                    _ => 0,
                                };
                                (first, seq_add(first, n - 1))
                            }
                        };
                        prop_assert_eq!(increment_sequence(first, 1), seq_add(first, 1));
                        let verdict = model.sut.check(pid, epoch, first, last, false);
                        prop_assert_eq!(verdict, model.check(pid, epoch, first, last));
                        if verdict == Ok(Append) {
                            model.record(pid, epoch, first, last);
                        }
                    }
                }
            }
        }

        /// An idempotent client with at most 5 batches in flight, lost requests, lost acks and
        /// retries in any order: every record is appended exactly once, in sequence order.
        #[test]
        fn client_retries_append_exactly_once(
            start in raw_seq(),
            steps in prop::collection::vec((any::<bool>(), 1i64..5, 0usize..5, any::<bool>(), any::<bool>()), 1..60),
        ) {
            let mut model = Model::default();
            let before = seq_add(start, -1);
            model.record(4, 0, before, before); // earlier history: the producer is known
            let mut sent: Vec<(i32, i32)> = Vec::new();
            let mut acked: Vec<bool> = Vec::new();
            let mut log: Vec<(i32, i32, i64)> = Vec::new(); // (first, last, first offset)
            let mut send = |i: usize, deliver: bool, ack: bool, sent: &[(i32, i32)], acked: &mut [bool]| -> Result<(), TestCaseError> {
                if !deliver {
                    return Ok(());
                }
                let (first, last) = sent[i];
                match model.sut.check(4, 0, first, last, false) {
                    Ok(Append) => {
                        let offset = model.record(4, 0, first, last);
                        log.push((first, last, offset));
                    }
                    Ok(Duplicate { first_offset, .. }) => {
                        prop_assert!(log.contains(&(first, last, first_offset)));
                    }
                    Err(OutOfOrderSequence { .. }) => return Ok(()), // not appended, no ack
                    Err(e) => prop_assert!(false, "{}", e),
                }
                acked[i] |= ack;
                Ok(())
            };
            for (new, n, k, deliver, ack) in steps {
                let oldest = acked.iter().position(|a| !a).unwrap_or(acked.len());
                if new && sent.len() - oldest < NUM_BATCHES_TO_RETAIN {
                    let first = sent.last().map_or(start, |b| seq_add(b.1, 1));
                    sent.push((first, seq_add(first, n - 1)));
                    acked.push(false);
                    send(sent.len() - 1, deliver, ack, &sent, &mut acked)?;
                } else if oldest < sent.len() {
                    let i = oldest + k % (sent.len() - oldest);
                    send(i, deliver, ack, &sent, &mut acked)?;
                }
            }
            // Retry everything unacknowledged, oldest first, over a reliable network.
            for i in 0..sent.len() {
                if !acked[i] {
                    send(i, true, true, &sent, &mut acked)?;
                }
                prop_assert!(acked[i]);
            }
            let appended: Vec<(i32, i32)> = log.iter().map(|b| (b.0, b.1)).collect();
            prop_assert_eq!(appended, sent);
        }
    }
}
