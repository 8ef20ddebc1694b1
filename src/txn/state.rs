//! A transactional id's states and the table of legal transitions (KAFKA.md §1.10, Kafka's
//! `TransactionState.java`). Every state change of the coordinator goes through
//! [`TxnState::transition`], so an illegal one is caught where it was attempted.

use std::fmt;

/// Where a transactional id's current transaction is. Names and ids are Kafka's own (the id is
/// the `transaction_status` byte of a `TransactionLogValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    /// A producer id and epoch are assigned; no transaction is open.
    Empty,
    /// A transaction is open: partitions (or a group's offsets partition) were added.
    Ongoing,
    /// The commit is decided and logged; markers are being written.
    PrepareCommit,
    /// The abort is decided and logged; markers are being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The producer epoch was bumped to fence an open transaction's producer, which is being
    /// aborted. Never written to the log: the coordinator passes through it on its way from
    /// Ongoing to PrepareAbort.
    PrepareEpochFence,
    /// The transactional id expired (`transactional.id.expiration.ms`).
    Dead,
}

/// A transition the table refuses. Only the coordinator's own logic can attempt one, so it
/// treats it as a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: TxnState,
    pub to: TxnState,
    /// Whether the table of transaction version 2 was in force.
    pub tv2: bool,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = if self.tv2 { "TV2" } else { "TV1" };
        write!(f, "illegal transaction transition {} -> {} ({version})", self.from, self.to)
    }
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ];

    /// Kafka's state name, as DescribeTransactions and the logs show it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    /// Kafka's id: the `transaction_status` of a `TransactionLogValue`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The states from which `self` may be entered (Kafka's `validPreviousStates`). `tv2`
    /// (transaction version 2, an epoch bump per transaction) also lets an abort start from a
    /// state without an open transaction.
    pub fn valid_previous_states(self, tv2: bool) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Empty, Ongoing, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort if tv2 => &[Ongoing, PrepareEpochFence, Empty, CompleteCommit, CompleteAbort],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            PrepareEpochFence => &[Ongoing],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
        }
    }

    /// Moves to `to` if the table allows it from `self`; otherwise `self` is unchanged.
    pub fn transition(&mut self, to: TxnState, tv2: bool) -> Result<(), IllegalTransition> {
        if !to.valid_previous_states(tv2).contains(self) {
            return Err(IllegalTransition { from: *self, to, tv2 });
        }
        *self = to;
        Ok(())
    }

    /// PrepareCommit or PrepareAbort: the decision is logged, markers are outstanding.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// CompleteCommit or CompleteAbort.
    pub fn is_complete(self) -> bool {
        matches!(self, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
