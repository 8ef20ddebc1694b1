//! Cross-checks over a fully read scenario: keys that must agree with each other (outcome and
//! anomalies, replication factor and brokers, clients and topics, fault targets and
//! everything they name). Runs after `read.rs`, before anything is simulated; the first
//! failing check is the error.

use super::config::ConfigValue;
use super::error::{Result, ScenarioError};
use super::schema::*;
use super::section::join;
use super::target::{Peer, Target};

pub(crate) fn check(s: &Scenario) -> Result<()> {
    check_expect(s)?;
    for (i, topic) in s.topics.iter().enumerate() {
        check_topic(s, i, topic)?;
    }
    check_client_names(s)?;
    for (i, producer) in s.producers.iter().enumerate() {
        check_producer(s, i, producer)?;
    }
    for (i, consumer) in s.consumers.iter().enumerate() {
        check_consumer(s, i, consumer)?;
    }
    for (i, fault) in s.faults.iter().enumerate() {
        check_fault(s, i, fault)?;
    }
    Ok(())
}

fn error(s: &Scenario, key: impl Into<String>, expected: impl Into<String>) -> ScenarioError {
    ScenarioError::new(&s.path, key, expected)
}

fn check_expect(s: &Scenario) -> Result<()> {
    let expect = &s.expect;
    if expect.outcome == Outcome::Violation && expect.anomalies.is_empty() {
        let expected = "at least one anomaly name when outcome = \"violation\", found none";
        return Err(error(s, "expect.anomalies", expected));
    }
    if expect.outcome == Outcome::Clean && !expect.anomalies.is_empty() {
        let expected = format!(
            "no anomalies when outcome = \"clean\" (use expect.allow to tolerate some), found {:?}",
            expect.anomalies
        );
        return Err(error(s, "expect.anomalies", expected));
    }
    let named = expect.anomalies.iter().chain(&expect.allow);
    if let Some(off) = named.filter(|a| OPT_IN_CHECKS.contains(&a.as_str())).find(|a| !s.checks.enable.contains(a)) {
        let expected = format!("anomalies of checks that run (\"{off}\" is an opt-in check: add it to [checks] enable)");
        return Err(error(s, "expect.anomalies", expected));
    }
    let known = stormlog::observe::marks::ALL;
    if let Some((i, m)) = expect.marks.iter().enumerate().find(|(_, m)| !known.contains(&m.as_str())) {
        let expected = format!("a coverage mark of the code, one of: {}, found string {m:?}", known.join(", "));
        return Err(error(s, format!("expect.marks[{i}]"), expected));
    }
    match expect.within_seeds {
        Some(within) if within > s.seeds => Err(error(
            s,
            "expect.within_seeds",
            format!("an integer <= seeds ({}), found integer {within}", s.seeds),
        )),
        _ => Ok(()),
    }
}

fn check_topic(s: &Scenario, i: usize, topic: &TopicSpec) -> Result<()> {
    let at = format!("topics[{i}]");
    if let Some(j) = s.topics[..i].iter().position(|t| t.name == topic.name) {
        let expected = format!(
            "a topic name not already used by topics[{j}], found {:?}",
            topic.name
        );
        return Err(error(s, format!("{at}.name"), expected));
    }
    let (rf, brokers) = (topic.replication_factor, s.cluster.brokers);
    if rf > brokers {
        let expected = format!(
            "replication_factor <= cluster.brokers, found replication_factor {rf} > brokers {brokers}"
        );
        return Err(error(s, format!("{at}.replication_factor"), expected));
    }
    match &topic.assignment {
        Some(rows) => check_assignment(s, &format!("{at}.assignment"), topic, rows),
        None => Ok(()),
    }
}

fn check_assignment(s: &Scenario, at: &str, topic: &TopicSpec, rows: &[Vec<u32>]) -> Result<()> {
    if rows.len() != topic.partitions as usize {
        let expected = format!(
            "one row of replicas per partition ({} rows), found {} rows",
            topic.partitions,
            rows.len()
        );
        return Err(error(s, at, expected));
    }
    for (p, row) in rows.iter().enumerate() {
        if row.len() != topic.replication_factor as usize {
            let expected = format!(
                "a row of replication_factor ({}) broker ids, found {} ids",
                topic.replication_factor,
                row.len()
            );
            return Err(error(s, format!("{at}[{p}]"), expected));
        }
        for (k, id) in row.iter().enumerate() {
            let brokers = s.cluster.brokers;
            let expected = if *id >= brokers {
                format!("a broker id < {brokers} (cluster.brokers), found integer {id}")
            } else if row[..k].contains(id) {
                format!("a broker id not already in this row, found integer {id} again")
            } else {
                continue;
            };
            return Err(error(s, format!("{at}[{p}][{k}]"), expected));
        }
    }
    Ok(())
}

