//! `RaftConfig`: who the voters are and the quorum timeouts (Kafka's `controller.quorum.*`).

use super::message::NodeId;

/// Static configuration of one quorum member. Voters never change at run time (no KIP-853).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    pub id: NodeId,
    /// Every voter, this node included.
    pub voters: Vec<NodeId>,
    /// `controller.quorum.election.timeout.ms`: base of the randomized election timer.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower that hears nothing from its leader for
    /// this long starts an election; a leader fetched by no majority for this long resigns.
    pub fetch_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms`: upper bound of a candidate's random backoff.
    pub election_backoff_max_ms: u64,
    /// Most entries one FetchResponse carries.
    pub fetch_max_entries: usize,
}

impl RaftConfig {
    /// Kafka's defaults for `id` in the quorum `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> RaftConfig {
        RaftConfig {
            id,
            voters,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            election_backoff_max_ms: 1000,
            fetch_max_entries: 64,
        }
    }

    /// Votes (or acknowledged replicas) that make a majority of the voters.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// The voters other than this node, in id order.
    pub fn other_voters(&self) -> Vec<NodeId> {
        let mut others: Vec<NodeId> = self
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.id)
            .collect();
        others.sort_unstable();
        others
    }

    /// Panics with context on a configuration no quorum can run with.
    pub(crate) fn check(&self) {
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            self.voters.len(),
            "duplicate voters in {:?}",
            self.voters
        );
        assert!(
            self.is_voter(self.id),
            "node {} is not among voters {:?}",
            self.id,
            self.voters
        );
        assert!(
            self.fetch_max_entries > 0,
            "fetch_max_entries must be positive"
        );
        assert!(
            self.election_timeout_ms > 0 && self.fetch_timeout_ms > 0,
            "{self:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_is_more_than_half_of_the_voters() {
        assert_eq!(RaftConfig::new(1, vec![1]).majority(), 1);
        assert_eq!(RaftConfig::new(1, vec![1, 2]).majority(), 2);
        assert_eq!(RaftConfig::new(1, vec![1, 2, 3]).majority(), 2);
        assert_eq!(RaftConfig::new(1, vec![1, 2, 3, 4, 5]).majority(), 3);
    }

    #[test]
    fn other_voters_are_sorted_and_exclude_self() {
        assert_eq!(RaftConfig::new(2, vec![3, 2, 1]).other_voters(), vec![1, 3]);
    }

    #[test]
    #[should_panic(expected = "not among voters")]
    fn a_node_outside_the_voters_is_rejected() {
        RaftConfig::new(9, vec![1, 2, 3]).check();
    }
}
