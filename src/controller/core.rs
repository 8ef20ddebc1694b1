//! `ControllerCore`: the active controller's request handling, sans-IO (KAFKA.md §1.15).
//!
//! Handlers validate a request against the replayed `MetadataImage` and return the records to
//! propose; they never apply them. The shell proposes the records through the Raft quorum and,
//! once they commit, feeds them back through `replay` (on the active controller and on every
//! standby alike), then answers the request. Time is an argument; there is no clock in here.
//!
//! **One proposal in flight.** Because proposals are computed from committed state only, two
//! requests handled before the first one's records are replayed could propose conflicting
//! changes (two ISR updates from the same partition epoch, two fencings of one broker). KRaft
//! avoids this by applying records speculatively and reverting on leadership loss; this core
//! takes the simpler rule: after a handler (or `tick`) returns records, the shell must replay
//! them before calling the next handler. `in_flight_record_count` tells it whether it may;
//! handlers assert it, `tick` simply does nothing until then. Replaying a record that is not
//! the next expected one means the proposal was lost (another controller's records won those
//! offsets), so the in-flight list is dropped.
//!
//! **Soft state.** The last heartbeat time of each broker is not in the log and is not
//! replayed (Kafka's `BrokerHeartbeatManager`): it lives only on the active controller.
//! `on_become_leader` restarts every session at `now_ms`, so a new controller does not fence
//! the whole cluster at once.
//!
//! **Shell contract.** Call `on_become_leader` only after replaying every record committed
//! before the new term (KRaft waits for its own first record to commit), and `on_resign` when
//! leadership is lost. Stale fencing is one broker per `tick`, oldest session first (Kafka's
//! `maybeFenceOneStaleBroker`); the next one is fenced on a later tick.

use std::collections::BTreeMap;
use std::fmt;

use super::election::{build_partition_change, elect_leader};
use super::records::MetadataRecord;
use super::state::{MetadataImage, NO_LEADER};

/// Controller settings (Kafka config names in the docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker silent for longer than this is fenced.
    pub session_timeout_ms: u64,
    /// `unclean.leader.election.enable` (cluster-wide here; per topic in Kafka).
    pub unclean_leader_election: bool,
    /// `min.insync.replicas`. Without ELR (KIP-966) the controller's election does not use it;
    /// it is kept here so the ELR work has a home.
    pub min_insync_replicas: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig { session_timeout_ms: 9000, unclean_leader_election: false, min_insync_replicas: 1 }
    }
}

/// Request failures, named after Kafka's `Errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerError {
    StaleBrokerEpoch,
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    IneligibleReplica,
    UnknownTopicOrPartition,
    TopicAlreadyExists,
    InvalidReplicationFactor,
    NotController,
}

impl ControllerError {
    /// Kafka's wire error code (checked against `Errors.java` / kafka-protocol's `ResponseError`).
    pub fn code(self) -> i16 {
        match self {
            ControllerError::UnknownTopicOrPartition => 3,
            ControllerError::TopicAlreadyExists => 36,
            ControllerError::InvalidReplicationFactor => 38,
            ControllerError::NotController => 41,
            ControllerError::FencedLeaderEpoch => 74,
            ControllerError::StaleBrokerEpoch => 77,
            ControllerError::InvalidUpdateVersion => 95,
            ControllerError::IneligibleReplica => 107,
        }
    }
}

impl fmt::Display for ControllerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

impl std::error::Error for ControllerError {}

/// The answer to a broker heartbeat, as it will be once the proposed records commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_fenced: bool,
    /// Always false: controlled shutdown is not modelled yet.
    pub should_shut_down: bool,
}

/// The sans-IO controller. See the module docs for the shell contract.
#[derive(Debug, Clone)]
pub struct ControllerCore {
    config: ControllerConfig,
    image: MetadataImage,
    active: bool,
    /// Soft state: last heartbeat per broker, active controller only, never replayed.
    last_heartbeat_ms: BTreeMap<i32, u64>,
    /// The last proposal and how many of its records have been replayed so far.
    in_flight: Vec<MetadataRecord>,
    in_flight_replayed: usize,
}

