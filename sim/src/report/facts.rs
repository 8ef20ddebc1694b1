//! What the report knows about a run, read back from its trace lines: faults and heals,
//! leadership changes, the controller's partition changes, truncations and how far each
//! broker's log went. Only what the trace states; nothing is guessed.

use crate::trace::Trace;

/// One trace line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub index: usize,
    pub time_ms: u64,
    pub node: &'a str,
    pub event: &'a str,
}

pub fn lines(trace: &Trace) -> Vec<Line<'_>> {
    trace
        .lines()
        .iter()
        .enumerate()
        .filter_map(|(index, l)| {
            let (time, rest) = l.trim_start().split_once(' ')?;
            let (node, event) = rest.split_once(' ')?;
            Some(Line { index, time_ms: time.parse().ok()?, node, event })
        })
        .collect()
}

/// A fault or heal as the world recorded it: `nodes` is the side it hit (several for a
/// partition), `verb` e.g. "crash", "partition", "restart", `rest` the words after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultEvent {
    pub time_ms: u64,
    pub nodes: Vec<String>,
    pub heal: bool,
    pub verb: String,
    pub rest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BecameLeader {
    pub time_ms: u64,
    pub node: String,
    pub tp: String,
    pub epoch: i64,
    pub leo: i64,
    pub isr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub time_ms: u64,
    pub node: String,
    pub tp: String,
    pub from: i64,
    pub to: i64,
    pub why: String,
}

/// A partition record of the controller: the initial assignment or a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    pub time_ms: u64,
    pub node: String,
    pub record: u64,
    pub tp: String,
    /// `None` when the record leaves the leader as it was.
    pub leader: Option<String>,
    pub isr: Option<String>,
    pub unclean: bool,
}

/// A broker's log of one partition reopened after its process started (`open tp leo=N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    pub time_ms: u64,
    pub node: String,
    pub tp: String,
    pub leo: i64,
    /// The log end this broker last reached before, from its appends, replication and
    /// truncations.
    pub leo_before: Option<i64>,
    /// Whether the node was killed (power loss) since it last opened the log.
    pub after_kill: bool,
}

/// A transaction marker a partition leader appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub time_ms: u64,
    pub node: String,
    pub tp: String,
    pub offset: i64,
    pub commit: bool,
    pub producer: String,
}

/// A request a broker held (the `hold-request` fault) and handled late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRequest {
    pub held_ms: u64,
    pub handled_ms: Option<u64>,
    pub node: String,
    pub api: String,
    pub client: String,
}

/// An EndTxn as the transaction coordinator handled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTxn {
    pub time_ms: u64,
    pub node: String,
    pub txn: String,
    pub epoch: i64,
    pub commit: bool,
    /// The error it was answered with, when refused.
    pub refused: Option<String>,
}

/// A transaction that began at its coordinator (its state became Ongoing from another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnBegin {
    pub time_ms: u64,
    pub node: String,
    pub txn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub late_requests: Vec<LateRequest>,
    pub end_txns: Vec<EndTxn>,
    pub txn_begins: Vec<TxnBegin>,
    pub markers: Vec<Marker>,
    pub faults: Vec<FaultEvent>,
    pub leaders: Vec<BecameLeader>,
    pub truncations: Vec<Truncation>,
    pub changes: Vec<PartitionChange>,
    pub reopens: Vec<Reopen>,
    /// Every node that appears in the trace, by name.
    pub nodes: Vec<String>,
}

