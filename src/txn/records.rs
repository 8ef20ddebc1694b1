//! The records of `__transaction_state`, in Kafka's own schemas, so Kafka's tools can read our
//! partitions and we could read theirs.
//!
//! Key: `TransactionLogKey` v0 = i16 version, string transactional_id. Value:
//! `TransactionLogValue` v0 = i16 version, i64 producer_id, i16 producer_epoch, i32
//! transaction_timeout_ms, i8 transaction_status, nullable array of (string topic, array of
//! i32 partition ids) transaction_partitions, i64 transaction_last_update_timestamp_ms, i64
//! transaction_start_timestamp_ms. No value is a tombstone (the transactional id is gone).
//!
//! We write and read v0 only: v1 (Kafka 4.0, flexible, with tagged previous/next producer ids
//! and the client's transaction version) is refused with an error that says so.
//!
//! Decoding never panics: the bytes come from disk or from another implementation, and an
//! error names the field that was wrong.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ids::TopicPartition;
use crate::protocol::reader::Reader;

use super::state::TxnState;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// The longest string a record can hold (i16 length).
pub const STRING_LEN_MAX: usize = i16::MAX as usize;

/// One record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    /// None is a tombstone.
    pub value: Option<TxnLogValue>,
}

/// `TransactionLogValue` v0: a transactional id's producer and its current transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Null (None) in Kafka's Empty records; otherwise the transaction's partitions, written
    /// grouped by topic in `TopicPartition` order.
    pub partitions: Option<Vec<TopicPartition>>,
    pub last_update_ms: i64,
    /// -1 when no transaction was started.
    pub start_ms: i64,
}

impl TxnRecord {
    /// Key and value bytes. The transactional id and topics must fit an i16 length (the
    /// coordinator refuses longer ones first).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        key.put_i16(KEY_VERSION);
        put_string(&mut key, &self.transactional_id);
        (key.freeze(), self.value.as_ref().map(encode_value))
    }

    /// Parses a key and optional value; errors name the part that is wrong.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, String> {
        let mut k = Reader::new(key, "transaction log key");
        let version = k.i16("key version")?;
        if version != KEY_VERSION {
            return Err(format!("unsupported transaction log key version {version} (only v0 is read)"));
        }
        let transactional_id = k.string("transactional_id")?;
        k.finish()?;
        let value = value.map(decode_value).transpose()?;
        Ok(TxnRecord { transactional_id, value })
    }
}

fn encode_value(v: &TxnLogValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.state.id());
    match &v.partitions {
        None => b.put_i32(-1),
        Some(partitions) => {
            let mut sorted: Vec<&TopicPartition> = partitions.iter().collect();
            sorted.sort();
            let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
            for tp in sorted {
                match topics.last_mut() {
                    Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
                    _ => topics.push((&tp.topic, vec![tp.partition])),
                }
            }
            b.put_i32(len_i32(topics.len()));
            for (topic, ids) in topics {
                put_string(&mut b, topic);
                b.put_i32(len_i32(ids.len()));
                for id in ids {
                    b.put_i32(id);
                }
            }
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    b.freeze()
}

fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, String> {
    let mut r = Reader::new(bytes, "transaction log value");
    let version = r.i16("value version")?;
    if version != VALUE_VERSION {
        return Err(format!("unsupported transaction log value version {version} (only v0 is read)"));
    }
    let producer_id = r.i64("producer_id")?;
    let producer_epoch = r.i16("producer_epoch")?;
    let timeout_ms = r.i32("transaction_timeout_ms")?;
    let status = r.i8("transaction_status")?;
    let state = TxnState::from_id(status).ok_or_else(|| format!("transaction log value: transaction_status {status} is not a state"))?;
    let topics = r.i32("transaction_partitions count")?;
    let partitions = match topics {
        -1 => None,
        // A topic entry takes at least 6 bytes (empty name, no partitions): a larger count is
        // corrupt, and checking first keeps it from reserving a huge vector.
        n if n < -1 || n as usize > r.remaining() / 6 => {
            return Err(format!("transaction log value: transaction_partitions count {n} with {} bytes left", r.remaining()));
        }
        n => {
            let mut out = Vec::new();
            for i in 0..n {
                let topic = r.string("transaction_partitions topic").map_err(|e| format!("topic {i}: {e}"))?;
                let count = r.i32("partition_ids count")?;
                if count < 0 || count as usize > r.remaining() / 4 {
                    return Err(format!(
                        "transaction log value: topic {topic}: partition_ids count {count} with {} bytes left",
                        r.remaining()
                    ));
                }
                for _ in 0..count {
                    out.push(TopicPartition::new(topic.clone(), r.i32("partition_id")?));
                }
            }
            Some(out)
        }
    };
    let last_update_ms = r.i64("transaction_last_update_timestamp_ms")?;
    let start_ms = r.i64("transaction_start_timestamp_ms")?;
    r.finish()?;
    Ok(TxnLogValue { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or_else(|_| panic!("array of {n} entries does not fit an i32 length"))
}

fn put_string(b: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or_else(|_| panic!("string of {} bytes does not fit an i16 length", s.len()));
    b.put_i16(len);
    b.put_slice(s.as_bytes());
}

