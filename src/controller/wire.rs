//! The metadata log on the wire: committed entries travel to brokers (KRaft observers) as v2
//! record batches of the `__cluster_metadata` partition, one batch per entry, stamped with the
//! entry's epoch; and topics get the stable ids AlterPartition addresses them by.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use uuid::Uuid;

use crate::raft::Entry;

pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// A topic's id, derived from its name so every node computes the same one.
pub fn topic_id(name: &str) -> Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    // Never the nil id, which Kafka reads as "no id".
    Uuid::from_u128(h | 1)
}

/// Encodes committed entries as record batches.
pub fn encode_entries(entries: &[Entry]) -> Bytes {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    for e in entries {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: e.epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: e.offset,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::copy_from_slice(&e.payload)),
            headers: IndexMap::new(),
        };
        RecordBatchEncoder::encode(&mut out, [&record], &options).expect("encoding one uncompressed record cannot fail");
    }
    out.freeze()
}

/// Decodes record batches back into entries.
pub fn decode_entries(bytes: &Bytes) -> Result<Vec<Entry>, String> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| format!("metadata batch: {e}"))?;
    Ok(sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| Entry { epoch: r.partition_leader_epoch, offset: r.offset, payload: r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default() })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_record_batches() {
        let entries = vec![
            Entry { epoch: 1, offset: 0, payload: Vec::new() },
            Entry { epoch: 1, offset: 1, payload: b"{\"x\":1}".to_vec() },
            Entry { epoch: 3, offset: 2, payload: b"y".to_vec() },
        ];
        assert_eq!(decode_entries(&encode_entries(&entries)).unwrap(), entries);
    }

    #[test]
    fn topic_ids_are_stable_distinct_and_never_nil() {
        assert_eq!(topic_id("orders"), topic_id("orders"));
        assert_ne!(topic_id("orders"), topic_id("orders2"));
        assert!(!topic_id("").is_nil());
    }
}
