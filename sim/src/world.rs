//! Builds a turmoil simulation from a scenario (brokers, producers and consumers as hosts, one
//! master seed for everything) and offers the fault verbs the harness applies to it. The only
//! code that names turmoil's `Builder` or `Sim`.
//!
//! Brokers' disks are in-memory `MemStorage`s owned here, not turmoil's file system: turmoil
//! keeps every unsynced write in a list that each read scans, and Kafka by default never
//! fsyncs, so a 60 s run became quadratic (240 s of wall time for 80 s simulated). The crash
//! semantics are the same: a `crash` keeps the page cache, a `kill` keeps only what was
//! fsynced plus, perhaps, a torn prefix of the unsynced tail.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stormlog::broker::{run_broker, BrokerAddress, BrokerEnv, GroupProbe, PartitionSnapshot, SnapshotProbe, OFFSETS_TOPIC};
use stormlog::group::GroupSnapshot;
use stormlog::controller::{run_controller, ControllerConfig, ControllerEnv};
use stormlog::ids::BrokerId;
use stormlog::observe::Tracer;
use stormlog::seam::{Clock, Entropy, MemStorage, Network, Storage};

use crate::engine::{SimClock, TurmoilNetwork};
use crate::history::History;
use crate::request_hold::RequestHolds;
use crate::scenario::{ConfigValue, Scenario, ScenarioError};
use crate::support::{broker_config, consumer_config, controller_config, producer_config};
use crate::trace::Trace;
use crate::wire::Wire;
use crate::workload::{sim_now_ms, ConsumerWork, ProducerWork};

pub const BROKER_PORT: u16 = 9092;
pub const CONTROLLER_PORT: u16 = 9093;
/// Controllers' node ids start here: KRaft node ids are unique across brokers and
/// controllers, and a broker's metadata fetch must not look like a voter's.
pub const CONTROLLER_ID_BASE: i32 = 3000;
/// Producers start once brokers have had time to come up.
const WARMUP_MS: u64 = 500;

/// Whether a node's software runs. A crashed process keeps its page cache; a killed machine
/// loses what it never fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Crashed,
    Killed,
}

/// What a node is, for fault targeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Broker,
    Controller,
    Producer,
    Consumer,
}

struct Node {
    role: Role,
    /// Closed while the node is down: a restarted host waits at it before starting.
    gate: Rc<Cell<bool>>,
    /// Set while the node is paused: its application loop (a client's sends, polls and
    /// processing) waits; its links are held.
    paused: Rc<Cell<bool>>,
    state: NodeState,
    /// A broker's disk, owned here so that it outlives the process.
    disk: Option<MemStorage>,
    kills: u64,
}

pub struct World<'a> {
    sim: turmoil::Sim<'a>,
    seed: u64,
    nodes: BTreeMap<String, Node>,
    cut: BTreeSet<(String, String)>,
    /// One-way cuts (from, to).
    cut_oneway: BTreeSet<(String, String)>,
    /// Links whose messages are held (queued, delivered on release).
    held: BTreeSet<(String, String)>,
    pub trace: Rc<RefCell<Trace>>,
    pub history: Rc<RefCell<History>>,
    /// Every Kafka frame that crossed the network, for the report's message diagram.
    pub wire: Rc<RefCell<Wire>>,
    /// Each broker's latest partition snapshots (what it believes: role, epoch, LEO, HW).
    pub snapshots: BTreeMap<String, Rc<RefCell<Vec<PartitionSnapshot>>>>,
    /// Each broker's latest view of the groups it coordinates.
    group_snapshots: BTreeMap<String, Rc<RefCell<Vec<GroupSnapshot>>>>,
    /// Set by any probe; the run checks invariants only when something changed.
    snapshots_changed: Rc<Cell<bool>>,
    /// How many times each node's software has started (a restart is a new incarnation).
    starts: BTreeMap<String, Rc<Cell<u64>>>,
    /// Controllers that last said they are the active one.
    active_controllers: Rc<RefCell<BTreeSet<String>>>,
    brokers: u32,
    /// `offsets.topic.num.partitions`: where a group's coordinator lives.
    offsets_partitions: u32,
    /// `transaction.state.log.num.partitions`: where a transactional id's coordinator lives.
    txn_partitions: u32,
    /// Each transactional producer process's transactional id.
    transactional_ids: BTreeMap<String, String>,
    /// Each broker's `hold-request` fault point.
    request_holds: BTreeMap<String, RequestHolds>,
    /// The wall clock of each broker and producer, which the `skew` fault moves. It lives
    /// here, so a restarted process keeps its machine's clock.
    clocks: BTreeMap<String, SimClock>,
}

