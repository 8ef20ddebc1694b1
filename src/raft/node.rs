//! `RaftNode`: one quorum member as a sans-IO state machine.
//!
//! Input comes in through `handle_message` and `tick` with the current time; output is drained
//! by `poll_outbound`, `poll_committed` and `poll_timeout`. The only I/O is the node's own
//! `Storage` (quorum state and log), done synchronously and fsynced before any message that
//! depends on it is queued. A storage error is fatal: the node panics and must be reopened,
//! as Kafka's Raft client halts the process.
//!
//! Role changes all go through `transition`, which checks the table in `role.rs` and persists
//! the quorum state. Election handling is in `election.rs`, fetch handling in `replication.rs`.
//!
//! Shell contract: a response must reach only the incarnation that sent the request (a new
//! connection per incarnation, as TCP gives), because a follower matches a FetchResponse to
//! its one outstanding FetchRequest.

use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;

use super::config::RaftConfig;
use super::leader::LeaderState;
use super::log::RaftLog;
use super::message::{Entry, Message, NodeId, RaftError};
use super::quorum_state::{QuorumState, QuorumStateStore};
use super::role::{transition_is_valid, Role};
use crate::seam::{Entropy, Storage};

/// How long an idle follower waits after an empty FetchResponse before fetching again (Kafka
/// parks the fetch at the leader instead; a short poll keeps the leader stateless).
pub(crate) const FETCH_IDLE_WAIT_MS: u64 = 50;

/// A follower's single outstanding fetch.
pub(crate) struct FetchState {
    pub inflight: bool,
    pub next_ms: u64,
}

/// One member of a KRaft quorum. See the module docs.
pub struct RaftNode {
    pub(crate) config: RaftConfig,
    pub(crate) entropy: Entropy,
    pub(crate) log: RaftLog,
    store: QuorumStateStore,
    /// The durable quorum state, always equal to what `store` last saved.
    pub(crate) quorum: QuorumState,
    pub(crate) role: Role,
    pub(crate) high_watermark: i64,
    /// Entries below this were handed out by `poll_committed` in this incarnation.
    delivered_end: i64,
    /// Election timer (Unattached, Voted, Candidate, Resigned) or fetch timer (Follower).
    pub(crate) deadline_ms: u64,
    pub(crate) votes: BTreeSet<NodeId>,
    pub(crate) leader_state: Option<LeaderState>,
    pub(crate) fetch: FetchState,
    pub(crate) outbound: Vec<(NodeId, Message)>,
}

impl RaftNode {
    /// Recovers the quorum state and log from `storage` and resumes in the matching role.
    pub fn open(
        config: RaftConfig,
        storage: Rc<dyn Storage>,
        entropy: Entropy,
        now_ms: u64,
    ) -> io::Result<RaftNode> {
        config.check();
        let store = QuorumStateStore::new(storage.clone());
        let quorum = store.load()?;
        let log = RaftLog::open(storage)?;
        let mut node = RaftNode {
            config,
            entropy,
            log,
            store,
            quorum,
            role: Role::Unattached,
            high_watermark: 0,
            delivered_end: 0,
            deadline_ms: now_ms,
            votes: BTreeSet::new(),
            leader_state: None,
            fetch: FetchState {
                inflight: false,
                next_ms: now_ms,
            },
            outbound: Vec::new(),
        };
        node.resume(now_ms);
        node.check_invariants();
        Ok(node)
    }

