//! `stormlog serve`: a real cluster on localhost (DESIGN.md §9). The same `run_broker` and
//! `run_controller` the simulator runs, wired to real TCP (`TokioNetwork`), real files
//! (`StdStorage`) and the system clock, every node a task on one current-thread runtime.
//! `--node NAME` runs one node of the same cluster alone, so a test can start each node as its
//! own process and SIGKILL one of them.
//!
//! The layout is fixed by the flags, so every process of a cluster agrees on it: broker `b`
//! listens on `port + b`, controller `c` on `port + 100 + c`, each node keeps its files in
//! `data-dir/<node>`. Configuration keys are Kafka's and are checked as a scenario's
//! `[cluster.config]` is; topics are created by the controller at start, as the simulator's
//! are, together with `__consumer_offsets` and `__transaction_state`.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
use stormlog::broker::{run_broker, BrokerAddress, BrokerEnv, OFFSETS_TOPIC, TXN_TOPIC};
use stormlog::client::Connection;
use stormlog::controller::{run_controller, ControllerEnv};
use stormlog::ids::BrokerId;
use stormlog::observe::Tracer;
use stormlog::seam::{Clock, Entropy, Network, StdStorage, Storage, SystemClock, TokioNetwork};

use crate::scenario::{ConfigValue, Scenario, ScenarioError};
use crate::support::{broker_config, controller_config};
use crate::world::{broker_name, controller_name, derive_seed, CONTROLLER_ID_BASE};

/// Controllers listen this far above `--port`.
pub const CONTROLLER_PORT_OFFSET: u16 = 100;
const HOST: &str = "127.0.0.1";

/// What `stormlog serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub brokers: u32,
    pub controllers: u32,
    pub port: u16,
    pub data_dir: PathBuf,
    /// `name:partitions:replication_factor`
    pub topics: Vec<String>,
    /// `key=value`, Kafka's broker keys
    pub config: Vec<String>,
    /// Run only this node (`broker-1`, `controller-0`).
    pub node: Option<String>,
    /// Trace lines to stderr.
    pub trace: bool,
}

/// The cluster the options describe, checked like a scenario before anything starts.
struct Cluster {
    opts: ServeOptions,
    scenario: Scenario,
}

impl Cluster {
    fn broker_addr(&self, b: u32) -> String {
        format!("{HOST}:{}", self.opts.port + b as u16)
    }

    fn controller_addr(&self, c: u32) -> String {
        format!("{HOST}:{}", self.opts.port + CONTROLLER_PORT_OFFSET + c as u16)
    }

    fn bootstrap(&self) -> String {
        (0..self.opts.brokers).map(|b| self.broker_addr(b)).collect::<Vec<_>>().join(",")
    }

    fn node_names(&self) -> Vec<String> {
        let controllers = (0..self.opts.controllers).map(controller_name);
        controllers.chain((0..self.opts.brokers).map(broker_name)).collect()
    }
}

/// Runs `stormlog serve` until Ctrl-C (or SIGTERM); returns the exit code.
pub fn cmd_serve(opts: ServeOptions) -> Result<i32, ScenarioError> {
    let cluster = Rc::new(check(opts)?);
    let nodes = match &cluster.opts.node {
        Some(n) if cluster.node_names().contains(n) => vec![n.clone()],
        Some(n) => return Err(ScenarioError::new("serve", "--node", format!("one of {:?}, found {n:?}", cluster.node_names()))),
        None => cluster.node_names(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ScenarioError::new("serve", "", format!("a tokio runtime ({e})")))?;
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&runtime, serve(cluster, nodes));
    Ok(code)
}