/// Whether the link x-y joins the two sides (either way round); no sides means every link.
fn between(side_a: &[String], side_b: &[String], x: &str, y: &str) -> bool {
    let has = |side: &[String], n: &str| side.iter().any(|s| s == n);
    side_a.is_empty() || (has(side_a, x) && has(side_b, y)) || (has(side_a, y) && has(side_b, x))
}

/// A seed for `label`, derived from the run's master seed: independent streams per purpose.
pub fn derive_seed(master: u64, label: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(master ^ h).next_u64()
}

pub fn broker_name(id: u32) -> String {
    format!("broker-{id}")
}

pub fn controller_name(id: u32) -> String {
    format!("controller-{id}")
}

/// A topic's name and the replicas of each partition.
type TopicAssignment = (String, Vec<Vec<i32>>);

/// The scenario's topics as the controller creates them: replicas per partition. With consumer
/// groups, also `__consumer_offsets` (Kafka creates it on the first FindCoordinator; here it
/// exists from the start), `offsets.topic.num.partitions` partitions with
/// `offsets.topic.replication.factor` replicas (at most one per broker), spread round-robin.
fn topic_assignments(s: &Scenario) -> Result<Vec<TopicAssignment>, ScenarioError> {
    let mut topics: Vec<TopicAssignment> = s
        .topics
        .iter()
        .map(|t| (t.name.clone(), (0..t.partitions).map(|p| t.replicas(p, s.cluster.brokers).into_iter().map(|b| b as i32).collect()).collect()))
        .collect();
    if s.consumers.iter().any(|c| c.group.is_some()) {
        let partitions = broker_config(s)?.group.offsets_partitions;
        let brokers = s.cluster.brokers;
        let rf = s.cluster.config.get("offsets.topic.replication.factor").and_then(ConfigValue::as_i64).unwrap_or(3);
        let rf = u32::try_from(rf).unwrap_or(1).clamp(1, brokers);
        let assignment = (0..partitions).map(|p| (0..rf).map(|i| ((p + i) % brokers) as i32).collect()).collect();
        topics.push((OFFSETS_TOPIC.to_string(), assignment));
    }
    let transactional = s.producers.iter().any(|p| p.transactional) || s.consumers.iter().any(|c| c.commit == crate::scenario::CommitMode::Transactional);
    if transactional {
        let partitions = u32::try_from(broker_config(s)?.txn.partitions).unwrap_or(1);
        let brokers = s.cluster.brokers;
        let rf = s.cluster.config.get("transaction.state.log.replication.factor").and_then(ConfigValue::as_i64).unwrap_or(3);
        let rf = u32::try_from(rf).unwrap_or(1).clamp(1, brokers);
        let assignment = (0..partitions).map(|p| (0..rf).map(|i| ((p + i) % brokers) as i32).collect()).collect();
        topics.push((stormlog::broker::TXN_TOPIC.to_string(), assignment));
    }
    Ok(topics)
}

