use std::collections::BTreeMap;

use crate::ids::BrokerId;

/// The configuration the rules depend on (Kafka's names, in our units).
#[derive(Debug, Clone)]
pub struct ReplicationRules {
    /// `replica.lag.time.max.ms`
    pub lag_time_max_ms: u64,
    /// `min.insync.replicas`
    pub min_insync_replicas: usize,
    /// Behaviour switch `hw_advances_below_min_isr`: the pre-KIP-966 rule.
    pub hw_advances_below_min_isr: bool,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset, as its last fetch offset says.
    pub leo: i64,
    pub last_caught_up_ms: u64,
    last_fetch_leader_leo: i64,
    last_fetch_ms: u64,
}

/// The leader's replication state for one partition.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub me: BrokerId,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub hw: i64,
    /// The leader's LEO when it became leader: a replica must reach it to join the ISR
    /// (KAFKA-7128).
    pub epoch_start_offset: i64,
    /// An ISR change sent to the controller and not yet in the metadata log (KIP-497). While
    /// it is pending, the HW counts the larger of the two sets (the "maximal ISR").
    pub pending_isr: Option<Vec<BrokerId>>,
    followers: BTreeMap<BrokerId, FollowerProgress>,
}

impl LeaderState {
    /// A new leadership. In-ISR followers count as caught up now, the others never.
    pub fn new(me: BrokerId, replicas: Vec<BrokerId>, isr: Vec<BrokerId>, leo: i64, hw: i64, now_ms: u64) -> Self {
        assert!(isr.contains(&me), "leader {me} must be in its ISR {isr:?}");
        assert!(hw <= leo, "hw={hw} leo={leo}");
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                (*r, FollowerProgress { last_caught_up_ms: caught_up, ..Default::default() })
            })
            .collect();
        LeaderState { me, replicas, isr, hw, epoch_start_offset: leo, pending_isr: None, followers }
    }

    pub fn follower(&self, id: BrokerId) -> Option<&FollowerProgress> {
        self.followers.get(&id)
    }

    /// A follower fetched at `fetch_offset` (its LEO) while our LEO is `leader_leo` (§1.4).
    pub fn on_follower_fetch(&mut self, now_ms: u64, id: BrokerId, fetch_offset: i64, leader_leo: i64) {
        let Some(p) = self.followers.get_mut(&id) else { return };
        if fetch_offset >= leader_leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= p.last_fetch_leader_leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.leo = fetch_offset;
        p.last_fetch_leader_leo = leader_leo;
        p.last_fetch_ms = now_ms;
    }

    fn caught_up(&self, p: &FollowerProgress, now_ms: u64, leader_leo: i64, rules: &ReplicationRules) -> bool {
        p.leo == leader_leo || now_ms.saturating_sub(p.last_caught_up_ms) <= rules.lag_time_max_ms
    }

    /// Whether `id` counts for the HW: in the ISR or joining it.
    pub fn in_maximal_isr(&self, id: BrokerId) -> bool {
        self.isr.contains(&id) || self.pending_isr.as_ref().is_some_and(|p| p.contains(&id))
    }

    /// Followers to drop from the ISR: neither at our LEO nor caught up within the lag bound.
    /// None while a change is pending, as in Kafka.
    pub fn shrink_candidates(&self, now_ms: u64, leader_leo: i64, rules: &ReplicationRules) -> Vec<BrokerId> {
        if self.pending_isr.is_some() {
            return Vec::new();
        }
        self.isr
            .iter()
            .filter(|r| **r != self.me)
            .filter(|r| {
                let p = &self.followers[r];
                !self.caught_up(p, now_ms, leader_leo, rules)
            })
            .copied()
            .collect()
    }

    /// Followers that may join the ISR: LEO at or past both the HW and the epoch start offset,
    /// unless the `isr_join_ignores_epoch_start_offset` switch restores the old rule.
    pub fn expand_candidates(&self, ignore_epoch_start: bool) -> Vec<BrokerId> {
        if self.pending_isr.is_some() {
            return Vec::new();
        }
        self.followers
            .iter()
            .filter(|(id, p)| {
                !self.isr.contains(id)
                    && p.leo >= self.hw
                    && (ignore_epoch_start || p.leo >= self.epoch_start_offset)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn set_isr(&mut self, isr: Vec<BrokerId>) {
        assert!(isr.contains(&self.me), "leader {} dropped from ISR {isr:?}", self.me);
        assert!(isr.iter().all(|r| self.replicas.contains(r)), "ISR {isr:?} not within replicas {:?}", self.replicas);
        self.isr = isr;
    }

    /// Advances the high watermark by §1.3; returns the new value when it moved.
    pub fn maybe_advance_hw(&mut self, now_ms: u64, leader_leo: i64, rules: &ReplicationRules) -> Option<i64> {
        let min_isr = rules.min_insync_replicas.min(self.replicas.len()).max(1);
        if self.isr.len() < min_isr && !rules.hw_advances_below_min_isr {
            return None;
        }
        let mut new_hw = leader_leo;
        for (id, p) in &self.followers {
            // A caught-up replica outside the ISR also holds the HW back, so that it can
            // actually reach it and join, instead of chasing a moving target.
            let counts = self.in_maximal_isr(*id) || self.caught_up(p, now_ms, leader_leo, rules);
            if counts && p.leo < new_hw {
                new_hw = p.leo;
            }
        }
        if new_hw > self.hw {
            assert!(new_hw <= leader_leo, "hw={new_hw} leo={leader_leo}");
            self.hw = new_hw;
            return Some(new_hw);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ReplicationRules {
        ReplicationRules { lag_time_max_ms: 10_000, min_insync_replicas: 2, hw_advances_below_min_isr: false }
    }

    fn b(i: i32) -> BrokerId {
        BrokerId(i)
    }

    fn three_replicas() -> LeaderState {
        LeaderState::new(b(0), vec![b(0), b(1), b(2)], vec![b(0), b(1), b(2)], 0, 0, 0)
    }

    #[test]
    fn hw_is_the_smallest_leo_in_the_isr() {
        let mut s = three_replicas();
        s.on_follower_fetch(10, b(1), 5, 10);
        s.on_follower_fetch(10, b(2), 7, 10);
        assert_eq!(s.maybe_advance_hw(10, 10, &rules()), Some(5));
        s.on_follower_fetch(20, b(1), 10, 10);
        assert_eq!(s.maybe_advance_hw(20, 10, &rules()), Some(7));
    }

    #[test]
    fn a_silent_follower_leaves_the_isr_after_the_lag_bound() {
        let mut s = three_replicas();
        s.on_follower_fetch(100, b(1), 10, 10);
        assert!(s.shrink_candidates(10_000, 10, &rules()).is_empty());
        assert_eq!(s.shrink_candidates(10_001, 10, &rules()), vec![b(2)]);
    }

    #[test]
    fn hw_freezes_while_the_isr_is_below_min_insync() {
        let mut s = three_replicas();
        s.set_isr(vec![b(0)]);
        // Long after the lag bound, the dropped followers no longer hold the HW back.
        assert_eq!(s.maybe_advance_hw(60_000, 10, &rules()), None);
        let old = ReplicationRules { hw_advances_below_min_isr: true, ..rules() };
        assert_eq!(s.maybe_advance_hw(60_000, 10, &old), Some(10));
    }

    #[test]
    fn a_follower_rejoins_only_past_hw_and_epoch_start() {
        let mut s = LeaderState::new(b(0), vec![b(0), b(1)], vec![b(0)], 20, 10, 0);
        s.on_follower_fetch(1, b(1), 15, 20);
        assert!(s.expand_candidates(false).is_empty(), "below the epoch start offset 20");
        assert_eq!(s.expand_candidates(true), vec![b(1)], "the old rule only needs the HW");
        s.on_follower_fetch(2, b(1), 20, 20);
        assert_eq!(s.expand_candidates(false), vec![b(1)]);
    }

    #[test]
    fn a_follower_that_keeps_up_with_a_moving_leader_stays_caught_up() {
        let mut s = three_replicas();
        s.on_follower_fetch(1_000, b(1), 5, 10);
        s.on_follower_fetch(2_000, b(1), 10, 20);
        assert_eq!(s.follower(b(1)).unwrap().last_caught_up_ms, 1_000);
    }
}
