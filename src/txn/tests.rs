//! The coordinator driven through its public API, one rule per test; the state table, the
//! records and the random two-producer model live in the submodules.

mod model;
mod records;
mod state;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::ids::TopicPartition;
use crate::observe::Tracer;

use super::*;

pub(super) const T: &str = "txn-a";
pub(super) const TIMEOUT_MS: i32 = 60_000;
pub(super) const FIRST_PID: i64 = 1_000;

pub(super) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(super) fn config(tv2: bool) -> TxnConfig {
    TxnConfig { epoch_bump_per_txn: tv2, ..TxnConfig::default() }
}

/// A coordinator that leads `T`'s partition, and the log it appended to.
pub(super) struct H {
    pub c: TxnCoordinator,
    pub lines: Rc<RefCell<Vec<String>>>,
    pub now: u64,
    next_token: u64,
    /// The committed records of `T`'s partition, in order.
    pub log: Vec<(Bytes, Option<Bytes>)>,
    pub partition: i32,
}

impl H {
    pub fn new(tv2: bool) -> H {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let sink = lines.clone();
        let trace = Tracer::new(Rc::new(move |l: &str| sink.borrow_mut().push(l.to_string())));
        let mut c = TxnCoordinator::new(config(tv2), 1, trace);
        c.set_producer_id_block(FIRST_PID, FIRST_PID + 1_000);
        let partition = c.partition_of(T);
        c.load(0, partition, 1, Vec::new());
        H { c, lines, now: 0, next_token: 0, log: Vec::new(), partition }
    }

    pub fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Commits every write emitted, in order, appending it to the log, until no more come.
    pub fn commit_writes(&mut self) -> Vec<TxnWrite> {
        let mut all = Vec::new();
        loop {
            let writes = self.c.take_writes();
            if writes.is_empty() {
                return all;
            }
            for w in &writes {
                assert_eq!(w.partition, self.partition);
                self.log.push((w.key.clone(), w.value.clone()));
                self.c.write_completed(self.now, w.id, Ok(()));
                self.c.assert_invariants();
            }
            all.extend(writes);
        }
    }

    /// Fails every write emitted so far with `e`.
    pub fn fail_writes(&mut self, e: ResponseError) -> usize {
        let writes = self.c.take_writes();
        for w in &writes {
            self.c.write_completed(self.now, w.id, Err(e));
        }
        self.c.assert_invariants();
        writes.len()
    }

    /// Reports every marker emitted so far as written.
    pub fn ack_markers(&mut self) -> Vec<MarkerJob> {
        let jobs = self.c.take_markers();
        for j in &jobs {
            self.c.markers_written(self.now, &j.txn_id, j.producer_id, j.producer_epoch, &j.partitions);
        }
        self.c.assert_invariants();
        jobs
    }

    /// Commits writes and acks markers until nothing more happens.
    pub fn settle(&mut self) {
        for _ in 0..10 {
            let writes = self.commit_writes();
            let jobs = self.ack_markers();
            if writes.is_empty() && jobs.is_empty() {
                return;
            }
        }
        panic!("the coordinator did not settle");
    }

    /// The only answer parked so far.
    pub fn ready(&mut self) -> TxnReady {
        let mut ready = self.c.take_ready();
        assert_eq!(ready.len(), 1, "one answer expected: {ready:?}");
        ready.remove(0)
    }

    pub fn init(&mut self, expected: Option<(i64, i16)>) -> Reply<Result<(i64, i16), ResponseError>> {
        let token = self.token();
        self.c.init_producer_id(self.now, token, T, TIMEOUT_MS, expected)
    }

    /// InitProducerId whose write commits: its answer.
    pub fn init_ok(&mut self) -> (i64, i16) {
        assert_eq!(self.init(None), Reply::Later);
        self.commit_writes();
        match self.ready() {
            TxnReady::InitProducerId { result: Ok(id), .. } => id,
            other => panic!("init: {other:?}"),
        }
    }

    pub fn add(&mut self, id: (i64, i16), partitions: &[TopicPartition]) -> Reply<PartitionResults> {
        let token = self.token();
        self.c.add_partitions(self.now, token, T, id.0, id.1, partitions, false)
    }

    /// AddPartitionsToTxn whose write commits.
    pub fn add_ok(&mut self, id: (i64, i16), partitions: &[TopicPartition]) {
        assert_eq!(self.add(id, partitions), Reply::Later);
        self.commit_writes();
        match self.ready() {
            TxnReady::AddPartitions { result, .. } => assert!(result.iter().all(|(_, e)| e.is_none()), "{result:?}"),
            other => panic!("add: {other:?}"),
        }
    }

    pub fn verify(&mut self, id: (i64, i16), partitions: &[TopicPartition]) -> PartitionResults {
        let token = self.token();
        match self.c.add_partitions(self.now, token, T, id.0, id.1, partitions, true) {
            Reply::Now(r) => r,
            Reply::Later => panic!("verify_only answered later"),
        }
    }

    pub fn end(&mut self, id: (i64, i16), commit: bool) -> Reply<Result<(i64, i16), ResponseError>> {
        let token = self.token();
        self.c.end_txn(self.now, token, T, id.0, id.1, commit)
    }

