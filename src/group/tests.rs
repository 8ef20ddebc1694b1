//! The coordinator driven through its public API, one rule per test; records, offsets, wire
//! versions and the random-operation model live in the submodules.

mod model;
mod offsets;
mod records;
mod versions;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::observe::Tracer;

use super::*;

pub(super) const G: &str = "g1";
pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 30_000;
pub(super) const JOIN_V: i16 = 9;
pub(super) const SYNC_V: i16 = 5;
/// When `stable_group` has synced everyone: every session runs from here.
pub(super) const STABLE_MS: u64 = 6_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A coordinator that leads `G`'s partition, and the trace lines it emitted.
pub(super) fn coordinator() -> (GroupCoordinator, Rc<RefCell<Vec<String>>>) {
    let lines = Rc::new(RefCell::new(Vec::new()));
    let sink = lines.clone();
    let trace = Tracer::new(Rc::new(move |l: &str| sink.borrow_mut().push(l.to_string())));
    let mut c = GroupCoordinator::new(GroupConfig::default(), 1, 0xabc, trace);
    c.load(0, partition_for(G, 50), Vec::new());
    (c, lines)
}

pub(super) fn join_req(member: &str, protocols: &[(&str, &[u8])]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(G)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(n, m)| JoinGroupRequestProtocol::default().with_name(s(n)).with_metadata(Bytes::copy_from_slice(m)))
                .collect(),
        )
}

pub(super) const RANGE: &[(&str, &[u8])] = &[("range", b"sub")];

pub(super) fn sync_req(member: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(G)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(s(m)).with_assignment(Bytes::copy_from_slice(a)))
                .collect(),
        )
}

pub(super) fn heartbeat(c: &mut GroupCoordinator, now_ms: u64, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default().with_group_id(GroupId(s(G))).with_generation_id(generation).with_member_id(s(member));
    c.heartbeat(now_ms, &req).error_code
}

pub(super) fn leave_req(members: &[&str]) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(s(G)))
        .with_members(members.iter().map(|m| MemberIdentity::default().with_member_id(s(m))).collect())
}

fn now<T: std::fmt::Debug>(reply: Reply<T>) -> T {
    match reply {
        Reply::Now(r) => r,
        Reply::Later => panic!("expected an answer now"),
    }
}

fn later<T: std::fmt::Debug>(reply: Reply<T>) {
    assert!(matches!(reply, Reply::Later), "expected Later, got {reply:?}");
}

type Answers<T> = Vec<(u64, T)>;

/// The ready answers, as (token, join response) and (token, sync response).
fn ready(c: &mut GroupCoordinator) -> (Answers<JoinGroupResponse>, Answers<SyncGroupResponse>) {
    let (mut joins, mut syncs) = (Vec::new(), Vec::new());
    for r in c.take_ready() {
        match r {
            Ready::Join { token, response } => joins.push((token, response)),
            Ready::Sync { token, response } => syncs.push((token, response)),
        }
    }
    (joins, syncs)
}

/// KIP-394's first round trip: the member id the coordinator hands out.
pub(super) fn member_id(c: &mut GroupCoordinator, now_ms: u64) -> String {
    let r = now(c.join_group(now_ms, 0, &join_req("", RANGE), JOIN_V));
    assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
    r.member_id.to_string()
}

fn state(c: &GroupCoordinator) -> &'static str {
    c.snapshot().into_iter().find(|g| g.group == G).map_or("absent", |g| g.state)
}

fn generation(c: &GroupCoordinator) -> i32 {
    c.snapshot().into_iter().find(|g| g.group == G).expect("group").generation
}

