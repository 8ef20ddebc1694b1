//! The record accumulator (Kafka's `RecordAccumulator`) and the idempotent producer's sequence
//! bookkeeping (Kafka's `TransactionManager` for a producer without `transactional.id`): which
//! batches are waiting, which are ready to drain to which leader, and which sequence numbers
//! they carry. No I/O: the sender asks, then talks to the network.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use crate::client::metadata::MetadataCache;
use crate::client::partitioner::{murmur2, partition_for_key};
use crate::ids::{BrokerId, TopicPartition};
use crate::log::increment_sequence;

use super::{ProducerConfig, RecordMetadata, SendError};

/// Bytes a record is charged for against `batch.size` and `buffer.memory`: its key and value
/// plus the v2 record framing (length, attributes, deltas, header count), as Kafka estimates.
pub(crate) fn record_size(key: Option<&Bytes>, value: &Bytes) -> usize {
    key.map_or(0, Bytes::len) + value.len() + 21
}

/// Framing of a v2 batch around its records.
const BATCH_OVERHEAD: usize = 61;

pub(crate) struct PendingRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub timestamp: i64,
    pub done: oneshot::Sender<Result<RecordMetadata, SendError>>,
}

/// An idempotent batch's identity on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub producer_id: i64,
    pub epoch: i16,
    pub base: i32,
}

pub(crate) struct Batch {
    pub tp: TopicPartition,
    pub records: Vec<PendingRecord>,
    pub bytes: usize,
    pub created: Instant,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub sequence: Option<Sequence>,
    /// Some earlier attempt may have been written.
    pub maybe_written: bool,
}

impl Batch {
    pub fn record_count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }

    /// Resolves every record: offsets from `base_offset` on, or no offsets (acks=0).
    pub fn succeed(self, base_offset: Option<i64>) {
        let partition = self.tp.partition;
        for (i, r) in self.records.into_iter().enumerate() {
            let offset = base_offset.map(|b| b + i as i64);
            let _ = r.done.send(Ok(RecordMetadata { partition, offset }));
        }
    }

    /// Fails every record; indefinite when any attempt may have written the batch.
    pub fn fail(self, maybe_written_now: bool, message: String) {
        let definite = !(self.maybe_written || maybe_written_now);
        let partition = Some(self.tp.partition);
        for r in self.records {
            let _ = r.done.send(Err(SendError { definite, partition, message: message.clone() }));
        }
    }
}

/// Per partition: the sequence numbers of the current producer id and epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartitionSequences {
    pub producer: (i64, i16),
    /// The sequence the next new batch gets.
    pub next: i32,
    /// The first sequence not yet acknowledged: a batch starting here that the broker calls out
    /// of order means the broker lost what it had acknowledged (it is not a retry artefact).
    pub first_unacked: i32,
}

pub(crate) struct Accumulator {
    config: ProducerConfig,
    queues: BTreeMap<TopicPartition, VecDeque<Batch>>,
    /// Bytes of records accepted and not yet completed (queued or in flight).
    buffered: usize,
    records: usize,
    pub metadata: Option<MetadataCache>,
    /// Set by errors that mean the leaders we know are wrong; the sender refreshes.
    pub metadata_stale: bool,
    sticky: BTreeMap<String, i32>,
    /// The idempotent producer's id and epoch, once InitProducerId answered.
    pub producer: Option<(i64, i16)>,
    /// A partition's sequences became unresolved: bump the epoch once nothing is in flight.
    pub needs_bump: bool,
    seqs: BTreeMap<TopicPartition, PartitionSequences>,
    /// Requests in flight per broker (the sender counts them).
    pub in_flight_by_node: BTreeMap<BrokerId, usize>,
    /// Batches in flight per partition.
    pub in_flight_by_tp: BTreeMap<TopicPartition, usize>,
    /// A `send` waits for a topic's partition count.
    pub metadata_wanted: bool,
    /// Transactional producers only: the partitions the coordinator has in the current
    /// transaction. A partition's batches are drained only once it is in this set.
    pub txn_added: Option<BTreeSet<TopicPartition>>,
    /// Partitions with queued batches that are not in the transaction yet (AddPartitionsToTxn).
    pub txn_wanted: BTreeSet<TopicPartition>,
    /// The first error that makes the current transaction abortable (a failed send).
    pub txn_abortable: Option<String>,
    /// A transaction is being aborted: nothing new is drained.
    pub txn_aborting: bool,
}

