use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::storage::{parent_dir, Storage};

/// Real files under a data directory, for `stormlog serve`.
pub struct StdStorage {
    root: PathBuf,
}

impl StdStorage {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(StdStorage { root })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn ensure_parent(&self, rel: &str) -> io::Result<()> {
        fs::create_dir_all(self.path(parent_dir(rel)))
    }
}

impl Storage for StdStorage {
    fn create(&self, path: &str) -> io::Result<()> {
        self.ensure_parent(path)?;
        File::create(self.path(path)).map(|_| ())
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.ensure_parent(path)?;
        let mut f = OpenOptions::new().create(true).append(true).open(self.path(path))?;
        f.write_all(data)?;
        Ok(f.metadata()?.len())
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = File::open(self.path(path))?;
        let size = f.metadata()?.len();
        let n = len.min(size.saturating_sub(offset) as usize);
        let mut buf = vec![0u8; n];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(path))?.len())
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(self.path(path))?.set_len(len)
    }

    fn fsync(&self, path: &str) -> io::Result<()> {
        File::open(self.path(path))?.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.ensure_parent(to)?;
        fs::rename(self.path(from), self.path(to))
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        File::open(self.path(dir))?.sync_all()
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        match fs::read_dir(self.path(dir)) {
            Ok(entries) => {
                for e in entries {
                    let e = e?;
                    if e.file_type()?.is_file() {
                        names.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        fs::remove_file(self.path(path))
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }
}
