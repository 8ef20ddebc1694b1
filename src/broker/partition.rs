use std::rc::Rc;

use crate::ids::{BrokerId, TopicPartition};
use crate::log::{Log, LogConfig, LogError};
use crate::replication::LeaderState;
use crate::seam::Storage;

use super::metadata::PartitionAssignment;

/// This broker's role for one partition.
#[derive(Debug)]
pub enum Role {
    Leader(LeaderState),
    Follower { leader: BrokerId, hw: i64 },
}

/// One hosted partition: its log and its replication role.
pub struct Partition {
    pub tp: TopicPartition,
    pub replicas: Vec<BrokerId>,
    pub leader_epoch: i32,
    pub log: Log,
    pub role: Role,
}

/// A read-only view of a partition, for white-box checks and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub tp: TopicPartition,
    pub is_leader: bool,
    pub leader_epoch: i32,
    pub leo: i64,
    pub hw: i64,
    pub isr: Vec<BrokerId>,
}

impl Partition {
    /// Opens (and recovers) the partition's log and takes the role the assignment gives.
    pub fn open(
        storage: Rc<dyn Storage>,
        me: BrokerId,
        tp: TopicPartition,
        assignment: &PartitionAssignment,
        log_config: LogConfig,
        now_ms: u64,
    ) -> Result<Partition, LogError> {
        let dir = format!("{}-{}", tp.topic, tp.partition);
        let log = Log::open(storage, &dir, log_config)?;
        let leader = assignment.leader();
        let role = if leader == me {
            // Without a persisted HW checkpoint the leader restarts from 0 and lets the ISR
            // carry it forward again; the HW only ever moves up from there.
            let isr = assignment.replicas.clone();
            Role::Leader(LeaderState::new(me, assignment.replicas.clone(), isr, log.log_end_offset(), 0, now_ms))
        } else {
            Role::Follower { leader, hw: 0 }
        };
        Ok(Partition { tp, replicas: assignment.replicas.clone(), leader_epoch: 0, log, role })
    }

    pub fn leo(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn hw(&self) -> i64 {
        match &self.role {
            Role::Leader(s) => s.hw,
            Role::Follower { hw, .. } => *hw,
        }
    }

    pub fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            Role::Leader(s) => Some(s),
            Role::Follower { .. } => None,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn snapshot(&self) -> PartitionSnapshot {
        let isr = match &self.role {
            Role::Leader(s) => s.isr.clone(),
            Role::Follower { .. } => Vec::new(),
        };
        PartitionSnapshot {
            tp: self.tp.clone(),
            is_leader: self.is_leader(),
            leader_epoch: self.leader_epoch,
            leo: self.leo(),
            hw: self.hw(),
            isr,
        }
    }
}
