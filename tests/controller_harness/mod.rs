//! A stand-in for the Raft quorum: every proposal commits at once, in order, and is replayed
//! into the controller (and into any standbys) at consecutive offsets.

#![allow(dead_code)]

use stormlog::controller::{ControllerConfig, ControllerCore, MetadataRecord, PartitionState};

pub struct Harness {
    pub core: ControllerCore,
    pub log: Vec<MetadataRecord>,
}

impl Harness {
    pub fn new(config: ControllerConfig) -> Self {
        let mut core = ControllerCore::new(config);
        core.on_become_leader(0);
        Harness { core, log: Vec::new() }
    }

    pub fn next_offset(&self) -> i64 {
        self.log.len() as i64
    }

    /// Commits and replays a proposal.
    pub fn commit(&mut self, records: Vec<MetadataRecord>) {
        for record in records {
            let offset = self.next_offset();
            self.core.replay(offset, &record);
            self.log.push(record);
        }
        assert_eq!(self.core.in_flight_record_count(), 0);
    }

    pub fn register(&mut self, now_ms: u64, broker_id: i32, incarnation: u64) -> i64 {
        let next_offset = self.next_offset();
        let (records, epoch) =
            self.core.handle_broker_registration(now_ms, broker_id, incarnation, "host", 9092, next_offset).unwrap();
        self.commit(records);
        epoch
    }

    pub fn heartbeat(&mut self, now_ms: u64, broker_id: i32, epoch: i64) {
        let (records, _) = self.core.handle_broker_heartbeat(now_ms, broker_id, epoch, true, false).unwrap();
        self.commit(records);
    }

    /// Registers a broker and unfences it with a caught-up heartbeat; returns its epoch.
    pub fn start_broker(&mut self, now_ms: u64, broker_id: i32) -> i64 {
        let epoch = self.register(now_ms, broker_id, 1);
        self.heartbeat(now_ms, broker_id, epoch);
        assert!(self.core.image().is_unfenced(broker_id));
        epoch
    }

    pub fn create_topic(&mut self, name: &str, assignment: Vec<Vec<i32>>) {
        let records = self.core.handle_create_topic(name, assignment).unwrap();
        self.commit(records);
    }

    pub fn tick(&mut self, now_ms: u64) -> Vec<MetadataRecord> {
        let records = self.core.tick(now_ms);
        self.commit(records.clone());
        records
    }

    pub fn broker_epoch(&self, broker_id: i32) -> i64 {
        self.core.image().broker(broker_id).unwrap().broker_epoch
    }

    pub fn partition(&self, topic: &str, partition: u32) -> PartitionState {
        self.core.image().partition(topic, partition).unwrap().clone()
    }
}
