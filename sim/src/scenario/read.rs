//! TOML text -> `Scenario`: types, defaults and the checks that need only one key.
//! Checks that relate keys to each other (topics exist, targets resolve) are in `validate.rs`
//! and run after the whole file has been read.

use std::path::Path;

use toml::{Table, Value};

use super::config::{self, Scope};
use super::error::{Result, ScenarioError};
use super::schema::*;
use super::section::Section;
use super::target::{is_name, is_topic_name, Peer, Target, TARGET_FORMS};
use super::validate;

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "duration_ms",
    "seeds",
    "heal_ms",
    "expect",
    "cluster",
    "behaviour",
    "topics",
    "producers",
    "consumers",
    "nemesis",
    "faults",
    "network",
    "checks",
];
const EXPECT_KEYS: &[&str] = &["outcome", "anomalies", "within_seeds", "allow", "marks"];
const CLUSTER_KEYS: &[&str] = &["brokers", "controllers", "config"];
const TOPIC_KEYS: &[&str] = &["name", "partitions", "replication_factor", "assignment"];
const PRODUCER_KEYS: &[&str] = &[
    "name",
    "count",
    "topic",
    "messages",
    "rate_per_sec",
    "keys",
    "transactional",
    "records_per_txn",
    "abort_probability",
    "restart_resend",
    "config",
];
const CONSUMER_KEYS: &[&str] = &[
    "name",
    "count",
    "group",
    "topics",
    "processing_ms",
    "commit",
    "threads",
    "start_ms",
    "output_topic",
    "abort_probability",
    "rewind_on_abort",
    "config",
];
const NEMESIS_KEYS: &[&str] = &["kinds", "interval_ms", "duration_ms", "targets"];
const FAULT_KEYS: &[&str] = &["at_ms", "action", "target", "peer", "duration_ms", "by_ms", "api"];
const NETWORK_KEYS: &[&str] = &["latency_ms", "loss"];
const CHECKS_KEYS: &[&str] = &["disable", "enable"];

const NAME_EXPECTED: &str = "a name matching [a-z0-9_-]+";

impl Scenario {
    /// Reads and validates a scenario file; errors name `path` as the file.
    pub fn load(path: &Path) -> std::result::Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::new(&file, "", format!("a readable file ({e})")))?;
        Scenario::parse(&file, &text)
    }

    /// Parses and validates scenario text; `path_for_messages` is only used in errors and
    /// stored as `Scenario::path`.
    pub fn parse(
        path_for_messages: &str,
        text: &str,
    ) -> std::result::Result<Scenario, ScenarioError> {
        let file = path_for_messages;
        let table: Table = text.parse().map_err(|e| syntax_error(file, text, e))?;
        let scenario = read_scenario(Section::root(file, table, TOP_KEYS)?)?;
        validate::check(&scenario)?;
        Ok(scenario)
    }
}

fn syntax_error(file: &str, text: &str, error: toml::de::Error) -> ScenarioError {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let message = error.message().trim();
    ScenarioError::new(
        file,
        "",
        format!("valid TOML ({message} at line {line}, column {column})"),
    )
}

fn read_scenario(mut top: Section) -> Result<Scenario> {
    let name = top.get("name", NAME_EXPECTED, |v| {
        v.as_str().filter(|s| is_name(s)).map(String::from)
    })?;
    let name = top.need("name", NAME_EXPECTED, name)?;
    Ok(Scenario {
        path: top.file().to_string(),
        name,
        description: top.string("description")?.unwrap_or_default(),
        duration_ms: top.uint_req("duration_ms", 1)?,
        seeds: top.uint("seeds", 1)?.unwrap_or(50),
        heal_ms: top.uint("heal_ms", 0)?.unwrap_or(30_000),
        expect: read_expect(top.section("expect", EXPECT_KEYS)?)?,
        cluster: read_cluster(top.section("cluster", CLUSTER_KEYS)?)?,
        behaviour: read_behaviour(&mut top)?,
        topics: each(top.sections("topics", TOPIC_KEYS)?, read_topic)?,
        producers: each(top.sections("producers", PRODUCER_KEYS)?, read_producer)?,
        consumers: each(top.sections("consumers", CONSUMER_KEYS)?, read_consumer)?,
        nemesis: read_nemesis(&mut top)?,
        faults: each(top.sections("faults", FAULT_KEYS)?, read_fault)?,
        network: read_network(top.section("network", NETWORK_KEYS)?)?,
        checks: read_checks(top.section("checks", CHECKS_KEYS)?)?,
    })
}

