//! Random operation sequences from 1..=5 simulated consumers: join, sync, heartbeat, leave,
//! commit, time passing and coordinator failover (unload + load from the log). After every
//! step the coordinator's invariants hold, every parked request is answered exactly once, every
//! generation has one leader who is a member, and a member of a Stable group holds the
//! assignment of the current generation. At the end, silence lets every session run out: all
//! parked requests get answers and the group ends Empty (or deleted).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;
use crate::ids::TopicPartition;

#[derive(Debug, Clone)]
enum Op {
    /// The client's natural next step, as a consumer's poll loop would take it.
    Poll { client: usize },
    Join { client: usize, protocols: usize },
    Sync { client: usize },
    Heartbeat { client: usize },
    Leave { client: usize },
    Commit { client: usize },
    /// A heartbeat or sync from a generation that is not the client's.
    Stale { client: usize },
    Advance { ms: u64 },
    Failover,
}

/// Every list contains "range", so members always have a protocol in common.
const PROTOCOL_LISTS: [&[(&str, &[u8])]; 3] =
    [&[("range", b"sub")], &[("range", b"sub-v2")], &[("roundrobin", b"x"), ("range", b"sub")]];

#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    leader: bool,
    /// The member list of its last join response as leader.
    members: Vec<String>,
    /// Told to rejoin (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION).
    rejoin: bool,
    /// The generation whose assignment it holds.
    synced: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    /// A sync sent with this generation: its assignment must be this generation's.
    Sync(i32),
}

struct Harness {
    c: GroupCoordinator,
    lines: Rc<RefCell<Vec<String>>>,
    /// The most members a Stable group had.
    stable_members_max: usize,
    now_ms: u64,
    next_token: u64,
    clients: Vec<Client>,
    /// Parked requests: token → (client, kind).
    outstanding: BTreeMap<u64, (usize, Kind)>,
    /// The leader every successful join response named, per generation, since the group was
    /// (re)created or (re)loaded: generations that never reached a record are reused after a
    /// failover, as in Kafka, and a deleted group starts again at 0.
    leaders: BTreeMap<i32, String>,
    log: Vec<(Bytes, Option<Bytes>)>,
    partition: i32,
    /// A loaded member supports only the protocol its record names (as in Kafka), so after a
    /// failover a joiner without that protocol is refused until the member is gone.
    failed_over: bool,
}

impl Harness {
    fn new(clients: usize) -> Self {
        let (c, lines) = coordinator();
        let fresh = Client { generation: -1, synced: -1, ..Client::default() };
        Harness {
            c,
            lines,
            stable_members_max: 0,
            now_ms: 0,
            next_token: 1,
            clients: vec![fresh; clients],
            outstanding: BTreeMap::new(),
            leaders: BTreeMap::new(),
            log: Vec::new(),
            partition: partition_for(G, 50),
            failed_over: false,
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Poll { client } => self.poll(client),
            Op::Join { client, protocols } => self.join(client, protocols),
            Op::Sync { client } => self.sync(client, self.clients[client].generation),
            Op::Heartbeat { client } => self.heartbeat(client, self.clients[client].generation),
            Op::Leave { client } => self.leave(client),
            Op::Commit { client } => self.commit(client),
            Op::Stale { client } => {
                let g = self.clients[client].generation;
                self.heartbeat(client, g + 1);
                self.sync(client, g - 1);
            }
            Op::Advance { ms } => {
                self.now_ms += ms;
                self.c.tick(self.now_ms);
            }
            Op::Failover => {
                self.drain_records();
                self.c.unload(self.partition);
                self.c.load(self.now_ms, self.partition, self.log.clone());
                self.failed_over = true;
                let loaded = self.c.snapshot().into_iter().find(|g| g.group == G).map_or(-1, |g| g.generation);
                self.leaders.retain(|generation, _| *generation <= loaded);
            }
        }
        self.after_step();
    }

    /// Join until a generation is known, then sync, then heartbeat; heartbeat while a request
    /// is parked. The last of several clients is slow: it keeps heartbeating through a
    /// rebalance instead of rejoining, so the rebalance timeout has to remove it.
    fn poll(&mut self, i: usize) {
        let parked = self.outstanding.values().any(|(c, _)| *c == i);
        let slow = i > 0 && i + 1 == self.clients.len();
        let client = &self.clients[i];
        if parked || (slow && client.rejoin) {
            self.heartbeat(i, client.generation);
        } else if client.member_id.is_empty() || client.generation < 0 || client.rejoin {
            self.join(i, 0);
        } else if client.synced != client.generation {
            self.sync(i, client.generation);
        } else {
            self.heartbeat(i, client.generation);
        }
    }

    fn join(&mut self, i: usize, protocols: usize) {
        let token = self.token();
        let session_ms = 6_000 + 1_500 * i as i32;
        let req = join_req(&self.clients[i].member_id, PROTOCOL_LISTS[protocols])
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(8_000 + 4_000 * i as i32);
        match self.c.join_group(self.now_ms, token, &req, JOIN_V) {
            Reply::Now(r) => self.on_join(i, r),
            Reply::Later => self.park(token, i, Kind::Join),
        }
    }

