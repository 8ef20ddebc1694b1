//! The classic group's states and Kafka's explicit table of legal transitions
//! (`ClassicGroupState.java`). Every state change goes through [`GroupState::transition`], so an
//! illegal one is caught at the change that attempted it rather than by its consequences later.

use std::fmt;

/// Where a classic group is in its rebalance cycle. Names are Kafka's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    /// No members; offsets may still be committed (generation -1) and fetched.
    Empty,
    /// Waiting for every member to (re)join, or for the rebalance timeout.
    PreparingRebalance,
    /// Joins answered; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Every member has the current generation's assignment.
    Stable,
    /// Unloaded or deleted: nothing more happens to this group.
    Dead,
}

/// A transition the table refuses. Only our own logic can produce one, so the coordinator treats
/// it as a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: GroupState,
    pub to: GroupState,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "illegal group transition {} -> {}", self.from.name(), self.to.name())
    }
}

impl GroupState {
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    /// Kafka's state string, as DescribeGroups and the logs show it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// The states from which `self` may be entered (Kafka's `validPreviousStates`).
    pub fn valid_previous_states(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }

    /// Moves to `to` if the table allows it from `self`.
    pub fn transition(&mut self, to: GroupState) -> Result<(), IllegalTransition> {
        if !to.valid_previous_states().contains(self) {
            return Err(IllegalTransition { from: *self, to });
        }
        *self = to;
        Ok(())
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