fn read_checks(mut s: Section) -> Result<Checks> {
    let expected = format!("an opt-in check, one of: {}", OPT_IN_CHECKS.join(", "));
    Ok(Checks { disable: anomaly_names(&mut s, "disable")?, enable: names(&mut s, "enable", &expected, |n| OPT_IN_CHECKS.contains(&n))? })
}

fn each<T>(sections: Vec<Section>, read: impl Fn(Section) -> Result<T>) -> Result<Vec<T>> {
    sections.into_iter().map(read).collect()
}

fn read_expect(mut s: Section) -> Result<Expect> {
    let expected = "\"clean\" or \"violation\"";
    let outcome = s.get("outcome", expected, |v| {
        v.as_str().and_then(Outcome::from_name)
    })?;
    Ok(Expect {
        outcome: s.need("outcome", expected, outcome)?,
        anomalies: anomaly_names(&mut s, "anomalies")?,
        within_seeds: s.uint("within_seeds", 1)?,
        allow: anomaly_names(&mut s, "allow")?,
        marks: names(&mut s, "marks", NAME_EXPECTED, is_name)?,
    })
}

/// A list of anomaly names (`expect.anomalies`, `expect.allow`, `checks.disable`).
fn anomaly_names(s: &mut Section, key: &str) -> Result<Vec<String>> {
    let expected = format!("an anomaly name, one of: {}", ANOMALIES.join(", "));
    names(s, key, &expected, |n| ANOMALIES.contains(&n))
}

/// A list of strings each accepted by `valid`; errors point at the element (`allow[2]`).
fn names(
    s: &mut Section,
    key: &str,
    expected: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let list = s.strings(key)?.unwrap_or_default();
    if let Some((i, bad)) = list.iter().enumerate().find(|(_, n)| !valid(n)) {
        let path = format!("{}[{i}]", s.path(key));
        return Err(ScenarioError::new(
            s.file(),
            path,
            format!("{expected}, found string {bad:?}"),
        ));
    }
    Ok(list)
}

fn read_cluster(mut s: Section) -> Result<Cluster> {
    let brokers = s.u32_req("brokers", 1)?;
    let controllers = s.u32("controllers", 1)?.unwrap_or(1);
    let table = s.free_table("config")?;
    let config = config::read(s.file(), &s.path("config"), table, Scope::Cluster)?;
    Ok(Cluster {
        brokers,
        controllers,
        config,
    })
}

fn read_behaviour(top: &mut Section) -> Result<std::collections::BTreeMap<String, bool>> {
    let path = top.path("behaviour");
    let mut switches = std::collections::BTreeMap::new();
    for (key, value) in top.free_table("behaviour")? {
        let at = super::section::join(&path, &key);
        if !BEHAVIOURS.contains(&key.as_str()) {
            let expected = format!("a behaviour switch, one of: {}", BEHAVIOURS.join(", "));
            return Err(ScenarioError::new(top.file(), at, expected));
        }
        let Some(on) = value.as_bool() else {
            let found = super::section::describe(&value);
            return Err(ScenarioError::new(
                top.file(),
                at,
                format!("a boolean, found {found}"),
            ));
        };
        switches.insert(key, on);
    }
    Ok(switches)
}

