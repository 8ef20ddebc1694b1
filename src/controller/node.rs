//! The controller's async shell: the Raft quorum node and the controller core behind one
//! listener. A driver task ticks Raft, replays committed records into the core, follows
//! leadership (activate / resign) and lets the core fence silent brokers. Requests are
//! served one at a time (the core allows one proposal in flight) and answered once their
//! records are replayed. Brokers read the metadata log through Fetch, as KRaft observers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use crate::observe::Tracer;
use crate::protocol::{api_versions_response_for, decode_request_for, encode_response, WireError, CONTROLLER_APIS};
use crate::raft::{Message, NodeId, RaftConfig, RaftNode, Role};
use crate::seam::{BoxStream, Entropy, FramedStream, Network, Storage};

use super::core::{ControllerConfig, ControllerCore, ControllerError};
use super::records::{decode, encode, MetadataRecord};
use super::quorum::{self, PeerQueue};
use super::requests;

/// How long a request waits for its records to commit before the broker is told to retry.
const COMMIT_WAIT_MS: u64 = 5_000;

/// Everything a controller process is started with.
pub struct ControllerEnv {
    pub id: i32,
    /// The address to bind, e.g. `0.0.0.0:9093`.
    pub listen: String,
    /// Every voter of the quorum, this one included: (id, `host:port`).
    pub voters: Vec<(i32, String)>,
    pub config: ControllerConfig,
    /// Topics to create once this controller is active, if they do not exist yet: (name,
    /// replicas per partition). Kafka's bootstrap records.
    pub topics: Vec<(String, Vec<Vec<i32>>)>,
    pub net: Rc<dyn Network>,
    pub storage: Rc<dyn Storage>,
    pub entropy: Entropy,
    pub trace: Tracer,
    /// Told whether this controller is the active one, whenever that changes (observers only).
    pub on_active: Option<Rc<dyn Fn(bool)>>,
}

/// Shared by the controller's tasks (one thread).
pub(super) struct Shared {
    pub id: i32,
    pub raft: RefCell<RaftNode>,
    pub core: RefCell<ControllerCore>,
    /// Woken whenever Raft or the core changed.
    pub changed: Notify,
    /// One request (or fencing tick) at a time: the core allows one proposal in flight.
    pub lock: Mutex<()>,
    pub started: Instant,
    pub trace: Tracer,
    topics: Vec<(String, Vec<Vec<i32>>)>,
    /// Requests waiting to go to each other voter.
    peers: BTreeMap<NodeId, Rc<PeerQueue>>,
    on_active: Option<Rc<dyn Fn(bool)>>,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn is_voter(&self, id: i32) -> bool {
        id == self.id || self.peers.contains_key(&id)
    }

