//! The transaction coordinator (Kafka's `TransactionCoordinator`, KAFKA.md §1.10) as a pure
//! state machine.
//!
//! It owns the transactional ids of the `__transaction_state` partitions this broker leads and
//! nothing else: no sockets, no log, no clock. The broker feeds it requests and the time,
//! appends the records it emits (`take_writes`) to the transaction-state partition and reports
//! when each is committed or failed (`write_completed`), sends the WriteTxnMarkers jobs it
//! emits (`take_markers`) and reports the partitions that took them (`markers_written`), and
//! calls `tick` at `next_deadline`. Answers to requests that waited for a write come out of
//! `take_ready`. Record formats are Kafka's (`TransactionLogKey` v0 / `TransactionLogValue` v0).
//!
//! State only moves once its record is committed (Kafka's `pendingState` and
//! `completeTransitionTo`): while a write is pending for a transactional id, other requests for
//! it get CONCURRENT_TRANSACTIONS, and a failed write leaves the state as it was. So the
//! in-memory state is always what replaying the committed records gives.
//!
//! `TxnConfig::epoch_bump_per_txn` chooses the transaction version: true is TV2 (KIP-890 part 2,
//! Kafka 4.0: every EndTxn bumps the producer epoch), false is TV1 (the epoch stays across
//! transactions; only InitProducerId and fencing bump it).
//!
//! Not served: `transactional.id.expiration.ms` (nothing becomes Dead), DescribeTransactions /
//! ListTransactions, InitProducerId without a transactional id (the broker's allocator answers
//! those), and the TV2 implicit add of a partition by the leader's verification.

mod coordinator;
mod load;
mod progress;
pub mod records;
mod requests;
pub mod state;

#[cfg(test)]
mod tests;

pub use crate::group::Reply;
pub use coordinator::{MarkerJob, PartitionResults, TxnConfig, TxnCoordinator, TxnReady, TxnSnapshot, TxnWrite};
pub use records::{TxnLogValue, TxnRecord};
pub use state::{IllegalTransition, TxnState};
