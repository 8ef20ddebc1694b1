//! The transactional producer (Kafka's `TransactionManager` with `transactional.id`):
//! `init_transactions` finds the transaction coordinator and gets the producer id and epoch
//! (fencing any earlier instance and aborting its open transaction); each transaction adds its
//! partitions with AddPartitionsToTxn before their first batch (the sender does that),
//! optionally adds the consumer's offsets (`send_offsets_to_transaction`), and ends with EndTxn.
//!
//! Errors come in Kafka's three kinds: *abortable* (a send of this transaction failed: the
//! application must abort and may go on), *fatal* (fenced by a newer instance, or a protocol
//! violation: the producer is unusable) and *timeout* (no answer within `max.block.ms`; the
//! outcome of a commit is then unknown).
//!
//! Where the client of transaction version 2 (Kafka 4) lets the partition leader add partitions
//! implicitly, this one always sends AddPartitionsToTxn; the coordinator's per-transaction epoch
//! bump is adopted from the EndTxn answer (v5) either way.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, FindCoordinatorRequest, GroupId, InitProducerIdRequest, ProducerId, RequestKind, ResponseKind,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::client::error::ClientError;
use crate::client::pipeline::Pipeline;
use crate::ids::TopicPartition;
use crate::seam::Network;

use super::{Producer, ProducerConfig, Shared};

const FIND_COORDINATOR_VERSION: i16 = 3;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const ADD_PARTITIONS_VERSION: i16 = 3;
const ADD_OFFSETS_VERSION: i16 = 3;
const END_TXN_VERSION: i16 = 5;
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;

/// What kind of failure a transactional call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// The transaction cannot commit; abort it, then the producer can go on.
    Abortable,
    /// The producer cannot go on (fenced by a newer instance, or a protocol error).
    Fatal,
    /// No answer in time; for a commit, the transaction may or may not be committed.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    pub kind: TxnErrorKind,
    pub message: String,
    /// For commit: an EndTxn(commit) of this transaction may have been applied.
    pub may_have_committed: bool,
}

impl TxnError {
    fn new(kind: TxnErrorKind, message: impl Into<String>) -> TxnError {
        TxnError { kind, message: message.into(), may_have_committed: false }
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// A consumer's group membership, as `sendOffsetsToTransaction` takes it (KIP-447): the group
/// coordinator refuses offsets from a member of an older generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
}

/// The transaction coordinator connection and the transaction's client-side state.
#[derive(Default)]
pub(crate) struct TxnLink {
    coordinator: Option<Rc<Pipeline>>,
    bootstrap_next: usize,
    /// Between begin and commit/abort.
    in_txn: bool,
    /// The coordinator has partitions or offsets in this transaction (an EndTxn is needed).
    started: bool,
    fatal: Option<String>,
    /// An EndTxn(commit) of this transaction went out without a definite answer.
    commit_maybe_sent: bool,
    /// AddPartitionsToTxn is not retried before this.
    add_retry_at: Option<Instant>,
}

impl TxnLink {
    pub fn add_retry_at(&self) -> Option<Instant> {
        self.add_retry_at
    }
}

/// How one coordinator answer is handled.
enum Step<T> {
    Done(T),
    Retry { forget: bool },
    Fail(TxnError),
}

/// What a coordinator error means for the call: retry (maybe elsewhere) or give up.
fn classify_coordinator_error<T>(err: ResponseError) -> Step<T> {
    use ResponseError::*;
    match err {
        CoordinatorNotAvailable | NotCoordinator => Step::Retry { forget: true },
        CoordinatorLoadInProgress | ConcurrentTransactions | RequestTimedOut => Step::Retry { forget: false },
        ProducerFenced | InvalidProducerEpoch | InvalidProducerIdMapping | TransactionalIdAuthorizationFailed | InvalidTxnState | InvalidTransactionTimeout => {
            Step::Fail(TxnError::new(TxnErrorKind::Fatal, format!("{err:?}")))
        }
        other => Step::Fail(TxnError::new(TxnErrorKind::Abortable, format!("{other:?}"))),
    }
}

impl Producer {
    fn txn_id(&self) -> Result<String, TxnError> {
        self.config.transactional_id.clone().ok_or_else(|| TxnError::new(TxnErrorKind::Fatal, "not a transactional producer (no transactional.id)"))
    }

