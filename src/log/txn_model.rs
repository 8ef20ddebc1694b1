//! Test support and the model test for transactions on a partition log: random interleavings
//! of several producers' transactional and non-transactional batches, plain batches, commit and
//! abort markers, high watermark moves, truncations and reopens, run against a real [`Log`] on a
//! `MemStorage` and checked against a reference that decides everything from the plain list of
//! what the log holds (per producer the open transaction's first offset, the list of ended
//! transactions). The harness is shared with the consumer's `AbortedFilter` test, which checks
//! the end-to-end `read_committed` view over the same logs.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Record, TimestampType};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{
    increment_sequence, AbortedTxn, ControlType, Log, LogConfig, LogError, ProducerStateError,
};
use crate::seam::MemStorage;

/// A producer's batch of `values` as a client sends it (offsets from 0, sequences from
/// `first_seq`; a producer id below 0 makes a plain, non-idempotent batch).
pub(crate) fn producer_batch(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    transactional: bool,
    values: &[String],
) -> Vec<u8> {
    let first_seq = if pid < 0 { -1 } else { first_seq };
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let i = i32::try_from(i).expect("small test batch");
            Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder keeps `offset - sequence` constant within a batch.
                sequence: if pid < 0 {
                    first_seq.wrapping_add(i)
                } else {
                    increment_sequence(first_seq, i)
                },
                timestamp: 0,
                key: None,
                value: Some(Bytes::from(v.clone())),
                headers: IndexMap::new(),
            }
        })
        .collect();
    crate::protocol::encode_batch_v2(&records).to_vec()
}

/// The producer ids the model test uses.
pub(crate) const PIDS: [i64; 3] = [10, 11, 12];

#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Producer `PIDS[p]` appends `n` records at its next sequence; `stale` sends them under an
    /// epoch one below its current one (when it has one above 0).
    Data {
        p: usize,
        n: usize,
        transactional: bool,
        stale: bool,
    },
    /// A non-idempotent batch of `n` records.
    Plain {
        n: usize,
    },
    /// A marker for `PIDS[p]`: `bump` carries epoch + 1 (transaction version 2), else the same
    /// epoch (version 1); `stale` one below; the coordinator epoch is the known one + `coordinator`.
    Marker {
        p: usize,
        commit: bool,
        bump: bool,
        stale: bool,
        coordinator: i32,
    },
    /// The HW moves `k` quarters of the way to the log end.
    Hw(i64),
    /// Truncate to `k` eighths of the log end.
    Truncate(i64),
    Reopen,
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let p = 0usize..PIDS.len();
    prop_oneof![
        6 => (p.clone(), 1usize..4, any::<bool>(), prop::bool::weighted(0.05))
            .prop_map(|(p, n, _, stale)| Op::Data { p, n, transactional: true, stale }),
        2 => (p.clone(), 1usize..4, prop::bool::weighted(0.05))
            .prop_map(|(p, n, stale)| Op::Data { p, n, transactional: false, stale }),
        1 => (1usize..4).prop_map(|n| Op::Plain { n }),
        4 => (p, any::<bool>(), any::<bool>(), prop::bool::weighted(0.05), prop_oneof![8 => Just(0), 2 => Just(1), 1 => Just(-1)])
            .prop_map(|(p, commit, bump, stale, coordinator)| Op::Marker { p, commit, bump, stale, coordinator }),
        3 => (0i64..=4).prop_map(Op::Hw),
        1 => (0i64..=8).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
enum Kind {
    Data {
        transactional: bool,
        last_seq: i32,
    },
    Plain,
    Marker {
        commit: bool,
        coordinator_epoch: i32,
    },
}

/// One batch the log should hold.
#[derive(Debug, Clone)]
struct Event {
    first: i64,
    last: i64,
    pid: i64,
    epoch: i16,
    kind: Kind,
    values: Vec<String>,
}

/// The reference: the batches the log should hold, in order, and the high watermark.
#[derive(Debug, Default)]
pub(crate) struct Model {
    events: Vec<Event>,
    hw: i64,
    next_value: u64,
}

/// Ended transaction as the model sees it: (pid, first offset, marker offset, aborted).
type Ended = (i64, i64, i64, bool);

impl Model {
    pub fn hw(&self) -> i64 {
        self.hw
    }

    pub fn leo(&self) -> i64 {
        self.events.last().map_or(0, |e| e.last + 1)
    }

    fn of(&self, pid: i64) -> impl DoubleEndedIterator<Item = &Event> {
        self.events.iter().filter(move |e| e.pid == pid)
    }

    fn known(&self, pid: i64) -> bool {
        self.of(pid).next().is_some()
    }

    fn epoch(&self, pid: i64) -> i16 {
        self.of(pid).next_back().map_or(0, |e| e.epoch)
    }

    fn coordinator_epoch(&self, pid: i64) -> i32 {
        let mut markers = self.of(pid).filter_map(|e| match e.kind {
            Kind::Marker {
                coordinator_epoch, ..
            } => Some(coordinator_epoch),
            _ => None,
        });
        markers.next_back().unwrap_or(-1)
    }

    /// The next sequence: after the last data batch of the current epoch, else 0.
    fn next_seq(&self, pid: i64) -> i32 {
        let epoch = self.epoch(pid);
        let mut data = self.of(pid).filter_map(|e| match e.kind {
            Kind::Data { last_seq, .. } if e.epoch == epoch => Some(last_seq),
            _ => None,
        });
        data.next_back().map_or(0, |s| s + 1)
    }

    /// Replays the transaction rules over the batches: open transactions by pid, and every
    /// transaction a marker ended, in marker order.
    fn txns(&self) -> (std::collections::BTreeMap<i64, i64>, Vec<Ended>) {
        let mut open = std::collections::BTreeMap::new();
        let mut ended = Vec::new();
        for e in &self.events {
            match e.kind {
                Kind::Data {
                    transactional: true,
                    ..
                } => {
                    open.entry(e.pid).or_insert(e.first);
                }
                Kind::Marker { commit, .. } => {
                    if let Some(first) = open.remove(&e.pid) {
                        ended.push((e.pid, first, e.first, !commit));
                    }
                }
                _ => {}
            }
        }
        (open, ended)
    }

    pub fn ongoing(&self) -> Vec<(i64, i64)> {
        self.txns().0.into_iter().collect()
    }

    pub fn aborted(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let ended = self.txns().1.into_iter();
        let mut out: Vec<AbortedTxn> = ended
            .filter(|t| t.3 && t.2 >= from && t.1 < upper)
            .map(|(producer_id, first_offset, last_offset, _)| AbortedTxn {
                producer_id,
                first_offset,
                last_offset,
            })
            .collect();
        out.sort_by_key(|t| t.first_offset);
        out
    }

    pub fn lso(&self) -> i64 {
        let (open, ended) = self.txns();
        let unstable = ended.iter().filter(|t| t.2 >= self.hw).map(|t| t.1);
        open.values()
            .copied()
            .chain(unstable)
            .fold(self.hw, i64::min)
    }

    /// The values a `read_committed` consumer must see below `lso`: plain and
    /// non-transactional records, and those of transactions a COMMIT ended.
    pub fn committed_values(&self, lso: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let keep = match e.kind {
                Kind::Plain
                | Kind::Data {
                    transactional: false,
                    ..
                } => true,
                Kind::Data {
                    transactional: true,
                    ..
                } => {
                    let later = self.events[i + 1..].iter().filter(|m| m.pid == e.pid);
                    let mut outcome = later.filter_map(|m| match m.kind {
                        Kind::Marker { commit, .. } => Some(commit),
                        _ => None,
                    });
                    outcome.next() == Some(true)
                }
                Kind::Marker { .. } => false,
            };
            let below = (e.first..=e.last).zip(&e.values).filter(|(o, _)| *o < lso);
            out.extend(below.filter(|_| keep).map(|(_, v)| v.clone()));
        }
        out
    }

    fn values(&mut self, n: usize) -> Vec<String> {
        let first = self.next_value;
        self.next_value += n as u64;
        (first..self.next_value).map(|v| format!("v{v}")).collect()
    }
}

