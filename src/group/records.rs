//! The records of `__consumer_offsets`, in Kafka's own schemas, so Kafka's tools (kcat,
//! `kafka-console-consumer --formatter ...OffsetsMessageFormatter`) can read our partitions and
//! we could read theirs.
//!
//! A record is a key and an optional value; no value is a tombstone (compaction deletes the key).
//! Keys and values start with an i16 schema version. Key v0/v1 is `OffsetCommitKey`, key v2 is
//! `GroupMetadataKey`. We write offset values v3 and group values v3 (the last non-flexible
//! versions) and read offset values v0–v3 and group values v0–v3.
//!
//! Decoding never panics: the bytes come from disk or from another implementation, and an
//! error names the field that was wrong.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ids::TopicPartition;
use crate::protocol::reader::Reader;

/// Key version of `OffsetCommitKey` that we write (v0 has the same layout).
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of `GroupMetadataKey`.
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// One record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// A committed offset; `None` is a tombstone.
    Offset { group: String, tp: TopicPartition, value: Option<OffsetValue> },
    /// A group's metadata after a rebalance; `None` is a tombstone (the group is gone).
    Group { group: String, value: Option<GroupMetadataValue> },
}

/// `OffsetCommitValue`: what a group committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown (and in values before v3).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// `GroupMetadataValue`: a group's generation, protocol, leader and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    /// None when the group has no members.
    pub protocol: Option<String>,
    /// None when the group has no members.
    pub leader: Option<String>,
    /// When the group entered its current state; -1 in values before v2.
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One member inside a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    /// Static membership (v3+); always None for groups this coordinator writes.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Equal to `session_timeout` in v0 values, which lack it.
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl GroupRecord {
    /// Key and value bytes. Strings must fit an i16 length (the coordinator bounds them first).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        match self {
            GroupRecord::Offset { group, tp, value } => {
                let mut key = BytesMut::new();
                key.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut key, group);
                put_string(&mut key, &tp.topic);
                key.put_i32(tp.partition);
                (key.freeze(), value.as_ref().map(encode_offset_value))
            }
            GroupRecord::Group { group, value } => {
                let mut key = BytesMut::new();
                key.put_i16(GROUP_KEY_VERSION);
                put_string(&mut key, group);
                (key.freeze(), value.as_ref().map(encode_group_value))
            }
        }
    }

    /// Parses a key and optional value; errors name the part that is wrong.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, String> {
        let mut k = Reader::new(key, "key");
        let version = k.i16("key version")?;
        let record = match version {
            0 | 1 => {
                let group = k.string("offset key group")?;
                let topic = k.string("offset key topic")?;
                let partition = k.i32("offset key partition")?;
                k.finish()?;
                let value = value.map(decode_offset_value).transpose()?;
                GroupRecord::Offset { group, tp: TopicPartition::new(topic, partition), value }
            }
            2 => {
                let group = k.string("group key group")?;
                k.finish()?;
                let value = value.map(decode_group_value).transpose()?;
                GroupRecord::Group { group, value }
            }
            v => return Err(format!("unsupported key version {v} (not a classic offset or group record)")),
        };
        Ok(record)
    }

    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. } => group,
        }
    }
}

fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_VALUE_VERSION);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_string(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, String> {
    let mut r = Reader::new(bytes, "offset value");
    let version = r.i16("offset value version")?;
    if !(0..=3).contains(&version) {
        return Err(format!("unsupported offset value version {version}"));
    }
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 { r.i32("leader_epoch")? } else { -1 };
    let metadata = r.string("offset metadata")?;
    let commit_timestamp = r.i64("commit_timestamp")?;
    if version == 1 {
        r.i64("expire_timestamp")?;
    }
    r.finish()?;
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp })
}

fn encode_group_value(v: &GroupMetadataValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_string(&mut b, v.protocol.as_deref());
    put_nullable_string(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    let count = i32::try_from(v.members.len()).expect("member count fits i32");
    b.put_i32(count);
    for m in &v.members {
        put_string(&mut b, &m.member_id);
        put_nullable_string(&mut b, m.group_instance_id.as_deref());
        put_string(&mut b, &m.client_id);
        put_string(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout);
        b.put_i32(m.session_timeout);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, String> {
    let mut r = Reader::new(bytes, "group value");
    let version = r.i16("group value version")?;
    if !(0..=3).contains(&version) {
        return Err(format!("unsupported group value version {version}"));
    }
    let protocol_type = r.string("protocol_type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp = if version >= 2 { r.i64("current_state_timestamp")? } else { -1 };
    let count = r.i32("member count")?;
    // Every member takes at least 18 bytes (v0, all strings empty), so a larger count is corrupt;
    // checking first keeps a bad count from reserving a huge vector.
    if count < 0 || count as usize > r.remaining() / 18 {
        return Err(format!("group value: member count {count} with {} bytes left", r.remaining()));
    }
    let members = (0..count)
        .map(|i| decode_member(&mut r, version).map_err(|e| format!("member {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(GroupMetadataValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

fn decode_member(r: &mut Reader<'_>, version: i16) -> Result<MemberMetadataValue, String> {
    let member_id = r.string("member_id")?;
    let group_instance_id = if version >= 3 { r.nullable_string("group_instance_id")? } else { None };
    let client_id = r.string("client_id")?;
    let client_host = r.string("client_host")?;
    let rebalance_timeout = if version >= 1 { Some(r.i32("rebalance_timeout")?) } else { None };
    let session_timeout = r.i32("session_timeout")?;
    let subscription = r.bytes("subscription")?;
    let assignment = r.bytes("assignment")?;
    Ok(MemberMetadataValue {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
        session_timeout,
        subscription,
        assignment,
    })
}

fn put_string(b: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or_else(|_| panic!("string of {} bytes does not fit an i16 length", s.len()));
    b.put_i16(len);
    b.put_slice(s.as_bytes());
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).expect("bytes field fits an i32 length");
    b.put_i32(len);
    b.put_slice(bytes);
}

