//! The anomaly in plain words: for the values an anomaly names, what the history says
//! happened to them (sent by whom and when, acknowledged where, read by whom), and which
//! broker led the partition when the acknowledgement came.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, OpFn, OpKind};

use super::facts::{secs, Facts};

/// Acknowledged sends by partition and offset: `(topic/partition, offset) -> [(ack time, value)]`.
#[derive(Debug, Default)]
pub struct Acks {
    by_offset: BTreeMap<(String, i64), Vec<(u64, String)>>,
}

impl Acks {
    pub fn from_history(h: &History) -> Acks {
        let mut by_offset: BTreeMap<(String, i64), Vec<(u64, String)>> = BTreeMap::new();
        for op in h.ops().iter().filter(|o| o.f == OpFn::Send && o.kind == OpKind::Ok) {
            if let Some(s) = op.value.as_send() {
                if let (Some(p), Some(o)) = (s.partition, s.offset) {
                    by_offset.entry((format!("{}/{p}", s.topic), o)).or_default().push((op.time_ms, s.value.clone()));
                }
            }
        }
        Acks { by_offset }
    }

    /// Whether some write was acknowledged at `tp` `offset` before `time_ms`.
    pub fn acked_before(&self, tp: &str, offset: i64, time_ms: u64) -> bool {
        self.by_offset.get(&(tp.to_string(), offset)).is_some_and(|v| v.iter().any(|(t, _)| *t <= time_ms))
    }
}

/// Where a write was acknowledged: topic/partition and offset.
pub type Position = (String, i64);

/// What the history says about one value.
#[derive(Debug, Default, Clone)]
pub struct ValueStory {
    pub sent: Option<(u64, String)>,
    /// The send's completion: time, ok/fail/info, and where it was acknowledged.
    pub outcome: Option<(u64, OpKind, Option<Position>)>,
    /// The first poll that returned it: time, consumer, partition, offset.
    pub first_read: Option<(u64, String, String, i64)>,
    pub reads: usize,
}

/// Stories of `values`, from one pass over the history.
pub fn value_stories(h: &History, values: &BTreeSet<String>) -> BTreeMap<String, ValueStory> {
    let mut out: BTreeMap<String, ValueStory> = values.iter().map(|v| (v.clone(), ValueStory::default())).collect();
    for op in h.ops() {
        match (op.f, op.kind) {
            (OpFn::Send, kind) => {
                let Some(s) = op.value.as_send() else { continue };
                let Some(story) = out.get_mut(&s.value) else { continue };
                if kind == OpKind::Invoke {
                    story.sent = Some((op.time_ms, op.process.clone()));
                } else {
                    let at = s.partition.zip(s.offset).map(|(p, o)| (format!("{}/{p}", s.topic), o));
                    story.outcome = Some((op.time_ms, kind, at));
                }
            }
            (OpFn::Poll, OpKind::Ok) => {
                let Some(p) = op.value.as_poll() else { continue };
                for r in &p.records {
                    if let Some(story) = out.get_mut(&r.value) {
                        story.reads += 1;
                        if story.first_read.is_none() {
                            story.first_read = Some((op.time_ms, op.process.clone(), format!("{}/{}", r.topic, r.partition), r.offset));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// One sentence per value: sent, acknowledged (and by which leader), read.
pub fn describe(value: &str, story: &ValueStory, facts: &Facts) -> String {
    let mut parts = Vec::new();
    match &story.sent {
        Some((t, p)) => parts.push(format!("sent by {p} at {}", secs(*t))),
        None => parts.push("never sent by a producer of this run".to_string()),
    }
    match &story.outcome {
        Some((t, OpKind::Ok, Some((tp, o)))) => {
            let leader = facts.leader_at(tp, *t).map(|b| format!(" (leader then: {}, epoch {})", b.node, b.epoch)).unwrap_or_default();
            parts.push(format!("acknowledged at {} as {tp} offset {o}{leader}", secs(*t)));
        }
        Some((t, OpKind::Fail, _)) => parts.push(format!("failed definitely at {}", secs(*t))),
        Some((t, _, _)) => parts.push(format!("outcome unknown (info) at {}", secs(*t))),
        None => {}
    }
    match &story.first_read {
        Some((t, c, tp, o)) => parts.push(format!("first read by {c} at {} from {tp} offset {o} ({} read(s) in all)", secs(*t), story.reads)),
        None => parts.push("never read by a consumer".to_string()),
    }
    format!("`{value}`: {}.", parts.join("; "))
}