async fn serve(cluster: Rc<Cluster>, nodes: Vec<String>) -> i32 {
    let started = tokio::time::Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, NodeEnd)>();
    for name in &nodes {
        let storage = match StdStorage::new(cluster.opts.data_dir.join(name)) {
            Ok(s) => Rc::new(s) as Rc<dyn Storage>,
            Err(e) => {
                eprintln!("error: data directory {}: {e}", cluster.opts.data_dir.join(name).display());
                return crate::cli::EXIT_BAD_INPUT;
            }
        };
        let node = tokio::task::spawn_local(start_node(&cluster, name, storage, tracer(cluster.opts.trace, name, started)));
        let (tx, name) = (done_tx.clone(), name.clone());
        tokio::task::spawn_local(async move {
            let end = match node.await {
                Ok(result) => NodeEnd::Stopped(result),
                Err(_) => NodeEnd::Panicked,
            };
            let _ = tx.send((name, end));
        });
    }
    println!("stormlog serve: {} ({}), data in {}", nodes.join(" "), describe_addrs(&cluster, &nodes), cluster.opts.data_dir.display());
    if cluster.opts.node.is_none() {
        println!("bootstrap {}", cluster.bootstrap());
        tokio::task::spawn_local(announce_ready(cluster.clone()));
    }
    tokio::select! {
        biased;
        signal = shutdown_signal() => {
            println!("stormlog serve: {signal}, stopping");
            0
        }
        Some((name, end)) = done_rx.recv() => match end {
            // A listener that cannot bind (a port in use) or fails: bad input, not a bug.
            NodeEnd::Stopped(result) => {
                eprintln!("error: {name} stopped: {result:?}");
                crate::cli::EXIT_BAD_INPUT
            }
            NodeEnd::Panicked => {
                eprintln!("error: {name} panicked (a failed assertion is a bug found)");
                crate::cli::EXIT_PANIC
            }
        }
    }
}

/// How a node's task ended: its shell returned (only when its listener fails), or it panicked.
enum NodeEnd {
    Stopped(std::io::Result<()>),
    Panicked,
}

fn describe_addrs(cluster: &Cluster, nodes: &[String]) -> String {
    nodes.iter().map(|n| node_addr(cluster, n)).collect::<Vec<_>>().join(" ")
}

fn node_addr(cluster: &Cluster, name: &str) -> String {
    let index = |prefix: &str| name.strip_prefix(prefix).and_then(|i| i.parse::<u32>().ok());
    match (index("broker-"), index("controller-")) {
        (Some(b), _) => cluster.broker_addr(b),
        (_, Some(c)) => cluster.controller_addr(c),
        _ => unreachable!("node names come from node_names"),
    }
}

/// Ctrl-C or SIGTERM: the runtime stops, every node's tasks are dropped. What the nodes wrote
/// is in the files (the page cache survives a process exit); a restart replays it.
async fn shutdown_signal() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

fn tracer(on: bool, node: &str, started: tokio::time::Instant) -> Tracer {
    if !on {
        return Tracer::off();
    }
    let node = node.to_string();
    Tracer::new(Rc::new(move |line: &str| eprintln!("{:>9} {node} {line}", started.elapsed().as_millis())))
}

/// A seed no earlier run of this node used: each start is a new incarnation (its member ids,
/// its broker incarnation id), as a restarted process in the simulator gets a new seed.
fn fresh_seed(node: &str) -> u64 {
    let now = u64::try_from(SystemClock.now_ms()).unwrap_or(0);
    derive_seed(now ^ (u64::from(std::process::id()) << 40), node)
}

fn start_node(cluster: &Cluster, name: &str, storage: Rc<dyn Storage>, trace: Tracer) -> stormlog::seam::LocalFuture<'static, std::io::Result<()>> {
    let net = Rc::new(TokioNetwork) as Rc<dyn Network>;
    let entropy = Entropy::from_seed(fresh_seed(name));
    if let Some(c) = name.strip_prefix("controller-").and_then(|i| i.parse::<u32>().ok()) {
        let env = ControllerEnv {
            id: CONTROLLER_ID_BASE + c as i32,
            listen: cluster.controller_addr(c),
            voters: (0..cluster.opts.controllers).map(|v| (CONTROLLER_ID_BASE + v as i32, cluster.controller_addr(v))).collect(),
            config: controller_config(&cluster.scenario).expect("checked in check()"),
            topics: topic_assignments(cluster),
            net,
            storage,
            entropy,
            trace,
            on_active: None,
        };
        return Box::pin(run_controller(env));
    }
    let b = name.strip_prefix("broker-").and_then(|i| i.parse::<u32>().ok()).expect("node names come from node_names");
    let env = BrokerEnv {
        id: BrokerId(b as i32),
        listen: cluster.broker_addr(b),
        advertised: BrokerAddress { host: HOST.to_string(), port: cluster.opts.port + b as u16 },
        cluster_id: "stormlog".to_string(),
        controllers: (0..cluster.opts.controllers).map(|c| cluster.controller_addr(c)).collect(),
        config: broker_config(&cluster.scenario).expect("checked in check()"),
        net,
        storage,
        entropy,
        clock: Rc::new(SystemClock) as Rc<dyn Clock>,
        trace,
        probe: None,
        group_probe: None,
        request_hold: None,
    };
    Box::pin(run_broker(env))
}

