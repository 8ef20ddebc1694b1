//! The consumer's side of the classic group protocol (KAFKA.md §1.12–1.13): find the
//! coordinator, join and sync (the leader runs the assignor), heartbeat from a background task,
//! leave when the application stops polling for `max.poll.interval.ms`, and commit offsets.
//!
//! One pipelined connection to the coordinator carries every group request (as Kafka's single
//! connection per node does), shared by `poll`, the heartbeat task and async commits.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, RequestKind,
    ResponseKind, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::client::assignor::{decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor, MemberSubscription};
use crate::client::error::ClientError;
use crate::client::pipeline::Pipeline;
use crate::ids::TopicPartition;
use crate::seam::Network;

const FIND_COORDINATOR_VERSION: i16 = 3;
const JOIN_GROUP_VERSION: i16 = 7;
const SYNC_GROUP_VERSION: i16 = 5;
const HEARTBEAT_VERSION: i16 = 4;
const LEAVE_GROUP_VERSION: i16 = 5;
const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 7;
const NO_GENERATION: i32 = -1;

/// How a commit was asked for (the history records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    Sync,
    Async,
    /// Auto-commit, at the start of `poll`, before a rebalance or on close.
    Auto,
}

impl CommitKind {
    pub fn name(self) -> &'static str {
        match self {
            CommitKind::Sync => "sync",
            CommitKind::Async => "async",
            CommitKind::Auto => "auto",
        }
    }
}

/// Why a commit did not succeed. `definite`: the coordinator surely stored nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitError {
    pub message: String,
    pub definite: bool,
}

/// What the application can observe of the group, as Kafka's rebalance listener and offset
/// commit callback let it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// The whole assignment changed: empty on revocation, the new partitions after a sync.
    Assigned { generation: i32, partitions: Vec<TopicPartition> },
    CommitStarted { id: u64, kind: CommitKind, offsets: Vec<(TopicPartition, i64)> },
    CommitFinished { id: u64, result: Result<(), CommitError> },
    /// The member left the group (e.g. `max.poll.interval.ms` passed without a poll).
    Left { reason: String },
}

pub type Listener = Rc<dyn Fn(&ConsumerEvent)>;

/// The group settings of `ConsumerConfig`.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub group_id: String,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub assignors: Vec<Assignor>,
    pub request_timeout_ms: u64,
    pub connection_setup_timeout_ms: u64,
    pub retry_backoff_ms: u64,
    /// `default.api.timeout.ms`: how long a sync commit keeps retrying.
    pub default_api_timeout_ms: u64,
    /// OffsetFetch asks for stable offsets (KIP-447: a read_committed consumer waits while a
    /// transaction that commits offsets for a partition is undecided).
    pub require_stable: bool,
}

struct MemberState {
    member_id: String,
    generation: i32,
    rejoin_needed: bool,
    coordinator: Option<Rc<Pipeline>>,
    last_poll: Instant,
    /// Bumped whenever a heartbeat task must stop (a new generation, leaving, closing).
    heartbeat_run: u64,
    /// The generation of the last assignment received (kept across a reset, for sticky).
    owned_generation: i32,
}

/// A group member shared by the consumer, its heartbeat task and its async commits.
pub struct GroupMember {
    pub settings: GroupSettings,
    net: Rc<dyn Network>,
    bootstrap: Vec<String>,
    client_id: String,
    state: RefCell<MemberState>,
    listener: RefCell<Option<Listener>>,
    next_commit_id: Cell<u64>,
    bootstrap_next: Cell<usize>,
}

/// The outcome of one join-and-sync round.
pub enum Joined {
    /// `leader`: this member computed the assignment (and must rejoin when the partition
    /// counts it used change, as Kafka's leader does).
    Assigned { generation: i32, partitions: Vec<TopicPartition>, leader: bool },
    /// Not yet (an error to retry after a backoff).
    Retry(String),
}

