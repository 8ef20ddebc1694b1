//! `LeaderEpochCache`: Kafka's `LeaderEpochFileCache`, the per-replica list of
//! `(leader epoch, start offset)` pairs that says which leader wrote which range of the log.
//!
//! The entries are strictly increasing in both fields. Every change is written to the
//! checkpoint file in Kafka's text format (`0`, the entry count, then one `epoch offset` line
//! per entry) through a temporary file: write `path.tmp`, fsync it, rename it over `path`, then
//! sync the parent directory. A crash therefore leaves either the old or the new checkpoint,
//! never a torn one. Unlike Kafka, truncations are flushed synchronously too (Kafka flushes
//! them in the background and repairs a stale checkpoint when the log is loaded).
//!
//! The in-memory entries only change once the checkpoint is durable: a failed write leaves
//! the cache exactly as the file on disk. This module knows nothing about replication; the
//! divergence rules that use `end_offset_for` live in `replication::truncation`.

use std::io;
use std::rc::Rc;

use crate::seam::{write_atomically, Storage};

/// One leader epoch and the offset of the first record that leader wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// A replica's leader epoch history, backed by a checkpoint file.
pub struct LeaderEpochCache {
    /// Strictly increasing in both `epoch` and `start_offset`.
    entries: Vec<EpochEntry>,
    storage: Rc<dyn Storage>,
    path: String,
}

/// Kafka's checkpoint format version for the leader epoch file.
const CHECKPOINT_VERSION: u32 = 0;

impl LeaderEpochCache {
    /// `UNDEFINED_EPOCH` of OffsetsForLeaderEpochResponse: no such epoch is known.
    pub const UNDEFINED_EPOCH: i32 = -1;
    /// `UNDEFINED_EPOCH_OFFSET` of OffsetsForLeaderEpochResponse.
    pub const UNDEFINED_OFFSET: i64 = -1;