async fn wait_gate(gate: &Cell<bool>) {
    while !gate.get() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server process as a host runs it: wait until the node is up, say so, then serve.
async fn run_gated(gate: Rc<Cell<bool>>, trace: Tracer, serve: impl std::future::Future<Output = std::io::Result<()>>) -> turmoil::Result {
    wait_gate(&gate).await;
    trace.emit(|| "start".to_string());
    serve.await.map_err(|e| e.into())
}

fn node_tracer(trace: &Rc<RefCell<Trace>>, node: &str) -> Tracer {
    let (trace, node) = (trace.clone(), node.to_string());
    Tracer::new(Rc::new(move |line: &str| trace.borrow_mut().record(sim_now_ms(), &node, line)))
}

impl<'a> World<'a> {
    pub fn build(s: &Scenario, seed: u64) -> Result<World<'a>, ScenarioError> {
        let total_ms = s.duration_ms + s.heal_ms;
        let mut builder = turmoil::Builder::new();
        builder
            .simulation_duration(Duration::from_millis(total_ms + 60_000))
            .tick_duration(Duration::from_millis(1))
            .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .min_message_latency(Duration::from_millis(s.network.latency_ms.0))
            .max_message_latency(Duration::from_millis(s.network.latency_ms.1))
            .tcp_capacity(1024)
            .rng_seed(derive_seed(seed, "turmoil"));
        let mut world = World {
            sim: builder.build(),
            seed,
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            cut_oneway: BTreeSet::new(),
            held: BTreeSet::new(),
            trace: Rc::new(RefCell::new(Trace::default())),
            history: Rc::new(RefCell::new(History::new())),
            wire: Rc::new(RefCell::new(Wire::default())),
            snapshots: BTreeMap::new(),
            group_snapshots: BTreeMap::new(),
            snapshots_changed: Rc::new(Cell::new(false)),
            starts: BTreeMap::new(),
            active_controllers: Rc::new(RefCell::new(BTreeSet::new())),
            brokers: s.cluster.brokers,
            offsets_partitions: broker_config(s)?.group.offsets_partitions,
            txn_partitions: u32::try_from(broker_config(s)?.txn.partitions).unwrap_or(1),
            transactional_ids: BTreeMap::new(),
            request_holds: BTreeMap::new(),
            clocks: BTreeMap::new(),
        };
        world.add_controllers(s, seed)?;
        world.add_brokers(s, seed)?;
        world.add_producers(s, seed)?;
        world.add_consumers(s)?;
        Ok(world)
    }

    /// The simulated network with every stream tapped for the wire log.
    fn network(&self) -> TurmoilNetwork {
        TurmoilNetwork::tapped(self.wire.clone())
    }

    fn new_node(&mut self, name: &str, role: Role) -> Rc<Cell<bool>> {
        let gate = Rc::new(Cell::new(true));
        self.nodes.insert(name.to_string(), Node { role, gate: gate.clone(), paused: Rc::new(Cell::new(false)), state: NodeState::Up, disk: None, kills: 0 });
        gate
    }

    fn paused_flag(&self, name: &str) -> Rc<Cell<bool>> {
        self.nodes[name].paused.clone()
    }

    /// Counts a node's software starts (each a new incarnation), for the invariants.
    fn start_counter(&mut self, name: &str) -> Rc<Cell<u64>> {
        let starts = Rc::new(Cell::new(0u64));
        self.starts.insert(name.to_string(), starts.clone());
        starts
    }

    fn add_disk(&mut self, name: &str, role: Role) -> (Rc<Cell<bool>>, MemStorage) {
        let gate = self.new_node(name, role);
        let disk = MemStorage::new();
        self.nodes.get_mut(name).expect("just added").disk = Some(disk.clone());
        (gate, disk)
    }

    fn add_controllers(&mut self, s: &Scenario, seed: u64) -> Result<(), ScenarioError> {
        let config: ControllerConfig = controller_config(s)?;
        let voters: Vec<(i32, String)> = (0..s.cluster.controllers).map(|c| (CONTROLLER_ID_BASE + c as i32, format!("{}:{CONTROLLER_PORT}", controller_name(c)))).collect();
        let topics = topic_assignments(s)?;
        for c in 0..s.cluster.controllers {
            let name = controller_name(c);
            let (gate, disk) = self.add_disk(&name, Role::Controller);
            let (config, voters, topics, trace) = (config.clone(), voters.clone(), topics.clone(), node_tracer(&self.trace, &name));
            let starts = self.start_counter(&name);
            let (active, me) = (self.active_controllers.clone(), name.clone());
            let net = self.network();
            let on_active: Rc<dyn Fn(bool)> = Rc::new(move |is: bool| {
                let mut set = active.borrow_mut();
                if is {
                    set.insert(me.clone());
                } else {
                    set.remove(&me);
                }
            });
            self.sim.host(name.as_str(), move || {
                starts.set(starts.get() + 1);
                let env = ControllerEnv {
                    id: CONTROLLER_ID_BASE + c as i32,
                    listen: format!("0.0.0.0:{CONTROLLER_PORT}"),
                    voters: voters.clone(),
                    config: config.clone(),
                    topics: topics.clone(),
                    net: Rc::new(net.clone()) as Rc<dyn Network>,
                    storage: Rc::new(disk.clone()) as Rc<dyn Storage>,
                    entropy: Entropy::from_seed(derive_seed(seed, &format!("controller-{c}/{}", starts.get()))),
                    trace: trace.clone(),
                    on_active: Some(on_active.clone()),
                };
                run_gated(gate.clone(), trace.clone(), run_controller(env))
            });
        }
        Ok(())
    }

    fn add_brokers(&mut self, s: &Scenario, seed: u64) -> Result<(), ScenarioError> {
        let config = broker_config(s)?;
        let controllers: Vec<String> = (0..s.cluster.controllers).map(|c| format!("{}:{CONTROLLER_PORT}", controller_name(c))).collect();
        let cluster_id = format!("stormlog-{}", s.name);
        for b in 0..s.cluster.brokers {
            let name = broker_name(b);
            let (gate, disk) = self.add_disk(&name, Role::Broker);
            let snapshots = Rc::new(RefCell::new(Vec::new()));
            self.snapshots.insert(name.clone(), snapshots.clone());
            let changed = self.snapshots_changed.clone();
            let probe: SnapshotProbe = Rc::new(move |snaps: &[PartitionSnapshot]| {
                *snapshots.borrow_mut() = snaps.to_vec();
                changed.set(true);
            });
            let groups = Rc::new(RefCell::new(Vec::new()));
            self.group_snapshots.insert(name.clone(), groups.clone());
            let group_probe: GroupProbe = Rc::new(move |snaps: &[GroupSnapshot]| {
                *groups.borrow_mut() = snaps.to_vec();
            });
            let (config, controllers, cluster_id, trace) = (config.clone(), controllers.clone(), cluster_id.clone(), node_tracer(&self.trace, &name));
            let starts = self.start_counter(&name);
            let holds = RequestHolds::default();
            self.request_holds.insert(name.clone(), holds.clone());
            let clock = SimClock::default();
            self.clocks.insert(name.clone(), clock.clone());
            let advertised = BrokerAddress { host: name.clone(), port: BROKER_PORT };
            let net = self.network();
            self.sim.host(name.as_str(), move || {
                starts.set(starts.get() + 1);
                let env = BrokerEnv {
                    id: BrokerId(b as i32),
                    listen: format!("0.0.0.0:{BROKER_PORT}"),
                    advertised: advertised.clone(),
                    cluster_id: cluster_id.clone(),
                    controllers: controllers.clone(),
                    config: config.clone(),
                    net: Rc::new(net.clone()) as Rc<dyn Network>,
                    storage: Rc::new(disk.clone()) as Rc<dyn Storage>,
                    entropy: Entropy::from_seed(derive_seed(seed, &format!("broker-{b}/{}", starts.get()))),
                    clock: Rc::new(clock.clone()) as Rc<dyn Clock>,
                    trace: trace.clone(),
                    probe: Some(probe.clone()),
                    group_probe: Some(group_probe.clone()),
                    request_hold: Some(holds.hook(trace.clone())),
                };
                run_gated(gate.clone(), trace.clone(), run_broker(env))
            });
        }
        Ok(())
    }

    /// The broker that leads `topic/partition` now: the running one that says so in the
    /// highest leader epoch.
    pub fn current_leader(&self, topic: &str, partition: i32) -> Option<String> {
        self.snapshots
            .iter()
            .filter(|(name, _)| self.state(name) == Some(NodeState::Up))
            .filter_map(|(name, snaps)| {
                let snaps = snaps.borrow();
                let p = snaps.iter().find(|p| p.is_leader && p.tp.topic == topic && p.tp.partition == partition)?;
                Some((p.leader_epoch, name.clone()))
            })
            .max()
            .map(|(_, name)| name)
    }

    /// The broker coordinating the transactions of producer process `process` now: the leader
    /// of its transactional id's `__transaction_state` partition.
    pub fn current_txn_coordinator(&self, process: &str) -> Option<String> {
        let id = self.transactional_ids.get(process)?;
        self.current_leader(stormlog::broker::TXN_TOPIC, stormlog::group::partition_for(id, self.txn_partitions))
    }

    /// Moves the wall clocks of `targets` by `by_ms` (a negative value turns them back). Only
    /// what reads the wall clock sees it: producer-state expiry on brokers, record timestamps
    /// on producers; timers run on the simulation's time.
    pub fn skew(&mut self, targets: &[String], by_ms: i64, heal: bool) {
        for t in targets {
            if let Some(c) = self.clocks.get(t) {
                c.skew_by(by_ms);
            }
        }
        let verb = if heal { "heal" } else { "fault" };
        self.event(&targets.join(","), &format!("{verb} skew {by_ms:+} ms"));
    }

    /// The broker holds the next request of `api` from any of `peers` until `release_requests`.
    pub fn hold_request(&mut self, targets: &[String], peers: &[String], api: &str) {
        let key = crate::scenario::api_key(api).expect("validated api name");
        for t in targets {
            if let Some(h) = self.request_holds.get(t) {
                h.arm(key, api, peers);
            }
        }
        self.event(&targets.join(","), &format!("fault hold-request {api} from {}", peers.join(",")));
    }

    /// Requests held by the brokers are handled now.
    pub fn release_requests(&mut self, targets: &[String]) {
        for t in targets {
            if let Some(h) = self.request_holds.get(t) {
                h.release_all();
            }
        }
        self.event(&targets.join(","), "heal release-request");
    }

    /// The running controller that most recently became active, if any.
    pub fn active_controller(&self) -> Option<String> {
        self.active_controllers.borrow().iter().find(|n| self.state(n) == Some(NodeState::Up)).cloned()
    }

    /// The other replicas of `topic/partition` (brokers hosting it that do not lead it now).
    pub fn current_followers(&self, topic: &str, partition: i32) -> Vec<String> {
        let leader = self.current_leader(topic, partition);
        self.snapshots
            .iter()
            .filter(|(name, snaps)| Some(*name) != leader.as_ref() && snaps.borrow().iter().any(|p| p.tp.topic == topic && p.tp.partition == partition))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn broker_count(&self) -> u32 {
        self.brokers
    }

    /// Whether any broker reported new snapshots since the last call.
    pub fn take_snapshots_changed(&self) -> bool {
        self.snapshots_changed.replace(false)
    }

    /// Every broker's latest snapshots.
    pub fn snapshot_map(&self) -> BTreeMap<String, Vec<PartitionSnapshot>> {
        self.snapshots.iter().map(|(n, s)| (n.clone(), s.borrow().clone())).collect()
    }

    /// Each group as its current coordinator sees it: only the running broker that leads the
    /// group's offsets partition in the highest epoch speaks for it (a deposed coordinator that
    /// has not heard of its successor yet holds a stale view, not the group's state).
    pub fn coordinator_views(&self) -> Vec<(String, GroupSnapshot)> {
        let mut out = Vec::new();
        for (node, groups) in &self.group_snapshots {
            for g in groups.borrow().iter() {
                if self.current_leader(OFFSETS_TOPIC, g.partition).as_deref() == Some(node.as_str()) {
                    out.push((node.clone(), g.clone()));
                }
            }
        }
        out
    }

    /// The broker coordinating `group` now: the leader of its `__consumer_offsets` partition.
    pub fn current_coordinator(&self, group: &str) -> Option<String> {
        self.current_leader(OFFSETS_TOPIC, stormlog::group::partition_for(group, self.offsets_partitions))
    }

    /// How many times `node`'s software has started.
    pub fn incarnation(&self, node: &str) -> u64 {
        self.starts.get(node).map_or(0, |c| c.get())
    }

    /// The brokers' disks.
    pub fn broker_disks(&self) -> BTreeMap<String, MemStorage> {
        self.nodes.iter().filter(|(n, _)| n.starts_with("broker-")).filter_map(|(n, node)| node.disk.clone().map(|d| (n.clone(), d))).collect()
    }

    fn bootstrap(&self) -> Vec<String> {
        (0..self.brokers).map(|b| format!("{}:{BROKER_PORT}", broker_name(b))).collect()
    }

    fn add_producers(&mut self, s: &Scenario, seed: u64) -> Result<(), ScenarioError> {
        for (i, spec) in s.producers.iter().enumerate() {
            for n in 0..spec.count {
                let process = format!("{}-{n}", spec.name);
                let gate = self.new_node(&process, Role::Producer);
                let mut config = producer_config(s, i, n)?;
                let txn = spec.transactional.then(|| {
                    // The transactional id is the process's name: a restarted process fences
                    // its previous incarnation, as an application with a stable id does.
                    config.transactional_id = Some(process.clone());
                    self.transactional_ids.insert(process.clone(), process.clone());
                    crate::workload::TxnSettings { records_per_txn: spec.records_per_txn, abort_probability: spec.abort_probability, carry: Rc::default() }
                });
                let work = Rc::new(ProducerWork {
                    process: process.clone(),
                    topic: spec.topic.clone(),
                    messages: spec.messages,
                    rate_per_sec: spec.rate_per_sec,
                    keys: spec.keys,
                    start_ms: WARMUP_MS,
                    stop_ms: s.duration_ms,
                    restart_resend: spec.restart_resend,
                    config,
                    bootstrap: self.bootstrap(),
                    clock: self.clocks.entry(process.clone()).or_default().clone(),
                    history: self.history.clone(),
                    next_seq: Rc::new(Cell::new(0)),
                    unacked: Rc::new(RefCell::new(BTreeMap::new())),
                    entropy: Rc::new(RefCell::new(Entropy::from_seed(derive_seed(seed, &process)))),
                    paused: self.paused_flag(&process),
                    net: self.network(),
                    txn,
                });
                self.sim.host(process.as_str(), move || {
                    let (gate, work) = (gate.clone(), work.clone());
                    async move {
                        wait_gate(&gate).await;
                        work.run().await;
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                });
            }
        }
        Ok(())
    }

    fn add_consumers(&mut self, s: &Scenario) -> Result<(), ScenarioError> {
        for (i, spec) in s.consumers.iter().enumerate() {
            for n in 0..spec.count {
                let process = format!("{}-{n}", spec.name);
                let gate = self.new_node(&process, Role::Consumer);
                let txn = match (&spec.output_topic, spec.commit == crate::scenario::CommitMode::Transactional) {
                    (Some(out), true) => {
                        let producer = stormlog::client::ProducerConfig { client_id: format!("{process}-txn"), transactional_id: Some(format!("{process}-txn")), ..stormlog::client::ProducerConfig::default() };
                        Some(crate::workload::TransformSettings {
                            producer,
                            output_topic: out.clone(),
                            abort_probability: spec.abort_probability,
                            rewind_on_abort: spec.rewind_on_abort,
                            entropy: RefCell::new(Entropy::from_seed(derive_seed(self.seed, &format!("{process}/aborts")))),
                            carry: Rc::default(),
                        })
                    }
                    _ => None,
                };
                let work = Rc::new(ConsumerWork {
                    process: process.clone(),
                    group: spec.group.clone(),
                    topics: spec.topics.clone(),
                    processing_ms: spec.processing_ms,
                    commit: spec.commit,
                    threads: spec.threads,
                    start_ms: spec.start_ms,
                    config: consumer_config(s, i, n)?,
                    bootstrap: self.bootstrap(),
                    history: self.history.clone(),
                    paused: self.paused_flag(&process),
                    net: self.network(),
                    txn,
                });
                self.sim.host(process.as_str(), move || {
                    let (gate, work) = (gate.clone(), work.clone());
                    async move {
                        wait_gate(&gate).await;
                        work.run().await;
                        Ok(())
                    }
                });
            }
        }
        Ok(())
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.sim.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Advances the simulation by one tick.
    pub fn step(&mut self) -> Result<(), String> {
        self.sim.step().map(|_| ()).map_err(|e| e.to_string())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn nodes_with_role(&self, role: Role) -> Vec<String> {
        self.nodes.iter().filter(|(_, n)| n.role == role).map(|(k, _)| k.clone()).collect()
    }

    /// Running brokers that lead at least one partition now.
    pub fn current_leaders(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .filter(|(name, snaps)| self.state(name) == Some(NodeState::Up) && snaps.borrow().iter().any(|p| p.is_leader))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn state(&self, node: &str) -> Option<NodeState> {
        self.nodes.get(node).map(|n| n.state)
    }

    /// A stopped or restarted process is active for nothing, and believes nothing, until it
    /// says so again: its last reports belong to the incarnation that died.
    fn forget_activity(&self, node: &str) {
        self.active_controllers.borrow_mut().remove(node);
        if let Some(s) = self.snapshots.get(node) {
            s.borrow_mut().clear();
        }
        self.snapshots_changed.set(true);
    }

    fn event(&self, node: &str, what: &str) {
        self.trace.borrow_mut().record(self.elapsed_ms(), node, what);
    }

    /// Process crash: the software stops, the page cache survives.
    pub fn crash(&mut self, node: &str) {
        // A paused process that dies is no longer paused: its held links go back to normal.
        self.resume(node);
        let Some(n) = self.nodes.get_mut(node) else { return };
        if n.state != NodeState::Up {
            return;
        }
        n.gate.set(false);
        n.state = NodeState::Crashed;
        self.sim.bounce(node);
        self.forget_activity(node);
        self.event(node, "fault crash");
    }

    /// Machine crash: the software stops and everything not fsynced is lost; the tail being
    /// written may survive in part (a torn write), as the seed decides.
    pub fn kill(&mut self, node: &str) {
        self.resume(node);
        let Some(n) = self.nodes.get_mut(node) else { return };
        if n.state == NodeState::Killed {
            return;
        }
        n.gate.set(false);
        n.state = NodeState::Killed;
        n.kills += 1;
        if let Some(disk) = &n.disk {
            disk.crash(Some(derive_seed(self.seed, &format!("{node}/kill/{}", n.kills))));
        }
        self.sim.crash(node);
        self.forget_activity(node);
        self.event(node, "fault kill");
    }

    /// The disk loses its unsynced tail while the process keeps running (a failing disk or a
    /// lying cache): what the process wrote and did not fsync is gone from under it.
    pub fn disk_loss(&mut self, node: &str) {
        let Some(disk) = self.nodes.get(node).and_then(|n| n.disk.clone()) else { return };
        disk.lose_unsynced();
        self.event(node, "fault disk-loss");
    }

    /// Starts a stopped node again, or restarts a running one.
    pub fn restart(&mut self, node: &str) {
        let Some(n) = self.nodes.get_mut(node) else { return };
        let was = n.state;
        n.gate.set(true);
        n.state = NodeState::Up;
        // A crashed host is already waiting at its gate; a killed or running one starts anew.
        if was != NodeState::Crashed {
            self.sim.bounce(node);
        }
        self.forget_activity(node);
        self.event(node, "heal restart");
    }

    /// Cuts every link between the two sides, both ways.
    pub fn partition(&mut self, side_a: &[String], side_b: &[String]) {
        for a in side_a {
            for b in side_b.iter().filter(|b| *b != a) {
                let key = if a < b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
                if self.cut.insert(key) {
                    self.sim.partition(a.as_str(), b.as_str());
                }
            }
        }
        self.event(&side_a.join(","), &format!("fault partition from {}", side_b.join(",")));
    }

    /// Cuts the links from `from` to `to` only: messages the other way still arrive.
    pub fn partition_oneway(&mut self, from: &[String], to: &[String]) {
        for a in from {
            for b in to.iter().filter(|b| *b != a) {
                if self.cut_oneway.insert((a.clone(), b.clone())) {
                    self.sim.partition_oneway(a.as_str(), b.as_str());
                }
            }
        }
        self.event(&from.join(","), &format!("fault partition-oneway to {}", to.join(",")));
    }

    /// Holds the messages between the two sides (both ways) until `release`.
    pub fn hold(&mut self, side_a: &[String], side_b: &[String]) {
        self.hold_links(side_a, side_b);
        self.event(&side_a.join(","), &format!("fault hold with {}", side_b.join(",")));
    }

    /// Pause (a stop-the-world GC, a stalled VM): turmoil cannot stop one host's clock, so a
    /// pause is approximated as every link of the node held (what it sends and what is sent to
    /// it waits in the network, its sockets stay open) and, for clients, the application loop
    /// stopped. Its own timers still run meanwhile; their effects reach nobody until `resume`.
    pub fn pause(&mut self, node: &str) {
        let Some(n) = self.nodes.get(node) else { return };
        if n.paused.get() || n.state != NodeState::Up {
            return;
        }
        n.paused.set(true);
        let others: Vec<String> = self.nodes.keys().filter(|k| k.as_str() != node).cloned().collect();
        self.hold_links(&[node.to_string()], &others);
        self.event(node, "fault pause");
    }

    /// Ends a pause: held messages are delivered, the application loop goes on.
    pub fn resume(&mut self, node: &str) {
        let Some(n) = self.nodes.get(node) else { return };
        if !n.paused.get() {
            return;
        }
        n.paused.set(false);
        self.release_links(|x, y| x == node || y == node);
        self.event(node, "heal resume");
    }

    /// Holds every link between the two sides (both ways), once each.
    fn hold_links(&mut self, side_a: &[String], side_b: &[String]) {
        for a in side_a {
            for b in side_b.iter().filter(|b| *b != a) {
                let key = if a < b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
                if self.held.insert(key) {
                    self.sim.hold(a.as_str(), b.as_str());
                }
            }
        }
    }

    /// Delivers what was held on every held link `pick` chooses.
    fn release_links(&mut self, pick: impl Fn(&str, &str) -> bool) {
        let keys: Vec<(String, String)> = self.held.iter().filter(|(x, y)| pick(x, y)).cloned().collect();
        for (x, y) in keys {
            self.held.remove(&(x.clone(), y.clone()));
            self.sim.release(x.as_str(), y.as_str());
        }
    }

    /// Delivers what was held between the two sides; with no sides, on every held link.
    pub fn release(&mut self, side_a: &[String], side_b: &[String]) {
        self.release_links(|x, y| between(side_a, side_b, x, y));
        let who = if side_a.is_empty() { "all".to_string() } else { side_a.join(",") };
        self.event(&who, "heal release");
    }

    /// Repairs the links between the two sides (both kinds of cut); with no sides, every link.
    pub fn repair(&mut self, side_a: &[String], side_b: &[String]) {
        let healed: Vec<(String, String)> = self.cut.iter().filter(|(x, y)| between(side_a, side_b, x, y)).cloned().collect();
        for (x, y) in healed {
            self.cut.remove(&(x.clone(), y.clone()));
            self.sim.repair(x.as_str(), y.as_str());
        }
        let oneway: Vec<(String, String)> = self.cut_oneway.iter().filter(|(x, y)| between(side_a, side_b, x, y)).cloned().collect();
        for (x, y) in oneway {
            self.cut_oneway.remove(&(x.clone(), y.clone()));
            self.sim.repair_oneway(x.as_str(), y.as_str());
        }
        let who = if side_a.is_empty() { "all".to_string() } else { side_a.join(",") };
        self.event(&who, "heal repair");
    }

    /// Heal phase: every node up, every link repaired.
    pub fn heal_all(&mut self) {
        let paused: Vec<String> = self.nodes.iter().filter(|(_, n)| n.paused.get()).map(|(k, _)| k.clone()).collect();
        for node in paused {
            self.resume(&node);
        }
        let down: Vec<String> = self.nodes.iter().filter(|(_, n)| n.state != NodeState::Up).map(|(k, _)| k.clone()).collect();
        for node in down {
            self.restart(&node);
        }
        if !self.cut.is_empty() || !self.cut_oneway.is_empty() {
            self.repair(&[], &[]);
        }
        if !self.held.is_empty() {
            self.release(&[], &[]);
        }
        self.event("harness", "heal all");
    }
}
