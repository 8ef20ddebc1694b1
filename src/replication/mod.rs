//! The leader's per-partition replication rules (KAFKA.md §1.3, §1.4): follower progress, ISR
//! shrink and expand, high-watermark advancement. Pure logic: time is an argument, no I/O,
//! no log access (the caller passes the leader's log end offset).

mod leader;

pub use leader::{FollowerProgress, LeaderState, ReplicationRules};
