use std::rc::Rc;

use crate::ids::{BrokerId, TopicPartition};
use crate::log::{split_batches, AppendInfo, LeaderEpochCache, Log, LogConfig, LogError};
use crate::replication::LeaderState;
use crate::seam::{write_atomically, Storage};

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
    storage: Rc<dyn Storage>,
    hw_checkpoint: String,
    /// With the single-step switch, the follower asked about divergence once since it became
    /// a follower: before KIP-279 it then fetched on without asking again.
    pub divergence_checked: bool,
    /// A follower partition whose last fetch failed is left out of fetches until then
    /// (`replica.fetch.backoff.ms`), as Kafka's fetcher delays a partition in error.
    pub fetch_delayed_until_ms: u64,
}

/// A read-only view of a partition, for white-box checks and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub tp: TopicPartition,
    pub is_leader: bool,
    pub leader_epoch: i32,
    pub leo: i64,
    pub hw: i64,
    /// The last stable offset (the HW when no transaction is open or undecided below it).
    pub lso: i64,
    pub isr: Vec<BrokerId>,
}

/// The checkpointed high watermark; 0 when there is none (or it does not parse).
fn read_hw(storage: &dyn Storage, path: &str) -> i64 {
    if !storage.exists(path) {
        return 0;
    }
    let bytes = storage.read_at(path, 0, 64).unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().parse().unwrap_or(0).max(0)
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
        let hw_checkpoint = format!("{dir}/replication-offset-checkpoint");
        let log = Log::open(storage.clone(), &dir, log_config)?;
        let mut epochs = LeaderEpochCache::open(storage.clone(), &checkpoint).map_err(|e| storage_err(&checkpoint, e))?;
        // Recovery may have cut the log below what the checkpoints remember.
        epochs.truncate_from_end(log.log_end_offset()).map_err(|e| storage_err(&checkpoint, e))?;
        let hw = read_hw(storage.as_ref(), &hw_checkpoint).min(log.log_end_offset());
        let role = Role::Follower { leader: None, hw };
        Ok(Partition { tp, replicas, leader_epoch: -1, partition_epoch: -1, log, epochs, role, storage, hw_checkpoint, divergence_checked: false, fetch_delayed_until_ms: 0 })
    }

    /// Writes the high watermark to its checkpoint (Kafka does it every
    /// `replica.high.watermark.checkpoint.interval.ms`), so a restart begins from a recent HW
    /// rather than from 0.
    pub fn checkpoint_hw(&mut self) -> Result<(), LogError> {
        let text = format!("{}\n", self.hw());
        write_atomically(self.storage.as_ref(), &self.hw_checkpoint, text.as_bytes()).map_err(|e| storage_err(&self.hw_checkpoint, e))
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
        self.divergence_checked = false;
        // New leadership: whatever failed before may work now.
        self.fetch_delayed_until_ms = 0;
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
        // As Kafka: a batch with no leader epoch (-1) says nothing about epochs.
        for (h, _) in batches.iter().filter(|(h, _)| h.partition_leader_epoch >= 0) {
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
        let hw = self.hw();
        PartitionSnapshot { tp: self.tp.clone(), is_leader: self.is_leader(), leader_epoch: self.leader_epoch, leo: self.leo(), hw, lso: self.log.last_stable_offset(hw), isr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::build_test_batch;
    use crate::seam::MemStorage;

    fn open(disk: &MemStorage) -> Partition {
        Partition::open(Rc::new(disk.clone()), TopicPartition::new("t", 0), vec![BrokerId(0)], LogConfig::default()).unwrap()
    }

    #[test]
    fn a_restart_begins_from_the_checkpointed_high_watermark_not_zero() {
        let disk = MemStorage::new();
        let mut p = open(&disk);
        for offset in 0..5 {
            p.append_as_follower(&build_test_batch(offset, &[b"v"])).unwrap();
        }
        p.role = Role::Follower { leader: None, hw: 3 };
        p.checkpoint_hw().unwrap();
        // Not checkpointed: a restarted process (page cache intact) comes back with 3, not 4.
        p.role = Role::Follower { leader: None, hw: 4 };
        drop(p);
        let reopened = open(&disk);
        assert_eq!((reopened.leo(), reopened.hw()), (5, 3));
    }

    #[test]
    fn a_checkpointed_hw_above_the_recovered_log_is_cut_to_the_log_end() {
        let disk = MemStorage::new();
        let mut p = open(&disk);
        p.append_as_follower(&build_test_batch(0, &[b"v"])).unwrap();
        p.role = Role::Follower { leader: None, hw: 7 };
        p.checkpoint_hw().unwrap();
        assert_eq!(open(&disk).hw(), 1, "the HW never exceeds what the log holds");
    }
}
