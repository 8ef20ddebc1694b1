//! Elections and leadership (KIP-595): Vote, BeginQuorumEpoch, EndQuorumEpoch, check-quorum.
//!
//! A vote is granted once per epoch, only to a candidate whose log is at least as up to date
//! (last epoch, then end offset), and only after the vote is durable. Any message carrying a
//! higher epoch moves the node to it. A new leader writes a leader-change entry so that an
//! entry of its own epoch can commit, then announces itself with BeginQuorumEpoch.

use super::leader::LeaderState;
use super::message::{Entry, Message, NodeId, RaftError};
use super::node::RaftNode;
use super::role::Role;

impl RaftNode {
    /// Unpacks an election RPC for its handler.
    pub(crate) fn dispatch_election(&mut self, now_ms: u64, from: NodeId, msg: Message) {
        match msg {
            Message::VoteRequest {
                candidate_epoch,
                candidate_id,
                last_offset_epoch,
                last_offset,
            } => self.handle_vote_request(
                now_ms,
                from,
                candidate_epoch,
                candidate_id,
                (last_offset_epoch, last_offset),
            ),
            Message::VoteResponse {
                leader_epoch,
                leader_id,
                vote_granted,
                ..
            } => self.handle_vote_response(now_ms, from, leader_epoch, leader_id, vote_granted),
            Message::BeginQuorumEpochRequest {
                leader_epoch,
                leader_id,
            } => self.handle_begin_quorum_epoch(now_ms, from, leader_epoch, leader_id),
            Message::BeginQuorumEpochResponse {
                leader_epoch,
                leader_id,
                error,
            } => self.handle_begin_quorum_epoch_response(
                now_ms,
                from,
                leader_epoch,
                leader_id,
                error,
            ),
            Message::EndQuorumEpochRequest {
                leader_epoch,
                leader_id,
                preferred_successors,
            } => self.handle_end_quorum_epoch(
                now_ms,
                from,
                leader_epoch,
                leader_id,
                &preferred_successors,
            ),
            Message::EndQuorumEpochResponse {
                leader_epoch,
                leader_id,
                ..
            } => self.observe_epoch(now_ms, leader_epoch, leader_id),
            Message::FetchRequest { .. } | Message::FetchResponse { .. } => {
                unreachable!("not a election message: {msg:?}")
            }
        }
    }

    /// Stands for the next epoch: votes for itself and asks every other voter.
    pub(crate) fn become_candidate(&mut self, now_ms: u64) {
        let epoch = self.quorum.epoch + 1;
        self.transition(now_ms, epoch, Role::Candidate { epoch });
        self.votes.insert(self.config.id);
        self.send_vote_requests();
        self.maybe_become_leader(now_ms);
    }

    pub(crate) fn send_vote_requests(&mut self) {
        let Role::Candidate { epoch } = self.role else {
            return;
        };
        for voter in self.config.other_voters() {
            let msg = Message::VoteRequest {
                candidate_epoch: epoch,
                candidate_id: self.config.id,
                last_offset_epoch: self.log.last_epoch(),
                last_offset: self.log.end_offset(),
            };
            self.outbound.push((voter, msg));
        }
    }

    fn maybe_become_leader(&mut self, now_ms: u64) {
        let Role::Candidate { epoch } = self.role else {
            return;
        };
        if self.votes.len() < self.config.majority() {
            return;
        }
        self.transition(now_ms, epoch, Role::Leader { epoch });
        let start = self.log.end_offset();
        let others = self.config.other_voters();
        self.leader_state = Some(LeaderState::new(&others, start, now_ms));
        self.append_as_leader(Entry {
            epoch,
            offset: start,
            payload: Vec::new(),
        });
        self.send_begin_quorum_epoch(now_ms);
    }

    /// (Re)announces the epoch to voters that have not yet shown they know it.
    fn send_begin_quorum_epoch(&mut self, now_ms: u64) {
        let Role::Leader { epoch } = self.role else {
            return;
        };
        let resend_ms = now_ms + (self.config.fetch_timeout_ms / 2).max(1);
        let leader = self
            .leader_state
            .as_mut()
            .expect("a leader has leader state");
        leader.begin_resend_ms = resend_ms;
        for voter in leader.unacknowledged() {
            let msg = Message::BeginQuorumEpochRequest {
                leader_epoch: epoch,
                leader_id: self.config.id,
            };
            self.outbound.push((voter, msg));
        }
    }

    /// Check-quorum, then BeginQuorumEpoch re-sends.
    pub(crate) fn tick_leader(&mut self, now_ms: u64) {
        let leader = self
            .leader_state
            .as_ref()
            .expect("a leader has leader state");
        let expiry = leader.quorum_expiry_ms(self.config.majority(), self.config.fetch_timeout_ms);
        if expiry.is_some_and(|at| now_ms >= at) {
            // No majority fetched lately: this leader may be the partitioned one.
            self.resign(now_ms);
        } else if now_ms >= leader.begin_resend_ms {
            self.send_begin_quorum_epoch(now_ms);
        }
    }

    /// A message shows `epoch` and perhaps its leader: catch up with it.
    pub(crate) fn observe_epoch(&mut self, now_ms: u64, epoch: i32, leader: Option<NodeId>) {
        let id = self.config.id;
        if epoch > self.quorum.epoch {
            match leader {
                Some(l) => {
                    assert_ne!(
                        l, id,
                        "node {id}: told it leads epoch {epoch}, past its own {}",
                        self.quorum.epoch
                    );
                    self.transition(now_ms, epoch, Role::Follower { epoch, leader: l });
                }
                None => self.transition(now_ms, epoch, Role::Unattached),
            }
            return;
        }
        let Some(l) = leader.filter(|_| epoch == self.quorum.epoch) else {
            return;
        };
        match self.role {
            Role::Unattached | Role::Voted { .. } | Role::Candidate { .. } => {
                assert_ne!(l, id, "node {id}: told it leads epoch {epoch} it never won");
                self.transition(now_ms, epoch, Role::Follower { epoch, leader: l });
            }
            Role::Follower { leader: known, .. } => {
                assert_eq!(known, l, "node {id}: two leaders in epoch {epoch}");
            }
            Role::Leader { .. } | Role::Resigned { .. } => {
                assert_eq!(l, id, "node {id}: two leaders in epoch {epoch}");
            }
        }
    }

