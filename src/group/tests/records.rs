//! `__consumer_offsets` records: Kafka's byte layouts, older versions, errors, round trips.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use crate::group::records::{GroupMetadataValue, GroupRecord, MemberMetadataValue, OffsetValue};
use crate::ids::TopicPartition;

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

#[test]
fn an_offset_commit_record_has_kafkas_layout() {
    let record = GroupRecord::Offset {
        group: "g".into(),
        tp: TopicPartition::new("t", 3),
        value: Some(OffsetValue { offset: 42, leader_epoch: 5, metadata: "m".into(), commit_timestamp: 1_000 }),
    };
    let (key, value) = record.encode();
    let mut k = BytesMut::new();
    k.put_i16(1);
    put_str(&mut k, "g");
    put_str(&mut k, "t");
    k.put_i32(3);
    assert_eq!(key, k.freeze());
    let mut v = BytesMut::new();
    v.put_i16(3);
    v.put_i64(42);
    v.put_i32(5);
    put_str(&mut v, "m");
    v.put_i64(1_000);
    assert_eq!(value, Some(v.freeze()));
}

#[test]
fn a_group_metadata_record_has_kafkas_layout() {
    let member = MemberMetadataValue {
        member_id: "m1".into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout: 30_000,
        session_timeout: 10_000,
        subscription: Bytes::from_static(b"S"),
        assignment: Bytes::from_static(b"AA"),
    };
    let value = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 7,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp: 99,
        members: vec![member],
    };
    let (key, bytes) = GroupRecord::Group { group: "g".into(), value: Some(value) }.encode();
    let mut k = BytesMut::new();
    k.put_i16(2);
    put_str(&mut k, "g");
    assert_eq!(key, k.freeze());
    let mut v = BytesMut::new();
    v.put_i16(3);
    put_str(&mut v, "consumer");
    v.put_i32(7);
    put_str(&mut v, "range");
    put_str(&mut v, "m1");
    v.put_i64(99);
    v.put_i32(1);
    put_str(&mut v, "m1");
    v.put_i16(-1);
    put_str(&mut v, "c");
    put_str(&mut v, "/h");
    v.put_i32(30_000);
    v.put_i32(10_000);
    v.put_i32(1);
    v.put_slice(b"S");
    v.put_i32(2);
    v.put_slice(b"AA");
    assert_eq!(bytes, Some(v.freeze()));
}

#[test]
fn a_key_without_a_value_is_a_tombstone() {
    let record = GroupRecord::Offset { group: "g".into(), tp: TopicPartition::new("t", 0), value: None };
    let (key, value) = record.encode();
    assert_eq!(value, None);
    assert_eq!(GroupRecord::decode(&key, None), Ok(record));
    let group = GroupRecord::Group { group: "g".into(), value: None };
    let (key, _) = group.encode();
    assert_eq!(GroupRecord::decode(&key, None), Ok(group));
}

#[test]
fn older_offset_values_decode_without_leader_epoch() {
    let (key, _) = GroupRecord::Offset { group: "g".into(), tp: TopicPartition::new("t", 0), value: None }.encode();
    let mut v1 = BytesMut::new();
    v1.put_i16(1);
    v1.put_i64(10);
    put_str(&mut v1, "meta");
    v1.put_i64(500);
    v1.put_i64(600); // expire_timestamp, dropped
    let mut v0 = BytesMut::new();
    v0.put_i16(0);
    v0.put_i64(11);
    put_str(&mut v0, "");
    v0.put_i64(700);
    let expected = |offset, metadata: &str, ts| OffsetValue { offset, leader_epoch: -1, metadata: metadata.into(), commit_timestamp: ts };
    let value = |bytes: &[u8]| match GroupRecord::decode(&key, Some(bytes)).unwrap() {
        GroupRecord::Offset { value, .. } => value.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(&v1), expected(10, "meta", 500));
    assert_eq!(value(&v0), expected(11, "", 700));
    // Key version 0 is the same layout as version 1.
    let mut k0 = BytesMut::new();
    k0.put_i16(0);
    put_str(&mut k0, "g");
    put_str(&mut k0, "t");
    k0.put_i32(0);
    assert!(matches!(GroupRecord::decode(&k0, Some(&v0)), Ok(GroupRecord::Offset { .. })));
}

