//! `Role`: the quorum states of KIP-595 and the one table of valid transitions between them.

use super::message::NodeId;

/// Where a node stands in the quorum. Kafka's `QuorumState` names, minus the ones that need
/// pre-vote or observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Knows an epoch (see `RaftNode::epoch`) but neither its leader nor a vote in it.
    Unattached,
    /// Granted its vote for `epoch` to `candidate`; waits for a leader.
    Voted { epoch: i32, candidate: NodeId },
    /// Voted for itself in `epoch` and asks the others.
    Candidate { epoch: i32 },
    /// Won `epoch`: appends, serves fetches, advances the high watermark.
    Leader { epoch: i32 },
    /// Replicates from `leader` in `epoch` by fetching.
    Follower { epoch: i32, leader: NodeId },
    /// Was leader of `epoch` and stepped down; waits for the next election.
    Resigned { epoch: i32 },
}

impl Role {
    /// The epoch the role names, if it names one.
    pub fn epoch(&self) -> Option<i32> {
        match *self {
            Role::Unattached => None,
            Role::Voted { epoch, .. }
            | Role::Candidate { epoch }
            | Role::Leader { epoch }
            | Role::Follower { epoch, .. }
            | Role::Resigned { epoch } => Some(epoch),
        }
    }
}

/// Whether a node may move from `from` in `from_epoch` to `to` in `to_epoch`.
///
/// Epochs never go back. Within one epoch a node only learns more (a vote, then a leader), so
/// one vote per epoch and one leader per epoch follow from this table plus durable state. A
/// leader must resign before it can stand again, and a candidate always takes the next epoch.
pub fn transition_is_valid(from: Role, from_epoch: i32, to: Role, to_epoch: i32) -> bool {
    use Role::*;
    if to.epoch().is_some_and(|e| e != to_epoch) || to_epoch < from_epoch {
        return false;
    }
    if to_epoch > from_epoch {
        return match to {
            Unattached | Follower { .. } => true,
            Candidate { .. } => to_epoch == from_epoch + 1 && !matches!(from, Leader { .. }),
            Voted { .. } | Leader { .. } | Resigned { .. } => false,
        };
    }
    matches!(
        (from, to),
        (Unattached, Voted { .. } | Follower { .. })
            | (Voted { .. }, Follower { .. })
            | (Candidate { .. }, Leader { .. } | Follower { .. })
            | (Leader { .. }, Resigned { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_never_go_back() {
        assert!(!transition_is_valid(
            Role::Unattached,
            5,
            Role::Unattached,
            4
        ));
        assert!(!transition_is_valid(
            Role::Unattached,
            5,
            Role::Follower {
                epoch: 4,
                leader: 1
            },
            4
        ));
    }

    #[test]
    fn a_vote_in_an_epoch_is_never_replaced_by_another() {
        let voted = Role::Voted {
            epoch: 3,
            candidate: 1,
        };
        assert!(!transition_is_valid(
            voted,
            3,
            Role::Voted {
                epoch: 3,
                candidate: 2
            },
            3
        ));
        assert!(!transition_is_valid(voted, 3, Role::Unattached, 3));
        assert!(transition_is_valid(
            voted,
            3,
            Role::Follower {
                epoch: 3,
                leader: 2
            },
            3
        ));
    }

    #[test]
    fn a_follower_never_changes_leader_within_an_epoch() {
        let follower = Role::Follower {
            epoch: 3,
            leader: 1,
        };
        assert!(!transition_is_valid(
            follower,
            3,
            Role::Follower {
                epoch: 3,
                leader: 2
            },
            3
        ));
        assert!(transition_is_valid(
            follower,
            3,
            Role::Follower {
                epoch: 4,
                leader: 2
            },
            4
        ));
    }

    #[test]
    fn a_leader_resigns_before_standing_again() {
        let leader = Role::Leader { epoch: 3 };
        assert!(!transition_is_valid(
            leader,
            3,
            Role::Candidate { epoch: 4 },
            4
        ));
        assert!(transition_is_valid(
            leader,
            3,
            Role::Resigned { epoch: 3 },
            3
        ));
        let resigned = Role::Resigned { epoch: 3 };
        assert!(transition_is_valid(
            resigned,
            3,
            Role::Candidate { epoch: 4 },
            4
        ));
    }

    #[test]
    fn a_candidate_takes_exactly_the_next_epoch() {
        assert!(transition_is_valid(
            Role::Unattached,
            3,
            Role::Candidate { epoch: 4 },
            4
        ));
        assert!(!transition_is_valid(
            Role::Unattached,
            3,
            Role::Candidate { epoch: 5 },
            5
        ));
        assert!(!transition_is_valid(
            Role::Unattached,
            3,
            Role::Leader { epoch: 4 },
            4
        ));
    }
}
