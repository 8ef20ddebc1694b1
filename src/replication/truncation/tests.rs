//! The KAFKA.md §3 schedules as pure data. A log is `Vec<(offset, epoch)>`: a record is named
//! by its offset and the epoch of the leader that wrote it (one leader per epoch, so two
//! records with the same offset and epoch are the same record).

use proptest::prelude::*;

use super::*;

type Log = Vec<(i64, i32)>;

const ITERATIVE: TruncationRules = TruncationRules { single_step: false };
const SINGLE_STEP: TruncationRules = TruncationRules { single_step: true };

/// A log holding one record per element of `epochs`, at offsets 0, 1, ...
fn log_of(epochs: &[i32]) -> Log {
    epochs
        .iter()
        .enumerate()
        .map(|(offset, &epoch)| (offset as i64, epoch))
        .collect()
}

fn leo(log: &Log) -> i64 {
    log.len() as i64
}

/// The epoch cache a replica derives from its log: one entry where each epoch begins.
fn cache_of(log: &Log) -> Vec<EpochEntry> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for &(offset, epoch) in log {
        if entries.last().is_none_or(|e| e.epoch != epoch) {
            entries.push(EpochEntry {
                epoch,
                start_offset: offset,
            });
        }
    }
    entries
}

/// A leader: its log plus its current epoch, cached at its LEO on election even before it
/// writes anything (KIP-279's second fix).
struct Leader {
    log: Log,
    epoch: i32,
}

impl Leader {
    fn cache(&self) -> Vec<EpochEntry> {
        let mut entries = cache_of(&self.log);
        if entries.last().is_none_or(|e| e.epoch < self.epoch) {
            entries.push(EpochEntry {
                epoch: self.epoch,
                start_offset: leo(&self.log),
            });
        }
        entries
    }

    fn end_offset_for(&self, epoch: i32) -> (i32, i64) {
        LeaderEpochCache::end_offset_in(&self.cache(), epoch, leo(&self.log))
    }

    fn append(&mut self) {
        self.log.push((leo(&self.log), self.epoch));
    }
}

fn truncate(log: &mut Log, offset: i64) {
    log.truncate(usize::try_from(offset).unwrap());
}

/// The follower's side of becoming a follower: Fetch at its LEO with its latest epoch, and on
/// a diverging epoch run `follower_truncation` (asking again while told to) and truncate.
/// Returns how many leader answers it took (0 when the Fetch found no divergence).
fn reconcile(
    leader: &Leader,
    follower: &mut Log,
    follower_hw: i64,
    rules: TruncationRules,
) -> usize {
    let last_epoch = follower.last().map_or(-1, |&(_, epoch)| epoch);
    let Some(mut answer) =
        diverging_epoch(&leader.cache(), leo(&leader.log), last_epoch, leo(follower))
    else {
        return 0;
    };
    for answers in 1..=64 {
        match follower_truncation(&cache_of(follower), leo(follower), answer, rules) {
            TruncationStep::TruncateTo(offset) => {
                truncate(follower, offset);
                return answers;
            }
            TruncationStep::TruncateAndAskAgain { truncate_to, epoch } => {
                truncate(follower, truncate_to);
                answer = leader.end_offset_for(epoch);
            }
            TruncationStep::FallBackToHighWatermark => {
                truncate(
                    follower,
                    truncate_to_high_watermark(follower_hw, leo(follower)),
                );
                return answers;
            }
        }
    }
    panic!("truncation did not converge in 64 answers");
}

/// The follower fetches everything the leader has past its own LEO.
fn catch_up(leader: &Leader, follower: &mut Log) {
    follower.extend_from_slice(&leader.log[follower.len().min(leader.log.len())..]);
}

// ---- leader side ----

#[test]
fn a_follower_on_the_leaders_latest_epoch_does_not_diverge() {
    let leader = log_of(&[1, 1, 2, 2]);
    assert_eq!(diverging_epoch(&cache_of(&leader), 4, 2, 3), None);
    assert_eq!(diverging_epoch(&cache_of(&leader), 4, 2, 4), None);
}

