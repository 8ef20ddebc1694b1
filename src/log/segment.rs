//! One log segment: a `{base_offset:020}.log` file of whole v2 batches plus a sparse offset
//! index kept in memory.
//!
//! The index maps a batch's offset (relative to the segment base) to its file position; an
//! entry is added when the batch starts at least `index_interval_bytes` after the previous
//! entry, so a lookup is a binary search for the floor entry and then a short linear scan of
//! batch headers. The index is never written to disk: recovery has to scan every batch anyway
//! to find a torn or corrupt tail, and the same scan rebuilds the index for free. Because entry
//! placement depends only on batch positions, a rebuilt index equals the one built by appends.

use std::rc::Rc;

use super::batch::{verify_crc, BatchError, BatchHeader, BATCH_HEADER_LEN};
use super::partition_log::LogError;
use crate::seam::Storage;

/// A sparse index entry: the batch starting at `position` has base offset `base + relative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub relative_offset: u32,
    pub position: u64,
}

pub(crate) struct Segment {
    storage: Rc<dyn Storage>,
    path: String,
    base_offset: i64,
    /// Bytes of whole, validated batches; the file is never longer while the segment is open.
    size: u64,
    /// The offset the next batch appended here must start at.
    next_offset: i64,
    index: Vec<IndexEntry>,
    index_interval_bytes: u64,
    /// Whether the file holds bytes (or a truncation) not yet fsynced.
    dirty: bool,
}

/// The file name of the segment starting at `base_offset`.
pub(crate) fn file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// The base offset encoded in a segment file name, or `None` for any other file.
pub(crate) fn parse_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_string(),
        source,
    }
}

impl Segment {
    fn empty(storage: Rc<dyn Storage>, dir: &str, base_offset: i64, interval: u64) -> Segment {
        assert!(
            base_offset >= 0,
            "segment base offset {base_offset} is negative"
        );
        Segment {
            storage,
            path: join(dir, &file_name(base_offset)),
            base_offset,
            size: 0,
            next_offset: base_offset,
            index: Vec::new(),
            index_interval_bytes: interval,
            dirty: false,
        }
    }

    /// Creates a new, empty segment file (replacing any file of that name).
    pub fn create(
        storage: Rc<dyn Storage>,
        dir: &str,
        base_offset: i64,
        interval: u64,
    ) -> Result<Segment, LogError> {
        let mut seg = Segment::empty(storage, dir, base_offset, interval);
        seg.storage.create(&seg.path).map_err(io_err(&seg.path))?;
        seg.dirty = true;
        Ok(seg)
    }

    /// Opens an existing segment file, keeping its longest valid prefix of contiguous batches
    /// and cutting the file there; returns why it stopped early, if it did. The segment comes
    /// back dirty: what was read may live only in the page cache (a process restart) and the
    /// cut must not be undone by a crash, so the caller must fsync before trusting it.
    pub fn recover(
        storage: Rc<dyn Storage>,
        dir: &str,
        base_offset: i64,
        interval: u64,
    ) -> Result<(Segment, Option<LogError>), LogError> {
        let mut seg = Segment::empty(storage, dir, base_offset, interval);
        let len = seg.storage.len(&seg.path).map_err(io_err(&seg.path))?;
        let bytes = seg
            .storage
            .read_at(&seg.path, 0, len as usize)
            .map_err(io_err(&seg.path))?;
        let stop = seg.scan(&bytes);
        if stop.is_some() {
            seg.storage
                .truncate(&seg.path, seg.size)
                .map_err(io_err(&seg.path))?;
        }
        seg.dirty = true;
        Ok((seg, stop))
    }

    /// Replays `bytes` batch by batch into the in-memory state; returns why it had to stop.
    fn scan(&mut self, bytes: &[u8]) -> Option<LogError> {
        while (self.size as usize) < bytes.len() {
            let pos = self.size as usize;
            let batch_err = |source| LogError::Batch {
                offset: self.next_offset,
                source,
            };
            let reason = match BatchHeader::parse(&bytes[pos..]) {
                Err(e) => batch_err(e),
                Ok(h) if h.size() > bytes.len() - pos => batch_err(BatchError::Truncated {
                    need: h.size(),
                    have: bytes.len() - pos,
                }),
                Ok(h) if h.base_offset != self.next_offset => LogError::NonContiguous {
                    expected: self.next_offset,
                    got: h.base_offset,
                },
                Ok(h) => match verify_crc(&bytes[pos..pos + h.size()]) {
                    Err(e) => batch_err(e),
                    Ok(()) => {
                        self.track(&h);
                        continue;
                    }
                },
            };
            return Some(reason);
        }
        None
    }