impl Facts {
    pub fn read(trace: &Trace) -> Facts {
        let mut f = Facts::default();
        let mut leo: std::collections::BTreeMap<(String, String), i64> = std::collections::BTreeMap::new();
        let mut killed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut nodes = std::collections::BTreeSet::new();
        for l in lines(trace) {
            l.node.split(',').filter(|n| *n != "harness" && *n != "all").for_each(|n| {
                nodes.insert(n.to_string());
            });
            let words: Vec<&str> = l.event.split(' ').collect();
            match words.as_slice() {
                [verb @ ("fault" | "heal"), what, rest @ ..] => {
                    if *verb == "fault" && *what == "kill" {
                        killed.insert(l.node.to_string());
                    }
                    let nodes = l.node.split(',').map(str::to_string).collect();
                    f.faults.push(FaultEvent { time_ms: l.time_ms, nodes, heal: *verb == "heal", verb: what.to_string(), rest: rest.join(" ") });
                }
                ["become-leader", tp, epoch, end, isr @ ..] => {
                    let (epoch, end) = (num(epoch, "epoch="), num(end, "leo="));
                    leo.insert((l.node.to_string(), tp.to_string()), end);
                    let isr = isr.join(" ").trim_start_matches("isr=").to_string();
                    f.leaders.push(BecameLeader { time_ms: l.time_ms, node: l.node.to_string(), tp: tp.to_string(), epoch, leo: end, isr });
                }
                ["truncate", tp, from, "->", to, why @ ..] => {
                    let (from, to) = (num(from, ""), num(to, ""));
                    leo.insert((l.node.to_string(), tp.to_string()), to);
                    let why = why.join(" ").trim_start_matches('(').trim_end_matches(')').to_string();
                    f.truncations.push(Truncation { time_ms: l.time_ms, node: l.node.to_string(), tp: tp.to_string(), from, to, why });
                }
                ["append" | "replicate", tp, range, ..] => {
                    if let Some((_, last)) = range.split_once("..=") {
                        leo.insert((l.node.to_string(), tp.to_string()), num(last, "") + 1);
                    }
                }
                ["open", tp, end] => {
                    let key = (l.node.to_string(), tp.to_string());
                    let reopened = num(end, "leo=");
                    let after_kill = killed.contains(l.node);
                    f.reopens.push(Reopen { time_ms: l.time_ms, node: l.node.to_string(), tp: tp.to_string(), leo: reopened, leo_before: leo.get(&key).copied(), after_kill });
                    leo.insert(key, reopened);
                }
                ["marker", tp, offset, what @ ("commit" | "abort"), pid, epoch] => {
                    let producer = format!("{} {}", pid.replace("pid=", "producer id "), epoch.replace("epoch=", "epoch "));
                    f.markers.push(Marker { time_ms: l.time_ms, node: l.node.to_string(), tp: tp.to_string(), offset: num(offset, ""), commit: *what == "commit", producer });
                }
                ["hold-request:", "holding", api, "from", client] => {
                    f.late_requests.push(LateRequest { held_ms: l.time_ms, handled_ms: None, node: l.node.to_string(), api: api.to_string(), client: client.to_string() });
                }
                ["hold-request:", "handling", "the", "held", api, "from", client] => {
                    let held = f.late_requests.iter_mut().rev().find(|r| r.node == l.node && r.api == *api && r.client == *client && r.handled_ms.is_none());
                    if let Some(r) = held {
                        r.handled_ms = Some(l.time_ms);
                    }
                }
                ["end-txn", txn, _pid, epoch, commit, rest @ ..] => {
                    let refused = (rest.first() == Some(&"refused")).then(|| rest[1..].join(" "));
                    let commit = commit.trim_end_matches(':') == "commit=true";
                    f.end_txns.push(EndTxn { time_ms: l.time_ms, node: l.node.to_string(), txn: txn.to_string(), epoch: num(epoch, "epoch="), commit, refused });
                }
                ["txn-state", txn, _pid, _epoch, from, "->", "Ongoing"] if *from != "Ongoing" => {
                    f.txn_begins.push(TxnBegin { time_ms: l.time_ms, node: l.node.to_string(), txn: txn.to_string() });
                }
                ["metadata", record, kind @ ("change" | "partition"), tp, rest @ ..] => {
                    f.changes.push(partition_change(&l, record, kind, tp, rest));
                }
                _ => {}
            }
            if l.event == "start" {
                killed.remove(l.node);
            }
        }
        f.nodes = order_nodes(nodes.into_iter().collect());
        f
    }

    /// The last leader elected for `tp` at or before `time_ms`, with its epoch.
    pub fn leader_at(&self, tp: &str, time_ms: u64) -> Option<&BecameLeader> {
        self.leaders.iter().filter(|b| b.tp == tp && b.time_ms <= time_ms).max_by_key(|b| (b.epoch, b.time_ms))
    }
}

