//! Unit tests of `RaftNode`, one rule each, driven by hand without the cluster harness.

use std::rc::Rc;

use super::*;
use crate::seam::{Entropy, MemStorage, Storage};

fn open(id: NodeId, voters: &[NodeId], disk: &MemStorage, now_ms: u64) -> RaftNode {
    let config = RaftConfig::new(id, voters.to_vec());
    RaftNode::open(
        config,
        Rc::new(disk.clone()),
        Entropy::from_seed(id as u64),
        now_ms,
    )
    .unwrap()
}

fn three_nodes() -> (Vec<RaftNode>, Vec<MemStorage>) {
    let disks: Vec<MemStorage> = (0..3).map(|_| MemStorage::new()).collect();
    let nodes = (0..3)
        .map(|i| open(i as NodeId + 1, &[1, 2, 3], &disks[i], 0))
        .collect();
    (nodes, disks)
}

/// Delivers every queued message (and the replies they cause) until the nodes go quiet.
fn pump(nodes: &mut [RaftNode], now_ms: u64) {
    for _ in 0..1000 {
        let mut in_flight = Vec::new();
        for node in nodes.iter_mut() {
            let from = node.config.id;
            in_flight.extend(
                node.poll_outbound()
                    .into_iter()
                    .map(|(to, m)| (from, to, m)),
            );
        }
        if in_flight.is_empty() {
            return;
        }
        for (from, to, msg) in in_flight {
            if let Some(node) = nodes.iter_mut().find(|n| n.config.id == to) {
                node.handle_message(now_ms, from, msg);
            }
        }
    }
    panic!("messages never stopped");
}

/// Node 1 of three stands and wins epoch 1; returns the nodes, their disks and the time.
fn elect_node_1() -> (Vec<RaftNode>, Vec<MemStorage>, u64) {
    let (mut nodes, disks) = three_nodes();
    let at = nodes[0].poll_timeout();
    nodes[0].tick(at);
    pump(&mut nodes, at);
    assert_eq!(nodes[0].role(), Role::Leader { epoch: 1 });
    (nodes, disks, at)
}

fn vote_request(epoch: i32, candidate: NodeId, last: (i32, i64)) -> Message {
    Message::VoteRequest {
        candidate_epoch: epoch,
        candidate_id: candidate,
        last_offset_epoch: last.0,
        last_offset: last.1,
    }
}

fn granted(node: &mut RaftNode) -> Vec<bool> {
    let out = node.poll_outbound();
    out.into_iter()
        .filter_map(|(_, m)| match m {
            Message::VoteResponse { vote_granted, .. } => Some(vote_granted),
            _ => None,
        })
        .collect()
}

#[test]
fn a_single_voter_leads_at_once_and_commits_alone() {
    let disk = MemStorage::new();
    let mut node = open(1, &[1], &disk, 0);
    assert_eq!(node.role(), Role::Leader { epoch: 1 });
    assert_eq!(node.propose(0, b"a".to_vec()), Ok(1));
    let committed = node.poll_committed();
    assert_eq!(
        committed.len(),
        2,
        "the leader-change entry, then the proposal"
    );
    assert_eq!(committed[1].payload, b"a");
    drop(node);
    let mut again = open(1, &[1], &disk, 10);
    assert_eq!(
        again.role(),
        Role::Leader { epoch: 2 },
        "a restart leads a fresh epoch"
    );
    assert_eq!(
        again.poll_committed().len(),
        3,
        "committed entries are replayed from the start"
    );
}

#[test]
fn a_vote_is_granted_once_per_epoch() {
    let (mut nodes, _) = three_nodes();
    nodes[2].handle_message(0, 1, vote_request(1, 1, (0, 0)));
    assert_eq!(granted(&mut nodes[2]), vec![true]);
    assert_eq!(
        nodes[2].role(),
        Role::Voted {
            epoch: 1,
            candidate: 1
        }
    );
    nodes[2].handle_message(0, 2, vote_request(1, 2, (0, 0)));
    assert_eq!(
        granted(&mut nodes[2]),
        vec![false],
        "already voted in epoch 1"
    );
    nodes[2].handle_message(0, 1, vote_request(1, 1, (0, 0)));
    assert_eq!(
        granted(&mut nodes[2]),
        vec![true],
        "a retried request gets the same answer"
    );
}

