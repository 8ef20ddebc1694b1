//! The transition function against KAFKA.md §1.10's table, every one of the 8 x 8 pairs, in
//! both transaction versions. The expected table is written out here independently of
//! `valid_previous_states`.

use crate::txn::state::TxnState::{self, *};

/// (to, reached from) exactly as the table in KAFKA.md §1.10 lists it.
fn table(tv2: bool) -> Vec<(TxnState, Vec<TxnState>)> {
    let mut prepare_abort_from = vec![Ongoing, PrepareEpochFence];
    if tv2 {
        prepare_abort_from.extend([Empty, CompleteCommit, CompleteAbort]);
    }
    vec![
        (Empty, vec![Empty, CompleteCommit, CompleteAbort]),
        (Ongoing, vec![Empty, Ongoing, CompleteCommit, CompleteAbort]),
        (PrepareCommit, vec![Ongoing]),
        (PrepareAbort, prepare_abort_from),
        (CompleteCommit, vec![PrepareCommit]),
        (CompleteAbort, vec![PrepareAbort]),
        (PrepareEpochFence, vec![Ongoing]),
        (Dead, vec![Empty, CompleteCommit, CompleteAbort]),
    ]
}

#[test]
fn every_pair_follows_the_table_in_both_transaction_versions() {
    for tv2 in [false, true] {
        let table = table(tv2);
        assert_eq!(table.len(), 8);
        let mut legal = 0;
        for from in TxnState::ALL {
            for to in TxnState::ALL {
                let allowed = table.iter().find(|(t, _)| *t == to).expect("every state has a row").1.contains(&from);
                let mut state = from;
                let result = state.transition(to, tv2);
                if allowed {
                    legal += 1;
                    assert_eq!(result, Ok(()), "{from} -> {to} (tv2 {tv2}) is in the table");
                    assert_eq!(state, to);
                } else {
                    let e = result.expect_err("not in the table");
                    assert_eq!((e.from, e.to, e.tv2), (from, to, tv2));
                    assert_eq!(state, from, "a refused transition leaves the state alone");
                    assert!(e.to_string().contains(&format!("{from} -> {to}")), "{e}");
                }
            }
        }
        assert_eq!(legal, if tv2 { 19 } else { 16 });
    }
}

#[test]
fn state_ids_are_kafkas() {
    let ids: Vec<(TxnState, i8)> = TxnState::ALL.iter().map(|s| (*s, s.id())).collect();
    assert_eq!(
        ids,
        vec![
            (Empty, 0),
            (Ongoing, 1),
            (PrepareCommit, 2),
            (PrepareAbort, 3),
            (CompleteCommit, 4),
            (CompleteAbort, 5),
            (PrepareEpochFence, 7),
            (Dead, 6),
        ]
    );
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_id(s.id()), Some(s));
    }
    for bad in [-1, 8, 100, i8::MIN] {
        assert_eq!(TxnState::from_id(bad), None);
    }
    assert_eq!(PrepareEpochFence.to_string(), "PrepareEpochFence");
}