    /// EndTxn whose PrepareX write commits; markers are not acked. Its answer.
    pub fn end_ok(&mut self, id: (i64, i16), commit: bool) -> (i64, i16) {
        assert_eq!(self.end(id, commit), Reply::Later);
        self.commit_writes();
        match self.ready() {
            TxnReady::EndTxn { result: Ok(next), .. } => next,
            other => panic!("end: {other:?}"),
        }
    }

    pub fn snap(&self) -> TxnSnapshot {
        self.c.snapshot().into_iter().find(|s| s.txn_id == T).expect("T has a record")
    }

    pub fn state(&self) -> TxnState {
        self.c.txn_state(T).expect("T is served")
    }

    pub fn traced(&self, needle: &str) -> bool {
        self.lines.borrow().iter().any(|l| l.contains(needle))
    }
}

fn now_err<T: std::fmt::Debug>(r: Reply<Result<T, ResponseError>>) -> ResponseError {
    match r {
        Reply::Now(Err(e)) => e,
        other => panic!("expected an error now, got {other:?}"),
    }
}

fn all_err(r: Reply<PartitionResults>) -> ResponseError {
    match r {
        Reply::Now(results) => {
            let e = results[0].1.expect("an error");
            assert!(results.iter().all(|(_, x)| *x == Some(e)), "{results:?}");
            e
        }
        Reply::Later => panic!("expected an error now"),
    }
}

fn decode(w: &TxnWrite) -> TxnLogValue {
    TxnRecord::decode(&w.key, w.value.as_deref()).expect("decodes").value.expect("not a tombstone")
}

// ---- InitProducerId ----

#[test]
fn init_of_a_new_id_writes_empty_at_epoch_0_and_answers_once_committed() {
    let mut h = H::new(true);
    assert_eq!(h.init(None), Reply::Later);
    assert!(h.c.take_ready().is_empty());
    assert!(h.c.snapshot().is_empty(), "nothing is state before its record is committed");
    let writes = h.commit_writes();
    assert_eq!(writes.len(), 1);
    let record = TxnRecord::decode(&writes[0].key, writes[0].value.as_deref()).unwrap();
    assert_eq!(record.transactional_id, T);
    let v = record.value.unwrap();
    assert_eq!((v.producer_id, v.producer_epoch, v.state, v.partitions, v.start_ms), (FIRST_PID, 0, TxnState::Empty, None, -1));
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Ok((FIRST_PID, 0)), .. }));
    assert_eq!(h.state(), TxnState::Empty);
    assert!(h.traced(&format!("txn-state {T} pid={FIRST_PID} epoch=0 Empty -> Empty")));
}

#[test]
fn init_refuses_bad_timeouts_ids_and_unowned_ids() {
    let mut h = H::new(true);
    let max = h.c.config().max_timeout_ms;
    for timeout in [0, -1, max + 1] {
        let token = h.token();
        assert_eq!(now_err(h.c.init_producer_id(0, token, T, timeout, None)), ResponseError::InvalidTransactionTimeout);
    }
    assert_eq!(now_err(h.c.init_producer_id(0, 1, "", TIMEOUT_MS, None)), ResponseError::InvalidRequest);
    // An id whose partition is not loaded here.
    let other = (0..).map(|i| format!("t{i}")).find(|id| h.c.partition_of(id) != h.partition).unwrap();
    assert_eq!(h.c.check_owner(&other), Some(ResponseError::NotCoordinator));
    assert_eq!(h.c.check_owner(T), None);
    assert_eq!(now_err(h.c.init_producer_id(0, 1, &other, TIMEOUT_MS, None)), ResponseError::NotCoordinator);
    assert!(h.c.take_writes().is_empty());
}

#[test]
fn the_partition_of_an_id_is_kafkas_partition_for() {
    let c = TxnCoordinator::new(TxnConfig::default(), 1, Tracer::off());
    assert_eq!(c.partition_of("my-group"), crate::group::partition_for("my-group", 50));
    assert_eq!(c.partition_of("my-group"), 12);
}

#[test]
fn init_bumps_the_epoch_from_empty_and_complete() {
    for tv2 in [false, true] {
        let mut h = H::new(tv2);
        let id = h.init_ok();
        assert_eq!(h.init_ok(), (id.0, id.1 + 1));
        let id = (id.0, id.1 + 1);
        h.add_ok(id, &[tp("a", 0)]);
        let next = h.end_ok(id, true);
        h.settle();
        assert_eq!(h.state(), TxnState::CompleteCommit);
        assert_eq!(h.init_ok(), (next.0, next.1 + 1));
        assert_eq!(h.state(), TxnState::Empty);
        assert!(h.traced("CompleteCommit -> Empty"));
    }
}

#[test]
fn init_in_prepare_is_concurrent_transactions() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    h.end_ok(id, true);
    assert_eq!(h.state(), TxnState::PrepareCommit);
    assert_eq!(now_err(h.init(None)), ResponseError::ConcurrentTransactions);
}

