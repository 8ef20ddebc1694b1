use std::io;
use std::os::unix::fs::FileExt;

use stormlog::seam::Storage;
use turmoil::fs::shim::std::fs;

/// turmoil's crash-consistent file system, rooted at `/data` on the current host: unsynced
/// writes and unsynced directory entries are lost when the harness crashes the host.
pub struct TurmoilStorage;

const ROOT: &str = "/data";

fn path(rel: &str) -> String {
    if rel.is_empty() {
        ROOT.to_string()
    } else {
        format!("{ROOT}/{rel}")
    }
}

fn ensure_parent(rel: &str) -> io::Result<()> {
    let p = path(rel);
    match p.rfind('/') {
        Some(i) if i > 0 => fs::create_dir_all(&p[..i]),
        _ => Ok(()),
    }
}

impl Storage for TurmoilStorage {
    fn create(&self, rel: &str) -> io::Result<()> {
        ensure_parent(rel)?;
        fs::File::create(path(rel)).map(|_| ())
    }

    fn append(&self, rel: &str, data: &[u8]) -> io::Result<u64> {
        ensure_parent(rel)?;
        let f = fs::OpenOptions::new().create(true).append(true).open(path(rel))?;
        let len = f.metadata()?.len();
        f.write_all_at(data, len)?;
        Ok(len + data.len() as u64)
    }

    fn read_at(&self, rel: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = fs::File::open(path(rel))?;
        let size = f.metadata()?.len();
        let n = len.min(size.saturating_sub(offset) as usize);
        let mut buf = vec![0u8; n];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn len(&self, rel: &str) -> io::Result<u64> {
        Ok(fs::metadata(path(rel))?.len())
    }

    fn truncate(&self, rel: &str, len: u64) -> io::Result<()> {
        fs::OpenOptions::new().write(true).open(path(rel))?.set_len(len)
    }

    fn fsync(&self, rel: &str) -> io::Result<()> {
        fs::File::open(path(rel))?.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        ensure_parent(to)?;
        fs::rename(path(from), path(to))
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        fs::create_dir_all(path(dir))?;
        fs::sync_dir(path(dir))
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(path(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, rel: &str) -> io::Result<()> {
        fs::remove_file(path(rel))
    }

    fn exists(&self, rel: &str) -> bool {
        fs::exists(path(rel))
    }
}