/// A Stable group of `n` members at generation 1, joined at time 0 and synced at `STABLE_MS`
/// (a second member extends the initial delay once, so the join completes at 3000 or 6000).
/// Returns the member ids in join order (the first is the leader).
fn stable_group(c: &mut GroupCoordinator, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| member_id(c, 0)).collect();
    for (i, id) in ids.iter().enumerate() {
        later(c.join_group(0, i as u64 + 1, &join_req(id, RANGE), JOIN_V));
    }
    c.tick(STABLE_MS);
    let (joins, _) = ready(c);
    assert_eq!(joins.len(), n, "every join answered");
    let assignments: Vec<(&str, &[u8])> = ids.iter().map(|id| (id.as_str(), b"parts" as &[u8])).collect();
    for id in &ids[1..] {
        later(c.sync_group(STABLE_MS, 100, &sync_req(id, 1, &[]), SYNC_V));
    }
    now(c.sync_group(STABLE_MS, 99, &sync_req(&ids[0], 1, &assignments), SYNC_V));
    ready(c);
    c.take_records();
    assert_eq!(state(c), "Stable");
    ids
}

#[test]
fn transition_table_matches_kafka_for_all_25_pairs() {
    use GroupState::*;
    let legal = [
        (Empty, PreparingRebalance),
        (Stable, PreparingRebalance),
        (CompletingRebalance, PreparingRebalance),
        (PreparingRebalance, CompletingRebalance),
        (CompletingRebalance, Stable),
        (PreparingRebalance, Empty),
        (Stable, Dead),
        (PreparingRebalance, Dead),
        (CompletingRebalance, Dead),
        (Empty, Dead),
        (Dead, Dead),
    ];
    for from in GroupState::ALL {
        for to in GroupState::ALL {
            let mut s = from;
            let result = s.transition(to);
            if legal.contains(&(from, to)) {
                assert_eq!(result, Ok(()), "{from} -> {to}");
                assert_eq!(s, to);
            } else {
                assert_eq!(result, Err(IllegalTransition { from, to }), "{from} -> {to}");
                assert_eq!(s, from, "a refused transition leaves the state alone");
            }
        }
    }
}

#[test]
fn state_names_are_kafkas() {
    let names: Vec<&str> = GroupState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"]);
}

#[test]
fn partition_for_matches_java_hash_code_and_utils_abs() {
    // Values from a JVM: "g1".hashCode() = 3242, "my-group" = -1906497762 (Math.abs, not a bit
    // mask), "polygenelubricants" = Integer.MIN_VALUE (Utils.abs gives 0), "😀x" hashes UTF-16.
    assert_eq!(partition_for("g1", 50), 3242 % 50);
    assert_eq!(partition_for("my-group", 50), 12);
    assert_eq!(partition_for("test-group", 50), 12);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("é", 50), 33);
    assert_eq!(partition_for("😀x", 50), 39);
    assert_eq!(partition_for("", 50), 0);
    assert_eq!(partition_for("my-group", 1), 0);
}

#[test]
fn member_ids_carry_client_node_nonce_and_a_counter() {
    let (mut c, _) = coordinator();
    let client = ClientInfo { client_id: "c".into(), client_host: "/10.0.0.1".into() };
    let first = now(c.join_group_from(0, 0, &join_req("", RANGE), JOIN_V, &client));
    let second = now(c.join_group_from(0, 0, &join_req("", RANGE), JOIN_V, &client));
    assert_eq!(first.member_id.as_str(), "c-1-abc-0");
    assert_eq!(second.member_id.as_str(), "c-1-abc-1");
}