fn read_topic(mut s: Section) -> Result<TopicSpec> {
    let expected = "a Kafka topic name matching [a-zA-Z0-9._-]+";
    let name = s.get("name", expected, |v| {
        v.as_str().filter(|n| is_topic_name(n)).map(String::from)
    })?;
    let assignment = s.get("assignment", "a list of lists of broker ids", |v| {
        let rows = v.as_array()?.iter().map(|row| {
            row.as_array()?
                .iter()
                .map(|id| u32::try_from(id.as_integer()?).ok())
                .collect()
        });
        rows.collect::<Option<Vec<Vec<u32>>>>()
    })?;
    Ok(TopicSpec {
        name: s.need("name", expected, name)?,
        partitions: s.u32("partitions", 1)?.unwrap_or(1),
        replication_factor: s.u32_req("replication_factor", 1)?,
        assignment,
    })
}

fn read_producer(mut s: Section) -> Result<ProducerSpec> {
    let name = client_name(&mut s)?;
    let topic = s.string("topic")?;
    let probability = "a number between 0 and 1";
    let table = s.free_table("config")?;
    Ok(ProducerSpec {
        name,
        count: s.u32("count", 1)?.unwrap_or(1),
        topic: s.need("topic", "a string naming a declared topic", topic)?,
        messages: s.uint("messages", 1)?.unwrap_or(100),
        rate_per_sec: s
            .number("rate_per_sec", "a number > 0", |x| x > 0.0)?
            .unwrap_or(100.0),
        keys: s.u32("keys", 0)?.unwrap_or(0),
        transactional: s.boolean("transactional")?.unwrap_or(false),
        records_per_txn: s.u32("records_per_txn", 1)?.unwrap_or(10),
        abort_probability: s
            .number("abort_probability", probability, |x| {
                (0.0..=1.0).contains(&x)
            })?
            .unwrap_or(0.0),
        restart_resend: s.boolean("restart_resend")?.unwrap_or(false),
        config: config::read(s.file(), &s.path("config"), table, Scope::Producer)?,
    })
}

fn client_name(s: &mut Section) -> Result<String> {
    let name = s.get("name", NAME_EXPECTED, |v| {
        v.as_str().filter(|n| is_name(n)).map(String::from)
    })?;
    s.need("name", NAME_EXPECTED, name)
}

fn read_consumer(mut s: Section) -> Result<ConsumerSpec> {
    let name = client_name(&mut s)?;
    let group = s.get("group", "a non-empty string", |v| {
        v.as_str().filter(|g| !g.is_empty()).map(String::from)
    })?;
    let topics_expected = "a non-empty list of declared topic names";
    let topics = s.get("topics", topics_expected, |v| {
        let list: Vec<String> = v
            .as_array()?
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<_>>()?;
        (!list.is_empty()).then_some(list)
    })?;
    let commit_expected = format!("one of: {}", CommitMode::NAMES.join(", "));
    let commit = s.get("commit", &commit_expected, |v| {
        v.as_str().and_then(CommitMode::from_name)
    })?;
    let table = s.free_table("config")?;
    Ok(ConsumerSpec {
        name,
        count: s.u32("count", 1)?.unwrap_or(1),
        group,
        topics: s.need("topics", topics_expected, topics)?,
        processing_ms: s.uint("processing_ms", 0)?.unwrap_or(0),
        commit: commit.unwrap_or(CommitMode::Auto),
        threads: s.u32("threads", 0)?.unwrap_or(0),
        start_ms: s.uint("start_ms", 0)?.unwrap_or(0),
        output_topic: s.string("output_topic")?,
        abort_probability: s.number("abort_probability", "a number between 0 and 1", |x| (0.0..=1.0).contains(&x))?.unwrap_or(0.0),
        rewind_on_abort: s.boolean("rewind_on_abort")?.unwrap_or(true),
        config: config::read(s.file(), &s.path("config"), table, Scope::Consumer)?,
    })
}