#[test]
fn an_epoch_that_would_reach_the_limit_comes_with_a_new_producer_id() {
    let mut h = H::new(false);
    let near = TxnLogValue {
        producer_id: 7,
        producer_epoch: i16::MAX - 4,
        timeout_ms: TIMEOUT_MS,
        state: TxnState::CompleteAbort,
        partitions: Some(vec![]),
        last_update_ms: 0,
        start_ms: 0,
    };
    let record = TxnRecord { transactional_id: T.into(), value: Some(near) }.encode();
    h.c.load(0, h.partition, 2, vec![record]);
    assert_eq!(h.init_ok(), (7, i16::MAX - 3));
    assert_eq!(h.init_ok(), (7, i16::MAX - 2));
    // i16::MAX - 1 is never handed out.
    assert_eq!(h.init_ok(), (FIRST_PID, 0));
    assert!(h.traced("exhausted"));
}

#[test]
fn without_producer_ids_init_is_coordinator_not_available_until_a_block_comes() {
    let mut h = H::new(true);
    h.c.set_producer_id_block(5, 5);
    assert_eq!(h.c.producer_ids_left(), 0);
    assert_eq!(now_err(h.init(None)), ResponseError::CoordinatorNotAvailable);
    h.c.set_producer_id_block(5, 6);
    assert_eq!(h.init_ok(), (5, 0));
    assert_eq!(h.c.producer_ids_left(), 0);
}

#[test]
fn init_with_expected_id_retry_and_fencing() {
    let mut h = H::new(false);
    let id = h.init_ok();
    let bumped = (id.0, id.1 + 1);
    assert_eq!(h.init(Some(id)), Reply::Later);
    h.commit_writes();
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Ok(got), .. } if got == bumped));
    // The same request again (its answer was lost): the same epoch, not another bump.
    assert_eq!(h.init(Some(id)), Reply::Later);
    h.commit_writes();
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Ok(got), .. } if got == bumped));
    // A stale epoch that is neither current nor that retry.
    assert_eq!(now_err(h.init(Some((id.0, id.1 + 5)))), ResponseError::ProducerFenced);
    // A new producer (no expected id) ends the retry window.
    let fresh = h.init_ok();
    assert_eq!(fresh, (id.0, id.1 + 2));
    assert_eq!(now_err(h.init(Some(id))), ResponseError::ProducerFenced);
}

// ---- Fencing ----

fn fencing_flow(tv2: bool) {
    let mut h = H::new(tv2);
    let zombie = h.init_ok();
    h.add_ok(zombie, &[tp("a", 0), tp("b", 1)]);
    assert_eq!(h.state(), TxnState::Ongoing);
    // The replacement's InitProducerId fences the zombie and aborts its transaction.
    assert_eq!(h.init(None), Reply::Later);
    let writes = h.c.take_writes();
    assert_eq!(writes.len(), 1);
    let v = decode(&writes[0]);
    let abort_epoch = if tv2 { zombie.1 + 2 } else { zombie.1 + 1 };
    assert_eq!((v.state, v.producer_id, v.producer_epoch), (TxnState::PrepareAbort, zombie.0, abort_epoch));
    // While the write is pending, everyone gets CONCURRENT_TRANSACTIONS.
    assert_eq!(all_err(h.add(zombie, &[tp("c", 0)])), ResponseError::ConcurrentTransactions);
    assert_eq!(now_err(h.end(zombie, true)), ResponseError::ConcurrentTransactions);
    assert_eq!(now_err(h.init(None)), ResponseError::ConcurrentTransactions);
    h.log.push((writes[0].key.clone(), writes[0].value.clone()));
    h.c.write_completed(h.now, writes[0].id, Ok(()));
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Err(ResponseError::ConcurrentTransactions), .. }));
    assert!(h.traced(&format!("epoch={} Ongoing -> PrepareEpochFence", zombie.1 + 1)));
    assert!(h.traced(&format!("epoch={abort_epoch} PrepareEpochFence -> PrepareAbort")));
    let jobs = h.c.take_markers();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].commit, jobs[0].producer_epoch, jobs[0].partitions.len()), (false, abort_epoch, 2));
    // The zombie is fenced for good.
    assert_eq!(all_err(h.add(zombie, &[tp("c", 0)])), ResponseError::ProducerFenced);
    assert_eq!(now_err(h.end(zombie, true)), ResponseError::ProducerFenced);
    assert_eq!(now_err(h.end(zombie, false)), ResponseError::ProducerFenced);
    for j in &jobs {
        h.c.markers_written(h.now, &j.txn_id, j.producer_id, j.producer_epoch, &j.partitions);
    }
    h.commit_writes();
    assert_eq!(h.state(), TxnState::CompleteAbort);
    assert!(h.snap().partitions.is_empty());
    // The retry gets the epoch after the abort's.
    let fresh = h.init_ok();
    assert_eq!(fresh, (zombie.0, abort_epoch + 1));
    assert_eq!(all_err(h.add(zombie, &[tp("c", 0)])), ResponseError::ProducerFenced);
    assert_eq!(now_err(h.end(zombie, false)), ResponseError::ProducerFenced);
    h.add_ok(fresh, &[tp("c", 0)]);
}

#[test]
fn init_while_ongoing_fences_the_old_epoch_and_aborts_its_transaction_tv1() {
    fencing_flow(false);
}

#[test]
fn init_while_ongoing_fences_the_old_epoch_and_aborts_its_transaction_tv2() {
    fencing_flow(true);
}

