//! `MemStorage`: an in-memory [`Storage`] that models what a machine crash keeps.
//!
//! Files are inodes holding two contents: `current` (the page cache, what reads see) and
//! `durable` (what is on the platter). Directory entries are likewise kept twice: the current
//! namespace and the durable one. `fsync` copies a file's current content to durable;
//! `sync_dir` copies the current entries of one directory to the durable namespace. A crash
//! throws away everything current and rebuilds it from the durable side, optionally keeping a
//! seeded-random prefix of each unsynced appended tail (a torn write).
//!
//! Single-threaded by design (`Rc<RefCell<_>>`): the simulator runs one node at a time, and
//! clones share one disk so a test can crash the disk under a live `Log`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::storage::{parent_dir, Storage};

type InodeId = u64;

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Length of the prefix where `current` still equals `durable`, so that fsync copies
    /// only what changed (an append-only log would otherwise copy the whole file each time).
    clean_len: usize,
}

#[derive(Default)]
struct Disk {
    next_inode: InodeId,
    inodes: BTreeMap<InodeId, Inode>,
    /// path -> inode as the running system sees it.
    entries: BTreeMap<String, InodeId>,
    /// path -> inode as it would be found after a crash.
    durable_entries: BTreeMap<String, InodeId>,
}

/// An in-memory disk with page-cache vs. durable semantics; clones share the same disk.
#[derive(Clone, Default)]
pub struct MemStorage {
    disk: Rc<RefCell<Disk>>,
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {path:?}"))
}

impl Disk {
    fn inode(&self, path: &str) -> io::Result<&Inode> {
        let id = self.entries.get(path).ok_or_else(|| not_found(path))?;
        Ok(self
            .inodes
            .get(id)
            .expect("an entry always points at a live inode"))
    }

    fn inode_mut(&mut self, path: &str) -> io::Result<&mut Inode> {
        let id = self.entries.get(path).ok_or_else(|| not_found(path))?;
        Ok(self
            .inodes
            .get_mut(id)
            .expect("an entry always points at a live inode"))
    }

    fn new_entry(&mut self, path: &str) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        self.entries.insert(path.to_string(), id);
        id
    }

    /// Drops inodes no name (current or durable) refers to, so the maps stay small.
    fn collect_garbage(&mut self) {
        let live: std::collections::BTreeSet<InodeId> = self
            .entries
            .values()
            .chain(self.durable_entries.values())
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }

    fn crash(&mut self, torn_seed: Option<u64>) {
        self.entries = self.durable_entries.clone();
        self.collect_garbage();
        // The per-file salt is the file's rank among durable paths, so the same seed tears the
        // same files the same way regardless of inode numbering history.
        let ids: Vec<InodeId> = self.durable_entries.values().copied().collect();
        for (rank, id) in ids.into_iter().enumerate() {
            let inode = self
                .inodes
                .get_mut(&id)
                .expect("durable entry points at a live inode");
            let kept = torn_seed.map_or(0, |seed| torn_len(inode, seed, rank as u64));
            let mut content = inode.durable.clone();
            if kept > 0 {
                content.extend_from_slice(&inode.current[inode.durable.len()..][..kept]);
            }
            // What physically reached the platter is durable now, torn bytes included.
            inode.clean_len = content.len();
            inode.durable = content.clone();
            inode.current = content;
        }
    }
}

/// How many bytes of the unsynced appended tail reach the disk in a torn write.
fn torn_len(inode: &Inode, seed: u64, salt: u64) -> usize {
    let extends =
        inode.current.len() > inode.durable.len() && inode.current.starts_with(&inode.durable);
    if !extends {
        return 0;
    }
    let tail = inode.current.len() - inode.durable.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.random_range(0..=tail)
}

impl MemStorage {
    /// A fresh, empty disk.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Machine crash / power loss: keep only what was made durable. With `torn_seed`, each
    /// file whose unsynced change was a pure append keeps a seeded-random prefix of that tail.
    pub fn crash(&self, torn_seed: Option<u64>) {
        self.disk.borrow_mut().crash(torn_seed);
    }

    /// The disk loses its unsynced state while the process lives on; same as `crash(None)`.
    pub fn lose_unsynced(&self) {
        self.crash(None);
    }
}

