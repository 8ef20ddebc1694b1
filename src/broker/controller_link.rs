//! The broker's side of the controller protocol: find the active controller, register (a new
//! incarnation each start), heartbeat, read the metadata log, and report ISR changes.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    AlterPartitionRequest, ApiKey, BrokerHeartbeatRequest, BrokerId as WireBrokerId, BrokerRegistrationRequest, FetchRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{ClientError, Connection};
use crate::controller::wire::{decode_entries, topic_id, METADATA_TOPIC};
use crate::raft::Entry;

use super::core::AlterIsr;
use super::node::Shared;

const REQUEST_TIMEOUT_MS: u64 = 5_000;
const METADATA_WAIT_MS: i32 = 500;
const ALTER_RETRY_BACKOFF_MS: u64 = 500;

/// A connection to whichever controller is active, found by trying each in turn.
pub(super) struct ControllerLink {
    controllers: Vec<String>,
    next: usize,
    conn: Option<Connection>,
    client_id: String,
}

impl ControllerLink {
    pub fn new(sh: &Shared) -> ControllerLink {
        ControllerLink { controllers: sh.controllers.clone(), next: 0, conn: None, client_id: format!("broker-{}", sh.id.0) }
    }

    /// Forgets the current controller: the next request tries the following one.
    pub fn rotate(&mut self) {
        self.conn = None;
        self.next = (self.next + 1) % self.controllers.len().max(1);
    }

    pub async fn request(&mut self, sh: &Shared, key: ApiKey, version: i16, body: RequestKind, timeout_ms: u64) -> Result<ResponseKind, ClientError> {
        if self.conn.is_none() {
            let addr = self.controllers.get(self.next).cloned().ok_or_else(|| ClientError::Connect("no controllers".into()))?;
            match Connection::connect(sh.net.as_ref(), &addr, &self.client_id, REQUEST_TIMEOUT_MS).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.rotate();
                    return Err(e);
                }
            }
        }
        let result = self.conn.as_mut().expect("connected above").request(key, version, body, timeout_ms).await;
        if result.is_err() {
            self.rotate();
        }
        result
    }

    /// Committed metadata entries from `offset` (waits briefly when there are none), and the
    /// log's high watermark.
    pub async fn fetch_metadata(&mut self, sh: &Shared, offset: i64) -> Result<(Vec<Entry>, i64), ClientError> {
        let partition = FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_current_leader_epoch(-1).with_last_fetched_epoch(-1).with_partition_max_bytes(1 << 20);
        let topic = FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str(METADATA_TOPIC))).with_partitions(vec![partition]);
        let req = FetchRequest::default().with_replica_id(WireBrokerId(sh.id.0)).with_max_wait_ms(METADATA_WAIT_MS).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![topic]);
        let timeout = REQUEST_TIMEOUT_MS + METADATA_WAIT_MS as u64;
        let ResponseKind::Fetch(resp) = self.request(sh, ApiKey::Fetch, 12, RequestKind::Fetch(req), timeout).await? else {
            return Err(ClientError::Protocol("expected a Fetch response".into()));
        };
        let pd = resp.responses.first().and_then(|t| t.partitions.first()).ok_or_else(|| ClientError::Protocol("empty metadata fetch".into()))?;
        if pd.error_code != 0 {
            self.rotate();
            return Err(ClientError::Protocol(format!("metadata fetch error {}", pd.error_code)));
        }
        let entries = decode_entries(pd.records.as_ref().unwrap_or(&bytes::Bytes::new())).map_err(ClientError::Protocol)?;
        Ok((entries, pd.high_watermark))
    }
}

fn not_controller(code: i16) -> bool {
    code == ResponseError::NotController.code()
}

