//! What this build of stormlog can run, checked before anything runs. A scenario key whose
//! behaviour is not built yet fails loudly here ("not supported yet: ...") instead of being
//! silently ignored; and the Kafka config keys are mapped onto node configurations.

use std::collections::BTreeMap;

use stormlog::broker::BrokerConfig;
use stormlog::controller::ControllerConfig;
use stormlog::client::assignor::Assignor;
use stormlog::client::{Acks, ConsumerConfig, OffsetReset, ProducerConfig};

use crate::scenario::{CommitMode, ConfigValue, FaultKind, Peer, Scenario, ScenarioError, Target};

type Result<T> = std::result::Result<T, ScenarioError>;

const FAULTS_SUPPORTED: &[FaultKind] = &[
    FaultKind::Crash,
    FaultKind::Kill,
    FaultKind::Restart,
    FaultKind::Partition,
    FaultKind::PartitionOneway,
    FaultKind::Isolate,
    FaultKind::Repair,
    FaultKind::Hold,
    FaultKind::Release,
    FaultKind::DiskLoss,
    FaultKind::Pause,
    FaultKind::Resume,
    FaultKind::HoldRequest,
    FaultKind::ReleaseRequest,
    FaultKind::Skew,
];
/// What the random nemesis can draw (each heals itself after its drawn duration).
const NEMESIS_KINDS: &[FaultKind] = &[FaultKind::Crash, FaultKind::Kill, FaultKind::Partition, FaultKind::PartitionOneway, FaultKind::Isolate, FaultKind::Hold, FaultKind::Pause];

const SWITCHES_SUPPORTED: &[&str] = &[
    "hw_advances_below_min_isr",
    "isr_join_ignores_epoch_start_offset",
    "truncate_to_hw_on_become_follower",
    "single_step_epoch_truncation",
    "producer_resequences_on_out_of_order",
    "txn_no_partition_verification",
    "txn_same_epoch_across_transactions",
];

fn not_yet(s: &Scenario, key: impl Into<String>, what: &str) -> ScenarioError {
    ScenarioError::new(&s.path, key, format!("a supported setting (not supported yet: {what})"))
}

/// Every reason this scenario cannot run on this build, the first one found.
pub fn check_supported(s: &Scenario) -> Result<()> {
    for (name, on) in &s.behaviour {
        if *on && !SWITCHES_SUPPORTED.contains(&name.as_str()) {
            return Err(not_yet(s, format!("behaviour.{name}"), "this behaviour switch"));
        }
    }
    if let Some(n) = &s.nemesis {
        if let Some(k) = n.kinds.iter().find(|k| !NEMESIS_KINDS.contains(k)) {
            return Err(not_yet(s, "nemesis.kinds", &format!("the {} fault", k.name())));
        }
    }
    if s.network.loss > 0.0 {
        return Err(not_yet(s, "network.loss", "link loss"));
    }
    check_faults(s)?;
    broker_config(s)?;
    for i in 0..s.producers.len() {
        producer_config(s, i, 0)?;
    }
    for (i, c) in s.consumers.iter().enumerate() {
        consumer_config(s, i, 0)?;
        if c.group.is_none() && c.commit != CommitMode::Auto {
            return Err(ScenarioError::new(&s.path, format!("consumers[{i}].commit"), "\"auto\" for a consumer without a group (only a group commits offsets)"));
        }
    }
    Ok(())
}

fn check_faults(s: &Scenario) -> Result<()> {
    for (i, f) in s.faults.iter().enumerate() {
        if !FAULTS_SUPPORTED.contains(&f.action) {
            return Err(not_yet(s, format!("faults[{i}].action"), &format!("the {} fault", f.action.name())));
        }
        let mut targets: Vec<&Target> = f.target.iter().collect();
        if let Some(Peer::Targets(peers)) = &f.peer {
            targets.extend(peers.iter());
        }
        for t in targets {
            if let Target::TxnCoordinator { producer, .. } = t {
                if !s.producers.iter().any(|p| &p.name == producer && p.transactional) {
                    let expected = format!("a transactional producer's coordinator (\"{producer}\" has no transactional.id: set transactional = true), found \"{t}\"");
                    return Err(ScenarioError::new(&s.path, format!("faults[{i}].target"), expected));
                }
            }
        }
    }
    Ok(())
}

