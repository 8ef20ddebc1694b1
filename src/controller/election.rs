//! Leader election and partition changes, after Kafka's `PartitionChangeBuilder` (KAFKA.md §1.5).
//!
//! Pure functions over one partition: they read a `PartitionState`, a target ISR and a predicate
//! saying which brokers may lead, and return the `PartitionChange` record to propose, if any.
//! Election order (`electAnyLeader`, no ELR):
//! 1. keep the current leader if it is in the target ISR and acceptable;
//! 2. else the first replica, in assignment order, that is in the target ISR and acceptable;
//! 3. else, if unclean election is enabled, the first acceptable replica in assignment order
//!    (unclean: the ISR becomes [leader] and may lose committed data);
//! 4. else no leader (`NO_LEADER`): the partition is offline.
//!
//! An empty target ISR is never written (KRaft without ELR keeps the last ISR member even when
//! it is dead, KIP-966 text): the old ISR stays, so a fenced sole member keeps its place in the
//! ISR while the partition goes leaderless.

use super::records::MetadataRecord;
use super::state::{PartitionState, NO_LEADER};

/// The broker chosen to lead, and whether choosing it was unclean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionResult {
    /// `NO_LEADER` when nobody may lead.
    pub leader: i32,
    pub unclean: bool,
}

/// Elects a leader by Kafka's rule (see the module docs). `is_acceptable` is "registered and
/// unfenced", adjusted by the caller for a broker being fenced or unfenced.
pub fn elect_leader(
    replicas: &[i32],
    target_isr: &[i32],
    current_leader: i32,
    unclean_allowed: bool,
    is_acceptable: impl Fn(i32) -> bool,
) -> ElectionResult {
    let is_valid_clean = |r: i32| target_isr.contains(&r) && is_acceptable(r);
    if current_leader != NO_LEADER && is_valid_clean(current_leader) {
        return ElectionResult { leader: current_leader, unclean: false };
    }
    if let Some(&leader) = replicas.iter().find(|&&r| is_valid_clean(r)) {
        return ElectionResult { leader, unclean: false };
    }
    if unclean_allowed {
        if let Some(&leader) = replicas.iter().find(|&&r| is_acceptable(r)) {
            crate::sometimes!("unclean_election");
            return ElectionResult { leader, unclean: true };
        }
    }
    ElectionResult { leader: NO_LEADER, unclean: false }
}