/// Producer and consumer names share one namespace: their instances are `<name>-N`, the same
/// shape as node names, and fault targets must resolve to exactly one thing.
fn check_client_names(s: &Scenario) -> Result<()> {
    let producers = s
        .producers
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("producers[{i}].name"), &p.name));
    let consumers = s
        .consumers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("consumers[{i}].name"), &c.name));
    let names: Vec<(String, &String)> = producers.chain(consumers).collect();
    for (i, (at, name)) in names.iter().enumerate() {
        if let Some((first, _)) = names[..i].iter().find(|(_, n)| n == name) {
            let expected = format!("a name not already used by {first}, found {name:?}");
            return Err(error(s, at, expected));
        }
        if is_node_name(name) {
            let expected = format!(
                "a client name that cannot be mistaken for a node (broker-N, controller-N), found {name:?}"
            );
            return Err(error(s, at, expected));
        }
    }
    Ok(())
}

fn is_node_name(name: &str) -> bool {
    let node = matches!(
        Target::parse(name),
        Some(Target::Broker(_) | Target::Controller(_) | Target::ControllerLeader)
    );
    node || name == "broker" || name == "controller"
}

fn check_producer(s: &Scenario, i: usize, p: &ProducerSpec) -> Result<()> {
    let at = format!("producers[{i}]");
    check_topic_declared(s, &format!("{at}.topic"), &p.topic)?;
    if p.abort_probability > 0.0 && !p.transactional {
        let expected = format!(
            "0 unless transactional = true, found float {}",
            p.abort_probability
        );
        return Err(error(s, format!("{at}.abort_probability"), expected));
    }
    let idempotence = p
        .config
        .get("enable.idempotence")
        .and_then(ConfigValue::as_bool);
    if p.transactional && idempotence == Some(false) {
        let expected = "true (a transactional producer is idempotent), found boolean false";
        return Err(error(
            s,
            join(&format!("{at}.config"), "enable.idempotence"),
            expected,
        ));
    }
    // Kafka's client refuses these combinations with a ConfigException; so do we, early.
    let acks = p.config.get("acks").and_then(ConfigValue::as_str);
    let needs_all = p.transactional || idempotence == Some(true);
    match acks {
        Some(acks) if needs_all && acks != "all" => {
            let why = if p.transactional {
                "transactional = true"
            } else {
                "enable.idempotence = true"
            };
            let expected = format!("\"all\" (required by {why}), found string {acks:?}");
            Err(error(s, format!("{at}.config.acks"), expected))
        }
        _ => Ok(()),
    }
}

fn check_topic_declared(s: &Scenario, at: &str, topic: &str) -> Result<()> {
    if s.topics.iter().any(|t| t.name == topic) {
        return Ok(());
    }
    let declared: Vec<&str> = s.topics.iter().map(|t| t.name.as_str()).collect();
    let expected = format!(
        "a topic declared in [[topics]] ({}), found {topic:?}",
        declared.join(", ")
    );
    Err(error(s, at, expected))
}

fn check_consumer(s: &Scenario, i: usize, c: &ConsumerSpec) -> Result<()> {
    let at = format!("consumers[{i}]");
    for (j, topic) in c.topics.iter().enumerate() {
        check_topic_declared(s, &format!("{at}.topics[{j}]"), topic)?;
    }
    if c.group.is_none() && c.commit != CommitMode::Auto {
        let expected = format!(
            "\"auto\" for a consumer without a group (commits need a group), found {:?}",
            c.commit.name()
        );
        return Err(error(s, format!("{at}.commit"), expected));
    }
    match (&c.output_topic, c.commit == CommitMode::Transactional) {
        (Some(out), true) => check_topic_declared(s, &format!("{at}.output_topic"), out)?,
        (None, true) => {
            let expected = "a topic to write to (required with commit = \"transactional\"), but the key is missing";
            return Err(error(s, format!("{at}.output_topic"), expected));
        }
        (Some(_), false) => {
            let expected = format!("no output_topic unless commit = \"transactional\" (commit is {:?})", c.commit.name());
            return Err(error(s, format!("{at}.output_topic"), expected));
        }
        (None, false) => {}
    }
    if c.commit != CommitMode::Transactional {
        if c.abort_probability > 0.0 {
            let expected = format!("0 unless commit = \"transactional\", found float {}", c.abort_probability);
            return Err(error(s, format!("{at}.abort_probability"), expected));
        }
        if !c.rewind_on_abort {
            return Err(error(s, format!("{at}.rewind_on_abort"), "true (the default) unless commit = \"transactional\""));
        }
    }
    let auto_commit = c
        .config
        .get("enable.auto.commit")
        .and_then(ConfigValue::as_bool);
    if c.commit == CommitMode::Auto && auto_commit == Some(false) {
        let expected = "true when commit = \"auto\", found boolean false";
        return Err(error(
            s,
            join(&format!("{at}.config"), "enable.auto.commit"),
            expected,
        ));
    }
    Ok(())
}