/// The topics to create: the `--topic`s, then the internal topics with Kafka's replication
/// factor for them (3, at most the number of brokers) unless configured.
fn topic_assignments(cluster: &Cluster) -> Vec<(String, Vec<Vec<i32>>)> {
    let s = &cluster.scenario;
    let brokers = s.cluster.brokers;
    let mut topics: Vec<(String, Vec<Vec<i32>>)> =
        s.topics.iter().map(|t| (t.name.clone(), (0..t.partitions).map(|p| t.replicas(p, brokers).into_iter().map(|b| b as i32).collect()).collect())).collect();
    let config = broker_config(s).expect("checked in check()");
    let internal = [
        (OFFSETS_TOPIC, config.group.offsets_partitions, "offsets.topic.replication.factor"),
        (TXN_TOPIC, u32::try_from(config.txn.partitions).unwrap_or(1), "transaction.state.log.replication.factor"),
    ];
    for (name, partitions, rf_key) in internal {
        let rf = s.cluster.config.get(rf_key).and_then(ConfigValue::as_i64).unwrap_or(3);
        let rf = u32::try_from(rf).unwrap_or(1).clamp(1, brokers);
        topics.push((name.to_string(), (0..partitions).map(|p| (0..rf).map(|i| ((p + i) % brokers) as i32).collect()).collect()));
    }
    topics
}

/// Reads the flags as a scenario's cluster, so keys and topics get the same checks and errors.
fn check(opts: ServeOptions) -> Result<Cluster, ScenarioError> {
    if opts.brokers == 0 || opts.brokers > u32::from(CONTROLLER_PORT_OFFSET) || opts.controllers == 0 {
        return Err(ScenarioError::new("serve", "--brokers/--controllers", format!("1..={CONTROLLER_PORT_OFFSET} brokers and at least 1 controller")));
    }
    if u32::from(opts.port) + u32::from(CONTROLLER_PORT_OFFSET) + opts.controllers > u32::from(u16::MAX) {
        return Err(ScenarioError::new("serve", "--port", "a port that leaves room for every node"));
    }
    let text = scenario_text(&opts)?;
    let scenario = Scenario::parse("serve", &text)?;
    broker_config(&scenario)?;
    controller_config(&scenario)?;
    Ok(Cluster { opts, scenario })
}

fn scenario_text(opts: &ServeOptions) -> Result<String, ScenarioError> {
    // Transaction version 1: real clients (librdkafka, kafka-python, and the Java client unless
    // ApiVersions finalizes the `transaction.version` feature, which we do not advertise) keep
    // their producer epoch across transactions; TV2's bump on every EndTxn would fence them.
    let mut text = format!(
        "name = \"serve\"\nduration_ms = 1000\n[expect]\noutcome = \"clean\"\n[behaviour]\ntxn_same_epoch_across_transactions = true\n[cluster]\nbrokers = {}\ncontrollers = {}\n[cluster.config]\n",
        opts.brokers, opts.controllers
    );
    for kv in &opts.config {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(ScenarioError::new("serve", "--config", format!("key=value, found {kv:?}")));
        };
        let value = match v.trim() {
            "true" | "false" => v.trim().to_string(),
            n if n.parse::<i64>().is_ok() => n.to_string(),
            s => toml::Value::String(s.to_string()).to_string(),
        };
        text.push_str(&format!("{} = {value}\n", toml::Value::String(k.trim().to_string())));
    }
    for t in &opts.topics {
        let parts: Vec<&str> = t.split(':').collect();
        let [name, partitions, rf] = parts[..] else {
            return Err(ScenarioError::new("serve", "--topic", format!("name:partitions:replication_factor, found {t:?}")));
        };
        let (Ok(partitions), Ok(rf)) = (partitions.parse::<u32>(), rf.parse::<u32>()) else {
            return Err(ScenarioError::new("serve", "--topic", format!("name:partitions:replication_factor, found {t:?}")));
        };
        text.push_str(&format!("[[topics]]\nname = {}\npartitions = {partitions}\nreplication_factor = {rf}\n", toml::Value::String(name.to_string())));
    }
    Ok(text)
}

