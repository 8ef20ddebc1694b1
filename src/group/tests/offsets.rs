//! Offset commits and fetches, loading and unloading an offsets partition, and the deletion of
//! empty groups.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::*;
use crate::ids::TopicPartition;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn entry(p: i32, offset: i64) -> OffsetEntry {
    (tp(p), offset, 3, format!("m{offset}"))
}

/// A group in each state, for the validation table: returns (coordinator, member ids).
fn group_in(state: &str) -> (GroupCoordinator, Vec<String>) {
    let (mut c, _) = coordinator();
    let ids = super::stable_group(&mut c, 2);
    match state {
        "Stable" => {}
        "PreparingRebalance" => later(c.join_group(7_000, 50, &join_req(&ids[0], RANGE), JOIN_V)),
        "CompletingRebalance" => {
            later(c.join_group(7_000, 50, &join_req(&ids[0], RANGE), JOIN_V));
            later(c.join_group(7_000, 51, &join_req(&ids[1], RANGE), JOIN_V));
        }
        "Empty" => {
            c.leave_group(7_000, &leave_req(&[&ids[0], &ids[1]]), 5);
        }
        other => panic!("{other}"),
    }
    assert_eq!(state_of(&c), state);
    (c, ids)
}

fn state_of(c: &GroupCoordinator) -> &'static str {
    c.snapshot().into_iter().find(|g| g.group == G).map_or("absent", |g| g.state)
}

#[test]
fn offset_commit_validation_follows_kafkas_table() {
    use ResponseError::*;
    let (mut c, _) = coordinator();
    assert_eq!(c.validate_offset_commit(0, "g1", "", 1), Err(IllegalGeneration), "unknown group, group-managed generation");
    assert_eq!(c.validate_offset_commit(0, "g1", "", -1), Ok(()), "unknown group, generation -1");
    assert_eq!(state_of(&c), "Empty", "the commit created an Empty group");
    assert_eq!(c.validate_offset_commit(0, "elsewhere", "", -1), Err(NotCoordinator));

    let (mut c, _) = group_in("Empty");
    assert_eq!(c.validate_offset_commit(8_000, G, "", -1), Ok(()), "Empty, generation -1");
    assert_eq!(c.validate_offset_commit(8_000, G, "gone", 1), Err(UnknownMemberId));

    for state in ["Stable", "PreparingRebalance", "CompletingRebalance"] {
        let (mut c, ids) = group_in(state);
        let generation = c.snapshot()[0].generation;
        assert_eq!(c.validate_offset_commit(8_000, G, "", -1), Err(UnknownMemberId), "{state}: generation -1 needs Empty");
        assert_eq!(c.validate_offset_commit(8_000, G, "stranger", generation), Err(UnknownMemberId), "{state}");
        assert_eq!(c.validate_offset_commit(8_000, G, &ids[1], generation + 1), Err(IllegalGeneration), "{state}");
        let expected = if state == "CompletingRebalance" { Err(RebalanceInProgress) } else { Ok(()) };
        assert_eq!(c.validate_offset_commit(8_000, G, &ids[1], generation), expected, "{state}");
    }
}

#[test]
fn a_commit_during_preparing_rebalance_is_from_the_old_generation() {
    let (mut c, ids) = group_in("PreparingRebalance");
    assert_eq!(c.snapshot()[0].generation, 1);
    assert_eq!(c.validate_offset_commit(8_000, G, &ids[1], 1), Ok(()));
}

#[test]
fn an_accepted_commit_refreshes_the_members_session() {
    let (mut c, ids) = group_in("Stable");
    // Sessions restarted at 6000; the follower only commits.
    assert_eq!(heartbeat(&mut c, 12_000, &ids[0], 1), 0);
    assert_eq!(c.validate_offset_commit(15_000, G, &ids[1], 1), Ok(()));
    c.tick(16_000);
    assert_eq!(state_of(&c), "Stable");
    assert_eq!(c.next_deadline(), Some(22_000));
}

