//! The broker's async shell: the same code under both simulators and real tokio. It registers
//! with the controller and heartbeats, follows the metadata log, serves connections, runs one
//! replica fetcher per leader it follows and a ticker. It holds no protocol logic of its own.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{list_offset, ClientError, Connection, Pipeline, LATEST_TIMESTAMP};
use crate::controller::{decode, MetadataImage};
use crate::ids::{BrokerId, TopicPartition};
use crate::observe::Tracer;
use crate::seam::{BoxStream, Clock, Entropy, FramedStream, LocalFuture, Network, Storage};

use super::config::BrokerConfig;
use super::controller_link::{self, ControllerLink};
use super::core::{BrokerCore, Handled};
use super::metadata::{BrokerAddress, ClusterMetadata};
use super::replica_fetcher::{offset_for_leader_epoch_request, REPLICA_FETCH_VERSION};

/// Everything a broker process is started with.
pub struct BrokerEnv {
    pub id: BrokerId,
    /// The address to bind, e.g. `0.0.0.0:9092`.
    pub listen: String,
    /// The address clients and other brokers reach it at.
    pub advertised: BrokerAddress,
    pub cluster_id: String,
    /// Controller addresses (`host:port`).
    pub controllers: Vec<String>,
    pub config: BrokerConfig,
    pub net: Rc<dyn Network>,
    pub storage: Rc<dyn Storage>,
    pub entropy: Entropy,
    /// The wall clock (producer-state expiry compares it with batch timestamps).
    pub clock: Rc<dyn Clock>,
    pub trace: Tracer,
    /// Receives the partitions' state after every metadata change and tick (white-box checks).
    pub probe: Option<SnapshotProbe>,
    /// Receives the loaded groups' state at the same moments.
    pub group_probe: Option<GroupProbe>,
    /// A fault point for the harness: asked before each request is handled, with the request's
    /// API key and the peer's address; a returned future is awaited first (the request, and the
    /// connection behind it, wait). `None` outside simulation.
    pub request_hold: Option<RequestHold>,
}

/// See [`BrokerEnv::request_hold`].
pub type RequestHold = Rc<dyn Fn(i16, &str) -> Option<LocalFuture<'static, ()>>>;

/// Where a broker reports the groups it coordinates for observers.
pub type GroupProbe = Rc<dyn Fn(&[crate::group::GroupSnapshot])>;

/// Where a broker reports its partitions' state for observers.
pub type SnapshotProbe = Rc<dyn Fn(&[super::partition::PartitionSnapshot])>;

/// Shared between the broker's tasks (all on one thread).
pub(super) struct Shared {
    pub core: RefCell<BrokerCore>,
    /// Woken after every change to the core, so parked requests re-check.
    pub changed: Notify,
    pub started: Instant,
    pub clock: Rc<dyn Clock>,
    pub net: Rc<dyn Network>,
    pub id: BrokerId,
    pub advertised: BrokerAddress,
    pub cluster_id: String,
    pub controllers: Vec<String>,
    pub incarnation: Uuid,
    pub broker_epoch: Cell<i64>,
    /// The last metadata record offset this broker has replayed.
    pub metadata_offset: Cell<i64>,
    fetchers: RefCell<BTreeSet<BrokerId>>,
    /// Connections for the core's own requests to other brokers (markers, verification).
    links: RefCell<BTreeMap<BrokerId, Rc<Pipeline>>>,
    pub trace: Tracer,
    probe: Option<SnapshotProbe>,
    group_probe: Option<GroupProbe>,
    request_hold: Option<RequestHold>,
    /// `BrokerCore::watermarks` when observers were last told.
    reported_watermarks: Cell<u64>,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Tells observers when a high watermark or last stable offset moved (a fetch, an append,
    /// a marker), so that they see when records became readable.
    fn report_watermarks(&self) {
        if self.probe.is_some() && self.core.borrow().watermarks() != self.reported_watermarks.get() {
            self.report();
        }
    }

    fn report(&self) {
        self.reported_watermarks.set(self.core.borrow().watermarks());
        if let Some(probe) = &self.probe {
            probe(&self.core.borrow().snapshots());
        }
        if let Some(probe) = &self.group_probe {
            probe(&self.core.borrow().group_snapshots());
        }
    }
}

/// Runs a broker until its listener fails. Must run inside a `LocalSet`.
pub async fn run_broker(mut env: BrokerEnv) -> io::Result<()> {
    let started = Instant::now();
    let incarnation = Uuid::from_u64_pair(env.entropy.next_u64(), env.entropy.next_u64());
    let core = BrokerCore::open(env.id, env.config.clone(), env.storage, env.trace.clone(), incarnation.as_u64_pair().0);
    let mut listener = env.net.bind(&env.listen).await?;
    let shared = Rc::new(Shared {
        core: RefCell::new(core),
        changed: Notify::new(),
        started,
        clock: env.clock,
        net: env.net,
        id: env.id,
        advertised: env.advertised,
        cluster_id: env.cluster_id,
        controllers: env.controllers,
        incarnation,
        broker_epoch: Cell::new(-1),
        metadata_offset: Cell::new(-1),
        fetchers: RefCell::new(BTreeSet::new()),
        links: RefCell::new(BTreeMap::new()),
        trace: env.trace,
        probe: env.probe,
        group_probe: env.group_probe,
        request_hold: env.request_hold,
        reported_watermarks: Cell::new(0),
    });
    tokio::task::spawn_local(controller_link::lifecycle(shared.clone(), env.config.heartbeat_interval_ms));
    tokio::task::spawn_local(follow_metadata(shared.clone()));
    tokio::task::spawn_local(ticker(shared.clone()));
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::task::spawn_local(serve_connection(shared.clone(), stream, peer));
    }
}