#[test]
fn first_join_waits_the_initial_delay_then_the_leader_sync_makes_the_group_stable() {
    let (mut c, lines) = coordinator();
    let id = member_id(&mut c, 0);
    assert_eq!(state(&c), "Empty", "a handed-out member id is pending, not a member");
    later(c.join_group(100, 7, &join_req(&id, RANGE), JOIN_V));
    assert_eq!(state(&c), "PreparingRebalance");
    assert_eq!(c.next_deadline(), Some(3_100), "group.initial.rebalance.delay.ms");
    c.tick(3_099);
    assert!(c.take_ready().is_empty(), "the initial delay holds even when everyone joined");
    c.tick(3_100);
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 1);
    let (token, r) = &joins[0];
    assert_eq!((*token, r.error_code, r.generation_id), (7, 0, 1));
    assert_eq!((r.leader.as_str(), r.member_id.as_str()), (id.as_str(), id.as_str()));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1, "the leader gets the member list");
    assert_eq!(r.members[0].metadata, Bytes::from_static(b"sub"));
    assert_eq!(state(&c), "CompletingRebalance");

    let r = now(c.sync_group(3_200, 8, &sync_req(&id, 1, &[(&id, b"p0")]), SYNC_V));
    assert_eq!((r.error_code, r.assignment.as_ref()), (0, b"p0".as_ref()));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&c), "Stable");
    let records = c.take_records();
    assert_eq!(records.len(), 1, "the assignment is written");
    let (p, key, value) = &records[0];
    assert_eq!(*p, partition_for(G, 50));
    let GroupRecord::Group { value: Some(v), .. } = GroupRecord::decode(key, value.as_deref()).unwrap() else { panic!() };
    assert_eq!((v.generation, v.leader.as_deref(), v.members.len()), (1, Some(id.as_str()), 1));
    assert_eq!(v.members[0].assignment, Bytes::from_static(b"p0"));
    let lines = lines.borrow();
    let expected = format!("group g1 Empty -> PreparingRebalance (member {id} joined)");
    assert!(lines.contains(&expected), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("group g1 generation 1 leader")), "{lines:?}");
}

#[test]
fn initial_delay_extends_for_new_members_up_to_the_rebalance_timeout() {
    let (mut c, _) = coordinator();
    // Rebalance timeout 10 s, delay 3 s: deadlines 3000, 6000, 9000, then 10000 at most.
    let join = |c: &mut GroupCoordinator, at: u64, token: u64| {
        let id = member_id(c, at);
        later(c.join_group(at, token, &join_req(&id, RANGE).with_rebalance_timeout_ms(10_000), JOIN_V));
    };
    join(&mut c, 0, 1);
    join(&mut c, 1_000, 2);
    c.tick(3_000);
    assert_eq!(c.next_deadline(), Some(6_000), "a new member extends the delay");
    join(&mut c, 4_000, 3);
    c.tick(6_000);
    join(&mut c, 7_000, 4);
    c.tick(9_000);
    join(&mut c, 9_500, 5);
    assert_eq!(c.next_deadline(), Some(10_000), "capped by the rebalance timeout");
    c.tick(9_999);
    assert!(c.take_ready().is_empty());
    c.tick(10_000);
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 5);
    assert!(joins.iter().all(|(_, r)| r.generation_id == 1));
}

#[test]
fn follower_sync_waits_for_the_leader_and_gets_its_assignment() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    let (joins, _) = ready(&mut c);
    let by_token = |t: u64| joins.iter().find(|(tok, _)| *tok == t).unwrap().1.clone();
    assert_eq!(by_token(1).members.len(), 2, "leader sees everyone");
    assert!(by_token(2).members.is_empty(), "followers see nobody");
    assert_eq!(by_token(2).leader.as_str(), a);

    later(c.sync_group(6_001, 10, &sync_req(&b, 1, &[]), SYNC_V));
    assert!(c.take_ready().is_empty());
    let r = now(c.sync_group(6_002, 11, &sync_req(&a, 1, &[(&a, b"A"), (&b, b"B")]), SYNC_V));
    assert_eq!(r.assignment.as_ref(), b"A");
    let (_, syncs) = ready(&mut c);
    assert_eq!(syncs.len(), 1);
    assert_eq!((syncs[0].0, syncs[0].1.error_code, syncs[0].1.assignment.as_ref()), (10, 0, b"B".as_ref()));
    // In Stable a sync gets the stored assignment at once.
    let r = now(c.sync_group(6_003, 12, &sync_req(&b, 1, &[]), SYNC_V));
    assert_eq!(r.assignment.as_ref(), b"B");
}

#[test]
fn members_missing_from_the_leaders_assignment_get_empty_bytes() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    let r = now(c.sync_group(6_500, 1, &sync_req(&ids[1], 1, &[]), SYNC_V));
    assert_eq!(r.assignment.as_ref(), b"parts");
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    now(c.sync_group(6_000, 3, &sync_req(&a, 1, &[(&a, b"all")]), SYNC_V));
    let r = now(c.sync_group(6_000, 4, &sync_req(&b, 1, &[]), SYNC_V));
    assert_eq!((r.error_code, r.assignment.len()), (0, 0));
}