fn int(s: &Scenario, key: &str, v: &ConfigValue, min: i64) -> Result<i64> {
    match v.as_i64() {
        Some(n) if n >= min => Ok(n),
        _ => Err(ScenarioError::new(&s.path, key, format!("an integer >= {min}, found {v}"))),
    }
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The brokers' configuration from `[cluster.config]` and `[behaviour]`.
pub fn broker_config(s: &Scenario) -> Result<BrokerConfig> {
    let mut c = BrokerConfig::default();
    for (k, v) in &s.cluster.config {
        let key = format!("cluster.config.\"{k}\"");
        match k.as_str() {
            "min.insync.replicas" => c.min_insync_replicas = int(s, &key, v, 1)? as usize,
            "replica.lag.time.max.ms" => c.replica_lag_time_max_ms = to_u64(int(s, &key, v, 1)?),
            "producer.id.expiration.ms" => c.producer_id_expiration_ms = int(s, &key, v, 1)?,
            "producer.id.expiration.check.interval.ms" => c.producer_id_expiration_check_interval_ms = to_u64(int(s, &key, v, 1)?),
            "replica.fetch.wait.max.ms" => c.replica_fetch_wait_max_ms = to_u64(int(s, &key, v, 0)?),
            "replica.fetch.backoff.ms" => c.replica_fetch_backoff_ms = to_u64(int(s, &key, v, 0)?),
            "replica.fetch.max.bytes" => c.replica_fetch_max_bytes = int(s, &key, v, 1)? as usize,
            "message.max.bytes" => c.message_max_bytes = int(s, &key, v, 1)? as usize,
            "log.flush.interval.messages" => c.log.flush_interval_messages = to_u64(int(s, &key, v, 1)?),
            "log.segment.bytes" => c.log.segment_bytes = to_u64(int(s, &key, v, 1)?),
            "log.index.interval.bytes" => c.log.index_interval_bytes = to_u64(int(s, &key, v, 1)?),
            "broker.heartbeat.interval.ms" => c.heartbeat_interval_ms = to_u64(int(s, &key, v, 1)?),
            "replica.high.watermark.checkpoint.interval.ms" => c.hw_checkpoint_interval_ms = to_u64(int(s, &key, v, 1)?),
            "group.initial.rebalance.delay.ms" => c.group.initial_rebalance_delay_ms = to_u64(int(s, &key, v, 0)?),
            "group.min.session.timeout.ms" => c.group.min_session_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "group.max.session.timeout.ms" => c.group.max_session_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "offsets.topic.num.partitions" => c.group.offsets_partitions = u32::try_from(int(s, &key, v, 1)?).unwrap_or(u32::MAX),
            "transaction.state.log.num.partitions" => c.txn.partitions = i32::try_from(int(s, &key, v, 1)?).unwrap_or(i32::MAX),
            "transaction.max.timeout.ms" => c.txn.max_timeout_ms = i32::try_from(int(s, &key, v, 1)?).unwrap_or(i32::MAX),
            // Read by the world when it creates the offsets and transaction-state topics.
            "offsets.topic.replication.factor" | "transaction.state.log.replication.factor" => {
                int(s, &key, v, 1)?;
            }
            // Controller settings: read by `controller_config`.
            "unclean.leader.election.enable" | "broker.session.timeout.ms" => {}
            _ => return Err(not_yet(s, key, &format!("broker config {k}"))),
        }
    }
    c.hw_advances_below_min_isr = *s.behaviour.get("hw_advances_below_min_isr").unwrap_or(&false);
    c.isr_join_ignores_epoch_start_offset = *s.behaviour.get("isr_join_ignores_epoch_start_offset").unwrap_or(&false);
    c.truncate_to_hw_on_become_follower = *s.behaviour.get("truncate_to_hw_on_become_follower").unwrap_or(&false);
    c.single_step_epoch_truncation = *s.behaviour.get("single_step_epoch_truncation").unwrap_or(&false);
    c.txn_partition_verification = !*s.behaviour.get("txn_no_partition_verification").unwrap_or(&false);
    c.txn.epoch_bump_per_txn = !*s.behaviour.get("txn_same_epoch_across_transactions").unwrap_or(&false);
    Ok(c)
}

/// The controllers' configuration from `[cluster.config]`.
pub fn controller_config(s: &Scenario) -> Result<ControllerConfig> {
    let mut c = ControllerConfig::default();
    for (k, v) in &s.cluster.config {
        let key = format!("cluster.config.\"{k}\"");
        match k.as_str() {
            "broker.session.timeout.ms" => c.session_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "unclean.leader.election.enable" => {
                c.unclean_leader_election = v.as_bool().ok_or_else(|| ScenarioError::new(&s.path, key.as_str(), format!("true or false, found {v}")))?;
            }
            "min.insync.replicas" => c.min_insync_replicas = int(s, &key, v, 1)? as usize,
            _ => {}
        }
    }
    Ok(c)
}

/// The configuration of instance `instance` of `producers[index]`. As in Kafka 3.2+, an
/// idempotence left at its default is turned off by configs it cannot work with (acks other than
/// all, retries = 0, more than 5 requests in flight); asked for explicitly, it is an error.
pub fn producer_config(s: &Scenario, index: usize, instance: u32) -> Result<ProducerConfig> {
    let spec = &s.producers[index];
    let mut c = ProducerConfig { client_id: format!("{}-{instance}", spec.name), ..ProducerConfig::default() };
    c.resequence_on_out_of_order = *s.behaviour.get("producer_resequences_on_out_of_order").unwrap_or(&false);
    let mut idempotence_explicit = false;
    for (k, v) in &spec.config {
        let key = format!("producers[{index}].config.\"{k}\"");
        match k.as_str() {
            "acks" => c.acks = acks(s, &key, v)?,
            "retries" => c.retries = u32::try_from(int(s, &key, v, 0)?).unwrap_or(u32::MAX),
            "retry.backoff.ms" => c.retry_backoff_ms = to_u64(int(s, &key, v, 0)?),
            "request.timeout.ms" => c.request_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "delivery.timeout.ms" => c.delivery_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "socket.connection.setup.timeout.ms" => c.connection_setup_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "batch.size" => c.batch_size = usize::try_from(int(s, &key, v, 1)?).unwrap_or(usize::MAX),
            "linger.ms" => c.linger_ms = to_u64(int(s, &key, v, 0)?),
            "buffer.memory" => c.buffer_memory = usize::try_from(int(s, &key, v, 1)?).unwrap_or(usize::MAX),
            "max.block.ms" => c.max_block_ms = to_u64(int(s, &key, v, 0)?),
            "transaction.timeout.ms" => c.transaction_timeout_ms = to_u64(int(s, &key, v, 1)?),
            "max.in.flight.requests.per.connection" => c.max_in_flight = usize::try_from(int(s, &key, v, 1)?).unwrap_or(usize::MAX),
            "enable.idempotence" => {
                c.enable_idempotence = v.as_bool().ok_or_else(|| ScenarioError::new(&s.path, key.as_str(), format!("true or false, found {v}")))?;
                idempotence_explicit = true;
            }
            _ => return Err(not_yet(s, key, &format!("producer config {k} = {v}"))),
        }
    }
    if c.enable_idempotence && c.validate().is_err() && !idempotence_explicit {
        c.enable_idempotence = false;
    }
    c.validate().map_err(|e| ScenarioError::new(&s.path, format!("producers[{index}].config"), e))?;
    Ok(c)
}

fn acks(s: &Scenario, key: &str, v: &ConfigValue) -> Result<Acks> {
    match v.to_string().as_str() {
        "all" | "-1" => Ok(Acks::All),
        "1" => Ok(Acks::Leader),
        "0" => Ok(Acks::None),
        other => Err(ScenarioError::new(&s.path, key, format!("\"all\", \"1\" or \"0\", found {other}"))),
    }
}

/// The configuration of instance `instance` of `consumers[index]`.
pub fn consumer_config(s: &Scenario, index: usize, instance: u32) -> Result<ConsumerConfig> {
    let spec = &s.consumers[index];
    let mut c = ConsumerConfig { client_id: format!("{}-{instance}", spec.name), group_id: spec.group.clone(), ..ConsumerConfig::default() };
    // Kafka turns auto-commit off for a consumer without a group id.
    c.enable_auto_commit = spec.group.is_some() && spec.commit == CommitMode::Auto;
    for (k, v) in &spec.config {
        let key = format!("consumers[{index}].config.\"{k}\"");
        let ms = |min: i64| int(s, &key, v, min).map(to_u64);
        match (k.as_str(), v.to_string().as_str()) {
            ("enable.auto.commit", _) => {
                c.enable_auto_commit = v.as_bool().ok_or_else(|| ScenarioError::new(&s.path, key.as_str(), format!("true or false, found {v}")))?;
                if c.enable_auto_commit && spec.group.is_none() {
                    return Err(ScenarioError::new(&s.path, key.as_str(), "false for a consumer without a group (auto-commit needs group.id)"));
                }
            }
            ("auto.commit.interval.ms", _) => c.auto_commit_interval_ms = ms(1)?,
            ("max.poll.records", _) => c.max_poll_records = usize::try_from(int(s, &key, v, 1)?).unwrap_or(usize::MAX),
            ("max.poll.interval.ms", _) => c.max_poll_interval_ms = ms(1)?,
            ("session.timeout.ms", _) => c.session_timeout_ms = ms(1)?,
            ("heartbeat.interval.ms", _) => c.heartbeat_interval_ms = ms(1)?,
            ("retry.backoff.ms", _) => c.retry_backoff_ms = ms(0)?,
            ("default.api.timeout.ms", _) => c.default_api_timeout_ms = ms(1)?,
            ("partition.assignment.strategy", _) => {
                let names = v.to_string();
                let mut assignors = Vec::new();
                for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match Assignor::from_config_name(n) {
                        Some(a) => assignors.push(a),
                        None => return Err(ScenarioError::new(&s.path, key.as_str(), format!("range, roundrobin or sticky (comma-separated), found {n}"))),
                    }
                }
                c.assignors = assignors;
            }
            ("auto.offset.reset", "earliest") => c.auto_offset_reset = OffsetReset::Earliest,
            ("auto.offset.reset", "latest") => c.auto_offset_reset = OffsetReset::Latest,
            ("auto.offset.reset", "none") => c.auto_offset_reset = OffsetReset::None,
            ("isolation.level", "read_uncommitted") => c.isolation_level = 0,
            // Without transactions the last stable offset is the high watermark.
            ("isolation.level", "read_committed") => c.isolation_level = 1,
            ("fetch.max.wait.ms", _) => c.fetch_max_wait_ms = i32::try_from(int(s, &key, v, 0)?).unwrap_or(i32::MAX),
            ("max.partition.fetch.bytes", _) => c.max_partition_fetch_bytes = i32::try_from(int(s, &key, v, 1)?).unwrap_or(i32::MAX),
            ("request.timeout.ms", _) => c.request_timeout_ms = to_u64(int(s, &key, v, 1)?),
            ("socket.connection.setup.timeout.ms", _) => c.connection_setup_timeout_ms = to_u64(int(s, &key, v, 1)?),
            _ => return Err(not_yet(s, key, &format!("consumer config {k} = {v}"))),
        }
    }
    c.validate().map_err(|e| ScenarioError::new(&s.path, format!("consumers[{index}].config"), e))?;
    Ok(c)
}

/// Kafka config maps as they appear in reports.
pub fn describe(config: &BTreeMap<String, ConfigValue>) -> String {
    config.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