    /// The role a restarted node takes from its durable quorum state (Kafka's
    /// `QuorumState.initialize`): a former leader comes back resigned, a former candidate
    /// asks again in the same epoch, a voter keeps its vote.
    fn resume(&mut self, now_ms: u64) {
        let QuorumState {
            epoch,
            voted_for,
            leader,
        } = self.quorum;
        let id = self.config.id;
        self.role = match (leader, voted_for) {
            (Some(l), _) if l == id => Role::Resigned { epoch },
            (Some(l), _) => Role::Follower { epoch, leader: l },
            (None, Some(c)) if c == id => Role::Candidate { epoch },
            (None, Some(c)) => Role::Voted {
                epoch,
                candidate: c,
            },
            (None, None) => Role::Unattached,
        };
        self.deadline_ms = self.election_deadline_ms(now_ms);
        if self.config.voters.len() == 1 {
            // A lone voter needs nobody: it leads a fresh epoch at once.
            self.role = Role::Unattached;
            self.become_candidate(now_ms);
        } else if let Role::Candidate { .. } = self.role {
            self.votes = BTreeSet::from([id]);
            self.send_vote_requests();
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> i32 {
        self.quorum.epoch
    }

    /// The leader of the current epoch, if known.
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader { .. } | Role::Resigned { .. } => Some(self.config.id),
            Role::Follower { leader, .. } => Some(leader),
            _ => None,
        }
    }

