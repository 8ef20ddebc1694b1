//! Log divergence and follower truncation (KAFKA.md §1.6; KIP-101, KIP-279), as pure
//! functions over epoch histories. The caller owns the logs: it sends the requests, applies
//! the truncation to its log and epoch cache, and feeds the next answer back in.
//!
//! Leader side: [`diverging_epoch`] is the check a leader makes on every follower Fetch.
//! Follower side: [`follower_truncation`] turns one leader answer `(epoch, end_offset)` into a
//! truncation point, possibly asking again (KIP-279's iterative OffsetForLeaderEpoch).
//! Historical rules kept behind the behaviour switches: [`TruncationRules::single_step`]
//! (before KIP-279) and [`truncate_to_high_watermark`] (before KIP-101).

use crate::log::{EpochEntry, LeaderEpochCache};

/// Switches that restore historical truncation behaviour (SCENARIOS.md "Behaviour switches").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TruncationRules {
    /// `single_step_epoch_truncation`: one leader answer decides, without comparing epochs
    /// (Kafka 0.11 to 1.1, before KIP-279).
    pub single_step: bool,
}

/// What a follower does with one leader answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationStep {
    /// Truncate the log (and epoch cache) to this offset; truncation is finished.
    TruncateTo(i64),
    /// Truncate to `truncate_to`, then ask the leader for its `end_offset_for(epoch)` and
    /// call [`follower_truncation`] again with the answer (KIP-279).
    TruncateAndAskAgain { truncate_to: i64, epoch: i32 },
    /// The leader knows no end offset for the epoch asked: truncate to the follower's own
    /// high watermark (the pre-KIP-101 rule, [`truncate_to_high_watermark`]).
    FallBackToHighWatermark,
}

/// Leader side of Fetch validation (§1.6, Kafka's `Partition.readRecords`):
/// `Some((epoch, end_offset))` when the follower's `(last_fetched_epoch, fetch_offset)`
/// diverges from the leader's log, i.e. the leader's history for that epoch is older than the
/// follower believes or ends before `fetch_offset`. A negative `last_fetched_epoch` (a follower
/// with no epoch history) skips the check, as an absent `lastFetchedEpoch` does in Kafka.
pub fn diverging_epoch(
    leader: &[EpochEntry],
    leader_leo: i64,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Option<(i32, i64)> {
    assert!(leader_leo >= 0, "leader_leo={leader_leo}");
    assert!(fetch_offset >= 0, "fetch_offset={fetch_offset}");
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) =
        LeaderEpochCache::end_offset_in(leader, last_fetched_epoch, leader_leo);
    let diverges = epoch < last_fetched_epoch || end_offset < fetch_offset;
    diverges.then_some((epoch, end_offset))
}

/// Follower side on a diverging epoch `(E, end)` from the leader (a Fetch's `divergingEpoch`
/// or an OffsetForLeaderEpoch answer). `follower` is the follower's epoch cache and
/// `follower_leo` its log end offset.
///
/// Iterative (KIP-279, Kafka's `AbstractFetcherThread.getOffsetTruncationState`): with
/// `(fE, fEnd) = follower.end_offset_for(E)`, if `fE == E` both replicas hold epoch `E` and
/// agree up to where either one's `E` ends: truncate to `min(end, fEnd, LEO)`, done. Otherwise
/// the follower never saw `E`; everything after its last epoch below `E` is suspect: truncate
/// to `min(fEnd, LEO)` and ask the leader again with `fE`. The epoch asked strictly decreases,
/// so this ends. If the follower has no entry at or below `E` that it can bound (its
/// `end_offset_for` is undefined) it trusts the leader: `min(end, LEO)`, as Kafka does.
pub fn follower_truncation(
    follower: &[EpochEntry],
    follower_leo: i64,
    leader_answer: (i32, i64),
    rules: TruncationRules,
) -> TruncationStep {
    assert!(follower_leo >= 0, "follower_leo={follower_leo}");
    let (epoch, end) = leader_answer;
    if end == LeaderEpochCache::UNDEFINED_OFFSET {
        return TruncationStep::FallBackToHighWatermark;
    }
    assert!(
        end >= 0,
        "leader answered end offset {end} for epoch {epoch}"
    );
    if rules.single_step || epoch == LeaderEpochCache::UNDEFINED_EPOCH {
        return single_step_truncation(follower_leo, end);
    }
    let (follower_epoch, follower_end) =
        LeaderEpochCache::end_offset_in(follower, epoch, follower_leo);
    if follower_end == LeaderEpochCache::UNDEFINED_OFFSET {
        return TruncationStep::TruncateTo(end.min(follower_leo));
    }
    if follower_epoch == epoch {
        return TruncationStep::TruncateTo(end.min(follower_end).min(follower_leo));
    }
    assert!(
        follower_epoch < epoch,
        "end_offset_for({epoch}) answered the later epoch {follower_epoch}"
    );
    TruncationStep::TruncateAndAskAgain {
        truncate_to: follower_end.min(follower_leo),
        epoch: follower_epoch,
    }
}

/// The rule before KIP-279 (Kafka 0.11 to 1.1, `ReplicaFetcherThread.maybeTruncate`), also
/// what today's Kafka does when the leader's answer carries no epoch (an old leader).
///
/// The follower sent its *latest* epoch; the leader answered only an end offset (the start of
/// its first epoch after the one asked, or its LEO if it was its latest); the follower
/// truncated to `min(end, LEO)` and started fetching. It never checked that the leader's
/// history below `end` matches its own. After a fast failover (KAFKA-6361) the follower's
/// latest epoch `f` may be unknown to the leader, whose answer is then the start of its next
/// epoch after `f`, past offsets where the two logs already hold different epochs' records:
/// the follower keeps its own records there and the replicas diverge for good.
fn single_step_truncation(follower_leo: i64, end: i64) -> TruncationStep {
    let truncate_to = end.min(follower_leo);
    assert!(
        (0..=follower_leo).contains(&truncate_to),
        "truncate_to={truncate_to}"
    );
    TruncationStep::TruncateTo(truncate_to)
}

/// The pre-KIP-101 rule restored by `truncate_to_hw_on_become_follower`: a follower truncates
/// to its own high watermark. The follower's HW lags the leader's by a fetch round trip, so
/// this can drop acknowledged records (KAFKA-1211); and a HW checkpoint that outlived unflushed
/// data keeps records the new leader never had (KIP-101 scenario 2).
pub fn truncate_to_high_watermark(follower_hw: i64, follower_leo: i64) -> i64 {
    assert!(follower_hw >= 0, "follower_hw={follower_hw}");
    assert!(follower_leo >= 0, "follower_leo={follower_leo}");
    follower_hw.min(follower_leo)
}

#[cfg(test)]
mod tests;
