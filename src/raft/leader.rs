//! `LeaderState`: what a leader tracks about its voters (Kafka's `LeaderState`).
//!
//! Each voter's durable end offset as learned from its fetches, when it last fetched (for
//! check-quorum), and whether it has heard of this epoch (for re-sending BeginQuorumEpoch).
//! The high-watermark rule lives here as a pure function.

use std::collections::{BTreeMap, BTreeSet};

use super::message::NodeId;

pub(crate) struct LeaderState {
    /// The offset of this epoch's leader-change entry: nothing at or above it may count as
    /// committed by replication of older entries alone (Raft's own-epoch commit rule).
    pub epoch_start_offset: i64,
    /// Other voters' fetch offsets: they hold (fsynced) every entry below it.
    pub end_offsets: BTreeMap<NodeId, i64>,
    /// When each other voter last sent a valid fetch; starts at the election for a grace period.
    pub last_fetch_ms: BTreeMap<NodeId, u64>,
    /// Voters known to have learned of this epoch (answered BeginQuorumEpoch or fetched).
    pub acknowledged: BTreeSet<NodeId>,
    /// When BeginQuorumEpoch goes again to the voters not yet in `acknowledged`.
    pub begin_resend_ms: u64,
}

impl LeaderState {
    pub fn new(others: &[NodeId], epoch_start_offset: i64, now_ms: u64) -> LeaderState {
        LeaderState {
            epoch_start_offset,
            end_offsets: others.iter().map(|v| (*v, 0)).collect(),
            last_fetch_ms: others.iter().map(|v| (*v, now_ms)).collect(),
            acknowledged: BTreeSet::new(),
            begin_resend_ms: now_ms,
        }
    }

    /// Records a valid fetch by voter `from`. Offsets only grow: a voter never loses what it
    /// acknowledged (it fsyncs before fetching past), so a late, older fetch says nothing new.
    pub fn record_fetch(&mut self, from: NodeId, fetch_offset: i64, now_ms: u64) {
        let Some(end) = self.end_offsets.get_mut(&from) else {
            return;
        };
        *end = (*end).max(fetch_offset);
        self.last_fetch_ms.insert(from, now_ms);
        self.acknowledged.insert(from);
    }

    /// The high watermark a majority supports, if it may be exposed: the majority-th largest
    /// end offset (the leader counting at `leader_end_offset`), and only once it is past the
    /// start of this epoch.
    pub fn high_watermark(&self, leader_end_offset: i64, majority: usize) -> Option<i64> {
        let mut ends: Vec<i64> = self.end_offsets.values().copied().collect();
        ends.push(leader_end_offset);
        assert!(
            majority >= 1 && majority <= ends.len(),
            "majority {majority} of {} voters",
            ends.len()
        );
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[majority - 1];
        (candidate > self.epoch_start_offset).then_some(candidate)
    }

    /// When check-quorum fails unless more voters fetch: `fetch_timeout_ms` after the latest
    /// fetch time that still completes a majority with the leader. `None` for a single voter.
    pub fn quorum_expiry_ms(&self, majority: usize, fetch_timeout_ms: u64) -> Option<u64> {
        let needed_others = majority.checked_sub(1).filter(|n| *n > 0)?;
        let mut times: Vec<u64> = self.last_fetch_ms.values().copied().collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        let time = times.get(needed_others - 1).copied().unwrap_or(0);
        Some(time.saturating_add(fetch_timeout_ms))
    }

    /// The voters that still need a BeginQuorumEpoch.
    pub fn unacknowledged(&self) -> Vec<NodeId> {
        self.end_offsets
            .keys()
            .copied()
            .filter(|v| !self.acknowledged.contains(v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_what_a_majority_has_fetched() {
        let mut leader = LeaderState::new(&[2, 3, 4, 5], 0, 0);
        assert_eq!(
            leader.high_watermark(10, 3),
            None,
            "only the leader has anything"
        );
        leader.record_fetch(2, 7, 5);
        assert_eq!(leader.high_watermark(10, 3), None);
        leader.record_fetch(3, 4, 5);
        assert_eq!(leader.high_watermark(10, 3), Some(4));
        leader.record_fetch(4, 9, 5);
        assert_eq!(leader.high_watermark(10, 3), Some(7));
    }

    #[test]
    fn older_entries_are_not_committed_until_an_entry_of_this_epoch_is() {
        // The leader's epoch starts at offset 5 with its leader-change entry.
        let mut leader = LeaderState::new(&[2, 3], 5, 0);
        leader.record_fetch(2, 5, 1);
        assert_eq!(
            leader.high_watermark(6, 2),
            None,
            "offsets 0..5 are on a majority, but are older"
        );
        leader.record_fetch(2, 6, 2);
        assert_eq!(leader.high_watermark(6, 2), Some(6));
    }

    #[test]
    fn fetch_offsets_never_go_back_and_strangers_are_ignored() {
        let mut leader = LeaderState::new(&[2, 3], 0, 0);
        leader.record_fetch(2, 6, 1);
        leader.record_fetch(2, 3, 2);
        leader.record_fetch(9, 100, 2);
        assert_eq!(leader.end_offsets.get(&2), Some(&6));
        assert!(!leader.end_offsets.contains_key(&9));
    }

    #[test]
    fn quorum_expires_when_no_majority_fetched_within_the_timeout() {
        let mut leader = LeaderState::new(&[2, 3, 4, 5], 0, 100);
        assert_eq!(leader.quorum_expiry_ms(3, 2000), Some(2100));
        leader.record_fetch(2, 0, 500);
        assert_eq!(
            leader.quorum_expiry_ms(3, 2000),
            Some(2100),
            "two others are needed"
        );
        leader.record_fetch(3, 0, 900);
        assert_eq!(leader.quorum_expiry_ms(3, 2000), Some(2500));
        assert_eq!(LeaderState::new(&[], 0, 0).quorum_expiry_ms(1, 2000), None);
    }
}