    fn check_not_fatal(&self) -> Result<(), TxnError> {
        match &self.shared.txn.borrow().fatal {
            Some(m) => Err(TxnError::new(TxnErrorKind::Fatal, m.clone())),
            None => Ok(()),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.config.max_block_ms)
    }

    /// Finds the coordinator (if needed) and sends one request to it; retries until `deadline`
    /// while `on_answer` says so.
    async fn call_coordinator<T>(&self, api: ApiKey, version: i16, body: RequestKind, deadline: Instant, mut on_answer: impl FnMut(ResponseKind) -> Step<T>) -> Result<T, TxnError> {
        let txn_id = self.txn_id()?;
        let mut last = String::from("no attempt");
        let mut indefinite = false;
        loop {
            if Instant::now() >= deadline {
                let mut e = TxnError::new(TxnErrorKind::Timeout, format!("{api:?} got no answer within max.block.ms ({} ms): {last}", self.config.max_block_ms));
                e.may_have_committed = indefinite;
                return Err(e);
            }
            let step = match coordinator(&self.net, &self.bootstrap, &self.config, &self.shared, &txn_id).await {
                Err(e) => {
                    last = e.to_string();
                    Step::Retry { forget: true }
                }
                Ok(pipe) => match pipe.request(api, version, &body, self.config.request_timeout_ms).await {
                    Ok(resp) => on_answer(resp),
                    Err(e) => {
                        indefinite |= e.is_indefinite();
                        last = e.to_string();
                        Step::Retry { forget: true }
                    }
                },
            };
            match step {
                Step::Done(t) => return Ok(t),
                Step::Fail(mut e) => {
                    e.may_have_committed = indefinite;
                    if e.kind == TxnErrorKind::Fatal {
                        self.shared.txn.borrow_mut().fatal = Some(e.message.clone());
                    }
                    return Err(e);
                }
                Step::Retry { forget } => {
                    if forget {
                        self.shared.txn.borrow_mut().coordinator = None;
                    }
                    tokio::time::sleep(Duration::from_millis(self.config.retry_backoff_ms.max(1))).await;
                }
            }
        }
    }

