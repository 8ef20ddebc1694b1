//! The `Anomaly` every checker reports, and the one deterministic order they are listed in.

use super::index::Tp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// One of `CHECKER_NAMES`, e.g. "lost-write".
    pub kind: String,
    /// Simulated time at which the anomaly became observable.
    pub time_ms: u64,
    /// Processes (or nodes) involved, sorted, without repeats.
    pub nodes: Vec<String>,
    pub topic: String,
    pub partition: i32,
    pub offsets: Vec<i64>,
    pub values: Vec<String>,
    /// One plain-English sentence with the numbers in it.
    pub explanation: String,
}

impl Anomaly {
    pub fn new(kind: &str, time_ms: u64, tp: &Tp) -> Self {
        Anomaly {
            kind: kind.to_string(),
            time_ms,
            nodes: Vec::new(),
            topic: tp.topic.clone(),
            partition: tp.partition,
            offsets: Vec::new(),
            values: Vec::new(),
            explanation: String::new(),
        }
    }

    /// Sets `nodes` from any list of names, sorted and deduplicated so output is stable.
    pub fn with_nodes<'a>(mut self, nodes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut nodes: Vec<String> = nodes.into_iter().map(str::to_string).collect();
        nodes.sort();
        nodes.dedup();
        self.nodes = nodes;
        self
    }

    pub fn with_offsets(mut self, offsets: Vec<i64>) -> Self {
        self.offsets = offsets;
        self
    }

    pub fn with_values(mut self, values: Vec<String>) -> Self {
        self.values = values;
        self
    }

    pub fn explained(mut self, explanation: String) -> Self {
        self.explanation = explanation;
        self
    }
}

/// Time, kind, partition, first offset, then the rest of the fields so that the order is total
/// and two runs of the same seed list anomalies identically.
pub fn sort_anomalies(anomalies: &mut [Anomaly]) {
    anomalies.sort_by(|a, b| {
        let key = |x: &Anomaly| {
            (
                x.time_ms,
                x.kind.clone(),
                x.partition,
                x.offsets.first().copied(),
                x.topic.clone(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.offsets.cmp(&b.offsets))
            .then_with(|| a.values.cmp(&b.values))
            .then_with(|| a.nodes.cmp(&b.nodes))
    });
}