impl Storage for MemStorage {
    fn create(&self, path: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        match disk.entries.get(path) {
            // Truncating an existing file keeps its inode, like O_TRUNC: durable until fsync.
            Some(id) => {
                let id = *id;
                let inode = disk.inodes.get_mut(&id).expect("live inode");
                inode.current.clear();
                inode.clean_len = 0;
            }
            None => {
                disk.new_entry(path);
            }
        }
        Ok(())
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let mut disk = self.disk.borrow_mut();
        if !disk.entries.contains_key(path) {
            disk.new_entry(path);
        }
        let inode = disk.inode_mut(path)?;
        inode.current.extend_from_slice(data);
        Ok(inode.current.len() as u64)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let disk = self.disk.borrow();
        let content = &disk.inode(path)?.current;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let end = start.saturating_add(len).min(content.len());
        Ok(content[start..end].to_vec())
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(self.disk.borrow().inode(path)?.current.len() as u64)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        let inode = disk.inode_mut(path)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        // Like ftruncate, a length past the end extends with zeros.
        inode.current.resize(len, 0);
        inode.clean_len = inode.clean_len.min(len);
        Ok(())
    }

    fn fsync(&self, path: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        let inode = disk.inode_mut(path)?;
        let clean = inode.clean_len.min(inode.durable.len());
        inode.durable.truncate(clean);
        inode.durable.extend_from_slice(&inode.current[clean..]);
        inode.clean_len = inode.current.len();
        debug_assert!(inode.durable == inode.current, "fsync must make the whole file durable");
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        let id = disk.entries.remove(from).ok_or_else(|| not_found(from))?;
        disk.entries.insert(to.to_string(), id);
        disk.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        let in_dir = |path: &String| parent_dir(path) == dir;
        disk.durable_entries.retain(|path, _| !in_dir(path));
        let synced: Vec<(String, InodeId)> = disk
            .entries
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        disk.durable_entries.extend(synced);
        disk.collect_garbage();
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let disk = self.disk.borrow();
        // BTreeMap order is already sorted by full path, hence by name within one directory.
        let names = disk
            .entries
            .keys()
            .filter(|path| parent_dir(path) == dir)
            .map(|path| match path.rfind('/') {
                Some(i) => path[i + 1..].to_string(),
                None => path.clone(),
            })
            .collect();
        Ok(names)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        disk.entries.remove(path).ok_or_else(|| not_found(path))?;
        disk.collect_garbage();
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        self.disk.borrow().entries.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &MemStorage, path: &str) -> Vec<u8> {
        s.read_at(path, 0, usize::MAX).unwrap()
    }

    /// A file that is created, dir-synced and fsynced with `data`.
    fn durable_file(s: &MemStorage, path: &str, data: &[u8]) {
        s.create(path).unwrap();
        s.append(path, data).unwrap();
        s.fsync(path).unwrap();
        s.sync_dir(parent_dir(path)).unwrap();
    }

    #[test]
    fn process_survives_without_crash_keeps_everything() {
        let s = MemStorage::new();
        s.append("p/a.log", b"hello").unwrap();
        s.rename("p/a.log", "p/b.log").unwrap();
        let reopened = s.clone();
        assert_eq!(read_all(&reopened, "p/b.log"), b"hello");
        assert!(!reopened.exists("p/a.log"));
    }

