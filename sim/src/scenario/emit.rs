//! `Scenario` -> TOML text in the documented section order, so that a written scenario
//! (the shrinker's output) reads like a hand-written one and parses back to the same value.

use std::collections::BTreeMap;

use toml::Value;

use super::config::ConfigValue;
use super::schema::*;
use super::target::{Peer, Target};

impl Scenario {
    /// TOML that `Scenario::parse` turns back into an equal `Scenario` (except `path`).
    pub fn to_toml(&self) -> String {
        let mut out = Emitter::default();
        out.kv("name", self.name.as_str());
        out.kv("description", self.description.as_str());
        out.kv("duration_ms", int(self.duration_ms));
        out.kv("seeds", int(self.seeds));
        out.kv("heal_ms", int(self.heal_ms));
        out.expect(&self.expect);
        out.header("[cluster]");
        out.kv("brokers", int(self.cluster.brokers.into()));
        out.kv("controllers", int(self.cluster.controllers.into()));
        out.config("[cluster.config]", &self.cluster.config);
        let behaviour = self
            .behaviour
            .iter()
            .map(|(k, v)| (k.clone(), ConfigValue::Bool(*v)));
        out.config("[behaviour]", &behaviour.collect());
        self.topics.iter().for_each(|t| out.topic(t));
        self.producers.iter().for_each(|p| out.producer(p));
        self.consumers.iter().for_each(|c| out.consumer(c));
        if let Some(nemesis) = &self.nemesis {
            out.nemesis(nemesis);
        }
        self.faults.iter().for_each(|f| out.fault(f));
        out.header("[network]");
        out.kv("latency_ms", range(self.network.latency_ms));
        out.kv("loss", self.network.loss);
        out.header("[checks]");
        out.kv("disable", strings(&self.checks.disable));
        if !self.checks.enable.is_empty() {
            out.kv("enable", strings(&self.checks.enable));
        }
        out.text
    }
}

#[derive(Default)]
struct Emitter {
    text: String,
}

impl Emitter {
    fn header(&mut self, header: &str) {
        self.text += &format!("\n{header}\n");
    }

    fn kv(&mut self, key: &str, value: impl Into<Value>) {
        self.text += &format!("{} = {}\n", quote_key(key), value.into());
    }

    /// A key/value table; omitted when empty, which parses back as empty.
    fn config(&mut self, header: &str, config: &BTreeMap<String, ConfigValue>) {
        if config.is_empty() {
            return;
        }
        self.header(header);
        for (key, value) in config {
            self.kv(key, value.to_toml());
        }
    }

    fn expect(&mut self, expect: &Expect) {
        self.header("[expect]");
        self.kv("outcome", expect.outcome.name());
        self.kv("anomalies", strings(&expect.anomalies));
        if let Some(within) = expect.within_seeds {
            self.kv("within_seeds", int(within));
        }
        self.kv("allow", strings(&expect.allow));
        self.kv("marks", strings(&expect.marks));
    }

    fn topic(&mut self, topic: &TopicSpec) {
        self.header("[[topics]]");
        self.kv("name", topic.name.as_str());
        self.kv("partitions", int(topic.partitions.into()));
        self.kv("replication_factor", int(topic.replication_factor.into()));
        if let Some(rows) = &topic.assignment {
            let ids =
                |row: &Vec<u32>| Value::Array(row.iter().map(|id| int((*id).into())).collect());
            self.kv("assignment", Value::Array(rows.iter().map(ids).collect()));
        }
    }

    fn producer(&mut self, p: &ProducerSpec) {
        self.header("[[producers]]");
        self.kv("name", p.name.as_str());
        self.kv("count", int(p.count.into()));
        self.kv("topic", p.topic.as_str());
        self.kv("messages", int(p.messages));
        self.kv("rate_per_sec", p.rate_per_sec);
        self.kv("keys", int(p.keys.into()));
        self.kv("transactional", p.transactional);
        self.kv("records_per_txn", int(p.records_per_txn.into()));
        self.kv("abort_probability", p.abort_probability);
        self.kv("restart_resend", p.restart_resend);
        self.config("[producers.config]", &p.config);
    }

    fn consumer(&mut self, c: &ConsumerSpec) {
        self.header("[[consumers]]");
        self.kv("name", c.name.as_str());
        self.kv("count", int(c.count.into()));
        if let Some(group) = &c.group {
            self.kv("group", group.as_str());
        }
        self.kv("topics", strings(&c.topics));
        self.kv("processing_ms", int(c.processing_ms));
        self.kv("commit", c.commit.name());
        if c.threads > 0 {
            self.kv("threads", int(c.threads.into()));
        }
        if c.start_ms > 0 {
            self.kv("start_ms", int(c.start_ms));
        }
        if let Some(out) = &c.output_topic {
            self.kv("output_topic", out.as_str());
        }
        if c.abort_probability > 0.0 {
            self.kv("abort_probability", c.abort_probability);
        }
        if !c.rewind_on_abort {
            self.kv("rewind_on_abort", false);
        }
        self.config("[consumers.config]", &c.config);
    }

    fn nemesis(&mut self, n: &Nemesis) {
        self.header("[nemesis]");
        let kinds: Vec<String> = n.kinds.iter().map(|k| k.name().to_string()).collect();
        self.kv("kinds", strings(&kinds));
        self.kv("interval_ms", range(n.interval_ms));
        self.kv("duration_ms", range(n.duration_ms));
        self.kv("targets", n.targets.name());
    }

    fn fault(&mut self, f: &FaultSpec) {
        self.header("[[faults]]");
        self.kv("at_ms", int(f.at_ms));
        self.kv("action", f.action.name());
        if !f.target.is_empty() {
            self.kv("target", targets(&f.target));
        }
        match &f.peer {
            Some(Peer::Servers) => self.kv("peer", "servers"),
            Some(Peer::All) => self.kv("peer", "all"),
            Some(Peer::Targets(list)) => self.kv("peer", targets(list)),
            None => {}
        }
        if let Some(duration) = f.duration_ms {
            self.kv("duration_ms", int(duration));
        }
        if let Some(api) = &f.api {
            self.kv("api", api.as_str());
        }
        if let Some(by) = f.by_ms {
            self.kv("by_ms", by);
        }
    }
}

/// TOML integers are i64; a larger value cannot have come from a parsed file.
fn int(value: u64) -> Value {
    Value::Integer(i64::try_from(value).expect("scenario integers fit in i64"))
}

fn range((lo, hi): (u64, u64)) -> Value {
    Value::Array(vec![int(lo), int(hi)])
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().map(|s| Value::String(s.clone())).collect())
}

/// One target as a string, several as a list: both parse back to the same `Vec`.
fn targets(list: &[Target]) -> Value {
    match list {
        [one] => Value::String(one.to_string()),
        many => Value::Array(many.iter().map(|t| Value::String(t.to_string())).collect()),
    }
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}
