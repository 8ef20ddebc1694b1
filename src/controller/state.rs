//! `MetadataImage`: the cluster metadata as rebuilt by replaying committed records in order.
//!
//! `replay` is the only mutator. After every record it asserts the invariants that every
//! committed prefix of the metadata log must satisfy, so a bad proposal fails loudly at the
//! record that introduced it, on the leader and on every follower alike:
//!
//! - `isr_subset_of_replicas`: replicas and ISR have no duplicates and ISR ⊆ replicas;
//! - `isr_never_empty`: KRaft without ELR keeps the last ISR member even when it is dead;
//! - `leader_in_isr`: the leader, if any, is in the ISR (an unclean election sets ISR = [leader],
//!   so this holds for unclean leaders too);
//! - `leader_unfenced`: the leader, if any, is a registered, unfenced broker;
//! - `epochs_monotonic`: broker, leader and partition epochs never go back, and offsets rise.

use std::collections::BTreeMap;

use super::records::MetadataRecord;

/// The `leader` value of a partition that has no leader (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;

/// One broker's registration (Kafka's `BrokerRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_epoch: i64,
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
    pub fenced: bool,
}

/// One partition's registration (Kafka's `PartitionRegistration`, without ELR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// `NO_LEADER` when offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Whether the current leader came from an unclean election (Kafka's `RECOVERING`).
    pub last_unclean: bool,
}

/// One topic: its declared partition count and the partitions replayed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub partition_count: u32,
    pub partitions: Vec<PartitionState>,
}

/// The replayed metadata. Fields are private: nothing but `replay` may change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<String, TopicImage>,
    last_offset: i64,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage { brokers: BTreeMap::new(), topics: BTreeMap::new(), last_offset: -1 }
    }
}

impl MetadataImage {
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerRegistration> {
        &self.brokers
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    pub fn topics(&self) -> &BTreeMap<String, TopicImage> {
        &self.topics
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// The offset of the last replayed record, -1 before the first.
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// Registered and not fenced: may lead and join ISRs.
    pub fn is_unfenced(&self, broker_id: i32) -> bool {
        self.brokers.get(&broker_id).is_some_and(|b| !b.fenced)
    }

    /// Applies one committed record. Offsets must rise strictly; invariants are asserted after.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) {
        assert!(
            offset > self.last_offset,
            "offsets_monotonic: offset={offset} after last_offset={} record={record:?}",
            self.last_offset
        );
        match record {
            MetadataRecord::RegisterBroker { broker_id, incarnation, broker_epoch, host, port } => {
                let registration = BrokerRegistration {
                    broker_epoch: *broker_epoch,
                    incarnation: *incarnation,
                    host: host.clone(),
                    port: *port,
                    fenced: true,
                };
                self.replay_register_broker(*broker_id, registration);
            }
            MetadataRecord::UnfenceBroker { broker_id, broker_epoch } => {
                self.replay_fencing(*broker_id, *broker_epoch, false);
            }
            MetadataRecord::FenceBroker { broker_id, broker_epoch } => {
                self.replay_fencing(*broker_id, *broker_epoch, true);
            }
            MetadataRecord::Topic { name, partitions } => self.replay_topic(name, *partitions),
            MetadataRecord::Partition { topic, partition, .. } => {
                self.replay_partition(topic, *partition, record);
            }
            MetadataRecord::PartitionChange { topic, partition, isr, leader, leader_recovery_unclean } => {
                self.replay_partition_change(topic, *partition, isr.as_deref(), *leader, *leader_recovery_unclean);
            }
        }
        self.last_offset = offset;
        self.check_invariants(offset, record);
    }

    fn replay_register_broker(&mut self, broker_id: i32, registration: BrokerRegistration) {
        assert!(broker_id >= 0, "broker id must be non-negative: {broker_id}");
        if let Some(old) = self.brokers.get(&broker_id) {
            assert!(
                registration.broker_epoch > old.broker_epoch,
                "epochs_monotonic: broker {broker_id} epoch {} -> {}",
                old.broker_epoch,
                registration.broker_epoch
            );
        }
        self.brokers.insert(broker_id, registration);
    }

    fn replay_fencing(&mut self, broker_id: i32, broker_epoch: i64, fenced: bool) {
        let broker = self.brokers.get_mut(&broker_id);
        let broker = broker.unwrap_or_else(|| panic!("fencing={fenced} of unregistered broker {broker_id}"));
        assert_eq!(broker.broker_epoch, broker_epoch, "fencing={fenced} of broker {broker_id} names a stale epoch");
        broker.fenced = fenced;
    }

    fn replay_topic(&mut self, name: &str, partitions: u32) {
        assert!(partitions > 0, "topic {name} declares no partitions");
        let previous = self.topics.insert(
            name.to_string(),
            TopicImage { partition_count: partitions, partitions: Vec::with_capacity(partitions as usize) },
        );
        assert!(previous.is_none(), "topic {name} replayed twice");
    }

    fn replay_partition(&mut self, topic_name: &str, partition: u32, record: &MetadataRecord) {
        let MetadataRecord::Partition { replicas, isr, leader, leader_epoch, partition_epoch, .. } = record else {
            unreachable!("replay_partition is only called with Partition records");
        };
        let topic = self.topics.get_mut(topic_name);
        let topic = topic.unwrap_or_else(|| panic!("partition {topic_name}/{partition} before its topic"));
        assert_eq!(topic.partitions.len(), partition as usize, "partitions of {topic_name} out of order");
        assert!(partition < topic.partition_count, "{topic_name}/{partition} beyond the declared count");
        assert!(*leader_epoch >= 0 && *partition_epoch >= 0, "{topic_name}/{partition} negative epoch");
        topic.partitions.push(PartitionState {
            replicas: replicas.clone(),
            isr: isr.clone(),
            leader: *leader,
            leader_epoch: *leader_epoch,
            partition_epoch: *partition_epoch,
            last_unclean: false,
        });
    }

    fn replay_partition_change(
        &mut self,
        topic: &str,
        partition: u32,
        isr: Option<&[i32]>,
        leader: Option<i32>,
        unclean: bool,
    ) {
        let state = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize));
        let state = state.unwrap_or_else(|| panic!("change to unknown partition {topic}/{partition}"));
        let (leader_epoch_before, partition_epoch_before) = (state.leader_epoch, state.partition_epoch);
        if let Some(isr) = isr {
            // Committed ISR changes, whatever asked for them (a leader's AlterPartition or
            // the fencing of a broker).
            if isr.len() < state.isr.len() {
                crate::sometimes!("isr_shrunk");
            } else if isr.len() > state.isr.len() {
                crate::sometimes!("isr_expanded");
            }
            state.isr = isr.to_vec();
        }
        if let Some(leader) = leader {
            state.leader = leader;
            state.leader_epoch += 1;
            state.last_unclean = unclean;
        }
        state.partition_epoch += 1;
        assert!(
            state.leader_epoch >= leader_epoch_before && state.partition_epoch > partition_epoch_before,
            "epochs_monotonic: {topic}/{partition} leader_epoch {leader_epoch_before}->{} partition_epoch {partition_epoch_before}->{}",
            state.leader_epoch,
            state.partition_epoch
        );
    }

    /// Asserts every image invariant (see the module docs). Never mutates.
    pub fn check_invariants(&self, offset: i64, record: &MetadataRecord) {
        for (name, topic) in &self.topics {
            assert!(topic.partitions.len() <= topic.partition_count as usize, "{name} has too many partitions");
            for (index, partition) in topic.partitions.iter().enumerate() {
                self.check_partition(partition, &format!("{name}/{index} at offset {offset} after {record:?}"));
            }
        }
    }

    fn check_partition(&self, p: &PartitionState, context: &str) {
        assert!(!p.replicas.is_empty() && !has_duplicates(&p.replicas), "replicas {:?} {context}", p.replicas);
        assert!(!has_duplicates(&p.isr), "isr_subset_of_replicas: isr {:?} has duplicates {context}", p.isr);
        assert!(
            p.isr.iter().all(|r| p.replicas.contains(r)),
            "isr_subset_of_replicas: isr {:?} replicas {:?} {context}",
            p.isr,
            p.replicas
        );
        assert!(!p.isr.is_empty(), "isr_never_empty: leader {} {context}", p.leader);
        if p.leader != NO_LEADER {
            assert!(p.isr.contains(&p.leader), "leader_in_isr: leader {} isr {:?} {context}", p.leader, p.isr);
            assert!(self.is_unfenced(p.leader), "leader_unfenced: leader {} {context}", p.leader);
        }
    }
}

