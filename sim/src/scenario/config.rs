//! Kafka config maps: `[cluster.config]`, `[producers.config]`, `[consumers.config]`.
//! Keys keep Kafka's names exactly as written. Type-checked here (anything else dotted is
//! stored as given and left to the stage that uses it):
//!
//! - every scope: keys ending in `.enable` or starting with `enable.` must be booleans;
//! - cluster: `min.insync.replicas`, `replica.lag.time.max.ms`, `log.flush.interval.messages`,
//!   `default.replication.factor`, `num.partitions`, `offsets.topic.replication.factor`,
//!   `offsets.topic.num.partitions`, `transaction.state.log.replication.factor`,
//!   `transaction.state.log.min.isr`, `transaction.state.log.num.partitions`,
//!   `transaction.max.timeout.ms`, `broker.session.timeout.ms`,
//!   `broker.heartbeat.interval.ms` (integers >= 1), `log.flush.interval.ms`,
//!   `group.initial.rebalance.delay.ms`, `replica.fetch.wait.max.ms` (integers >= 0);
//! - producer: `acks` ("all" | "1" | "0" | -1 | 0 | 1, normalized to the strings "all", "1",
//!   "0"), `max.in.flight.requests.per.connection`, `transaction.timeout.ms` (>= 1),
//!   `retries`, `delivery.timeout.ms`, `request.timeout.ms`, `linger.ms`, `batch.size`,
//!   `retry.backoff.ms`, `max.block.ms` (>= 0), `transactional.id` (string);
//! - consumer: `isolation.level` (read_committed | read_uncommitted), `auto.offset.reset`
//!   (earliest | latest | none), `group.protocol` (classic | consumer),
//!   `max.poll.interval.ms`, `session.timeout.ms`, `heartbeat.interval.ms`,
//!   `max.poll.records` (>= 1), `auto.commit.interval.ms`, `fetch.min.bytes`,
//!   `fetch.max.wait.ms` (>= 0), `group.instance.id`, `partition.assignment.strategy` (strings).
//!
//! Undotted keys other than the ones listed (`acks`, `retries`) are rejected: Kafka has almost
//! none, so an undotted key is nearly always a typo.

use std::collections::BTreeMap;
use std::fmt;

use toml::{Table, Value};

use super::error::{Result, ScenarioError};
use super::section::{describe, join};

#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Int(i64),
    Bool(bool),
    Str(String),
    Float(f64),
}

impl ConfigValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ConfigValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ConfigValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ConfigValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Float(x) => Some(*x),
            ConfigValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub(crate) fn to_toml(&self) -> Value {
        match self {
            ConfigValue::Int(i) => Value::Integer(*i),
            ConfigValue::Bool(b) => Value::Boolean(*b),
            ConfigValue::Str(s) => Value::String(s.clone()),
            ConfigValue::Float(x) => Value::Float(*x),
        }
    }
}

/// Kafka's textual form: `all`, `5`, `true` (strings unquoted).
impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Str(s) => f.write_str(s),
            ConfigValue::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Which config map is being read; each knows different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Cluster,
    Producer,
    Consumer,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Bool,
    IntAtLeast(i64),
    OneOf(&'static [&'static str]),
    Acks,
    Str,
}

use Rule::{IntAtLeast, OneOf, Str};

const CLUSTER_RULES: &[(&str, Rule)] = &[
    ("min.insync.replicas", IntAtLeast(1)),
    ("replica.lag.time.max.ms", IntAtLeast(1)),
    ("log.flush.interval.messages", IntAtLeast(1)),
    ("log.flush.interval.ms", IntAtLeast(0)),
    ("default.replication.factor", IntAtLeast(1)),
    ("num.partitions", IntAtLeast(1)),
    ("offsets.topic.replication.factor", IntAtLeast(1)),
    ("offsets.topic.num.partitions", IntAtLeast(1)),
    ("transaction.state.log.replication.factor", IntAtLeast(1)),
    ("transaction.state.log.min.isr", IntAtLeast(1)),
    ("transaction.state.log.num.partitions", IntAtLeast(1)),
    ("transaction.max.timeout.ms", IntAtLeast(1)),
    ("broker.session.timeout.ms", IntAtLeast(1)),
    ("broker.heartbeat.interval.ms", IntAtLeast(1)),
    ("group.initial.rebalance.delay.ms", IntAtLeast(0)),
    ("replica.fetch.wait.max.ms", IntAtLeast(0)),
];

const PRODUCER_RULES: &[(&str, Rule)] = &[
    ("acks", Rule::Acks),
    ("retries", IntAtLeast(0)),
    ("max.in.flight.requests.per.connection", IntAtLeast(1)),
    ("transaction.timeout.ms", IntAtLeast(1)),
    ("delivery.timeout.ms", IntAtLeast(0)),
    ("request.timeout.ms", IntAtLeast(0)),
    ("linger.ms", IntAtLeast(0)),
    ("batch.size", IntAtLeast(0)),
    ("retry.backoff.ms", IntAtLeast(0)),
    ("max.block.ms", IntAtLeast(0)),
    ("transactional.id", Str),
];

