//! Metadata records: the only way controller state changes (KRaft's `__cluster_metadata`).
//!
//! Each variant is a fact that the quorum has committed, named after Kafka's record types
//! (`RegisterBrokerRecord`, `FenceBrokerRecord`, `UnfenceBrokerRecord`, `TopicRecord`,
//! `PartitionRecord`, `PartitionChangeRecord`). The encoding is JSON for now: the Raft log
//! treats a record as opaque bytes, so the format can change without touching the core.

use serde::{Deserialize, Serialize};

/// One committed metadata fact. Replay rules live in `state.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registers. `broker_epoch` is the offset of this record in the metadata log
    /// (Kafka's rule), so every registration gets a larger epoch. Registration leaves the
    /// broker fenced until a heartbeat says it has caught up.
    RegisterBroker { broker_id: i32, incarnation: u64, broker_epoch: i64, host: String, port: u16 },
    /// The broker may lead and join ISRs again.
    UnfenceBroker { broker_id: i32, broker_epoch: i64 },
    /// The broker lost its session (or asked to be fenced). Always preceded, in the same
    /// proposal, by the `PartitionChange`s that remove it from ISRs and leadership.
    FenceBroker { broker_id: i32, broker_epoch: i64 },
    /// A topic exists with `partitions` partitions; one `Partition` record per partition follows.
    Topic { name: String, partitions: u32 },
    /// The initial state of one partition.
    Partition {
        topic: String,
        partition: u32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change to one partition. `None` fields are unchanged; `leader: Some(-1)` means the
    /// partition goes offline. Replay bumps `partition_epoch` always and `leader_epoch` whenever
    /// `leader` is `Some` (Kafka: any leader field other than NO_LEADER_CHANGE bumps it).
    PartitionChange {
        topic: String,
        partition: u32,
        isr: Option<Vec<i32>>,
        leader: Option<i32>,
        leader_recovery_unclean: bool,
    },
}

/// Encodes a record for the Raft log.
pub fn encode(record: &MetadataRecord) -> Vec<u8> {
    // Serializing a plain enum of strings and integers cannot fail.
    let bytes = serde_json::to_vec(record).expect("metadata record serializes");
    assert!(!bytes.is_empty(), "encoded record is empty: {record:?}");
    bytes
}

/// Decodes a record read back from the Raft log.
pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("undecodable metadata record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_kind_survives_encode_then_decode() {
        let records = vec![
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation: 7,
                broker_epoch: 42,
                host: "b1".into(),
                port: 9092,
            },
            MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: 42 },
            MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: 42 },
            MetadataRecord::Topic { name: "t".into(), partitions: 2 },
            MetadataRecord::Partition {
                topic: "t".into(),
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 0,
                isr: Some(vec![2]),
                leader: Some(-1),
                leader_recovery_unclean: false,
            },
        ];
        for record in records {
            assert_eq!(decode(&encode(&record)), Ok(record));
        }
    }

    #[test]
    fn garbage_bytes_decode_to_an_error() {
        assert!(decode(b"not json").is_err());
    }
}
