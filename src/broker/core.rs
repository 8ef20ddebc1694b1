use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::ids::{BrokerId, TopicPartition};
use crate::log::LogError;
use crate::observe::Tracer;
use crate::protocol::{api_versions_response, decode_request, encode_response, WireError};
use crate::seam::Storage;

use super::config::BrokerConfig;
use super::metadata::ClusterMetadata;
use super::partition::{Partition, PartitionSnapshot, Role};
use super::purgatory::{Parked, ParkedOp, Purgatory};

/// What the shell must do with a request frame.
#[derive(Debug)]
pub enum Handled {
    /// Write this frame back.
    Reply(Bytes),
    /// Nothing to send (acks=0 produce).
    NoReply,
    /// Answer later: call `poll_parked(id, now)` when state changes or at `deadline_ms`.
    Parked { id: u64, deadline_ms: u64 },
    /// Close the connection: the frame was malformed or asked for something we do not serve.
    Close(String),
}

/// Who sent a request and how to answer it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestCtx {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
}

/// A broker's whole state and request handling, without I/O (other than its `Storage`).
pub struct BrokerCore {
    pub(super) me: BrokerId,
    pub(super) config: BrokerConfig,
    pub(super) metadata: ClusterMetadata,
    pub(super) partitions: BTreeMap<TopicPartition, Partition>,
    pub(super) purgatory: Purgatory,
    pub(super) trace: Tracer,
}

impl BrokerCore {
    /// Opens every hosted partition (recovering its log) and takes the assigned roles.
    pub fn open(
        me: BrokerId,
        config: BrokerConfig,
        metadata: ClusterMetadata,
        storage: Rc<dyn Storage>,
        trace: Tracer,
        now_ms: u64,
    ) -> Result<BrokerCore, LogError> {
        let mut partitions = BTreeMap::new();
        for (tp, assignment) in metadata.partitions_of(me) {
            let p = Partition::open(storage.clone(), me, tp.clone(), &assignment, config.log.clone(), now_ms)?;
            trace.emit(|| format!("open {tp} leo={} leader={}", p.leo(), p.is_leader()));
            partitions.insert(tp, p);
        }
        Ok(BrokerCore { me, config, metadata, partitions, purgatory: Purgatory::default(), trace })
    }

    pub fn id(&self) -> BrokerId {
        self.me
    }

    /// Handles one request frame (without its size prefix).
    pub fn handle_frame(&mut self, now_ms: u64, frame: Bytes) -> Handled {
        let req = match decode_request(frame) {
            Ok(r) => r,
            Err(WireError::UnsupportedVersion { api_key, correlation_id, .. })
                if api_key == ApiKey::ApiVersions as i16 =>
            {
                // Kafka answers an unknown ApiVersions version with v0 and the error, so the
                // client can retry with a version from our list.
                let body = api_versions_response(ResponseError::UnsupportedVersion.code());
                return reply(RequestCtx { api_key: ApiKey::ApiVersions, version: 0, correlation_id }, ResponseKind::ApiVersions(body));
            }
            Err(e) => return Handled::Close(e.to_string()),
        };
        let ctx = RequestCtx { api_key: req.api_key, version: req.header.request_api_version, correlation_id: req.header.correlation_id };
        match req.body {
            RequestKind::ApiVersions(_) => reply(ctx, ResponseKind::ApiVersions(api_versions_response(0))),
            RequestKind::Metadata(r) => reply(ctx, ResponseKind::Metadata(self.handle_metadata(&r))),
            RequestKind::ListOffsets(r) => reply(ctx, ResponseKind::ListOffsets(self.handle_list_offsets(&r, ctx.version))),
            RequestKind::Produce(r) => self.handle_produce(now_ms, ctx, r),
            RequestKind::Fetch(r) => self.handle_fetch(now_ms, ctx, r),
            other => Handled::Close(format!("{} is not served", other_name(&other))),
        }
    }

    /// Parks `op` until an event or its deadline; answers at once when it is already complete.
    pub(super) fn park(&mut self, now_ms: u64, ctx: RequestCtx, deadline_ms: u64, op: ParkedOp) -> Handled {
        let parked = Parked { api_key: ctx.api_key, version: ctx.version, correlation_id: ctx.correlation_id, deadline_ms, op };
        let Some(id) = self.purgatory.park(parked) else {
            return Handled::Close("purgatory full".into());
        };
        match self.poll_parked(id, now_ms) {
            Some(frame) => Handled::Reply(frame),
            None => Handled::Parked { id, deadline_ms },
        }
    }

