use std::cell::Cell;
use std::io;
use std::rc::Rc;

use super::*;
use crate::seam::MemStorage;

const PATH: &str = "orders-0/leader-epoch-checkpoint";
const UNDEFINED: (i32, i64) = (
    LeaderEpochCache::UNDEFINED_EPOCH,
    LeaderEpochCache::UNDEFINED_OFFSET,
);

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

fn cache_with(disk: &MemStorage, entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut cache = LeaderEpochCache::open(Rc::new(disk.clone()), PATH).unwrap();
    for &(epoch, start) in entries {
        cache.assign(epoch, start).unwrap();
    }
    cache
}

fn file_text(disk: &MemStorage, path: &str) -> String {
    String::from_utf8(disk.read_at(path, 0, usize::MAX).unwrap()).unwrap()
}

fn reopen(disk: &MemStorage) -> Vec<EpochEntry> {
    LeaderEpochCache::open(Rc::new(disk.clone()), PATH)
        .unwrap()
        .entries()
        .to_vec()
}

// ---- endOffsetFor, against the digest's pseudocode (KAFKA.md §1.6) ----

#[test]
fn end_offset_for_the_latest_epoch_is_the_log_end_offset() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (3, 10), (5, 20)]);
    assert_eq!(cache.end_offset_for(5, 27), (5, 27));
}

#[test]
fn end_offset_for_a_middle_epoch_is_the_next_epochs_start() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (3, 10), (5, 20)]);
    assert_eq!(cache.end_offset_for(3, 27), (3, 20));
    assert_eq!(cache.end_offset_for(1, 27), (1, 10));
}

#[test]
fn end_offset_for_an_epoch_older_than_all_is_the_first_start_with_the_asked_epoch() {
    let cache = cache_with(&MemStorage::new(), &[(2, 5), (3, 10)]);
    assert_eq!(cache.end_offset_for(1, 27), (1, 5));
    assert_eq!(cache.end_offset_for(0, 27), (0, 5));
}

#[test]
fn end_offset_for_an_epoch_in_a_gap_answers_the_epoch_below_and_the_start_above() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (3, 10), (5, 20)]);
    assert_eq!(cache.end_offset_for(2, 27), (1, 10));
    assert_eq!(cache.end_offset_for(4, 27), (3, 20));
}

#[test]
fn end_offset_for_an_epoch_newer_than_all_is_undefined() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (3, 10)]);
    assert_eq!(cache.end_offset_for(4, 27), UNDEFINED);
}

#[test]
fn end_offset_for_on_an_empty_cache_is_undefined() {
    let cache = cache_with(&MemStorage::new(), &[]);
    assert_eq!(cache.end_offset_for(0, 0), UNDEFINED);
    assert_eq!(cache.end_offset_for(7, 12), UNDEFINED);
}

#[test]
fn end_offset_for_the_undefined_epoch_is_undefined() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0)]);
    assert_eq!(
        cache.end_offset_for(LeaderEpochCache::UNDEFINED_EPOCH, 9),
        UNDEFINED
    );
}

// ---- assign ----

#[test]
fn assign_appends_a_new_epoch_and_reports_it_latest() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (2, 5)]);
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 5)]);
    assert_eq!(cache.latest_epoch(), Some(2));
}

#[test]
fn assign_of_the_latest_epoch_at_a_later_offset_is_ignored() {
    let disk = MemStorage::new();
    let mut cache = cache_with(&disk, &[(1, 0), (2, 5)]);
    let before = file_text(&disk, PATH);
    cache.assign(2, 9).unwrap();
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 5)]);
    assert_eq!(file_text(&disk, PATH), before);
}

#[test]
fn assign_of_the_latest_epoch_at_an_earlier_offset_moves_its_start() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (2, 5), (2, 3)]);
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 3)]);
}

#[test]
fn assign_of_an_older_epoch_drops_every_entry_with_a_greater_or_equal_epoch() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (3, 5), (4, 8), (2, 9)]);
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 9)]);
}

#[test]
fn assign_at_an_earlier_offset_drops_every_entry_starting_at_or_after_it() {
    let cache = cache_with(&MemStorage::new(), &[(1, 0), (2, 5), (3, 8), (4, 5)]);
    assert_eq!(cache.entries(), &[e(1, 0), e(4, 5)]);
}