fn check_fault(s: &Scenario, i: usize, f: &FaultSpec) -> Result<()> {
    let at = format!("faults[{i}]");
    if f.at_ms >= s.duration_ms {
        let expected = format!(
            "an integer < duration_ms ({}), found integer {}",
            s.duration_ms, f.at_ms
        );
        return Err(error(s, format!("{at}.at_ms"), expected));
    }
    let untargeted = matches!(f.action, FaultKind::Repair | FaultKind::Release);
    if f.target.is_empty() && !untargeted {
        let expected = format!(
            "a target or a list of targets (required for {}), but the key is missing",
            f.action
        );
        return Err(error(s, format!("{at}.target"), expected));
    }
    check_targets(s, &format!("{at}.target"), &f.target)?;
    if f.action == FaultKind::DiskLoss {
        if let Some(client) = f.target.iter().find(|t| matches!(t, Target::Client { .. })) {
            let expected =
                format!("a server (disk-loss loses a server's unsynced files), found \"{client}\"");
            return Err(error(s, format!("{at}.target"), expected));
        }
    }
    if matches!(f.action, FaultKind::HoldRequest | FaultKind::ReleaseRequest) {
        let not_broker = f.target.iter().find(|t| matches!(t, Target::Client { .. } | Target::Controller(_) | Target::ControllerLeader));
        if let Some(t) = not_broker {
            let expected = format!("a broker ({} acts on the requests a broker receives), found \"{t}\"", f.action);
            return Err(error(s, format!("{at}.target"), expected));
        }
    }
    check_api(s, &at, f)?;
    check_peer(s, &at, f)?;
    check_fault_extras(s, &at, f)
}

fn check_peer(s: &Scenario, at: &str, f: &FaultSpec) -> Result<()> {
    match &f.peer {
        Some(_) if !f.action.takes_peer() => {
            let expected = format!(
                "no peer for {} (peer is only for partition, partition-oneway and hold-request)",
                f.action
            );
            Err(error(s, format!("{at}.peer"), expected))
        }
        Some(Peer::Targets(targets)) => check_targets(s, &format!("{at}.peer"), targets),
        _ => Ok(()),
    }
}

/// `api` is required by `hold-request`, names a Kafka API, and belongs to it alone.
fn check_api(s: &Scenario, at: &str, f: &FaultSpec) -> Result<()> {
    let holds = f.action == FaultKind::HoldRequest;
    match &f.api {
        None if holds => Err(error(s, format!("{at}.api"), "a Kafka API name such as \"EndTxn\" or \"Produce\" (required for hold-request), but the key is missing")),
        Some(_) if !holds => Err(error(s, format!("{at}.api"), format!("no api for {} (api is only for hold-request)", f.action))),
        Some(name) if api_key(name).is_none() => {
            Err(error(s, format!("{at}.api"), format!("a Kafka API name such as \"EndTxn\", \"Produce\" or \"AddPartitionsToTxn\", found \"{name}\"")))
        }
        _ => Ok(()),
    }
}

/// The API key of a Kafka API named as in Kafka's message definitions (`EndTxn`, `Produce`).
pub fn api_key(name: &str) -> Option<i16> {
    (0i16..200).find(|k| kafka_protocol::messages::ApiKey::try_from(*k).is_ok_and(|a| format!("{a:?}") == name))
}

