use std::collections::BTreeMap;

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

/// One partition's replicas; the first is the preferred (and, for now, the only) leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub replicas: Vec<BrokerId>,
}

impl PartitionAssignment {
    pub fn leader(&self) -> BrokerId {
        self.replicas[0]
    }
}

/// The cluster as every broker knows it: brokers and topics with their assignments.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub brokers: BTreeMap<BrokerId, BrokerAddress>,
    pub topics: BTreeMap<String, Vec<PartitionAssignment>>,
}

impl ClusterMetadata {
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
