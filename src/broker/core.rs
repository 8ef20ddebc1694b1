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

use crate::group::GroupCoordinator;
use crate::txn::TxnCoordinator;

use super::config::BrokerConfig;
use super::metadata::{ClusterMetadata, PartitionAssignment};
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

/// An ISR change for the controller (AlterPartition), proposed by a partition leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterIsr {
    pub tp: TopicPartition,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

/// A broker's whole state and request handling, without I/O (other than its `Storage`).
pub struct BrokerCore {
    pub(super) me: BrokerId,
    pub(super) config: BrokerConfig,
    pub(super) metadata: ClusterMetadata,
    pub(super) partitions: BTreeMap<TopicPartition, Partition>,
    pub(super) purgatory: Purgatory,
    pub(super) trace: Tracer,
    storage: Rc<dyn Storage>,
    /// ISR changes waiting to be sent to the controller.
    alter_outbox: Vec<AlterIsr>,
    /// Follower partitions whose truncation needs the leader's end offset for an epoch
    /// (KIP-279's iterative step), asked with OffsetForLeaderEpoch.
    pub(super) epoch_queries: Vec<(TopicPartition, i32)>,
    last_hw_checkpoint_ms: u64,
    /// This incarnation's broker epoch (-1 until registered): the producer id space.
    pub(super) broker_epoch: i64,
    pub(super) next_producer_id: i64,
    /// The groups whose offsets partitions this broker leads.
    pub(super) groups: GroupCoordinator,
    /// The coordinator's answers to parked joins and syncs, by token.
    pub(super) group_answers: BTreeMap<u64, ResponseKind>,
    /// Offsets partitions loaded here whose log end at load time is not committed yet: their
    /// groups are served once the high watermark reaches it (until then
    /// COORDINATOR_LOAD_IN_PROGRESS), so nothing replayed from an uncommitted tail is shown.
    pub(super) groups_loading: BTreeMap<i32, i64>,
    /// The transactions whose `__transaction_state` partitions this broker leads.
    pub(super) txns: TxnCoordinator,
    pub(super) txn: super::txn::TxnBroker,
}

impl BrokerCore {
    /// A broker with no partitions yet: it learns them from the metadata log.
    /// `nonce` makes the member ids this incarnation hands out unique.
    pub fn open(me: BrokerId, config: BrokerConfig, storage: Rc<dyn Storage>, trace: Tracer, nonce: u64) -> BrokerCore {
        let groups = GroupCoordinator::new(config.group.clone(), me.0, nonce, trace.clone());
        let txns = TxnCoordinator::new(config.txn.clone(), me.0, trace.clone());
        BrokerCore {
            me,
            config,
            metadata: ClusterMetadata::default(),
            partitions: BTreeMap::new(),
            purgatory: Purgatory::default(),
            trace,
            storage,
            alter_outbox: Vec::new(),
            epoch_queries: Vec::new(),
            last_hw_checkpoint_ms: 0,
            broker_epoch: -1,
            next_producer_id: 0,
            groups,
            group_answers: BTreeMap::new(),
            groups_loading: BTreeMap::new(),
            txns,
            txn: super::txn::TxnBroker::default(),
        }
    }

    /// Applies what the metadata log now says: opens new partitions, changes roles when the
    /// leader or its epoch changed, and follows ISR changes.
    pub fn apply_metadata(&mut self, now_ms: u64, metadata: ClusterMetadata) -> Result<(), LogError> {
        for (tp, a) in metadata.partitions_of(self.me) {
            if !self.partitions.contains_key(&tp) {
                let p = Partition::open(self.storage.clone(), tp.clone(), a.replicas.clone(), self.config.log.clone())?;
                self.trace.emit(|| format!("open {tp} leo={}", p.leo()));
                self.partitions.insert(tp.clone(), p);
            }
            self.reconcile(now_ms, &tp, &a)?;
        }
        self.metadata = metadata;
        Ok(())
    }