#[test]
fn a_failed_fence_leaves_the_transaction_ongoing_and_the_next_init_fences_again() {
    let mut h = H::new(false);
    let zombie = h.init_ok();
    h.add_ok(zombie, &[tp("a", 0)]);
    assert_eq!(h.init(None), Reply::Later);
    h.fail_writes(ResponseError::NotEnoughReplicas);
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Err(ResponseError::CoordinatorNotAvailable), .. }));
    let s = h.snap();
    assert_eq!((s.state, s.producer_epoch), (TxnState::Ongoing, zombie.1));
    assert!(!h.traced("PrepareEpochFence"));
    assert_eq!(h.init(None), Reply::Later);
    h.commit_writes();
    assert_eq!(h.snap().producer_epoch, zombie.1 + 1, "one bump for the fence, however many attempts");
}

// ---- Pending writes ----

#[test]
fn while_a_write_is_pending_other_requests_get_concurrent_transactions() {
    let mut h = H::new(true);
    let id = h.init_ok();
    assert_eq!(h.add(id, &[tp("a", 0)]), Reply::Later);
    assert!(h.c.has_pending_write(T));
    assert_eq!(now_err(h.init(None)), ResponseError::ConcurrentTransactions);
    assert_eq!(all_err(h.add(id, &[tp("b", 0)])), ResponseError::ConcurrentTransactions);
    assert_eq!(now_err(h.end(id, false)), ResponseError::ConcurrentTransactions);
    assert_eq!(h.state(), TxnState::Empty, "the state moves only when the write commits");
    h.commit_writes();
    assert_eq!(h.state(), TxnState::Ongoing);
}

#[test]
fn a_failed_write_leaves_the_state_unchanged_and_answers_a_retriable_error() {
    let mut h = H::new(true);
    let id = h.init_ok();
    let before = h.c.snapshot();
    for (e, answered) in [
        (ResponseError::NotEnoughReplicas, ResponseError::CoordinatorNotAvailable),
        (ResponseError::RequestTimedOut, ResponseError::CoordinatorNotAvailable),
        (ResponseError::NotLeaderOrFollower, ResponseError::NotCoordinator),
    ] {
        assert_eq!(h.add(id, &[tp("a", 0)]), Reply::Later);
        assert_eq!(h.fail_writes(e), 1);
        match h.ready() {
            TxnReady::AddPartitions { result, .. } => assert_eq!(result, vec![(tp("a", 0), Some(answered))]),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.c.snapshot(), before);
        assert!(!h.c.has_pending_write(T));
    }
    h.add_ok(id, &[tp("a", 0)]);
    let before = h.c.snapshot();
    assert_eq!(h.end(id, true), Reply::Later);
    h.fail_writes(ResponseError::NotEnoughReplicas);
    assert!(matches!(h.ready(), TxnReady::EndTxn { result: Err(ResponseError::CoordinatorNotAvailable), .. }));
    assert_eq!(h.c.snapshot(), before);
    assert!(h.c.take_markers().is_empty());
    // The retry succeeds.
    h.end_ok(id, true);
    assert_eq!(h.state(), TxnState::PrepareCommit);
}

#[test]
fn a_new_id_whose_first_write_fails_is_forgotten() {
    let mut h = H::new(false);
    assert_eq!(h.init(None), Reply::Later);
    h.fail_writes(ResponseError::NotEnoughReplicas);
    assert!(matches!(h.ready(), TxnReady::InitProducerId { result: Err(ResponseError::CoordinatorNotAvailable), .. }));
    assert!(h.c.snapshot().is_empty());
    assert_eq!(h.c.txn_state(T), None);
    assert_eq!(h.init_ok(), (FIRST_PID + 1, 0));
}

#[test]
fn completions_of_unknown_writes_are_ignored() {
    let mut h = H::new(false);
    h.c.write_completed(0, 999, Ok(()));
    h.c.write_completed(0, 998, Err(ResponseError::NotEnoughReplicas));
    assert!(h.c.take_ready().is_empty());
    h.c.assert_invariants();
}

// ---- AddPartitionsToTxn / AddOffsetsToTxn ----

#[test]
fn add_partitions_checks_producer_id_epoch_and_state() {
    let mut h = H::new(false);
    assert_eq!(all_err(h.add((1, 0), &[tp("a", 0)])), ResponseError::InvalidProducerIdMapping, "unknown id");
    let id = h.init_ok();
    assert_eq!(all_err(h.add((id.0 + 1, id.1), &[tp("a", 0)])), ResponseError::InvalidProducerIdMapping);
    assert_eq!(all_err(h.add((id.0, id.1 + 1), &[tp("a", 0)])), ResponseError::ProducerFenced);
    h.add_ok(id, &[tp("a", 0)]);
    h.end_ok(id, false);
    assert_eq!(all_err(h.add(id, &[tp("b", 0)])), ResponseError::ConcurrentTransactions, "PrepareAbort");
}

