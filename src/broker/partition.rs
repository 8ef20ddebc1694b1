use std::rc::Rc;

use crate::ids::{BrokerId, TopicPartition};
use crate::log::{split_batches, AppendInfo, LeaderEpochCache, Log, LogConfig, LogError};
use crate::replication::LeaderState;
use crate::seam::Storage;

use super::metadata::PartitionAssignment;

/// This broker's role for one partition.
#[derive(Debug)]
pub enum Role {
    Leader(LeaderState),
    /// Following `leader` (None while the partition has no leader).
    Follower { leader: Option<BrokerId>, hw: i64 },
}

/// One hosted partition: its log, its leader-epoch history and its replication role.
pub struct Partition {
    pub tp: TopicPartition,
    pub replicas: Vec<BrokerId>,
    /// The leader epoch the metadata log last gave (-1 before any).
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub log: Log,
    pub epochs: LeaderEpochCache,
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

fn storage_err(path: &str, e: std::io::Error) -> LogError {
    LogError::Io { path: path.to_string(), source: e }
}

impl Partition {
    /// Opens (and recovers) the partition's log and epoch history; it starts as a follower of
    /// nobody until the metadata says otherwise.
    pub fn open(storage: Rc<dyn Storage>, tp: TopicPartition, replicas: Vec<BrokerId>, log_config: LogConfig) -> Result<Partition, LogError> {
        let dir = format!("{}-{}", tp.topic, tp.partition);
        let checkpoint = format!("{dir}/leader-epoch-checkpoint");
        let log = Log::open(storage.clone(), &dir, log_config)?;
        let mut epochs = LeaderEpochCache::open(storage, &checkpoint).map_err(|e| storage_err(&checkpoint, e))?;
        // Recovery may have cut the log below what the checkpoint remembers.
        epochs.truncate_from_end(log.log_end_offset()).map_err(|e| storage_err(&checkpoint, e))?;
        Ok(Partition { tp, replicas, leader_epoch: -1, partition_epoch: -1, log, epochs, role: Role::Follower { leader: None, hw: 0 } })
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

    /// Takes leadership in `a.leader_epoch`: records the epoch's start at our log end.
    pub fn become_leader(&mut self, me: BrokerId, a: &PartitionAssignment, now_ms: u64) -> Result<(), LogError> {
        let leo = self.leo();
        self.epochs.assign(a.leader_epoch, leo).map_err(|e| storage_err("leader-epoch-checkpoint", e))?;
        let hw = self.hw().min(leo);
        let mut isr = a.isr.clone();
        if !isr.contains(&me) {
            isr.push(me);
        }
        self.role = Role::Leader(LeaderState::new(me, a.replicas.clone(), isr, leo, hw, now_ms));
        self.adopt(a);
        Ok(())
    }

    /// Follows `a.leader` in `a.leader_epoch`. With the pre-KIP-101 switch the follower first
    /// cuts its log to its own high watermark.
    pub fn become_follower(&mut self, a: &PartitionAssignment, truncate_to_hw: bool) -> Result<(), LogError> {
        let hw = self.hw().min(self.leo());
        if truncate_to_hw {
            self.truncate_to(hw)?;
        }
        self.role = Role::Follower { leader: a.leader, hw };
        self.adopt(a);
        Ok(())
    }

    fn adopt(&mut self, a: &PartitionAssignment) {
        assert!(a.leader_epoch >= self.leader_epoch, "{} leader epoch went back: {} -> {}", self.tp, self.leader_epoch, a.leader_epoch);
        self.leader_epoch = a.leader_epoch;
        self.partition_epoch = a.partition_epoch;
        self.replicas = a.replicas.clone();
    }

    /// Appends batches from the leader, learning the epochs they carry.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let batches = split_batches(records).map_err(|e| LogError::Batch { offset: self.leo(), source: e })?;
        let info = self.log.append_as_follower(records)?;
        for (h, _) in batches {
            if self.epochs.latest_epoch().is_none_or(|e| h.partition_leader_epoch > e) {
                self.epochs.assign(h.partition_leader_epoch, h.base_offset).map_err(|e| storage_err("leader-epoch-checkpoint", e))?;
            }
        }
        Ok(info)
    }

    /// Cuts the log (and the epoch history) to `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.log.truncate_to(offset)?;
        let leo = self.leo();
        self.epochs.truncate_from_end(leo).map_err(|e| storage_err("leader-epoch-checkpoint", e))?;
        if let Role::Follower { hw, .. } = &mut self.role {
            *hw = (*hw).min(leo);
        }
        Ok(())
    }

    pub fn snapshot(&self) -> PartitionSnapshot {
        let isr = match &self.role {
            Role::Leader(s) => s.isr.clone(),
            Role::Follower { .. } => Vec::new(),
        };
        PartitionSnapshot { tp: self.tp.clone(), is_leader: self.is_leader(), leader_epoch: self.leader_epoch, leo: self.leo(), hw: self.hw(), isr }
    }
}