#[test]
fn a_vote_is_refused_to_a_candidate_whose_log_is_behind() {
    let (mut nodes, _) = three_nodes();
    let entries = [
        Entry {
            epoch: 2,
            offset: 0,
            payload: vec![],
        },
        Entry {
            epoch: 2,
            offset: 1,
            payload: vec![],
        },
    ];
    nodes[2].log.append(&entries).unwrap();
    nodes[2].handle_message(0, 1, vote_request(3, 1, (1, 5)));
    assert_eq!(
        granted(&mut nodes[2]),
        vec![false],
        "older last epoch loses even with more entries"
    );
    nodes[2].handle_message(0, 1, vote_request(4, 1, (2, 1)));
    assert_eq!(
        granted(&mut nodes[2]),
        vec![false],
        "same last epoch, shorter log"
    );
    nodes[2].handle_message(0, 1, vote_request(5, 1, (2, 2)));
    assert_eq!(
        granted(&mut nodes[2]),
        vec![true],
        "an equal log is up to date"
    );
    assert_eq!(
        nodes[2].epoch(),
        5,
        "refused candidates still move the epoch"
    );
}

#[test]
fn a_restarted_node_never_votes_twice_in_an_epoch() {
    let (mut nodes, disks) = three_nodes();
    nodes[2].handle_message(0, 1, vote_request(4, 1, (0, 0)));
    assert_eq!(granted(&mut nodes[2]), vec![true]);
    disks[2].crash(Some(7));
    let mut restarted = open(3, &[1, 2, 3], &disks[2], 100);
    assert_eq!(
        restarted.role(),
        Role::Voted {
            epoch: 4,
            candidate: 1
        }
    );
    restarted.handle_message(100, 2, vote_request(4, 2, (0, 0)));
    assert_eq!(granted(&mut restarted), vec![false]);
}

#[test]
fn a_candidate_with_a_majority_leads_and_announces_itself() {
    let (nodes, _, _) = elect_node_1();
    assert_eq!(nodes[0].log_end_offset(), 1, "the leader-change entry");
    for follower in &nodes[1..] {
        assert_eq!(
            follower.role(),
            Role::Follower {
                epoch: 1,
                leader: 1
            }
        );
        assert_eq!(
            follower.log_end_offset(),
            1,
            "followers fetched the leader-change entry"
        );
    }
}

#[test]
fn a_higher_epoch_in_any_message_moves_the_node_forward() {
    let (mut nodes, _, _) = elect_node_1();
    let begin = Message::BeginQuorumEpochRequest {
        leader_epoch: 7,
        leader_id: 3,
    };
    nodes[0].handle_message(10, 3, begin);
    assert_eq!(
        nodes[0].role(),
        Role::Follower {
            epoch: 7,
            leader: 3
        },
        "the old leader follows"
    );
    let response = Message::VoteResponse {
        error: None,
        leader_epoch: 9,
        leader_id: None,
        vote_granted: false,
    };
    nodes[1].handle_message(10, 3, response);
    assert_eq!((nodes[1].role(), nodes[1].epoch()), (Role::Unattached, 9));
}

