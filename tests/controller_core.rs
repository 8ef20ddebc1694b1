//! Request handling of `ControllerCore`, driven through an instant-commit stand-in for Raft.

#[path = "controller_harness/mod.rs"]
mod harness;

use harness::Harness;
use stormlog::controller::{ControllerConfig, ControllerCore, ControllerError, MetadataRecord, NO_LEADER};

fn unclean_config() -> ControllerConfig {
    ControllerConfig { unclean_leader_election: true, ..ControllerConfig::default() }
}

/// Brokers 1, 2, 3 unfenced at t=0; returns their epochs.
fn three_brokers(h: &mut Harness) -> [i64; 3] {
    [h.start_broker(0, 1), h.start_broker(0, 2), h.start_broker(0, 3)]
}

#[test]
fn fencing_after_session_timeout_removes_the_broker_from_isrs_without_emptying_them_and_moves_leadership() {
    let mut h = Harness::new(ControllerConfig::default());
    let [_, e2, e3] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2, 3], vec![2, 1, 3]]);
    h.create_topic("solo", vec![vec![1]]);
    h.heartbeat(5000, 2, e2);
    h.heartbeat(5000, 3, e3);
    assert!(h.tick(9000).is_empty(), "a session lasts session_timeout_ms inclusive");
    let records = h.tick(9001);
    assert_eq!(records.last(), Some(&MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: h.broker_epoch(1) }));
    assert!(h.core.image().broker(1).unwrap().fenced);

    let led = h.partition("a", 0);
    assert_eq!((led.leader, led.isr.clone(), led.leader_epoch, led.partition_epoch), (2, vec![2, 3], 1, 1));
    let followed = h.partition("a", 1);
    assert_eq!((followed.leader, followed.isr.clone(), followed.leader_epoch), (2, vec![2, 3], 0));
    let solo = h.partition("solo", 0);
    assert_eq!((solo.leader, solo.isr.clone(), solo.leader_epoch), (NO_LEADER, vec![1], 1));
    assert!(h.tick(9001).is_empty(), "brokers 2 and 3 are still in session");
}

#[test]
fn only_the_longest_silent_broker_is_fenced_per_tick() {
    let mut h = Harness::new(ControllerConfig::default());
    let [_, e2, _] = three_brokers(&mut h);
    h.heartbeat(100, 2, e2);
    let first = h.tick(20_000);
    assert!(matches!(first.last(), Some(MetadataRecord::FenceBroker { broker_id: 1, .. })), "{first:?}");
    let second = h.tick(20_000);
    assert!(matches!(second.last(), Some(MetadataRecord::FenceBroker { broker_id: 3, .. })), "{second:?}");
    let third = h.tick(20_000);
    assert!(matches!(third.last(), Some(MetadataRecord::FenceBroker { broker_id: 2, .. })), "{third:?}");
    assert!(h.tick(20_000).is_empty());
}

#[test]
fn a_fenced_broker_that_catches_up_is_unfenced_and_leads_its_leaderless_partitions() {
    let mut h = Harness::new(ControllerConfig::default());
    let e1 = h.start_broker(0, 1);
    h.create_topic("solo", vec![vec![1]]);
    h.tick(9001);
    assert_eq!(h.partition("solo", 0).leader, NO_LEADER);

    let (records, reply) = h.core.handle_broker_heartbeat(9500, 1, e1, false, false).unwrap();
    assert!(records.is_empty() && reply.is_fenced, "not caught up: stays fenced");
    let (records, reply) = h.core.handle_broker_heartbeat(9600, 1, e1, true, false).unwrap();
    assert!(!reply.is_fenced && !reply.should_shut_down);
    assert_eq!(records[0], MetadataRecord::UnfenceBroker { broker_id: 1, broker_epoch: e1 });
    h.commit(records);
    let solo = h.partition("solo", 0);
    assert_eq!((solo.leader, solo.isr, solo.leader_epoch), (1, vec![1], 2));
}