    fn reconcile(&mut self, now_ms: u64, tp: &TopicPartition, a: &PartitionAssignment) -> Result<(), LogError> {
        let me = self.me;
        let truncate_to_hw = self.config.truncate_to_hw_on_become_follower;
        let p = self.partitions.get_mut(tp).expect("opened above");
        let new_epoch = a.leader_epoch != p.leader_epoch;
        match (a.leader == Some(me), p.is_leader()) {
            (true, was) if new_epoch || !was => {
                p.become_leader(me, a, now_ms)?;
                self.trace.emit(|| format!("become-leader {tp} epoch={} leo={} isr={:?}", a.leader_epoch, p.leo(), ids(&a.isr)));
                self.unload_groups(tp);
                self.load_groups(now_ms, tp);
                self.unload_txns(now_ms, tp);
                self.load_txns(now_ms, tp);
            }
            (false, was) if new_epoch || was => {
                let leo = p.leo();
                p.become_follower(a, truncate_to_hw)?;
                if p.leo() < leo {
                    self.trace.emit(|| format!("truncate {tp} {leo} -> {} (to own high watermark)", p.leo()));
                }
                self.trace.emit(|| format!("become-follower {tp} epoch={} leader={:?} leo={}", a.leader_epoch, a.leader.map(|b| b.0), p.leo()));
                self.unload_groups(tp);
                self.unload_txns(now_ms, tp);
            }
            (true, _) if a.partition_epoch != p.partition_epoch => {
                p.partition_epoch = a.partition_epoch;
                let state = p.leader_state().expect("leader");
                let old = state.isr.clone();
                state.set_isr(a.isr.clone());
                state.pending_isr = None;
                self.trace.emit(|| format!("isr {tp} {:?} -> {:?}", ids(&old), ids(&a.isr)));
            }
            (true, _) => {}
            (false, _) => p.partition_epoch = a.partition_epoch,
        }
        Ok(())
    }

    /// ISR changes to send to the controller.
    pub fn poll_alter_partitions(&mut self) -> Vec<AlterIsr> {
        std::mem::take(&mut self.alter_outbox)
    }

    /// The controller refused or lost an ISR change: forget it, so the next tick may try again.
    pub fn on_alter_partition_failed(&mut self, tp: &TopicPartition) {
        if let Some(state) = self.partitions.get_mut(tp).and_then(|p| p.leader_state()) {
            state.pending_isr = None;
        }
    }

    pub fn id(&self) -> BrokerId {
        self.me
    }

    /// Handles one request frame (without its size prefix).
    pub fn handle_frame(&mut self, now_ms: u64, frame: Bytes) -> Handled {
        let handled = self.handle_request(now_ms, frame);
        // A follower's fetch may have moved a high watermark that transaction-state appends
        // wait for.
        if !self.txn.writes.is_empty() {
            self.after_txn_work(now_ms);
        }
        handled
    }