#[test]
fn assign_rejects_negative_epochs_and_offsets() {
    let mut cache = cache_with(&MemStorage::new(), &[(1, 0)]);
    for (epoch, start) in [(-1, 3), (2, -1)] {
        let err = cache.assign(epoch, start).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
    assert_eq!(cache.entries(), &[e(1, 0)]);
}

// ---- truncation at both ends, epoch_for_offset ----

#[test]
fn truncate_from_end_drops_entries_starting_at_or_after_the_new_end() {
    let mut cache = cache_with(&MemStorage::new(), &[(1, 0), (2, 5), (3, 8)]);
    cache.truncate_from_end(8).unwrap();
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 5)]);
    cache.truncate_from_end(6).unwrap();
    assert_eq!(cache.entries(), &[e(1, 0), e(2, 5)]);
    cache.truncate_from_end(0).unwrap();
    assert_eq!(cache.entries(), &[]);
}

#[test]
fn truncate_from_end_with_a_negative_offset_is_ignored() {
    let mut cache = cache_with(&MemStorage::new(), &[(1, 0)]);
    cache.truncate_from_end(-1).unwrap();
    assert_eq!(cache.entries(), &[e(1, 0)]);
}

#[test]
fn truncate_from_start_moves_the_covering_epoch_to_the_new_start() {
    let mut cache = cache_with(&MemStorage::new(), &[(1, 0), (2, 5), (3, 8)]);
    cache.truncate_from_start(6).unwrap();
    assert_eq!(cache.entries(), &[e(2, 6), e(3, 8)]);
    cache.truncate_from_start(8).unwrap();
    assert_eq!(cache.entries(), &[e(3, 8)]);
    cache.truncate_from_start(20).unwrap();
    assert_eq!(cache.entries(), &[e(3, 20)]);
}

#[test]
fn truncate_from_start_before_the_first_entry_changes_nothing() {
    let mut cache = cache_with(&MemStorage::new(), &[(2, 5)]);
    cache.truncate_from_start(4).unwrap();
    assert_eq!(cache.entries(), &[e(2, 5)]);
}

#[test]
fn truncations_are_durable() {
    let disk = MemStorage::new();
    let mut cache = cache_with(&disk, &[(1, 0), (2, 5), (3, 8)]);
    cache.truncate_from_end(8).unwrap();
    cache.truncate_from_start(2).unwrap();
    disk.crash(None);
    assert_eq!(reopen(&disk), vec![e(1, 2), e(2, 5)]);
}

#[test]
fn epoch_for_offset_finds_the_epoch_in_force() {
    let cache = cache_with(&MemStorage::new(), &[(1, 2), (3, 5)]);
    let got: Vec<_> = (0..8).map(|o| cache.epoch_for_offset(o)).collect();
    let want = [
        None,
        None,
        Some(1),
        Some(1),
        Some(1),
        Some(3),
        Some(3),
        Some(3),
    ];
    assert_eq!(got, want);
}

// ---- checkpoint format, round trip, corruption ----

#[test]
fn checkpoint_uses_kafkas_text_format() {
    let disk = MemStorage::new();
    cache_with(&disk, &[(1, 0), (4, 17)]);
    assert_eq!(file_text(&disk, PATH), "0\n2\n1 0\n4 17\n");
    assert!(!disk.exists(&format!("{PATH}.tmp")));
}

#[test]
fn checkpoint_round_trips_through_open() {
    let disk = MemStorage::new();
    let cache = cache_with(&disk, &[(1, 0), (4, 17), (9, 30)]);
    assert_eq!(reopen(&disk), cache.entries());
}

