//! The partition log: Kafka v2 record batches stored byte for byte in offset-named segment
//! files, with offset assignment (leader) or offset checking (follower) on append, reads of
//! whole batches, truncation, the flush policy and crash recovery; and the leader epoch cache
//! (which epoch started at which offset, checkpointed); the producer state and the
//! transaction state derived from the batches (open transactions, markers, last stable offset,
//! aborted-transaction index). Replication, high watermarks and retention live elsewhere; this
//! module owns only what is on one node's disk.

mod batch;
mod control;
mod epoch_cache;
mod partition_log;
pub mod producer_state;
mod segment;
mod txn_index;
#[cfg(test)]
pub(crate) mod txn_model;

pub use batch::{
    build_test_batch, set_base_offset, set_partition_leader_epoch, split_batches, verify_crc,
    BatchError, BatchHeader, BATCH_HEADER_LEN,
};
pub use control::{encode_marker_batch, parse_marker, ControlType};
pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use partition_log::{AppendInfo, Log, LogConfig, LogError, ReadInfo};
pub use producer_state::{
    increment_sequence, BatchMetadata, CompletedTxn, ProducerEntry, ProducerStateError,
    ProducerStateManager, SequenceCheck, NUM_BATCHES_TO_RETAIN, UNKNOWN_COORDINATOR_EPOCH,
};
pub use txn_index::AbortedTxn;
