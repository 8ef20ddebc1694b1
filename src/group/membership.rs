//! SyncGroup, Heartbeat, LeaveGroup and the ways a member leaves (Kafka's `classicGroupSync`,
//! `classicGroupHeartbeat`, `classicGroupLeave`, heartbeat and sync expiry).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::coordinator::{GroupCoordinator, Ready, Reply};
use super::classic::{ClassicGroup, Effects, Parked};
use super::responses::{heartbeat_response, leave_response, sync_error, sync_ok};
use super::state::GroupState;

impl GroupCoordinator {
    /// SyncGroup (v3..=5). The leader's sync ends the rebalance and answers the followers,
    /// whose syncs wait (`Later`) until then.
    pub fn sync_group(&mut self, now_ms: u64, token: u64, req: &SyncGroupRequest, version: i16) -> Reply<SyncGroupResponse> {
        let group_id = req.group_id.as_str();
        if let Err(e) = self.check_group_id(group_id) {
            return Reply::Now(sync_error(version, e));
        }
        self.with_group(now_ms, group_id, |g, fx| g.sync(fx, token, req, version))
            .unwrap_or_else(|| Reply::Now(sync_error(version, ResponseError::UnknownMemberId)))
    }

    /// Heartbeat (v3..=4): refreshes the session and tells the member whether to rejoin.
    pub fn heartbeat(&mut self, now_ms: u64, req: &HeartbeatRequest) -> HeartbeatResponse {
        let group_id = req.group_id.as_str();
        if let Err(e) = self.check_group_id(group_id) {
            return heartbeat_response(Some(e));
        }
        let error = self
            .with_group(now_ms, group_id, |g, fx| g.heartbeat(fx.now_ms, req.member_id.as_str(), req.generation_id))
            .unwrap_or(Some(ResponseError::UnknownMemberId));
        heartbeat_response(error)
    }

    /// LeaveGroup (v3..=5): removes each named member; the group rebalances, or becomes Empty
    /// when nobody is left.
    pub fn leave_group(&mut self, now_ms: u64, req: &LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group_id = req.group_id.as_str();
        let ids: Vec<String> = if version >= 3 {
            req.members.iter().map(|m| m.member_id.to_string()).collect()
        } else {
            vec![req.member_id.to_string()]
        };
        if let Err(e) = self.check_group_id(group_id) {
            return leave_response(version, Some(e), Vec::new());
        }
        let unknown = |ids: Vec<String>| ids.into_iter().map(|id| (id, Some(ResponseError::UnknownMemberId))).collect();
        match self.groups.get(group_id).map(|g| g.state) {
            None => leave_response(version, None, unknown(ids)),
            Some(GroupState::Dead) => leave_response(version, Some(ResponseError::CoordinatorNotAvailable), Vec::new()),
            Some(_) => {
                let results = self.with_group(now_ms, group_id, |g, fx| g.leave(fx, ids)).expect("group exists");
                leave_response(version, None, results)
            }
        }
    }
}

