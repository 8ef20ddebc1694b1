//! Rust clients that speak Kafka's wire protocol to brokers: one connection type (also used by
//! the brokers' replica fetchers), a metadata cache, the producer, the consumer and the partition
//! assignors a consumer group's leader runs.
//!
//! Every request has a timeout and every failure drops the connection, because simulated TCP
//! never retransmits: a stalled stream must become an error, not a hang.

pub mod assignor;
mod connection;
mod consumer;
mod error;
mod metadata;
mod offsets;
mod partitioner;
mod pipeline;
mod producer;

pub use assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor,
    MemberSubscription,
};
pub use connection::Connection;
pub use consumer::{CommitError, CommitKind, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, GroupSettings, Listener, OffsetReset};
pub use error::ClientError;
pub use metadata::MetadataCache;
pub use offsets::{list_offset, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
pub use partitioner::{murmur2, partition_for_key};
pub use pipeline::Pipeline;
pub use producer::{Acks, Delivery, GroupMetadata, Producer, ProducerConfig, RecordMetadata, SendError, TxnError, TxnErrorKind};
