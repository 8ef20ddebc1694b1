//! `RaftLog`: the replicated log, one append-only file of CRC32C-checked frames.
//!
//! Frame: `len: u32` (of the body) `crc: u32` (CRC32C of the body), body = `epoch: i32`
//! `offset: i64` `payload`. All big-endian. Every append and every truncation is fsynced before
//! it returns, so whatever offset the node reports (a follower's fetch offset, the leader's own
//! end offset in the high-watermark count) is durable. On open, a torn or corrupt tail (a
//! partial frame, a bad CRC, an offset or epoch out of order) is cut off and the cut fsynced.
//!
//! The whole log is also kept in memory: the metadata log is small and has no snapshots here.

use std::io;
use std::rc::Rc;

use super::message::Entry;
use super::quorum_state::DIR;
use crate::seam::Storage;

const PATH: &str = "__cluster_metadata-0/raft.log";
const HEADER_LEN: usize = 8;
const BODY_FIXED_LEN: usize = 12;

pub(crate) struct RaftLog {
    storage: Rc<dyn Storage>,
    entries: Vec<Entry>,
    /// File position of each entry's frame, so a truncation knows where to cut.
    positions: Vec<u64>,
    /// `(epoch, start offset)` for every epoch present, ascending: the leader-epoch cache.
    epoch_starts: Vec<(i32, i64)>,
    file_len: u64,
}

impl RaftLog {
    /// Opens (or creates, durably) the log and cuts any torn or corrupt tail.
    pub fn open(storage: Rc<dyn Storage>) -> io::Result<RaftLog> {
        if !storage.exists(PATH) {
            storage.create(PATH)?;
            storage.fsync(PATH)?;
            storage.sync_dir(DIR)?;
        }
        let len = storage.len(PATH)?;
        let bytes = storage.read_at(PATH, 0, usize::try_from(len).expect("log fits in memory"))?;
        let mut log = RaftLog {
            storage,
            entries: Vec::new(),
            positions: Vec::new(),
            epoch_starts: Vec::new(),
            file_len: 0,
        };
        while let Some((entry, frame_len)) = log.decode_next(&bytes[log.file_len as usize..]) {
            let position = log.file_len;
            log.push(entry, position);
            log.file_len += frame_len as u64;
        }
        if log.file_len < len {
            log.storage.truncate(PATH, log.file_len)?;
            log.storage.fsync(PATH)?;
        }
        Ok(log)
    }

