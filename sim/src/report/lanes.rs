//! The timeline figure: one lane per node across the whole run, with fault bars, client
//! operations (ok / fail / info), leadership changes and the anomalies' times. Plain SVG, no
//! script, so the page needs nothing from the network.

use std::collections::{BTreeMap, BTreeSet};

use crate::checkers::Anomaly;
use crate::history::{History, OpKind};

use super::document::escape;
use super::facts::{secs, Facts};

const WIDTH: u64 = 1100;
const LEFT: u64 = 130;
const RIGHT: u64 = 20;
const LANE: u64 = 24;
const TOP: u64 = 28;
/// Height of one anomaly label under the lanes.
const LABEL: u64 = 14;

/// A fault drawn as a bar on one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub node: String,
    pub from_ms: u64,
    pub to_ms: u64,
    pub what: String,
}

/// What heals a fault verb, as the world records it ("fault crash" ... "heal restart").
fn family(verb: &str) -> Option<&'static str> {
    match verb {
        "crash" | "kill" | "restart" => Some("down"),
        "pause" | "resume" => Some("paused"),
        "partition" | "partition-oneway" | "repair" => Some("cut"),
        "hold" | "release" => Some("held"),
        _ => None,
    }
}

/// Fault intervals per node, from the faults and heals of the trace; faults still open at
/// the end of the run end with it.
pub fn bars(facts: &Facts, end_ms: u64) -> Vec<Bar> {
    let mut open: BTreeMap<(String, &'static str), (u64, String)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut close = |open: &mut BTreeMap<(String, &'static str), (u64, String)>, pick: &dyn Fn(&(String, &'static str)) -> bool, at: u64| {
        let keys: Vec<(String, &'static str)> = open.keys().filter(|k| pick(k)).cloned().collect();
        for k in keys {
            if let Some((from_ms, what)) = open.remove(&k) {
                out.push(Bar { node: k.0.clone(), from_ms, to_ms: at, what });
            }
        }
    };
    for f in &facts.faults {
        if f.nodes == ["harness"] {
            close(&mut open, &|_| true, f.time_ms);
            continue;
        }
        let Some(fam) = family(&f.verb) else {
            if !f.heal {
                f.nodes.iter().for_each(|n| {
                    open.entry((n.clone(), "instant")).or_insert((f.time_ms, f.verb.clone()));
                });
                close(&mut open, &|k| k.1 == "instant", f.time_ms);
            }
            continue;
        };
        if f.heal {
            let all = f.nodes == ["all"];
            close(&mut open, &|k| k.1 == fam && (all || f.nodes.contains(&k.0)), f.time_ms);
        } else {
            let what = if f.rest.is_empty() { f.verb.clone() } else { format!("{} {}", f.verb, f.rest) };
            f.nodes.iter().for_each(|n| {
                open.entry((n.clone(), fam)).or_insert((f.time_ms, what.clone()));
            });
        }
    }
    close(&mut open, &|_| true, end_ms);
    out.sort_by(|a, b| (a.from_ms, &a.node, a.to_ms).cmp(&(b.from_ms, &b.node, b.to_ms)));
    out
}

fn color(what: &str) -> &'static str {
    match what.split(' ').next().unwrap_or("") {
        "crash" => "#e45756",
        "kill" => "#9d0208",
        "pause" => "#8c8c8c",
        "hold" => "#b279a2",
        "partition" | "partition-oneway" => "#f58518",
        _ => "#222222",
    }
}

fn x(ms: u64, end_ms: u64) -> u64 {
    LEFT + ms.min(end_ms) * (WIDTH - LEFT - RIGHT) / end_ms.max(1)
}

/// The lanes: every node of the trace, then every client of the history.
pub fn lane_nodes(facts: &Facts, history: &History) -> Vec<String> {
    let mut all: Vec<String> = facts.nodes.clone();
    all.extend(history.ops().iter().map(|o| o.process.clone()).collect::<BTreeSet<_>>());
    super::facts::order_nodes(all)
}

pub fn svg(facts: &Facts, history: &History, anomalies: &[Anomaly], end_ms: u64) -> String {
    let nodes = lane_nodes(facts, history);
    let lane: BTreeMap<&str, u64> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i as u64)).collect();
    let lanes_bottom = TOP + LANE * nodes.len() as u64;
    let kinds = anomalies.iter().map(|a| a.kind.as_str()).collect::<BTreeSet<_>>().len() as u64;
    let height = lanes_bottom + LABEL * (kinds + 1);
    let mut s = format!("<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
    s += &axis(end_ms, height);
    for (i, n) in nodes.iter().enumerate() {
        let y = TOP + LANE * i as u64;
        s += &format!("<text x=\"4\" y=\"{}\">{}</text><line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#dddddd\"/>\n", y + 15, escape(n), y + 12, WIDTH - RIGHT, y + 12);
    }
    for b in bars(facts, end_ms) {
        let Some(i) = lane.get(b.node.as_str()) else { continue };
        let (x1, x2) = (x(b.from_ms, end_ms), x(b.to_ms, end_ms).max(x(b.from_ms, end_ms) + 2));
        let title = format!("{} {} from {} to {}", b.node, b.what, secs(b.from_ms), secs(b.to_ms));
        s += &format!("<rect class=\"fault\" x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"8\" fill=\"{}\" opacity=\"0.8\"><title>{}</title></rect>\n", TOP + LANE * i + 2, x2 - x1, color(&b.what), escape(&title));
    }
    s += &operations(history, &lane, end_ms);
    s += &leadership(facts, &lane, end_ms);
    s += &anomaly_marks(anomalies, end_ms, lanes_bottom);
    s += "</svg>";
    s
}

