//! Response bodies, with only the fields the answered version has: kafka-protocol refuses to
//! encode a non-default value in a field the version lacks.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::protocol::StrBytes;

use bytes::Bytes;

use super::classic::ClassicGroup;

pub(super) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// A failed join. `member_id` is the id the client should use next (the new one for
/// MEMBER_ID_REQUIRED, its own otherwise, empty for a member that never got one).
pub(super) fn join_error(version: i16, member_id: &str, error: ResponseError) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        // Nullable from v7; before, Kafka sends the empty string.
        .with_protocol_name(if version >= 7 { None } else { Some(StrBytes::new()) })
        .with_member_id(str_bytes(member_id))
}

/// The current generation as `member_id` sees it; only the leader gets the member list.
pub(super) fn join_ok(version: i16, group: &ClassicGroup, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol.as_deref().expect("a joined generation has a protocol");
    let members = if group.is_leader(member_id) {
        group
            .members
            .iter()
            .map(|m| JoinGroupResponseMember::default().with_member_id(str_bytes(&m.id)).with_metadata(m.metadata(protocol)))
            .collect()
    } else {
        Vec::new()
    };
    let protocol_type = if version >= 7 { group.protocol_type.as_deref().map(str_bytes) } else { None };
    JoinGroupResponse::default()
        .with_generation_id(group.generation)
        .with_protocol_type(protocol_type)
        .with_protocol_name(Some(str_bytes(protocol)))
        .with_leader(str_bytes(group.leader.as_deref().unwrap_or_default()))
        .with_member_id(str_bytes(member_id))
        .with_members(members)
}

pub(super) fn sync_error(_version: i16, error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

/// A member's assignment; v5 also names the protocol type and protocol.
pub(super) fn sync_ok(version: i16, group: &ClassicGroup, assignment: Bytes) -> SyncGroupResponse {
    let response = SyncGroupResponse::default().with_assignment(assignment);
    if version < 5 {
        return response;
    }
    response
        .with_protocol_type(group.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(group.protocol.as_deref().map(str_bytes))
}

pub(super) fn heartbeat_response(error: Option<ResponseError>) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code(error))
}

/// v3+ answers each member; before v3 there is one member and its error is the top-level one.
pub(super) fn leave_response(
    version: i16,
    error: Option<ResponseError>,
    members: Vec<(String, Option<ResponseError>)>,
) -> LeaveGroupResponse {
    if version < 3 {
        let first = members.first().and_then(|(_, e)| *e);
        return LeaveGroupResponse::default().with_error_code(code(error.or(first)));
    }
    let members = members
        .into_iter()
        .map(|(id, e)| MemberResponse::default().with_member_id(str_bytes(&id)).with_error_code(code(e)))
        .collect();
    LeaveGroupResponse::default().with_error_code(code(error)).with_members(members)
}