    #[test]
    fn unsynced_append_is_lost_on_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"kept");
        s.append("p/a.log", b"-lost").unwrap();
        s.crash(None);
        assert_eq!(read_all(&s, "p/a.log"), b"kept");
    }

    #[test]
    fn fsynced_append_survives_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"kept");
        s.append("p/a.log", b"+more").unwrap();
        s.fsync("p/a.log").unwrap();
        s.crash(None);
        assert_eq!(read_all(&s, "p/a.log"), b"kept+more");
    }

    #[test]
    fn created_file_without_sync_dir_vanishes_on_crash() {
        let s = MemStorage::new();
        s.create("p/a.log").unwrap();
        s.append("p/a.log", b"data").unwrap();
        s.fsync("p/a.log").unwrap();
        s.crash(None);
        assert!(!s.exists("p/a.log"));
        assert_eq!(s.list("p").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn created_file_with_sync_dir_but_no_fsync_survives_empty() {
        let s = MemStorage::new();
        s.create("p/a.log").unwrap();
        s.append("p/a.log", b"data").unwrap();
        s.sync_dir("p").unwrap();
        s.crash(None);
        assert_eq!(read_all(&s, "p/a.log"), b"");
    }

    #[test]
    fn sync_dir_of_another_directory_does_not_persist_the_entry() {
        let s = MemStorage::new();
        s.append("p/a.log", b"data").unwrap();
        s.fsync("p/a.log").unwrap();
        s.sync_dir("q").unwrap();
        s.sync_dir("").unwrap();
        s.crash(None);
        assert!(!s.exists("p/a.log"));
    }

    #[test]
    fn rename_without_sync_dir_is_undone_on_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/tmp", b"new");
        durable_file(&s, "p/ckpt", b"old");
        s.rename("p/tmp", "p/ckpt").unwrap();
        assert_eq!(read_all(&s, "p/ckpt"), b"new");
        s.crash(None);
        assert_eq!(read_all(&s, "p/ckpt"), b"old");
        assert_eq!(read_all(&s, "p/tmp"), b"new");
    }

    #[test]
    fn rename_with_sync_dir_survives_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/tmp", b"new");
        durable_file(&s, "p/ckpt", b"old");
        s.rename("p/tmp", "p/ckpt").unwrap();
        s.sync_dir("p").unwrap();
        s.crash(None);
        assert_eq!(read_all(&s, "p/ckpt"), b"new");
        assert!(!s.exists("p/tmp"));
    }

    #[test]
    fn remove_without_sync_dir_is_undone_on_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"back");
        s.remove("p/a.log").unwrap();
        assert!(!s.exists("p/a.log"));
        s.crash(None);
        assert_eq!(read_all(&s, "p/a.log"), b"back");
    }

    #[test]
    fn remove_with_sync_dir_survives_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"gone");
        s.remove("p/a.log").unwrap();
        s.sync_dir("p").unwrap();
        s.crash(None);
        assert!(!s.exists("p/a.log"));
    }

    #[test]
    fn unsynced_truncate_is_undone_on_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"0123456789");
        s.truncate("p/a.log", 3).unwrap();
        s.crash(Some(7));
        assert_eq!(read_all(&s, "p/a.log"), b"0123456789");
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_the_unsynced_tail() {
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let s = MemStorage::new();
            durable_file(&s, "p/a.log", b"head:");
            s.append("p/a.log", b"abcdefghijklmnopqrstuvwxyz").unwrap();
            s.crash(Some(seed));
            let got = read_all(&s, "p/a.log");
            let full = b"head:abcdefghijklmnopqrstuvwxyz";
            assert!(
                got.len() >= 5 && full.starts_with(&got),
                "seed {seed}: {got:?}"
            );
            lengths.insert(got.len());
        }
        assert!(
            lengths.len() > 3,
            "torn lengths should vary with the seed: {lengths:?}"
        );
    }

    #[test]
    fn torn_crash_is_deterministic_for_a_seed() {
        let run = |seed| {
            let s = MemStorage::new();
            for name in ["p/a", "p/b", "p/c"] {
                durable_file(&s, name, b"");
                s.append(name, &[1u8; 100]).unwrap();
            }
            s.crash(Some(seed));
            ["p/a", "p/b", "p/c"].map(|n| s.len(n).unwrap())
        };
        assert_eq!(run(42), run(42));
    }

    #[test]
    fn torn_bytes_become_durable_after_the_crash() {
        let s = MemStorage::new();
        durable_file(&s, "p/a.log", b"");
        s.append("p/a.log", &[9u8; 64]).unwrap();
        s.crash(Some(3));
        let after_first = s.len("p/a.log").unwrap();
        s.crash(None);
        assert_eq!(s.len("p/a.log").unwrap(), after_first);
    }

    #[test]
    fn missing_file_errors_name_the_path() {
        let s = MemStorage::new();
        let err = s.read_at("p/nope", 0, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("p/nope"), "{err}");
        for err in [
            s.len("p/nope").unwrap_err(),
            s.fsync("p/nope").unwrap_err(),
            s.truncate("p/nope", 0).unwrap_err(),
            s.remove("p/nope").unwrap_err(),
            s.rename("p/nope", "p/x").unwrap_err(),
        ] {
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
    }

    #[test]
    fn read_past_the_end_is_short() {
        let s = MemStorage::new();
        s.append("a", b"abc").unwrap();
        assert_eq!(s.read_at("a", 1, 10).unwrap(), b"bc");
        assert_eq!(s.read_at("a", 10, 10).unwrap(), b"");
    }

    #[test]
    fn list_returns_sorted_names_directly_in_the_directory() {
        let s = MemStorage::new();
        for path in ["p/b", "p/a", "p/sub/c", "top", "q/d"] {
            s.create(path).unwrap();
        }
        assert_eq!(s.list("p").unwrap(), vec!["a", "b"]);
        assert_eq!(s.list("").unwrap(), vec!["top"]);
        assert_eq!(s.list("missing").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn append_returns_the_new_length_and_create_truncates() {
        let s = MemStorage::new();
        assert_eq!(s.append("a", b"abc").unwrap(), 3);
        assert_eq!(s.append("a", b"de").unwrap(), 5);
        s.create("a").unwrap();
        assert_eq!(s.len("a").unwrap(), 0);
    }
}
