//! `Log`: one partition's log, a contiguous run of segments holding v2 batches byte for byte.
//!
//! Offsets are dense: every offset in `[log_start_offset, log_end_offset)` belongs to exactly
//! one stored batch, and batches follow each other without gaps, across segment boundaries too.
//! Durability follows Kafka: appends land in the page cache and are fsynced only once
//! `flush_interval_messages` offsets are unflushed (never, by default), or on `flush()`.
//! Opening a log is recovery: every batch is re-checked and the log is cut at the first one
//! that is torn, corrupt or out of sequence.
//!
//! Transactions (KAFKA.md §1.10–1.11): transactional batches open a transaction per producer,
//! marker batches end it; from these the log answers the last stable offset and the aborted
//! transactions a `read_committed` fetch needs. Like the producer state, all of it is rebuilt
//! by replaying the log whenever it is opened or truncated.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{ControlFlow, Range};
use std::rc::Rc;

use super::batch::{
    set_base_offset, set_partition_leader_epoch, split_batches, verify_crc, BatchError,
    BatchHeader, BATCH_HEADER_LEN,
};
use super::control::{encode_marker_batch, parse_marker, ControlType};
use super::producer_state::{
    increment_sequence, ProducerStateError, ProducerStateManager, SequenceCheck,
};
use super::segment::{join, parse_file_name, Segment};
use super::txn_index::{AbortedTxn, TxnIndex};
use crate::seam::Storage;

/// Per-log tuning, Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this (`segment.bytes`).
    pub segment_bytes: u64,
    /// Minimum bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Fsync once this many offsets are unflushed (`flush.messages`); `u64::MAX` = never.
    pub flush_interval_messages: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            flush_interval_messages: u64::MAX,
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Sum of the batches' `recordsCount`.
    pub record_count: i64,
    /// The batch was a retry of one already in the log (same producer, epoch and sequences):
    /// nothing was appended and the offsets are the original batch's.
    pub duplicate: bool,
}

/// The result of a read: whole batches, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    pub bytes: Vec<u8>,
    /// Base offset of the first batch returned (may be below the offset asked for, as the
    /// batch containing it is returned whole); `None` when nothing was returned.
    pub first_offset: Option<i64>,
}

#[derive(Debug)]
pub enum LogError {
    Io {
        path: String,
        source: std::io::Error,
    },
    Batch {
        offset: i64,
        source: BatchError,
    },
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    NonContiguous {
        expected: i64,
        got: i64,
    },
    /// An idempotent batch or a marker the producer state refuses (fenced epoch, sequence gap,
    /// non-transactional write inside a transaction, fenced coordinator).
    Producer(ProducerStateError),
    /// A produce request the log cannot take as it is (e.g. several batches of which one is
    /// idempotent: Kafka takes exactly one v2 batch per partition and request).
    InvalidRecord(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { path, source } => write!(f, "i/o error on {path:?}: {source}"),
            LogError::Batch { offset, source } => {
                write!(f, "invalid batch at offset {offset}: {source}")
            }
            LogError::OffsetOutOfRange {
                requested,
                start,
                end,
            } => write!(
                f,
                "offset {requested} out of range: expected {start} <= offset <= {end}"
            ),
            LogError::NonContiguous { expected, got } => {
                write!(
                    f,
                    "non-contiguous batch: expected base offset {expected}, got {got}"
                )
            }
            LogError::Producer(e) => write!(f, "{e}"),
            LogError::InvalidRecord(e) => write!(f, "invalid record: {e}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            LogError::Batch { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A partition log in directory `dir` of a [`Storage`].
pub struct Log {
    storage: Rc<dyn Storage>,
    dir: String,
    config: LogConfig,
    /// Keyed by base offset; never empty, the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    /// Everything below this offset has been fsynced and its directory entries synced.
    recovery_point: i64,
    /// Why `open` had to cut the log short, if it did.
    recovery_stop: Option<LogError>,
    /// Idempotent producers' sequences and open transactions, rebuilt from the batches
    /// whenever the log is opened or truncated, so leaders, followers and restarted brokers all
    /// know them.
    producers: ProducerStateManager,
    /// Ended transactions still unstable, and the aborted ones; rebuilt with `producers`.
    txns: TxnIndex,
}

impl Log {
    /// Opens (recovers) the log in `dir`; a missing directory is an empty log starting at 0.
    /// Whatever recovery keeps is made durable before returning, so a later crash can only
    /// lose what is appended after `open`.
    pub fn open(storage: Rc<dyn Storage>, dir: &str, config: LogConfig) -> Result<Log, LogError> {
        let names = match storage.list(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(LogError::Io {
                    path: dir.to_string(),
                    source,
                })
            }
        };
        // Zero-padded names sort like their offsets.
        let bases: Vec<i64> = names.iter().filter_map(|n| parse_file_name(n)).collect();
        let mut log = Log {
            storage,
            dir: dir.to_string(),
            config,
            segments: BTreeMap::new(),
            recovery_point: 0,
            recovery_stop: None,
            producers: ProducerStateManager::new(),
            txns: TxnIndex::default(),
        };
        log.recover_segments(&bases)?;
        if log.segments.is_empty() {
            log.add_segment(0)?;
        }
        log.rebuild_producer_state()?;
        log.flush()?;
        Ok(log)
    }

    /// Loads segments in order until one is cut short or does not start where the previous one
    /// ended; everything after that point is unreachable history and is deleted.
    fn recover_segments(&mut self, bases: &[i64]) -> Result<(), LogError> {
        let mut expected: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some(e) = expected.filter(|e| *e != base) {
                self.recovery_stop = Some(LogError::NonContiguous {
                    expected: e,
                    got: base,
                });
                return self.remove_files(&bases[i..]);
            }
            let (seg, stop) = Segment::recover(
                self.storage.clone(),
                &self.dir,
                base,
                self.config.index_interval_bytes,
            )?;
            expected = Some(seg.next_offset());
            self.segments.insert(base, seg);
            if stop.is_some() {
                self.recovery_stop = stop;
                return self.remove_files(&bases[i + 1..]);
            }
        }
        Ok(())
    }

    fn remove_files(&self, bases: &[i64]) -> Result<(), LogError> {
        for &base in bases {
            let path = join(&self.dir, &super::segment::file_name(base));
            self.storage
                .remove(&path)
                .map_err(|source| LogError::Io { path, source })?;
        }
        Ok(())
    }

    fn add_segment(&mut self, base_offset: i64) -> Result<(), LogError> {
        if let Some(last) = self.segments.values().next_back() {
            assert_eq!(
                last.next_offset(),
                base_offset,
                "new segment must continue the log"
            );
        }
        let seg = Segment::create(
            self.storage.clone(),
            &self.dir,
            base_offset,
            self.config.index_interval_bytes,
        )?;
        self.segments.insert(base_offset, seg);
        Ok(())
    }

    /// Why recovery in `open` cut the log short (torn, corrupt or out-of-sequence data), if it
    /// did; the log then ends just before that point. For checkers and logs of the simulation.
    pub fn recovery_stop(&self) -> Option<&LogError> {
        self.recovery_stop.as_ref()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments
            .values()
            .next()
            .expect("a log always has a segment")
            .base_offset()
    }

    /// The log end offset: the offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Offsets appended since the last flush (Kafka counts offsets, not bytes).
    pub fn unflushed_messages(&self) -> u64 {
        (self.log_end_offset() - self.recovery_point) as u64
    }

    /// Appends a producer's batches: checks them all before writing any, then gives them
    /// offsets from the log end and stamps `leader_epoch`. The CRC stays valid as both fields
    /// sit outside it. Control batches are refused: only the coordinator ends transactions,
    /// through [`Log::append_marker_as_leader`] (Kafka's `LogValidator`: "Clients are not
    /// allowed to write control records").
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        self.append_leader(records, leader_epoch, true)
    }