    /// InitProducerId for this `transactional.id`: fences earlier instances (their open
    /// transaction is aborted) and gives this one the producer id and a new epoch.
    pub async fn init_transactions(&self) -> Result<(), TxnError> {
        let txn_id = self.txn_id()?;
        self.check_not_fatal()?;
        let current = self.shared.acc.borrow().producer;
        let (pid, epoch) = current.unwrap_or((-1, -1));
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn_id))))
            .with_transaction_timeout_ms(i32::try_from(self.config.transaction_timeout_ms).unwrap_or(i32::MAX))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
        let got = self
            .call_coordinator(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, RequestKind::InitProducerId(req), self.deadline(), |resp| {
                let ResponseKind::InitProducerId(r) = resp else { return Step::Fail(TxnError::new(TxnErrorKind::Fatal, "expected InitProducerId")) };
                match ResponseError::try_from_code(r.error_code) {
                    None => Step::Done((r.producer_id.0, r.producer_epoch)),
                    Some(e) => classify_coordinator_error(e),
                }
            })
            .await?;
        let mut acc = self.shared.acc.borrow_mut();
        acc.producer = Some(got);
        acc.needs_bump = false;
        acc.reset_sequences();
        Ok(())
    }

    /// Starts a transaction (local: the coordinator learns of it with the first partition).
    pub fn begin_transaction(&self) -> Result<(), TxnError> {
        self.txn_id()?;
        self.check_not_fatal()?;
        let mut link = self.shared.txn.borrow_mut();
        if link.in_txn {
            return Err(TxnError::new(TxnErrorKind::Fatal, "a transaction is already open"));
        }
        if self.shared.acc.borrow().producer.is_none() {
            return Err(TxnError::new(TxnErrorKind::Fatal, "init_transactions has not completed"));
        }
        link.in_txn = true;
        link.started = false;
        link.commit_maybe_sent = false;
        Ok(())
    }

    pub(super) fn in_transaction(&self) -> bool {
        self.shared.txn.borrow().in_txn
    }

    /// Adds the consumer's offsets to the transaction: they are committed with it, or not at
    /// all (AddOffsetsToTxn to the transaction coordinator, then TxnOffsetCommit to the
    /// group coordinator).
    pub async fn send_offsets_to_transaction(&self, offsets: &BTreeMap<TopicPartition, i64>, group: &GroupMetadata) -> Result<(), TxnError> {
        let txn_id = self.txn_id()?;
        self.check_not_fatal()?;
        if !self.in_transaction() {
            return Err(TxnError::new(TxnErrorKind::Fatal, "no transaction is open"));
        }
        let (pid, epoch) = self.shared.acc.borrow().producer.unwrap_or((-1, -1));
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.clone())))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())));
        self.call_coordinator(ApiKey::AddOffsetsToTxn, ADD_OFFSETS_VERSION, RequestKind::AddOffsetsToTxn(req), self.deadline(), |resp| {
            let ResponseKind::AddOffsetsToTxn(r) = resp else { return Step::Fail(TxnError::new(TxnErrorKind::Fatal, "expected AddOffsetsToTxn")) };
            match ResponseError::try_from_code(r.error_code) {
                None => Step::Done(()),
                Some(e) => classify_coordinator_error(e),
            }
        })
        .await
        .inspect_err(|e| self.note_abortable(e))?;
        self.shared.txn.borrow_mut().started = true;
        self.txn_offset_commit(&txn_id, pid, epoch, offsets, group).await.inspect_err(|e| self.note_abortable(e))
    }

    fn note_abortable(&self, e: &TxnError) {
        if e.kind != TxnErrorKind::Fatal {
            self.shared.acc.borrow_mut().txn_abortable.get_or_insert_with(|| e.message.clone());
        }
    }

    async fn txn_offset_commit(&self, txn_id: &str, pid: i64, epoch: i16, offsets: &BTreeMap<TopicPartition, i64>, group: &GroupMetadata) -> Result<(), TxnError> {
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for (tp, offset) in offsets {
            let p = TxnOffsetCommitRequestPartition::default().with_partition_index(tp.partition).with_committed_offset(*offset).with_committed_leader_epoch(-1);
            match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(TxnOffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![p])),
            }
        }
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.to_string())))
            .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(group.generation_id)
            .with_member_id(StrBytes::from_string(group.member_id.clone()))
            .with_topics(topics);
        let body = RequestKind::TxnOffsetCommit(req);
        let deadline = self.deadline();
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let pipe = match find_coordinator(&self.net, &self.bootstrap, &self.config, &group.group_id, 0, 0).await {
                Ok(p) => p,
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(self.config.retry_backoff_ms.max(1))).await;
                    continue;
                }
            };
            let resp = pipe.request(ApiKey::TxnOffsetCommit, TXN_OFFSET_COMMIT_VERSION, &body, self.config.request_timeout_ms).await;
            let code = match resp {
                Ok(ResponseKind::TxnOffsetCommit(r)) => r.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code).find(|c| *c != 0).unwrap_or(0),
                Ok(_) => return Err(TxnError::new(TxnErrorKind::Fatal, "expected TxnOffsetCommit")),
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let Some(err) = ResponseError::try_from_code(code) else { return Ok(()) };
            use ResponseError::*;
            match err {
                CoordinatorNotAvailable | NotCoordinator | CoordinatorLoadInProgress | ConcurrentTransactions | RequestTimedOut | UnknownTopicOrPartition => {
                    last = format!("{err:?}");
                    tokio::time::sleep(Duration::from_millis(self.config.retry_backoff_ms.max(1))).await;
                }
                ProducerFenced | InvalidProducerEpoch | TransactionalIdAuthorizationFailed => {
                    let e = TxnError::new(TxnErrorKind::Fatal, format!("TxnOffsetCommit: {err:?}"));
                    self.shared.txn.borrow_mut().fatal = Some(e.message.clone());
                    return Err(e);
                }
                // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID: this member's
                // offsets are stale (CommitFailedException): abort.
                other => return Err(TxnError::new(TxnErrorKind::Abortable, format!("TxnOffsetCommit: {other:?}"))),
            }
        }
        Err(TxnError::new(TxnErrorKind::Timeout, format!("TxnOffsetCommit got no answer within max.block.ms: {last}")))
    }

    /// Waits for every record of the transaction, then commits it (EndTxn). Returns once the
    /// coordinator has written its decision; the markers reach the partitions after that.
    pub async fn commit_transaction(&self) -> Result<(), TxnError> {
        self.check_not_fatal()?;
        if !self.in_transaction() {
            return Err(TxnError::new(TxnErrorKind::Fatal, "no transaction is open"));
        }
        self.flush().await;
        self.check_not_fatal()?;
        if let Some(why) = self.shared.acc.borrow().txn_abortable.clone() {
            return Err(TxnError::new(TxnErrorKind::Abortable, format!("a send of this transaction failed: {why}")));
        }
        self.end_txn(true).await
    }

    /// Drops what is not sent yet, waits for what is in flight, then aborts (EndTxn).
    pub async fn abort_transaction(&self) -> Result<(), TxnError> {
        self.check_not_fatal()?;
        if !self.in_transaction() {
            return Err(TxnError::new(TxnErrorKind::Fatal, "no transaction is open"));
        }
        self.shared.acc.borrow_mut().txn_aborting = true;
        loop {
            let space = self.shared.space.notified();
            let queued = self.shared.acc.borrow_mut().take_queued();
            for b in queued {
                b.fail(false, "the transaction was aborted before this batch was sent".into());
            }
            if self.shared.acc.borrow().in_flight() == 0 {
                break;
            }
            space.await;
        }
        self.shared.space.notify_waiters();
        self.end_txn(false).await?;
        // An unresolved sequence under an unchanged epoch (transaction version 1) needs a new
        // epoch before the next transaction (KIP-360).
        let stale = self.shared.acc.borrow().needs_bump;
        if stale {
            self.init_transactions().await?;
        }
        Ok(())
    }

    /// Waits until every record sent so far has its outcome.
    async fn flush(&self) {
        loop {
            let space = self.shared.space.notified();
            if self.shared.acc.borrow().pending_records() == 0 {
                return;
            }
            self.shared.wake.notify_one();
            space.await;
        }
    }

    async fn end_txn(&self, commit: bool) -> Result<(), TxnError> {
        let txn_id = self.txn_id()?;
        let started = self.shared.txn.borrow().started;
        if started {
            let (pid, epoch) = self.shared.acc.borrow().producer.unwrap_or((-1, -1));
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit);
            if commit {
                self.shared.txn.borrow_mut().commit_maybe_sent = true;
            }
            let next = self
                .call_coordinator(ApiKey::EndTxn, END_TXN_VERSION, RequestKind::EndTxn(req), self.deadline(), |resp| {
                    let ResponseKind::EndTxn(r) = resp else { return Step::Fail(TxnError::new(TxnErrorKind::Fatal, "expected EndTxn")) };
                    match ResponseError::try_from_code(r.error_code) {
                        None => Step::Done((r.producer_id.0, r.producer_epoch)),
                        Some(e) => classify_coordinator_error(e),
                    }
                })
                .await
                .map_err(|mut e| {
                    // A commit that went out once may have been applied, whatever came after.
                    e.may_have_committed |= commit;
                    e
                })?;
            let mut acc = self.shared.acc.borrow_mut();
            if next.0 >= 0 && next.1 >= 0 && Some(next) != acc.producer {
                // Transaction version 2: every transaction ends with a new epoch.
                acc.producer = Some(next);
                acc.needs_bump = false;
                acc.reset_sequences();
            }
        }
        let mut acc = self.shared.acc.borrow_mut();
        acc.txn_added = Some(Default::default());
        acc.txn_wanted.clear();
        acc.txn_abortable = None;
        acc.txn_aborting = false;
        let mut link = self.shared.txn.borrow_mut();
        link.in_txn = false;
        link.started = false;
        link.commit_maybe_sent = false;
        Ok(())
    }
}