#[test]
fn committed_offsets_are_visible_only_once_replicated() {
    let (mut c, ids) = group_in("Stable");
    c.validate_offset_commit(7_000, G, &ids[0], 1).unwrap();
    let records = c.offset_commit_records(G, 7_000, &[entry(0, 10), entry(1, 20)]);
    assert_eq!(records.len(), 2);
    assert_eq!(c.fetch_offsets(G, None), Ok(vec![]), "not yet replicated");
    c.offsets_committed(G, &[entry(0, 10), entry(1, 20)]);
    assert_eq!(c.fetch_offsets(G, None), Ok(vec![entry(0, 10), entry(1, 20)]));
    let asked = [tp(1), tp(7)];
    assert_eq!(c.fetch_offsets(G, Some(&asked)), Ok(vec![entry(1, 20), (tp(7), -1, -1, String::new())]));
    assert_eq!(c.fetch_offsets("elsewhere", None), Err(ResponseError::NotCoordinator));
    assert_eq!(c.fetch_offsets("g2", Some(&asked[..1])), Err(ResponseError::NotCoordinator));
    assert_eq!(c.snapshot()[0].offsets, vec![(tp(0), 10), (tp(1), 20)]);
    assert_eq!(c.check_offset_metadata(&"x".repeat(4_096)), None);
    assert_eq!(c.check_offset_metadata(&"x".repeat(4_097)), Some(ResponseError::OffsetMetadataTooLarge));
}

#[test]
fn a_commit_replicated_after_unload_is_ignored() {
    let (mut c, ids) = group_in("Stable");
    c.validate_offset_commit(7_000, G, &ids[0], 1).unwrap();
    c.unload(partition_for(G, 50));
    c.offsets_committed(G, &[entry(0, 10)]);
    assert!(c.snapshot().is_empty());
    assert_eq!(c.fetch_offsets(G, None), Err(ResponseError::NotCoordinator));
}

/// Everything the coordinator asked to append to `G`'s partition, plus the commit records.
fn run_and_log(c: &mut GroupCoordinator, log: &mut Vec<(Bytes, Option<Bytes>)>) {
    for (p, k, v) in c.take_records() {
        assert_eq!(p, partition_for(G, 50));
        log.push((k, v));
    }
}

#[test]
fn loading_after_unload_rebuilds_groups_and_offsets() {
    let (mut c, _) = coordinator();
    let mut log = Vec::new();
    let ids = super::stable_group(&mut c, 2);
    // stable_group drained its records; rebuild them from the current state.
    let g = c.groups.get(G).unwrap();
    let (k, v) = g.metadata_record(3_000).encode();
    log.push((k, v));
    c.validate_offset_commit(7_000, G, &ids[1], 1).unwrap();
    log.extend(c.offset_commit_records(G, 7_000, &[entry(0, 5), entry(1, 6)]));
    c.offsets_committed(G, &[entry(0, 5), entry(1, 6)]);
    log.extend(c.offset_commit_records(G, 7_100, &[entry(0, 7)]));
    c.offsets_committed(G, &[entry(0, 7)]);
    run_and_log(&mut c, &mut log);
    let before = c.snapshot();

    let partition = partition_for(G, 50);
    c.unload(partition);
    assert!(!c.is_loaded(partition) && c.snapshot().is_empty());
    assert_eq!(c.check_owner(G), Some(ResponseError::NotCoordinator));
    c.load(50_000, partition, log);
    assert!(c.is_loaded(partition) && c.check_owner(G).is_none());
    assert_eq!(c.snapshot(), before);
    assert_eq!(c.fetch_offsets(G, None), Ok(vec![entry(0, 7), entry(1, 6)]));
    // Members go on at their generation; sessions restarted at the load.
    assert_eq!(heartbeat(&mut c, 50_001, &ids[1], 1), 0);
    let r = now(c.sync_group(50_002, 1, &sync_req(&ids[1], 1, &[]), SYNC_V));
    assert_eq!(r.assignment.as_ref(), b"parts");
    assert_eq!(c.next_deadline(), Some(60_000), "the leader's session runs from the load");
}

