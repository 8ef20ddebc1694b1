use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The only source of randomness a node gets: a seeded ChaCha stream.
///
/// The harness derives one per node from the run's master seed, so a seed replays bit for bit.
pub struct Entropy {
    rng: ChaCha8Rng,
}

impl Entropy {
    pub fn from_seed(seed: u64) -> Self {
        Entropy { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when the range is empty.
    pub fn range_u64(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        self.rng.random_range(lo..=hi)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }
}
