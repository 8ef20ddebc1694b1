//! The classic consumer-group coordinator (Kafka's `GroupCoordinator` for the "classic"
//! protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch) as a pure
//! state machine.
//!
//! It owns the groups of the `__consumer_offsets` partitions this broker leads and nothing else:
//! no sockets, no log, no clock. The broker feeds it requests and the time, parks the joins and
//! syncs it answers `Later`, appends the records it emits to the offsets partition, and calls
//! `tick` at `next_deadline`. Record formats are Kafka's, so the partitions read the same.
//!
//! Not served: static membership (KIP-345; a JoinGroup with `group.instance.id` gets
//! INVALID_REQUEST), the KIP-848 consumer protocol, DescribeGroups/ListGroups/DeleteGroups, and
//! offset expiry (`offsets.retention.minutes`). Empty groups without offsets are deleted, as
//! Kafka's periodic cleanup does.

mod classic;
mod coordinator;
mod join;
mod load;
mod membership;
mod offsets;
pub mod records;
mod responses;
pub mod state;

#[cfg(test)]
mod tests;

pub use coordinator::{partition_for, ClientInfo, GroupConfig, GroupCoordinator, GroupSnapshot, Ready, Reply};
pub use offsets::OffsetEntry;
pub use records::{GroupMetadataValue, GroupRecord, MemberMetadataValue, OffsetValue};
pub use state::{GroupState, IllegalTransition};
