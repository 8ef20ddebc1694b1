//! Every response the coordinator produces encodes at every version it serves: kafka-protocol
//! refuses non-default values in fields a version lacks, so this catches a field set too early.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::Encodable;

use super::*;

fn encodes<T: Encodable + std::fmt::Debug>(what: &str, version: i16, body: &T) {
    let mut buf = BytesMut::new();
    if let Err(e) = body.encode(&mut buf, version) {
        panic!("{what} v{version} does not encode: {e}\n{body:?}");
    }
}

/// Runs a group through join, sync, heartbeat and leave at the given versions, collecting
/// every response (a heartbeat response is the same at every version).
type Responses = (Vec<JoinGroupResponse>, Vec<SyncGroupResponse>, Vec<HeartbeatResponse>, Vec<LeaveGroupResponse>);

fn responses(join_v: i16, sync_v: i16, leave_v: i16) -> Responses {
    let (mut c, _) = coordinator();
    let (mut joins, mut syncs, mut hbs, mut leaves) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let join = |c: &mut GroupCoordinator, t: u64, req: JoinGroupRequest, joins: &mut Vec<JoinGroupResponse>| {
        if let Reply::Now(r) = c.join_group(t, 0, &req, join_v) {
            joins.push(r);
        }
    };
    join(&mut c, 0, join_req("", RANGE).with_session_timeout_ms(1), &mut joins);
    joins.push(now(c.join_group(0, 1, &join_req("", RANGE), join_v)));
    joins.push(now(c.join_group(0, 2, &join_req("", RANGE), join_v)));
    let a = joins[joins.len() - 2].member_id.to_string();
    let b = joins[joins.len() - 1].member_id.to_string();
    joins.push(join_error_sample(&mut c, join_v));
    later(c.join_group(0, 1, &join_req(&a, RANGE), join_v));
    later(c.join_group(0, 2, &join_req(&b, RANGE), join_v));
    c.tick(6_000);
    join(&mut c, 6_000, join_req(&a, RANGE), &mut joins);
    later(c.sync_group(6_000, 3, &sync_req(&b, 1, &[]), sync_v));
    syncs.push(now(c.sync_group(6_000, 4, &sync_req(&a, 1, &[(&a, b"x")]), sync_v)));
    syncs.push(now(c.sync_group(6_000, 5, &sync_req(&a, 9, &[]), sync_v)));
    for req in [(&a, 1), (&a, 5), (&"z".to_string(), 1)] {
        let hb = HeartbeatRequest::default().with_group_id(GroupId(s(G))).with_generation_id(req.1).with_member_id(s(req.0));
        hbs.push(c.heartbeat(6_000, &hb));
    }
    leaves.push(c.leave_group(6_000, &leave_req(&[&b, "ghost"]), leave_v));
    leaves.push(c.leave_group(6_000, &leave_req(&[&a]).with_group_id(GroupId(s("elsewhere"))), leave_v));
    for r in c.take_ready() {
        match r {
            Ready::Join { response, .. } => joins.push(response),
            Ready::Sync { response, .. } => syncs.push(response),
        }
    }
    (joins, syncs, hbs, leaves)
}

fn join_error_sample(c: &mut GroupCoordinator, v: i16) -> JoinGroupResponse {
    now(c.join_group(0, 9, &join_req("ghost", RANGE), v))
}

#[test]
fn every_response_encodes_at_every_served_version() {
    let mut seen = 0;
    for join_v in 4..=9 {
        for sync_v in 3..=5 {
            let leave_v = 3 + (join_v % 3);
            let (joins, syncs, hbs, leaves) = responses(join_v, sync_v, leave_v);
            assert!(joins.iter().any(|r| r.error_code == 0 && !r.members.is_empty()), "a leader response");
            assert!(joins.iter().any(|r| r.error_code == ResponseError::MemberIdRequired.code()));
            assert!(syncs.iter().any(|r| r.error_code == 0) && syncs.iter().any(|r| r.error_code != 0));
            for r in &joins {
                encodes("JoinGroupResponse", join_v, r);
            }
            for r in &syncs {
                encodes("SyncGroupResponse", sync_v, r);
            }
            for v in 3..=4 {
                hbs.iter().for_each(|r| encodes("HeartbeatResponse", v, r));
            }
            for v in 3..=5 {
                leaves.iter().for_each(|r| encodes("LeaveGroupResponse", v, r));
            }
            seen += joins.len() + syncs.len() + hbs.len() + leaves.len();
        }
    }
    assert!(seen > 100, "{seen} responses checked");
}