impl ControllerCore {
    pub fn new(config: ControllerConfig) -> Self {
        assert!(config.session_timeout_ms > 0, "session_timeout_ms must be positive");
        ControllerCore {
            config,
            image: MetadataImage::default(),
            active: false,
            last_heartbeat_ms: BTreeMap::new(),
            in_flight: Vec::new(),
            in_flight_replayed: 0,
        }
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Records proposed by the last handler that have not been replayed yet. Handlers may be
    /// called only when this is zero.
    pub fn in_flight_record_count(&self) -> usize {
        self.in_flight.len() - self.in_flight_replayed
    }

    /// Applies one committed record, in log order, on the active and standby controllers alike.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) {
        self.image.replay(offset, record);
        if self.in_flight_record_count() == 0 {
            return;
        }
        if self.in_flight[self.in_flight_replayed] == *record {
            self.in_flight_replayed += 1;
        } else {
            self.in_flight_replayed = self.in_flight.len();
        }
        if self.in_flight_record_count() == 0 {
            self.in_flight.clear();
            self.in_flight_replayed = 0;
        }
    }

    /// Hook: this node became the active controller. Restarts every broker session at `now_ms`.
    pub fn on_become_leader(&mut self, now_ms: u64) {
        self.active = true;
        self.in_flight.clear();
        self.in_flight_replayed = 0;
        self.last_heartbeat_ms = self.image.brokers().keys().map(|&id| (id, now_ms)).collect();
        assert_eq!(self.last_heartbeat_ms.len(), self.image.brokers().len());
    }

    /// Hook: this node lost leadership. Drops soft state and any uncommitted proposal.
    pub fn on_resign(&mut self) {
        self.active = false;
        self.in_flight.clear();
        self.in_flight_replayed = 0;
        self.last_heartbeat_ms.clear();
    }

    fn check_ready(&self) -> Result<(), ControllerError> {
        if !self.active {
            return Err(ControllerError::NotController);
        }
        assert_eq!(
            self.in_flight_record_count(),
            0,
            "a request was handled before the previous proposal was replayed: {:?}",
            &self.in_flight[self.in_flight_replayed..]
        );
        Ok(())
    }

    fn propose(&mut self, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
        assert_eq!(self.in_flight_record_count(), 0, "proposal while another is in flight");
        self.in_flight = records.clone();
        self.in_flight_replayed = 0;
        records
    }

