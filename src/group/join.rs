//! JoinGroup and the rebalance it drives: Kafka's `classicGroupJoin*`, `prepareRebalance`,
//! `InitialDelayedJoin`/`DelayedJoin` and `onCompleteJoin`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::coordinator::{truncate, ClientInfo, GroupCoordinator, Ready, Reply, STRING_LEN_MAX};
use super::classic::{ClassicGroup, Effects, JoinTimer, Member, Parked};
use super::responses::{join_error, join_ok, sync_error};
use super::state::GroupState;

/// One JoinGroup, with what the coordinator needs from it.
pub(super) struct JoinArgs<'a> {
    pub token: u64,
    pub version: i16,
    pub member_id: &'a str,
    pub protocol_type: &'a str,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client: &'a ClientInfo,
}

impl GroupCoordinator {
    /// JoinGroup (v4..=9) from a client that sent no client id; see `join_group_from`.
    pub fn join_group(&mut self, now_ms: u64, token: u64, req: &JoinGroupRequest, version: i16) -> Reply<JoinGroupResponse> {
        self.join_group_from(now_ms, token, req, version, &ClientInfo::default())
    }

    /// JoinGroup (v4..=9). Answers at once (errors, MEMBER_ID_REQUIRED, a rejoin that changes
    /// nothing) or parks the request under `token` until the rebalance completes.
    pub fn join_group_from(
        &mut self,
        now_ms: u64,
        token: u64,
        req: &JoinGroupRequest,
        version: i16,
        client: &ClientInfo,
    ) -> Reply<JoinGroupResponse> {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let protocols: Vec<(String, Bytes)> = req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
        let args = JoinArgs {
            token,
            version,
            member_id,
            protocol_type: req.protocol_type.as_str(),
            protocols,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            client,
        };
        match self.check_join(group_id, req, &args) {
            Err(e) => Reply::Now(join_error(version, member_id, e)),
            Ok(()) if member_id.is_empty() => Reply::Now(self.join_new_member(now_ms, group_id, &args)),
            Ok(()) => self.join_known_member(now_ms, group_id, args),
        }
    }

    fn check_join(&self, group_id: &str, req: &JoinGroupRequest, args: &JoinArgs<'_>) -> Result<(), ResponseError> {
        self.check_group_id(group_id)?;
        let session_ms = i64::from(args.session_timeout_ms);
        if session_ms < self.config.min_session_timeout_ms as i64 || session_ms > self.config.max_session_timeout_ms as i64 {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        // Static membership (KIP-345) is not served: a group.instance.id is refused outright
        // rather than half-supported.
        if req.group_instance_id.is_some() {
            return Err(ResponseError::InvalidRequest);
        }
        // Protocol names and type end up in i16-length record fields.
        let too_long = args.protocol_type.len() > STRING_LEN_MAX || args.protocols.iter().any(|(n, _)| n.len() > STRING_LEN_MAX);
        if too_long {
            return Err(ResponseError::InvalidRequest);
        }
        Ok(())
    }

    /// KIP-394: a join without a member id gets one and must come back with it.
    fn join_new_member(&mut self, now_ms: u64, group_id: &str, args: &JoinArgs<'_>) -> JoinGroupResponse {
        let existing = self.groups.get(group_id);
        if existing.is_some_and(|g| g.state == GroupState::Dead) {
            return join_error(args.version, "", ResponseError::CoordinatorNotAvailable);
        }
        let supported = match existing {
            Some(g) => g.supports_protocols("", args.protocol_type, &args.protocols),
            None => !args.protocol_type.is_empty() && !args.protocols.is_empty(),
        };
        if !supported {
            return join_error(args.version, "", ResponseError::InconsistentGroupProtocol);
        }
        let member_id = self.new_member_id(&args.client.client_id, group_id);
        let expires_ms = now_ms + args.session_timeout_ms as u64;
        let group = self.group_or_create(now_ms, group_id);
        group.pending.insert(member_id.clone(), expires_ms);
        let state = group.state;
        self.trace.emit(|| format!("group {group_id} member id {member_id} handed out (MEMBER_ID_REQUIRED, {state})"));
        join_error(args.version, &member_id, ResponseError::MemberIdRequired)
    }

    fn join_known_member(&mut self, now_ms: u64, group_id: &str, args: JoinArgs<'_>) -> Reply<JoinGroupResponse> {
        let (version, member_id) = (args.version, args.member_id);
        let Some(group) = self.groups.get(group_id) else {
            return Reply::Now(join_error(version, member_id, ResponseError::UnknownMemberId));
        };
        if group.state == GroupState::Dead {
            return Reply::Now(join_error(version, member_id, ResponseError::CoordinatorNotAvailable));
        }
        if !group.supports_protocols(member_id, args.protocol_type, &args.protocols) {
            return Reply::Now(join_error(version, member_id, ResponseError::InconsistentGroupProtocol));
        }
        if !group.knows(member_id) {
            return Reply::Now(join_error(version, member_id, ResponseError::UnknownMemberId));
        }
        self.with_group(now_ms, group_id, |g, fx| g.join(fx, args)).expect("group exists")
    }
}

impl ClassicGroup {
    /// A join from a member or pending member (Kafka's `classicGroupJoinExistingMember`).
    fn join(&mut self, fx: &mut Effects<'_>, args: JoinArgs<'_>) -> Reply<JoinGroupResponse> {
        use GroupState::*;
        let id = args.member_id.to_string();
        if self.pending.contains_key(&id) {
            return self.add_member_and_rebalance(fx, args);
        }
        let member = self.member(&id).expect("checked by the caller");
        let unchanged = member.protocols == args.protocols;
        match self.state {
            PreparingRebalance => self.update_member_and_rebalance(fx, args, "rejoined"),
            CompletingRebalance if unchanged => {
                // It may have missed the join response: resend this generation's.
                self.touch(fx.now_ms, &id);
                Reply::Now(join_ok(args.version, self, &id))
            }
            CompletingRebalance => self.update_member_and_rebalance(fx, args, "changed its protocols"),
            // A leader's join forces a rebalance, so it can react to changes the member
            // metadata does not show (new topics matching its subscription).
            Stable if self.is_leader(&id) => self.update_member_and_rebalance(fx, args, "leader rejoined"),
            Stable if !unchanged => self.update_member_and_rebalance(fx, args, "changed its protocols"),
            Stable => {
                self.touch(fx.now_ms, &id);
                Reply::Now(join_ok(args.version, self, &id))
            }
            Empty | Dead => Reply::Now(join_error(args.version, &id, ResponseError::UnknownMemberId)),
        }
    }

