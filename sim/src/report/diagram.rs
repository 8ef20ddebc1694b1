//! The message (Lamport) diagram: the Kafka requests and responses around the moment that
//! explains an anomaly, one vertical line per node, time flowing down, an arrow from each
//! send to its receive (a cross where a message was never read), with the nodes' own events
//! (faults, elections, truncations) between them. Rows are the distinct instants in order,
//! so that causality reads top to bottom and no two events overlap in time.

use std::collections::{BTreeMap, BTreeSet};

use crate::wire::{Dir, Message, Wire};

use super::document::escape;
use super::facts::{lines, order_nodes, secs};
use crate::trace::Trace;

/// At most this many messages are drawn: the ones sent nearest the focus.
pub const MESSAGES_MAX: usize = 60;
/// Messages are taken from this far either side of the focus.
const WINDOW_MS: u64 = 3_000;
const LOCAL_EVENTS_MAX: usize = 40;
const COLUMN: u64 = 130;
const LEFT: u64 = 90;
const ROW: u64 = 18;
const TOP: u64 = 40;
/// Room right of the lanes for the nodes' own events, written out.
const NOTES: u64 = 360;

/// The messages of the figure: the `MESSAGES_MAX` sent nearest `focus_ms`, in send order.
pub fn pick(wire: &Wire, focus_ms: u64) -> Vec<Message> {
    let mut all = wire.messages(focus_ms.saturating_sub(WINDOW_MS), focus_ms + WINDOW_MS);
    all.sort_by_key(|m| (m.sent_ms.abs_diff(focus_ms), m.order));
    all.truncate(MESSAGES_MAX);
    all.sort_by_key(|m| m.order);
    all
}

/// Trace events worth a dot in the diagram: what changes who leads, what is stored, or who
/// is up.
fn notable(event: &str) -> bool {
    ["fault ", "heal ", "become-leader ", "become-follower ", "truncate ", "isr ", "metadata ", "start", "end-txn ", "marker "].iter().any(|p| event.starts_with(p))
}

pub fn svg(wire: &Wire, trace: &Trace, focus_ms: u64) -> String {
    let messages = pick(wire, focus_ms);
    let (from_ms, to_ms) = match (messages.iter().map(|m| m.sent_ms).min(), messages.iter().map(|m| m.received_ms.unwrap_or(m.sent_ms)).max()) {
        (Some(a), Some(b)) => (a, b),
        _ => (focus_ms.saturating_sub(WINDOW_MS), focus_ms + WINDOW_MS),
    };
    let mut nodes: BTreeSet<String> = messages.iter().flat_map(|m| [m.from.clone(), m.to.clone()]).collect();
    let local: Vec<(u64, String, String)> = lines(trace)
        .into_iter()
        .filter(|l| l.time_ms >= from_ms && l.time_ms <= to_ms && notable(l.event) && l.node != "harness")
        .flat_map(|l| l.node.split(',').map(|n| (l.time_ms, n.to_string(), l.event.to_string())).collect::<Vec<_>>())
        .filter(|(_, n, _)| n != "all")
        .take(LOCAL_EVENTS_MAX)
        .collect();
    nodes.extend(local.iter().map(|(_, n, _)| n.clone()));
    let nodes = order_nodes(nodes.into_iter().collect());
    let column: BTreeMap<&str, u64> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), LEFT + COLUMN * i as u64 + COLUMN / 2)).collect();
    // Rows: one per instant with messages, and one per local event so none overlap.
    let mut instants: BTreeSet<(u64, usize)> = messages.iter().flat_map(|m| [Some(m.sent_ms), m.received_ms]).flatten().map(|t| (t, 0)).collect();
    instants.extend(local.iter().enumerate().map(|(i, (t, _, _))| (*t, i + 1)));
    let row: BTreeMap<(u64, usize), u64> = instants.iter().enumerate().map(|(i, k)| (*k, TOP + ROW * (i as u64 + 1))).collect();
    let notes_x = LEFT + COLUMN * nodes.len() as u64 + 10;
    let width = notes_x + NOTES;
    let height = TOP + ROW * (instants.len() as u64 + 2);
    let mut s = format!("<svg id=\"messages\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"10\">\n");
    s += "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0 0 L10 5 L0 10 z\" fill=\"#444444\"/></marker></defs>\n";
    for (n, cx) in &column {
        s += &format!("<text x=\"{cx}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><line x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\" stroke=\"#bbbbbb\"/>\n", escape(n), TOP - 10, height - 10);
    }
    for ((t, _), y) in &row {
        s += &format!("<text x=\"4\" y=\"{}\" fill=\"#888888\">{}</text>\n", y + 3, secs(*t));
    }
    for m in &messages {
        s += &arrow(m, &column, &row);
    }
    for (i, (t, n, event)) in local.iter().enumerate() {
        let (Some(cx), Some(y)) = (column.get(n.as_str()), row.get(&(*t, i + 1))) else { continue };
        let short: String = format!("{n}: {event}").chars().take(60).collect();
        s += &format!(
            "<circle class=\"event\" cx=\"{cx}\" cy=\"{y}\" r=\"4\" fill=\"#d62728\"><title>{}</title></circle><line x1=\"{cx}\" y1=\"{y}\" x2=\"{notes_x}\" y2=\"{y}\" stroke=\"#d62728\" stroke-opacity=\"0.3\" stroke-dasharray=\"1 3\"/><text x=\"{}\" y=\"{}\" fill=\"#d62728\">{}</text>\n",
            escape(event),
            notes_x + 4,
            y + 3,
            escape(&short)
        );
    }
    s += "</svg>";
    s
}

fn arrow(m: &Message, column: &BTreeMap<&str, u64>, row: &BTreeMap<(u64, usize), u64>) -> String {
    let (Some(x1), Some(x2), Some(y1)) = (column.get(m.from.as_str()), column.get(m.to.as_str()), row.get(&(m.sent_ms, 0))) else {
        return String::new();
    };
    let dash = if m.dir == Dir::Response { " stroke-dasharray=\"5 3\"" } else { "" };
    let what = if m.dir == Dir::Request { m.api.clone() } else { format!("{} response", m.api) };
    let title = match m.received_ms {
        Some(r) => format!("{what} #{} {} -> {}: sent {}, read {}", m.correlation_id, m.from, m.to, secs(m.sent_ms), secs(r)),
        None => format!("{what} #{} {} -> {}: sent {}, never read", m.correlation_id, m.from, m.to, secs(m.sent_ms)),
    };
    let label_x = (x1 + x2) / 2;
    match m.received_ms.and_then(|r| row.get(&(r, 0))) {
        Some(y2) => format!(
            "<g class=\"message\"><title>{t}</title><line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#444444\"{dash} marker-end=\"url(#arrow)\"/><text x=\"{label_x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#1f4e79\">{w}</text></g>\n",
            (y1 + y2) / 2 - 2,
            t = escape(&title),
            w = escape(&what)
        ),
        None => {
            let xm = (x1 + x2) / 2;
            format!(
                "<g class=\"message lost\"><title>{t}</title><line x1=\"{x1}\" y1=\"{y1}\" x2=\"{xm}\" y2=\"{y}\" stroke=\"#d62728\"{dash}/><text x=\"{xm}\" y=\"{y}\" text-anchor=\"middle\" fill=\"#d62728\" font-size=\"14\">×</text><text x=\"{label_x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#d62728\">{w} (lost)</text></g>\n",
                y1 - 3,
                y = y1 + ROW / 2,
                t = escape(&title),
                w = escape(&what)
            )
        }
    }
}