/// The connection to this producer's transaction coordinator, found with FindCoordinator.
async fn coordinator(net: &Rc<dyn Network>, bootstrap: &[String], config: &ProducerConfig, shared: &Shared, txn_id: &str) -> Result<Rc<Pipeline>, ClientError> {
    if let Some(c) = shared.txn.borrow().coordinator.clone().filter(|c| !c.is_closed()) {
        return Ok(c);
    }
    let start = {
        let mut link = shared.txn.borrow_mut();
        link.bootstrap_next += 1;
        link.bootstrap_next
    };
    let pipe = find_coordinator(net, bootstrap, config, txn_id, 1, start).await?;
    shared.txn.borrow_mut().coordinator = Some(pipe.clone());
    Ok(pipe)
}

/// Asks a bootstrap broker (the `start`-th, round robin) who coordinates `key` and connects.
async fn find_coordinator(net: &Rc<dyn Network>, bootstrap: &[String], config: &ProducerConfig, key: &str, key_type: i8, start: usize) -> Result<Rc<Pipeline>, ClientError> {
    let n = bootstrap.len().max(1);
    let addr = bootstrap.get(start % n).cloned().ok_or_else(|| ClientError::Connect("no bootstrap servers".into()))?;
    let pipe = Pipeline::connect(net.as_ref(), &addr, &config.client_id, config.connection_setup_timeout_ms).await?;
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(key.to_string())).with_key_type(key_type);
    let resp = pipe.request(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &RequestKind::FindCoordinator(req), config.request_timeout_ms).await?;
    let ResponseKind::FindCoordinator(r) = resp else { return Err(ClientError::Protocol("expected FindCoordinator".into())) };
    if r.error_code != 0 {
        return Err(ClientError::Connect(format!("FindCoordinator({key}): error {}", r.error_code)));
    }
    let coord_addr = format!("{}:{}", r.host, r.port);
    Ok(Rc::new(Pipeline::connect(net.as_ref(), &coord_addr, &config.client_id, config.connection_setup_timeout_ms).await?))
}