#[test]
fn sync_errors_follow_kafkas_order() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    let code = |c: &mut GroupCoordinator, req: SyncGroupRequest| now(c.sync_group(7_000, 1, &req, SYNC_V)).error_code;
    assert_eq!(code(&mut c, sync_req("nobody", 1, &[])), ResponseError::UnknownMemberId.code());
    assert_eq!(code(&mut c, sync_req(&ids[1], 2, &[])), ResponseError::IllegalGeneration.code());
    let wrong_protocol = sync_req(&ids[1], 1, &[]).with_protocol_name(Some(s("roundrobin")));
    assert_eq!(code(&mut c, wrong_protocol), ResponseError::InconsistentGroupProtocol.code());
    assert_eq!(code(&mut c, sync_req(&ids[1], 1, &[]).with_group_id(GroupId(s("")))), ResponseError::InvalidGroupId.code());
    assert_eq!(code(&mut c, sync_req(&ids[1], 1, &[]).with_group_id(GroupId(s("elsewhere")))), ResponseError::NotCoordinator.code());
    later(c.join_group(7_000, 2, &join_req(&ids[0], RANGE), JOIN_V));
    assert_eq!(code(&mut c, sync_req(&ids[1], 1, &[])), ResponseError::RebalanceInProgress.code());
}

#[test]
fn heartbeat_during_a_rebalance_says_rejoin_but_keeps_the_session() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    assert_eq!(heartbeat(&mut c, 7_000, &ids[1], 1), 0);
    later(c.join_group(7_000, 5, &join_req(&ids[0], RANGE), JOIN_V));
    assert_eq!(state(&c), "PreparingRebalance", "the leader's join forces a rebalance");
    // The follower's session (10 s) would end at 16000 without these heartbeats.
    for t in [13_000, 19_000, 25_000] {
        assert_eq!(heartbeat(&mut c, t, &ids[1], 1), ResponseError::RebalanceInProgress.code());
        c.tick(t);
    }
    later(c.join_group(25_000, 6, &join_req(&ids[1], RANGE), JOIN_V));
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 2, "everyone rejoined: the join completes at once");
    assert!(joins.iter().all(|(_, r)| r.generation_id == 2 && r.error_code == 0));
    assert_eq!(heartbeat(&mut c, 25_001, &ids[1], 2), 0, "CompletingRebalance accepts heartbeats");
}

#[test]
fn heartbeat_errors_name_the_problem() {
    let (mut c, _) = coordinator();
    assert_eq!(heartbeat(&mut c, 0, "x", 1), ResponseError::UnknownMemberId.code(), "unknown group");
    let ids = stable_group(&mut c, 1);
    assert_eq!(heartbeat(&mut c, 6_500, "x", 1), ResponseError::UnknownMemberId.code());
    assert_eq!(heartbeat(&mut c, 6_500, &ids[0], 7), ResponseError::IllegalGeneration.code());
    let other = HeartbeatRequest::default().with_group_id(GroupId(s("elsewhere"))).with_member_id(s(&ids[0]));
    assert_eq!(c.heartbeat(6_500, &other).error_code, ResponseError::NotCoordinator.code());
    let empty = HeartbeatRequest::default().with_member_id(s(&ids[0]));
    assert_eq!(c.heartbeat(6_500, &empty).error_code, ResponseError::InvalidGroupId.code());
}

#[test]
fn session_expiry_removes_a_silent_member_and_rebalances() {
    let (mut c, lines) = coordinator();
    let ids = stable_group(&mut c, 2);
    // Both sessions restarted at 6000 (join answered, sync); only the leader keeps heartbeating.
    assert_eq!(heartbeat(&mut c, 12_000, &ids[0], 1), 0);
    assert_eq!(c.next_deadline(), Some(16_000));
    c.tick(16_000);
    assert_eq!(state(&c), "PreparingRebalance");
    assert!(lines.borrow().iter().any(|l| l.contains(&format!("member {} removed (session timeout expired)", ids[1]))));
    assert_eq!(heartbeat(&mut c, 16_001, &ids[0], 1), ResponseError::RebalanceInProgress.code());
    later(c.join_group(16_002, 3, &join_req(&ids[0], RANGE), JOIN_V));
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 1);
    assert_eq!((joins[0].1.generation_id, joins[0].1.members.len()), (2, 1));
}