#[test]
fn the_first_add_starts_the_transaction_and_later_ones_keep_its_start() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.now = 500;
    h.add_ok(id, &[tp("a", 0)]);
    let s = h.snap();
    assert_eq!((s.state, s.start_ms, s.partitions.clone()), (TxnState::Ongoing, Some(500), vec![tp("a", 0)]));
    assert!(h.traced("Empty -> Ongoing"));
    h.now = 700;
    // Already in the transaction: answered now, no write.
    assert_eq!(h.add(id, &[tp("a", 0)]), Reply::Now(vec![(tp("a", 0), None)]));
    assert!(h.c.take_writes().is_empty());
    assert_eq!(h.add(id, &[]), Reply::Now(vec![]));
    h.add_ok(id, &[tp("a", 0), tp("b", 2)]);
    let s = h.snap();
    assert_eq!((s.start_ms, s.partitions), (Some(500), vec![tp("a", 0), tp("b", 2)]));
    assert!(h.traced("Ongoing -> Ongoing"));
    // After the transaction, the next add starts a new one.
    h.end_ok(id, true);
    h.settle();
    h.now = 900;
    h.add_ok(id, &[tp("c", 0)]);
    let s = h.snap();
    assert_eq!((s.state, s.start_ms, s.partitions), (TxnState::Ongoing, Some(900), vec![tp("c", 0)]));
}

#[test]
fn add_offsets_adds_the_group_partition_which_then_gets_a_marker() {
    let mut h = H::new(true);
    let id = h.init_ok();
    let offsets = tp("__consumer_offsets", 12);
    let token = h.token();
    assert_eq!(h.c.add_offsets(0, token, T, id.0, id.1, offsets.clone()), Reply::Later);
    h.commit_writes();
    assert_eq!(h.ready(), TxnReady::AddOffsets { token, result: Ok(()) });
    assert_eq!(h.c.add_offsets(0, 99, T, id.0, id.1, offsets.clone()), Reply::Now(Ok(())));
    assert_eq!(h.c.add_offsets(0, 99, T, id.0, id.1 + 1, offsets.clone()), Reply::Now(Err(ResponseError::ProducerFenced)));
    h.end_ok(id, true);
    let jobs = h.c.take_markers();
    assert_eq!(jobs[0].partitions, vec![offsets]);
}

#[test]
fn verify_only_answers_per_partition_and_never_writes() {
    let mut h = H::new(false);
    let id = h.init_ok();
    let (a, b) = (tp("a", 0), tp("b", 0));
    assert_eq!(h.verify(id, std::slice::from_ref(&a)), vec![(a.clone(), Some(ResponseError::InvalidTxnState))], "Empty");
    h.add_ok(id, std::slice::from_ref(&a));
    assert_eq!(h.verify(id, &[a.clone(), b.clone()]), vec![(a.clone(), None), (b.clone(), Some(ResponseError::InvalidTxnState))]);
    assert_eq!(h.verify((id.0, id.1 + 1), std::slice::from_ref(&a)), vec![(a.clone(), Some(ResponseError::ProducerFenced))]);
    assert_eq!(h.verify((id.0 + 1, id.1), std::slice::from_ref(&a)), vec![(a.clone(), Some(ResponseError::InvalidProducerIdMapping))]);
    assert!(h.c.take_writes().is_empty());
    assert_eq!(h.snap().partitions, vec![a.clone()], "verification adds nothing");
    // An EndTxn whose record is pending closed the transaction to new data.
    assert_eq!(h.end(id, true), Reply::Later);
    assert_eq!(h.verify(id, std::slice::from_ref(&a)), vec![(a.clone(), Some(ResponseError::InvalidTxnState))]);
    h.commit_writes();
    h.c.take_ready();
    assert_eq!(h.verify(id, std::slice::from_ref(&a)), vec![(a, Some(ResponseError::InvalidTxnState))], "PrepareCommit");
}

// ---- EndTxn ----

#[test]
fn end_txn_answers_after_the_prepare_record_and_then_sends_markers() {
    for tv2 in [false, true] {
        let mut h = H::new(tv2);
        let id = h.init_ok();
        h.add_ok(id, &[tp("a", 0), tp("a", 1)]);
        assert_eq!(h.end(id, true), Reply::Later);
        assert!(h.c.take_ready().is_empty() && h.c.take_markers().is_empty(), "nothing before the record commits");
        let writes = h.commit_writes();
        let v = decode(&writes[0]);
        let next = if tv2 { (id.0, id.1 + 1) } else { id };
        assert_eq!((v.state, v.producer_epoch), (TxnState::PrepareCommit, next.1));
        assert!(matches!(h.ready(), TxnReady::EndTxn { result: Ok(got), .. } if got == next));
        let jobs = h.c.take_markers();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!((job.producer_id, job.producer_epoch, job.commit, job.coordinator_epoch), (id.0, next.1, true, 1));
        // Markers one partition at a time: CompleteCommit only after the last.
        h.c.markers_written(0, T, id.0, next.1, &[tp("a", 0)]);
        assert!(h.c.take_writes().is_empty());
        assert_eq!(h.state(), TxnState::PrepareCommit);
        assert_eq!(h.snap().partitions.len(), 2, "PrepareCommit keeps its partitions until complete");
        h.c.markers_written(0, T, id.0, next.1, &[tp("a", 1)]);
        let writes = h.commit_writes();
        assert_eq!(decode(&writes[0]).state, TxnState::CompleteCommit);
        let s = h.snap();
        assert_eq!((s.state, s.partitions.len(), s.producer_epoch), (TxnState::CompleteCommit, 0, next.1));
    }
}

