//! The partition log: Kafka v2 record batches stored byte for byte in offset-named segment
//! files, with offset assignment (leader) or offset checking (follower) on append, reads of
//! whole batches, truncation, the flush policy and crash recovery; and the leader epoch cache
//! (which epoch started at which offset, checkpointed). Replication, high
//! watermarks and retention live elsewhere; this module owns only what is on one node's disk.

mod batch;
mod epoch_cache;
mod partition_log;
pub mod producer_state;
mod segment;

pub use batch::{
    build_test_batch, set_base_offset, set_partition_leader_epoch, split_batches, verify_crc,
    BatchError, BatchHeader, BATCH_HEADER_LEN,
};
pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use partition_log::{AppendInfo, Log, LogConfig, LogError, ReadInfo};
pub use producer_state::{
    increment_sequence, BatchMetadata, ProducerEntry, ProducerStateError, ProducerStateManager,
    SequenceCheck, NUM_BATCHES_TO_RETAIN,
};