#[test]
fn a_broker_that_asks_to_be_fenced_leaves_isrs_and_leadership() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2]]);
    let (records, reply) = h.core.handle_broker_heartbeat(10, 1, e1, true, true).unwrap();
    assert!(reply.is_fenced);
    h.commit(records);
    let p = h.partition("a", 0);
    assert_eq!((p.leader, p.isr), (2, vec![2]));
}

#[test]
fn unclean_election_after_fencing_picks_the_first_live_replica_and_resets_the_isr() {
    let mut h = Harness::new(unclean_config());
    let [e1, e2, e3] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 3, 2]]);
    let shrink = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1]).unwrap();
    h.commit(shrink);
    h.heartbeat(5000, 2, e2);
    h.heartbeat(5000, 3, e3);
    h.tick(9001);
    let p = h.partition("a", 0);
    assert_eq!((p.leader, p.isr.clone(), p.last_unclean, p.leader_epoch), (3, vec![3], true, 1));
}

#[test]
fn without_unclean_election_a_partition_whose_isr_is_dead_goes_offline() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, e2, e3] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 3, 2]]);
    let shrink = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1]).unwrap();
    h.commit(shrink);
    h.heartbeat(5000, 2, e2);
    h.heartbeat(5000, 3, e3);
    h.tick(9001);
    let p = h.partition("a", 0);
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![1]));
}

#[test]
fn registration_of_a_new_incarnation_fences_the_old_one_first() {
    let mut h = Harness::new(ControllerConfig::default());
    let [old_epoch, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2]]);
    let next_offset = h.next_offset();
    let (records, new_epoch) = h.core.handle_broker_registration(50, 1, 2, "host", 9092, next_offset).unwrap();
    assert!(matches!(records[0], MetadataRecord::PartitionChange { leader: Some(2), .. }), "{records:?}");
    assert_eq!(records[1], MetadataRecord::FenceBroker { broker_id: 1, broker_epoch: old_epoch });
    assert!(matches!(records[2], MetadataRecord::RegisterBroker { incarnation: 2, .. }));
    h.commit(records);
    assert_eq!(new_epoch, h.next_offset() - 1, "the broker epoch is the offset of RegisterBroker");
    let registration = h.core.image().broker(1).unwrap().clone();
    assert_eq!((registration.broker_epoch, registration.fenced), (new_epoch, true));
    let p = h.partition("a", 0);
    assert_eq!((p.leader, p.isr), (2, vec![2]));

    let stale = h.core.handle_broker_heartbeat(60, 1, old_epoch, true, false);
    assert_eq!(stale.unwrap_err(), ControllerError::StaleBrokerEpoch);
    let next_offset = h.next_offset();
    let retry = h.core.handle_broker_registration(70, 1, 2, "host", 9092, next_offset).unwrap();
    assert_eq!(retry, (vec![], new_epoch), "a retry of the same incarnation proposes nothing");
}

#[test]
fn alter_partition_shrinks_and_expands_the_isr_and_bumps_only_the_partition_epoch() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2, 3]]);
    let shrink = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 3]).unwrap();
    h.commit(shrink);
    let shrink_records = h.log.len();
    let expand = h.core.handle_alter_partition(1, e1, "a", 0, 0, 1, vec![1, 3, 2]).unwrap();
    h.commit(expand);
    assert_eq!(h.log.len(), shrink_records + 1);
    let p = h.partition("a", 0);
    assert_eq!((p.isr, p.leader, p.leader_epoch, p.partition_epoch), (vec![1, 3, 2], 1, 0, 2));
    let unchanged = h.core.handle_alter_partition(1, e1, "a", 0, 0, 2, vec![1, 3, 2]).unwrap();
    assert!(unchanged.is_empty(), "an unchanged ISR proposes nothing");
}

/// One AlterPartition request, so each rejection below reads as a one-field change.
#[derive(Debug, Clone)]
struct Alter {
    broker: i32,
    broker_epoch: i64,
    topic: &'static str,
    partition: u32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
}

impl Alter {
    fn with(&self, change: impl FnOnce(&mut Alter)) -> Alter {
        let mut changed = self.clone();
        change(&mut changed);
        changed
    }