    /// Entries below this offset are committed (as far as this node knows).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.end_offset()
    }

    /// The entry at `offset` in this node's log, committed or not.
    pub fn entry(&self, offset: i64) -> Option<&Entry> {
        self.log.entry(offset)
    }

    /// Feeds one message from `from`.
    pub fn handle_message(&mut self, now_ms: u64, from: NodeId, msg: Message) {
        match msg {
            Message::FetchRequest { .. } | Message::FetchResponse { .. } => {
                self.dispatch_replication(now_ms, from, msg)
            }
            _ => self.dispatch_election(now_ms, from, msg),
        }
        self.maybe_send_fetch(now_ms);
        self.check_invariants();
    }

    /// Fires every timer that is due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        match self.role {
            Role::Leader { .. } => self.tick_leader(now_ms),
            Role::Follower { .. } if now_ms >= self.deadline_ms => self.become_candidate(now_ms),
            Role::Follower { .. } => self.maybe_send_fetch(now_ms),
            _ if now_ms >= self.deadline_ms => self.become_candidate(now_ms),
            _ => {}
        }
        self.check_invariants();
    }

    /// Messages to send, in the order they were produced.
    pub fn poll_outbound(&mut self) -> Vec<(NodeId, Message)> {
        std::mem::take(&mut self.outbound)
    }

    /// The next time `tick` has something to do.
    pub fn poll_timeout(&self) -> u64 {
        match (&self.role, &self.leader_state) {
            (Role::Leader { .. }, Some(leader)) => {
                let expiry =
                    leader.quorum_expiry_ms(self.config.majority(), self.config.fetch_timeout_ms);
                expiry.unwrap_or(u64::MAX).min(leader.begin_resend_ms)
            }
            (Role::Follower { .. }, _) if !self.fetch.inflight => {
                self.deadline_ms.min(self.fetch.next_ms)
            }
            _ => self.deadline_ms,
        }
    }

    /// Appends `payload` as the leader; returns its offset. Committed once `poll_committed`
    /// hands it out.
    pub fn propose(&mut self, _now_ms: u64, payload: Vec<u8>) -> Result<i64, RaftError> {
        let Role::Leader { epoch } = self.role else {
            return Err(RaftError::NotLeader);
        };
        let offset = self.log.end_offset();
        self.append_as_leader(Entry {
            epoch,
            offset,
            payload,
        });
        self.check_invariants();
        Ok(offset)
    }

    /// Entries that became committed since the last call, in offset order.
    pub fn poll_committed(&mut self) -> Vec<Entry> {
        let count =
            usize::try_from(self.high_watermark - self.delivered_end).expect("hw >= delivered");
        let entries = self.log.read(self.delivered_end, count);
        assert_eq!(
            entries.len(),
            count,
            "committed entries {}..{} missing from the log",
            self.delivered_end,
            self.high_watermark
        );
        self.delivered_end = self.high_watermark;
        entries
    }

    /// The leader steps down and tells the others so one of them stands at once.
    pub fn resign(&mut self, now_ms: u64) {
        let Role::Leader { epoch } = self.role else {
            return;
        };
        let mut successors = self.config.other_voters();
        // The most caught-up voter is preferred: it can win the next election.
        if let Some(leader) = &self.leader_state {
            successors.sort_by_key(|v| {
                std::cmp::Reverse(leader.end_offsets.get(v).copied().unwrap_or(0))
            });
        }
        self.transition(now_ms, epoch, Role::Resigned { epoch });
        for voter in successors.clone() {
            let preferred_successors = successors.clone();
            let msg = Message::EndQuorumEpochRequest {
                leader_epoch: epoch,
                leader_id: self.config.id,
                preferred_successors,
            };
            self.outbound.push((voter, msg));
        }
        self.check_invariants();
    }

    /// Moves to `to` in `epoch` through the transition table, persisting the quorum state
    /// before anything that depends on it can leave the node.
    pub(crate) fn transition(&mut self, now_ms: u64, epoch: i32, to: Role) {
        let from = self.role;
        let from_epoch = self.quorum.epoch;
        assert!(
            transition_is_valid(from, from_epoch, to, epoch),
            "node {}: invalid transition {from:?}@{from_epoch} -> {to:?}@{epoch}",
            self.config.id
        );
        let mut next = if epoch > from_epoch {
            QuorumState {
                epoch,
                ..QuorumState::default()
            }
        } else {
            self.quorum
        };
        match to {
            Role::Unattached => {}
            Role::Voted { candidate, .. } => next.voted_for = Some(candidate),
            Role::Candidate { .. } => next.voted_for = Some(self.config.id),
            Role::Leader { .. } | Role::Resigned { .. } => next.leader = Some(self.config.id),
            Role::Follower { leader, .. } => next.leader = Some(leader),
        }
        if next != self.quorum {
            self.store
                .save(&next)
                .expect("persisting the quorum state failed");
            self.quorum = next;
        }
        self.role = to;
        self.votes.clear();
        if !matches!(to, Role::Leader { .. }) {
            self.leader_state = None;
        }
        self.fetch = FetchState {
            inflight: false,
            next_ms: now_ms,
        };
        self.deadline_ms = match to {
            Role::Follower { .. } => now_ms + self.config.fetch_timeout_ms,
            Role::Candidate { .. } => self.candidate_deadline_ms(now_ms),
            _ => self.election_deadline_ms(now_ms),
        };
    }

    /// Election timeout plus seeded jitter, so that voters do not all stand at once.
    pub(crate) fn election_deadline_ms(&mut self, now_ms: u64) -> u64 {
        let timeout_ms = self.config.election_timeout_ms;
        now_ms + timeout_ms + self.entropy.range_u64(0, timeout_ms)
    }

    /// A candidate that has not won by then backs off a random while and stands again.
    fn candidate_deadline_ms(&mut self, now_ms: u64) -> u64 {
        now_ms
            + self.config.election_timeout_ms
            + self
                .entropy
                .range_u64(0, self.config.election_backoff_max_ms)
    }

    /// Appends as the leader (fsynced) and re-evaluates the high watermark.
    pub(crate) fn append_as_leader(&mut self, entry: Entry) {
        self.log
            .append(&[entry])
            .expect("appending to the raft log failed");
        self.update_leader_high_watermark();
    }

    /// Protocol invariants that hold after every input.
    pub(crate) fn check_invariants(&self) {
        let (id, hw, leo) = (self.config.id, self.high_watermark, self.log.end_offset());
        assert!(hw <= leo, "node {id}: hw={hw} > leo={leo}");
        assert!(
            self.delivered_end <= hw,
            "node {id}: delivered {} > hw={hw}",
            self.delivered_end
        );
        if let Some(epoch) = self.role.epoch() {
            assert_eq!(
                epoch, self.quorum.epoch,
                "node {id}: role {:?} vs durable epoch",
                self.role
            );
        }
        let leading = matches!(self.role, Role::Leader { .. });
        assert_eq!(
            leading,
            self.leader_state.is_some(),
            "node {id}: leader state iff leader, role {:?}",
            self.role
        );
        assert!(
            self.log.last_epoch() <= self.quorum.epoch,
            "node {id}: log epoch {} ahead of epoch {}",
            self.log.last_epoch(),
            self.quorum.epoch
        );
    }
}
