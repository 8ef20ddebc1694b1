//! Transaction markers: the control batches a transaction coordinator has written to every
//! partition of a transaction to end it (KIP-98; Kafka's `EndTransactionMarker`,
//! `ControlRecordType`). A marker batch is transactional and control, carries the producer's id
//! and epoch, sequence -1, and holds exactly one record whose
//! - key is `i16 version (0)` + `i16 type` (0 = ABORT, 1 = COMMIT), and whose
//! - value is `i16 version (0)` + `i32 coordinator_epoch` (`EndTxnMarker`).
//!
//! Decoding is by hand and total: the bytes come from disk or from a leader, so a malformed
//! marker is an `Err`, never a panic.

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Record, TimestampType};

use super::batch::{verify_crc, BatchHeader, BATCH_HEADER_LEN};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The control record key's `type` field.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// The marker type named by a control record key (`i16 version` + `i16 type`), or `None`
    /// when the key is too short or names another control type (Kafka has more, e.g. the
    /// KRaft ones, which are no transaction markers). Any version is read: Kafka's keys are all
    /// version 0 and later versions may only append fields.
    pub fn from_key(key: &[u8]) -> Option<ControlType> {
        match key.get(2..4)? {
            [0, 0] => Some(ControlType::Abort),
            [0, 1] => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// Encodes the marker batch ending `producer_id`'s transaction: base offset 0 (the leader
/// places it) and partition leader epoch -1 (the leader stamps it), one record.
pub fn encode_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    kind: ControlType,
    timestamp: i64,
) -> Bytes {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: IndexMap::new(),
    };
    crate::protocol::encode_batch_v2(&[record])
}

/// Reads the marker type and coordinator epoch out of one whole control batch (header, CRC,
/// control attribute, no compression, one record with a marker key and value).
pub fn parse_marker(batch: &[u8]) -> Result<(ControlType, i32), String> {
    verify_crc(batch).map_err(|e| e.to_string())?;
    let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    if !h.is_control() {
        return Err("not a control batch".to_string());
    }
    if h.attributes & 0x07 != 0 {
        return Err(format!(
            "compressed control batch (attributes {:#x})",
            h.attributes
        ));
    }
    if h.records_count != 1 {
        return Err(format!(
            "control batch holds {} records, expected 1",
            h.records_count
        ));
    }
    let mut r = Reader {
        buf: &batch[BATCH_HEADER_LEN..],
    };
    let _length = r.varint()?;
    let _attributes = r.take(1)?;
    let _timestamp_delta = r.varint()?;
    let _offset_delta = r.varint()?;
    let key = r.bytes()?.ok_or("control record without a key")?;
    let kind = ControlType::from_key(key)
        .ok_or_else(|| format!("control key {key:?} is no transaction marker"))?;
    let value = r.bytes()?.ok_or("marker without a value")?;
    let epoch = value
        .get(2..6)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or_else(|| format!("marker value of {} bytes, expected 6", value.len()))?;
    Ok((kind, i32::from_be_bytes(epoch)))
}

/// A cursor over record bytes that fails instead of reading past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "record cut short: need {n} bytes, have {}",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A zigzag varint of at most 10 bytes (Kafka's varlong; varints are a subset).
    fn varint(&mut self) -> Result<i64, String> {
        let mut raw = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    /// A varint length (-1 = null) followed by that many bytes.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.varint()? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
                self.take(n).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;
    use proptest::prelude::*;

    #[test]
    fn a_marker_batch_has_kafkas_header_fields() {
        let b = encode_marker_batch(42, 3, 7, ControlType::Commit, 1_000);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_transactional() && h.is_control());
        assert_eq!(
            (h.base_offset, h.records_count, h.last_offset_delta),
            (0, 1, 0)
        );
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        assert_eq!((h.max_timestamp, h.partition_leader_epoch), (1_000, -1));
        assert_eq!(h.size(), b.len());
        verify_crc(&b).unwrap();
    }

    #[test]
    fn markers_parse_back() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            for epoch in [-1, 0, 5, i32::MAX] {
                let b = encode_marker_batch(1, 0, epoch, kind, 0);
                assert_eq!(parse_marker(&b), Ok((kind, epoch)));
            }
        }
    }

    #[test]
    fn kafka_protocol_decodes_the_marker_key_and_value() {
        let b = encode_marker_batch(9, 1, 4, ControlType::Abort, 5);
        let sets = RecordBatchDecoder::decode_all(&mut b.clone()).unwrap();
        let r = &sets[0].records[0];
        assert!(r.control && r.transactional);
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 0][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 4][..]));
        assert_eq!(
            ControlType::from_key(&[0, 0, 0, 1]),
            Some(ControlType::Commit)
        );
        assert_eq!(ControlType::from_key(&[0, 0, 0, 2]), None);
        assert_eq!(ControlType::from_key(&[0, 0, 0]), None);
    }

    #[test]
    fn data_and_garbage_are_no_markers() {
        let data = super::super::batch::build_test_batch(0, &[b"x"]);
        assert_eq!(parse_marker(&data), Err("not a control batch".to_string()));
        let mut b = encode_marker_batch(1, 0, 0, ControlType::Abort, 0).to_vec();
        b.truncate(b.len() - 1);
        assert!(parse_marker(&b).is_err());
        assert!(parse_marker(&[]).is_err());
    }

    /// Re-signs `b` after an edit so that only the record decoding can fail.
    fn recrc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any record body behind a valid control header is decoded or refused, never a panic.
        #[test]
        fn parsing_arbitrary_record_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..40)) {
            let mut b = encode_marker_batch(1, 0, 0, ControlType::Commit, 0).to_vec();
            b.truncate(BATCH_HEADER_LEN);
            b.extend_from_slice(&body);
            let len = i32::try_from(b.len() - 12).unwrap();
            b[8..12].copy_from_slice(&len.to_be_bytes());
            recrc(&mut b);
            let _ = parse_marker(&b);
        }

        #[test]
        fn flipping_any_record_byte_never_panics(at in 0usize..20, bit in 0u8..8) {
            let mut b = encode_marker_batch(1, 0, 77, ControlType::Abort, 0).to_vec();
            let i = BATCH_HEADER_LEN + at % (b.len() - BATCH_HEADER_LEN);
            b[i] ^= 1 << bit;
            recrc(&mut b);
            let _ = parse_marker(&b);
        }
    }
}
