//! Where a report came from: the commit, the dependency lock and the compiler. Not wall-clock
//! content: the same checkout writes the same bytes.

use sha2::{Digest, Sha256};

/// The build a report was written by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the working directory, or "unknown".
    pub commit: String,
    /// SHA-256 (first 16 hex digits) of the Cargo.lock this binary was built with.
    pub cargo_lock: String,
    /// `rustc -V` of the compiler that built this binary.
    pub toolchain: String,
}

impl Provenance {
    /// This binary's provenance; asks git once, outside any simulation.
    pub fn detect() -> Provenance {
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Provenance { commit, cargo_lock: lock_hash(), toolchain: env!("STORMLOG_RUSTC_VERSION").to_string() }
    }

    /// A fixed provenance for tests and snapshots.
    pub fn fixed() -> Provenance {
        Provenance { commit: "0000000".into(), cargo_lock: "0000000000000000".into(), toolchain: "rustc (test)".into() }
    }
}

fn lock_hash() -> String {
    let lock = include_bytes!("../../../Cargo.lock");
    Sha256::digest(lock).iter().take(8).map(|b| format!("{b:02x}")).collect()
}