impl ClassicGroup {
    fn sync(&mut self, fx: &mut Effects<'_>, token: u64, req: &SyncGroupRequest, version: i16) -> Reply<SyncGroupResponse> {
        use GroupState::*;
        let id = req.member_id.as_str();
        let refuse = |e| Reply::Now(sync_error(version, e));
        if self.state == Dead {
            return refuse(ResponseError::CoordinatorNotAvailable);
        }
        if !self.has_member(id) {
            return refuse(ResponseError::UnknownMemberId);
        }
        if req.generation_id != self.generation {
            return refuse(ResponseError::IllegalGeneration);
        }
        let type_differs = req.protocol_type.as_ref().is_some_and(|t| self.protocol_type.as_deref() != Some(t.as_str()));
        let name_differs = req.protocol_name.as_ref().is_some_and(|n| self.protocol.as_deref() != Some(n.as_str()));
        if type_differs || name_differs {
            return refuse(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            Empty | Dead => refuse(ResponseError::UnknownMemberId),
            PreparingRebalance => refuse(ResponseError::RebalanceInProgress),
            CompletingRebalance => self.sync_completing(fx, token, req, version),
            Stable => {
                self.pending_sync.remove(id);
                self.touch(fx.now_ms, id);
                let assignment = self.member(id).expect("member").assignment.clone();
                Reply::Now(sync_ok(version, self, assignment))
            }
        }
    }

    /// A sync while the leader's assignment is awaited: followers wait; the leader's completes
    /// the rebalance.
    fn sync_completing(&mut self, fx: &mut Effects<'_>, token: u64, req: &SyncGroupRequest, version: i16) -> Reply<SyncGroupResponse> {
        let id = req.member_id.to_string();
        self.pending_sync.remove(&id);
        self.touch(fx.now_ms, &id);
        if !self.is_leader(&id) {
            let m = self.member_mut(&id).expect("member");
            if let Some(old) = m.awaiting_sync.replace(Parked { token, version }) {
                fx.ready.push(Ready::Sync { token: old.token, response: sync_error(old.version, ResponseError::RebalanceInProgress) });
            }
            return Reply::Later;
        }
        let assignments: BTreeMap<&str, &Bytes> = req.assignments.iter().map(|a| (a.member_id.as_str(), &a.assignment)).collect();
        let missing: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).filter(|m| !assignments.contains_key(m)).collect();
        if !missing.is_empty() {
            fx.trace.emit(|| format!("group {} leader {id} gave no assignment to {missing:?}: they get an empty one", self.id));
        }
        let generation = self.generation;
        for m in &mut self.members {
            m.assignment = assignments.get(m.id.as_str()).map(|a| (*a).clone()).unwrap_or_default();
            m.assignment_generation = generation;
        }
        // Kafka waits for the GroupMetadata record to be written before going Stable; here the
        // record is best effort, so the group is Stable at once.
        self.transition(fx, GroupState::Stable, &format!("leader {id} sent the assignment of generation {generation}"));
        self.emit_metadata(fx);
        let now_ms = fx.now_ms;
        for i in 0..self.members.len() {
            if let Some(p) = self.members[i].awaiting_sync.take() {
                let response = sync_ok(p.version, self, self.members[i].assignment.clone());
                fx.ready.push(Ready::Sync { token: p.token, response });
                self.members[i].last_seen_ms = self.members[i].last_seen_ms.max(now_ms);
            }
        }
        let assignment = self.member(&id).expect("leader").assignment.clone();
        Reply::Now(sync_ok(version, self, assignment))
    }

    /// The heartbeat's error, None if all is well.
    fn heartbeat(&mut self, now_ms: u64, id: &str, generation: i32) -> Option<ResponseError> {
        use GroupState::*;
        if self.state == Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if !self.has_member(id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        match self.state {
            Empty | Dead => Some(ResponseError::UnknownMemberId),
            CompletingRebalance | Stable => {
                self.touch(now_ms, id);
                None
            }
            PreparingRebalance => {
                self.touch(now_ms, id);
                Some(ResponseError::RebalanceInProgress)
            }
        }
    }

    fn leave(&mut self, fx: &mut Effects<'_>, ids: Vec<String>) -> Vec<(String, Option<ResponseError>)> {
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let error = if self.pending.remove(&id).is_some() {
                fx.trace.emit(|| format!("group {} pending member {id} left", self.id));
                self.try_complete_join(fx);
                None
            } else if self.has_member(&id) {
                self.remove_member_and_rebalance(fx, &id, "left the group");
                None
            } else {
                // Includes an empty member id: leaving by group.instance.id alone needs static
                // membership, which is not served.
                Some(ResponseError::UnknownMemberId)
            };
            results.push((id, error));
        }
        results
    }

    /// Kafka's `removeMemberAndUpdateGroup`: a member is gone, so the generation is over (or, in
    /// a rebalance, the join may now be complete).
    pub(super) fn remove_member_and_rebalance(&mut self, fx: &mut Effects<'_>, id: &str, reason: &str) {
        if !self.remove_member(fx, id, reason) {
            return;
        }
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            self.maybe_prepare_rebalance(fx, &format!("member {id} {reason}"));
        }
        self.try_complete_join(fx);
    }

    /// Members that got the join response but did not sync within the rebalance timeout are
    /// removed, and the group rebalances without them.
    pub(super) fn on_sync_deadline(&mut self, fx: &mut Effects<'_>) {
        self.sync_deadline_ms = None;
        let late: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        for id in &late {
            self.remove_member(fx, id, "did not sync before the rebalance timeout");
        }
        if !late.is_empty() && matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            self.maybe_prepare_rebalance(fx, &format!("members {late:?} did not sync"));
        }
        self.try_complete_join(fx);
    }
}
