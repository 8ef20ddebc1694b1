//! `__transaction_state` records: Kafka's byte layout, round trips, and malformed input that
//! must give an error naming the field rather than a panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use crate::ids::TopicPartition;
use crate::txn::records::{TxnLogValue, TxnRecord};
use crate::txn::state::TxnState;

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn ongoing() -> TxnLogValue {
    TxnLogValue {
        producer_id: 4_000,
        producer_epoch: 3,
        timeout_ms: 60_000,
        state: TxnState::Ongoing,
        partitions: Some(vec![TopicPartition::new("b", 0), TopicPartition::new("a", 2), TopicPartition::new("a", 1)]),
        last_update_ms: 1_500,
        start_ms: 1_000,
    }
}

#[test]
fn a_record_has_kafkas_layout() {
    let (key, value) = TxnRecord { transactional_id: "tx".into(), value: Some(ongoing()) }.encode();
    let mut k = BytesMut::new();
    k.put_i16(0);
    put_str(&mut k, "tx");
    assert_eq!(key, k.freeze());
    let mut v = BytesMut::new();
    v.put_i16(0);
    v.put_i64(4_000);
    v.put_i16(3);
    v.put_i32(60_000);
    v.put_i8(1);
    v.put_i32(2);
    put_str(&mut v, "a");
    v.put_i32(2);
    v.put_i32(1);
    v.put_i32(2);
    put_str(&mut v, "b");
    v.put_i32(1);
    v.put_i32(0);
    v.put_i64(1_500);
    v.put_i64(1_000);
    assert_eq!(value, Some(v.freeze()));
}

#[test]
fn null_partitions_are_minus_one_and_tombstones_have_no_value() {
    let empty = TxnLogValue { state: TxnState::Empty, partitions: None, start_ms: -1, ..ongoing() };
    let (_, value) = TxnRecord { transactional_id: "tx".into(), value: Some(empty.clone()) }.encode();
    let value = value.unwrap();
    assert_eq!(&value[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &(-1i32).to_be_bytes());
    let back = TxnRecord::decode(b"\x00\x00\x00\x02tx", Some(&value)).unwrap();
    assert_eq!(back.value, Some(empty));
    let (key, value) = TxnRecord { transactional_id: "tx".into(), value: None }.encode();
    assert_eq!(value, None);
    assert_eq!(TxnRecord::decode(&key, None).unwrap(), TxnRecord { transactional_id: "tx".into(), value: None });
}

#[test]
fn every_state_round_trips() {
    for state in TxnState::ALL {
        let mut v = ongoing();
        v.state = state;
        v.partitions.as_mut().unwrap().sort();
        let record = TxnRecord { transactional_id: "tx-é".into(), value: Some(v) };
        let (key, value) = record.encode();
        assert_eq!(TxnRecord::decode(&key, value.as_deref()).unwrap(), record);
    }
}

fn value_bytes() -> Vec<u8> {
    TxnRecord { transactional_id: "tx".into(), value: Some(ongoing()) }.encode().1.unwrap().to_vec()
}

fn value_err(bytes: &[u8]) -> String {
    TxnRecord::decode(b"\x00\x00\x00\x02tx", Some(bytes)).expect_err("malformed")
}

#[test]
fn every_truncation_is_an_error_naming_a_field() {
    let full = value_bytes();
    for len in 0..full.len() {
        let e = value_err(&full[..len]);
        assert!(e.contains("needs") || e.contains("count"), "cut at {len}: {e}");
    }
    let (key, _) = TxnRecord { transactional_id: "tx".into(), value: None }.encode();
    for len in 0..key.len() {
        assert!(TxnRecord::decode(&key[..len], None).is_err(), "key cut at {len}");
    }
}

#[test]
fn malformed_fields_are_named() {
    // Unknown versions.
    let mut v = value_bytes();
    v[..2].copy_from_slice(&1i16.to_be_bytes());
    assert!(value_err(&v).contains("value version 1"), "{}", value_err(&v));
    let e = TxnRecord::decode(b"\x00\x01\x00\x02tx", None).unwrap_err();
    assert!(e.contains("key version 1"), "{e}");
    // A status that is no state.
    let mut v = value_bytes();
    v[16] = 9;
    assert!(value_err(&v).contains("transaction_status 9"), "{}", value_err(&v));
    // Counts that cannot fit.
    let mut v = value_bytes();
    v[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(value_err(&v).contains("transaction_partitions count"), "{}", value_err(&v));
    let mut v = value_bytes();
    v[17..21].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(value_err(&v).contains("transaction_partitions count -2"), "{}", value_err(&v));
    let mut v = value_bytes();
    v[24..28].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert!(value_err(&v).contains("partition_ids count"), "{}", value_err(&v));
    // A negative string length, bad UTF-8, trailing bytes.
    let mut v = value_bytes();
    v[21..23].copy_from_slice(&(-5i16).to_be_bytes());
    assert!(value_err(&v).contains("topic"), "{}", value_err(&v));
    let mut v = value_bytes();
    v[23] = 0xff;
    assert!(value_err(&v).contains("UTF-8"), "{}", value_err(&v));
    let mut v = value_bytes();
    v.push(0);
    assert!(value_err(&v).contains("trailing"), "{}", value_err(&v));
    let e = TxnRecord::decode(b"\x00\x00\xff\xfftx", None).unwrap_err();
    assert!(e.contains("transactional_id"), "{e}");
}

fn value_strategy() -> impl Strategy<Value = TxnLogValue> {
    let partitions = proptest::collection::btree_set(("[a-c]{1,3}", 0i32..4), 0..6)
        .prop_map(|set| set.into_iter().map(|(t, p)| TopicPartition::new(t, p)).collect::<Vec<_>>());
    (any::<i64>(), any::<i16>(), any::<i32>(), 0usize..8, proptest::option::of(partitions), any::<i64>(), any::<i64>()).prop_map(
        |(producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms)| TxnLogValue {
            producer_id,
            producer_epoch,
            timeout_ms,
            state: TxnState::ALL[state],
            partitions,
            last_update_ms,
            start_ms,
        },
    )
}

proptest! {
    #[test]
    fn records_round_trip(id in "\\PC{0,20}", value in proptest::option::of(value_strategy())) {
        let record = TxnRecord { transactional_id: id, value };
        let (key, bytes) = record.encode();
        prop_assert_eq!(TxnRecord::decode(&key, bytes.as_deref()).unwrap(), record);
    }

    #[test]
    fn random_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..40), value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80))) {
        let _ = TxnRecord::decode(&key, value.as_deref());
    }

    #[test]
    fn corrupted_records_never_panic(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..4)) {
        let mut v = value_bytes();
        for (at, byte) in flips {
            let at = at % v.len();
            v[at] = byte;
        }
        let _ = TxnRecord::decode(b"\x00\x00\x00\x02tx", Some(&v));
        let _ = Bytes::from(v);
    }
}