impl Accumulator {
    pub fn new(config: ProducerConfig) -> Accumulator {
        Accumulator {
            config,
            queues: BTreeMap::new(),
            buffered: 0,
            records: 0,
            metadata: None,
            metadata_stale: true,
            sticky: BTreeMap::new(),
            producer: None,
            needs_bump: false,
            seqs: BTreeMap::new(),
            in_flight_by_node: BTreeMap::new(),
            in_flight_by_tp: BTreeMap::new(),
            metadata_wanted: false,
            txn_added: None,
            txn_wanted: BTreeSet::new(),
            txn_abortable: None,
            txn_aborting: false,
        }
    }

    /// Starts sequences again (a new producer id or epoch from the transaction coordinator).
    pub fn reset_sequences(&mut self) {
        self.seqs.clear();
    }

    /// Takes every queued (not in-flight) batch out, to be failed: the transaction is aborted.
    pub fn take_queued(&mut self) -> Vec<Batch> {
        let batches: Vec<Batch> = self.queues.values_mut().flat_map(|q| q.drain(..)).collect();
        for b in &batches {
            self.release(b);
        }
        batches
    }

    /// Takes the queued batches of `tps` out, to be failed.
    pub fn take_queued_of(&mut self, tps: &[TopicPartition]) -> Vec<Batch> {
        let mut batches = Vec::new();
        for tp in tps {
            if let Some(q) = self.queues.get_mut(tp) {
                batches.extend(q.drain(..));
            }
        }
        for b in &batches {
            self.release(b);
        }
        batches
    }