#[test]
fn a_follower_past_the_end_of_its_epoch_on_the_leader_diverges() {
    let leader = log_of(&[1, 1, 2, 2]);
    assert_eq!(diverging_epoch(&cache_of(&leader), 4, 1, 3), Some((1, 2)));
    assert_eq!(diverging_epoch(&cache_of(&leader), 4, 1, 2), None);
}

#[test]
fn a_follower_epoch_unknown_to_the_leader_diverges_with_the_epoch_below() {
    let leader = log_of(&[1, 1, 3, 3]);
    assert_eq!(diverging_epoch(&cache_of(&leader), 4, 2, 2), Some((1, 2)));
}

#[test]
fn a_follower_without_epochs_is_not_checked() {
    assert_eq!(diverging_epoch(&cache_of(&log_of(&[1])), 1, -1, 0), None);
}

// ---- follower side ----

#[test]
fn a_matching_epoch_truncates_to_the_smaller_end() {
    let follower = cache_of(&log_of(&[1, 1, 1, 2]));
    assert_eq!(
        follower_truncation(&follower, 4, (1, 2), ITERATIVE),
        TruncationStep::TruncateTo(2)
    );
    assert_eq!(
        follower_truncation(&follower, 4, (1, 9), ITERATIVE),
        TruncationStep::TruncateTo(3)
    );
}

#[test]
fn an_epoch_unknown_to_the_follower_truncates_and_asks_again_with_its_epoch_below() {
    let follower = cache_of(&log_of(&[1, 2, 2, 4]));
    let step = follower_truncation(&follower, 4, (3, 4), ITERATIVE);
    assert_eq!(
        step,
        TruncationStep::TruncateAndAskAgain {
            truncate_to: 3,
            epoch: 2
        }
    );
}

#[test]
fn an_undefined_leader_answer_falls_back_to_the_high_watermark() {
    let follower = cache_of(&log_of(&[1, 1]));
    let undefined = (
        LeaderEpochCache::UNDEFINED_EPOCH,
        LeaderEpochCache::UNDEFINED_OFFSET,
    );
    for rules in [ITERATIVE, SINGLE_STEP] {
        let step = follower_truncation(&follower, 2, undefined, rules);
        assert_eq!(step, TruncationStep::FallBackToHighWatermark);
    }
    assert_eq!(truncate_to_high_watermark(1, 2), 1);
    assert_eq!(truncate_to_high_watermark(5, 2), 2);
}

#[test]
fn an_answer_without_an_epoch_truncates_in_one_step() {
    let follower = cache_of(&log_of(&[1, 2, 2]));
    let step = follower_truncation(
        &follower,
        3,
        (LeaderEpochCache::UNDEFINED_EPOCH, 2),
        ITERATIVE,
    );
    assert_eq!(step, TruncationStep::TruncateTo(2));
}

#[test]
fn an_epoch_older_than_the_followers_history_trusts_the_leader_bounded_by_the_follower() {
    // The follower's log start was truncated past epoch 1.
    let follower = [EpochEntry {
        epoch: 2,
        start_offset: 5,
    }];
    let step = follower_truncation(&follower, 8, (1, 6), ITERATIVE);
    assert_eq!(step, TruncationStep::TruncateTo(5));
}

// ---- KAFKA.md §3 row 1: KAFKA-1211 / KIP-101 scenario 1 ----

/// B leads epoch 1 and acknowledged m2 (offset 1, HW 2). Follower A fetched m2 but its HW is
/// still 1 (the HW rides on the next fetch). A restarts; then B dies and A is elected.
fn kip101_scenario_1() -> (Leader, Log, i64) {
    let b = Leader {
        log: log_of(&[1, 1]),
        epoch: 1,
    };
    let a = log_of(&[1, 1]);
    (b, a, 1)
}