    /// The next frame if it is whole, intact and continues this log.
    fn decode_next(&self, bytes: &[u8]) -> Option<(Entry, usize)> {
        let header = bytes.get(..HEADER_LEN)?;
        let body_len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
        let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
        let body = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(body_len)?)?;
        if body_len < BODY_FIXED_LEN || crc32c::crc32c(body) != crc {
            return None;
        }
        let entry = Entry {
            epoch: i32::from_be_bytes(body[..4].try_into().ok()?),
            offset: i64::from_be_bytes(body[4..12].try_into().ok()?),
            payload: body[12..].to_vec(),
        };
        let continues =
            entry.offset == self.end_offset() && entry.epoch >= self.last_epoch().max(1);
        continues.then_some((entry, HEADER_LEN + body_len))
    }

    fn push(&mut self, entry: Entry, position: u64) {
        assert_eq!(
            entry.offset,
            self.end_offset(),
            "log offsets are contiguous"
        );
        assert!(
            entry.epoch >= self.last_epoch(),
            "epochs go down: {} after {}",
            entry.epoch,
            self.last_epoch()
        );
        if entry.epoch > self.last_epoch() {
            self.epoch_starts.push((entry.epoch, entry.offset));
        }
        self.positions.push(position);
        self.entries.push(entry);
    }

    /// The offset the next entry gets (LEO).
    pub fn end_offset(&self) -> i64 {
        self.entries.len() as i64
    }

    /// The epoch of the last entry, 0 for an empty log.
    pub fn last_epoch(&self) -> i32 {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    pub fn entry(&self, offset: i64) -> Option<&Entry> {
        usize::try_from(offset)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// Up to `max` entries from `from` on.
    pub fn read(&self, from: i64, max: usize) -> Vec<Entry> {
        let start = usize::try_from(from).unwrap_or(0).min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// Appends `entries` (which must continue the log) and fsyncs them.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut frames = Vec::new();
        for entry in entries {
            let position = self.file_len + frames.len() as u64;
            encode_frame(entry, &mut frames);
            self.push(entry.clone(), position);
        }
        let new_len = self.storage.append(PATH, &frames)?;
        self.file_len += frames.len() as u64;
        assert_eq!(
            new_len, self.file_len,
            "log file length drifted from the in-memory log"
        );
        self.storage.fsync(PATH)
    }

    /// Drops every entry at or above `offset`, durably.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        assert!(offset >= 0, "truncate to negative offset {offset}");
        let Ok(keep) = usize::try_from(offset) else {
            return Ok(());
        };
        if keep >= self.entries.len() {
            return Ok(());
        }
        let cut = self.positions[keep];
        self.entries.truncate(keep);
        self.positions.truncate(keep);
        self.epoch_starts.retain(|(_, start)| *start < offset);
        self.file_len = cut;
        self.storage.truncate(PATH, cut)?;
        self.storage.fsync(PATH)
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch in the log not above `epoch`, and the
    /// offset where it ends (the next epoch's start, or LEO). `(0, 0)` when there is none.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let at = self.epoch_starts.partition_point(|(e, _)| *e <= epoch);
        if at == 0 {
            return (0, 0);
        }
        let end = self
            .epoch_starts
            .get(at)
            .map_or(self.end_offset(), |(_, start)| *start);
        (self.epoch_starts[at - 1].0, end)
    }

    /// Where a follower whose last fetch `(fetch_offset, last_fetched_epoch)` the leader
    /// checks diverges from this (the leader's) log: `None` when it is a prefix of it.
    pub fn divergence(&self, fetch_offset: i64, last_fetched_epoch: i32) -> Option<(i32, i64)> {
        if fetch_offset == 0 {
            return None;
        }
        let (epoch, end) = self.end_offset_for_epoch(last_fetched_epoch);
        (epoch != last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
    }

    /// Kafka's `truncateToEndOffset`: how far a follower cuts its log when the leader answers
    /// with `diverging_epoch = (epoch, end)`.
    pub fn truncation_offset(&self, epoch: i32, end: i64) -> i64 {
        if epoch == 0 {
            return end.min(self.end_offset());
        }
        let (local_epoch, local_end) = self.end_offset_for_epoch(epoch);
        if local_epoch == epoch {
            local_end.min(end)
        } else {
            local_end
        }
    }
}

fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(BODY_FIXED_LEN + entry.payload.len());
    body.extend_from_slice(&entry.epoch.to_be_bytes());
    body.extend_from_slice(&entry.offset.to_be_bytes());
    body.extend_from_slice(&entry.payload);
    let body_len = u32::try_from(body.len()).expect("entry larger than 4 GiB");
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::MemStorage;

    fn entry(epoch: i32, offset: i64) -> Entry {
        Entry {
            epoch,
            offset,
            payload: format!("e{epoch}o{offset}").into_bytes(),
        }
    }

    /// A log on `disk` holding entries with the given epochs, offsets from 0.
    fn log_with(disk: &MemStorage, epochs: &[i32]) -> RaftLog {
        let mut log = RaftLog::open(Rc::new(disk.clone())).unwrap();
        let entries: Vec<Entry> = epochs
            .iter()
            .enumerate()
            .map(|(i, e)| entry(*e, i as i64))
            .collect();
        log.append(&entries).unwrap();
        log
    }

    #[test]
    fn appended_entries_survive_a_crash_and_reopen() {
        let disk = MemStorage::new();
        log_with(&disk, &[1, 1, 2]);
        disk.crash(Some(5));
        let log = RaftLog::open(Rc::new(disk)).unwrap();
        assert_eq!(log.end_offset(), 3);
        assert_eq!(log.entry(2), Some(&entry(2, 2)));
        assert_eq!(log.last_epoch(), 2);
    }

    #[test]
    fn a_torn_tail_is_truncated_on_open() {
        let disk = MemStorage::new();
        log_with(&disk, &[1, 1]);
        let mut frame = Vec::new();
        encode_frame(&entry(1, 2), &mut frame);
        disk.append(PATH, &frame[..frame.len() - 3]).unwrap();
        let log = RaftLog::open(Rc::new(disk.clone())).unwrap();
        assert_eq!(log.end_offset(), 2);
        assert_eq!(
            disk.len(PATH).unwrap(),
            log.file_len,
            "the torn bytes are cut from the file"
        );
        disk.crash(None);
        assert_eq!(
            RaftLog::open(Rc::new(disk)).unwrap().end_offset(),
            2,
            "the cut was fsynced"
        );
    }

    #[test]
    fn a_corrupt_frame_and_everything_after_it_are_dropped() {
        let disk = MemStorage::new();
        let log = log_with(&disk, &[1, 1, 1]);
        let flip_at = log.positions[1] + HEADER_LEN as u64 + 13;
        let byte = disk.read_at(PATH, flip_at, 1).unwrap()[0];
        let tail = disk.read_at(PATH, flip_at + 1, usize::MAX).unwrap();
        disk.truncate(PATH, flip_at).unwrap();
        disk.append(PATH, &[byte ^ 0xff]).unwrap();
        disk.append(PATH, &tail).unwrap();
        let log = RaftLog::open(Rc::new(disk)).unwrap();
        assert_eq!(log.end_offset(), 1);
    }

    #[test]
    fn truncation_is_durable_and_appends_continue_after_it() {
        let disk = MemStorage::new();
        let mut log = log_with(&disk, &[1, 1, 2, 2]);
        log.truncate_to(2).unwrap();
        log.append(&[entry(3, 2)]).unwrap();
        disk.crash(Some(3));
        let log = RaftLog::open(Rc::new(disk)).unwrap();
        assert_eq!(log.read(0, 10), vec![entry(1, 0), entry(1, 1), entry(3, 2)]);
        assert_eq!(log.end_offset_for_epoch(2), (1, 2));
    }

    #[test]
    fn end_offset_for_epoch_finds_the_largest_epoch_not_above() {
        let log = log_with(&MemStorage::new(), &[1, 1, 3, 3, 3, 5]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 0));
        assert_eq!(log.end_offset_for_epoch(1), (1, 2));
        assert_eq!(log.end_offset_for_epoch(2), (1, 2));
        assert_eq!(log.end_offset_for_epoch(3), (3, 5));
        assert_eq!(log.end_offset_for_epoch(5), (5, 6));
        assert_eq!(log.end_offset_for_epoch(9), (5, 6));
    }

    #[test]
    fn divergence_is_reported_only_when_the_follower_is_not_a_prefix() {
        let leader = log_with(&MemStorage::new(), &[1, 1, 2, 2, 4]);
        assert_eq!(leader.divergence(0, 0), None);
        assert_eq!(leader.divergence(2, 1), None);
        assert_eq!(leader.divergence(5, 4), None);
        assert_eq!(
            leader.divergence(3, 1),
            Some((1, 2)),
            "follower has more epoch-1 entries"
        );
        assert_eq!(
            leader.divergence(4, 3),
            Some((2, 4)),
            "leader never had epoch 3"
        );
        assert_eq!(
            leader.divergence(6, 4),
            Some((4, 5)),
            "follower is past the leader's end"
        );
    }

    #[test]
    fn a_follower_converges_on_the_leader_by_repeated_truncation() {
        let leader = log_with(&MemStorage::new(), &[1, 1, 2, 2, 2, 4]);
        let mut follower = log_with(&MemStorage::new(), &[1, 1, 1, 1, 3, 3]);
        for _ in 0..10 {
            let (leo, last) = (follower.end_offset(), follower.last_epoch());
            let Some((epoch, end)) = leader.divergence(leo, last) else {
                break;
            };
            let cut = follower.truncation_offset(epoch, end);
            assert!(cut < leo, "each divergence makes progress");
            follower.truncate_to(cut).unwrap();
        }
        assert_eq!(follower.end_offset(), 2);
        assert_eq!(leader.divergence(2, 1), None);
    }
}