    /// Batches in flight, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.in_flight_by_tp.values().sum()
    }

    pub fn has_room(&self, size: usize) -> bool {
        self.buffered == 0 || self.buffered + size <= self.config.buffer_memory
    }

    pub fn pending_records(&self) -> usize {
        self.records
    }

    pub fn producer_id_and_epoch(&self) -> Option<(i64, i16)> {
        self.producer
    }

    /// The partition a record goes to: `toPositive(murmur2(key)) % n` for keyed records; for
    /// null keys the topic's sticky partition, which moves on once a batch fills (KIP-480,
    /// KIP-794). None while the topic's partition count is unknown.
    pub fn choose_partition(&mut self, topic: &str, key: Option<&[u8]>) -> Option<i32> {
        let n = self.metadata.as_ref()?.partitions(topic).filter(|n| *n > 0)?;
        Some(match key {
            Some(k) => partition_for_key(k, n),
            None => {
                // The first sticky partition differs between producers, as Kafka's random pick does.
                let start = (murmur2(self.config.client_id.as_bytes()) & 0x7fff_ffff) % n;
                *self.sticky.entry(topic.to_string()).or_insert(start) % n
            }
        })
    }

    /// Adds a record to the partition's open batch, or opens one.
    pub fn append(&mut self, tp: TopicPartition, keyed: bool, record: PendingRecord, size: usize) {
        self.buffered += size;
        self.records += 1;
        let batch_size = self.config.batch_size;
        let queue = self.queues.entry(tp.clone()).or_default();
        let open = queue
            .back_mut()
            .filter(|b| b.attempts == 0 && b.sequence.is_none() && BATCH_OVERHEAD + b.bytes + size <= batch_size);
        let batch = match open {
            Some(b) => b,
            None => {
                queue.push_back(Batch {
                    tp: tp.clone(),
                    records: Vec::new(),
                    bytes: 0,
                    created: Instant::now(),
                    attempts: 0,
                    retry_at: None,
                    sequence: None,
                    maybe_written: false,
                });
                queue.back_mut().expect("just pushed")
            }
        };
        batch.records.push(record);
        batch.bytes += size;
        let full = BATCH_OVERHEAD + batch.bytes + size > batch_size;
        if full && !keyed {
            if let Some(n) = self.metadata.as_ref().and_then(|m| m.partitions(&tp.topic)) {
                self.sticky.insert(tp.topic.clone(), (tp.partition + 1) % n.max(1));
            }
        }
    }

    /// Releases a completed batch's bytes.
    pub fn release(&mut self, batch: &Batch) {
        self.buffered = self.buffered.saturating_sub(batch.bytes);
        self.records = self.records.saturating_sub(batch.records.len());
    }

    /// A drained batch is no longer in flight.
    pub fn landed(&mut self, tp: &TopicPartition) {
        if let Some(c) = self.in_flight_by_tp.get_mut(tp) {
            *c = c.saturating_sub(1);
        }
    }

    /// A request to `node` completed.
    pub fn request_done(&mut self, node: BrokerId) {
        if let Some(c) = self.in_flight_by_node.get_mut(&node) {
            *c = c.saturating_sub(1);
        }
    }

    fn in_flight_tp(&self, tp: &TopicPartition) -> usize {
        self.in_flight_by_tp.get(tp).copied().unwrap_or(0)
    }

    /// Puts a batch back to be retried after `retry.backoff.ms`: in sequence order when it has
    /// a sequence (so retries go out in the order the broker needs), else at the front of its
    /// partition's queue (Kafka's `reenqueue`, which is how retries reorder without idempotence).
    pub fn requeue(&mut self, mut batch: Batch, now: Instant) {
        batch.retry_at = Some(now + Duration::from_millis(self.config.retry_backoff_ms));
        let queue = self.queues.entry(batch.tp.clone()).or_default();
        match batch.sequence {
            Some(seq) => {
                let at = queue
                    .iter()
                    .position(|b| b.sequence.is_none_or(|s| s.epoch != seq.epoch || s.base > seq.base))
                    .unwrap_or(queue.len());
                queue.insert(at, batch);
            }
            None => queue.push_front(batch),
        }
    }

    /// Batches (not in flight) whose `delivery.timeout.ms` has passed, removed from the queues.
    pub fn expire(&mut self, now: Instant) -> Vec<Batch> {
        let timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        let mut expired = Vec::new();
        for queue in self.queues.values_mut() {
            let mut kept = VecDeque::with_capacity(queue.len());
            for b in queue.drain(..) {
                if now >= b.created + timeout {
                    expired.push(b);
                } else {
                    kept.push_back(b);
                }
            }
            *queue = kept;
        }
        for b in &expired {
            // A batch that had a sequence and may have been written leaves its partition's
            // sequence unknown: only a new epoch makes the broker accept sequence 0 again.
            if b.sequence.is_some() {
                self.needs_bump = true;
            }
        }
        expired
    }

    /// Whether a batch of an idempotent partition got an OUT_OF_ORDER_SEQUENCE_NUMBER that means
    /// the broker lost acknowledged state (the batch is the first unacknowledged one), rather
    /// than that an earlier batch of ours failed.
    pub fn is_first_unacked(&self, tp: &TopicPartition, seq: Sequence) -> bool {
        self.seqs.get(tp).is_some_and(|s| s.producer == (seq.producer_id, seq.epoch) && s.first_unacked == seq.base)
    }

    /// An acknowledged idempotent batch moves its partition's first unacknowledged sequence.
    pub fn acked(&mut self, tp: &TopicPartition, seq: Sequence, count: i32) {
        if let Some(s) = self.seqs.get_mut(tp) {
            if s.producer == (seq.producer_id, seq.epoch) {
                let end = increment_sequence(seq.base, count);
                // Sequences only move forward within an epoch (modulo wrap, which a window of
                // five batches cannot straddle ambiguously).
                if seq.base == s.first_unacked || end.wrapping_sub(s.first_unacked) > 0 {
                    s.first_unacked = end;
                }
            }
        }
    }

    /// KIP-360 for a producer without `transactional.id`: a local epoch bump. Queued batches
    /// lose their sequences and get new ones, from 0, under the new epoch.
    /// A transactional producer never bumps locally: its transaction becomes abortable and the
    /// coordinator gives the next epoch.
    pub fn bump_epoch_if_needed(&mut self) -> bool {
        if self.txn_added.is_some() {
            return false;
        }
        if !self.needs_bump || self.in_flight_by_tp.values().any(|c| *c > 0) {
            return false;
        }
        let Some((pid, epoch)) = self.producer else { return false };
        // At i16::MAX Kafka asks for a new producer id; this producer would need 32767 bumps.
        self.producer = Some((pid, epoch.saturating_add(1)));
        self.needs_bump = false;
        self.seqs.clear();
        for queue in self.queues.values_mut() {
            for b in queue.iter_mut() {
                b.sequence = None;
            }
        }
        true
    }

    /// Takes the batches that can be sent now, grouped by leader; also returns when to look
    /// again at batches that are not ready yet (linger, backoff).
    /// `node_ready(id, addr)` says whether a request can go to a broker now (it is connected).
    pub fn drain(&mut self, now: Instant, node_ready: &mut dyn FnMut(BrokerId, &str) -> bool) -> (BTreeMap<BrokerId, Vec<Batch>>, Option<Instant>) {
        let mut out: BTreeMap<BrokerId, Vec<Batch>> = BTreeMap::new();
        let mut next_check: Option<Instant> = None;
        let mut wake_at = |t: Instant| next_check = Some(next_check.map_or(t, |n| n.min(t)));
        let idempotent = self.config.enable_idempotence;
        let max_in_flight = self.config.max_in_flight;
        let linger = Duration::from_millis(self.config.linger_ms);
        let tps: Vec<TopicPartition> = self.queues.iter().filter(|(_, q)| !q.is_empty()).map(|(tp, _)| tp.clone()).collect();
        for tp in tps {
            let Some((leader, addr)) = self.metadata.as_ref().and_then(|m| m.leader_addr(&tp)) else {
                self.metadata_stale = true;
                continue;
            };
            let producer = self.producer;
            if idempotent && producer.is_none() {
                continue;
            }
            if self.txn_aborting {
                continue;
            }
            if let Some(added) = &self.txn_added {
                if !added.contains(&tp) {
                    // The coordinator must know the partition before its first batch
                    // (AddPartitionsToTxn), so that the transaction's markers reach it.
                    self.txn_wanted.insert(tp.clone());
                    continue;
                }
            }
            if !node_ready(leader, &addr) {
                continue;
            }
            'one: {
                if self.in_flight_by_node.get(&leader).copied().unwrap_or(0) >= max_in_flight {
                    break 'one;
                }
                let in_flight_tp = self.in_flight_tp(&tp);
                // One request at a time keeps order without idempotence (Kafka mutes the partition).
                if max_in_flight == 1 && in_flight_tp > 0 {
                    break 'one;
                }
                let queue = self.queues.get(&tp).expect("listed above");
                let Some(head) = queue.front() else { break 'one };
                let more_behind = queue.len() > 1;
                if let Some(t) = head.retry_at.filter(|t| *t > now) {
                    wake_at(t);
                    break 'one;
                }
                let full = more_behind || BATCH_OVERHEAD + head.bytes >= self.config.batch_size;
                let retry = head.attempts > 0;
                if !full && !retry && now < head.created + linger {
                    wake_at(head.created + linger);
                    break 'one;
                }
                if idempotent {
                    let (pid, epoch) = producer.expect("checked above");
                    if self.needs_bump {
                        // Nothing new goes out under an epoch about to be replaced.
                        break 'one;
                    }
                    let seqs = self.seqs.get(&tp).copied();
                    let current = seqs.filter(|s| s.producer == (pid, epoch));
                    if current.is_none() && in_flight_tp > 0 {
                        break 'one; // the old epoch's batches must land first
                    }
                    let mut s = current.unwrap_or(PartitionSequences { producer: (pid, epoch), next: 0, first_unacked: 0 });
                    let head = self.queues.get_mut(&tp).expect("listed above").front_mut().expect("checked");
                    match head.sequence {
                        // A retry goes out only as the first unacknowledged batch, alone, so the
                        // broker sees sequences in order (Kafka waits the same way).
                        Some(seq) if seq.base != s.first_unacked || in_flight_tp > 0 => break 'one,
                        Some(_) => {}
                        None => {
                            if in_flight_tp >= max_in_flight {
                                break 'one;
                            }
                            head.sequence = Some(Sequence { producer_id: pid, epoch, base: s.next });
                            s.next = increment_sequence(s.next, head.record_count());
                        }
                    }
                    self.seqs.insert(tp.clone(), s);
                }
                let batch = self.queues.get_mut(&tp).expect("listed above").pop_front().expect("checked");
                *self.in_flight_by_tp.entry(tp.clone()).or_default() += 1;
                out.entry(leader).or_default().push(batch);
                // One batch per partition per request, as Kafka sends.
            }
        }
        (out, next_check)
    }

    /// The earliest delivery deadline among queued batches.
    pub fn next_expiry(&self) -> Option<Instant> {
        let timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        self.queues.values().flat_map(|q| q.iter()).map(|b| b.created + timeout).min()
    }

    pub fn delivery_deadline(&self, batch: &Batch) -> Instant {
        batch.created + Duration::from_millis(self.config.delivery_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(max_in_flight: usize) -> Accumulator {
        let config = ProducerConfig { linger_ms: 0, max_in_flight, ..ProducerConfig::default() };
        let mut a = Accumulator::new(config);
        let mut m = MetadataCache::default();
        m.brokers.insert(BrokerId(0), "b0:9092".into());
        m.partition_counts.insert("t".into(), 1);
        m.leaders.insert(TopicPartition::new("t", 0), Some(BrokerId(0)));
        a.metadata = Some(m);
        a.producer = Some((7, 0));
        a
    }

    fn push(a: &mut Accumulator, n: usize) -> Vec<oneshot::Receiver<Result<RecordMetadata, SendError>>> {
        (0..n)
            .map(|i| {
                let (done, rx) = oneshot::channel();
                let value = Bytes::from(format!("v{i}"));
                let size = record_size(None, &value);
                let r = PendingRecord { key: None, value, timestamp: 0, done };
                a.append(TopicPartition::new("t", 0), true, r, size);
                rx
            })
            .collect()
    }

    fn drain_all(a: &mut Accumulator) -> Vec<Batch> {
        let (ready, _) = a.drain(Instant::now(), &mut |_, _| true);
        ready.into_values().flatten().collect()
    }

    #[test]
    fn sequences_are_assigned_in_order_and_a_retry_goes_out_alone_as_the_first_unacked_batch() {
        let mut a = acc(5);
        let _rx = push(&mut a, 1);
        let first = drain_all(&mut a);
        assert_eq!(first[0].sequence.map(|s| s.base), Some(0));
        let _rx2 = push(&mut a, 1);
        let second = drain_all(&mut a);
        assert_eq!(second[0].sequence.map(|s| s.base), Some(1), "pipelined behind the first");
        // The first fails and is requeued; the second is still in flight: the retry waits.
        a.landed(&first[0].tp);
        let mut retry = first.into_iter().next().unwrap();
        retry.attempts = 1;
        a.requeue(retry, Instant::now() - Duration::from_secs(1));
        a.queues.values_mut().for_each(|q| q.iter_mut().for_each(|b| b.retry_at = None));
        assert!(drain_all(&mut a).is_empty(), "a retry waits for the batches in flight");
        a.landed(&second[0].tp);
        let again = drain_all(&mut a);
        assert_eq!(again[0].sequence.map(|s| s.base), Some(0), "the retry keeps its sequence");
    }

    #[test]
    fn an_unresolved_sequence_bumps_the_epoch_and_restarts_sequences_at_zero() {
        let mut a = acc(5);
        let _rx = push(&mut a, 1);
        let sent = drain_all(&mut a);
        a.acked(&sent[0].tp, sent[0].sequence.unwrap(), 1);
        a.landed(&sent[0].tp);
        let _rx2 = push(&mut a, 1);
        let b = drain_all(&mut a);
        assert_eq!(b[0].sequence.map(|s| (s.epoch, s.base)), Some((0, 1)));
        a.needs_bump = true;
        assert!(!a.bump_epoch_if_needed(), "no bump while a batch is in flight");
        a.landed(&b[0].tp);
        let mut b = b.into_iter().next().unwrap();
        b.attempts = 1;
        a.requeue(b, Instant::now());
        a.queues.values_mut().for_each(|q| q.iter_mut().for_each(|b| b.retry_at = None));
        assert!(a.bump_epoch_if_needed());
        assert_eq!(a.producer, Some((7, 1)));
        let again = drain_all(&mut a);
        assert_eq!(again[0].sequence.map(|s| (s.epoch, s.base)), Some((1, 0)));
    }

    #[test]
    fn the_first_unacked_batch_is_told_apart_from_one_behind_a_failed_batch() {
        let mut a = acc(5);
        let _rx = push(&mut a, 1);
        let first = drain_all(&mut a);
        let _rx2 = push(&mut a, 1);
        let second = drain_all(&mut a);
        assert!(a.is_first_unacked(&first[0].tp, first[0].sequence.unwrap()));
        assert!(!a.is_first_unacked(&second[0].tp, second[0].sequence.unwrap()));
        a.acked(&first[0].tp, first[0].sequence.unwrap(), 1);
        assert!(a.is_first_unacked(&second[0].tp, second[0].sequence.unwrap()));
    }

    #[test]
    fn sequences_wrap_from_max_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }
}