    fn handle_request(&mut self, now_ms: u64, frame: Bytes) -> Handled {
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
            RequestKind::OffsetForLeaderEpoch(r) => reply(ctx, ResponseKind::OffsetForLeaderEpoch(self.handle_offset_for_leader_epoch(&r))),
            RequestKind::Produce(r) => self.handle_produce(now_ms, ctx, r),
            RequestKind::InitProducerId(r) => match r.transactional_id.as_ref().map(|t| t.to_string()) {
                Some(txn_id) => self.handle_init_producer_id_txn(now_ms, ctx, &r, &txn_id),
                None => reply(ctx, ResponseKind::InitProducerId(self.handle_init_producer_id())),
            },
            RequestKind::AddPartitionsToTxn(r) => self.handle_add_partitions_to_txn(now_ms, ctx, r),
            RequestKind::AddOffsetsToTxn(r) => self.handle_add_offsets_to_txn(now_ms, ctx, &r),
            RequestKind::EndTxn(r) => self.handle_end_txn(now_ms, ctx, &r),
            RequestKind::WriteTxnMarkers(r) => self.handle_write_txn_markers(now_ms, ctx, &r),
            RequestKind::TxnOffsetCommit(r) => self.handle_txn_offset_commit(now_ms, ctx, r),
            RequestKind::Fetch(r) => self.handle_fetch(now_ms, ctx, r),
            RequestKind::FindCoordinator(r) => reply(ctx, ResponseKind::FindCoordinator(self.handle_find_coordinator(&r, ctx.version))),
            RequestKind::JoinGroup(r) => {
                let client_id = req.header.client_id.as_ref().map(ToString::to_string).unwrap_or_default();
                self.handle_join_group(now_ms, ctx, r, client_id)
            }
            RequestKind::SyncGroup(r) => self.handle_sync_group(now_ms, ctx, r),
            RequestKind::Heartbeat(r) => {
                let body = self.handle_heartbeat(now_ms, &r);
                reply(ctx, body)
            }
            RequestKind::LeaveGroup(r) => {
                let body = self.handle_leave_group(now_ms, &r, ctx.version);
                reply(ctx, body)
            }
            RequestKind::OffsetCommit(r) => self.handle_offset_commit(now_ms, ctx, r),
            RequestKind::OffsetFetch(r) => reply(ctx, ResponseKind::OffsetFetch(self.handle_offset_fetch(&r))),
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

    /// `park` under an id from `Purgatory::reserve`.
    pub(super) fn park_reserved(&mut self, now_ms: u64, ctx: RequestCtx, id: u64, deadline_ms: u64, op: ParkedOp) -> Handled {
        let parked = Parked { api_key: ctx.api_key, version: ctx.version, correlation_id: ctx.correlation_id, deadline_ms, op };
        if !self.purgatory.park_reserved(id, parked) {
            return Handled::Close("purgatory full".into());
        }
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
        if let ParkedOp::Verify(pv) = &mut parked.op {
            match self.try_complete_verify(now_ms, id, pv, expired) {
                None => {
                    self.purgatory.put_back(id, parked);
                    return None;
                }
                // The verified produce was appended and now waits like any acks=all produce.
                Some(Ok(op)) => parked.op = op,
                Some(Err(resp)) => return Some(self.encode_parked(ctx, &ResponseKind::Produce(resp))),
            }
        }
        let body = match &mut parked.op {
            ParkedOp::Produce(pp) => self.try_complete_produce(pp, expired).map(ResponseKind::Produce),
            ParkedOp::Fetch(pf) => self.try_complete_fetch(pf, expired).map(ResponseKind::Fetch),
            ParkedOp::OffsetCommit(pc) if ctx.api_key == ApiKey::TxnOffsetCommit => {
                self.try_complete_commit(pc, expired).map(|r| ResponseKind::TxnOffsetCommit(super::txn::txn_commit_response_from(&r)))
            }
            ParkedOp::OffsetCommit(pc) => self.try_complete_commit(pc, expired).map(ResponseKind::OffsetCommit),
            ParkedOp::Group => self.try_complete_group(id, ctx.api_key, expired),
            ParkedOp::Txn => self.try_complete_txn(id, ctx.api_key, expired),
            ParkedOp::Markers(pm) => self.try_complete_markers(pm, expired).map(ResponseKind::WriteTxnMarkers),
            ParkedOp::Verify(_) => unreachable!("replaced above"),
        };
        match body {
            Some(body) => Some(self.encode_parked(ctx, &body)),
            None => {
                self.purgatory.put_back(id, parked);
                None
            }
        }
    }

    fn encode_parked(&self, ctx: RequestCtx, body: &ResponseKind) -> Bytes {
        match encode_response(ctx.api_key, ctx.version, ctx.correlation_id, body) {
            Ok(frame) => frame,
            Err(e) => panic!("encoding our own {:?} v{} response failed: {e}", ctx.api_key, ctx.version),
        }
    }

    /// Periodic work: ISR shrink, HW advancement, the HW checkpoint, group timers.
    pub fn tick(&mut self, now_ms: u64) {
        let tps: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in tps {
            self.maybe_shrink_isr(now_ms, &tp);
            self.maybe_advance_hw(now_ms, &tp);
        }
        self.groups.tick(now_ms);
        self.drain_groups(now_ms);
        self.txns.tick(now_ms);
        self.after_txn_work(now_ms);
        if now_ms >= self.last_hw_checkpoint_ms + self.config.hw_checkpoint_interval_ms {
            self.last_hw_checkpoint_ms = now_ms;
            for p in self.partitions.values_mut() {
                if let Err(e) = p.checkpoint_hw() {
                    self.trace.emit(|| format!("hw-checkpoint-failed {} {e}", p.tp));
                }
            }
        }
    }

    /// How often `tick` should run.
    pub fn tick_interval_ms(&self) -> u64 {
        (self.config.replica_lag_time_max_ms / 2).clamp(10, 1_000)
    }

    /// Every loaded group's state and committed offsets (white-box checks).
    pub fn group_snapshots(&self) -> Vec<crate::group::GroupSnapshot> {
        self.groups.snapshot().into_iter().filter(|g| !self.groups_still_loading(g.partition)).collect()
    }

    pub fn snapshots(&self) -> Vec<PartitionSnapshot> {
        self.partitions.values().map(Partition::snapshot).collect()
    }

    /// A fingerprint of every led partition's high watermark and last stable offset: it
    /// changes when what consumers may read changes, so observers can be told at that moment
    /// rather than at the next tick.
    pub fn watermarks(&self) -> u64 {
        self.partitions.values().filter(|p| p.is_leader()).fold(0u64, |acc, p| {
            let hw = p.hw();
            let lso = p.log.last_stable_offset(hw);
            acc.wrapping_mul(0x0100_0000_01b3) ^ (hw as u64).wrapping_mul(31).wrapping_add(lso as u64)
        })
    }

    /// Proposes dropping followers that fell behind (§1.4), on the ticker.
    pub(super) fn maybe_shrink_isr(&mut self, now_ms: u64, tp: &TopicPartition) {
        let rules = self.config.replication_rules();
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        let Role::Leader(state) = &p.role else { return };
        let shrink = state.shrink_candidates(now_ms, leo, &rules);
        if shrink.is_empty() {
            return;
        }
        let isr: Vec<BrokerId> = state.isr.iter().filter(|r| !shrink.contains(r)).copied().collect();
        self.propose_isr(tp, isr);
    }

    /// Proposes letting `follower` back into the ISR once its fetch shows it caught up
    /// (§1.4). Only a fetch can show that: what we last knew of a dead follower proves nothing.
    pub(super) fn maybe_expand_isr(&mut self, tp: &TopicPartition, follower: BrokerId) {
        let ignore_start = self.config.isr_join_ignores_epoch_start_offset;
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let Role::Leader(state) = &p.role else { return };
        if !state.expand_candidates(ignore_start).contains(&follower) {
            return;
        }
        let mut isr = state.isr.clone();
        isr.push(follower);
        isr.sort();
        self.propose_isr(tp, isr);
    }

    fn propose_isr(&mut self, tp: &TopicPartition, isr: Vec<BrokerId>) {
        let p = self.partitions.get_mut(tp).expect("caller checked");
        let (leader_epoch, partition_epoch) = (p.leader_epoch, p.partition_epoch);
        let state = p.leader_state().expect("caller checked");
        self.trace.emit(|| format!("propose-isr {tp} {:?} -> {:?}", ids(&state.isr), ids(&isr)));
        state.pending_isr = Some(isr.clone());
        self.alter_outbox.push(AlterIsr { tp: tp.clone(), leader_epoch, partition_epoch, new_isr: isr });
    }

    pub(super) fn maybe_advance_hw(&mut self, now_ms: u64, tp: &TopicPartition) {
        let rules = self.config.replication_rules();
        let Some(p) = self.partitions.get_mut(tp) else { return };
        let leo = p.leo();
        let Role::Leader(state) = &mut p.role else { return };
        if let Some(hw) = state.maybe_advance_hw(now_ms, leo, &rules) {
            p.log.on_high_watermark(hw);
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
