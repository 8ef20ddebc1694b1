//! `torn-transaction`: a committed transaction only partly visible. Some of its messages were
//! read, while another of its messages, acknowledged at an offset that readers of its partition
//! went past, was never read. Transactions are all-or-nothing for read_committed readers
//! (KAFKA.md §1.10); a torn one means a marker decided part of a transaction differently, as in
//! KAFKA-17754's delayed EndTxn.

use super::anomaly::Anomaly;
use super::index::{HistoryIndex, SendOutcome, Tp};
use crate::history::OpKind;

pub const KIND: &str = "torn-transaction";

pub fn check(idx: &HistoryIndex) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for t in idx.txns.iter().filter(|t| t.kind == OpKind::Ok && t.value.commit) {
        let read: Vec<&str> = t.value.values.iter().map(String::as_str).filter(|v| idx.was_read(v)).collect();
        if read.is_empty() {
            continue;
        }
        let missing: Vec<(&str, Tp, i64)> = t
            .value
            .values
            .iter()
            .filter(|v| !idx.was_read(v))
            .filter_map(|v| {
                let ack = idx.sends_of(v).find(|s| s.outcome == SendOutcome::Ok)?.ack.clone()?;
                (!idx.reads_above(&ack.0, ack.1).is_empty()).then_some((v.as_str(), ack.0, ack.1))
            })
            .collect();
        let Some((first, tp, offset)) = missing.first().cloned() else { continue };
        let explanation = format!(
            "transaction {} of {} was committed at {} ms with {} messages; {} of them were read, but {first} (acknowledged at {tp} offset {offset}) never was, although readers went past that offset",
            t.value.txn,
            t.value.transactional_id,
            t.time_ms,
            t.value.values.len(),
            read.len()
        );
        let mut values: Vec<String> = missing.iter().map(|(v, _, _)| v.to_string()).collect();
        values.extend(read.iter().take(3).map(|v| v.to_string()));
        out.push(
            Anomaly::new(KIND, t.time_ms, &tp)
                .with_nodes([t.process.as_str()])
                .with_offsets(missing.iter().map(|(_, _, o)| *o).collect())
                .with_values(values)
                .explained(explanation),
        );
    }
    out
}