#[test]
fn fetches_from_another_epoch_are_fenced_or_unknown() {
    let (mut nodes, _, _) = elect_node_1();
    let errors: Vec<Option<RaftError>> = [0, 2, 1]
        .into_iter()
        .map(|epoch| {
            let fetch = Message::FetchRequest {
                replica_id: 2,
                current_leader_epoch: epoch,
                fetch_offset: 0,
                last_fetched_epoch: 0,
            };
            nodes[0].handle_message(10, 2, fetch);
            match nodes[0].poll_outbound().pop() {
                Some((2, Message::FetchResponse { error, .. })) => error,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            Some(RaftError::FencedLeaderEpoch),
            Some(RaftError::UnknownLeaderEpoch),
            None
        ]
    );
    let fetch = Message::FetchRequest {
        replica_id: 1,
        current_leader_epoch: 1,
        fetch_offset: 0,
        last_fetched_epoch: 0,
    };
    nodes[1].handle_message(10, 1, fetch);
    assert!(matches!(
        nodes[1].poll_outbound().pop(),
        Some((
            1,
            Message::FetchResponse {
                error: Some(RaftError::NotLeader),
                leader_id: Some(1),
                ..
            }
        ))
    ));
}

#[test]
fn a_diverging_follower_truncates_to_the_leader_and_catches_up() {
    let (mut nodes, _) = three_nodes();
    let stale: Vec<Entry> = (0..4)
        .map(|o| Entry {
            epoch: 1,
            offset: o,
            payload: vec![9],
        })
        .collect();
    nodes[2].log.append(&stale).unwrap();
    nodes[2].quorum.epoch = 1;
    nodes[0].log.append(&stale[..2]).unwrap();
    nodes[0].quorum.epoch = 1;
    // Node 1 (shorter log, epoch 1) wins epoch 2 with node 2's vote; node 3 had extra entries.
    let at = nodes[0].poll_timeout();
    nodes[0].tick(at);
    pump(&mut nodes[..2], at);
    assert_eq!(nodes[0].role(), Role::Leader { epoch: 2 });
    let begin = Message::BeginQuorumEpochRequest {
        leader_epoch: 2,
        leader_id: 1,
    };
    nodes[2].handle_message(at, 1, begin);
    pump(&mut nodes, at);
    let leader_log: Vec<Entry> = (0..3).map(|o| nodes[0].entry(o).unwrap().clone()).collect();
    let follower_log: Vec<Entry> = (0..3).map(|o| nodes[2].entry(o).unwrap().clone()).collect();
    assert_eq!(follower_log, leader_log);
    assert_eq!(
        nodes[2].log_end_offset(),
        3,
        "stale entries 2 and 3 of epoch 1 are gone"
    );
    assert_eq!(nodes[2].high_watermark(), 3);
}

#[test]
fn the_leader_commits_only_what_a_majority_fetched() {
    let (mut nodes, _, at) = elect_node_1();
    assert_eq!(nodes[0].high_watermark(), 1);
    nodes[0].propose(at, b"x".to_vec()).unwrap();
    assert_eq!(nodes[0].high_watermark(), 1, "only the leader has offset 1");
    let next = at + node::FETCH_IDLE_WAIT_MS;
    nodes[1].tick(next);
    pump(&mut nodes[..2], next);
    assert_eq!(
        nodes[0].high_watermark(),
        2,
        "leader and node 2 are a majority"
    );
    assert_eq!(
        nodes[1].high_watermark(),
        2,
        "after entries a follower fetches again at once"
    );
    assert_eq!(
        (nodes[2].log_end_offset(), nodes[2].high_watermark()),
        (1, 1),
        "node 3 has not fetched"
    );
    nodes[2].tick(next);
    pump(&mut nodes, next);
    assert_eq!(nodes[2].high_watermark(), 2);
}

#[test]
fn a_follower_high_watermark_never_exceeds_its_own_log_end() {
    let (mut nodes, _, _) = elect_node_1();
    for i in 0..200 {
        nodes[0].propose(5, vec![i as u8]).unwrap();
    }
    // Node 2 reports having everything, so the leader commits all; node 3 fetches in batches.
    let fetch = Message::FetchRequest {
        replica_id: 2,
        current_leader_epoch: 1,
        fetch_offset: 201,
        last_fetched_epoch: 1,
    };
    nodes.remove(1);
    nodes[0].handle_message(6, 2, fetch);
    nodes[0].poll_outbound();
    assert_eq!(nodes[0].high_watermark(), 201);
    nodes[1].tick(60);
    pump(&mut nodes, 60);
    let lagging = &nodes[1];
    assert!(lagging.log_end_offset() < 201);
    assert!(lagging.high_watermark() <= lagging.log_end_offset());
    assert_eq!(
        lagging.high_watermark(),
        lagging.log_end_offset(),
        "it commits what it has"
    );
}

#[test]
fn a_leader_fetched_by_no_majority_within_the_fetch_timeout_resigns() {
    let (mut nodes, _, at) = elect_node_1();
    nodes[0].tick(at + 1999);
    assert_eq!(nodes[0].role(), Role::Leader { epoch: 1 });
    nodes[0].tick(at + 2000);
    assert_eq!(nodes[0].role(), Role::Resigned { epoch: 1 });
    assert_eq!(
        nodes[0].propose(at + 2000, vec![1]),
        Err(RaftError::NotLeader)
    );
}

#[test]
fn a_resigning_leader_makes_its_preferred_successor_stand_at_once() {
    let (mut nodes, _, at) = elect_node_1();
    let now = at + 10;
    nodes[0].resign(now);
    let out = nodes[0].poll_outbound();
    assert_eq!(out.len(), 2, "EndQuorumEpoch to both others: {out:?}");
    let Some((to, end @ Message::EndQuorumEpochRequest { .. })) = out.into_iter().next() else {
        panic!()
    };
    let Message::EndQuorumEpochRequest {
        preferred_successors,
        ..
    } = &end
    else {
        unreachable!()
    };
    assert_eq!(
        preferred_successors[0], to,
        "messages go out in preference order"
    );
    let follower = &mut nodes[to as usize - 1];
    follower.handle_message(now, 1, end);
    assert_eq!(follower.poll_timeout(), now);
    follower.tick(now);
    assert_eq!(follower.role(), Role::Candidate { epoch: 2 });
}

#[test]
fn a_torn_log_tail_is_cut_when_the_node_reopens() {
    let disk = MemStorage::new();
    let mut node = open(1, &[1], &disk, 0);
    node.propose(0, vec![7; 100]).unwrap();
    drop(node);
    disk.append("__cluster_metadata-0/raft.log", &[0, 0, 0, 40, 1, 2])
        .unwrap();
    let node = open(1, &[1], &disk, 1);
    assert_eq!(
        node.log_end_offset(),
        3,
        "two whole entries plus the new leader-change entry"
    );
}