const CONSUMER_RULES: &[(&str, Rule)] = &[
    (
        "isolation.level",
        OneOf(&["read_committed", "read_uncommitted"]),
    ),
    ("auto.offset.reset", OneOf(&["earliest", "latest", "none"])),
    ("group.protocol", OneOf(&["classic", "consumer"])),
    ("max.poll.interval.ms", IntAtLeast(1)),
    ("session.timeout.ms", IntAtLeast(1)),
    ("heartbeat.interval.ms", IntAtLeast(1)),
    ("max.poll.records", IntAtLeast(1)),
    ("auto.commit.interval.ms", IntAtLeast(0)),
    ("fetch.min.bytes", IntAtLeast(0)),
    ("fetch.max.wait.ms", IntAtLeast(0)),
    ("group.instance.id", Str),
    ("partition.assignment.strategy", Str),
];

/// Reads one config table found at key path `path`.
pub(crate) fn read(
    file: &str,
    path: &str,
    table: Table,
    scope: Scope,
) -> Result<BTreeMap<String, ConfigValue>> {
    let mut config = BTreeMap::new();
    for (key, value) in table {
        let key_path = join(path, &key);
        let converted = match rule_for(scope, &key) {
            Some(rule) => apply(rule, &value),
            None if !key.contains('.') => {
                return Err(ScenarioError::new(file, key_path, undotted_expected(scope)));
            }
            None => scalar(&value).ok_or("a string, integer, float or boolean".to_string()),
        };
        let value = converted.map_err(|expected| {
            ScenarioError::new(
                file,
                &key_path,
                format!("{expected}, found {}", describe(&value)),
            )
        })?;
        config.insert(key, value);
    }
    Ok(config)
}

fn rules(scope: Scope) -> &'static [(&'static str, Rule)] {
    match scope {
        Scope::Cluster => CLUSTER_RULES,
        Scope::Producer => PRODUCER_RULES,
        Scope::Consumer => CONSUMER_RULES,
    }
}

fn rule_for(scope: Scope, key: &str) -> Option<Rule> {
    if key.ends_with(".enable") || key.starts_with("enable.") {
        return Some(Rule::Bool);
    }
    rules(scope)
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, rule)| *rule)
}

fn undotted_expected(scope: Scope) -> String {
    let undotted: Vec<&str> = rules(scope)
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| !n.contains('.'))
        .collect();
    let mut expected = "a Kafka config name (dotted, like \"linger.ms\"".to_string();
    if !undotted.is_empty() {
        expected += &format!(", or one of: {}", undotted.join(", "));
    }
    expected + ")"
}

/// Converts `value` under `rule`; `Err` carries the expectation for the message.
fn apply(rule: Rule, value: &Value) -> std::result::Result<ConfigValue, String> {
    let converted = match rule {
        Rule::Bool => value.as_bool().map(ConfigValue::Bool),
        Rule::IntAtLeast(min) => value
            .as_integer()
            .filter(|i| *i >= min)
            .map(ConfigValue::Int),
        Rule::OneOf(names) => value
            .as_str()
            .filter(|s| names.contains(s))
            .map(|s| ConfigValue::Str(s.to_string())),
        Rule::Acks => acks(value).map(|s| ConfigValue::Str(s.to_string())),
        Rule::Str => value.as_str().map(|s| ConfigValue::Str(s.to_string())),
    };
    converted.ok_or_else(|| expectation(rule))
}

fn expectation(rule: Rule) -> String {
    match rule {
        Rule::Bool => "a boolean".to_string(),
        Rule::IntAtLeast(min) => format!("an integer >= {min}"),
        Rule::OneOf(names) => format!("one of: {}", quoted(names)),
        Rule::Acks => "one of: \"all\", \"1\", \"0\", -1, 0, 1".to_string(),
        Rule::Str => "a string".to_string(),
    }
}

/// Kafka accepts acks as a string or a number, and -1 means all.
fn acks(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(s) => match s.as_str() {
            "all" | "-1" => Some("all"),
            "1" => Some("1"),
            "0" => Some("0"),
            _ => None,
        },
        Value::Integer(-1) => Some("all"),
        Value::Integer(1) => Some("1"),
        Value::Integer(0) => Some("0"),
        _ => None,
    }
}

fn scalar(value: &Value) -> Option<ConfigValue> {
    match value {
        Value::Integer(i) => Some(ConfigValue::Int(*i)),
        Value::Boolean(b) => Some(ConfigValue::Bool(*b)),
        Value::String(s) => Some(ConfigValue::Str(s.clone())),
        Value::Float(x) => Some(ConfigValue::Float(*x)),
        _ => None,
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