    /// The answer to a parked request if it is complete (or its deadline passed), else None.
    pub fn poll_parked(&mut self, id: u64, now_ms: u64) -> Option<Bytes> {
        let mut parked = self.purgatory.take(id)?;
        let expired = now_ms >= parked.deadline_ms;
        let ctx = RequestCtx { api_key: parked.api_key, version: parked.version, correlation_id: parked.correlation_id };
        let body = match &mut parked.op {
            ParkedOp::Produce(pp) => self.try_complete_produce(pp, expired).map(ResponseKind::Produce),
            ParkedOp::Fetch(pf) => self.try_complete_fetch(pf, expired).map(ResponseKind::Fetch),
        };
        match body {
            Some(body) => match encode_response(ctx.api_key, ctx.version, ctx.correlation_id, &body) {
                Ok(frame) => Some(frame),
                Err(e) => panic!("encoding our own {:?} v{} response failed: {e}", ctx.api_key, ctx.version),
            },
            None => {
                self.purgatory.put_back(id, parked);
                None
            }
        }
    }

    /// Periodic work: ISR shrink, HW advancement.
    pub fn tick(&mut self, now_ms: u64) {
        let tps: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in tps {
            self.maybe_shrink_isr(now_ms, &tp);
            self.maybe_advance_hw(now_ms, &tp);
        }
    }

    /// How often `tick` should run.
    pub fn tick_interval_ms(&self) -> u64 {
        (self.config.replica_lag_time_max_ms / 2).clamp(10, 1_000)
    }

    pub fn snapshots(&self) -> Vec<PartitionSnapshot> {
        self.partitions.values().map(Partition::snapshot).collect()
    }

    /// Drops followers that fell behind (§1.4), on the ticker.
    pub(super) fn maybe_shrink_isr(&mut self, now_ms: u64, tp: &TopicPartition) {
        let rules = self.config.replication_rules();
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        let Role::Leader(state) = &mut p.role else { return };
        let shrink = state.shrink_candidates(now_ms, leo, &rules);
        if shrink.is_empty() {
            return;
        }
        let isr: Vec<BrokerId> = state.isr.iter().filter(|r| !shrink.contains(r)).copied().collect();
        let old = std::mem::replace(&mut state.isr, isr.clone());
        self.trace.emit(|| format!("isr {tp} {:?} -> {:?}", ids(&old), ids(&isr)));
    }

    /// Lets `follower` back into the ISR once its fetch shows it caught up (§1.4). Only a
    /// fetch can show that: what we last knew of a dead follower proves nothing.
    pub(super) fn maybe_expand_isr(&mut self, tp: &TopicPartition, follower: BrokerId) {
        let ignore_start = self.config.isr_join_ignores_epoch_start_offset;
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let Role::Leader(state) = &mut p.role else { return };
        if !state.expand_candidates(ignore_start).contains(&follower) {
            return;
        }
        let mut isr = state.isr.clone();
        isr.push(follower);
        isr.sort();
        let old = std::mem::take(&mut state.isr);
        state.set_isr(isr.clone());
        self.trace.emit(|| format!("isr {tp} {:?} -> {:?}", ids(&old), ids(&isr)));
    }

    pub(super) fn maybe_advance_hw(&mut self, now_ms: u64, tp: &TopicPartition) {
        let rules = self.config.replication_rules();
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        let Role::Leader(state) = &mut p.role else { return };
        if let Some(hw) = state.maybe_advance_hw(now_ms, leo, &rules) {
            self.trace.emit(|| format!("hw {tp} {hw}"));
        }
    }
}

pub(super) fn reply(ctx: RequestCtx, body: ResponseKind) -> Handled {
    match encode_response(ctx.api_key, ctx.version, ctx.correlation_id, &body) {
        Ok(frame) => Handled::Reply(frame),
        Err(e) => Handled::Close(format!("cannot encode response: {e}")),
    }
}

pub(super) fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

fn other_name(req: &RequestKind) -> String {
    let dbg = format!("{req:?}");
    dbg.split('(').next().unwrap_or("request").to_string()
}
