//! The black-box checkers: pure functions from a history to the anomalies it shows. They
//! observe and never act. Table of contents:
//!
//! - `index`: `HistoryIndex`, the history digested once for all checkers (including the
//!   consumers' back-to-back reads, processed records and ok commits)
//! - `anomaly`: the `Anomaly` type and its deterministic order
//! - `lost_write`: `lost-write`, acked but skipped by later reads
//! - `unseen`: `unseen`, acked but never read by the end
//! - `duplicate`: `duplicate`, one value at two positions
//! - `inconsistent_offsets`: `inconsistent-offsets`, two values at one position
//! - `reorder`: `reorder`, a producer's messages out of send order in a partition
//! - `aborted_read`: `aborted-read`, a definitely failed send was read
//! - `stuck_producer`: `stuck-producer`, a producer never acknowledged once
//! - `poll_skip`: `poll-skip`, a consumer's next poll jumped over known records
//! - `nonmonotonic_poll`: `nonmonotonic-poll`, a consumer read a partition backwards
//! - `redelivery`: `redelivery`, a record processed more than once by a group
//! - `lost_delivery`: `lost-delivery`, a record below a group's final commit never processed
//! - `torn_transaction`: `torn-transaction`, a committed transaction only partly read

pub mod aborted_read;
pub mod anomaly;
pub mod duplicate;
pub mod inconsistent_offsets;
pub mod index;
pub mod lost_delivery;
pub mod lost_write;
pub mod nonmonotonic_poll;
pub mod poll_skip;
pub mod redelivery;
pub mod reorder;
pub mod stuck_producer;
pub mod torn_transaction;
pub mod unseen;

pub use anomaly::{sort_anomalies, Anomaly};
pub use index::HistoryIndex;

use crate::history::History;

pub type Checker = fn(&HistoryIndex) -> Vec<Anomaly>;

/// Every checker with the anomaly kind it reports, in a fixed order.
pub const CHECKERS: &[(&str, Checker)] = &[
    (lost_write::KIND, lost_write::check),
    (unseen::KIND, unseen::check),
    (duplicate::KIND, duplicate::check),
    (inconsistent_offsets::KIND, inconsistent_offsets::check),
    (reorder::KIND, reorder::check),
    (aborted_read::KIND, aborted_read::check),
    (stuck_producer::KIND, stuck_producer::check),
    (poll_skip::KIND, poll_skip::check),
    (nonmonotonic_poll::KIND, nonmonotonic_poll::check),
    (redelivery::KIND, redelivery::check),
    (lost_delivery::KIND, lost_delivery::check),
    (torn_transaction::KIND, torn_transaction::check),
];

/// The anomaly kinds these checkers can report (names from SCENARIOS.md).
pub const CHECKER_NAMES: &[&str] = &[
    lost_write::KIND,
    unseen::KIND,
    duplicate::KIND,
    inconsistent_offsets::KIND,
    reorder::KIND,
    aborted_read::KIND,
    stuck_producer::KIND,
    poll_skip::KIND,
    nonmonotonic_poll::KIND,
    redelivery::KIND,
    lost_delivery::KIND,
    torn_transaction::KIND,
];

/// Builds the index once, runs every checker whose name is not in `disabled`, and returns
/// all anomalies in the order of `sort_anomalies`.
pub fn check_all(history: &History, disabled: &[String]) -> Vec<Anomaly> {
    let idx = HistoryIndex::build(history);
    let mut out: Vec<Anomaly> = CHECKERS
        .iter()
        .filter(|(name, _)| !disabled.iter().any(|d| d == name))
        .flat_map(|(_, check)| check(&idx))
        .collect();
    sort_anomalies(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::Run;

    #[test]
    fn checker_names_match_the_checker_table() {
        let table: Vec<&str> = CHECKERS.iter().map(|(n, _)| *n).collect();
        assert_eq!(table, CHECKER_NAMES);
    }

    fn broken_run() -> Run {
        let mut r = Run::new();
        r.send_ok("p-0", 0, 0, 0);
        r.send_ok("p-0", 1, 0, 1);
        r.send_ok("p-0", 2, 0, 2);
        r.send_ok("p-0", 3, 1, 0);
        r.poll("c-0", &[(0, 0, "p-0:0"), (0, 2, "p-0:2"), (0, 3, "p-0:0")]);
        r
    }

    #[test]
    fn check_all_sorts_by_time_then_kind() {
        let found = check_all(&broken_run().history, &[]);
        let kinds: Vec<&str> = found.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, vec!["lost-write", "duplicate", "unseen"]);
        assert!(found.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    }

    #[test]
    fn check_all_sorts_the_consumer_checkers_by_time_then_kind_too() {
        let mut r = Run::new();
        for seq in 0..5 {
            r.send_ok("p-0", seq, 0, seq as i64);
        }
        r.poll("c-1", &[(0, 1, "p-0:1")]);
        r.poll("c-0", &[(0, 0, "p-0:0")]);
        r.poll("c-0", &[(0, 3, "p-0:3")]);
        r.poll("c-0", &[(0, 2, "p-0:2")]);
        r.process("c-0", Some("g"), &[(0, 0, "p-0:0"), (0, 1, "p-0:1"), (0, 2, "p-0:2")]);
        r.process("c-1", Some("g"), &[(0, 2, "p-0:2"), (0, 3, "p-0:3")]);
        r.commit("c-1", "g", "sync", OpKind::Ok, &[(0, 5)]);
        let found = check_all(&r.history, &[]);
        let kinds: Vec<&str> = found.iter().map(|a| a.kind.as_str()).collect();
        let expected = [
            "poll-skip",
            "nonmonotonic-poll",
            "redelivery",
            "lost-delivery",
            "unseen",
        ];
        assert_eq!(kinds, expected, "{found:?}");
        assert!(found.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    }

    #[test]
    fn disabled_checkers_do_not_run() {
        let disabled = vec!["unseen".to_string(), "duplicate".to_string()];
        let found = check_all(&broken_run().history, &disabled);
        let kinds: Vec<&str> = found.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, vec!["lost-write"]);
    }

    #[test]
    fn an_empty_history_has_no_anomalies() {
        assert!(check_all(&History::new(), &[]).is_empty());
    }
}