/// The sender's part: AddPartitionsToTxn for partitions with queued batches that the
/// coordinator does not have in the transaction yet. Failures make the transaction abortable
/// (those partitions' batches fail) or, when retriable, are retried after `retry.backoff.ms`.
pub(crate) async fn add_wanted_partitions(net: &Rc<dyn Network>, bootstrap: &[String], config: &ProducerConfig, shared: &Rc<Shared>) {
    let Some(txn_id) = config.transactional_id.clone() else { return };
    let now = Instant::now();
    if shared.txn.borrow().add_retry_at.is_some_and(|t| t > now) {
        return;
    }
    let (wanted, producer) = {
        let acc = shared.acc.borrow();
        (acc.txn_wanted.iter().cloned().collect::<Vec<_>>(), acc.producer)
    };
    let Some((pid, epoch)) = producer else { return };
    if wanted.is_empty() || !shared.txn.borrow().in_txn {
        return;
    }
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for tp in &wanted {
        match topics.last_mut().filter(|t| t.name.as_str() == tp.topic) {
            Some(t) => t.partitions.push(tp.partition),
            None => topics.push(AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![tp.partition])),
        }
    }
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(txn_id.clone())))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let body = RequestKind::AddPartitionsToTxn(req);
    let outcome = match coordinator(net, bootstrap, config, shared, &txn_id).await {
        Err(e) => Err((true, e.to_string())),
        Ok(pipe) => match pipe.request(ApiKey::AddPartitionsToTxn, ADD_PARTITIONS_VERSION, &body, config.request_timeout_ms).await {
            Err(e) => Err((true, e.to_string())),
            Ok(ResponseKind::AddPartitionsToTxn(r)) => {
                let code = r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter()).map(|p| p.partition_error_code).find(|c| *c != 0).unwrap_or(0);
                match ResponseError::try_from_code(if r.error_code != 0 { r.error_code } else { code }) {
                    None => Ok(()),
                    Some(e) => match classify_coordinator_error::<()>(e) {
                        Step::Retry { forget } => Err((forget, format!("{e:?}"))),
                        Step::Fail(f) => {
                            if f.kind == TxnErrorKind::Fatal {
                                shared.txn.borrow_mut().fatal = Some(f.message.clone());
                            }
                            fail_partitions(shared, &wanted, &format!("AddPartitionsToTxn: {}", f.message));
                            return;
                        }
                        Step::Done(()) => Ok(()),
                    },
                }
            }
            Ok(_) => Err((true, "expected AddPartitionsToTxn".into())),
        },
    };
    match outcome {
        Ok(()) => {
            let mut acc = shared.acc.borrow_mut();
            for tp in &wanted {
                acc.txn_wanted.remove(tp);
                if let Some(added) = acc.txn_added.as_mut() {
                    added.insert(tp.clone());
                }
            }
            shared.txn.borrow_mut().started = true;
        }
        Err((forget, _why)) => {
            let mut link = shared.txn.borrow_mut();
            if forget {
                link.coordinator = None;
            }
            link.add_retry_at = Some(Instant::now() + Duration::from_millis(config.retry_backoff_ms.max(1)));
        }
    }
}

/// The batches queued for `tps` fail and the transaction becomes abortable.
fn fail_partitions(shared: &Shared, tps: &[TopicPartition], message: &str) {
    let mut acc = shared.acc.borrow_mut();
    acc.txn_abortable.get_or_insert_with(|| message.to_string());
    for tp in tps {
        acc.txn_wanted.remove(tp);
    }
    let batches = acc.take_queued_of(tps);
    drop(acc);
    for b in batches {
        b.fail(false, message.to_string());
    }
    shared.space.notify_waiters();
}