#[test]
fn rebalance_timeout_removes_a_member_that_does_not_rejoin() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    later(c.join_group(7_000, 5, &join_req(&ids[0], RANGE), JOIN_V));
    // The follower stays alive by heartbeats but never rejoins.
    let mut t = 7_000;
    while t < 37_000 {
        t += 5_000;
        heartbeat(&mut c, t.min(36_999), &ids[1], 1);
        c.tick(t.min(36_999));
    }
    assert_eq!(state(&c), "PreparingRebalance");
    c.tick(37_000);
    let snap = c.snapshot().into_iter().find(|g| g.group == G).unwrap();
    assert_eq!((snap.state, snap.generation, snap.members.clone()), ("CompletingRebalance", 2, vec![ids[0].clone()]));
    let (joins, _) = ready(&mut c);
    assert_eq!((joins.len(), joins[0].0), (1, 5));
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    now(c.sync_group(6_000, 3, &sync_req(&a, 1, &[(&a, b"x"), (&b, b"y")]), SYNC_V));
    assert_eq!(state(&c), "Stable");
    for t in (8_000..36_000).step_by(5_000) {
        heartbeat(&mut c, t, &a, 1);
        heartbeat(&mut c, t, &b, 1);
        c.tick(t);
    }
    assert_eq!(state(&c), "Stable");
    c.tick(36_000);
    assert_eq!(state(&c), "PreparingRebalance", "b got its join response but never synced");
    assert_eq!(c.snapshot()[0].members, vec![a]);
}

#[test]
fn a_leader_that_never_syncs_sends_waiting_followers_back_to_join() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    ready(&mut c);
    later(c.sync_group(6_000, 3, &sync_req(&b, 1, &[]), SYNC_V));
    // Both stay alive; only the leader's sync is missing.
    for t in (8_000..36_000).step_by(5_000) {
        assert_eq!(heartbeat(&mut c, t, &a, 1), 0);
        assert_eq!(heartbeat(&mut c, t, &b, 1), 0);
        c.tick(t);
    }
    assert!(c.take_ready().is_empty());
    c.tick(36_000);
    let (_, syncs) = ready(&mut c);
    assert_eq!(syncs, vec![(3, SyncGroupResponse::default().with_error_code(ResponseError::RebalanceInProgress.code()))]);
    assert_eq!(c.snapshot()[0].members, vec![b]);
}

#[test]
fn leave_of_the_last_member_empties_the_group() {
    let (mut c, lines) = coordinator();
    let ids = stable_group(&mut c, 1);
    let r = c.leave_group(7_000, &leave_req(&[&ids[0]]), 5);
    assert_eq!((r.error_code, r.members.len(), r.members[0].error_code), (0, 1, 0));
    assert_eq!((state(&c), generation(&c)), ("Empty", 2));
    let records = c.take_records();
    let GroupRecord::Group { value: Some(v), .. } = GroupRecord::decode(&records[0].1, records[0].2.as_deref()).unwrap() else {
        panic!("{records:?}")
    };
    assert!(v.members.is_empty() && v.protocol.is_none() && v.generation == 2);
    assert!(lines.borrow().iter().any(|l| l.starts_with("group g1 Stable -> PreparingRebalance (member")));
    assert!(lines.borrow().iter().any(|l| l.starts_with("group g1 PreparingRebalance -> Empty")));
}