fn has_duplicates(ids: &[i32]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(broker_id: i32, broker_epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker { broker_id, incarnation: 1, broker_epoch, host: "h".into(), port: 1 }
    }

    fn one_partition_topic(leader: i32, isr: Vec<i32>) -> [MetadataRecord; 2] {
        [
            MetadataRecord::Topic { name: "t".into(), partitions: 1 },
            MetadataRecord::Partition {
                topic: "t".into(),
                partition: 0,
                replicas: vec![1, 2],
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ]
    }

    fn replay_all(records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (offset, record) in records.iter().enumerate() {
            image.replay(offset as i64, record);
        }
        image
    }

    #[test]
    fn registration_leaves_the_broker_fenced_until_unfenced() {
        let image = replay_all(&[register(1, 0)]);
        assert!(image.broker(1).unwrap().fenced);
        let image = replay_all(&[register(1, 0), MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: 0 }]);
        assert!(image.is_unfenced(1));
    }

    #[test]
    fn partition_change_bumps_leader_epoch_only_when_the_leader_field_is_set() {
        let [topic, partition] = one_partition_topic(1, vec![1, 2]);
        let unfence = MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: 0 };
        let shrink = MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            isr: Some(vec![1]),
            leader: None,
            leader_recovery_unclean: false,
        };
        let image = replay_all(&[register(1, 0), unfence, topic, partition, shrink]);
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch, p.isr.clone()), (0, 1, vec![1]));
    }

    #[test]
    #[should_panic(expected = "leader_unfenced")]
    fn a_fenced_leader_is_rejected_at_replay() {
        let [topic, partition] = one_partition_topic(1, vec![1, 2]);
        replay_all(&[register(1, 0), topic, partition]);
    }

    #[test]
    #[should_panic(expected = "isr_never_empty")]
    fn an_empty_isr_is_rejected_at_replay() {
        let [topic, partition] = one_partition_topic(NO_LEADER, vec![]);
        replay_all(&[topic, partition]);
    }

    #[test]
    #[should_panic(expected = "offsets_monotonic")]
    fn offsets_must_rise() {
        let mut image = MetadataImage::default();
        image.replay(5, &register(1, 5));
        image.replay(5, &register(2, 5));
    }
}
