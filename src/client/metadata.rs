use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestKind, ResponseKind, ApiKey};

use crate::ids::{BrokerId, TopicPartition};
use crate::seam::Network;

use super::connection::Connection;
use super::error::ClientError;

const METADATA_VERSION: i16 = 9;

/// What a client knows of the cluster: broker addresses and partition leaders.
#[derive(Debug, Default, Clone)]
pub struct MetadataCache {
    pub brokers: BTreeMap<BrokerId, String>,
    /// Leader per partition (None while the partition has no leader).
    pub leaders: BTreeMap<TopicPartition, Option<BrokerId>>,
    pub partition_counts: BTreeMap<String, i32>,
}

impl MetadataCache {
    /// Asks the bootstrap servers, in order, until one answers; `timeouts` are (connection
    /// setup, request) in milliseconds.
    pub async fn fetch(net: &dyn Network, bootstrap: &[String], client_id: &str, timeouts: (u64, u64)) -> Result<MetadataCache, ClientError> {
        let mut last = ClientError::Connect("no bootstrap servers".into());
        for addr in bootstrap {
            match Self::fetch_from(net, addr, client_id, timeouts).await {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn fetch_from(net: &dyn Network, addr: &str, client_id: &str, (connect_ms, request_ms): (u64, u64)) -> Result<MetadataCache, ClientError> {
        let mut conn = Connection::connect(net, addr, client_id, connect_ms).await?;
        let req = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        match conn.request(ApiKey::Metadata, METADATA_VERSION, req, request_ms).await? {
            ResponseKind::Metadata(m) => Ok(Self::from_response(&m)),
            other => Err(ClientError::Protocol(format!("expected Metadata, got {other:?}"))),
        }
    }

    pub fn from_response(m: &MetadataResponse) -> MetadataCache {
        let mut cache = MetadataCache::default();
        for b in &m.brokers {
            cache.brokers.insert(BrokerId(b.node_id.0), format!("{}:{}", b.host.as_str(), b.port));
        }
        for t in &m.topics {
            let Some(name) = &t.name else { continue };
            if t.error_code != 0 {
                continue;
            }
            cache.partition_counts.insert(name.to_string(), t.partitions.len() as i32);
            for p in &t.partitions {
                let ok = p.error_code == 0 || p.error_code == ResponseError::LeaderNotAvailable.code();
                let leader = (ok && p.leader_id.0 >= 0).then_some(BrokerId(p.leader_id.0));
                cache.leaders.insert(TopicPartition::new(name.to_string(), p.partition_index), leader);
            }
        }
        cache
    }

    pub fn leader_addr(&self, tp: &TopicPartition) -> Option<(BrokerId, String)> {
        let leader = (*self.leaders.get(tp)?)?;
        Some((leader, self.brokers.get(&leader)?.clone()))
    }

    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.partition_counts.get(topic).copied()
    }
}