#[test]
fn kip101_scenario_1_epoch_truncation_keeps_the_acknowledged_record() {
    let (b, mut a, a_hw) = kip101_scenario_1();
    assert_eq!(
        reconcile(&b, &mut a, a_hw, ITERATIVE),
        0,
        "no divergence to repair"
    );
    let answer = b.end_offset_for(1);
    assert_eq!(
        follower_truncation(&cache_of(&a), leo(&a), answer, ITERATIVE),
        TruncationStep::TruncateTo(2)
    );
    // B dies; A leads epoch 2 and still serves m2.
    assert!(a.contains(&(1, 1)), "acknowledged m2 must survive: {a:?}");
}

#[test]
fn kip101_scenario_1_high_watermark_truncation_loses_the_acknowledged_record() {
    let (_b, mut a, a_hw) = kip101_scenario_1();
    let to = truncate_to_high_watermark(a_hw, leo(&a));
    truncate(&mut a, to);
    // B dies; A leads epoch 2 without m2, and writes m3 where m2 was.
    let mut a = Leader { log: a, epoch: 2 };
    a.append();
    assert_eq!(
        a.log,
        vec![(0, 1), (1, 2)],
        "acknowledged m2 (1, 1) is lost"
    );
}

// ---- KAFKA.md §3 row 2: KIP-101 scenario 2 ----

/// A led epoch 1 with m1, m2 (HW 2). Power loss on both; B had m2 only in its page cache.
/// B restarts first, leads epoch 2 and writes m3 at offset 1. A restarts with HW 2.
fn kip101_scenario_2() -> (Leader, Log, i64) {
    let mut b = Leader {
        log: log_of(&[1]),
        epoch: 2,
    };
    b.append();
    (b, log_of(&[1, 1]), 2)
}

#[test]
fn kip101_scenario_2_epoch_truncation_avoids_divergent_logs() {
    for rules in [ITERATIVE, SINGLE_STEP] {
        let (mut b, mut a, a_hw) = kip101_scenario_2();
        assert_eq!(reconcile(&b, &mut a, a_hw, rules), 1);
        b.append();
        catch_up(&b, &mut a);
        assert_eq!(a, b.log, "{rules:?}");
    }
}

#[test]
fn kip101_scenario_2_high_watermark_truncation_leaves_divergent_logs() {
    let (mut b, mut a, a_hw) = kip101_scenario_2();
    let to = truncate_to_high_watermark(a_hw, leo(&a));
    truncate(&mut a, to);
    b.append();
    catch_up(&b, &mut a);
    assert_eq!(a, vec![(0, 1), (1, 1), (2, 2)]);
    assert_eq!(
        b.log,
        vec![(0, 1), (1, 2), (2, 2)],
        "offset 1 differs forever"
    );
}

// ---- KAFKA.md §3 row 3: KAFKA-6361 / KIP-279 fast failover ----

/// A led epoch 1 with m1, m2; B has only m1. A fails, B leads epoch 2 and writes m3 at
/// offset 1, then fails before A copies it. A is re-elected in epoch 3 and writes m4. B
/// returns as a follower: its latest epoch (2) is unknown to A.
fn kafka_6361() -> (Leader, Log) {
    let mut b = Leader {
        log: log_of(&[1]),
        epoch: 2,
    };
    b.append();
    let mut a = Leader {
        log: log_of(&[1, 1]),
        epoch: 3,
    };
    a.append();
    (a, b.log)
}

#[test]
fn kafka_6361_iterative_truncation_converges_to_identical_logs() {
    let (mut a, mut b) = kafka_6361();
    assert_eq!(
        a.end_offset_for(2),
        (1, 2),
        "A answers for B's epoch 2 with its epoch 1"
    );
    reconcile(&a, &mut b, 1, ITERATIVE);
    assert_eq!(b, vec![(0, 1)]);
    a.append();
    catch_up(&a, &mut b);
    assert_eq!(b, a.log);
    assert_eq!(b, vec![(0, 1), (1, 1), (2, 3), (3, 3)]);
}