pub(crate) const DIR: &str = "txn-0";

/// Small segments, so replays cross segment boundaries.
pub(crate) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        flush_interval_messages: u64::MAX,
    }
}

/// A log and its model, driven by [`Op`]s.
pub(crate) struct Harness {
    mem: MemStorage,
    pub log: Log,
    pub model: Model,
}

/// Everything the log derives from its batches, compared across a reopen.
#[derive(Debug, PartialEq, Eq)]
struct Derived {
    producers: super::ProducerStateManager,
    ongoing: Vec<(i64, i64)>,
    aborted: Vec<AbortedTxn>,
    lso: i64,
}

impl Harness {
    pub fn new() -> Harness {
        let mem = MemStorage::new();
        let log = Log::open(Rc::new(mem.clone()), DIR, config()).expect("open");
        Harness {
            mem,
            log,
            model: Model::default(),
        }
    }

    fn derived(&self) -> Derived {
        Derived {
            producers: self.log.producer_state().clone(),
            ongoing: self.log.ongoing_txns(),
            aborted: self.log.aborted_txns(0, i64::MAX),
            lso: self.log.last_stable_offset(self.model.hw),
        }
    }

    /// Applies `op` to both; fails if the log's verdict differs from the model's.
    pub fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let m = &mut self.model;
        let leo = m.leo();
        match *op {
            Op::Data {
                p,
                n,
                transactional,
                stale,
            } => {
                let pid = PIDS[p];
                let current = m.epoch(pid);
                let stale = stale && m.known(pid) && current > 0;
                let epoch = if stale { current - 1 } else { current };
                let seq = m.next_seq(pid);
                let open = m.txns().0.get(&pid).copied();
                let values = m.values(n);
                let batch = producer_batch(pid, epoch, seq, transactional, &values);
                let expected = match open {
                    _ if stale => Err(ProducerStateError::InvalidProducerEpoch {
                        current,
                        got: epoch,
                    }),
                    Some(txn_first_offset) if !transactional => {
                        Err(ProducerStateError::InvalidTxnState { txn_first_offset })
                    }
                    _ => Ok(leo),
                };
                let got = self.log.append_as_leader(&batch, 0);
                check_verdict(got, expected)?;
                if expected.is_ok() {
                    let last_seq = seq + i32::try_from(n).expect("small") - 1;
                    let kind = Kind::Data {
                        transactional,
                        last_seq,
                    };
                    m.events.push(Event {
                        first: leo,
                        last: leo + n as i64 - 1,
                        pid,
                        epoch,
                        kind,
                        values,
                    });
                }
            }
            Op::Plain { n } => {
                let values = m.values(n);
                let got = self
                    .log
                    .append_as_leader(&producer_batch(-1, -1, -1, false, &values), 0);
                check_verdict(got, Ok(leo))?;
                m.events.push(Event {
                    first: leo,
                    last: leo + n as i64 - 1,
                    pid: -1,
                    epoch: -1,
                    kind: Kind::Plain,
                    values,
                });
            }
            Op::Marker {
                p,
                commit,
                bump,
                stale,
                coordinator,
            } => {
                let pid = PIDS[p];
                let current = m.epoch(pid);
                let stale = stale && m.known(pid) && current > 0;
                let epoch = match (stale, bump) {
                    (true, _) => current - 1,
                    (false, true) => current + 1,
                    (false, false) => current,
                };
                let known_ce = m.coordinator_epoch(pid);
                let ce = known_ce + coordinator;
                let expected = if !m.known(pid) {
                    Ok(leo)
                } else if epoch < current {
                    Err(ProducerStateError::InvalidProducerEpoch {
                        current,
                        got: epoch,
                    })
                } else if ce < known_ce {
                    Err(ProducerStateError::CoordinatorFenced {
                        current: known_ce,
                        got: ce,
                    })
                } else {
                    Ok(leo)
                };
                let kind = if commit {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                };
                let got = self.log.append_marker_as_leader(pid, epoch, ce, kind, 0, 0);
                check_verdict(got, expected)?;
                if expected.is_ok() {
                    let kind = Kind::Marker {
                        commit,
                        coordinator_epoch: ce,
                    };
                    m.events.push(Event {
                        first: leo,
                        last: leo,
                        pid,
                        epoch,
                        kind,
                        values: Vec::new(),
                    });
                }
            }
            Op::Hw(k) => {
                m.hw += (leo - m.hw) * k / 4;
                self.log.on_high_watermark(m.hw);
            }
            Op::Truncate(k) => {
                let cut = leo * k / 8;
                self.log
                    .truncate_to(cut)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                m.events.retain(|e| e.last < cut);
                m.hw = m.hw.min(m.leo());
            }
            Op::Reopen => {
                let before = self.derived();
                let reopened = Log::open(Rc::new(self.mem.clone()), DIR, config());
                self.log = reopened.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(self.derived(), before, "reopen changed the derived state");
            }
        }
        prop_assert_eq!(self.log.log_end_offset(), self.model.leo());
        Ok(())
    }
}