/// Registers (until it succeeds), then heartbeats; registers again if the controller no
/// longer knows this incarnation's epoch.
pub(super) async fn lifecycle(sh: Rc<Shared>, interval_ms: u64) {
    let mut link = ControllerLink::new(&sh);
    loop {
        let epoch = loop {
            match register(&sh, &mut link).await {
                Some(e) => break e,
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        sh.broker_epoch.set(epoch);
        sh.core.borrow_mut().set_broker_epoch(epoch);
        sh.trace.emit(|| format!("registered epoch={epoch}"));
        while heartbeat(&sh, &mut link, epoch).await {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    }
}

async fn register(sh: &Shared, link: &mut ControllerLink) -> Option<i64> {
    let listener = Listener::default()
        .with_name(StrBytes::from_static_str("PLAINTEXT"))
        .with_host(StrBytes::from_string(sh.advertised.host.clone()))
        .with_port(sh.advertised.port);
    let req = BrokerRegistrationRequest::default()
        .with_broker_id(WireBrokerId(sh.id.0))
        .with_cluster_id(StrBytes::from_string(sh.cluster_id.clone()))
        .with_incarnation_id(sh.incarnation)
        .with_listeners(vec![listener]);
    match link.request(sh, ApiKey::BrokerRegistration, 0, RequestKind::BrokerRegistration(req), REQUEST_TIMEOUT_MS).await {
        Ok(ResponseKind::BrokerRegistration(r)) if r.error_code == 0 => Some(r.broker_epoch),
        Ok(ResponseKind::BrokerRegistration(r)) if not_controller(r.error_code) => {
            link.rotate();
            None
        }
        _ => None,
    }
}

/// One heartbeat; false when the broker must register again.
async fn heartbeat(sh: &Shared, link: &mut ControllerLink, epoch: i64) -> bool {
    let req = BrokerHeartbeatRequest::default()
        .with_broker_id(WireBrokerId(sh.id.0))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(sh.metadata_offset.get());
    match link.request(sh, ApiKey::BrokerHeartbeat, 0, RequestKind::BrokerHeartbeat(req), REQUEST_TIMEOUT_MS).await {
        Ok(ResponseKind::BrokerHeartbeat(r)) if r.error_code == ResponseError::StaleBrokerEpoch.code() => false,
        Ok(ResponseKind::BrokerHeartbeat(r)) if not_controller(r.error_code) => {
            link.rotate();
            true
        }
        _ => true,
    }
}

/// Sends ISR changes; a refused or lost change is forgotten so the leader may propose again.
pub(super) async fn alter_partitions(sh: Rc<Shared>, alters: Vec<AlterIsr>) {
    let mut link = ControllerLink::new(&sh);
    for a in alters {
        let partition = PartitionData::default()
            .with_partition_index(a.tp.partition)
            .with_leader_epoch(a.leader_epoch)
            .with_partition_epoch(a.partition_epoch)
            .with_new_isr(a.new_isr.iter().map(|b| WireBrokerId(b.0)).collect());
        let req = AlterPartitionRequest::default()
            .with_broker_id(WireBrokerId(sh.id.0))
            .with_broker_epoch(sh.broker_epoch.get())
            .with_topics(vec![TopicData::default().with_topic_id(topic_id(&a.tp.topic)).with_partitions(vec![partition])]);
        let error = match link.request(&sh, ApiKey::AlterPartition, 2, RequestKind::AlterPartition(req), REQUEST_TIMEOUT_MS).await {
            Ok(ResponseKind::AlterPartition(r)) => {
                let codes = std::iter::once(r.error_code).chain(r.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code));
                codes.filter(|c| *c != 0).map(|c| format!("{:?}", ResponseError::try_from_code(c))).next()
            }
            Ok(_) => Some("unexpected response".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = error {
            sh.trace.emit(|| format!("alter-partition-failed {} {error}", a.tp));
            // Kafka's AlterPartitionManager retries after a backoff, not at once.
            tokio::time::sleep(Duration::from_millis(ALTER_RETRY_BACKOFF_MS)).await;
            sh.core.borrow_mut().on_alter_partition_failed(&a.tp);
        }
    }
}