#[test]
fn end_txn_rules_tv1() {
    let mut h = H::new(false);
    let id = h.init_ok();
    assert_eq!(now_err(h.end(id, true)), ResponseError::InvalidTxnState, "Empty + commit");
    assert_eq!(now_err(h.end(id, false)), ResponseError::InvalidTxnState, "Empty + abort (TV1)");
    h.add_ok(id, &[tp("a", 0)]);
    assert_eq!(now_err(h.end((id.0 + 1, id.1), true)), ResponseError::InvalidProducerIdMapping);
    assert_eq!(now_err(h.end((id.0, id.1 - 1), true)), ResponseError::ProducerFenced);
    assert_eq!(now_err(h.end((id.0, id.1 + 1), true)), ResponseError::ProducerFenced);
    assert_eq!(h.end_ok(id, true), id, "TV1 keeps the epoch");
    assert_eq!(now_err(h.end(id, true)), ResponseError::ConcurrentTransactions, "PrepareCommit + commit");
    assert_eq!(now_err(h.end(id, false)), ResponseError::InvalidTxnState, "PrepareCommit + abort");
    h.settle();
    assert_eq!(h.end(id, true), Reply::Now(Ok(id)), "CompleteCommit + commit (a retry)");
    assert_eq!(now_err(h.end(id, false)), ResponseError::InvalidTxnState, "CompleteCommit + abort");
    h.add_ok(id, &[tp("a", 0)]);
    assert_eq!(h.end_ok(id, false), id);
    assert_eq!(now_err(h.end(id, false)), ResponseError::ConcurrentTransactions);
    assert_eq!(now_err(h.end(id, true)), ResponseError::InvalidTxnState);
    h.settle();
    assert_eq!(h.end(id, false), Reply::Now(Ok(id)));
    assert_eq!(now_err(h.end(id, true)), ResponseError::InvalidTxnState);
}

#[test]
fn end_txn_rules_tv2() {
    let mut h = H::new(true);
    let id = h.init_ok();
    assert_eq!(now_err(h.end(id, true)), ResponseError::InvalidTxnState, "Empty + commit");
    h.add_ok(id, &[tp("a", 0)]);
    assert_eq!(now_err(h.end((id.0, id.1 - 1), true)), ResponseError::ProducerFenced);
    let next = h.end_ok(id, true);
    assert_eq!(next, (id.0, id.1 + 1), "every EndTxn bumps the epoch");
    // A retry carries the old epoch.
    assert_eq!(now_err(h.end(id, true)), ResponseError::ConcurrentTransactions, "PrepareCommit retry");
    assert_eq!(now_err(h.end(id, false)), ResponseError::InvalidTxnState, "PrepareCommit, other result");
    assert_eq!(now_err(h.end(next, true)), ResponseError::ProducerFenced, "nobody holds the PrepareX epoch yet");
    h.settle();
    assert_eq!(h.end(id, true), Reply::Now(Ok(next)), "CompleteCommit retry: NONE with the current epoch");
    assert_eq!(now_err(h.end(id, false)), ResponseError::InvalidTxnState, "CompleteCommit, abort retry");
    assert_eq!(now_err(h.end(next, true)), ResponseError::InvalidTxnState, "CompleteCommit, commit at the current epoch");
    assert_eq!(now_err(h.end((id.0, id.1 - 1), true)), ResponseError::ProducerFenced, "older than a retry");
    // An abort at the current epoch with no transaction open: PrepareAbort without partitions,
    // straight to CompleteAbort, with one more bump.
    assert_eq!(h.end(next, false), Reply::Later);
    let writes = h.commit_writes();
    assert_eq!(writes.len(), 2, "PrepareAbort, then CompleteAbort at once");
    assert_eq!(decode(&writes[0]).state, TxnState::PrepareAbort);
    assert_eq!(decode(&writes[1]).state, TxnState::CompleteAbort);
    assert!(h.c.take_markers().is_empty(), "no partition, no marker");
    let after = (next.0, next.1 + 1);
    assert!(matches!(h.ready(), TxnReady::EndTxn { result: Ok(got), .. } if got == after));
    assert!(h.traced("CompleteCommit -> PrepareAbort"));
    assert_eq!(h.state(), TxnState::CompleteAbort);
    assert_eq!(h.end(next, false), Reply::Now(Ok(after)), "CompleteAbort retry");
    // From Empty too.
    let fresh = h.init_ok();
    assert_eq!(h.end(fresh, false), Reply::Later);
    h.commit_writes();
    assert!(h.traced("Empty -> PrepareAbort"));
    assert!(matches!(h.ready(), TxnReady::EndTxn { result: Ok(got), .. } if got == (fresh.0, fresh.1 + 1)));
    assert_eq!(now_err(h.end((fresh.0, fresh.1 - 1), false)), ResponseError::ProducerFenced);
}