    fn send(self, h: &mut Harness) -> Result<Vec<MetadataRecord>, ControllerError> {
        let Alter { broker, broker_epoch, topic, partition, leader_epoch, partition_epoch, isr } = self;
        h.core.handle_alter_partition(broker, broker_epoch, topic, partition, leader_epoch, partition_epoch, isr)
    }
}

#[test]
fn alter_partition_rejects_each_invalid_request_with_kafkas_error() {
    use ControllerError::*;
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, e2, _] = three_brokers(&mut h);
    h.register(0, 4, 1); // registered, still fenced
    h.create_topic("a", vec![vec![1, 2, 3], vec![1, 2, 4]]);
    let valid = Alter {
        broker: 1,
        broker_epoch: e1,
        topic: "a",
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![1, 2],
    };
    let shrunk = valid.with(|a| a.partition = 1);
    let shrink = shrunk.clone().send(&mut h).unwrap();
    h.commit(shrink); // a/1: isr [1, 2], partition epoch 1
    let cases = [
        ("stale broker epoch", valid.with(|a| a.broker_epoch -= 1), StaleBrokerEpoch),
        ("unknown broker", valid.with(|a| a.broker = 9), StaleBrokerEpoch),
        ("unknown topic", valid.with(|a| a.topic = "b"), UnknownTopicOrPartition),
        ("unknown partition", valid.with(|a| a.partition = 7), UnknownTopicOrPartition),
        ("future leader epoch", valid.with(|a| a.leader_epoch = 1), NotController),
        ("future partition epoch", valid.with(|a| a.partition_epoch = 1), NotController),
        ("not the leader", valid.with(|a| (a.broker, a.broker_epoch) = (2, e2)), FencedLeaderEpoch),
        ("old partition epoch", shrunk.with(|a| a.isr = vec![1]), InvalidUpdateVersion),
        ("isr without the leader", valid.with(|a| a.isr = vec![2, 3]), IneligibleReplica),
        ("isr beyond the replicas", valid.with(|a| a.isr = vec![1, 5]), IneligibleReplica),
        ("duplicate isr member", valid.with(|a| a.isr = vec![1, 1]), IneligibleReplica),
        ("empty isr", valid.with(|a| a.isr = vec![]), IneligibleReplica),
        ("adds a fenced replica", shrunk.with(|a| (a.partition_epoch, a.isr) = (1, vec![1, 2, 4])), IneligibleReplica),
    ];
    for (what, request, expected) in cases {
        assert_eq!(request.send(&mut h), Err(expected), "{what}");
    }
    // An old leader epoch: broker 1 asks to be fenced, leadership of a/0 moves to 2 (epoch 1).
    let (fence_self, _) = h.core.handle_broker_heartbeat(1, 1, e1, true, true).unwrap();
    h.commit(fence_self);
    let p = h.partition("a", 0);
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
    let old_epoch =
        valid.with(|a| (a.broker, a.broker_epoch, a.partition_epoch, a.isr) = (2, e2, p.partition_epoch, vec![2]));
    assert_eq!(old_epoch.send(&mut h), Err(FencedLeaderEpoch));
}

#[test]
fn a_standby_answers_not_controller() {
    let mut core = ControllerCore::new(ControllerConfig::default());
    assert_eq!(core.handle_create_topic("a", vec![vec![1]]), Err(ControllerError::NotController));
    assert_eq!(core.handle_broker_heartbeat(0, 1, 0, true, false).unwrap_err(), ControllerError::NotController);
    assert!(core.tick(1_000_000).is_empty());
    core.on_become_leader(0);
    core.on_resign();
    assert_eq!(core.handle_alter_partition(1, 0, "a", 0, 0, 0, vec![1]), Err(ControllerError::NotController));
}