fn read_nemesis(top: &mut Section) -> Result<Option<Nemesis>> {
    if !top.has("nemesis") {
        return Ok(None);
    }
    let mut s = top.section("nemesis", NEMESIS_KEYS)?;
    let starting: Vec<&str> = FaultKind::NAMES
        .iter()
        .copied()
        .filter(|n| !FaultKind::from_name(n).is_some_and(FaultKind::is_heal))
        .collect();
    let kinds_expected = format!(
        "a non-empty list of fault kinds, each one of: {}",
        starting.join(", ")
    );
    let kinds = s.get("kinds", &kinds_expected, |v| {
        let kinds: Vec<FaultKind> = v
            .as_array()?
            .iter()
            .map(|k| {
                k.as_str()
                    .and_then(FaultKind::from_name)
                    .filter(|k| !k.is_heal())
            })
            .collect::<Option<_>>()?;
        (!kinds.is_empty()).then_some(kinds)
    })?;
    let targets_expected = format!("one of: {}", NemesisTargets::NAMES.join(", "));
    let targets = s.get("targets", &targets_expected, |v| {
        v.as_str().and_then(NemesisTargets::from_name)
    })?;
    Ok(Some(Nemesis {
        kinds: s.need("kinds", &kinds_expected, kinds)?,
        interval_ms: s.range("interval_ms", 1)?.unwrap_or((2_000, 10_000)),
        duration_ms: s.range("duration_ms", 1)?.unwrap_or((1_000, 5_000)),
        targets: targets.unwrap_or(NemesisTargets::Brokers),
    }))
}

fn read_fault(mut s: Section) -> Result<FaultSpec> {
    let at_ms = s.uint_req("at_ms", 0)?;
    let action_expected = format!("a fault kind, one of: {}", FaultKind::NAMES.join(", "));
    let action = s.get("action", &action_expected, |v| {
        v.as_str().and_then(FaultKind::from_name)
    })?;
    Ok(FaultSpec {
        at_ms,
        action: s.need("action", &action_expected, action)?,
        target: read_targets(&mut s, "target")?.unwrap_or_default(),
        peer: read_peer(&mut s)?,
        duration_ms: s.uint("duration_ms", 1)?,
        by_ms: s.get("by_ms", "an integer", Value::as_integer)?,
        api: s.get("api", "a Kafka API name such as \"EndTxn\" or \"Produce\"", |v| v.as_str().map(str::to_string))?,
    })
}

/// A target string or a non-empty list of them; errors point at the bad element.
fn read_targets(s: &mut Section, key: &str) -> Result<Option<Vec<Target>>> {
    let Some(value) = s.take(key) else {
        return Ok(None);
    };
    let (items, indexed) = match &value {
        Value::String(_) => (vec![value.clone()], false),
        Value::Array(items) if !items.is_empty() => (items.clone(), true),
        other => {
            let expected = format!("a target or a non-empty list of targets ({TARGET_FORMS})");
            return Err(s.error(
                key,
                format!("{expected}, found {}", super::section::describe(other)),
            ));
        }
    };
    let mut targets = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = if indexed {
            format!("{}[{i}]", s.path(key))
        } else {
            s.path(key)
        };
        let Some(target) = item.as_str().and_then(Target::parse) else {
            let found = super::section::describe(item);
            return Err(ScenarioError::new(
                s.file(),
                at,
                format!("a target ({TARGET_FORMS}), found {found}"),
            ));
        };
        targets.push(target);
    }
    Ok(Some(targets))
}

fn read_peer(s: &mut Section) -> Result<Option<Peer>> {
    match s.take("peer") {
        Some(Value::String(word)) if word == "servers" => Ok(Some(Peer::Servers)),
        Some(Value::String(word)) if word == "all" => Ok(Some(Peer::All)),
        Some(value) => {
            s.put("peer", value);
            Ok(read_targets(s, "peer")?.map(Peer::Targets))
        }
        None => Ok(None),
    }
}

fn read_network(mut s: Section) -> Result<NetworkSpec> {
    let defaults = NetworkSpec::default();
    Ok(NetworkSpec {
        latency_ms: s.range("latency_ms", 0)?.unwrap_or(defaults.latency_ms),
        loss: s
            .number("loss", "a number >= 0 and < 1", |x| (0.0..1.0).contains(&x))?
            .unwrap_or(defaults.loss),
    })
}
