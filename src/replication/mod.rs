//! The per-partition replication rules: the leader's follower progress, ISR shrink and expand
//! and high-watermark advancement (KAFKA.md §1.3, §1.4), and leader-epoch divergence and
//! truncation (§1.6). Pure logic: time is an argument, no I/O, no log access (the caller
//! passes log end offsets and epoch histories).

mod leader;
mod truncation;

pub use leader::{FollowerProgress, LeaderState, ReplicationRules};
pub use truncation::{diverging_epoch, follower_truncation, truncate_to_high_watermark, TruncationRules, TruncationStep};