    fn sync(&mut self, i: usize, generation: i32) {
        let client = &self.clients[i];
        if client.member_id.is_empty() {
            return;
        }
        let assignment = format!("gen{generation}");
        let assignments: Vec<(&str, &[u8])> = if client.leader && generation == client.generation {
            client.members.iter().map(|m| (m.as_str(), assignment.as_bytes())).collect()
        } else {
            Vec::new()
        };
        let req = sync_req(&client.member_id, generation, &assignments);
        let token = self.token();
        match self.c.sync_group(self.now_ms, token, &req, SYNC_V) {
            Reply::Now(r) => self.on_sync(i, generation, r),
            Reply::Later => self.park(token, i, Kind::Sync(generation)),
        }
    }

    fn park(&mut self, token: u64, client: usize, kind: Kind) {
        assert!(self.outstanding.insert(token, (client, kind)).is_none(), "token {token} parked twice");
    }

    fn heartbeat(&mut self, i: usize, generation: i32) {
        if self.clients[i].member_id.is_empty() {
            return;
        }
        let id = self.clients[i].member_id.clone();
        let code = heartbeat(&mut self.c, self.now_ms, &id, generation);
        match ResponseError::try_from_code(code) {
            Some(ResponseError::UnknownMemberId) => self.reset(i),
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => self.clients[i].rejoin = true,
            _ => {}
        }
    }

    fn leave(&mut self, i: usize) {
        let id = self.clients[i].member_id.clone();
        if id.is_empty() {
            return;
        }
        let r = self.c.leave_group(self.now_ms, &leave_req(&[&id]), 5);
        assert_eq!(r.error_code, 0);
        self.reset(i);
    }

    fn commit(&mut self, i: usize) {
        let Client { member_id, generation, .. } = self.clients[i].clone();
        if self.c.validate_offset_commit(self.now_ms, G, &member_id, generation).is_ok() {
            let offsets = vec![(TopicPartition::new("t", i as i32), self.now_ms as i64, 0, String::new())];
            self.log.extend(self.c.offset_commit_records(G, self.now_ms as i64, &offsets));
            self.c.offsets_committed(G, &offsets);
        }
    }

    fn reset(&mut self, i: usize) {
        self.clients[i] = Client { generation: -1, synced: -1, ..Client::default() };
    }

    fn on_join(&mut self, i: usize, r: JoinGroupResponse) {
        use ResponseError::*;
        match ResponseError::try_from_code(r.error_code) {
            None => {
                let leader = r.leader.to_string();
                let named = self.leaders.entry(r.generation_id).or_insert_with(|| leader.clone());
                assert_eq!(*named, leader, "generation {} has two leaders", r.generation_id);
                let me = r.member_id.to_string();
                let members: Vec<String> = r.members.iter().map(|m| m.member_id.to_string()).collect();
                if me == leader {
                    assert!(members.contains(&me), "the leader {me} is not in its own member list {members:?}");
                } else {
                    assert!(members.is_empty(), "a follower got the member list");
                }
                self.clients[i] = Client {
                    member_id: me.clone(),
                    generation: r.generation_id,
                    leader: me == leader,
                    members,
                    rejoin: false,
                    synced: -1,
                };
            }
            Some(MemberIdRequired) => self.clients[i].member_id = r.member_id.to_string(),
            Some(UnknownMemberId) => self.reset(i),
            Some(RebalanceInProgress | NotCoordinator) => {}
            Some(InconsistentGroupProtocol) if self.failed_over => {}
            Some(other) => panic!("unexpected join error {other:?}"),
        }
    }

    fn on_sync(&mut self, i: usize, generation: i32, r: SyncGroupResponse) {
        use ResponseError::*;
        match ResponseError::try_from_code(r.error_code) {
            None => {
                let expected = format!("gen{generation}");
                assert_eq!(r.assignment.as_ref(), expected.as_bytes(), "client {i} got an assignment of another generation");
                if generation == self.clients[i].generation {
                    self.clients[i].synced = generation;
                }
            }
            Some(UnknownMemberId) => self.reset(i),
            Some(IllegalGeneration | RebalanceInProgress) => self.clients[i].rejoin = true,
            Some(NotCoordinator) => {}
            Some(other) => panic!("unexpected sync error {other:?}"),
        }
    }

    fn drain_records(&mut self) {
        for (p, k, v) in self.c.take_records() {
            assert_eq!(p, self.partition);
            self.log.push((k, v));
        }
    }

