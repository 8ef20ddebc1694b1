//! Where a report came from: the commit, the dependency lock and the compiler. Not wall-clock
//! content: the same checkout writes the same bytes.

use sha2::{Digest, Sha256};

/// The build a report was written by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the working directory (noting uncommitted changes to tracked
    /// files), or "unknown".
    pub commit: String,
    /// SHA-256 (first 16 hex digits) of the Cargo.lock this binary was built with.
    pub cargo_lock: String,
    /// `rustc -V` of the compiler that built this binary.
    pub toolchain: String,
}

impl Provenance {
    /// This binary's provenance; asks git once, outside any simulation.
    pub fn detect() -> Provenance {
        let commit = match (git(&["rev-parse", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=no"])) {
            (Some(c), Some(changes)) if !c.is_empty() && !changes.is_empty() => format!("{c} (with uncommitted changes)"),
            (Some(c), _) if !c.is_empty() => c,
            _ => "unknown".into(),
        };
        Provenance { commit, cargo_lock: lock_hash(), toolchain: env!("STORMLOG_RUSTC_VERSION").to_string() }
    }

    /// A fixed provenance for tests and snapshots.
    pub fn fixed() -> Provenance {
        Provenance { commit: "0000000".into(), cargo_lock: "0000000000000000".into(), toolchain: "rustc (test)".into() }
    }
}

/// `git <args>`'s output, trimmed; `None` without git or outside a repository.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn lock_hash() -> String {
    let lock = include_bytes!("../../../Cargo.lock");
    Sha256::digest(lock).iter().take(8).map(|b| format!("{b:02x}")).collect()
}