#[test]
fn kafka_6361_single_step_truncation_leaves_the_logs_divergent() {
    let (mut a, mut b) = kafka_6361();
    reconcile(&a, &mut b, 1, SINGLE_STEP);
    assert_eq!(
        b,
        vec![(0, 1), (1, 2)],
        "no truncation: A's answer 2 is B's LEO"
    );
    a.append();
    catch_up(&a, &mut b);
    assert_eq!(a.log, vec![(0, 1), (1, 1), (2, 3), (3, 3)]);
    assert_eq!(
        b,
        vec![(0, 1), (1, 2), (2, 3), (3, 3)],
        "offset 1: m2 on A, m3 on B"
    );
}

#[test]
fn iterative_truncation_walks_down_epochs_the_leader_never_had() {
    // Only offset 0 is common; the follower led epochs 2 and 4, the leader 3 and 5.
    let leader = Leader {
        log: log_of(&[1, 1, 3, 3, 5]),
        epoch: 5,
    };
    let mut follower = log_of(&[1, 2, 2, 4]);
    assert_eq!(reconcile(&leader, &mut follower, 0, ITERATIVE), 2);
    assert_eq!(follower, vec![(0, 1)]);

    let mut follower = log_of(&[1, 2, 2, 4]);
    reconcile(&leader, &mut follower, 0, SINGLE_STEP);
    assert_eq!(
        follower,
        log_of(&[1, 2, 2, 4]),
        "single step keeps epochs 2 and 4"
    );
}

// ---- property: iterative truncation never diverges and never loses the common prefix ----

/// One run of records: (epoch gap from the previous run, records, written by the leader).
type Run = (i32, usize, bool);

/// Builds a leader and a follower log: `common` runs shared by both, then `divergent` runs
/// each written to only one of them (the last always to the leader, which so holds the
/// latest epoch). Epochs increase along each log and no epoch is on both sides past the
/// common prefix, as one leader per epoch guarantees.
fn build_logs(
    common: &[(i32, usize)],
    divergent: &[Run],
    leader_epoch_gap: i32,
) -> (Leader, Log, usize) {
    let mut epoch = 0;
    let mut shared = Vec::new();
    for &(gap, len) in common {
        epoch += gap;
        shared.extend(std::iter::repeat_n(epoch, len));
    }
    let (mut leader, mut follower) = (shared.clone(), shared.clone());
    for (i, &(gap, len, to_leader)) in divergent.iter().enumerate() {
        epoch += gap;
        let side = if to_leader || i + 1 == divergent.len() {
            &mut leader
        } else {
            &mut follower
        };
        side.extend(std::iter::repeat_n(epoch, len));
    }
    let leader = Leader {
        log: log_of(&leader),
        epoch: epoch + leader_epoch_gap,
    };
    (leader, log_of(&follower), shared.len())
}

fn is_prefix(short: &Log, long: &Log) -> bool {
    long.starts_with(short)
}

proptest! {
    #[test]
    fn iterative_truncation_leaves_a_prefix_of_the_leader_and_keeps_the_common_prefix(
        common in prop::collection::vec((1..3i32, 1..4usize), 0..5),
        divergent in prop::collection::vec((1..3i32, 1..4usize, any::<bool>()), 1..7),
        leader_epoch_gap in 0..2i32,
    ) {
        let (leader, mut follower, common_len) = build_logs(&common, &divergent, leader_epoch_gap);
        let before = follower.clone();
        let answers = reconcile(&leader, &mut follower, 0, ITERATIVE);
        prop_assert!(answers > 0 || is_prefix(&before, &leader.log),
            "no divergence reported for {before:?} vs {:?}", leader.log);
        prop_assert!(is_prefix(&follower, &leader.log),
            "follower {follower:?} (was {before:?}) not a prefix of {:?}", leader.log);
        prop_assert!(follower.len() >= common_len,
            "lost common prefix {common_len}: {follower:?} (was {before:?}) vs {:?}", leader.log);
        let last_epoch = follower.last().map_or(-1, |&(_, e)| e);
        let again = diverging_epoch(&leader.cache(), leo(&leader.log), last_epoch, leo(&follower));
        prop_assert_eq!(again, None, "the leader still sees a divergence");
    }
}