    /// A group coordinator's append (Kafka's `AppendOrigin.COORDINATOR`): like
    /// `append_as_leader` but without sequence checks, which only client batches carry. Used
    /// for a transaction's offset commits, written with the producer's id and epoch so that
    /// the transaction's marker settles them.
    pub fn append_as_coordinator(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        self.append_leader(records, leader_epoch, false)
    }

    fn append_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        check_sequences: bool,
    ) -> Result<AppendInfo, LogError> {
        let leo = self.log_end_offset();
        let batches = checked_batches(records, leo)?;
        for (h, _) in &batches {
            h.check_record_count().map_err(|source| LogError::Batch {
                offset: leo,
                source,
            })?;
            if h.is_control() {
                return Err(LogError::InvalidRecord(
                    "clients may not write control batches".to_string(),
                ));
            }
        }
        if check_sequences {
            if let Some(dup) = self.check_producers(&batches)? {
                return Ok(dup);
            }
        }
        let mut stamped = records.to_vec();
        let mut headers = Vec::with_capacity(batches.len());
        let mut next = leo;
        for (h, range) in &batches {
            let bytes = &mut stamped[range.clone()];
            set_base_offset(bytes, next);
            set_partition_leader_epoch(bytes, leader_epoch);
            assert!(
                verify_crc(bytes).is_ok(),
                "stamping offset {next} broke the CRC"
            );
            headers.push((
                BatchHeader {
                    base_offset: next,
                    partition_leader_epoch: leader_epoch,
                    ..*h
                },
                range.clone(),
            ));
            next = headers.last().expect("just pushed").0.last_offset() + 1;
        }
        self.append_checked(&stamped, &headers)
    }

    /// Writes the marker ending `producer_id`'s transaction (Kafka's `WriteTxnMarkers` on the
    /// leader), after `check_marker` (fenced producer epoch or coordinator epoch), at the log
    /// end; the returned offsets are the marker's. A producer with no open transaction here
    /// still gets its marker (the coordinator writes one to every partition it added), which
    /// then completes nothing.
    pub fn append_marker_as_leader(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        kind: ControlType,
        leader_epoch: i32,
        timestamp: i64,
    ) -> Result<AppendInfo, LogError> {
        if producer_id < 0 {
            return Err(LogError::InvalidRecord(format!(
                "transaction marker for producer id {producer_id}"
            )));
        }
        self.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)
            .map_err(LogError::Producer)?;
        let leo = self.log_end_offset();
        let mut bytes = encode_marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            kind,
            timestamp,
        )
        .to_vec();
        set_base_offset(&mut bytes, leo);
        set_partition_leader_epoch(&mut bytes, leader_epoch);
        let batches = checked_batches(&bytes, leo)?;
        self.append_checked(&bytes, &batches)
    }

    /// Appends a leader's batches as they are; they must continue this log exactly.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let leo = self.log_end_offset();
        let batches = checked_batches(records, leo)?;
        let mut expected = leo;
        for (h, _) in &batches {
            if h.base_offset != expected {
                return Err(LogError::NonContiguous {
                    expected,
                    got: h.base_offset,
                });
            }
            expected = h.last_offset() + 1;
        }
        self.append_checked(records, &batches)
    }

    /// Writes batches already validated and placed at the log end; rolls and flushes as due.
    fn append_checked(
        &mut self,
        bytes: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
    ) -> Result<AppendInfo, LogError> {
        let first_offset = self.log_end_offset();
        let mut record_count = 0i64;
        for (h, range) in batches {
            let leo = self.log_end_offset();
            if self
                .active()
                .is_full_for(range.len(), h.last_offset(), self.config.segment_bytes)
            {
                self.add_segment(leo)?;
            }
            let active = self
                .segments
                .values_mut()
                .next_back()
                .expect("a log always has a segment");
            active.append(&bytes[range.clone()], h)?;
            assert!(
                self.log_end_offset() > leo,
                "LEO must grow: {leo} -> {}",
                self.log_end_offset()
            );
            record_count += i64::from(h.records_count);
        }
        for (h, range) in batches {
            self.apply_batch(h, || marker_of(h, &bytes[range.clone()]));
        }
        let info = AppendInfo {
            first_offset,
            last_offset: self.log_end_offset() - 1,
            record_count,
            duplicate: false,
        };
        if self.unflushed_messages() >= self.config.flush_interval_messages {
            self.flush()?;
        }
        Ok(info)
    }

    /// Whole batches from the one containing `from_offset`, adding more while the total stays
    /// within `max_bytes`, but always at least one so an oversized batch cannot stall a reader.
    pub fn read(&self, from_offset: i64, max_bytes: usize) -> Result<ReadInfo, LogError> {
        let mut bytes = Vec::new();
        let mut first_offset = None;
        self.visit_batches(from_offset, |seg, position, h| {
            if first_offset.is_some() && bytes.len() + h.size() > max_bytes {
                return Ok(ControlFlow::Break(()));
            }
            let batch = seg.read_batch_at(position, h.base_offset)?;
            first_offset.get_or_insert(h.base_offset);
            bytes.extend_from_slice(&batch);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(ReadInfo {
            bytes,
            first_offset,
        })
    }

    /// The producer-side rules for a leader append (KAFKA.md §1.9): a retry of a batch still in
    /// the producer's window is answered with the original offsets; a fenced epoch or a
    /// sequence gap is refused. Kafka takes one v2 batch per partition and request; so does
    /// this check when any batch is idempotent.
    fn check_producers(
        &self,
        batches: &[(BatchHeader, Range<usize>)],
    ) -> Result<Option<AppendInfo>, LogError> {
        let idempotent = |h: &BatchHeader| h.producer_id >= 0 && !h.is_control();
        if !batches.iter().any(|(h, _)| idempotent(h)) {
            return Ok(None);
        }
        if batches.len() > 1 {
            return Err(LogError::InvalidRecord(format!(
                "{} batches in one produce request for one partition; idempotent producers send one",
                batches.len()
            )));
        }
        let h = &batches[0].0;
        let last_seq = increment_sequence(h.base_sequence, h.last_offset_delta);
        match self
            .producers
            .check(
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                last_seq,
                h.is_transactional(),
            )
            .map_err(LogError::Producer)?
        {
            SequenceCheck::Append => Ok(None),
            SequenceCheck::Duplicate {
                first_offset,
                last_offset,
            } => Ok(Some(AppendInfo {
                first_offset,
                last_offset,
                record_count: 0,
                duplicate: true,
            })),
        }
    }

    /// Applies an appended batch to the producer state and the transaction index: a data
    /// batch is recorded (opening a transaction if it is transactional), a control batch is
    /// applied as the marker `marker` reads out of it. A control batch that is no readable
    /// marker changes nothing: leaders refuse client control batches, so only a buggy leader
    /// could have written one, and replaying it must not fail the log.
    fn apply_batch(
        &mut self,
        h: &BatchHeader,
        marker: impl FnOnce() -> Option<(ControlType, i32)>,
    ) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            let Some((kind, coordinator_epoch)) = marker() else {
                return;
            };
            let (pid, epoch, offset) = (h.producer_id, h.producer_epoch, h.base_offset);
            let completed = self
                .producers
                .apply_marker(pid, epoch, coordinator_epoch, kind, offset);
            if let Some(txn) = completed {
                self.txns.complete(txn);
            }
        } else {
            let last_seq = increment_sequence(h.base_sequence, h.last_offset_delta);
            self.producers.record(
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                last_seq,
                h.base_offset,
                h.last_offset(),
                h.is_transactional(),
            );
        }
        self.producers.touch(h.producer_id, h.max_timestamp);
    }

    /// Drops producer state idle for `expiration_ms` of wall time; returns how many. Producers
    /// with an open transaction are kept.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Replays every batch's producer fields, and every marker (Kafka rebuilds from a snapshot
    /// plus the log after it; stormlog's logs are small enough to replay whole). Control
    /// batches are read whole for their marker type; data batches need only their header.
    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        self.producers.clear();
        self.txns.clear();
        let mut replay = Vec::new();
        self.visit_batches(self.log_start_offset(), |seg, position, h| {
            if h.producer_id >= 0 {
                let marker = match h.is_control() {
                    true => marker_of(h, &seg.read_batch_at(position, h.base_offset)?),
                    false => None,
                };
                replay.push((*h, marker));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        for (h, marker) in &replay {
            self.apply_batch(h, || *marker);
        }
        Ok(())
    }

    /// The last stable offset at high watermark `high_watermark` (KAFKA.md §1.11): the HW,
    /// or the first offset of the earliest transaction that is open or whose marker is not
    /// yet below the HW, if that is lower. `read_committed` fetches read up to it. Exact for
    /// any HW at or above the largest given to [`Log::on_high_watermark`] since the log was
    /// opened or truncated.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let first_ongoing = self.producers.first_ongoing_offset();
        self.txns.last_stable_offset(high_watermark, first_ongoing)
    }

    /// Tells the log its high watermark moved: completed transactions whose marker is now
    /// below it are forgotten, as they can no longer hold the LSO back (Kafka's
    /// `onHighWatermarkUpdated`). Only bounds memory; a replica's HW does not go back except
    /// through truncation, after which the log rebuilds everything anyway.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.txns.on_high_watermark(high_watermark);
    }

    /// Aborted transactions overlapping `[from_offset, upper)` (marker at or after
    /// `from_offset`, first offset before `upper`), by first offset: what a `read_committed`
    /// fetch from `from_offset` up to the LSO `upper` returns with its records.
    pub fn aborted_txns(&self, from_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        self.txns.aborted_txns(from_offset, upper)
    }

    /// Open transactions as `(producer id, first offset)`, by producer id (for checkers and
    /// tests).
    pub fn ongoing_txns(&self) -> Vec<(i64, i64)> {
        self.producers.ongoing_txns()
    }

    /// The idempotent producers this log knows (read-only, for checkers and tests).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Up to `max` batch headers from the one containing `from_offset` (for checkers and tests).
    pub fn batch_headers_from(
        &self,
        from_offset: i64,
        max: usize,
    ) -> Result<Vec<BatchHeader>, LogError> {
        let mut out = Vec::new();
        self.visit_batches(from_offset, |_, _, h| {
            if out.len() >= max {
                return Ok(ControlFlow::Break(()));
            }
            out.push(*h);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Calls `visit` on each batch, in order, from the one containing `from` to the log end.
    fn visit_batches(
        &self,
        from: i64,
        mut visit: impl FnMut(&Segment, u64, &BatchHeader) -> Result<ControlFlow<()>, LogError>,
    ) -> Result<(), LogError> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if from < start || from > end {
            return Err(LogError::OffsetOutOfRange {
                requested: from,
                start,
                end,
            });
        }
        if from == end {
            return Ok(());
        }
        let (&first_base, first_seg) = self
            .segments
            .range(..=from)
            .next_back()
            .expect("from >= start");
        let (mut position, first) = first_seg.locate(from)?;
        let mut expected = first.base_offset;
        let mut located = Some(first);
        for seg in self.segments.range(first_base..).map(|(_, s)| s) {
            while position < seg.size() {
                let h = match located.take() {
                    Some(h) => h,
                    None => seg.read_header_at(position, expected)?,
                };
                if visit(seg, position, &h)?.is_break() {
                    return Ok(());
                }
                position += h.size() as u64;
                expected = h.last_offset() + 1;
            }
            position = 0;
        }
        assert_eq!(
            expected,
            self.log_end_offset(),
            "batches must run up to the log end"
        );
        Ok(())
    }

    /// Removes every batch whose last offset is `>= offset`, so the log ends at `offset` when
    /// that is a batch boundary and at the start of the batch holding it otherwise. Made durable
    /// at once: a truncated divergent suffix must never reappear after a crash.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset >= end {
            return Ok(());
        }
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let doomed: Vec<i64> = match offset <= start {
            true => self.segments.keys().copied().collect(),
            false => self.segments.range(offset..).map(|(b, _)| *b).collect(),
        };
        for base in doomed {
            self.segments
                .remove(&base)
                .expect("listed above")
                .remove()?;
        }
        match self.segments.values_mut().next_back() {
            None => self.add_segment(offset)?,
            Some(active) if active.next_offset() > offset => active.truncate_to(offset)?,
            Some(_) => {}
        }
        self.recovery_point = self.recovery_point.min(self.log_end_offset());
        assert!(
            self.log_end_offset() <= offset,
            "truncate_to({offset}) left LEO {}",
            self.log_end_offset()
        );
        self.rebuild_producer_state()?;
        self.flush()
    }

    /// Fsyncs every segment with unsynced bytes and syncs the directory, so created and
    /// removed segment files survive a crash too.
    pub fn flush(&mut self) -> Result<(), LogError> {
        for seg in self.segments.values_mut() {
            seg.fsync()?;
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|source| LogError::Io {
                path: self.dir.clone(),
                source,
            })?;
        self.recovery_point = self.log_end_offset();
        Ok(())
    }
}