/// Reads the metadata log from the controller and applies it, as a KRaft observer. Nothing
/// is applied until the replay has passed this incarnation's own registration record (whose
/// offset is its broker epoch, Kafka's "caught up"): that record comes after the fencing of
/// the previous incarnation, so a restarted broker never acts as leader in an epoch that
/// belonged to the process that died.
async fn follow_metadata(sh: Rc<Shared>) {
    let mut link = ControllerLink::new(&sh);
    let mut image = MetadataImage::default();
    let mut next = 0i64;
    let mut caught_up = false;
    loop {
        let (entries, _hw) = match link.fetch_metadata(&sh, next).await {
            Ok(e) => e,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        for e in &entries {
            if e.offset < next {
                continue;
            }
            if !e.payload.is_empty() {
                let record = decode(&e.payload).unwrap_or_else(|err| panic!("metadata record {} does not decode: {err}", e.offset));
                image.replay(e.offset, &record);
            }
            next = e.offset + 1;
        }
        sh.metadata_offset.set(next - 1);
        let epoch = sh.broker_epoch.get();
        caught_up |= epoch >= 0 && next > epoch;
        if !caught_up {
            continue;
        }
        let metadata = ClusterMetadata::from_image(&sh.cluster_id, &image);
        let applied = sh.core.borrow_mut().apply_metadata(sh.now_ms(), metadata);
        if let Err(e) = applied {
            sh.trace.emit(|| format!("apply-metadata-failed {e}"));
        }
        start_fetchers(&sh);
        sh.report();
        sh.changed.notify_waiters();
    }
}

fn start_fetchers(sh: &Rc<Shared>) {
    let leaders = sh.core.borrow().fetch_leaders();
    for leader in leaders {
        if sh.fetchers.borrow_mut().insert(leader) {
            tokio::task::spawn_local(fetcher(sh.clone(), leader));
        }
    }
}

async fn ticker(sh: Rc<Shared>) {
    let interval = Duration::from_millis(sh.core.borrow().tick_interval_ms().min(500));
    let expiry_check = sh.core.borrow().config.producer_id_expiration_check_interval_ms;
    let mut last_expiry_check = sh.now_ms();
    loop {
        tokio::time::sleep(interval).await;
        sh.core.borrow_mut().tick(sh.now_ms());
        if sh.now_ms() >= last_expiry_check + expiry_check {
            last_expiry_check = sh.now_ms();
            sh.core.borrow_mut().expire_producers(sh.clock.now_ms());
        }
        let alters = sh.core.borrow_mut().poll_alter_partitions();
        if !alters.is_empty() {
            tokio::task::spawn_local(controller_link::alter_partitions(sh.clone(), alters));
        }
        dispatch_outbound(&sh);
        sh.report();
        sh.changed.notify_waiters();
    }
}

/// Sends the core's requests to other brokers, each on its own task over a cached pipelined
/// connection, and hands every answer (or failure) back to the core.
fn dispatch_outbound(sh: &Rc<Shared>) {
    let outbound = sh.core.borrow_mut().poll_outbound();
    for o in outbound {
        let sh = sh.clone();
        tokio::task::spawn_local(async move {
            let reply = outbound_request(&sh, &o).await;
            if reply.is_err() {
                sh.links.borrow_mut().remove(&o.to);
            }
            sh.core.borrow_mut().on_outbound_reply(sh.now_ms(), o.token, reply);
            dispatch_outbound(&sh);
            sh.changed.notify_waiters();
        });
    }
}

async fn outbound_request(sh: &Rc<Shared>, o: &super::outbound::Outbound) -> Result<ResponseKind, String> {
    let cached = sh.links.borrow().get(&o.to).cloned().filter(|p| !p.is_closed());
    let pipe = match cached {
        Some(p) => p,
        None => {
            let addr = sh.core.borrow().metadata.brokers.get(&o.to).map(BrokerAddress::addr).ok_or_else(|| format!("no address for broker {}", o.to.0))?;
            let client_id = format!("broker-{}", sh.id.0);
            let timeout = sh.core.borrow().config.replica_socket_timeout_ms;
            let p = Rc::new(Pipeline::connect(sh.net.as_ref(), &addr, &client_id, timeout).await.map_err(|e| e.to_string())?);
            sh.links.borrow_mut().insert(o.to, p.clone());
            p
        }
    };
    pipe.request(o.api_key, o.version, &o.body, o.timeout_ms).await.map_err(|e| e.to_string())
}

/// Reads frames, answers them in order; a parked request holds the connection (as Kafka mutes
/// a channel while a request is in flight).
async fn serve_connection(sh: Rc<Shared>, stream: BoxStream, peer: String) {
    let mut stream = FramedStream::new(stream);
    loop {
        let Ok(Some(frame)) = stream.read_frame().await else { return };
        if let (Some(hold), Some(key)) = (&sh.request_hold, frame.get(..2)) {
            if let Some(wait) = hold(i16::from_be_bytes([key[0], key[1]]), &peer) {
                wait.await;
            }
        }
        let handled = sh.core.borrow_mut().handle_frame(sh.now_ms(), frame);
        let alters = sh.core.borrow_mut().poll_alter_partitions();
        if !alters.is_empty() {
            tokio::task::spawn_local(controller_link::alter_partitions(sh.clone(), alters));
        }
        dispatch_outbound(&sh);
        sh.report_watermarks();
        sh.changed.notify_waiters();
        let answer = match handled {
            Handled::Reply(b) => b,
            Handled::NoReply => continue,
            Handled::Close(_) => return,
            Handled::Parked { id, deadline_ms } => wait_parked(&sh, id, deadline_ms).await,
        };
        if stream.write_frame(&answer).await.is_err() {
            return;
        }
    }
}

async fn wait_parked(sh: &Shared, id: u64, deadline_ms: u64) -> bytes::Bytes {
    let deadline = sh.started + Duration::from_millis(deadline_ms);
    loop {
        // Registered before the check, so a change between the two is not missed.
        let changed = sh.changed.notified();
        if let Some(answer) = sh.core.borrow_mut().poll_parked(id, sh.now_ms()) {
            return answer;
        }
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Replicates every partition led by `leader`: fetch, append, repeat; reconnect on failure;
/// ends when no partition we follow is led by it any more.
async fn fetcher(sh: Rc<Shared>, leader: BrokerId) {
    let client_id = format!("replica-fetcher-{}", sh.id.0);
    let timeout = sh.core.borrow().config.replica_socket_timeout_ms;
    while sh.core.borrow().fetch_leaders().contains(&leader) {
        let addr = sh.core.borrow().metadata.brokers.get(&leader).map(BrokerAddress::addr);
        if let Some(addr) = addr {
            if let Ok(mut conn) = Connection::connect(sh.net.as_ref(), &addr, &client_id, timeout).await {
                while sh.core.borrow().fetch_leaders().contains(&leader) && fetch_once(&sh, &mut conn, leader, timeout).await.is_ok() {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sh.fetchers.borrow_mut().remove(&leader);
}

async fn fetch_once(sh: &Shared, conn: &mut Connection, leader: BrokerId, timeout: u64) -> Result<(), ClientError> {
    let req = sh.core.borrow().replica_fetch_request(leader, sh.now_ms());
    if req.topics.is_empty() {
        // Every partition from this leader is backing off after an error.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Ok(());
    }
    let wait = u64::try_from(req.max_wait_ms).unwrap_or(0);
    let resp = conn.request(ApiKey::Fetch, REPLICA_FETCH_VERSION, RequestKind::Fetch(req.clone()), timeout + wait).await?;
    let ResponseKind::Fetch(resp) = resp else {
        return Err(ClientError::Protocol("expected a Fetch response".into()));
    };
    let out_of_range = sh.core.borrow_mut().handle_replica_fetch_response(leader, &req, &resp, sh.now_ms());
    sh.changed.notify_waiters();
    for tp in out_of_range {
        let end = list_offset(conn, &tp, LATEST_TIMESTAMP, sh.id.0, 0, timeout).await?;
        sh.core.borrow_mut().truncate_follower(&tp, end);
    }
    // KIP-279: walk back epoch by epoch until the logs agree (bounded: epochs only go down).
    for _ in 0..64 {
        let queries = sh.core.borrow_mut().poll_epoch_queries();
        if queries.is_empty() {
            break;
        }
        for (tp, epoch) in queries {
            let answer = epoch_end_offset(sh, conn, &tp, epoch, timeout).await?;
            sh.core.borrow_mut().on_diverging_epoch(&tp, answer);
        }
    }
    Ok(())
}

/// Asks the leader where `epoch` ends in its log (OffsetForLeaderEpoch).
async fn epoch_end_offset(sh: &Shared, conn: &mut Connection, tp: &TopicPartition, epoch: i32, timeout: u64) -> Result<(i32, i64), ClientError> {
    let current = sh.core.borrow().partitions.get(tp).map_or(-1, |p| p.leader_epoch);
    let req = offset_for_leader_epoch_request(sh.id, tp, current, epoch);
    let ResponseKind::OffsetForLeaderEpoch(resp) = conn.request(ApiKey::OffsetForLeaderEpoch, 3, req, timeout).await? else {
        return Err(ClientError::Protocol("expected an OffsetForLeaderEpoch response".into()));
    };
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition == tp.partition && p.error_code == 0)
        .map(|p| (p.leader_epoch, p.end_offset))
        .ok_or_else(|| ClientError::Protocol(format!("no epoch end offset for {tp}")))
}