    /// Refreshes a member's session.
    pub(super) fn touch(&mut self, now_ms: u64, id: &str) {
        if let Some(m) = self.member_mut(id) {
            m.last_seen_ms = m.last_seen_ms.max(now_ms);
        }
    }

    fn add_member_and_rebalance(&mut self, fx: &mut Effects<'_>, args: JoinArgs<'_>) -> Reply<JoinGroupResponse> {
        let id = args.member_id.to_string();
        self.pending.remove(&id);
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.to_string());
        }
        self.members.push(Member {
            id: id.clone(),
            client_id: truncate(&args.client.client_id, STRING_LEN_MAX).to_string(),
            client_host: truncate(&args.client.client_host, STRING_LEN_MAX).to_string(),
            rebalance_timeout_ms: args.rebalance_timeout_ms,
            session_timeout_ms: args.session_timeout_ms,
            protocols: args.protocols,
            assignment: Bytes::new(),
            assignment_generation: -1,
            last_seen_ms: fx.now_ms,
            awaiting_join: Some(Parked { token: args.token, version: args.version }),
            awaiting_sync: None,
        });
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        fx.trace.emit(|| format!("group {} member {id} added in {} ({} members)", self.id, self.state, self.members.len()));
        self.maybe_prepare_rebalance(fx, &format!("member {id} joined"));
        self.try_complete_join(fx);
        Reply::Later
    }

    fn update_member_and_rebalance(&mut self, fx: &mut Effects<'_>, args: JoinArgs<'_>, what: &str) -> Reply<JoinGroupResponse> {
        let id = args.member_id.to_string();
        let m = self.member_mut(&id).expect("known member");
        m.protocols = args.protocols;
        m.rebalance_timeout_ms = args.rebalance_timeout_ms;
        m.session_timeout_ms = args.session_timeout_ms;
        m.last_seen_ms = m.last_seen_ms.max(fx.now_ms);
        let replaced = m.awaiting_join.replace(Parked { token: args.token, version: args.version });
        if let Some(old) = replaced {
            // Kafka drops the older request; answering it lets its connection move on.
            fx.ready.push(Ready::Join { token: old.token, response: join_error(old.version, &id, ResponseError::RebalanceInProgress) });
        }
        self.maybe_prepare_rebalance(fx, &format!("member {id} {what}"));
        self.try_complete_join(fx);
        Reply::Later
    }

    /// Starts a rebalance if the state allows one (Kafka's `canRebalance`).
    pub(super) fn maybe_prepare_rebalance(&mut self, fx: &mut Effects<'_>, reason: &str) {
        if GroupState::PreparingRebalance.valid_previous_states().contains(&self.state) {
            self.prepare_rebalance(fx, reason);
        }
    }

    /// Kafka's `prepareRebalance`: parked syncs learn that the generation is over, and the join
    /// timer starts (the initial delay out of Empty, the rebalance timeout otherwise).
    fn prepare_rebalance(&mut self, fx: &mut Effects<'_>, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(p) = m.awaiting_sync.take() {
                    fx.ready.push(Ready::Sync { token: p.token, response: sync_error(p.version, ResponseError::RebalanceInProgress) });
                    m.last_seen_ms = m.last_seen_ms.max(fx.now_ms);
                }
            }
        }
        self.sync_deadline_ms = None;
        self.pending_sync.clear();
        let timeout_ms = self.rebalance_timeout_ms();
        self.join_timer = Some(if self.state == GroupState::Empty {
            let delay_ms = fx.config.initial_rebalance_delay_ms;
            JoinTimer::Initial { deadline_ms: fx.now_ms + delay_ms, delay_ms, remaining_ms: timeout_ms.saturating_sub(delay_ms) }
        } else {
            JoinTimer::Rebalance { deadline_ms: fx.now_ms + timeout_ms }
        });
        self.transition(fx, GroupState::PreparingRebalance, reason);
    }

    /// Completes the join early when nobody else is expected (only a `DelayedJoin` may).
    pub(super) fn try_complete_join(&mut self, fx: &mut Effects<'_>) {
        let early = matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }));
        if self.state == GroupState::PreparingRebalance && early && self.all_members_joined() {
            self.complete_join(fx, "all members joined");
        }
    }

    /// The join timer fired: extend an initial delay that saw new members, else complete.
    pub(super) fn on_join_deadline(&mut self, fx: &mut Effects<'_>) {
        match self.join_timer.expect("join deadline without a timer") {
            JoinTimer::Initial { deadline_ms, delay_ms, remaining_ms } if self.new_member_added && remaining_ms > 0 => {
                self.new_member_added = false;
                let next_ms = fx.config.initial_rebalance_delay_ms.min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline_ms: deadline_ms + next_ms,
                    delay_ms: next_ms,
                    remaining_ms: remaining_ms.saturating_sub(delay_ms),
                });
                fx.trace.emit(|| format!("group {} initial rebalance delay extended by {next_ms} ms (new members)", self.id));
            }
            JoinTimer::Initial { .. } => self.complete_join(fx, "initial rebalance delay elapsed"),
            JoinTimer::Rebalance { .. } => self.complete_join(fx, "rebalance timeout"),
        }
    }

    /// Kafka's `onCompleteJoin`: members that did not rejoin are dropped, the generation moves
    /// on, and every waiting join is answered (the leader's with the member list).
    fn complete_join(&mut self, fx: &mut Effects<'_>, why: &str) {
        let absent: Vec<String> = self.members.iter().filter(|m| m.awaiting_join.is_none()).map(|m| m.id.clone()).collect();
        for id in &absent {
            self.remove_member(fx, id, "did not rejoin before the rebalance completed");
        }
        self.join_timer = None;
        self.new_member_added = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.transition(fx, GroupState::Empty, &format!("{why}; no members at generation {}", self.generation));
            self.emit_metadata(fx);
            return;
        }
        self.protocol = Some(self.select_protocol());
        self.transition(fx, GroupState::CompletingRebalance, why);
        fx.trace.emit(|| {
            let ids: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
            let leader = self.leader.as_deref().unwrap_or_default();
            let protocol = self.protocol.as_deref().unwrap_or_default();
            format!("group {} generation {} leader {leader} protocol {protocol} members {ids:?}", self.id, self.generation)
        });
        let now_ms = fx.now_ms;
        for i in 0..self.members.len() {
            let p = self.members[i].awaiting_join.take().expect("absent members were removed");
            let id = self.members[i].id.clone();
            fx.ready.push(Ready::Join { token: p.token, response: join_ok(p.version, self, &id) });
            self.members[i].last_seen_ms = self.members[i].last_seen_ms.max(now_ms);
            self.pending_sync.insert(id);
        }
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
    }
}
