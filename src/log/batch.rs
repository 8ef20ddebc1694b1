//! The Kafka v2 record batch header: parsing, CRC checking and the two fields a broker rewrites.
//!
//! The log stores batches byte for byte as clients produced them; the broker only ever touches
//! `baseOffset` and `partitionLeaderEpoch`, both of which sit before the CRC-covered range, so
//! rewriting them never requires recomputing the CRC. Records themselves are never decoded here
//! except by the test helper [`build_test_batch`].

use std::fmt;
use std::ops::Range;

use bytes::BufMut;

/// Size of the fixed v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: `baseOffset` (8) + `batchLength` (4).
const LOG_OVERHEAD: usize = 12;
/// The CRC covers everything from `attributes` to the end of the batch.
const CRC_START: usize = 21;
const MAGIC_V2: i8 = 2;

/// The fixed part of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why bytes are not a valid v2 batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared batch length needs (a torn write).
    Truncated {
        need: usize,
        have: usize,
    },
    BadMagic(i8),
    /// `batchLength` smaller than the rest of the header.
    BadLength(i32),
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// `lastOffsetDelta` is negative: the batch would end before it starts.
    BadOffsetDelta(i32),
    /// A producer batch must hold `lastOffsetDelta + 1` records, at least one.
    BadRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// A slice handed over as one batch is not exactly as long as its header says.
    SizeMismatch {
        declared: usize,
        actual: usize,
    },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { need, have } => {
                write!(f, "truncated batch: need {need} bytes, have {have}")
            }
            BatchError::BadMagic(m) => write!(f, "bad magic {m}, expected {MAGIC_V2}"),
            BatchError::BadLength(l) => write!(
                f,
                "bad batchLength {l}, expected at least {}",
                BATCH_HEADER_LEN - LOG_OVERHEAD
            ),
            BatchError::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BatchError::BadOffsetDelta(d) => {
                write!(f, "bad lastOffsetDelta {d}, expected >= 0")
            }
            BatchError::BadRecordCount {
                records_count,
                last_offset_delta,
            } => write!(
                f,
                "recordsCount {records_count} does not match lastOffsetDelta {last_offset_delta} \
                 (expected recordsCount = lastOffsetDelta + 1 >= 1)"
            ),
            BatchError::SizeMismatch { declared, actual } => {
                write!(
                    f,
                    "batch declares {declared} bytes but the slice holds {actual}"
                )
            }
        }
    }
}

impl std::error::Error for BatchError {}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf[at..at + N]
        .try_into()
        .expect("caller checked the header length")
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks length and magic, not the CRC (that
    /// needs the whole batch: see [`verify_crc`]). `buf` may end before the batch does.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                need: BATCH_HEADER_LEN,
                have: buf.len(),
            });
        }
        let h = BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes(be(buf, 17)),
            attributes: i16::from_be_bytes(be(buf, 21)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            records_count: i32::from_be_bytes(be(buf, 57)),
        };
        if h.batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(h.batch_length));
        }
        if h.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(h.magic));
        }
        // Offsets must be derivable before a batch can be placed in the log at all.
        if h.last_offset_delta < 0 {
            return Err(BatchError::BadOffsetDelta(h.last_offset_delta));
        }
        Ok(h)
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The whole batch's size in bytes, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// The producer-side shape rule a leader enforces: one offset per record, at least one.
    pub fn check_record_count(&self) -> Result<(), BatchError> {
        if self.records_count < 1
            || i64::from(self.records_count) != i64::from(self.last_offset_delta) + 1
        {
            return Err(BatchError::BadRecordCount {
                records_count: self.records_count,
                last_offset_delta: self.last_offset_delta,
            });
        }
        Ok(())
    }
}