    /// Loads the checkpoint at `path`; a missing file is an empty cache. Like Kafka, the loaded
    /// entries go through the `assign` rules, so a non-monotonic file is repaired, not trusted.
    pub fn open(storage: Rc<dyn Storage>, path: &str) -> io::Result<Self> {
        let mut entries = Vec::new();
        if storage.exists(path) {
            let len = storage.len(path)?;
            let bytes = storage.read_at(path, 0, usize::try_from(len).unwrap_or(usize::MAX))?;
            for entry in parse_checkpoint(&bytes).map_err(|why| corrupt(path, &why))? {
                validate(entry).map_err(|why| corrupt(path, &why))?;
                assign_entry(&mut entries, entry);
            }
        }
        assert_monotonic(&entries);
        Ok(LeaderEpochCache {
            entries,
            storage,
            path: path.to_string(),
        })
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`). Ignored when `epoch`
    /// is already the latest and does not start earlier; otherwise every entry that would break
    /// monotonicity (epoch >= `epoch` or start >= `start_offset`) is dropped first.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        let entry = EpochEntry {
            epoch,
            start_offset,
        };
        validate(entry).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        if !update_needed(&self.entries, entry) {
            return Ok(());
        }
        let mut next = self.entries.clone();
        assign_entry(&mut next, entry);
        assert_eq!(
            next.last(),
            Some(&entry),
            "assign must end with the new entry"
        );
        self.replace(next)
    }

    /// The epoch of the last entry, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `endOffsetFor`: the largest cached epoch `<= epoch` and the offset where it
    /// ends (the next epoch's start, or `log_end_offset` for the latest epoch).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        Self::end_offset_in(&self.entries, epoch, log_end_offset)
    }

    /// `end_offset_for` over a bare list of entries (strictly increasing in both fields), for
    /// pure code that holds a copy of another replica's history.
    pub fn end_offset_in(entries: &[EpochEntry], epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (
            LeaderEpochCache::UNDEFINED_EPOCH,
            LeaderEpochCache::UNDEFINED_OFFSET,
        );
        if epoch == Self::UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if entries.last().map(|e| e.epoch) == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let Some(higher) = entries.iter().find(|e| e.epoch > epoch) else {
            // Newer than every epoch we know: cannot say where it ends.
            return UNDEFINED;
        };
        match entries.iter().rev().find(|e| e.epoch <= epoch) {
            // Older than everything cached (the log start was truncated past it): the best
            // answer is where the history we still have begins.
            None => (epoch, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// The log was truncated to `end_offset` (offsets `>= end_offset` are gone): drops every
    /// entry starting at or after it. A negative offset is ignored, as in Kafka.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        let stale = self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset);
        if end_offset < 0 || !stale {
            return Ok(());
        }
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.start_offset < end_offset)
            .count();
        let next = self.entries[..keep].to_vec();
        assert!(
            next.len() < self.entries.len(),
            "truncate_from_end({end_offset}) removed nothing"
        );
        self.replace(next)
    }

    /// The log start moved to `start_offset`: entries starting at or before it collapse into
    /// one entry for the epoch in force at `start_offset`, now starting there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> io::Result<()> {
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if covered == 0 {
            return Ok(());
        }
        let mut next = Vec::with_capacity(self.entries.len() - covered + 1);
        next.push(EpochEntry {
            epoch: self.entries[covered - 1].epoch,
            start_offset,
        });
        next.extend_from_slice(&self.entries[covered..]);
        if next == self.entries {
            return Ok(());
        }
        self.replace(next)
    }

    /// The cached entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch of the leader that wrote `offset`, per Kafka's `epochForOffset`: the last
    /// entry starting at or before `offset`; `None` before the first entry.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map(|e| e.epoch)
    }

    /// Writes `next` durably, then adopts it.
    fn replace(&mut self, next: Vec<EpochEntry>) -> io::Result<()> {
        assert_monotonic(&next);
        write_checkpoint(self.storage.as_ref(), &self.path, &next)?;
        self.entries = next;
        Ok(())
    }
}

/// Kafka's `isUpdateNeeded`: a new epoch, or the latest epoch moving to an earlier start.
fn update_needed(entries: &[EpochEntry], entry: EpochEntry) -> bool {
    entries.last().is_none_or(|latest| {
        entry.epoch != latest.epoch || entry.start_offset < latest.start_offset
    })
}

/// Kafka's `maybeTruncateNonMonotonicEntries` followed by the append.
fn assign_entry(entries: &mut Vec<EpochEntry>, entry: EpochEntry) {
    if !update_needed(entries, entry) {
        return;
    }
    while entries
        .last()
        .is_some_and(|e| e.epoch >= entry.epoch || e.start_offset >= entry.start_offset)
    {
        entries.pop();
    }
    entries.push(entry);
}

fn validate(entry: EpochEntry) -> Result<(), String> {
    if entry.epoch < 0 || entry.start_offset < 0 {
        return Err(format!("invalid leader epoch entry {entry:?}"));
    }
    Ok(())
}

fn assert_monotonic(entries: &[EpochEntry]) {
    for pair in entries.windows(2) {
        assert!(
            pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset,
            "leader epoch entries must strictly increase: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

fn corrupt(path: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt leader epoch checkpoint {path:?}: {why}"),
    )
}

fn render_checkpoint(entries: &[EpochEntry]) -> String {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    text
}

/// Parses Kafka's checkpoint text. Like Kafka's `CheckpointReadBuffer`, an empty file (or one
/// holding only the version) reads as no entries; any other shortfall or bad line is an error.
fn parse_checkpoint(bytes: &[u8]) -> Result<Vec<EpochEntry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut lines = text.lines();
    let Some(version) = lines.next() else {
        return Ok(Vec::new());
    };
    if version.trim().parse::<u32>() != Ok(CHECKPOINT_VERSION) {
        return Err(format!("unrecognised version line {version:?}"));
    }
    let Some(count) = lines.next() else {
        return Ok(Vec::new());
    };
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("bad entry count {count:?}"))?;
    let entries = lines.map(parse_entry_line).collect::<Result<Vec<_>, _>>()?;
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

fn parse_entry_line(line: &str) -> Result<EpochEntry, String> {
    let malformed = || format!("malformed line {line:?}");
    let mut parts = line.split_whitespace();
    let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    Ok(EpochEntry {
        epoch: epoch.parse().map_err(|_| malformed())?,
        start_offset: offset.parse().map_err(|_| malformed())?,
    })
}

/// Replaces the checkpoint atomically: tmp file, fsync, rename, directory sync.
fn write_checkpoint(storage: &dyn Storage, path: &str, entries: &[EpochEntry]) -> io::Result<()> {
    write_atomically(storage, path, render_checkpoint(entries).as_bytes())
}

#[cfg(test)]
mod tests;
