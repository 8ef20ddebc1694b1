//! Every API version the broker advertises is answered, and answered in a form a client of that
//! version can decode (DESIGN.md §7). Requests go through the same decode -> handle -> encode
//! path as real TCP, with a one-broker cluster on in-memory storage.

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId as WireBrokerId, FetchRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestKind, ResponseKind, SyncGroupRequest, TopicName,
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use stormlog::broker::{BrokerAddress, BrokerConfig, BrokerCore, ClusterMetadata, Handled, PartitionAssignment, OFFSETS_TOPIC};
use stormlog::ids::BrokerId;
use stormlog::log::build_test_batch;
use stormlog::observe::Tracer;
use stormlog::protocol::{decode_response, encode_request, SUPPORTED_APIS};
use stormlog::seam::MemStorage;

/// One broker leading topic `t` (one partition, RF 1) at leader epoch 0.
fn one_broker() -> BrokerCore {
    let mut brokers = BTreeMap::new();
    brokers.insert(BrokerId(0), BrokerAddress { host: "localhost".into(), port: 9092 });
    let mut topics = BTreeMap::new();
    let me = vec![BrokerId(0)];
    let led = PartitionAssignment { replicas: me.clone(), isr: me, leader: Some(BrokerId(0)), leader_epoch: 0, partition_epoch: 0 };
    topics.insert("t".to_string(), vec![led.clone()]);
    topics.insert(OFFSETS_TOPIC.to_string(), vec![led]);
    let metadata = ClusterMetadata { cluster_id: "c".into(), brokers, topics };
    let mut config = BrokerConfig::default();
    config.group.offsets_partitions = 1;
    let mut broker = BrokerCore::open(BrokerId(0), config, Rc::new(MemStorage::new()), Tracer::off(), 1);
    broker.apply_metadata(0, metadata).unwrap();
    broker.set_broker_epoch(7);
    broker
}

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str("g"))
}

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

fn request(key: ApiKey, version: i16) -> RequestKind {
    match key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default().with_name(name()).with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(build_test_batch(0, &[b"v"]))))]),
        ])),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default().with_replica_id(WireBrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default().with_topic(name()).with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20)]),
        ])),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_replica_id(WireBrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(name()).with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2)]),
        ])),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_replica_id(WireBrokerId(-1)).with_topics(vec![
            OffsetForLeaderTopic::default().with_topic(name()).with_partitions(vec![OffsetForLeaderPartition::default().with_partition(0).with_current_leader_epoch(-1).with_leader_epoch(0)]),
        ])),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000).with_producer_id((-1).into()).with_producer_epoch(-1)),
        // v4 batches the keys.
        ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g")])),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"))),
        // A first join without a member id is answered at once with MEMBER_ID_REQUIRED (KIP-394).
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default().with_group_id(group()).with_member_id(StrBytes::from_static_str("nobody"))),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(group()).with_member_id(StrBytes::from_static_str("nobody"))),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default().with_group_id(group()).with_members(vec![MemberIdentity::default().with_member_id(StrBytes::from_static_str("nobody"))]),
        ),
        // generation -1 from no member: a standalone consumer's commit, accepted for an empty group.
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default().with_group_id(group()).with_generation_id_or_member_epoch(-1).with_topics(vec![
            OffsetCommitRequestTopic::default().with_name(name()).with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5)]),
        ])),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default().with_group_id(group()).with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(name()).with_partition_indexes(vec![0])])),
        ),
        ApiKey::AddPartitionsToTxn if version >= 4 => RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id())
            .with_producer_id(ProducerId(1))
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(name()).with_partitions(vec![0])])])),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id())
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default().with_name(name()).with_partitions(vec![0])]),
        ),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default().with_transactional_id(txn_id()).with_producer_id(ProducerId(1)).with_group_id(group())),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default().with_transactional_id(txn_id()).with_producer_id(ProducerId(1)).with_committed(true)),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(1))
            .with_transaction_result(true)
            .with_topics(vec![WritableTxnMarkerTopic::default().with_name(name()).with_partition_indexes(vec![0])])])),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id())
                .with_group_id(group())
                .with_producer_id(ProducerId(1))
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(name()).with_partitions(vec![TxnOffsetCommitRequestPartition::default().with_committed_offset(0)])]),
        ),
        other => panic!("no test request for {other:?}"),
    }
}

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str("t"))
}

#[test]
fn every_advertised_version_is_answered_and_decodable() {
    for (key, lo, hi) in SUPPORTED_APIS {
        for version in *lo..=*hi {
            let mut broker = one_broker();
            let frame = encode_request(*key, version, 42, "test", &request(*key, version)).unwrap();
            let answer = match broker.handle_frame(0, frame.slice(4..)) {
                Handled::Reply(b) => b,
                other => panic!("{key:?} v{version}: {other:?}"),
            };
            let (corr, resp) = decode_response(*key, version, answer.slice(4..)).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
            assert_eq!(corr, 42, "{key:?} v{version}");
            check_body(*key, version, &resp);
        }
    }
}