/// Checks the CRC-32C of `batch`, which must be exactly one whole batch.
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.size() != batch.len() {
        return Err(BatchError::SizeMismatch {
            declared: header.size(),
            actual: batch.len(),
        });
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Rewrites `baseOffset`; it lies outside the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "set_base_offset on a {}-byte slice",
        batch.len()
    );
    batch[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch`; it lies outside the CRC, so the CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "set_partition_leader_epoch on a {}-byte slice",
        batch.len()
    );
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Splits concatenated whole batches, checking each one's header and CRC. A trailing partial
/// batch is an error, not silently dropped: callers holding a request must reject it whole.
pub fn split_batches(buf: &[u8]) -> Result<Vec<(BatchHeader, Range<usize>)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let header = BatchHeader::parse(&buf[pos..])?;
        let have = buf.len() - pos;
        if header.size() > have {
            return Err(BatchError::Truncated {
                need: header.size(),
                have,
            });
        }
        let range = pos..pos + header.size();
        verify_crc(&buf[range.clone()])?;
        pos = range.end;
        out.push((header, range));
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

fn encode_record(out: &mut Vec<u8>, offset_delta: i64, value: &[u8]) {
    let mut body = vec![0u8]; // attributes
    put_varint(&mut body, 0); // timestampDelta
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1); // keyLength: null key
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, 0); // headersCount
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// For tests: builds a real, uncompressed v2 batch holding `records` as values (null keys, no
/// headers), with a correct CRC, as a Kafka producer would send it. `records` must be non-empty.
pub fn build_test_batch(base_offset: i64, records: &[&[u8]]) -> Vec<u8> {
    assert!(!records.is_empty(), "Kafka never produces an empty batch");
    let mut body = Vec::new();
    for (delta, value) in records.iter().enumerate() {
        encode_record(&mut body, delta as i64, value);
    }
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    b.put_i64(base_offset);
    b.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    b.put_i32(-1); // partitionLeaderEpoch: unknown until a leader stamps it
    b.put_i8(MAGIC_V2);
    b.put_u32(0); // crc, filled in below
    b.put_i16(0); // attributes
    b.put_i32(count - 1);
    b.put_i64(0); // baseTimestamp
    b.put_i64(0); // maxTimestamp
    b.put_i64(-1); // producerId
    b.put_i16(-1); // producerEpoch
    b.put_i32(-1); // baseSequence
    b.put_i32(count);
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_batch_parses_back_with_its_fields() {
        let b = build_test_batch(42, &[b"a", b"bb", b"ccc"]);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.magic, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.size(), b.len());
        assert!(!h.is_transactional() && !h.is_control());
        verify_crc(&b).unwrap();
    }

    #[test]
    fn records_use_kafka_zigzag_varint_layout() {
        let b = build_test_batch(0, &[b"hi"]);
        // length 8 (zigzag 16), attrs 0, tsDelta 0, offDelta 0, keyLen -1 (zigzag 1),
        // valLen 2 (zigzag 4), "hi", headers 0.
        assert_eq!(&b[BATCH_HEADER_LEN..], &[16, 0, 0, 0, 1, 4, b'h', b'i', 0]);
    }

    #[test]
    fn varints_longer_than_one_byte_are_encoded_little_endian_groups() {
        let mut out = Vec::new();
        put_varint(&mut out, 300); // zigzag 600 = 0b100_1011000
        assert_eq!(out, [0xd8, 0x04]);
    }

    #[test]
    fn rewriting_offset_and_epoch_keeps_the_crc_valid() {
        let mut b = build_test_batch(0, &[b"x"]);
        set_base_offset(&mut b, 1_000_000);
        set_partition_leader_epoch(&mut b, 7);
        verify_crc(&b).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1_000_000, 7));
    }

    #[test]
    fn a_flipped_bit_in_the_records_fails_the_crc() {
        let mut b = build_test_batch(0, &[b"payload"]);
        let last = b.len() - 2;
        b[last] ^= 1;
        assert!(matches!(
            verify_crc(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn a_short_buffer_is_truncated() {
        let b = build_test_batch(0, &[b"payload"]);
        assert_eq!(
            BatchHeader::parse(&b[..10]),
            Err(BatchError::Truncated {
                need: BATCH_HEADER_LEN,
                have: 10
            })
        );
        assert!(matches!(
            split_batches(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn wrong_magic_and_length_are_rejected() {
        let mut b = build_test_batch(0, &[b"p"]);
        b[16] = 1;
        assert_eq!(BatchHeader::parse(&b), Err(BatchError::BadMagic(1)));
        let mut b = build_test_batch(0, &[b"p"]);
        b[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&b), Err(BatchError::BadLength(3)));
    }

    #[test]
    fn verify_crc_wants_exactly_one_batch() {
        let mut two = build_test_batch(0, &[b"a"]);
        two.extend(build_test_batch(1, &[b"b"]));
        assert!(matches!(
            verify_crc(&two),
            Err(BatchError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn split_finds_every_concatenated_batch() {
        let a = build_test_batch(0, &[b"a", b"b"]);
        let b = build_test_batch(2, &[b"c"]);
        let both = [a.clone(), b.clone()].concat();
        let parts = split_batches(&both).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, 0..a.len());
        assert_eq!(parts[1].1, a.len()..a.len() + b.len());
        assert_eq!(parts[1].0.base_offset, 2);
        assert!(split_batches(&[]).unwrap().is_empty());
    }

    #[test]
    fn record_count_must_match_the_offset_delta() {
        let mut b = build_test_batch(0, &[b"a", b"b"]);
        BatchHeader::parse(&b)
            .unwrap()
            .check_record_count()
            .unwrap();
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let err = BatchHeader::parse(&b)
            .unwrap()
            .check_record_count()
            .unwrap_err();
        assert!(err.to_string().contains("recordsCount 5"), "{err}");
    }

    #[test]
    fn attribute_bits_are_decoded() {
        let mut b = build_test_batch(0, &[b"a"]);
        b[21..23].copy_from_slice(&0x30i16.to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_transactional() && h.is_control());
    }
}
