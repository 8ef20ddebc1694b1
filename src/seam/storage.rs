use std::io;

/// A minimal file system, enough for segments, indexes and checkpoints.
///
/// Paths are relative, `/`-separated names inside the node's own data directory
/// (`orders-0/00000000000000000000.log`). Durability exists only after `fsync` of the file and,
/// for a file that was created or renamed, after `sync_dir` of its directory: a machine crash
/// keeps exactly what was made durable (and, where the implementation models torn writes, a
/// prefix of what was not). A process crash loses nothing: the page cache survives it.
pub trait Storage {
    /// Creates `path` empty (truncating it if it exists). Parent directories are implicit.
    fn create(&self, path: &str) -> io::Result<()>;
    /// Appends `data` at the end of `path`; returns the file's new length.
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64>;
    /// Reads up to `len` bytes at `offset`; shorter at the end of the file.
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The file's current length (what reads see, durable or not).
    fn len(&self, path: &str) -> io::Result<u64>;
    /// Cuts `path` to `len` bytes.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Makes the file's current content durable.
    fn fsync(&self, path: &str) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// The names (not paths) of the files directly inside `dir`, sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Removes `path`.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &str) -> bool;
}

/// The directory part of a storage path (`""` for a top-level file).
pub(crate) fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new content: write
/// `path.tmp`, fsync it, rename it over `path`, sync the directory.
pub fn write_atomically(storage: &dyn Storage, path: &str, data: &[u8]) -> io::Result<()> {
    let tmp = format!("{path}.tmp");
    storage.create(&tmp)?;
    let written = storage.append(&tmp, data)?;
    assert_eq!(written, data.len() as u64, "{tmp} holds more than was written");
    storage.fsync(&tmp)?;
    storage.rename(&tmp, path)?;
    storage.sync_dir(parent_dir(path))
}