fn partition_change(l: &Line<'_>, record: &str, kind: &str, tp: &str, rest: &[&str]) -> PartitionChange {
    let field = |key: &str| rest.iter().position(|w| w.starts_with(key)).map(|i| rest[i..].join(" ")).map(|s| s.trim_start_matches(key).to_string());
    // `isr=` lists contain spaces: cut each field at the next key.
    let cut = |s: String| s.split(" unclean=").next().unwrap_or("").split(" epoch=").next().unwrap_or("").to_string();
    let leader = field("leader=").map(|s| s.split(' ').next().unwrap_or("").to_string());
    let leader = match (kind, leader.as_deref()) {
        ("partition", Some(id)) => Some(format!("broker-{id}")),
        (_, Some(s)) if s.starts_with("Some(") => Some(format!("broker-{}", s.trim_start_matches("Some(").trim_end_matches(')'))),
        _ => None,
    };
    let isr = field("isr=").map(cut).map(|s| s.trim_start_matches("Some(").trim_end_matches(')').to_string()).filter(|s| s != "None");
    PartitionChange {
        time_ms: l.time_ms,
        node: l.node.to_string(),
        record: record.parse().unwrap_or(0),
        tp: tp.to_string(),
        leader,
        isr,
        unclean: rest.contains(&"unclean=true"),
    }
}

fn num(word: &str, prefix: &str) -> i64 {
    word.trim_start_matches(prefix).trim_end_matches(',').parse().unwrap_or(-1)
}

/// Controllers, then brokers, then clients, each by number.
pub fn order_nodes(mut nodes: Vec<String>) -> Vec<String> {
    let rank = |n: &str| match n {
        n if n.starts_with("controller-") => 0,
        n if n.starts_with("broker-") => 1,
        _ => 2,
    };
    let split = |n: &str| -> (String, u64) {
        match n.rsplit_once('-') {
            Some((base, i)) if i.parse::<u64>().is_ok() => (base.to_string(), i.parse().unwrap_or(0)),
            _ => (n.to_string(), 0),
        }
    };
    nodes.sort_by_key(|n| (rank(n), split(n)));
    nodes.dedup();
    nodes
}

/// Simulated milliseconds as seconds with three decimals: "29.059 s".
pub fn secs(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(lines: &[(u64, &str, &str)]) -> Trace {
        let mut t = Trace::default();
        lines.iter().for_each(|(ms, n, e)| t.record(*ms, n, e));
        t
    }

    #[test]
    fn an_unclean_election_and_the_truncation_it_causes_are_read_back() {
        let t = trace(&[
            (2052, "broker-0", "become-leader orders/0 epoch=0 leo=0 isr=[0, 1, 2]"),
            (20000, "broker-0", "append orders/0 1000..=1074 acks=-1"),
            (22000, "broker-0,broker-1", "fault partition from broker-2"),
            (29052, "controller-0", "metadata 10 change orders/0 leader=None isr=Some([0]) unclean=false"),
            (29059, "controller-0", "metadata 12 change orders/0 leader=Some(2) isr=Some([2]) unclean=true"),
            (29060, "broker-2", "become-leader orders/0 epoch=1 leo=225 isr=[2]"),
            (42513, "broker-0", "truncate orders/0 1075 -> 225 (diverging epoch 0 end 225)"),
        ]);
        let f = Facts::read(&t);
        assert_eq!(f.faults[0].nodes, vec!["broker-0", "broker-1"]);
        assert_eq!(f.faults[0].verb, "partition");
        assert_eq!(f.changes[0].isr.as_deref(), Some("[0]"));
        assert_eq!((f.changes[1].leader.as_deref(), f.changes[1].unclean), (Some("broker-2"), true));
        assert_eq!((f.leaders[1].epoch, f.leaders[1].leo, f.leaders[1].isr.as_str()), (1, 225, "[2]"));
        assert_eq!((f.truncations[0].from, f.truncations[0].to), (1075, 225));
        assert_eq!(f.truncations[0].why, "diverging epoch 0 end 225");
        assert_eq!(f.leader_at("orders/0", 30000).map(|b| b.node.as_str()), Some("broker-2"));
        assert_eq!(f.nodes, vec!["controller-0", "broker-0", "broker-1", "broker-2"]);
    }

    #[test]
    fn seconds_keep_three_decimals() {
        assert_eq!(secs(29059), "29.059 s");
        assert_eq!(secs(5), "0.005 s");
    }
}
