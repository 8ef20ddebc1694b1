//! `aborted-read`: a poll returned a value whose every send completed `fail`. `fail` is a
//! definite "nothing was appended", so reading the value contradicts what the producer was
//! told. (A value also sent by a retry that succeeded or timed out is not aborted.)

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, Observation, SendOutcome};

pub const KIND: &str = "aborted-read";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    idx.values()
        .filter_map(|(value, obs)| report(idx, value, &obs))
        .collect()
}

fn report(idx: &HistoryIndex, value: &str, obs: &[&Observation]) -> Option<Anomaly> {
    let send = idx.first_send_of(value)?;
    if idx.sends_of(value).any(|s| s.outcome != SendOutcome::Fail) {
        return None;
    }
    let reads: Vec<&Observation> = idx.reads_of(value).collect();
    let first = reads.first()?;
    let mut offsets: Vec<i64> = reads.iter().map(|o| o.offset).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let explanation = format!(
        "{value} was read at {} offset {} ({}) although its send by {} failed definitely at {} ms",
        first.tp,
        first.offset,
        first.describe(),
        send.process,
        send.time_ms
    );
    let nodes = obs
        .iter()
        .map(|o| o.process.as_str())
        .chain([send.process.as_str()]);
    Some(
        Anomaly::new(KIND, first.time_ms, &first.tp)
            .with_nodes(nodes)
            .with_offsets(offsets)
            .with_values(vec![value.to_string()])
            .explained(explanation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use crate::testkit::Run;

    #[test]
    fn reading_a_value_whose_send_failed_is_an_aborted_read() {
        let mut r = Run::new();
        r.send_unacked("p-0", 0, OpKind::Fail);
        r.poll("c-0", &[(1, 4, "p-0:0")]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].partition, found[0].offsets.clone()), (1, vec![4]));
        assert_eq!(found[0].values, vec!["p-0:0"]);
        assert_eq!(found[0].nodes, vec!["c-0", "p-0"]);
    }

    #[test]
    fn reading_a_value_whose_send_timed_out_is_not_an_aborted_read() {
        let mut r = Run::new();
        r.send_unacked("p-0", 0, OpKind::Info);
        r.poll("c-0", &[(1, 4, "p-0:0")]);
        assert!(r.check(check).is_empty());
    }
}