#[test]
fn a_missing_or_empty_checkpoint_opens_empty() {
    let disk = MemStorage::new();
    assert_eq!(reopen(&disk), vec![]);
    disk.create(PATH).unwrap();
    assert_eq!(reopen(&disk), vec![]);
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_path() {
    let bad = [
        "1\n0\n",
        "0\n2\n1 0\n",
        "0\nx\n",
        "0\n1\n1\n",
        "0\n1\n1 0 3\n",
        "0\n1\n-1 0\n",
    ];
    for text in bad {
        let disk = MemStorage::new();
        disk.append(PATH, text.as_bytes()).unwrap();
        let err = LeaderEpochCache::open(Rc::new(disk), PATH)
            .err()
            .expect(text);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{text:?}");
        assert!(err.to_string().contains(PATH), "{err}");
    }
}

#[test]
fn a_non_monotonic_checkpoint_is_repaired_by_the_assign_rules() {
    let disk = MemStorage::new();
    disk.append(PATH, b"0\n3\n1 0\n3 5\n2 4\n").unwrap();
    assert_eq!(reopen(&disk), vec![e(1, 0), e(2, 4)]);
}

#[test]
fn a_top_level_checkpoint_syncs_the_root_directory() {
    let disk = MemStorage::new();
    let mut cache = LeaderEpochCache::open(Rc::new(disk.clone()), "ckpt").unwrap();
    cache.assign(3, 7).unwrap();
    disk.crash(None);
    let again = LeaderEpochCache::open(Rc::new(disk), "ckpt").unwrap();
    assert_eq!(again.entries(), &[e(3, 7)]);
}

// ---- crash safety ----

#[test]
fn an_assigned_epoch_survives_a_machine_crash() {
    let disk = MemStorage::new();
    cache_with(&disk, &[(1, 0), (2, 5)]);
    disk.crash(None);
    assert_eq!(reopen(&disk), vec![e(1, 0), e(2, 5)]);
}

/// A disk whose `rename` can be made to fail: the process dies between writing the
/// temporary checkpoint and renaming it.
struct RenameFails {
    disk: MemStorage,
    failing: Cell<bool>,
}

impl Storage for RenameFails {
    fn create(&self, path: &str) -> io::Result<()> {
        self.disk.create(path)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.disk.append(path, data)
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.disk.read_at(path, offset, len)
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.disk.len(path)
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.disk.truncate(path, len)
    }
    fn fsync(&self, path: &str) -> io::Result<()> {
        self.disk.fsync(path)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if self.failing.get() {
            return Err(io::Error::other("crash before rename"));
        }
        self.disk.rename(from, to)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.disk.sync_dir(dir)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.disk.remove(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.disk.exists(path)
    }
}

#[test]
fn a_crash_between_writing_the_tmp_file_and_the_rename_keeps_the_old_checkpoint() {
    let disk = MemStorage::new();
    let storage = Rc::new(RenameFails {
        disk: disk.clone(),
        failing: Cell::new(false),
    });
    let mut cache = LeaderEpochCache::open(storage.clone(), PATH).unwrap();
    cache.assign(1, 0).unwrap();
    storage.failing.set(true);
    assert!(cache.assign(2, 5).is_err());
    assert_eq!(
        cache.entries(),
        &[e(1, 0)],
        "memory must match the disk after a failed write"
    );
    assert!(disk.exists(&format!("{PATH}.tmp")));
    disk.crash(None);
    assert_eq!(reopen(&disk), vec![e(1, 0)]);
}

#[test]
fn a_leftover_tmp_file_is_ignored_and_overwritten() {
    let disk = MemStorage::new();
    cache_with(&disk, &[(1, 0)]);
    disk.append(&format!("{PATH}.tmp"), b"garbage").unwrap();
    let mut cache = LeaderEpochCache::open(Rc::new(disk.clone()), PATH).unwrap();
    assert_eq!(cache.entries(), &[e(1, 0)]);
    cache.assign(2, 3).unwrap();
    disk.crash(None);
    assert_eq!(reopen(&disk), vec![e(1, 0), e(2, 3)]);
}

#[test]
fn torn_crashes_never_corrupt_the_checkpoint() {
    for seed in 0..16 {
        let disk = MemStorage::new();
        let mut cache = cache_with(&disk, &[(1, 0), (2, 5)]);
        cache.assign(3, 9).unwrap();
        disk.crash(Some(seed));
        assert_eq!(
            reopen(&disk),
            vec![e(1, 0), e(2, 5), e(3, 9)],
            "seed {seed}"
        );
    }
}