    /// What must hold after every step.
    fn after_step(&mut self) {
        self.drain_records();
        for ready in self.c.take_ready() {
            let token = ready.token();
            let (client, kind) = self.outstanding.remove(&token).unwrap_or_else(|| panic!("token {token} answered twice or never parked"));
            match ready {
                Ready::Join { response, .. } => {
                    assert_eq!(kind, Kind::Join);
                    self.on_join(client, response);
                }
                Ready::Sync { response, .. } => {
                    let Kind::Sync(generation) = kind else { panic!("token {token} was a join") };
                    self.on_sync(client, generation, response);
                }
            }
        }
        self.c.assert_invariants();
        let group = self.c.snapshot().into_iter().find(|g| g.group == G);
        if group.is_none() {
            self.leaders.clear();
        }
        if let Some(g) = group {
            if g.state == "Stable" {
                self.stable_members_max = self.stable_members_max.max(g.members.len());
            }
            if matches!(g.state, "CompletingRebalance" | "Stable") {
                let leader = g.leader.clone().expect("a generation has a leader");
                assert!(g.members.contains(&leader), "leader {leader} is not a member of {:?}", g.members);
                if let Some(named) = self.leaders.get(&g.generation) {
                    assert_eq!(*named, leader, "generation {} changed leader", g.generation);
                }
            }
        }
    }

    /// Silence: time runs until nothing is left to happen.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            let Some(deadline) = self.c.next_deadline() else {
                break;
            };
            self.now_ms = self.now_ms.max(deadline);
            self.c.tick(self.now_ms);
            self.after_step();
        }
        assert_eq!(self.c.next_deadline(), None, "timers still pending after 1000 ticks");
        assert!(self.outstanding.is_empty(), "parked requests never answered: {:?}", self.outstanding);
        let state = self.c.snapshot().into_iter().find(|g| g.group == G).map(|g| g.state);
        assert!(matches!(state, None | Some("Empty")), "a silent group ends Empty, not {state:?}");
    }
}

fn op(clients: usize) -> impl Strategy<Value = Op> {
    let client = 0..clients;
    prop_oneof![
        12 => client.clone().prop_map(|client| Op::Poll { client }),
        2 => (client.clone(), 0..PROTOCOL_LISTS.len()).prop_map(|(client, protocols)| Op::Join { client, protocols }),
        2 => client.clone().prop_map(|client| Op::Sync { client }),
        2 => client.clone().prop_map(|client| Op::Heartbeat { client }),
        1 => client.clone().prop_map(|client| Op::Leave { client }),
        2 => client.clone().prop_map(|client| Op::Commit { client }),
        1 => client.prop_map(|client| Op::Stale { client }),
        5 => (0u64..3_000).prop_map(|ms| Op::Advance { ms }),
        1 => (0u64..20_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Failover),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1usize..=5).prop_flat_map(|n| (Just(n), proptest::collection::vec(op(n), 1..120)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_member_behaviour_keeps_every_group_invariant((clients, ops) in scenario()) {
        let mut h = Harness::new(clients);
        for op in &ops {
            h.apply(op);
        }
        h.settle();
    }
}

#[test]
fn a_well_behaved_fleet_reaches_stable_with_everyone() {
    let mut h = Harness::new(5);
    for i in 0..5 {
        h.apply(&Op::Join { client: i, protocols: 0 });
        h.apply(&Op::Join { client: i, protocols: 0 });
    }
    h.apply(&Op::Advance { ms: 3_000 });
    h.apply(&Op::Advance { ms: 3_000 });
    for i in (0..5).rev() {
        h.apply(&Op::Sync { client: i });
    }
    let g = h.c.snapshot().into_iter().find(|g| g.group == G).unwrap();
    assert_eq!((g.state, g.generation, g.members.len()), ("Stable", 1, 5));
    assert!(h.outstanding.is_empty());
    h.settle();
}

/// The random runs reach the interesting places (stateright's `sometimes`): without this, a
/// generator that never got past the first join would pass every property above.
#[test]
fn random_runs_sometimes_reach_every_rule() {
    let wanted = [
        "initial rebalance delay extended",
        "Stable -> PreparingRebalance",
        "CompletingRebalance -> PreparingRebalance",
        "PreparingRebalance -> Empty",
        "session timeout expired",
        "did not rejoin before the rebalance completed",
        "did not sync before the rebalance timeout",
        "expired before joining",
        "unloaded",
        "Empty -> Dead (empty without offsets)",
        "committed",
    ];
    let mut seen = vec![0usize; wanted.len()];
    let mut stable_members_max = 0;
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    for _ in 0..1_000 {
        let (clients, ops) = scenario().new_tree(&mut runner).expect("strategy").current();
        let mut h = Harness::new(clients);
        for op in &ops {
            h.apply(op);
        }
        h.settle();
        stable_members_max = stable_members_max.max(h.stable_members_max);
        for line in h.lines.borrow().iter() {
            for (i, w) in wanted.iter().enumerate() {
                seen[i] += usize::from(line.contains(w));
            }
        }
    }
    for (w, n) in wanted.iter().zip(&seen) {
        assert!(*n > 0, "no run reached \"{w}\"");
    }
    assert!(stable_members_max >= 3, "no run had a Stable group of 3+ members");
}