#[test]
fn leave_answers_each_member_and_unknown_ones_get_unknown_member_id() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    let r = c.leave_group(7_000, &leave_req(&[&ids[1], "ghost", ""]), 4);
    let codes: Vec<(String, i16)> = r.members.iter().map(|m| (m.member_id.to_string(), m.error_code)).collect();
    let unknown = ResponseError::UnknownMemberId.code();
    assert_eq!(codes, vec![(ids[1].clone(), 0), ("ghost".into(), unknown), (String::new(), unknown)]);
    assert_eq!(state(&c), "PreparingRebalance");
    let r = c.leave_group(7_000, &leave_req(&["x"]).with_group_id(GroupId(s("no-such-group"))), 3);
    assert_eq!(r.error_code, ResponseError::NotCoordinator.code());
}

#[test]
fn a_leave_during_a_rebalance_completes_the_join_for_the_others() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    later(c.join_group(7_000, 5, &join_req(&ids[0], RANGE), JOIN_V));
    c.leave_group(7_500, &leave_req(&[&ids[1]]), 5);
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 1);
    assert_eq!((joins[0].1.generation_id, joins[0].1.members.len()), (2, 1));
}

#[test]
fn a_second_join_from_the_same_member_replaces_the_first() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    later(c.join_group(7_000, 5, &join_req(&ids[0], RANGE), JOIN_V));
    later(c.join_group(7_100, 6, &join_req(&ids[0], RANGE), JOIN_V));
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 1);
    assert_eq!((joins[0].0, joins[0].1.error_code), (5, ResponseError::RebalanceInProgress.code()));
    later(c.join_group(7_200, 7, &join_req(&ids[1], RANGE), JOIN_V));
    let (joins, _) = ready(&mut c);
    let tokens: Vec<u64> = joins.iter().map(|(t, _)| *t).collect();
    assert_eq!(tokens, vec![6, 7]);
}

#[test]
fn a_rejoin_with_the_same_protocols_while_completing_gets_the_current_generation() {
    let (mut c, _) = coordinator();
    let a = member_id(&mut c, 0);
    let b = member_id(&mut c, 0);
    later(c.join_group(0, 1, &join_req(&a, RANGE), JOIN_V));
    later(c.join_group(0, 2, &join_req(&b, RANGE), JOIN_V));
    c.tick(6_000);
    ready(&mut c);
    let r = now(c.join_group(6_100, 3, &join_req(&a, RANGE), JOIN_V));
    assert_eq!((r.generation_id, r.members.len(), r.leader.as_str()), (1, 2, a.as_str()));
    let r = now(c.join_group(6_100, 4, &join_req(&b, RANGE), JOIN_V));
    assert_eq!((r.generation_id, r.members.len()), (1, 0));
    assert_eq!(state(&c), "CompletingRebalance");
    // Changed protocols start a new rebalance, and a parked follower sync must rejoin.
    later(c.sync_group(6_200, 5, &sync_req(&b, 1, &[]), SYNC_V));
    later(c.join_group(6_300, 6, &join_req(&a, &[("range", b"new")]), JOIN_V));
    assert_eq!(state(&c), "PreparingRebalance");
    let (_, syncs) = ready(&mut c);
    assert_eq!((syncs[0].0, syncs[0].1.error_code), (5, ResponseError::RebalanceInProgress.code()));
}

#[test]
fn a_stable_follower_rejoining_unchanged_is_answered_at_once() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 2);
    let r = now(c.join_group(7_000, 5, &join_req(&ids[1], RANGE), JOIN_V));
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 1, 0));
    assert_eq!(state(&c), "Stable");
    later(c.join_group(7_000, 6, &join_req(&ids[1], &[("range", b"more topics")]), JOIN_V));
    assert_eq!(state(&c), "PreparingRebalance", "changed metadata rebalances");
}

