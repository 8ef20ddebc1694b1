//! The bench's one wall clock. A benchmark measures wall time, so something must read it; this
//! file is the only place in `bench` that does, and only around whole runs: the reading is
//! taken after a run's inputs are fixed and is reported, never fed back into a simulation.

use std::time::Duration;

/// Runs `f` and returns how long it took in wall time.
// Justified exception to the determinism bans (clippy.toml): the wall time of a finished run
// is the benchmark's output, not an input to anything simulated.
#[allow(clippy::disallowed_methods)]
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed())
}
