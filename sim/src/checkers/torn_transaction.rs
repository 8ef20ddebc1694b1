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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpFn, OpValue, TxnValue};
    use crate::testkit::Run;

    fn txn(r: &mut Run, values: &[&str], kind: OpKind) {
        let value = TxnValue { transactional_id: "p-0".into(), txn: 0, commit: true, values: values.iter().map(|v| v.to_string()).collect() };
        let id = r.history.invoke(100, "p-0", OpFn::Txn, OpValue::Txn(value.clone()));
        r.history.complete(id, 101, kind, OpValue::Txn(value), None);
    }

    #[test]
    fn a_committed_transaction_read_in_part_past_its_missing_record_is_torn() {
        let mut r = Run::new();
        let a = r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 0, 1);
        let c = r.send_ok("p-0", 2, 0, 2);
        txn(&mut r, &[&a, &b], OpKind::Ok);
        r.poll("c-0", &[(0, 0, &a), (0, 2, &c)]);
        let found = r.check(check);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind.as_str(), found[0].offsets.clone()), (KIND, vec![1]));
    }

    #[test]
    fn whole_unread_or_undecided_transactions_are_not_torn() {
        let mut r = Run::new();
        let a = r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 0, 1);
        txn(&mut r, &[&a, &b], OpKind::Info);
        r.poll("c-0", &[(0, 0, &a)]);
        assert!(r.check(check).is_empty(), "an undecided transaction may be partly visible to nobody's knowledge");
        let mut r = Run::new();
        let a = r.send_ok("p-0", 0, 0, 0);
        let b = r.send_ok("p-0", 1, 0, 1);
        txn(&mut r, &[&a, &b], OpKind::Ok);
        r.poll("c-0", &[(0, 0, &a)]);
        assert!(r.check(check).is_empty(), "nobody read past the missing record yet: unseen, not torn");
    }
}
