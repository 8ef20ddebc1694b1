use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, FetchRequest, OffsetCommitResponse, ProduceRequest, ProduceResponse, WriteTxnMarkersResponse};

use crate::ids::TopicPartition;

use super::groups::CommitOffset;

/// A produce request with `acks=all` waiting for the HW to pass its records.
#[derive(Debug)]
pub struct ParkedProduce {
    /// The response as it stands; waiting partitions are filled in when they complete.
    pub response: ProduceResponse,
    /// (partition, offset the HW must reach, topic index, partition index in the response)
    pub waiting: Vec<(TopicPartition, i64, usize, usize)>,
}

/// A fetch that found nothing and waits for data up to its `max_wait_ms`.
#[derive(Debug)]
pub struct ParkedFetch {
    pub request: FetchRequest,
}

/// An offset commit waiting for the high watermark of its offsets partition.
#[derive(Debug)]
pub struct ParkedCommit {
    pub tp: TopicPartition,
    /// The offset the HW must reach.
    pub required: i64,
    pub group: String,
    pub offsets: Vec<CommitOffset>,
    /// The answer if the commit succeeds.
    pub response: OffsetCommitResponse,
    /// A TxnOffsetCommit of this producer id: the offsets wait for its transaction's marker.
    pub txn_producer: Option<i64>,
}

/// WriteTxnMarkers waiting for its markers to be replicated.
#[derive(Debug)]
pub struct ParkedMarkers {
    pub response: WriteTxnMarkersResponse,
    /// (partition, offset the HW must reach, marker/topic/partition index in the response,
    /// producer id, commit)
    pub waiting: Vec<(TopicPartition, i64, usize, usize, usize, i64, bool)>,
}

/// A transactional produce waiting for its coordinator's verification (KIP-890).
#[derive(Debug)]
pub struct ParkedVerify {
    /// Taken when the verification is answered and the produce runs.
    pub request: Option<ProduceRequest>,
    pub tps: Vec<TopicPartition>,
}

#[derive(Debug)]
pub enum ParkedOp {
    Produce(ParkedProduce),
    Fetch(ParkedFetch),
    OffsetCommit(ParkedCommit),
    /// A JoinGroup or SyncGroup the group coordinator answers later; the parked id is the
    /// coordinator's token.
    Group,
    /// A transaction coordinator request answered later; the parked id is its token.
    Txn,
    Markers(ParkedMarkers),
    Verify(ParkedVerify),
}

/// A request answered later: on an event (HW moved, data arrived) or at its deadline,
/// whichever comes first, and exactly once.
#[derive(Debug)]
pub struct Parked {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub deadline_ms: u64,
    pub op: ParkedOp,
}

/// The parked requests, keyed by a per-broker id. Bounded: a full purgatory refuses more.
#[derive(Debug, Default)]
pub struct Purgatory {
    next_id: u64,
    parked: BTreeMap<u64, Parked>,
}

/// More parked requests than this means clients are far ahead of replication.
pub const PARKED_MAX: usize = 10_000;

impl Purgatory {
    pub fn park(&mut self, p: Parked) -> Option<u64> {
        if self.parked.len() >= PARKED_MAX {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.parked.insert(id, p);
        Some(id)
    }

    /// An id for a request that may be parked with `park_reserved` (the group coordinator
    /// keys its late answers by it).
    pub fn reserve(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn park_reserved(&mut self, id: u64, p: Parked) -> bool {
        if self.parked.len() >= PARKED_MAX {
            return false;
        }
        self.parked.insert(id, p);
        true
    }

    pub fn take(&mut self, id: u64) -> Option<Parked> {
        self.parked.remove(&id)
    }

    pub fn put_back(&mut self, id: u64, p: Parked) {
        self.parked.insert(id, p);
    }
}