/// Builds the `PartitionChange` that moves `state` to `target_isr` and re-elects its leader,
/// or `None` when nothing would change. Only writes `leader` when it differs, so the leader
/// epoch is bumped exactly when the leader changes.
pub fn build_partition_change(
    topic: &str,
    partition: u32,
    state: &PartitionState,
    target_isr: Vec<i32>,
    unclean_allowed: bool,
    is_acceptable: impl Fn(i32) -> bool,
) -> Option<MetadataRecord> {
    assert!(!state.isr.is_empty(), "{topic}/{partition} has an empty ISR before a change");
    let target_isr = if target_isr.is_empty() { state.isr.clone() } else { target_isr };
    let election = elect_leader(&state.replicas, &target_isr, state.leader, unclean_allowed, is_acceptable);
    let mut leader = None;
    let mut isr = None;
    if election.leader != state.leader {
        leader = Some(election.leader);
        if election.unclean {
            isr = Some(vec![election.leader]);
        }
    }
    if isr.is_none() && target_isr != state.isr {
        isr = Some(target_isr);
    }
    if leader.is_none() && isr.is_none() {
        return None;
    }
    let new_isr = isr.as_ref().unwrap_or(&state.isr);
    let new_leader = leader.unwrap_or(state.leader);
    assert!(
        new_leader == NO_LEADER || new_isr.contains(&new_leader),
        "{topic}/{partition} change would put leader {new_leader} outside isr {new_isr:?}"
    );
    Some(MetadataRecord::PartitionChange {
        topic: topic.to_string(),
        partition,
        isr,
        leader,
        leader_recovery_unclean: election.unclean && leader.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(brokers: &'static [i32]) -> impl Fn(i32) -> bool {
        move |r| brokers.contains(&r)
    }

    fn partition(replicas: Vec<i32>, isr: Vec<i32>, leader: i32) -> PartitionState {
        PartitionState { replicas, isr, leader, leader_epoch: 3, partition_epoch: 5, last_unclean: false }
    }

    #[test]
    fn election_rule_table() {
        // (replicas, target isr, current leader, unclean allowed, alive) -> (leader, unclean)
        type Case = (&'static [i32], &'static [i32], i32, bool, &'static [i32], i32, bool);
        let cases: [Case; 9] = [
            // keep the current leader while it is in the ISR and alive, even if not preferred
            (&[1, 2, 3], &[1, 2, 3], 2, false, &[1, 2, 3], 2, false),
            // clean: first ISR member in assignment order, not in ISR order
            (&[3, 1, 2], &[1, 2, 3], NO_LEADER, false, &[1, 2, 3], 3, false),
            // clean: skip a dead ISR member
            (&[1, 2, 3], &[1, 2], 1, false, &[2, 3], 2, false),
            // clean: the current leader left the target ISR
            (&[1, 2, 3], &[2, 3], 1, false, &[1, 2, 3], 2, false),
            // no leader: only out-of-ISR replicas are alive and unclean is off
            (&[1, 2, 3], &[1], 1, false, &[2, 3], NO_LEADER, false),
            // unclean: first alive replica in assignment order
            (&[1, 3, 2], &[1], 1, true, &[2, 3], 3, true),
            // unclean is not used while a clean choice exists
            (&[1, 2, 3], &[1, 3], 1, true, &[2, 3], 3, false),
            // nobody alive: no leader even with unclean on
            (&[1, 2], &[1], 1, true, &[], NO_LEADER, false),
            // an offline partition with an alive ISR member gets it back
            (&[1, 2], &[2], NO_LEADER, false, &[2], 2, false),
        ];
        for (i, (replicas, isr, current, unclean, up, leader, was_unclean)) in cases.into_iter().enumerate() {
            let result = elect_leader(replicas, isr, current, unclean, alive(up));
            assert_eq!(result, ElectionResult { leader, unclean: was_unclean }, "case {i}");
        }
    }

    #[test]
    fn removing_a_fenced_sole_isr_member_keeps_it_in_the_isr_and_drops_the_leader() {
        let state = partition(vec![1, 2], vec![1], 1);
        let change = build_partition_change("t", 0, &state, vec![], false, alive(&[2]));
        let expected = MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            isr: None,
            leader: Some(NO_LEADER),
            leader_recovery_unclean: false,
        };
        assert_eq!(change, Some(expected));
    }

    #[test]
    fn unclean_election_sets_the_isr_to_the_new_leader() {
        let state = partition(vec![1, 2, 3], vec![1], 1);
        let change = build_partition_change("t", 0, &state, vec![], true, alive(&[3]));
        let expected = MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            isr: Some(vec![3]),
            leader: Some(3),
            leader_recovery_unclean: true,
        };
        assert_eq!(change, Some(expected));
    }

    #[test]
    fn an_isr_shrink_that_keeps_the_leader_writes_only_the_isr() {
        let state = partition(vec![1, 2, 3], vec![1, 2, 3], 1);
        let change = build_partition_change("t", 0, &state, vec![1, 3], false, alive(&[1, 2, 3]));
        let expected = MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            isr: Some(vec![1, 3]),
            leader: None,
            leader_recovery_unclean: false,
        };
        assert_eq!(change, Some(expected));
    }

    #[test]
    fn a_change_that_changes_nothing_is_not_proposed() {
        let state = partition(vec![1, 2], vec![1, 2], 1);
        assert_eq!(build_partition_change("t", 0, &state, vec![1, 2], false, alive(&[1, 2])), None);
        let offline = partition(vec![1, 2], vec![1], NO_LEADER);
        assert_eq!(build_partition_change("t", 0, &offline, vec![1], false, alive(&[])), None);
    }
}