#[test]
fn join_validation_answers_at_once() {
    let (mut c, _) = coordinator();
    let code = |c: &mut GroupCoordinator, req: JoinGroupRequest| now(c.join_group(0, 1, &req, JOIN_V)).error_code;
    let e = |e: ResponseError| e.code();
    assert_eq!(code(&mut c, join_req("", RANGE).with_group_id(GroupId(s("")))), e(ResponseError::InvalidGroupId));
    assert_eq!(code(&mut c, join_req("", RANGE).with_group_id(GroupId(s("elsewhere")))), e(ResponseError::NotCoordinator));
    assert_eq!(code(&mut c, join_req("", RANGE).with_session_timeout_ms(5_999)), e(ResponseError::InvalidSessionTimeout));
    assert_eq!(code(&mut c, join_req("", RANGE).with_session_timeout_ms(1_800_001)), e(ResponseError::InvalidSessionTimeout));
    assert_eq!(code(&mut c, join_req("", RANGE).with_protocol_type(s(""))), e(ResponseError::InconsistentGroupProtocol));
    assert_eq!(code(&mut c, join_req("", &[])), e(ResponseError::InconsistentGroupProtocol));
    assert_eq!(code(&mut c, join_req("", RANGE).with_group_instance_id(Some(s("i1")))), e(ResponseError::InvalidRequest));
    assert_eq!(code(&mut c, join_req("never-handed-out", RANGE)), e(ResponseError::UnknownMemberId));
    assert_eq!(state(&c), "absent", "refused joins create no group");
    stable_group(&mut c, 1);
    assert_eq!(code(&mut c, join_req("", RANGE).with_protocol_type(s("connect"))), e(ResponseError::InconsistentGroupProtocol));
    assert_eq!(code(&mut c, join_req("", &[("roundrobin", b"")])), e(ResponseError::InconsistentGroupProtocol));
    assert_eq!(code(&mut c, join_req("never-handed-out", RANGE)), e(ResponseError::UnknownMemberId));
}

#[test]
fn the_protocol_with_most_first_choices_wins_and_ties_go_to_the_leaders_order() {
    let run = |lists: &[&[(&str, &[u8])]]| {
        let (mut c, _) = coordinator();
        for (i, protocols) in lists.iter().enumerate() {
            let id = member_id(&mut c, 0);
            later(c.join_group(0, i as u64, &join_req(&id, protocols), JOIN_V));
        }
        c.tick(6_000);
        let (joins, _) = ready(&mut c);
        joins[0].1.protocol_name.as_ref().unwrap().to_string()
    };
    let rr_range: &[(&str, &[u8])] = &[("roundrobin", b""), ("range", b"")];
    let range_rr: &[(&str, &[u8])] = &[("range", b""), ("roundrobin", b"")];
    let sticky_rr_range: &[(&str, &[u8])] = &[("sticky", b""), ("roundrobin", b""), ("range", b"")];
    assert_eq!(run(&[range_rr, rr_range, rr_range]), "roundrobin");
    assert_eq!(run(&[rr_range, range_rr]), "roundrobin", "a tie goes to the leader's first");
    assert_eq!(run(&[range_rr, rr_range]), "range");
    let sticky_range: &[(&str, &[u8])] = &[("sticky", b""), ("range", b""), ("roundrobin", b"")];
    assert_eq!(run(&[sticky_rr_range, range_rr, sticky_range]), "range", "sticky is not common; its voters fall back");
}

#[test]
fn a_handed_out_member_id_expires_if_never_used() {
    let (mut c, lines) = coordinator();
    let id = member_id(&mut c, 0);
    assert_eq!(c.next_deadline(), Some(SESSION_MS as u64));
    c.tick(SESSION_MS as u64);
    assert!(lines.borrow().iter().any(|l| l.contains(&format!("pending member {id} expired"))));
    assert_eq!(now(c.join_group(10_001, 1, &join_req(&id, RANGE), JOIN_V)).error_code, ResponseError::UnknownMemberId.code());
}

#[test]
fn a_pending_member_holds_an_early_join_completion_until_it_joins() {
    let (mut c, _) = coordinator();
    let ids = stable_group(&mut c, 1);
    let newcomer = member_id(&mut c, 7_000);
    later(c.join_group(7_000, 5, &join_req(&ids[0], RANGE), JOIN_V));
    assert!(c.take_ready().is_empty(), "Kafka's hasAllMembersJoined waits for pending members");
    later(c.join_group(7_100, 6, &join_req(&newcomer, RANGE), JOIN_V));
    let (joins, _) = ready(&mut c);
    assert_eq!(joins.len(), 2);
}