    /// Accounts for a validated batch `h` that now sits at the end of the file.
    fn track(&mut self, h: &BatchHeader) {
        assert_eq!(
            h.base_offset, self.next_offset,
            "{}: batch does not continue the segment",
            self.path
        );
        let position = self.size;
        let last_indexed = self.index.last().map_or(0, |e| e.position);
        if position > 0 && position >= last_indexed + self.index_interval_bytes {
            let entry = IndexEntry {
                relative_offset: self.relative(h.base_offset),
                position,
            };
            assert!(
                self.index
                    .last()
                    .is_none_or(|e| e.relative_offset < entry.relative_offset
                        && e.position < entry.position),
                "{}: index entry {entry:?} out of order after {:?}",
                self.path,
                self.index.last()
            );
            self.index.push(entry);
        }
        self.size += h.size() as u64;
        self.next_offset = h.last_offset() + 1;
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset)
            .unwrap_or_else(|_| panic!("{}: offset {offset} not relative-addressable", self.path))
    }

    /// Appends one validated batch whose base offset is this segment's next offset.
    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> Result<(), LogError> {
        assert_eq!(
            batch.len(),
            h.size(),
            "{}: batch slice and header disagree",
            self.path
        );
        let new_len = self
            .storage
            .append(&self.path, batch)
            .map_err(io_err(&self.path))?;
        assert_eq!(
            new_len,
            self.size + batch.len() as u64,
            "{}: file length diverged from the segment's accounting",
            self.path
        );
        self.track(h);
        self.dirty = true;
        Ok(())
    }

    /// Whether appending a batch of `batch_len` bytes ending at `last_offset` must go to a new
    /// segment. An empty segment takes any batch, so an oversized batch still finds a home.
    pub fn is_full_for(&self, batch_len: usize, last_offset: i64, segment_bytes: u64) -> bool {
        let too_big = self.size > 0 && self.size + batch_len as u64 > segment_bytes;
        let unaddressable = last_offset - self.base_offset > i64::from(u32::MAX);
        too_big || unaddressable
    }

    /// Reads and checks the whole batch at `position`, which must start at offset `expected`.
    pub fn read_batch_at(&self, position: u64, expected: i64) -> Result<Vec<u8>, LogError> {
        let h = self.read_header_at(position, expected)?;
        let bytes = self
            .storage
            .read_at(&self.path, position, h.size())
            .map_err(io_err(&self.path))?;
        verify_crc(&bytes).map_err(|source| LogError::Batch {
            offset: expected,
            source,
        })?;
        Ok(bytes)
    }

    /// Reads the header at `position`, checking that it starts at offset `expected`.
    pub fn read_header_at(&self, position: u64, expected: i64) -> Result<BatchHeader, LogError> {
        assert!(
            position < self.size,
            "{}: read at {position} past size {}",
            self.path,
            self.size
        );
        let bytes = self
            .storage
            .read_at(&self.path, position, BATCH_HEADER_LEN)
            .map_err(io_err(&self.path))?;
        let h = BatchHeader::parse(&bytes).map_err(|source| LogError::Batch {
            offset: expected,
            source,
        })?;
        if h.base_offset != expected {
            return Err(LogError::NonContiguous {
                expected,
                got: h.base_offset,
            });
        }
        Ok(h)
    }

    /// The position and header of the batch containing `offset`, which must lie in this
    /// segment: floor index entry, then a scan of headers.
    pub fn locate(&self, offset: i64) -> Result<(u64, BatchHeader), LogError> {
        assert!(
            self.base_offset <= offset && offset < self.next_offset,
            "{}: offset {offset} outside [{}, {})",
            self.path,
            self.base_offset,
            self.next_offset
        );
        let rel = self.relative(offset);
        let floor = self.index.partition_point(|e| e.relative_offset <= rel);
        let (mut position, mut expected) = match floor {
            0 => (0, self.base_offset),
            i => (
                self.index[i - 1].position,
                self.base_offset + i64::from(self.index[i - 1].relative_offset),
            ),
        };
        loop {
            let h = self.read_header_at(position, expected)?;
            if h.last_offset() >= offset {
                return Ok((position, h));
            }
            position += h.size() as u64;
            expected = h.last_offset() + 1;
        }
    }

    /// Cuts the segment before the batch containing `offset` (a batch is never split).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let (position, h) = self.locate(offset)?;
        self.storage
            .truncate(&self.path, position)
            .map_err(io_err(&self.path))?;
        self.size = position;
        self.next_offset = h.base_offset;
        self.index.retain(|e| e.position < position);
        self.dirty = true;
        Ok(())
    }

    pub fn fsync(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.storage.fsync(&self.path).map_err(io_err(&self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn remove(self) -> Result<(), LogError> {
        self.storage.remove(&self.path).map_err(io_err(&self.path))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    #[cfg(test)]
    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::build_test_batch;
    use crate::seam::MemStorage;

    fn storage() -> (MemStorage, Rc<dyn Storage>) {
        let mem = MemStorage::new();
        (mem.clone(), Rc::new(mem))
    }

    /// Appends `n` one-record batches continuing the segment; returns their sizes.
    fn fill(seg: &mut Segment, n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| {
                let b = build_test_batch(seg.next_offset(), &[format!("value-{i}").as_bytes()]);
                seg.append(&b, &BatchHeader::parse(&b).unwrap()).unwrap();
                b.len()
            })
            .collect()
    }

    #[test]
    fn file_names_round_trip_and_foreign_files_are_ignored() {
        assert_eq!(file_name(42), "00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_file_name("42.log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log"), None);
    }

    #[test]
    fn index_lookup_finds_every_offset_across_many_batches() {
        let (_, st) = storage();
        let mut seg = Segment::create(st, "p", 100, 256).unwrap();
        let sizes = fill(&mut seg, 200);
        assert!(seg.index().len() > 10, "index should be sparse but present");
        assert!(
            seg.index().len() < 200,
            "index should be sparse: {}",
            seg.index().len()
        );
        let mut position = 0u64;
        for (i, size) in sizes.iter().enumerate() {
            let (pos, h) = seg.locate(100 + i as i64).unwrap();
            assert_eq!((pos, h.base_offset), (position, 100 + i as i64));
            position += *size as u64;
        }
    }

    #[test]
    fn index_entries_are_at_least_the_interval_apart() {
        let (_, st) = storage();
        let mut seg = Segment::create(st, "p", 0, 300).unwrap();
        fill(&mut seg, 100);
        let mut last = 0;
        for e in seg.index() {
            assert!(e.position >= last + 300, "{e:?} too close to {last}");
            last = e.position;
        }
    }

    #[test]
    fn recovery_rebuilds_the_same_index_appends_built() {
        let (_, st) = storage();
        let mut seg = Segment::create(st.clone(), "p", 0, 200).unwrap();
        fill(&mut seg, 50);
        let (reopened, stop) = Segment::recover(st, "p", 0, 200).unwrap();
        assert!(stop.is_none());
        assert_eq!(reopened.index(), seg.index());
        assert_eq!(
            (reopened.size(), reopened.next_offset()),
            (seg.size(), seg.next_offset())
        );
    }

    #[test]
    fn recovery_stops_at_a_partial_batch_and_truncates_it() {
        let (mem, st) = storage();
        let mut seg = Segment::create(st.clone(), "p", 0, 4096).unwrap();
        fill(&mut seg, 3);
        let good = seg.size();
        let partial = build_test_batch(3, &[b"torn"]);
        mem.append("p/00000000000000000000.log", &partial[..partial.len() / 2])
            .unwrap();
        let (seg, stop) = Segment::recover(st, "p", 0, 4096).unwrap();
        let stop = stop.expect("the partial batch must stop recovery");
        assert!(matches!(
            stop,
            LogError::Batch {
                offset: 3,
                source: BatchError::Truncated { .. }
            }
        ));
        assert_eq!((seg.size(), seg.next_offset()), (good, 3));
        assert_eq!(mem.len("p/00000000000000000000.log").unwrap(), good);
    }

    #[test]
    fn recovery_stops_at_a_batch_that_skips_offsets() {
        let (mem, st) = storage();
        let mut seg = Segment::create(st.clone(), "p", 0, 4096).unwrap();
        fill(&mut seg, 2);
        mem.append(
            "p/00000000000000000000.log",
            &build_test_batch(7, &[b"gap"]),
        )
        .unwrap();
        let (seg, stop) = Segment::recover(st, "p", 0, 4096).unwrap();
        assert!(matches!(
            stop.unwrap(),
            LogError::NonContiguous {
                expected: 2,
                got: 7
            }
        ));
        assert_eq!(seg.next_offset(), 2);
    }

    #[test]
    fn truncate_cuts_before_the_batch_holding_the_offset_and_drops_its_index_entries() {
        let (_, st) = storage();
        let mut seg = Segment::create(st.clone(), "p", 0, 100).unwrap();
        for i in 0..20 {
            let b = build_test_batch(i * 3, &[b"a", b"b", b"c"]);
            seg.append(&b, &BatchHeader::parse(&b).unwrap()).unwrap();
        }
        seg.truncate_to(31).unwrap(); // inside batch [30, 32]
        assert_eq!(seg.next_offset(), 30);
        assert!(seg.index().iter().all(|e| e.position < seg.size()));
        let (rebuilt, _) = Segment::recover(st, "p", 0, 100).unwrap();
        assert_eq!(rebuilt.index(), seg.index());
    }

    #[test]
    fn a_segment_is_full_only_once_it_has_something() {
        let (_, st) = storage();
        let mut seg = Segment::create(st, "p", 0, 4096).unwrap();
        assert!(!seg.is_full_for(10_000, 0, 100));
        fill(&mut seg, 1);
        assert!(seg.is_full_for(10_000, 1, 100));
        assert!(seg.is_full_for(1, i64::from(u32::MAX) + 1, u64::MAX));
    }
}