#[test]
fn tv2_end_txn_at_the_last_epoch_answers_with_a_new_producer_id_once_complete() {
    let mut h = H::new(true);
    let ongoing = TxnLogValue {
        producer_id: 7,
        producer_epoch: i16::MAX - 2,
        timeout_ms: TIMEOUT_MS,
        state: TxnState::Ongoing,
        partitions: Some(vec![tp("a", 0)]),
        last_update_ms: 0,
        start_ms: 0,
    };
    let record = TxnRecord { transactional_id: T.into(), value: Some(ongoing) }.encode();
    h.log.push(record.clone());
    h.c.load(0, h.partition, 2, vec![record]);
    let old = (7, i16::MAX - 2);
    assert_eq!(h.end(old, true), Reply::Later);
    let writes = h.commit_writes();
    assert_eq!(decode(&writes[0]).producer_epoch, i16::MAX - 1);
    assert!(h.c.take_ready().is_empty(), "the answer waits for the new producer id");
    assert_eq!(now_err(h.end(old, true)), ResponseError::ConcurrentTransactions);
    h.ack_markers();
    let writes = h.commit_writes();
    let v = decode(&writes[0]);
    assert_eq!((v.state, v.producer_id, v.producer_epoch), (TxnState::CompleteCommit, FIRST_PID, 0));
    assert!(matches!(h.ready(), TxnReady::EndTxn { result: Ok((FIRST_PID, 0)), .. }));
    assert_eq!(h.end(old, true), Reply::Now(Ok((FIRST_PID, 0))), "a retry with the old producer id");
    h.add_ok((FIRST_PID, 0), &[tp("a", 0)]);
}

// ---- Timeouts ----

#[test]
fn an_ongoing_transaction_older_than_its_timeout_is_fenced_and_aborted_at_the_next_check() {
    for tv2 in [false, true] {
        let mut h = H::new(tv2);
        let token = h.token();
        assert_eq!(h.c.init_producer_id(0, token, T, 15_000, None), Reply::Later);
        h.commit_writes();
        let id = match h.ready() {
            TxnReady::InitProducerId { result: Ok(id), .. } => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(h.c.next_deadline(), None, "nothing open");
        h.now = 1_000;
        h.add_ok(id, &[tp("a", 0)]);
        assert_eq!(h.c.next_deadline(), Some(10_000));
        h.c.tick(10_000);
        assert!(h.c.take_writes().is_empty(), "not timed out yet");
        assert_eq!(h.c.next_deadline(), Some(20_000));
        h.c.tick(16_500);
        assert!(h.c.take_writes().is_empty(), "timed out, but the check runs every 10 s");
        h.now = 20_000;
        h.c.tick(h.now);
        let writes = h.commit_writes();
        assert_eq!(writes.len(), 1);
        assert!(h.traced(&format!("txn {T} timed out")));
        assert!(h.traced("Ongoing -> PrepareEpochFence"));
        assert!(h.c.take_ready().is_empty(), "nobody waits for a timeout's abort");
        assert_eq!(h.state(), TxnState::PrepareAbort);
        h.settle();
        assert_eq!(h.state(), TxnState::CompleteAbort);
        assert_eq!(now_err(h.end(id, true)), ResponseError::ProducerFenced);
        assert_eq!(all_err(h.add(id, &[tp("a", 0)])), ResponseError::ProducerFenced);
        assert_eq!(h.c.next_deadline(), None);
    }
}

#[test]
fn a_failed_timeout_abort_is_tried_again_at_the_next_check() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    h.c.tick(TIMEOUT_MS as u64 + 10_000);
    h.fail_writes(ResponseError::NotEnoughReplicas);
    assert_eq!(h.state(), TxnState::Ongoing);
    assert!(h.c.take_ready().is_empty());
    h.c.tick(TIMEOUT_MS as u64 + 20_000);
    h.commit_writes();
    assert_eq!(h.state(), TxnState::PrepareAbort);
}

// ---- Markers and completion ----

#[test]
fn stale_marker_reports_are_ignored() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    h.end_ok(id, true);
    h.c.markers_written(0, T, id.0, id.1 + 1, &[tp("a", 0)]);
    h.c.markers_written(0, T, id.0 + 1, id.1, &[tp("a", 0)]);
    h.c.markers_written(0, T, id.0, id.1, &[tp("zzz", 0)]);
    h.c.markers_written(0, "unknown", id.0, id.1, &[tp("a", 0)]);
    assert!(h.c.take_writes().is_empty());
    assert_eq!(h.state(), TxnState::PrepareCommit);
    h.ack_markers();
    h.c.markers_written(0, T, id.0, id.1, &[tp("a", 0)]);
    assert_eq!(h.c.take_writes().len(), 1, "a duplicate report does not write CompleteX twice");
}

#[test]
fn a_failed_complete_write_is_retried_after_a_backoff() {
    let mut h = H::new(true);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    h.end_ok(id, true);
    h.ack_markers();
    h.fail_writes(ResponseError::NotEnoughReplicas);
    assert_eq!(h.state(), TxnState::PrepareCommit);
    assert_eq!(h.c.next_deadline(), Some(100));
    h.c.tick(50);
    assert!(h.c.take_writes().is_empty());
    h.c.tick(100);
    h.commit_writes();
    assert_eq!(h.state(), TxnState::CompleteCommit);
    assert_eq!(h.c.next_deadline(), None);
}

// ---- Load and unload ----