fn check_body(key: ApiKey, version: i16, resp: &ResponseKind) {
    match resp {
        ResponseKind::ApiVersions(r) => assert_eq!((r.error_code, r.api_keys.len()), (0, SUPPORTED_APIS.len()), "v{version}"),
        ResponseKind::Metadata(r) => {
            assert_eq!(r.topics.len(), 2, "v{version}");
            let internal: Vec<bool> = r.topics.iter().map(|t| t.is_internal).collect();
            assert_eq!(internal, vec![true, false], "v{version}: only {OFFSETS_TOPIC} is internal");
        }
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, 0), "v{version}");
        }
        ResponseKind::Fetch(r) => assert_eq!(r.responses[0].partitions[0].error_code, 0, "v{version}"),
        ResponseKind::ListOffsets(r) => assert_eq!(r.topics[0].partitions[0].offset, 0, "v{version}"),
        // Epoch 0 began at offset 0 and is the current one: it ends at the log end (0).
        ResponseKind::OffsetForLeaderEpoch(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 0), "v{version}");
        }
        // Producer ids come from the broker epoch (7): the first one of each fresh broker.
        ResponseKind::InitProducerId(r) => assert_eq!((r.error_code, r.producer_id.0, r.producer_epoch), (0, 7 << 16, 0), "v{version}"),
        ResponseKind::FindCoordinator(r) if version >= 4 => assert_eq!((r.coordinators[0].error_code, r.coordinators[0].node_id.0), (0, 0), "v{version}"),
        ResponseKind::FindCoordinator(r) => assert_eq!((r.error_code, r.node_id.0, r.port), (0, 0, 9092), "v{version}"),
        ResponseKind::JoinGroup(r) => {
            assert_eq!(r.error_code, ResponseError::MemberIdRequired.code(), "v{version}");
            assert!(!r.member_id.is_empty(), "v{version}");
        }
        ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, ResponseError::UnknownMemberId.code(), "v{version}"),
        ResponseKind::Heartbeat(r) => assert_eq!(r.error_code, ResponseError::UnknownMemberId.code(), "v{version}"),
        ResponseKind::LeaveGroup(r) => assert_eq!(r.members[0].error_code, ResponseError::UnknownMemberId.code(), "v{version}"),
        ResponseKind::OffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{version}"),
        // Nothing committed yet: -1.
        ResponseKind::OffsetFetch(r) => assert_eq!((r.error_code, r.topics[0].partitions[0].committed_offset), (0, -1), "v{version}"),
        // This broker leads no __transaction_state partition: it coordinates no transaction.
        ResponseKind::AddPartitionsToTxn(r) if version >= 4 => {
            assert_eq!(r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code, not_coordinator(), "v{version}")
        }
        ResponseKind::AddPartitionsToTxn(r) => assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, not_coordinator(), "v{version}"),
        ResponseKind::AddOffsetsToTxn(r) => assert_eq!(r.error_code, not_coordinator(), "v{version}"),
        ResponseKind::EndTxn(r) => assert_eq!(r.error_code, not_coordinator(), "v{version}"),
        // It leads orders/0 (RF 1): the marker is written and at once replicated.
        ResponseKind::WriteTxnMarkers(r) => assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0, "v{version}"),
        // It coordinates the group: the offsets wait, pending, for the transaction's marker.
        ResponseKind::TxnOffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{version}"),
        other => panic!("{key:?}: unexpected {other:?}"),
    }
}

fn not_coordinator() -> i16 {
    ResponseError::NotCoordinator.code()
}

/// A commit is visible to OffsetFetch once its record is replicated (here at once: RF 1).
#[test]
fn a_committed_offset_is_fetched_back() {
    let mut broker = one_broker();
    let mut answers = Vec::new();
    for key in [ApiKey::OffsetCommit, ApiKey::OffsetFetch] {
        let frame = encode_request(key, 7, 1, "test", &request(key, 7)).unwrap();
        let Handled::Reply(answer) = broker.handle_frame(0, frame.slice(4..)) else { panic!("{key:?} not answered") };
        answers.push(decode_response(key, 7, answer.slice(4..)).unwrap().1);
    }
    let [ResponseKind::OffsetCommit(commit), ResponseKind::OffsetFetch(fetch)] = answers.as_slice() else { panic!("{answers:?}") };
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch.topics[0].partitions[0].committed_offset, 5);
}

#[test]
fn an_unsupported_api_version_request_gets_the_error_and_our_versions() {
    let mut broker = one_broker();
    let frame = encode_request(ApiKey::ApiVersions, 3, 9, "test", &request(ApiKey::ApiVersions, 3)).unwrap();
    let mut raw = frame.slice(4..).to_vec();
    raw[2..4].copy_from_slice(&99i16.to_be_bytes());
    let Handled::Reply(answer) = broker.handle_frame(0, Bytes::from(raw)) else { panic!("no reply") };
    let (corr, resp) = decode_response(ApiKey::ApiVersions, 0, answer.slice(4..)).unwrap();
    let ResponseKind::ApiVersions(r) = resp else { panic!() };
    assert_eq!((corr, r.error_code), (9, 35));
    assert!(!r.api_keys.is_empty());
}

#[test]
fn garbage_and_unserved_requests_close_the_connection() {
    let mut broker = one_broker();
    for junk in [&b"\x00\x01"[..], b"\x00\x00\x00\x03\x00\x00\x00\x01\xff\xff\xff", b"\x00\x20\x00\x00\x00\x00\x00\x01\x00\x00"] {
        assert!(matches!(broker.handle_frame(0, Bytes::copy_from_slice(junk)), Handled::Close(_)), "{junk:?}");
    }
}
