//! Pull-based replication (KIP-595): followers fetch, the leader answers and counts.
//!
//! The leader checks the fetch's epoch, then validates `(fetch_offset, last_fetched_epoch)`
//! against its leader-epoch cache; a follower that diverges gets `diverging_epoch` and no
//! entries, truncates, and fetches again. A valid fetch at offset `o` proves the follower
//! holds, fsynced, the leader's entries below `o`, which is what the high watermark counts.
//!
//! A follower keeps exactly one fetch outstanding, so a response always answers the fetch it
//! sent from its current log; it fetches again at once after entries or a truncation, and
//! `FETCH_IDLE_WAIT_MS` after an empty answer.

use super::message::{Entry, Message, NodeId, RaftError};
use super::node::{RaftNode, FETCH_IDLE_WAIT_MS};
use super::role::Role;

impl RaftNode {
    /// Unpacks a Fetch RPC for its handler.
    pub(crate) fn dispatch_replication(&mut self, now_ms: u64, from: NodeId, msg: Message) {
        match msg {
            Message::FetchRequest {
                replica_id,
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } => self.handle_fetch_request(
                now_ms,
                from,
                replica_id,
                current_leader_epoch,
                (fetch_offset, last_fetched_epoch),
            ),
            Message::FetchResponse {
                error,
                leader_epoch,
                leader_id,
                high_watermark,
                diverging_epoch,
                entries,
            } => self.handle_fetch_response(
                now_ms,
                from,
                (error, leader_epoch, leader_id),
                high_watermark,
                diverging_epoch,
                entries,
            ),
            _ => unreachable!("not a replication message: {msg:?}"),
        }
    }

    pub(crate) fn handle_fetch_request(
        &mut self,
        now_ms: u64,
        from: NodeId,
        replica_id: NodeId,
        current_leader_epoch: i32,
        (fetch_offset, last_fetched_epoch): (i64, i32),
    ) {
        if let Some(error) = self.fetch_error(current_leader_epoch) {
            self.respond_fetch(from, Some(error), None, Vec::new());
            return;
        }
        if let Some(diverging) = self.log.divergence(fetch_offset, last_fetched_epoch) {
            self.respond_fetch(from, None, Some(diverging), Vec::new());
            return;
        }
        let leader = self
            .leader_state
            .as_mut()
            .expect("a leader has leader state");
        leader.record_fetch(replica_id, fetch_offset, now_ms);
        self.update_leader_high_watermark();
        let entries = self.log.read(fetch_offset, self.config.fetch_max_entries);
        self.respond_fetch(from, None, None, entries);
    }

    /// Kafka's leader-only request check: an old epoch is fenced, a newer one unknown, and
    /// only the leader serves fetches.
    fn fetch_error(&self, request_epoch: i32) -> Option<RaftError> {
        if request_epoch < self.quorum.epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else if request_epoch > self.quorum.epoch {
            Some(RaftError::UnknownLeaderEpoch)
        } else if !matches!(self.role, Role::Leader { .. }) {
            Some(RaftError::NotLeader)
        } else {
            None
        }
    }

    fn respond_fetch(
        &mut self,
        to: NodeId,
        error: Option<RaftError>,
        diverging_epoch: Option<(i32, i64)>,
        entries: Vec<Entry>,
    ) {
        let msg = Message::FetchResponse {
            error,
            leader_epoch: self.quorum.epoch,
            leader_id: self.leader(),
            high_watermark: self.high_watermark,
            diverging_epoch,
            entries,
        };
        self.outbound.push((to, msg));
    }

    /// Raises the leader's high watermark to what a majority holds, once past its epoch start.
    pub(crate) fn update_leader_high_watermark(&mut self) {
        let Some(leader) = &self.leader_state else {
            return;
        };
        let Some(hw) = leader.high_watermark(self.log.end_offset(), self.config.majority()) else {
            return;
        };
        if hw > self.high_watermark {
            self.high_watermark = hw;
        }
        assert!(
            self.high_watermark <= self.log.end_offset(),
            "leader hw past its own log end"
        );
    }

    pub(crate) fn handle_fetch_response(
        &mut self,
        now_ms: u64,
        from: NodeId,
        (error, leader_epoch, leader_id): (Option<RaftError>, i32, Option<NodeId>),
        high_watermark: i64,
        diverging_epoch: Option<(i32, i64)>,
        entries: Vec<Entry>,
    ) {
        self.observe_epoch(now_ms, leader_epoch, leader_id);
        let Role::Follower { epoch, leader } = self.role else {
            return;
        };
        // Errors are left to the fetch timer: an old leader that resigned should lose us.
        if leader_epoch != epoch || from != leader || !self.fetch.inflight || error.is_some() {
            return;
        }
        self.fetch.inflight = false;
        self.deadline_ms = now_ms + self.config.fetch_timeout_ms;
        self.fetch.next_ms = now_ms + FETCH_IDLE_WAIT_MS;
        if let Some((diverging_epoch, end_offset)) = diverging_epoch {
            self.truncate_diverging(diverging_epoch, end_offset);
            self.fetch.next_ms = now_ms;
            return;
        }
        if let Some(first) = entries.first() {
            assert_eq!(
                first.offset,
                self.log.end_offset(),
                "node {}: fetched entries must continue the log",
                self.config.id
            );
            assert!(
                entries.iter().all(|e| e.epoch <= epoch),
                "entries from a future epoch: {entries:?}"
            );
            self.log
                .append(&entries)
                .expect("appending fetched entries failed");
            self.fetch.next_ms = now_ms;
        }
        // Our whole log now matches the leader's (it validated our last entry), so the
        // leader's high watermark applies up to our end.
        let hw = high_watermark.min(self.log.end_offset());
        if hw > self.high_watermark {
            self.high_watermark = hw;
        }
    }

    fn truncate_diverging(&mut self, epoch: i32, end_offset: i64) {
        let cut = self.log.truncation_offset(epoch, end_offset);
        let (id, hw, leo) = (self.config.id, self.high_watermark, self.log.end_offset());
        assert!(cut >= hw, "node {id}: divergence ({epoch}, {end_offset}) would cut committed entries: cut={cut} hw={hw}");
        assert!(
            cut < leo,
            "node {id}: divergence ({epoch}, {end_offset}) cuts nothing: cut={cut} leo={leo}"
        );
        self.log
            .truncate_to(cut)
            .expect("truncating the raft log failed");
    }

    /// Sends the next fetch when none is outstanding and its time has come.
    pub(crate) fn maybe_send_fetch(&mut self, now_ms: u64) {
        let Role::Follower { epoch, leader } = self.role else {
            return;
        };
        if self.fetch.inflight || now_ms < self.fetch.next_ms {
            return;
        }
        self.fetch.inflight = true;
        let msg = Message::FetchRequest {
            replica_id: self.config.id,
            current_leader_epoch: epoch,
            fetch_offset: self.log.end_offset(),
            last_fetched_epoch: self.log.last_epoch(),
        };
        self.outbound.push((leader, msg));
    }
}