/// The marker in control batch `batch`, if it holds a readable one.
fn marker_of(h: &BatchHeader, batch: &[u8]) -> Option<(ControlType, i32)> {
    h.is_control().then(|| parse_marker(batch).ok()).flatten()
}

/// Splits and validates a request's batches; nothing is written if any is bad.
fn checked_batches(records: &[u8], leo: i64) -> Result<Vec<(BatchHeader, Range<usize>)>, LogError> {
    let batches = split_batches(records).map_err(|source| LogError::Batch {
        offset: leo,
        source,
    })?;
    if batches.is_empty() {
        let source = BatchError::Truncated {
            need: BATCH_HEADER_LEN,
            have: 0,
        };
        return Err(LogError::Batch {
            offset: leo,
            source,
        });
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::build_test_batch;
    use crate::seam::MemStorage;

    const DIR: &str = "orders-0";

    fn open(mem: &MemStorage, config: LogConfig) -> Log {
        Log::open(Rc::new(mem.clone()), DIR, config).unwrap()
    }

    fn small(segment_bytes: u64, flush_interval_messages: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 128,
            flush_interval_messages,
        }
    }

    /// A producer batch of `n` records tagged with `tag` (offset 0: the leader assigns it).
    fn batch(n: usize, tag: &str) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        build_test_batch(0, &refs)
    }

    fn seg_path(base: i64) -> String {
        format!("{DIR}/{base:020}.log")
    }

    /// Overwrites one byte of a file in place, as bit rot would, without touching durability.
    fn flip_byte(mem: &MemStorage, path: &str, at: u64) {
        let mut content = mem.read_at(path, 0, usize::MAX).unwrap();
        content[at as usize] ^= 0xff;
        mem.create(path).unwrap();
        mem.append(path, &content).unwrap();
    }

    fn base_offsets(log: &Log) -> Vec<i64> {
        log.batch_headers_from(log.log_start_offset(), usize::MAX)
            .unwrap()
            .iter()
            .map(|h| h.base_offset)
            .collect()
    }

    #[test]
    fn a_missing_directory_opens_as_an_empty_log_at_zero() {
        let log = open(&MemStorage::new(), LogConfig::default());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert_eq!(
            log.read(0, 1024).unwrap(),
            ReadInfo {
                bytes: vec![],
                first_offset: None
            }
        );
        assert!(log.recovery_stop().is_none());
    }

    #[test]
    fn leader_append_assigns_offsets_from_the_log_end_and_stamps_the_epoch() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(2, "a"), 3).unwrap();
        let request = [batch(3, "b"), batch(1, "c")].concat();
        let info = log.append_as_leader(&request, 4).unwrap();
        assert_eq!(
            info,
            AppendInfo {
                first_offset: 2,
                last_offset: 5,
                record_count: 4,
                duplicate: false,
            }
        );
        let headers = log.batch_headers_from(0, 10).unwrap();
        let placed: Vec<(i64, i64, i32)> = headers
            .iter()
            .map(|h| (h.base_offset, h.last_offset(), h.partition_leader_epoch))
            .collect();
        assert_eq!(placed, vec![(0, 1, 3), (2, 4, 4), (5, 5, 4)]);
    }

    #[test]
    fn leader_append_stores_the_bytes_unchanged_apart_from_offset_and_epoch() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(1, "x"), 0).unwrap();
        let produced = batch(2, "y");
        log.append_as_leader(&produced, 9).unwrap();
        let read = log.read(1, usize::MAX).unwrap();
        let mut expected = produced.clone();
        set_base_offset(&mut expected, 1);
        set_partition_leader_epoch(&mut expected, 9);
        assert_eq!(read.bytes, expected);
        assert_eq!(read.first_offset, Some(1));
    }

    #[test]
    fn leader_append_checks_every_batch_before_writing_any() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        let mut request = [batch(1, "good"), batch(1, "bad")].concat();
        let last = request.len() - 3;
        request[last] ^= 1;
        let err = log.append_as_leader(&request, 0).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Batch {
                    offset: 0,
                    source: BatchError::CrcMismatch { .. }
                }
            ),
            "{err}"
        );
        assert_eq!(log.log_end_offset(), 0);
        assert!(
            log.append_as_leader(&[], 0).is_err(),
            "an empty request appends nothing"
        );
    }

    #[test]
    fn follower_append_keeps_leader_bytes_and_rejects_gaps() {
        let mut leader = open(&MemStorage::new(), LogConfig::default());
        leader
            .append_as_leader(&[batch(2, "a"), batch(3, "b")].concat(), 7)
            .unwrap();
        let fetched = leader.read(0, usize::MAX).unwrap().bytes;
        let mut follower = open(&MemStorage::new(), LogConfig::default());
        let info = follower.append_as_follower(&fetched).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, 4));
        assert_eq!(follower.read(0, usize::MAX).unwrap().bytes, fetched);
        let err = follower.append_as_follower(&fetched).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::NonContiguous {
                    expected: 5,
                    got: 0
                }
            ),
            "{err}"
        );
        let mut gap = build_test_batch(6, &[b"z"]);
        assert!(matches!(
            follower.append_as_follower(&gap),
            Err(LogError::NonContiguous { .. })
        ));
        set_base_offset(&mut gap, 5);
        follower.append_as_follower(&gap).unwrap();
        assert_eq!(follower.log_end_offset(), 6);
    }

    #[test]
    fn read_returns_one_whole_batch_even_when_it_exceeds_max_bytes() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(50, "big"), 0).unwrap();
        log.append_as_leader(&batch(1, "small"), 0).unwrap();
        let read = log.read(10, 1).unwrap();
        let only = BatchHeader::parse(&read.bytes).unwrap();
        assert_eq!((only.base_offset, only.size()), (0, read.bytes.len()));
        assert_eq!(read.first_offset, Some(0));
    }

    #[test]
    fn read_adds_batches_while_they_fit_in_max_bytes() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        let one = batch(1, "v");
        for _ in 0..5 {
            log.append_as_leader(&one, 0).unwrap();
        }
        for (max, batches) in [
            (0, 1),
            (one.len() * 2, 2),
            (one.len() * 3 - 1, 2),
            (usize::MAX, 5),
        ] {
            let read = log.read(0, max).unwrap();
            assert_eq!(read.bytes.len(), one.len() * batches, "max_bytes {max}");
        }
        assert_eq!(log.read(3, usize::MAX).unwrap().bytes.len(), one.len() * 2);
    }

    #[test]
    fn reads_outside_the_log_are_out_of_range_and_at_the_end_are_empty() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(3, "a"), 0).unwrap();
        assert!(log.read(3, 100).unwrap().bytes.is_empty());
        let err = log.read(4, 100).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::OffsetOutOfRange {
                    requested: 4,
                    start: 0,
                    end: 3
                }
            ),
            "{err}"
        );
        assert!(matches!(
            log.read(-1, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn segments_roll_when_the_active_one_would_exceed_segment_bytes() {
        let mem = MemStorage::new();
        let one = batch(1, "v");
        let mut log = open(&mem, small(one.len() as u64 * 3, u64::MAX));
        for _ in 0..10 {
            log.append_as_leader(&one, 0).unwrap();
        }
        assert_eq!(
            log.segments.keys().copied().collect::<Vec<_>>(),
            vec![0, 3, 6, 9]
        );
        assert!(mem.exists(&seg_path(9)));
        assert!(log
            .segments
            .values()
            .all(|s| s.size() <= one.len() as u64 * 3));
        assert_eq!(base_offsets(&log), (0..10).collect::<Vec<_>>());
        let across = log.read(2, one.len() * 3).unwrap();
        assert_eq!(split_batches(&across.bytes).unwrap().len(), 3);
    }

    #[test]
    fn an_oversized_batch_gets_a_segment_of_its_own() {
        let mut log = open(&MemStorage::new(), small(100, u64::MAX));
        log.append_as_leader(&batch(1, "a"), 0).unwrap();
        log.append_as_leader(&batch(40, "huge"), 0).unwrap();
        log.append_as_leader(&batch(1, "b"), 0).unwrap();
        assert_eq!(
            log.segments.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 41]
        );
    }

    #[test]
    fn every_offset_is_found_through_the_sparse_index_across_many_batches() {
        let mut log = open(&MemStorage::new(), small(4000, u64::MAX));
        for i in 0..300 {
            log.append_as_leader(&batch(1 + i % 3, "r"), 0).unwrap();
        }
        let leo = log.log_end_offset();
        for offset in 0..leo {
            let h = log.batch_headers_from(offset, 1).unwrap()[0];
            assert!(
                h.base_offset <= offset && offset <= h.last_offset(),
                "offset {offset} in {h:?}"
            );
        }
    }

    #[test]
    fn truncate_at_a_batch_boundary_ends_the_log_there() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        for _ in 0..4 {
            log.append_as_leader(&batch(2, "a"), 0).unwrap();
        }
        log.truncate_to(4).unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(base_offsets(&log), vec![0, 2]);
        assert_eq!(
            log.append_as_leader(&batch(1, "b"), 1)
                .unwrap()
                .first_offset,
            4
        );
    }

    #[test]
    fn truncate_inside_a_batch_removes_the_whole_batch() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        for _ in 0..3 {
            log.append_as_leader(&batch(3, "a"), 0).unwrap();
        }
        log.truncate_to(4).unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(base_offsets(&log), vec![0]);
    }

    #[test]
    fn truncate_removes_whole_segments_above_the_offset() {
        let mem = MemStorage::new();
        let one = batch(1, "v");
        let mut log = open(&mem, small(one.len() as u64 * 2, u64::MAX));
        for _ in 0..7 {
            log.append_as_leader(&one, 0).unwrap();
        }
        log.truncate_to(3).unwrap();
        assert_eq!(log.segments.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(!mem.exists(&seg_path(4)) && !mem.exists(&seg_path(6)));
        log.truncate_to(0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert_eq!(mem.list(DIR).unwrap(), vec![format!("{:020}.log", 0)]);
    }

    #[test]
    fn truncate_at_or_above_the_log_end_is_a_no_op() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(2, "a"), 0).unwrap();
        log.truncate_to(2).unwrap();
        log.truncate_to(100).unwrap();
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(
            log.unflushed_messages(),
            2,
            "a no-op truncate does not flush"
        );
    }

    #[test]
    fn a_truncation_is_not_undone_by_a_crash() {
        let mem = MemStorage::new();
        let one = batch(1, "v");
        let mut log = open(&mem, small(one.len() as u64 * 2, 1));
        for _ in 0..6 {
            log.append_as_leader(&one, 0).unwrap();
        }
        log.truncate_to(1).unwrap();
        drop(log);
        mem.crash(None);
        let log = open(&mem, small(one.len() as u64 * 2, 1));
        assert_eq!(log.log_end_offset(), 1);
    }

    #[test]
    fn flushing_every_message_makes_everything_survive_a_crash() {
        let mem = MemStorage::new();
        let one = batch(2, "v");
        let mut log = open(&mem, small(one.len() as u64 * 3, 1));
        for _ in 0..10 {
            log.append_as_leader(&one, 0).unwrap();
            assert_eq!(log.unflushed_messages(), 0);
        }
        let before = log.read(0, usize::MAX).unwrap();
        drop(log);
        mem.crash(Some(99));
        let log = open(&mem, small(one.len() as u64 * 3, 1));
        assert_eq!(log.read(0, usize::MAX).unwrap(), before);
    }

    #[test]
    fn with_the_default_flush_policy_nothing_survives_a_crash() {
        let mem = MemStorage::new();
        let mut log = open(&mem, small(200, u64::MAX));
        for _ in 0..10 {
            log.append_as_leader(&batch(2, "v"), 0).unwrap();
        }
        assert_eq!(log.unflushed_messages(), 20);
        drop(log);
        mem.crash(None);
        let log = open(&mem, small(200, u64::MAX));
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(
            mem.list(DIR).unwrap().len(),
            1,
            "rolled, never-synced segments vanish"
        );
    }

    #[test]
    fn the_flush_interval_counts_offsets_not_appends() {
        let mem = MemStorage::new();
        let mut log = open(&mem, small(1 << 20, 5));
        log.append_as_leader(&batch(3, "a"), 0).unwrap();
        assert_eq!(log.unflushed_messages(), 3);
        log.append_as_leader(&batch(2, "b"), 0).unwrap();
        assert_eq!(log.unflushed_messages(), 0);
        log.append_as_leader(&batch(1, "c"), 0).unwrap();
        drop(log);
        mem.crash(None);
        assert_eq!(open(&mem, small(1 << 20, 5)).log_end_offset(), 5);
    }

    #[test]
    fn an_explicit_flush_makes_appends_durable() {
        let mem = MemStorage::new();
        let mut log = open(&mem, small(150, u64::MAX));
        for _ in 0..6 {
            log.append_as_leader(&batch(1, "v"), 0).unwrap();
        }
        log.flush().unwrap();
        log.append_as_leader(&batch(1, "lost"), 0).unwrap();
        drop(log);
        mem.crash(None);
        assert_eq!(open(&mem, small(150, u64::MAX)).log_end_offset(), 6);
    }

    #[test]
    fn a_process_restart_keeps_unflushed_appends() {
        let mem = MemStorage::new();
        let mut log = open(&mem, LogConfig::default());
        log.append_as_leader(&batch(4, "v"), 2).unwrap();
        let before = log.read(0, usize::MAX).unwrap();
        drop(log);
        let log = open(&mem, LogConfig::default());
        assert_eq!(log.read(0, usize::MAX).unwrap(), before);
        assert_eq!(
            log.unflushed_messages(),
            0,
            "open makes what it recovered durable"
        );
    }

    #[test]
    fn recovery_after_a_torn_crash_keeps_only_whole_batches() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mem = MemStorage::new();
            let mut log = open(&mem, small(400, u64::MAX));
            log.append_as_leader(&batch(2, "durable"), 0).unwrap();
            log.flush().unwrap();
            for i in 0..3 {
                log.append_as_leader(&batch(1, &format!("unsynced-{i}")), 0)
                    .unwrap();
            }
            let full = log.read(0, usize::MAX).unwrap().bytes;
            drop(log);
            mem.crash(Some(seed));
            let log = open(&mem, small(400, u64::MAX));
            let kept = log.read(0, usize::MAX).unwrap().bytes;
            assert!(log.log_end_offset() >= 2, "seed {seed}: flushed batch lost");
            assert!(
                full.starts_with(&kept),
                "seed {seed}: recovered bytes are not a prefix"
            );
            assert_eq!(
                split_batches(&kept)
                    .unwrap()
                    .last()
                    .unwrap()
                    .0
                    .last_offset()
                    + 1,
                log.log_end_offset()
            );
            outcomes.insert(log.log_end_offset());
        }
        assert!(
            outcomes.len() > 1,
            "torn crashes should keep different amounts: {outcomes:?}"
        );
    }

    #[test]
    fn recovery_cuts_a_partial_batch_and_garbage_written_by_hand() {
        let mem = MemStorage::new();
        let mut log = open(&mem, LogConfig::default());
        log.append_as_leader(&batch(2, "a"), 0).unwrap();
        drop(log);
        let good_len = mem.len(&seg_path(0)).unwrap();
        let partial = build_test_batch(2, &[b"half"]);
        mem.append(&seg_path(0), &partial[..40]).unwrap();
        let log = open(&mem, LogConfig::default());
        assert_eq!(log.log_end_offset(), 2);
        assert!(matches!(
            log.recovery_stop(),
            Some(LogError::Batch {
                offset: 2,
                source: BatchError::Truncated { .. }
            })
        ));
        assert_eq!(mem.len(&seg_path(0)).unwrap(), good_len);
        drop(log);
        mem.append(&seg_path(0), &[0xAB; 100]).unwrap();
        let log = open(&mem, LogConfig::default());
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(mem.len(&seg_path(0)).unwrap(), good_len);
    }

    #[test]
    fn recovery_after_crc_corruption_drops_the_batch_and_everything_after_it() {
        let mem = MemStorage::new();
        let one = batch(1, "v");
        let mut log = open(&mem, small(one.len() as u64 * 3, u64::MAX));
        for _ in 0..9 {
            log.append_as_leader(&one, 0).unwrap();
        }
        drop(log);
        flip_byte(&mem, &seg_path(3), one.len() as u64 + 70); // inside batch 4's records
        let log = open(&mem, small(one.len() as u64 * 3, u64::MAX));
        assert_eq!(log.log_end_offset(), 4);
        assert!(matches!(
            log.recovery_stop(),
            Some(LogError::Batch {
                offset: 4,
                source: BatchError::CrcMismatch { .. }
            })
        ));
        assert!(
            !mem.exists(&seg_path(6)),
            "segments after the corruption are unreachable"
        );
        drop(log);
        mem.crash(None);
        assert_eq!(
            open(&mem, small(one.len() as u64 * 3, u64::MAX)).log_end_offset(),
            4,
            "the cut is durable"
        );
    }

    #[test]
    fn recovery_drops_segments_that_do_not_continue_the_log() {
        let mem = MemStorage::new();
        let mut log = open(&mem, LogConfig::default());
        log.append_as_leader(&batch(2, "a"), 0).unwrap();
        drop(log);
        mem.append(&seg_path(5), &build_test_batch(5, &[b"stray"]))
            .unwrap();
        let log = open(&mem, LogConfig::default());
        assert_eq!(log.log_end_offset(), 2);
        assert!(matches!(
            log.recovery_stop(),
            Some(LogError::NonContiguous {
                expected: 2,
                got: 5
            })
        ));
        assert!(!mem.exists(&seg_path(5)));
    }

    #[test]
    fn corruption_under_a_live_log_fails_the_read_with_a_batch_error() {
        let mem = MemStorage::new();
        let mut log = open(&mem, LogConfig::default());
        log.append_as_leader(&batch(1, "a"), 0).unwrap();
        let second = log.append_as_leader(&batch(1, "b"), 0).unwrap();
        let first_len = batch(1, "a").len() as u64;
        flip_byte(&mem, &seg_path(0), first_len + 65);
        let err = log.read(second.first_offset, usize::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Batch {
                    offset: 1,
                    source: BatchError::CrcMismatch { .. }
                }
            ),
            "{err}"
        );
        assert!(log.read(0, 1).is_ok(), "the intact first batch still reads");
    }

    // ---- transactions ----

    use crate::log::txn_model::producer_batch;
    use crate::log::{encode_marker_batch, AbortedTxn, ControlType};

    const COMMIT: ControlType = ControlType::Commit;
    const ABORT: ControlType = ControlType::Abort;

    fn values(n: usize, tag: &str) -> Vec<String> {
        (0..n).map(|i| format!("{tag}-{i}")).collect()
    }

    /// Appends `n` transactional records of `pid` at epoch `epoch` from sequence `seq`.
    fn txn_data(log: &mut Log, pid: i64, epoch: i16, seq: i32, n: usize) -> AppendInfo {
        let batch = producer_batch(pid, epoch, seq, true, &values(n, "t"));
        log.append_as_leader(&batch, 0).unwrap()
    }

    fn marker(log: &mut Log, pid: i64, epoch: i16, kind: ControlType) -> i64 {
        let info = log.append_marker_as_leader(pid, epoch, 0, kind, 0, 0).unwrap();
        assert_eq!((info.first_offset, info.last_offset, info.record_count), (info.first_offset, info.first_offset, 1));
        info.first_offset
    }

    fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
        }
    }

    fn producer_err(r: Result<AppendInfo, LogError>) -> ProducerStateError {
        match r {
            Err(LogError::Producer(e)) => e,
            other => panic!("expected a producer state error, got {other:?}"),
        }
    }

    #[test]
    fn a_marker_is_one_control_batch_at_the_log_end_stamped_with_the_leader_epoch() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        txn_data(&mut log, 1, 0, 0, 2);
        let info = log.append_marker_as_leader(1, 0, 3, COMMIT, 9, 1234).unwrap();
        let expected = AppendInfo {
            first_offset: 2,
            last_offset: 2,
            record_count: 1,
            duplicate: false,
        };
        assert_eq!(info, expected);
        let h = log.batch_headers_from(2, 1).unwrap()[0];
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.partition_leader_epoch, h.producer_id, h.max_timestamp), (9, 1, 1234));
        let bytes = log.read(2, usize::MAX).unwrap().bytes;
        assert_eq!(crate::log::parse_marker(&bytes), Ok((COMMIT, 3)));
        assert!(matches!(
            log.append_marker_as_leader(-1, 0, 0, ABORT, 0, 0),
            Err(LogError::InvalidRecord(_))
        ));
    }

    #[test]
    fn clients_may_not_write_control_batches() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        let forged = encode_marker_batch(1, 0, 0, COMMIT, 0);
        let err = log.append_as_leader(&forged, 0).unwrap_err();
        assert!(matches!(err, LogError::InvalidRecord(_)), "{err}");
        assert_eq!(log.log_end_offset(), 0);
    }

    #[test]
    fn the_lso_waits_for_open_and_for_unreplicated_completed_transactions() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        log.append_as_leader(&batch(2, "plain"), 0).unwrap(); // 0-1
        txn_data(&mut log, 1, 0, 0, 2); // 2-3
        txn_data(&mut log, 2, 0, 0, 1); // 4
        txn_data(&mut log, 1, 0, 2, 1); // 5
        assert_eq!(log.ongoing_txns(), vec![(1, 2), (2, 4)]);
        assert_eq!(log.last_stable_offset(1), 1);
        assert_eq!(log.last_stable_offset(6), 2);
        let m1 = marker(&mut log, 1, 0, COMMIT); // 6
        assert_eq!(log.ongoing_txns(), vec![(2, 4)]);
        // Pid 1's marker at 6 is not below a HW of 6: its transaction still counts.
        assert_eq!(log.last_stable_offset(m1), 2);
        assert_eq!(log.last_stable_offset(m1 + 1), 4);
        marker(&mut log, 2, 0, ABORT); // 7
        assert_eq!(log.ongoing_txns(), vec![]);
        assert_eq!(log.last_stable_offset(7), 4, "pid 2's marker is not below 7");
        assert_eq!(log.last_stable_offset(8), 8);
        log.on_high_watermark(7);
        assert_eq!(log.last_stable_offset(7), 4);
        assert_eq!(log.last_stable_offset(8), 8);
        log.on_high_watermark(8);
        assert_eq!(log.last_stable_offset(8), 8);
        assert_eq!(log.aborted_txns(0, 8), vec![aborted(2, 4, 7)], "the HW never prunes aborted txns");
    }

    #[test]
    fn a_non_transactional_batch_inside_a_transaction_is_refused() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        txn_data(&mut log, 1, 0, 0, 2);
        let plain_idempotent = producer_batch(1, 0, 2, false, &values(1, "x"));
        let err = producer_err(log.append_as_leader(&plain_idempotent, 0));
        assert_eq!(err, ProducerStateError::InvalidTxnState { txn_first_offset: 0 });
        assert_eq!(log.log_end_offset(), 2);
        marker(&mut log, 1, 0, COMMIT);
        assert_eq!(log.append_as_leader(&plain_idempotent, 0).unwrap().first_offset, 3);
    }

    #[test]
    fn markers_from_fenced_producers_or_coordinators_are_refused() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        txn_data(&mut log, 1, 3, 0, 1);
        log.append_marker_as_leader(1, 3, 5, ABORT, 0, 0).unwrap();
        let fenced = log.append_marker_as_leader(1, 3, 4, ABORT, 0, 0);
        assert_eq!(producer_err(fenced), ProducerStateError::CoordinatorFenced { current: 5, got: 4 });
        let zombie = log.append_marker_as_leader(1, 2, 5, ABORT, 0, 0);
        assert_eq!(producer_err(zombie), ProducerStateError::InvalidProducerEpoch { current: 3, got: 2 });
        assert_eq!(log.log_end_offset(), 2, "nothing refused was written");
        log.append_marker_as_leader(7, 0, 0, COMMIT, 0, 0).unwrap(); // unknown pid: accepted
    }

    #[test]
    fn transaction_version_1_markers_keep_sequences_and_version_2_markers_restart_them() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        // TV1: same epoch across transactions, sequences continue.
        txn_data(&mut log, 1, 0, 0, 2);
        marker(&mut log, 1, 0, COMMIT);
        assert_eq!(txn_data(&mut log, 1, 0, 2, 1).first_offset, 3);
        // TV2: the marker carries epoch + 1 and the producer restarts at 0.
        marker(&mut log, 1, 1, ABORT);
        let gap = producer_batch(1, 1, 3, true, &values(1, "x"));
        let err = producer_err(log.append_as_leader(&gap, 0));
        assert_eq!(err, ProducerStateError::OutOfOrderSequence { expected: 0, got: 3 });
        assert_eq!(txn_data(&mut log, 1, 1, 0, 1).first_offset, 5);
        let old = producer_batch(1, 0, 3, true, &values(1, "x"));
        let err = producer_err(log.append_as_leader(&old, 0));
        assert_eq!(err, ProducerStateError::InvalidProducerEpoch { current: 1, got: 0 });
        assert_eq!(log.aborted_txns(0, 10), vec![aborted(1, 3, 4)]);
    }

    #[test]
    fn expiry_keeps_producers_with_open_transactions() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        txn_data(&mut log, 1, 0, 0, 1);
        let idle = producer_batch(2, 0, 0, false, &values(1, "x"));
        log.append_as_leader(&idle, 0).unwrap();
        assert_eq!(log.remove_expired_producers(i64::MAX, 1), 1);
        assert_eq!(log.ongoing_txns(), vec![(1, 0)]);
        assert!(log.producer_state().entry(2).is_none());
        assert_eq!(log.last_stable_offset(2), 0);
    }

    #[test]
    fn aborted_txns_answers_the_overlap_with_a_fetch_range() {
        let mut log = open(&MemStorage::new(), LogConfig::default());
        txn_data(&mut log, 1, 0, 0, 2); // 0-1
        txn_data(&mut log, 2, 0, 0, 1); // 2
        marker(&mut log, 2, 0, ABORT); // 3
        txn_data(&mut log, 3, 0, 0, 1); // 4
        marker(&mut log, 3, 0, COMMIT); // 5
        marker(&mut log, 1, 0, ABORT); // 6
        txn_data(&mut log, 2, 0, 1, 2); // 7-8
        marker(&mut log, 2, 0, ABORT); // 9
        let all = vec![aborted(1, 0, 6), aborted(2, 2, 3), aborted(2, 7, 9)];
        assert_eq!(log.aborted_txns(0, 10), all);
        assert_eq!(log.aborted_txns(4, 10), vec![aborted(1, 0, 6), aborted(2, 7, 9)]);
        assert_eq!(log.aborted_txns(3, 7), vec![aborted(1, 0, 6), aborted(2, 2, 3)]);
        assert_eq!(log.aborted_txns(7, 8), vec![aborted(2, 7, 9)]);
        assert_eq!(log.aborted_txns(10, 20), vec![]);
        assert_eq!(log.aborted_txns(0, 0), vec![]);
    }

    #[test]
    fn truncating_a_marker_reopens_its_transaction_and_drops_its_abort() {
        let mut log = open(&MemStorage::new(), small(300, u64::MAX));
        txn_data(&mut log, 1, 0, 0, 2); // 0-1
        marker(&mut log, 1, 0, ABORT); // 2
        txn_data(&mut log, 2, 0, 0, 1); // 3
        marker(&mut log, 2, 1, ABORT); // 4, TV2 bump
        log.on_high_watermark(5);
        assert_eq!(log.aborted_txns(0, 5), vec![aborted(1, 0, 2), aborted(2, 3, 4)]);
        assert_eq!(log.last_stable_offset(5), 5);
        log.truncate_to(4).unwrap();
        assert_eq!(log.ongoing_txns(), vec![(2, 3)]);
        assert_eq!(log.aborted_txns(0, 5), vec![aborted(1, 0, 2)]);
        assert_eq!(log.last_stable_offset(4), 3);
        let e = log.producer_state().entry(2).map(|e| e.epoch());
        assert_eq!(e, Some(0), "the bumped epoch went with its marker");
        assert_eq!(txn_data(&mut log, 2, 0, 1, 1).first_offset, 4, "the transaction continues");
        log.truncate_to(2).unwrap();
        assert_eq!(log.ongoing_txns(), vec![(1, 0)]);
        assert_eq!(log.aborted_txns(0, 5), vec![]);
        assert_eq!(log.last_stable_offset(2), 0);
    }

    #[test]
    fn reopening_and_following_rebuild_the_same_transaction_state() {
        let mem = MemStorage::new();
        let mut log = open(&mem, small(300, u64::MAX));
        log.append_as_leader(&batch(2, "plain"), 0).unwrap();
        txn_data(&mut log, 1, 0, 0, 3);
        txn_data(&mut log, 2, 4, 0, 1);
        log.append_marker_as_leader(1, 1, 6, ABORT, 0, 500).unwrap();
        txn_data(&mut log, 3, 0, 0, 2);
        log.append_marker_as_leader(3, 0, 2, COMMIT, 0, 600).unwrap();
        log.append_marker_as_leader(9, 0, 1, COMMIT, 0, 700).unwrap(); // unknown pid
        txn_data(&mut log, 1, 1, 0, 1);
        assert!(log.segments.len() > 2, "the replay must cross segments");
        let state = |l: &Log| {
            let lso: Vec<i64> = (0..=l.log_end_offset()).map(|hw| l.last_stable_offset(hw)).collect();
            (l.producer_state().clone(), l.ongoing_txns(), l.aborted_txns(0, i64::MAX), lso)
        };
        let before = state(&log);
        assert_eq!(before.1, vec![(1, 11), (2, 5)]);
        assert_eq!(before.2, vec![aborted(1, 2, 6)]);
        let e = before.0.entry(1).map(|e| (e.epoch(), e.coordinator_epoch()));
        assert_eq!(e, Some((1, 6)));
        let fetched = log.read(0, usize::MAX).unwrap().bytes;
        drop(log);
        assert_eq!(state(&open(&mem, small(300, u64::MAX))), before);
        let mut follower = open(&MemStorage::new(), small(300, u64::MAX));
        follower.append_as_follower(&fetched).unwrap();
        assert_eq!(state(&follower), before);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let err = LogError::OffsetOutOfRange {
            requested: 9,
            start: 0,
            end: 3,
        };
        assert_eq!(
            err.to_string(),
            "offset 9 out of range: expected 0 <= offset <= 3"
        );
        let err = LogError::Batch {
            offset: 4,
            source: BatchError::BadMagic(1),
        };
        assert_eq!(
            err.to_string(),
            "invalid batch at offset 4: bad magic 1, expected 2"
        );
    }
}