fn error_of(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

fn name(e: Option<ResponseError>) -> String {
    e.map_or_else(|| "NONE".to_string(), |e| format!("{e:?}"))
}

fn is_coordinator_error(e: ResponseError) -> bool {
    matches!(e, ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator | ResponseError::CoordinatorLoadInProgress)
}

impl GroupMember {
    pub fn new(net: Rc<dyn Network>, bootstrap: Vec<String>, client_id: String, settings: GroupSettings) -> Rc<GroupMember> {
        Rc::new(GroupMember {
            settings,
            net,
            bootstrap,
            client_id,
            state: RefCell::new(MemberState {
                member_id: String::new(),
                generation: NO_GENERATION,
                rejoin_needed: true,
                coordinator: None,
                last_poll: Instant::now(),
                heartbeat_run: 0,
                owned_generation: NO_GENERATION,
            }),
            listener: RefCell::new(None),
            next_commit_id: Cell::new(0),
            bootstrap_next: Cell::new(0),
        })
    }

    pub fn set_listener(&self, listener: Listener) {
        *self.listener.borrow_mut() = Some(listener);
    }

    pub(super) fn emit(&self, event: &ConsumerEvent) {
        let listener = self.listener.borrow().clone();
        if let Some(l) = listener {
            l(event);
        }
    }

    pub fn group_id(&self) -> &str {
        &self.settings.group_id
    }

    pub fn generation(&self) -> i32 {
        self.state.borrow().generation
    }

    pub fn member_id(&self) -> String {
        self.state.borrow().member_id.clone()
    }

    pub fn rejoin_needed(&self) -> bool {
        self.state.borrow().rejoin_needed
    }

    pub(super) fn polled(&self) {
        self.state.borrow_mut().last_poll = Instant::now();
    }

    fn forget_coordinator(&self) {
        self.state.borrow_mut().coordinator = None;
    }

    /// Kafka's resetGeneration: a member the coordinator no longer knows starts afresh.
    fn reset_generation(&self) {
        let mut st = self.state.borrow_mut();
        st.generation = NO_GENERATION;
        st.member_id.clear();
        st.rejoin_needed = true;
        st.heartbeat_run += 1;
    }

    /// Asks for a rebalance at the next poll; the current generation's heartbeats stop.
    pub fn request_rejoin(&self) {
        let mut st = self.state.borrow_mut();
        st.rejoin_needed = true;
        st.heartbeat_run += 1;
    }

    /// The coordinator connection, found with FindCoordinator through a bootstrap broker.
    async fn coordinator(&self) -> Result<Rc<Pipeline>, String> {
        if let Some(c) = self.state.borrow().coordinator.clone().filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let n = self.bootstrap.len().max(1);
        let addr = self.bootstrap.get(self.bootstrap_next.get() % n).cloned().ok_or("no bootstrap servers")?;
        self.bootstrap_next.set(self.bootstrap_next.get() + 1);
        let s = &self.settings;
        let pipe = Pipeline::connect(self.net.as_ref(), &addr, &self.client_id, s.connection_setup_timeout_ms).await.map_err(|e| e.to_string())?;
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(s.group_id.clone())).with_key_type(0);
        let resp = pipe.request(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &RequestKind::FindCoordinator(req), s.request_timeout_ms).await.map_err(|e| e.to_string())?;
        let ResponseKind::FindCoordinator(r) = resp else { return Err("expected FindCoordinator".into()) };
        if r.error_code != 0 {
            return Err(format!("FindCoordinator: {}", name(error_of(r.error_code))));
        }
        let coord_addr = format!("{}:{}", r.host, r.port);
        let coord = Rc::new(Pipeline::connect(self.net.as_ref(), &coord_addr, &self.client_id, s.connection_setup_timeout_ms).await.map_err(|e| e.to_string())?);
        self.state.borrow_mut().coordinator = Some(coord.clone());
        Ok(coord)
    }

    /// A request to the coordinator; a transport failure forgets the coordinator.
    async fn call(&self, key: ApiKey, version: i16, body: RequestKind, timeout_ms: u64) -> Result<ResponseKind, ClientError> {
        let pipe = self.coordinator().await.map_err(ClientError::Connect)?;
        let result = pipe.request(key, version, &body, timeout_ms).await;
        if result.is_err() {
            self.forget_coordinator();
        }
        result
    }

    /// JoinGroup then SyncGroup. The leader computes the assignment with the first assignor
    /// every member supports, from `partition_counts` of the subscribed topics.
    pub async fn join(self: &Rc<Self>, topics: &[String], owned: &[TopicPartition], partition_counts: &BTreeMap<String, i32>) -> Joined {
        let s = &self.settings;
        let metadata = encode_subscription(topics, owned, self.state.borrow().owned_generation);
        let protocols = s
            .assignors
            .iter()
            .map(|a| JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str(a.name())).with_metadata(metadata.clone()))
            .collect();
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(s.group_id.clone())))
            .with_session_timeout_ms(i32::try_from(s.session_timeout_ms).unwrap_or(i32::MAX))
            .with_rebalance_timeout_ms(i32::try_from(s.max_poll_interval_ms).unwrap_or(i32::MAX))
            .with_member_id(StrBytes::from_string(self.member_id()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(protocols);
        // Kafka waits for a join up to the rebalance timeout plus a margin.
        let timeout = s.request_timeout_ms.max(s.max_poll_interval_ms + 5_000);
        let resp = match self.call(ApiKey::JoinGroup, JOIN_GROUP_VERSION, RequestKind::JoinGroup(req), timeout).await {
            Ok(ResponseKind::JoinGroup(r)) => r,
            Ok(_) => return Joined::Retry("expected JoinGroup".into()),
            Err(e) => return Joined::Retry(format!("JoinGroup: {e}")),
        };
        match error_of(resp.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                self.state.borrow_mut().member_id = resp.member_id.to_string();
                return Box::pin(self.join(topics, owned, partition_counts)).await;
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                self.reset_generation();
                return Joined::Retry(format!("JoinGroup: {}", name(error_of(resp.error_code))));
            }
            Some(e) => {
                if is_coordinator_error(e) {
                    self.forget_coordinator();
                }
                return Joined::Retry(format!("JoinGroup: {e:?}"));
            }
        }
        let generation = resp.generation_id;
        let member_id = resp.member_id.to_string();
        let protocol = resp.protocol_name.as_ref().map(ToString::to_string).unwrap_or_default();
        let leader = resp.leader == resp.member_id;
        let assignments = if leader {
            let Some(assignor) = Assignor::from_config_name(&protocol) else {
                return Joined::Retry(format!("the group chose an unknown assignor {protocol}"));
            };
            let mut members = Vec::new();
            for m in &resp.members {
                match decode_subscription(m.member_id.as_str(), &m.metadata) {
                    Ok(sub) => members.push(sub),
                    Err(e) => return Joined::Retry(format!("member {} subscription: {e}", m.member_id)),
                }
            }
            self.assignments(assignor, partition_counts, &members)
        } else {
            Vec::new()
        };
        {
            let mut st = self.state.borrow_mut();
            st.member_id = member_id.clone();
            st.generation = generation;
        }
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(s.group_id.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_string(protocol)))
            .with_assignments(assignments);
        let resp = match self.call(ApiKey::SyncGroup, SYNC_GROUP_VERSION, RequestKind::SyncGroup(req), timeout).await {
            Ok(ResponseKind::SyncGroup(r)) => r,
            Ok(_) => return Joined::Retry("expected SyncGroup".into()),
            Err(e) => return Joined::Retry(format!("SyncGroup: {e}")),
        };
        match error_of(resp.error_code) {
            None => {}
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                self.reset_generation();
                return Joined::Retry(format!("SyncGroup: {}", name(error_of(resp.error_code))));
            }
            Some(e) => {
                if is_coordinator_error(e) {
                    self.forget_coordinator();
                }
                return Joined::Retry(format!("SyncGroup: {e:?}"));
            }
        }
        let partitions = match decode_assignment(&resp.assignment) {
            Ok(p) => p,
            Err(e) => return Joined::Retry(format!("assignment: {e}")),
        };
        let run = {
            let mut st = self.state.borrow_mut();
            st.rejoin_needed = false;
            st.heartbeat_run += 1;
            st.owned_generation = generation;
            st.last_poll = Instant::now();
            st.heartbeat_run
        };
        tokio::task::spawn_local(heartbeat_loop(Rc::downgrade(self), run));
        Joined::Assigned { generation, partitions, leader }
    }


    fn assignments(&self, assignor: Assignor, counts: &BTreeMap<String, i32>, members: &[MemberSubscription]) -> Vec<SyncGroupRequestAssignment> {
        assignor
            .assign(counts, members)
            .into_iter()
            .map(|(member, tps)| SyncGroupRequestAssignment::default().with_member_id(StrBytes::from_string(member)).with_assignment(encode_assignment(&tps)))
            .collect()
    }

    /// One heartbeat; false when the heartbeat task must stop.
    async fn heartbeat(&self, run: u64) -> bool {
        let (member_id, generation) = {
            let st = self.state.borrow();
            if st.heartbeat_run != run {
                return false;
            }
            (st.member_id.clone(), st.generation)
        };
        let s = &self.settings;
        if self.state.borrow().last_poll.elapsed() > Duration::from_millis(s.max_poll_interval_ms) {
            self.leave("consumer poll timeout has expired").await;
            return false;
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(s.group_id.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id));
        let code = match self.call(ApiKey::Heartbeat, HEARTBEAT_VERSION, RequestKind::Heartbeat(req), s.request_timeout_ms).await {
            Ok(ResponseKind::Heartbeat(r)) => r.error_code,
            _ => return true,
        };
        if self.state.borrow().heartbeat_run != run {
            return false;
        }
        match error_of(code) {
            None => true,
            Some(ResponseError::RebalanceInProgress) => {
                self.request_rejoin();
                false
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration | ResponseError::FencedInstanceId) => {
                self.reset_generation();
                false
            }
            Some(e) => {
                if is_coordinator_error(e) {
                    self.forget_coordinator();
                }
                true
            }
        }
    }

    /// LeaveGroup (best effort), then start afresh at the next poll.
    pub async fn leave(&self, reason: &str) {
        let member_id = self.member_id();
        self.reset_generation();
        if member_id.is_empty() {
            return;
        }
        self.emit(&ConsumerEvent::Left { reason: reason.to_string() });
        let s = &self.settings;
        let member = MemberIdentity::default().with_member_id(StrBytes::from_string(member_id)).with_reason(Some(StrBytes::from_string(reason.to_string())));
        let req = LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(s.group_id.clone()))).with_members(vec![member]);
        let _ = self.call(ApiKey::LeaveGroup, LEAVE_GROUP_VERSION, RequestKind::LeaveGroup(req), s.request_timeout_ms).await;
    }

    /// Committed offsets of `tps` (None where the group has none).
    pub async fn fetch_committed(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, Option<i64>>, String> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in tps {
            by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition);
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps))
            .collect();
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.settings.group_id.clone())))
            .with_topics(Some(topics))
            .with_require_stable(self.settings.require_stable);
        let resp = match self.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, RequestKind::OffsetFetch(req), self.settings.request_timeout_ms).await {
            Ok(ResponseKind::OffsetFetch(r)) => r,
            Ok(_) => return Err("expected OffsetFetch".into()),
            Err(e) => return Err(format!("OffsetFetch: {e}")),
        };
        if let Some(e) = error_of(resp.error_code) {
            if is_coordinator_error(e) {
                self.forget_coordinator();
            }
            return Err(format!("OffsetFetch: {e:?}"));
        }
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                if let Some(e) = error_of(p.error_code) {
                    return Err(format!("OffsetFetch {}/{}: {e:?}", t.name.as_str(), p.partition_index));
                }
                let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                out.insert(tp, (p.committed_offset >= 0).then_some(p.committed_offset));
            }
        }
        Ok(out)
    }

    /// Starts a commit: the listener hears of it now and of its outcome when it ends.
    pub fn start_commit(&self, kind: CommitKind, offsets: &BTreeMap<TopicPartition, i64>) -> u64 {
        let id = self.next_commit_id.get();
        self.next_commit_id.set(id + 1);
        self.emit(&ConsumerEvent::CommitStarted { id, kind, offsets: offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect() });
        id
    }

    pub fn finish_commit(&self, id: u64, result: &Result<(), CommitError>) {
        self.emit(&ConsumerEvent::CommitFinished { id, result: result.clone() });
    }

    /// OffsetCommit: once (`retry` false, as commitAsync), or retrying coordinator and
    /// transport errors until `default.api.timeout.ms` (commitSync).
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>, retry: bool) -> Result<(), CommitError> {
        let deadline = Instant::now() + Duration::from_millis(self.settings.default_api_timeout_ms);
        let mut maybe_applied = false;
        loop {
            match self.commit_once(offsets).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Final(message)) => return Err(CommitError { message, definite: !maybe_applied }),
                Err(Attempt::Retriable { message, maybe_applied: m }) => {
                    maybe_applied |= m;
                    if !retry || Instant::now() >= deadline {
                        return Err(CommitError { message, definite: !maybe_applied });
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(self.settings.retry_backoff_ms)).await;
        }
    }

    async fn commit_once(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), Attempt> {
        let (member_id, generation) = {
            let st = self.state.borrow();
            (st.member_id.clone(), st.generation)
        };
        // Kafka refuses locally when the member has no current generation (after it left the
        // group or while it rejoins): the commit would belong to nobody.
        if generation == NO_GENERATION {
            return Err(Attempt::Final("CommitFailedException: the member is not part of an active generation".into()));
        }
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            let p = OffsetCommitRequestPartition::default().with_partition_index(tp.partition).with_committed_offset(*offset).with_committed_leader_epoch(-1).with_committed_metadata(Some(StrBytes::from_static_str("")));
            by_topic.entry(tp.topic.as_str()).or_default().push(p);
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.settings.group_id.clone())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id))
            .with_topics(topics);
        let resp = match self.call(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, RequestKind::OffsetCommit(req), self.settings.request_timeout_ms).await {
            Ok(ResponseKind::OffsetCommit(r)) => r,
            Ok(_) => return Err(Attempt::Final("expected OffsetCommit".into())),
            Err(e) => return Err(Attempt::Retriable { maybe_applied: e.is_indefinite(), message: format!("OffsetCommit: {e}") }),
        };
        let code = resp.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code).find(|c| *c != 0);
        match code.and_then(error_of) {
            None if code.is_none() => Ok(()),
            None => Err(Attempt::Final(format!("OffsetCommit: error code {code:?}"))),
            Some(e @ (ResponseError::UnknownMemberId | ResponseError::IllegalGeneration)) => {
                self.reset_generation();
                Err(Attempt::Final(format!("CommitFailedException: {e:?}")))
            }
            Some(ResponseError::RebalanceInProgress) => {
                self.request_rejoin();
                Err(Attempt::Final("RebalanceInProgressException".into()))
            }
            // A timeout on the coordinator's append may still have stored the offsets.
            Some(e @ (ResponseError::RequestTimedOut | ResponseError::NotEnoughReplicas | ResponseError::NotEnoughReplicasAfterAppend)) => {
                Err(Attempt::Retriable { maybe_applied: true, message: format!("OffsetCommit: {e:?}") })
            }
            Some(e) if is_coordinator_error(e) => {
                self.forget_coordinator();
                Err(Attempt::Retriable { maybe_applied: false, message: format!("OffsetCommit: {e:?}") })
            }
            Some(e) => Err(Attempt::Final(format!("OffsetCommit: {e:?}"))),
        }
    }

    /// Stops heartbeating for good (the consumer closes).
    pub fn stop(&self) {
        self.state.borrow_mut().heartbeat_run += 1;
    }
}

enum Attempt {
    Final(String),
    Retriable { message: String, maybe_applied: bool },
}

/// Heartbeats every `heartbeat.interval.ms` while generation `run` lasts; also the place where
/// a consumer whose application stopped polling leaves the group (KIP-62).
async fn heartbeat_loop(member: Weak<GroupMember>, run: u64) {
    loop {
        let interval = match member.upgrade() {
            Some(m) => m.settings.heartbeat_interval_ms,
            None => return,
        };
        tokio::time::sleep(Duration::from_millis(interval)).await;
        let Some(m) = member.upgrade() else { return };
        if !m.heartbeat(run).await {
            return;
        }
    }
}