#[test]
fn loading_resumes_the_markers_of_decided_transactions() {
    for tv2 in [false, true] {
        let mut h = H::new(tv2);
        let id = h.init_ok();
        h.add_ok(id, &[tp("a", 0), tp("b", 0)]);
        let next = h.end_ok(id, false);
        let before = h.c.snapshot();
        // Failover: a new coordinator reads the log.
        let mut c = TxnCoordinator::new(config(tv2), 2, Tracer::off());
        c.set_producer_id_block(5_000, 6_000);
        c.load(0, h.partition, 7, h.log.clone());
        assert_eq!(c.snapshot(), before);
        let jobs = c.take_markers();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].producer_id, jobs[0].producer_epoch, jobs[0].coordinator_epoch, jobs[0].commit, jobs[0].partitions.len()),
            (next.0, next.1, 7, false, 2)
        );
        c.markers_written(0, T, next.0, next.1, &jobs[0].partitions);
        let writes = c.take_writes();
        assert_eq!(writes.len(), 1);
        c.write_completed(0, writes[0].id, Ok(()));
        assert_eq!(c.txn_state(T), Some(TxnState::CompleteAbort));
        c.assert_invariants();
    }
}

#[test]
fn loading_keeps_the_last_record_per_id_deletes_tombstones_and_skips_garbage() {
    let mut h = H::new(true);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    let mut log = h.log.clone();
    let other = (0..).map(|i| format!("t{i}")).find(|t| h.c.partition_of(t) == h.partition && t != T).unwrap();
    let foreign = (0..).map(|i| format!("f{i}")).find(|t| h.c.partition_of(t) != h.partition).unwrap();
    let value = |state| TxnLogValue {
        producer_id: 9,
        producer_epoch: 3,
        timeout_ms: 1_000,
        state,
        partitions: None,
        last_update_ms: 0,
        start_ms: -1,
    };
    log.push(TxnRecord { transactional_id: other.clone(), value: Some(value(TxnState::Empty)) }.encode());
    log.push(TxnRecord { transactional_id: foreign.clone(), value: Some(value(TxnState::Empty)) }.encode());
    log.push((Bytes::from_static(b"\x00\x09gar"), None));
    log.push((Bytes::from_static(b"\x00"), Some(Bytes::from_static(b"\x01"))));
    log.push(TxnRecord { transactional_id: other.clone(), value: Some(value(TxnState::PrepareEpochFence)) }.encode());
    let mut c = TxnCoordinator::new(config(true), 2, Tracer::off());
    c.load(0, h.partition, 3, log.clone());
    let ids: Vec<String> = c.snapshot().into_iter().map(|s| s.txn_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&other) && ids.contains(&T.to_string()) && !ids.contains(&foreign));
    assert_eq!(c.txn_state(&other), Some(TxnState::Empty), "the PrepareEpochFence record is skipped");
    log.push(TxnRecord { transactional_id: other.clone(), value: None }.encode());
    log.push(TxnRecord { transactional_id: T.into(), value: Some(value(TxnState::Dead)) }.encode());
    c.load(0, h.partition, 4, log);
    assert!(c.snapshot().is_empty(), "a tombstone and a Dead record delete");
}

#[test]
fn a_loaded_prepare_without_partitions_completes_at_once() {
    let v = TxnLogValue {
        producer_id: 9,
        producer_epoch: 3,
        timeout_ms: 1_000,
        state: TxnState::PrepareAbort,
        partitions: Some(vec![]),
        last_update_ms: 0,
        start_ms: 5,
    };
    let mut c = TxnCoordinator::new(config(true), 2, Tracer::off());
    let partition = c.partition_of(T);
    c.load(0, partition, 1, vec![TxnRecord { transactional_id: T.into(), value: Some(v) }.encode()]);
    assert!(c.take_markers().is_empty());
    let writes = c.take_writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(decode(&writes[0]).state, TxnState::CompleteAbort);
}

#[test]
fn unloading_answers_waiting_requests_not_coordinator_and_drops_untaken_output() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    assert_eq!(h.end(id, true), Reply::Later);
    assert!(h.c.is_loaded(h.partition));
    h.c.unload(h.partition);
    assert!(!h.c.is_loaded(h.partition));
    assert!(matches!(h.ready(), TxnReady::EndTxn { result: Err(ResponseError::NotCoordinator), .. }));
    assert!(h.c.take_writes().is_empty());
    assert!(h.c.snapshot().is_empty());
    assert_eq!(now_err(h.end(id, true)), ResponseError::NotCoordinator);
    assert_eq!(all_err(h.add(id, &[tp("a", 0)])), ResponseError::NotCoordinator);
    assert_eq!(h.verify(id, &[tp("a", 0)]), vec![(tp("a", 0), Some(ResponseError::NotCoordinator))]);
    h.c.assert_invariants();
    // Reloading serves the logged state again; the pending EndTxn never happened.
    h.c.load(0, h.partition, 2, h.log.clone());
    assert_eq!(h.state(), TxnState::Ongoing);
    h.end_ok(id, true);
    let jobs = h.c.take_markers();
    assert_eq!(jobs[0].coordinator_epoch, 2);
}

#[test]
fn unloading_drops_marker_jobs_and_later_reports_for_them() {
    let mut h = H::new(false);
    let id = h.init_ok();
    h.add_ok(id, &[tp("a", 0)]);
    h.end_ok(id, true);
    h.c.unload(h.partition);
    assert!(h.c.take_markers().is_empty());
    h.c.markers_written(0, T, id.0, id.1, &[tp("a", 0)]);
    assert!(h.c.take_writes().is_empty());
}