/// Prints `ready` once every broker answers Metadata and every topic's partitions have
/// leaders: clients started after that line find the whole cluster.
async fn announce_ready(cluster: Rc<Cluster>) {
    let expected: Vec<(String, usize)> = topic_assignments(&cluster).into_iter().map(|(n, a)| (n, a.len())).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut all = true;
        for b in 0..cluster.opts.brokers {
            all &= broker_ready(&cluster.broker_addr(b), cluster.opts.brokers as usize, &expected).await;
        }
        if all {
            println!("ready");
            return;
        }
    }
}

async fn broker_ready(addr: &str, brokers: usize, expected: &[(String, usize)]) -> bool {
    let Ok(mut conn) = Connection::connect(&TokioNetwork, addr, "stormlog-serve", 1_000).await else { return false };
    let req = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
    let Ok(ResponseKind::Metadata(meta)) = conn.request(ApiKey::Metadata, 9, req, 2_000).await else { return false };
    let led = |name: &str, n: usize| {
        meta.topics.iter().any(|t| t.name.as_ref().is_some_and(|x| x.as_str() == name) && t.error_code == 0 && t.partitions.len() == n && t.partitions.iter().all(|p| p.leader_id.0 >= 0))
    };
    meta.brokers.len() == brokers && expected.iter().all(|(name, n)| led(name, *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(topics: &[&str], config: &[&str]) -> ServeOptions {
        ServeOptions {
            brokers: 3,
            controllers: 1,
            port: 9092,
            data_dir: PathBuf::from("unused"),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            config: config.iter().map(|c| c.to_string()).collect(),
            node: None,
            trace: false,
        }
    }

    #[test]
    fn topic_flags_become_bootstrap_topics_next_to_the_internal_ones() {
        let cluster = check(opts(&["orders:2:3", "solo:1:1"], &["offsets.topic.num.partitions=4", "transaction.state.log.replication.factor=1"])).unwrap();
        let topics = topic_assignments(&cluster);
        let names: Vec<&str> = topics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["orders", "solo", OFFSETS_TOPIC, TXN_TOPIC]);
        assert_eq!(topics[0].1, vec![vec![0, 1, 2], vec![1, 2, 0]]);
        assert_eq!(topics[1].1, vec![vec![0]]);
        assert_eq!(topics[2].1.len(), 4);
        assert!(topics[2].1.iter().all(|r| r.len() == 3));
        assert!(topics[3].1.iter().all(|r| r.len() == 1));
        assert_eq!((cluster.bootstrap(), cluster.controller_addr(0)), ("127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094".to_string(), "127.0.0.1:9192".to_string()));
    }

    #[test]
    fn serve_speaks_transaction_version_1_and_takes_kafka_keys() {
        let cluster = check(opts(&[], &["min.insync.replicas=2", "message.max.bytes=2000"])).unwrap();
        let config = broker_config(&cluster.scenario).unwrap();
        assert!(!config.txn.epoch_bump_per_txn);
        assert_eq!((config.min_insync_replicas, config.message_max_bytes), (2, 2000));
    }

    #[test]
    fn malformed_topics_unknown_keys_and_impossible_replication_are_bad_input() {
        for (topics, config) in [(vec!["orders"], vec![]), (vec!["orders:x:3"], vec![]), (vec!["orders:1:4"], vec![]), (vec![], vec!["no.such.key=1"]), (vec![], vec!["novalue"])] {
            assert!(check(opts(&topics, &config)).is_err(), "{topics:?} {config:?}");
        }
    }
}