    pub(crate) fn handle_vote_request(
        &mut self,
        now_ms: u64,
        from: NodeId,
        candidate_epoch: i32,
        candidate_id: NodeId,
        candidate_last: (i32, i64),
    ) {
        if !self.config.is_voter(candidate_id) {
            self.respond_vote(from, Some(RaftError::InconsistentVoterSet), false);
            return;
        }
        if candidate_epoch > self.quorum.epoch {
            self.transition(now_ms, candidate_epoch, Role::Unattached);
        }
        let granted = candidate_epoch == self.quorum.epoch
            && self.vote_is_grantable(candidate_id, candidate_last);
        if granted && self.role == Role::Unattached {
            let epoch = self.quorum.epoch;
            self.transition(
                now_ms,
                epoch,
                Role::Voted {
                    epoch,
                    candidate: candidate_id,
                },
            );
        }
        assert!(
            !granted || self.quorum.voted_for == Some(candidate_id),
            "node {}: a vote leaves only once durable ({:?})",
            self.config.id,
            self.quorum
        );
        self.respond_vote(from, None, granted);
    }

    /// One vote per epoch, for a log at least as up to date as ours.
    fn vote_is_grantable(&self, candidate_id: NodeId, candidate_last: (i32, i64)) -> bool {
        let ours = (self.log.last_epoch(), self.log.end_offset());
        let up_to_date = candidate_last >= ours;
        match self.role {
            Role::Unattached => up_to_date,
            Role::Voted { candidate, .. } => candidate == candidate_id && up_to_date,
            _ => false,
        }
    }

    fn respond_vote(&mut self, to: NodeId, error: Option<RaftError>, vote_granted: bool) {
        let msg = Message::VoteResponse {
            error,
            leader_epoch: self.quorum.epoch,
            leader_id: self.leader(),
            vote_granted,
        };
        self.outbound.push((to, msg));
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        now_ms: u64,
        from: NodeId,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
        vote_granted: bool,
    ) {
        self.observe_epoch(now_ms, leader_epoch, leader_id);
        let Role::Candidate { epoch } = self.role else {
            return;
        };
        if epoch == leader_epoch && vote_granted && self.config.is_voter(from) {
            self.votes.insert(from);
            self.maybe_become_leader(now_ms);
        }
    }

    /// Checks a leader's BeginQuorumEpoch or EndQuorumEpoch: a stale epoch is fenced, a
    /// leader outside the voter set (or this node itself) is inconsistent; otherwise the node
    /// moves to that epoch and leader.
    fn accept_leader_announcement(&mut self, now_ms: u64, leader_epoch: i32, leader_id: NodeId) -> Option<RaftError> {
        if leader_epoch < self.quorum.epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else if !self.config.is_voter(leader_id) || leader_id == self.config.id {
            Some(RaftError::InconsistentVoterSet)
        } else {
            self.observe_epoch(now_ms, leader_epoch, Some(leader_id));
            None
        }
    }

    pub(crate) fn handle_begin_quorum_epoch(
        &mut self,
        now_ms: u64,
        from: NodeId,
        leader_epoch: i32,
        leader_id: NodeId,
    ) {
        let error = self.accept_leader_announcement(now_ms, leader_epoch, leader_id);
        let msg = Message::BeginQuorumEpochResponse {
            error,
            leader_epoch: self.quorum.epoch,
            leader_id: self.leader(),
        };
        self.outbound.push((from, msg));
    }

    pub(crate) fn handle_begin_quorum_epoch_response(
        &mut self,
        now_ms: u64,
        from: NodeId,
        leader_epoch: i32,
        leader_id: Option<NodeId>,
        error: Option<RaftError>,
    ) {
        self.observe_epoch(now_ms, leader_epoch, leader_id);
        if error.is_none()
            && self.role
                == (Role::Leader {
                    epoch: leader_epoch,
                })
        {
            self.leader_state
                .as_mut()
                .expect("a leader has leader state")
                .acknowledged
                .insert(from);
        }
    }

    /// The leader resigned: stand soon, sooner the earlier this node is among its preferred
    /// successors, so that the most caught-up voter usually stands first.
    pub(crate) fn handle_end_quorum_epoch(
        &mut self,
        now_ms: u64,
        from: NodeId,
        leader_epoch: i32,
        leader_id: NodeId,
        preferred_successors: &[NodeId],
    ) {
        let error = self.accept_leader_announcement(now_ms, leader_epoch, leader_id);
        if error.is_none()
            && matches!(self.role, Role::Follower { leader, .. } if leader == leader_id)
        {
            let backoff_ms = self.config.election_backoff_max_ms;
            let delay_ms = match preferred_successors
                .iter()
                .position(|v| *v == self.config.id)
            {
                Some(rank) => rank as u64 * backoff_ms / self.config.voters.len() as u64,
                None => self.entropy.range_u64(0, backoff_ms),
            };
            self.deadline_ms = self.deadline_ms.min(now_ms + delay_ms);
        }
        let msg = Message::EndQuorumEpochResponse {
            error,
            leader_epoch: self.quorum.epoch,
            leader_id: self.leader(),
        };
        self.outbound.push((from, msg));
    }
}