    /// CreateTopics with a manual assignment: a `Topic` record and one `Partition` per entry.
    /// The initial ISR is all replicas (nothing is written yet, so none can be behind; a replica
    /// that never fetches only holds the high watermark back until the leader shrinks it out).
    /// The leader is the first unfenced replica in assignment order; with none unfenced the
    /// partition starts offline and gets a leader when a replica is unfenced.
    pub fn handle_create_topic(
        &mut self,
        name: &str,
        assignment: Vec<Vec<i32>>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        self.check_ready()?;
        if self.image.topics().contains_key(name) {
            return Err(ControllerError::TopicAlreadyExists);
        }
        check_assignment(&assignment)?;
        let mut records = vec![MetadataRecord::Topic { name: name.to_string(), partitions: assignment.len() as u32 }];
        for (index, replicas) in assignment.into_iter().enumerate() {
            let election = elect_leader(&replicas, &replicas, NO_LEADER, false, |r| self.image.is_unfenced(r));
            records.push(MetadataRecord::Partition {
                topic: name.to_string(),
                partition: index as u32,
                isr: replicas.clone(),
                replicas,
                leader: election.leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(self.propose(records))
    }

    /// BrokerRegistration. `next_offset` is the log offset the first proposed record will get;
    /// the broker epoch is the offset of the `RegisterBroker` record. A retry from the same
    /// incarnation gets its current epoch back with nothing proposed. A new incarnation of an
    /// unfenced broker is fenced first (KIP-903): it leaves ISRs and leadership before the new
    /// registration, which starts fenced.
    pub fn handle_broker_registration(
        &mut self,
        now_ms: u64,
        broker_id: i32,
        incarnation: u64,
        host: &str,
        port: u16,
        next_offset: i64,
    ) -> Result<(Vec<MetadataRecord>, i64), ControllerError> {
        self.check_ready()?;
        assert!(broker_id >= 0, "node.id must be non-negative, got {broker_id}");
        assert!(next_offset > self.image.last_offset(), "next_offset {next_offset} is not past the log");
        let mut records = Vec::new();
        if let Some(existing) = self.image.broker(broker_id) {
            if existing.incarnation == incarnation {
                self.last_heartbeat_ms.insert(broker_id, now_ms);
                return Ok((Vec::new(), existing.broker_epoch));
            }
            if !existing.fenced {
                records = self.fence_records(broker_id, existing.broker_epoch);
            }
        }
        let broker_epoch = next_offset + records.len() as i64;
        records.push(MetadataRecord::RegisterBroker {
            broker_id,
            incarnation,
            broker_epoch,
            host: host.to_string(),
            port,
        });
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        Ok((self.propose(records), broker_epoch))
    }

    /// BrokerHeartbeat. Refreshes the session; a fenced broker that has caught up is unfenced
    /// (and takes leaderless partitions it may lead); an unfenced broker asking to be fenced is.
    pub fn handle_broker_heartbeat(
        &mut self,
        now_ms: u64,
        broker_id: i32,
        broker_epoch: i64,
        caught_up: bool,
        want_fence: bool,
    ) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ControllerError> {
        self.check_ready()?;
        let fenced = match self.image.broker(broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => b.fenced,
            // Kafka answers BROKER_ID_NOT_REGISTERED for an unknown id; the broker must
            // re-register either way.
            _ => return Err(ControllerError::StaleBrokerEpoch),
        };
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        let (records, is_fenced) = match (fenced, want_fence) {
            (true, false) if caught_up => (self.unfence_records(broker_id, broker_epoch), false),
            (true, _) => (Vec::new(), true),
            (false, true) => (self.fence_records(broker_id, broker_epoch), true),
            (false, false) => (Vec::new(), false),
        };
        let reply = HeartbeatReply { is_fenced, should_shut_down: false };
        Ok((self.propose(records), reply))
    }

    /// Advances time: fences the unfenced broker whose session expired longest ago, if any
    /// (`last_heartbeat + session_timeout_ms < now_ms`, as in Kafka). Does nothing on a standby
    /// or while a proposal is in flight.
    pub fn tick(&mut self, now_ms: u64) -> Vec<MetadataRecord> {
        if !self.active || self.in_flight_record_count() > 0 {
            return Vec::new();
        }
        for &id in self.image.brokers().keys() {
            self.last_heartbeat_ms.entry(id).or_insert(now_ms);
        }
        let timeout_ms = self.config.session_timeout_ms;
        let stale = self
            .image
            .brokers()
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(&id, b)| (self.last_heartbeat_ms[&id], id, b.broker_epoch))
            .filter(|&(last_ms, _, _)| last_ms.saturating_add(timeout_ms) < now_ms)
            .min();
        match stale {
            Some((_, broker_id, broker_epoch)) => {
                let records = self.fence_records(broker_id, broker_epoch);
                self.propose(records)
            }
            None => Vec::new(),
        }
    }

    /// The earliest time at which `tick` could fence someone, for the shell's timer.
    pub fn poll_timeout_ms(&self) -> Option<u64> {
        let unfenced = self.image.brokers().iter().filter(|(_, b)| !b.fenced);
        let last = unfenced.filter_map(|(id, _)| self.last_heartbeat_ms.get(id)).min()?;
        Some(last.saturating_add(self.config.session_timeout_ms).saturating_add(1))
    }

    /// AlterPartition from a partition leader (KIP-497). Checks, in Kafka's order: broker epoch,
    /// partition exists, epochs not from the future (else this node is behind: NotController),
    /// leader epoch current and sender is the leader (FencedLeaderEpoch; Kafka answers
    /// INVALID_REQUEST for a non-leader), partition epoch current, then the new ISR.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_alter_partition(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        topic: &str,
        partition: u32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        self.check_ready()?;
        if self.image.broker(broker_id).map(|b| b.broker_epoch) != Some(broker_epoch) {
            return Err(ControllerError::StaleBrokerEpoch);
        }
        let state = self.image.partition(topic, partition).ok_or(ControllerError::UnknownTopicOrPartition)?;
        if leader_epoch > state.leader_epoch || partition_epoch > state.partition_epoch {
            return Err(ControllerError::NotController);
        }
        if leader_epoch < state.leader_epoch || broker_id != state.leader {
            return Err(ControllerError::FencedLeaderEpoch);
        }
        if partition_epoch < state.partition_epoch {
            return Err(ControllerError::InvalidUpdateVersion);
        }
        self.check_new_isr(&state.replicas, &state.isr, state.leader, &new_isr)?;
        let change = build_partition_change(topic, partition, state, new_isr, false, |r| self.image.is_unfenced(r));
        if let Some(MetadataRecord::PartitionChange { leader, .. }) = &change {
            assert_eq!(*leader, None, "an accepted AlterPartition must not move {topic}/{partition}'s leader");
        }
        Ok(self.propose(change.into_iter().collect()))
    }

    /// The new ISR contains the leader, lies within the replicas without duplicates, and every
    /// member it adds is registered and unfenced (Kafka's `ineligibleReplicasForIsr`).
    fn check_new_isr(
        &self,
        replicas: &[i32],
        isr: &[i32],
        leader: i32,
        new_isr: &[i32],
    ) -> Result<(), ControllerError> {
        let duplicates = new_isr.iter().enumerate().any(|(i, r)| new_isr[..i].contains(r));
        if duplicates || !new_isr.contains(&leader) || new_isr.iter().any(|r| !replicas.contains(r)) {
            return Err(ControllerError::IneligibleReplica);
        }
        if new_isr.iter().any(|r| !isr.contains(r) && !self.image.is_unfenced(*r)) {
            return Err(ControllerError::IneligibleReplica);
        }
        Ok(())
    }

    /// Kafka's `handleBrokerFenced`: remove the broker from every ISR it is in (never emptying
    /// one) and re-elect where it led, then `FenceBroker`.
    fn fence_records(&self, broker_id: i32, broker_epoch: i64) -> Vec<MetadataRecord> {
        let acceptable = |r: i32| r != broker_id && self.image.is_unfenced(r);
        let mut records = Vec::new();
        for (name, topic) in self.image.topics() {
            for (index, state) in topic.partitions.iter().enumerate() {
                if !state.isr.contains(&broker_id) {
                    continue;
                }
                let target_isr: Vec<i32> = state.isr.iter().copied().filter(|&r| r != broker_id).collect();
                let unclean = self.config.unclean_leader_election;
                records.extend(build_partition_change(name, index as u32, state, target_isr, unclean, acceptable));
            }
        }
        records.push(MetadataRecord::FenceBroker { broker_id, broker_epoch });
        records
    }

    /// Kafka's `handleBrokerUnfenced`: `UnfenceBroker`, then elect leaders for leaderless
    /// partitions, counting the broker as unfenced.
    fn unfence_records(&self, broker_id: i32, broker_epoch: i64) -> Vec<MetadataRecord> {
        let acceptable = |r: i32| r == broker_id || self.image.is_unfenced(r);
        let mut records = vec![MetadataRecord::UnfenceBroker { broker_id, broker_epoch }];
        for (name, topic) in self.image.topics() {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.leader != NO_LEADER {
                    continue;
                }
                let (isr, unclean) = (state.isr.clone(), self.config.unclean_leader_election);
                records.extend(build_partition_change(name, index as u32, state, isr, unclean, acceptable));
            }
        }
        records
    }
}

/// A manual assignment: at least one partition, the same non-zero replication factor for all,
/// non-negative broker ids, no broker twice in a partition.
fn check_assignment(assignment: &[Vec<i32>]) -> Result<(), ControllerError> {
    let replication_factor = assignment.first().map_or(0, Vec::len);
    let valid = replication_factor > 0
        && assignment.iter().all(|replicas| {
            replicas.len() == replication_factor
                && replicas.iter().all(|&r| r >= 0)
                && !replicas.iter().enumerate().any(|(i, r)| replicas[..i].contains(r))
        });
    if valid {
        Ok(())
    } else {
        Err(ControllerError::InvalidReplicationFactor)
    }
}