/// The log's answer against the model's: appended at the expected offset, or refused for the
/// expected reason.
fn check_verdict(
    got: Result<super::AppendInfo, LogError>,
    expected: Result<i64, ProducerStateError>,
) -> Result<(), TestCaseError> {
    match (got, expected) {
        (Ok(info), Ok(offset)) => {
            prop_assert_eq!(info.first_offset, offset);
            prop_assert!(!info.duplicate);
        }
        (Err(LogError::Producer(e)), Err(want)) => prop_assert_eq!(e, want),
        (got, want) => prop_assert!(false, "log answered {:?}, model expected {:?}", got, want),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// After every step: the LSO is at most the HW and equals the model's, the open
    /// transactions and the aborted index (whole and over several fetch ranges) equal the
    /// model's; reopening rebuilds the same state (checked inside `Reopen`).
    #[test]
    fn transactions_match_the_reference_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op)?;
            let (hw, leo) = (h.model.hw(), h.model.leo());
            let lso = h.log.last_stable_offset(hw);
            prop_assert!(lso <= hw, "lso {} above hw {}", lso, hw);
            prop_assert_eq!(lso, h.model.lso(), "after {:?}", op);
            prop_assert_eq!(h.log.ongoing_txns(), h.model.ongoing());
            for (from, upper) in [(0, i64::MAX), (0, lso), (lso / 2, lso), (hw / 3, leo), (lso, leo), (leo, leo + 5)] {
                prop_assert_eq!(h.log.aborted_txns(from, upper), h.model.aborted(from, upper), "range {}..{}", from, upper);
            }
        }
        // And a final reopen, whatever the last step was.
        h.apply(&Op::Reopen)?;
    }
}