/// `by_ms` belongs to skew alone; `duration_ms` to actions that something heals.
fn check_fault_extras(s: &Scenario, at: &str, f: &FaultSpec) -> Result<()> {
    let skew = f.action == FaultKind::Skew;
    if skew && f.by_ms.is_none() {
        return Err(error(
            s,
            format!("{at}.by_ms"),
            "an integer (required for skew), but the key is missing",
        ));
    }
    if !skew && f.by_ms.is_some() {
        let expected = format!("no by_ms for {} (by_ms is only for skew)", f.action);
        return Err(error(s, format!("{at}.by_ms"), expected));
    }
    if f.duration_ms.is_some() && f.action.healed_by().is_none() {
        let healable: Vec<&str> = FaultKind::NAMES
            .iter()
            .copied()
            .filter(|n| {
                FaultKind::from_name(n)
                    .and_then(FaultKind::healed_by)
                    .is_some()
            })
            .collect();
        let expected = format!(
            "no duration_ms for {} (only {} are healed after a duration)",
            f.action,
            healable.join(", ")
        );
        return Err(error(s, format!("{at}.duration_ms"), expected));
    }
    Ok(())
}

/// Resolves each target; a single target is reported at `at`, list items at `at[j]`.
fn check_targets(s: &Scenario, at: &str, targets: &[Target]) -> Result<()> {
    for (j, target) in targets.iter().enumerate() {
        if let Err(expected) = resolve(s, target) {
            let key = if targets.len() == 1 {
                at.to_string()
            } else {
                format!("{at}[{j}]")
            };
            return Err(error(s, key, format!("{expected}, found \"{target}\"")));
        }
    }
    Ok(())
}

/// Whether `target` names something that exists; `Err` carries the expectation.
fn resolve(s: &Scenario, target: &Target) -> std::result::Result<(), String> {
    let (brokers, controllers) = (s.cluster.brokers, s.cluster.controllers);
    match target {
        Target::Broker(n) if *n >= brokers => {
            Err(format!("broker-N with N < {brokers} (cluster.brokers)"))
        }
        Target::Controller(n) if *n >= controllers => Err(format!(
            "controller-N with N < {controllers} (cluster.controllers)"
        )),
        Target::Client { name, index } => resolve_client(s, name, *index, false),
        Target::TxnCoordinator { producer, index } => resolve_client(s, producer, *index, true),
        Target::Leader { topic, partition } | Target::Followers { topic, partition } => {
            resolve_partition(s, topic, *partition)
        }
        Target::Coordinator { group } => resolve_group(s, group),
        Target::Broker(_) | Target::Controller(_) | Target::ControllerLeader => Ok(()),
    }
}

fn resolve_client(
    s: &Scenario,
    name: &str,
    index: u32,
    txn: bool,
) -> std::result::Result<(), String> {
    let producer = s.producers.iter().position(|p| p.name == name);
    let consumer = s.consumers.iter().position(|c| c.name == name);
    let (at, count) = match (producer, consumer) {
        (Some(i), _) if txn && !s.producers[i].transactional => {
            return Err(format!(
                "an instance of a transactional producer (producers[{i}] is not transactional)"
            ));
        }
        (Some(i), _) => (format!("producers[{i}]"), s.producers[i].count),
        (None, Some(i)) if !txn => (format!("consumers[{i}]"), s.consumers[i].count),
        _ => {
            let what = if txn {
                "producer"
            } else {
                "producer or consumer"
            };
            return Err(format!(
                "an instance of a declared {what} (no {what} is named {name:?})"
            ));
        }
    };
    if index >= count {
        return Err(format!("{name}-N with N < {count} ({at}.count)"));
    }
    Ok(())
}

fn resolve_partition(s: &Scenario, topic: &str, partition: u32) -> std::result::Result<(), String> {
    let Some(i) = s.topics.iter().position(|t| t.name == topic) else {
        let declared: Vec<&str> = s.topics.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "a topic declared in [[topics]] ({})",
            declared.join(", ")
        ));
    };
    let partitions = s.topics[i].partitions;
    if partition >= partitions {
        return Err(format!(
            "a partition < {partitions} (topics[{i}].partitions)"
        ));
    }
    Ok(())
}

fn resolve_group(s: &Scenario, group: &str) -> std::result::Result<(), String> {
    if s.consumers
        .iter()
        .any(|c| c.group.as_deref() == Some(group))
    {
        return Ok(());
    }
    let groups: Vec<&str> = s
        .consumers
        .iter()
        .filter_map(|c| c.group.as_deref())
        .collect();
    Err(format!(
        "coordinator:<group> with a group some consumer uses ({})",
        groups.join(", ")
    ))
}
