use std::collections::BTreeMap;

use crate::controller::{MetadataImage, NO_LEADER};
use crate::ids::{BrokerId, TopicPartition};

/// Where a broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
}

impl BrokerAddress {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as the metadata log last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// The cluster as this broker knows it from the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    /// Registered, unfenced brokers.
    pub brokers: BTreeMap<BrokerId, BrokerAddress>,
    pub topics: BTreeMap<String, Vec<PartitionAssignment>>,
}

impl ClusterMetadata {
    /// The broker's view of a replayed metadata image.
    pub fn from_image(cluster_id: &str, image: &MetadataImage) -> ClusterMetadata {
        let brokers = image
            .brokers()
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| (BrokerId(*id), BrokerAddress { host: b.host.clone(), port: b.port }))
            .collect();
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        let topics = image
            .topics()
            .iter()
            .map(|(name, t)| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| PartitionAssignment {
                        replicas: ids(&p.replicas),
                        isr: ids(&p.isr),
                        leader: (p.leader != NO_LEADER).then_some(BrokerId(p.leader)),
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                    })
                    .collect();
                (name.clone(), parts)
            })
            .collect();
        ClusterMetadata { cluster_id: cluster_id.to_string(), brokers, topics }
    }

    pub fn assignment(&self, tp: &TopicPartition) -> Option<&PartitionAssignment> {
        let parts = self.topics.get(&tp.topic)?;
        usize::try_from(tp.partition).ok().and_then(|p| parts.get(p))
    }

    /// Every partition `broker` hosts, in a stable order.
    pub fn partitions_of(&self, broker: BrokerId) -> Vec<(TopicPartition, PartitionAssignment)> {
        let mut out = Vec::new();
        for (topic, parts) in &self.topics {
            for (i, a) in parts.iter().enumerate() {
                if a.replicas.contains(&broker) {
                    out.push((TopicPartition::new(topic.clone(), i as i32), a.clone()));
                }
            }
        }
        out
    }
}