#[test]
fn loading_applies_tombstones_and_skips_what_it_cannot_read() {
    let (mut c, lines) = coordinator();
    let partition = partition_for(G, 50);
    let offset = |p: i32, value: Option<OffsetValue>| GroupRecord::Offset { group: G.into(), tp: tp(p), value }.encode();
    let v = |o: i64| Some(OffsetValue { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp: 0 });
    let foreign = GroupRecord::Offset { group: "g2".into(), tp: tp(0), value: v(1) }.encode();
    let empty_group = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: None,
        leader: None,
        current_state_timestamp: 0,
        members: vec![],
    };
    let log = vec![
        offset(0, v(1)),
        offset(1, v(2)),
        (Bytes::from_static(b"\x00"), None),
        offset(0, None),
        foreign,
        offset(2, v(3)),
        GroupRecord::Group { group: G.into(), value: Some(empty_group) }.encode(),
        (Bytes::from_static(&[0, 9, 0, 0]), Some(Bytes::from_static(b"kip-848 record"))),
    ];
    c.load(1_000, partition, log);
    let snap = c.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!((snap[0].state, snap[0].generation), ("Empty", 4));
    assert_eq!(snap[0].offsets, vec![(tp(1), 2), (tp(2), 3)]);
    let skipped = lines.borrow().iter().filter(|l| l.contains("skipped:")).count();
    assert_eq!(skipped, 3, "the truncated key, g2's record (another partition) and the unknown key version");

    // A group tombstone deletes the group; its offsets keep an Empty group alive.
    let mut log = vec![GroupRecord::Group { group: G.into(), value: None }.encode()];
    log.insert(0, c.groups[G].metadata_record(0).encode());
    c.load(2_000, partition, log);
    assert!(c.snapshot().is_empty());
}

#[test]
fn unloading_answers_parked_joins_and_syncs_with_not_coordinator() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    c.take_ready();
    later(c.sync_group(6_000, 3, &sync_req(&b, 1, &[]), 3));
    let c_id = member_id(&mut c, 6_000);
    later(c.join_group(6_000, 4, &join_req(&c_id, RANGE), 4));
    let (_, syncs) = ready(&mut c);
    assert_eq!(syncs[0].1.error_code, ResponseError::RebalanceInProgress.code(), "the newcomer started a rebalance");
    later(c.join_group(6_100, 5, &join_req(&a, RANGE), JOIN_V));
    c.take_records();
    c.unload(partition_for(G, 50));
    let (joins, _) = ready(&mut c);
    let answered: Vec<(u64, i16)> = joins.iter().map(|(t, r)| (*t, r.error_code)).collect();
    let nc = ResponseError::NotCoordinator.code();
    assert_eq!(answered, vec![(5, nc), (4, nc)]);
    assert!(c.take_records().is_empty());
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_parked_sync_gets_not_coordinator_on_unload() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    c.take_ready();
    later(c.sync_group(6_000, 3, &sync_req(&b, 1, &[]), 4));
    c.unload(partition_for(G, 50));
    let (_, syncs) = ready(&mut c);
    assert_eq!((syncs[0].0, syncs[0].1.error_code), (3, ResponseError::NotCoordinator.code()));
}

#[test]
fn an_empty_group_without_offsets_is_deleted_with_a_tombstone() {
    let (mut c, lines) = coordinator();
    let ids = super::stable_group(&mut c, 1);
    c.leave_group(7_000, &leave_req(&[&ids[0]]), 5);
    c.take_records();
    assert_eq!(c.next_deadline(), Some(607_000), "offsets.retention.check.interval.ms after becoming Empty");
    c.tick(607_000);
    assert!(c.snapshot().is_empty());
    let records = c.take_records();
    assert_eq!(records.len(), 1);
    assert_eq!(GroupRecord::decode(&records[0].1, records[0].2.as_deref()), Ok(GroupRecord::Group { group: G.into(), value: None }));
    assert!(lines.borrow().iter().any(|l| l == "group g1 Empty -> Dead (empty without offsets)"));
    // Offsets keep an Empty group.
    c.validate_offset_commit(700_000, G, "", -1).unwrap();
    c.offsets_committed(G, &[entry(0, 1)]);
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_new_coordinator_keeps_transactional_offsets_pending_until_their_marker() {
    let (mut c, _) = coordinator();
    let partition = partition_for(G, 50);
    let undecided = c.offset_commit_records(G, 7_000, &[entry(0, 9)]);
    c.unload(partition);
    c.load(8_000, partition, Vec::new());
    c.restore_txn_offsets(partition, 42, &undecided);
    assert!(c.has_pending_txn_offset(G, &tp(0)), "unstable until the marker (KIP-447)");
    assert_eq!(c.fetch_offsets(G, None), Ok(vec![]));
    c.complete_txn_offsets(partition, 42, true);
    assert!(!c.has_pending_txn_offset(G, &tp(0)));
    assert_eq!(c.fetch_offsets(G, None), Ok(vec![entry(0, 9)]));
    // Another partition's replay restores nothing of this group.
    let (mut other, _) = coordinator();
    other.restore_txn_offsets(partition + 1, 43, &undecided);
    assert!(!other.has_pending_txn_offset(G, &tp(0)));
}