fn axis(end_ms: u64, height: u64) -> String {
    let step_ms = [1_000, 5_000, 10_000, 20_000, 50_000, 100_000].into_iter().find(|s| end_ms / s <= 12).unwrap_or(200_000);
    (0..=end_ms / step_ms)
        .map(|i| {
            let xi = x(i * step_ms, end_ms);
            format!("<line x1=\"{xi}\" y1=\"{}\" x2=\"{xi}\" y2=\"{}\" stroke=\"#f0f0f0\"/><text x=\"{xi}\" y=\"14\" text-anchor=\"middle\">{} s</text>\n", TOP - 6, height - 16, i * step_ms / 1000)
        })
        .collect()
}

/// Client operations, one tick per lane, pixel column and outcome.
fn operations(history: &History, lane: &BTreeMap<&str, u64>, end_ms: u64) -> String {
    let mut ticks: BTreeSet<(u64, u64, u8)> = BTreeSet::new();
    for op in history.ops().iter().filter(|o| o.kind != OpKind::Invoke) {
        let Some(i) = lane.get(op.process.as_str()) else { continue };
        let k = match op.kind {
            OpKind::Ok => 0,
            OpKind::Info => 1,
            _ => 2,
        };
        ticks.insert((*i, x(op.time_ms, end_ms), k));
    }
    let mut s = String::new();
    for (i, xi, k) in ticks {
        let (dy, fill) = [(12, "#54a24b"), (16, "#f2a900"), (20, "#d62728")][usize::from(k)];
        s += &format!("<rect class=\"op\" x=\"{xi}\" y=\"{}\" width=\"1\" height=\"4\" fill=\"{fill}\"/>\n", TOP + LANE * i + dy - 2);
    }
    s
}

/// Leaders elected (triangles on the broker's lane) and unclean elections (on the
/// controller's lane), for the scenario's own topics.
fn leadership(facts: &Facts, lane: &BTreeMap<&str, u64>, end_ms: u64) -> String {
    let mut s = String::new();
    for b in facts.leaders.iter().filter(|b| !b.tp.starts_with("__")) {
        let Some(i) = lane.get(b.node.as_str()) else { continue };
        let (xi, y) = (x(b.time_ms, end_ms), TOP + LANE * i);
        let title = format!("{} became leader of {} epoch {} at {} (log end {}, isr {})", b.node, b.tp, b.epoch, secs(b.time_ms), b.leo, b.isr);
        s += &format!("<path class=\"leader\" d=\"M{xi} {y} l-4 -6 h8 z\" fill=\"#4c78a8\"><title>{}</title></path>\n", escape(&title), y = y + 12);
    }
    for c in facts.changes.iter().filter(|c| c.unclean) {
        let Some(i) = lane.get(c.node.as_str()) else { continue };
        let (xi, y) = (x(c.time_ms, end_ms), TOP + LANE * i + 12);
        let title = format!("unclean election of {} for {} at {}", c.leader.as_deref().unwrap_or("?"), c.tp, secs(c.time_ms));
        s += &format!("<circle class=\"unclean\" cx=\"{xi}\" cy=\"{y}\" r=\"5\" fill=\"#d62728\"><title>{}</title></circle>\n", escape(&title));
    }
    s
}

/// A dashed line at the first anomaly of each kind, labels stacked under the lanes.
fn anomaly_marks(anomalies: &[Anomaly], end_ms: u64, lanes_bottom: u64) -> String {
    let mut seen = BTreeSet::new();
    let mut s = String::new();
    for (i, a) in anomalies.iter().filter(|a| seen.insert(a.kind.clone())).enumerate() {
        let xi = x(a.time_ms, end_ms);
        let label_y = lanes_bottom + LABEL * (i as u64 + 1);
        let title = format!("first {} at {}", a.kind, secs(a.time_ms));
        s += &format!(
            "<line class=\"anomaly\" x1=\"{xi}\" y1=\"{TOP}\" x2=\"{xi}\" y2=\"{}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"><title>{t}</title></line><text x=\"{xi}\" y=\"{label_y}\" fill=\"#d62728\">{k} at {at}</text>\n",
            label_y - 10,
            t = escape(&title),
            k = escape(&a.kind),
            at = secs(a.time_ms)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Trace;

    #[test]
    fn a_crash_is_a_bar_until_its_restart_and_open_faults_end_with_the_run() {
        let mut t = Trace::default();
        t.record(1000, "broker-0", "fault crash");
        t.record(3000, "broker-0", "heal restart");
        t.record(4000, "broker-1,broker-2", "fault partition from broker-0");
        t.record(5000, "broker-1", "fault pause");
        t.record(6000, "broker-1,broker-2", "heal repair");
        let bars = bars(&Facts::read(&t), 9000);
        let got: Vec<(&str, u64, u64)> = bars.iter().map(|b| (b.node.as_str(), b.from_ms, b.to_ms)).collect();
        assert_eq!(got, vec![("broker-0", 1000, 3000), ("broker-1", 4000, 6000), ("broker-2", 4000, 6000), ("broker-1", 5000, 9000)]);
        assert_eq!(bars[1].what, "partition from broker-0");
    }
}