#[test]
fn create_topic_rejects_duplicates_and_bad_assignments() {
    let mut h = Harness::new(ControllerConfig::default());
    three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2]]);
    let bad = |h: &mut Harness, name: &str, assignment: Vec<Vec<i32>>| h.core.handle_create_topic(name, assignment);
    assert_eq!(bad(&mut h, "a", vec![vec![1]]), Err(ControllerError::TopicAlreadyExists));
    assert_eq!(bad(&mut h, "b", vec![]), Err(ControllerError::InvalidReplicationFactor));
    assert_eq!(bad(&mut h, "b", vec![vec![]]), Err(ControllerError::InvalidReplicationFactor));
    assert_eq!(bad(&mut h, "b", vec![vec![1, 2], vec![1]]), Err(ControllerError::InvalidReplicationFactor));
    assert_eq!(bad(&mut h, "b", vec![vec![1, 1]]), Err(ControllerError::InvalidReplicationFactor));
    assert_eq!(bad(&mut h, "b", vec![vec![-1]]), Err(ControllerError::InvalidReplicationFactor));
}

#[test]
fn a_topic_created_before_its_brokers_starts_offline_and_gets_a_leader_when_one_is_unfenced() {
    let mut h = Harness::new(ControllerConfig::default());
    h.create_topic("early", vec![vec![2, 1]]);
    let p = h.partition("early", 0);
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![2, 1]));
    h.start_broker(10, 1);
    let p = h.partition("early", 0);
    assert_eq!((p.leader, p.leader_epoch), (1, 1));
}

#[test]
fn error_codes_are_kafkas() {
    let codes = [
        (ControllerError::UnknownTopicOrPartition, 3),
        (ControllerError::TopicAlreadyExists, 36),
        (ControllerError::InvalidReplicationFactor, 38),
        (ControllerError::NotController, 41),
        (ControllerError::FencedLeaderEpoch, 74),
        (ControllerError::StaleBrokerEpoch, 77),
        (ControllerError::InvalidUpdateVersion, 95),
        (ControllerError::IneligibleReplica, 107),
    ];
    for (error, code) in codes {
        assert_eq!(error.code(), code, "{error}");
    }
}

#[test]
fn a_new_active_controller_restarts_every_session_instead_of_fencing_everyone() {
    let mut h = Harness::new(ControllerConfig::default());
    three_brokers(&mut h);
    let mut standby = ControllerCore::new(ControllerConfig::default());
    for (offset, record) in h.log.iter().enumerate() {
        standby.replay(offset as i64, record);
    }
    assert_eq!(standby.image(), h.core.image());
    standby.on_become_leader(60_000);
    assert!(standby.tick(60_000 + 9000).is_empty());
    assert_eq!(standby.poll_timeout_ms(), Some(60_000 + 9001));
    let fenced = standby.tick(60_000 + 9001);
    assert!(matches!(fenced.last(), Some(MetadataRecord::FenceBroker { broker_id: 1, .. })), "{fenced:?}");
}

#[test]
fn requests_are_handled_one_proposal_at_a_time_so_a_second_update_from_the_same_epoch_is_rejected() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2, 3]]);
    let first = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 2]).unwrap();
    assert_eq!(h.core.in_flight_record_count(), 1);
    assert!(h.core.tick(1_000_000).is_empty(), "tick waits for the proposal in flight");
    h.commit(first);
    let second = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 3]);
    assert_eq!(second, Err(ControllerError::InvalidUpdateVersion));
    assert_eq!(h.partition("a", 0).isr, vec![1, 2]);
}

#[test]
#[should_panic(expected = "before the previous proposal was replayed")]
fn handling_a_request_before_replaying_the_last_proposal_is_a_shell_bug() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2, 3]]);
    let _unreplayed = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 2]).unwrap();
    let _ = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 3]);
}

#[test]
fn a_lost_proposal_is_dropped_when_different_records_are_replayed() {
    let mut h = Harness::new(ControllerConfig::default());
    let [e1, _, _] = three_brokers(&mut h);
    h.create_topic("a", vec![vec![1, 2, 3]]);
    let _lost = h.core.handle_alter_partition(1, e1, "a", 0, 0, 0, vec![1, 2]).unwrap();
    let winner = MetadataRecord::Topic { name: "z".into(), partitions: 1 };
    h.core.replay(h.next_offset(), &winner);
    assert_eq!(h.core.in_flight_record_count(), 0);
}