    /// Sends Raft's outbound requests to their peers; returns a response addressed to
    /// `answering`, if Raft produced one (the caller writes it back on that connection).
    pub fn route_outbound(&self, answering: Option<NodeId>) -> Option<Message> {
        let outbound = self.raft.borrow_mut().poll_outbound();
        let mut answer = None;
        for (to, msg) in outbound {
            if is_response(&msg) {
                if answer.is_none() && Some(to) == answering {
                    answer = Some(msg);
                }
            } else if let Some(q) = self.peers.get(&to) {
                q.push(msg);
            }
        }
        answer
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.raft.borrow().role(), Role::Leader { .. })
    }

    /// Replays what Raft committed and follows leadership changes.
    fn apply_committed(&self, now_ms: u64) {
        let entries = self.raft.borrow_mut().poll_committed();
        for e in entries.iter().filter(|e| !e.payload.is_empty()) {
            let record = decode(&e.payload).unwrap_or_else(|err| panic!("committed metadata record {} does not decode: {err}", e.offset));
            self.trace.emit(|| format!("metadata {} {}", e.offset, describe(&record)));
            self.core.borrow_mut().replay(e.offset, &record);
        }
        let (leader, caught_up, epoch) = {
            let raft = self.raft.borrow();
            (matches!(raft.role(), Role::Leader { .. }), raft.high_watermark() >= raft.log_end_offset(), raft.epoch())
        };
        let active = self.core.borrow().is_active();
        if leader && caught_up && !active {
            self.core.borrow_mut().on_become_leader(now_ms);
            self.trace.emit(|| format!("controller-active epoch={epoch}"));
            self.on_active.as_ref().inspect(|f| f(true));
        } else if !leader && active {
            self.core.borrow_mut().on_resign();
            self.trace.emit(|| format!("controller-resigned epoch={epoch}"));
            self.on_active.as_ref().inspect(|f| f(false));
        }
    }

    /// Proposes `records` to Raft; the offset of the last one.
    fn propose(&self, records: &[MetadataRecord]) -> Result<i64, ControllerError> {
        let now = self.now_ms();
        let mut last = -1;
        for r in records {
            last = self.raft.borrow_mut().propose(now, encode(r)).map_err(|_| ControllerError::NotController)?;
        }
        Ok(last)
    }

    /// Waits until the record at `offset` is replayed; false if leadership or time ran out.
    async fn replayed(&self, offset: i64) -> bool {
        let deadline = self.started + Duration::from_millis(self.now_ms() + COMMIT_WAIT_MS);
        loop {
            let changed = self.changed.notified();
            if self.core.borrow().image().last_offset() >= offset && self.core.borrow().in_flight_record_count() == 0 {
                return true;
            }
            if !self.core.borrow().is_active() {
                return false;
            }
            tokio::select! {
                biased;
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Runs one request against the core: waits for its turn, proposes what the core asks
    /// for, and returns once those records are replayed.
    pub async fn with_core<T>(
        &self,
        f: impl FnOnce(&mut ControllerCore, i64, u64) -> Result<(Vec<MetadataRecord>, T), ControllerError>,
    ) -> Result<T, ControllerError> {
        let _turn = self.lock.lock().await;
        // A fencing tick may have left records in flight: let them replay first.
        let in_flight = self.core.borrow().in_flight_record_count() > 0;
        let last = self.raft.borrow().log_end_offset() - 1;
        if in_flight && !self.replayed(last).await {
            return Err(ControllerError::NotController);
        }
        let next_offset = self.raft.borrow().log_end_offset();
        let (records, out) = f(&mut self.core.borrow_mut(), next_offset, self.now_ms())?;
        if records.is_empty() {
            return Ok(out);
        }
        let last = self.propose(&records);
        self.changed.notify_waiters();
        match last {
            Ok(last) if self.replayed(last).await => Ok(out),
            _ => Err(ControllerError::NotController),
        }
    }
}

fn is_response(m: &Message) -> bool {
    matches!(m, Message::VoteResponse { .. } | Message::BeginQuorumEpochResponse { .. } | Message::EndQuorumEpochResponse { .. } | Message::FetchResponse { .. })
}

/// A short form of a record for the trace.
fn describe(r: &MetadataRecord) -> String {
    match r {
        MetadataRecord::RegisterBroker { broker_id, broker_epoch, .. } => format!("register broker-{broker_id} epoch={broker_epoch}"),
        MetadataRecord::UnfenceBroker { broker_id, .. } => format!("unfence broker-{broker_id}"),
        MetadataRecord::FenceBroker { broker_id, .. } => format!("fence broker-{broker_id}"),
        MetadataRecord::Topic { name, partitions } => format!("topic {name} partitions={partitions}"),
        MetadataRecord::Partition { topic, partition, isr, leader, leader_epoch, .. } => {
            format!("partition {topic}/{partition} leader={leader} epoch={leader_epoch} isr={isr:?}")
        }
        MetadataRecord::PartitionChange { topic, partition, isr, leader, leader_recovery_unclean } => {
            format!("change {topic}/{partition} leader={leader:?} isr={isr:?} unclean={leader_recovery_unclean}")
        }
    }
}

/// Runs a controller until its listener fails. Must run inside a `LocalSet`.
pub async fn run_controller(env: ControllerEnv) -> io::Result<()> {
    let started = Instant::now();
    let voter_ids: Vec<i32> = env.voters.iter().map(|(id, _)| *id).collect();
    let raft = RaftNode::open(RaftConfig::new(env.id, voter_ids), env.storage, env.entropy, 0)?;
    let mut listener = env.net.bind(&env.listen).await?;
    let peers: BTreeMap<NodeId, Rc<PeerQueue>> = env.voters.iter().filter(|(id, _)| *id != env.id).map(|(id, _)| (*id, Rc::new(PeerQueue::default()))).collect();
    let shared = Rc::new(Shared {
        id: env.id,
        raft: RefCell::new(raft),
        core: RefCell::new(ControllerCore::new(env.config)),
        changed: Notify::new(),
        lock: Mutex::new(()),
        started,
        trace: env.trace,
        topics: env.topics,
        peers,
        on_active: env.on_active,
    });
    for (id, addr) in env.voters.iter().filter(|(id, _)| *id != env.id) {
        let queue = shared.peers[id].clone();
        tokio::task::spawn_local(quorum::peer_sender(shared.clone(), *id, addr.clone(), env.net.clone(), queue));
    }
    tokio::task::spawn_local(driver(shared.clone()));
    loop {
        let (stream, _peer) = listener.accept().await?;
        tokio::task::spawn_local(serve_connection(shared.clone(), stream));
    }
}

async fn driver(sh: Rc<Shared>) {
    let mut topics_created = false;
    loop {
        let now = sh.now_ms();
        sh.raft.borrow_mut().tick(now);
        sh.apply_committed(now);
        // Responses only ever answer a request on its own connection; none are due here.
        drop(sh.route_outbound(None));
        if sh.core.borrow().is_active() {
            if !topics_created {
                topics_created = true;
                tokio::task::spawn_local(create_topics(sh.clone()));
            }
            fence_silent_brokers(&sh, now);
        }
        sh.changed.notify_waiters();
        let next = sh.raft.borrow().poll_timeout().min(sh.core.borrow().poll_timeout_ms().unwrap_or(u64::MAX)).min(now + 100).max(now + 1);
        let changed = sh.changed.notified();
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(sh.started + Duration::from_millis(next)) => {}
        }
    }
}

/// Lets the core fence brokers whose sessions expired, when no request holds the core.
fn fence_silent_brokers(sh: &Shared, now_ms: u64) {
    let Ok(_turn) = sh.lock.try_lock() else { return };
    let records = sh.core.borrow_mut().tick(now_ms);
    if !records.is_empty() && sh.propose(&records).is_err() {
        sh.trace.emit(|| "fencing proposal lost leadership".to_string());
    }
}

/// How long bootstrap topics wait for their replicas to register before being created anyway.
const TOPIC_CREATION_WAIT_MS: u64 = 10_000;

/// Creates the bootstrap topics, each once its replicas are registered and unfenced (as an
/// admin creates topics on a running cluster), so first leaders follow the assignment order
/// rather than whichever broker unfenced first; after a bounded wait, created regardless.
async fn create_topics(sh: Rc<Shared>) {
    let deadline = sh.now_ms() + TOPIC_CREATION_WAIT_MS;
    for (name, assignment) in sh.topics.clone() {
        if sh.core.borrow().image().topics().contains_key(&name) {
            continue;
        }
        let replicas: Vec<i32> = assignment.iter().flatten().copied().collect();
        while sh.now_ms() < deadline && !replicas.iter().all(|r| sh.core.borrow().image().is_unfenced(*r)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = sh.with_core(|core, _, _| core.handle_create_topic(&name, assignment.clone()).map(|r| (r, ()))).await;
        if let Err(e) = result {
            sh.trace.emit(|| format!("create-topic {name} failed: {e:?}"));
        }
    }
}

async fn serve_connection(sh: Rc<Shared>, stream: BoxStream) {
    let mut stream = FramedStream::new(stream);
    loop {
        let Ok(Some(frame)) = stream.read_frame().await else { return };
        let Some(answer) = handle_frame(&sh, frame).await else { return };
        if stream.write_frame(&answer).await.is_err() {
            return;
        }
    }
}

/// A request from another voter: handed to Raft, answered with what Raft answers.
fn quorum_request(sh: &Shared, body: &RequestKind) -> Option<ResponseKind> {
    let (from, msg) = quorum::from_request(body)?;
    let from = from.filter(|id| sh.is_voter(*id) && *id != sh.id)?;
    sh.raft.borrow_mut().handle_message(sh.now_ms(), from, msg);
    let answer = sh.route_outbound(Some(from));
    sh.changed.notify_waiters();
    answer.as_ref().and_then(quorum::to_response)
}

/// One request in, one response frame out; None closes the connection.
async fn handle_frame(sh: &Rc<Shared>, frame: Bytes) -> Option<Bytes> {
    let req = match decode_request_for(frame, CONTROLLER_APIS) {
        Ok(r) => r,
        Err(WireError::UnsupportedVersion { api_key, correlation_id, .. }) if api_key == ApiKey::ApiVersions as i16 => {
            let body = ResponseKind::ApiVersions(api_versions_response_for(CONTROLLER_APIS, ResponseError::UnsupportedVersion.code()));
            return encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).ok();
        }
        Err(_) => return None,
    };
    let version = req.header.request_api_version;
    if let Some(body) = quorum_request(sh, &req.body) {
        return encode_response(req.api_key, version, req.header.correlation_id, &body).ok();
    }
    let body = match req.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response_for(CONTROLLER_APIS, 0)),
        RequestKind::BrokerRegistration(r) => ResponseKind::BrokerRegistration(requests::broker_registration(sh, r).await),
        RequestKind::BrokerHeartbeat(r) => ResponseKind::BrokerHeartbeat(requests::broker_heartbeat(sh, r).await),
        RequestKind::AlterPartition(r) => ResponseKind::AlterPartition(requests::alter_partition(sh, r).await),
        RequestKind::Fetch(r) => ResponseKind::Fetch(requests::metadata_fetch(sh, r).await),
        _ => return None,
    };
    encode_response(req.api_key, version, req.header.correlation_id, &body).ok()
}
