/// Wall-clock time as a node sees it, in milliseconds since the Unix epoch.
///
/// Only record timestamps and time-based lookups use it; timers and sleeps use `tokio::time`,
/// which both simulators control. Simulated clocks can be skewed per node.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// The machine's real clock, for `stormlog serve`.
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // real-network mode only: the one place wall time is read
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}