#[test]
fn older_group_values_decode_with_defaults() {
    let (key, _) = GroupRecord::Group { group: "g".into(), value: None }.encode();
    // v0: no rebalance timeout (it defaults to the session timeout), no state timestamp.
    let mut v0 = BytesMut::new();
    v0.put_i16(0);
    put_str(&mut v0, "consumer");
    v0.put_i32(2);
    v0.put_i16(-1);
    v0.put_i16(-1);
    v0.put_i32(1);
    put_str(&mut v0, "m");
    put_str(&mut v0, "c");
    put_str(&mut v0, "h");
    v0.put_i32(6_000);
    v0.put_i32(0);
    v0.put_i32(0);
    let GroupRecord::Group { value: Some(v), .. } = GroupRecord::decode(&key, Some(&v0)).unwrap() else { panic!() };
    assert_eq!((v.generation, v.protocol, v.leader, v.current_state_timestamp), (2, None, None, -1));
    assert_eq!((v.members[0].rebalance_timeout, v.members[0].session_timeout), (6_000, 6_000));
    // v2: rebalance timeout and state timestamp, no group instance id.
    let mut v2 = BytesMut::new();
    v2.put_i16(2);
    put_str(&mut v2, "consumer");
    v2.put_i32(3);
    put_str(&mut v2, "range");
    put_str(&mut v2, "m");
    v2.put_i64(1234);
    v2.put_i32(1);
    put_str(&mut v2, "m");
    put_str(&mut v2, "c");
    put_str(&mut v2, "h");
    v2.put_i32(60_000);
    v2.put_i32(6_000);
    v2.put_i32(0);
    v2.put_i32(1);
    v2.put_u8(7);
    let GroupRecord::Group { value: Some(v), .. } = GroupRecord::decode(&key, Some(&v2)).unwrap() else { panic!() };
    assert_eq!((v.protocol.as_deref(), v.current_state_timestamp), (Some("range"), 1234));
    assert_eq!((v.members[0].rebalance_timeout, v.members[0].assignment.as_ref()), (60_000, [7u8].as_ref()));
}

#[test]
fn decode_errors_name_what_is_wrong() {
    let err = |key: &[u8], value: Option<&[u8]>| GroupRecord::decode(key, value).unwrap_err();
    assert!(err(&[], None).contains("key version"), "{}", err(&[], None));
    assert!(err(&[0, 5], None).contains("unsupported key version 5"));
    assert!(err(&[0, 2, 0, 3, b'g'], None).contains("group key group"));
    assert!(err(&[0, 2, 0, 1, 0xff], None).contains("not UTF-8"));
    assert!(err(&[0, 2, 0, 1, b'g', 0], None).contains("1 trailing bytes"));
    assert!(err(&[0, 2, 0, 1, b'g'], Some(&[0, 9])).contains("unsupported group value version 9"));
    assert!(err(&[0, 2, 0, 1, b'g'], Some(&[0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0]))
        .contains("member count"));
    let (key, _) = GroupRecord::Offset { group: "g".into(), tp: TopicPartition::new("t", 0), value: None }.encode();
    assert!(err(&key, Some(&[0, 3, 0, 0])).contains("offset"));
    assert!(err(&key, Some(&[0, 4])).contains("unsupported offset value version 4"));
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._é😀-]{0,12}"
}

fn offset_record() -> impl Strategy<Value = GroupRecord> {
    let value = (any::<i64>(), any::<i32>(), text(), any::<i64>())
        .prop_map(|(offset, leader_epoch, metadata, commit_timestamp)| OffsetValue { offset, leader_epoch, metadata, commit_timestamp });
    (text(), text(), any::<i32>(), proptest::option::of(value))
        .prop_map(|(group, topic, p, value)| GroupRecord::Offset { group, tp: TopicPartition::new(topic, p), value })
}

fn member() -> impl Strategy<Value = MemberMetadataValue> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
    (text(), proptest::option::of(text()), text(), text(), any::<i32>(), any::<i32>(), bytes(), bytes()).prop_map(
        |(member_id, group_instance_id, client_id, client_host, rebalance_timeout, session_timeout, subscription, assignment)| {
            MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            }
        },
    )
}

fn group_record() -> impl Strategy<Value = GroupRecord> {
    let value = (
        text(),
        any::<i32>(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        any::<i64>(),
        proptest::collection::vec(member(), 0..4),
    )
        .prop_map(|(protocol_type, generation, protocol, leader, current_state_timestamp, members)| GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        });
    (text(), proptest::option::of(value)).prop_map(|(group, value)| GroupRecord::Group { group, value })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_record_survives_encode_then_decode(record in prop_oneof![offset_record(), group_record()]) {
        let (key, value) = record.encode();
        prop_assert_eq!(GroupRecord::decode(&key, value.as_deref()), Ok(record));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(
        key in proptest::collection::vec(any::<u8>(), 0..48),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..96)),
    ) {
        let _ = GroupRecord::decode(&key, value.as_deref());
    }

    #[test]
    fn corrupted_records_never_panic_the_decoder(
        record in prop_oneof![offset_record(), group_record()],
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (key, value) = record.encode();
        let mut key = key.to_vec();
        let mut value = value.map(|v| v.to_vec()).unwrap_or_default();
        for (i, b) in flips {
            if !value.is_empty() {
                let at = i.index(value.len());
                value[at] ^= b;
            }
        }
        let cut_at = cut.index(key.len() + 1);
        let _ = GroupRecord::decode(&key, Some(&value));
        key.truncate(cut_at);
        let _ = GroupRecord::decode(&key, Some(&value));
    }
}
