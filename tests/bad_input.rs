//! A broker is a network server (DESIGN.md §7): truncated, oversized, garbage and
//! unsupported frames get Kafka's error response or a closed connection, never a panic, and
//! other connections keep being served. Runs a one-controller, one-broker cluster from the
//! real node code on real TCP and real files, and talks to it over raw sockets.

use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};
use stormlog::broker::{run_broker, BrokerAddress, BrokerConfig, BrokerEnv};
use stormlog::controller::{run_controller, ControllerConfig, ControllerEnv};
use stormlog::ids::BrokerId;
use stormlog::observe::Tracer;
use stormlog::protocol::{decode_response, encode_batch_v2, encode_request, REQUEST_BYTES_MAX};
use stormlog::seam::{Clock, Entropy, Network, StdStorage, Storage, SystemClock, TokioNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "t";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Starts the cluster's two nodes on this thread's LocalSet; returns the broker's address.
fn start_cluster(dir: &std::path::Path) -> String {
    let (broker_port, controller_port) = (free_port(), free_port());
    let controller_addr = format!("127.0.0.1:{controller_port}");
    let storage = |node: &str| Rc::new(StdStorage::new(dir.join(node)).expect("data dir")) as Rc<dyn Storage>;
    let controller = ControllerEnv {
        id: 3000,
        listen: controller_addr.clone(),
        voters: vec![(3000, controller_addr.clone())],
        config: ControllerConfig::default(),
        topics: vec![(TOPIC.to_string(), vec![vec![0]])],
        net: Rc::new(TokioNetwork) as Rc<dyn Network>,
        storage: storage("controller-0"),
        entropy: Entropy::from_seed(1),
        trace: Tracer::off(),
        on_active: None,
    };
    let broker = BrokerEnv {
        id: BrokerId(0),
        listen: format!("127.0.0.1:{broker_port}"),
        advertised: BrokerAddress { host: "127.0.0.1".into(), port: broker_port },
        cluster_id: "bad-input".into(),
        controllers: vec![controller_addr],
        config: BrokerConfig::default(),
        net: Rc::new(TokioNetwork) as Rc<dyn Network>,
        storage: storage("broker-0"),
        entropy: Entropy::from_seed(2),
        clock: Rc::new(SystemClock) as Rc<dyn Clock>,
        trace: Tracer::off(),
        probe: None,
        group_probe: None,
        request_hold: None,
    };
    tokio::task::spawn_local(run_controller(controller));
    tokio::task::spawn_local(run_broker(broker));
    format!("127.0.0.1:{broker_port}")
}

async fn connect(addr: &str) -> TcpStream {
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker at {addr} never accepted a connection");
}

/// The next response frame (without its size prefix), or None when the broker closed the
/// connection.
async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let read = async {
        let size = s.read_i32().await.ok()?;
        let mut body = vec![0u8; usize::try_from(size).ok()?];
        s.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the broker neither answered nor closed within 10 s")
}

async fn send_raw(s: &mut TcpStream, bytes: &[u8]) {
    // The broker may already have closed the connection: a failed write is an answer too.
    let _ = s.write_all(bytes).await;
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A request header (v1: key, version, correlation id, client id) followed by `body`.
fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(correlation_id);
    b.put_i16(1);
    b.put_u8(b'x');
    b.put_slice(body);
    framed(&b)
}

async fn assert_closed(s: &mut TcpStream, what: &str) {
    assert_eq!(read_frame(s).await, None, "{what}: expected the broker to close the connection");
}

async fn api_versions_works(s: &mut TcpStream) {
    let frame = encode_request(ApiKey::ApiVersions, 3, 77, "ok", &RequestKind::ApiVersions(ApiVersionsRequest::default())).unwrap();
    send_raw(s, &frame).await;
    let answer = read_frame(s).await.expect("an ApiVersions answer");
    let (correlation_id, body) = decode_response(ApiKey::ApiVersions, 3, answer).unwrap();
    let ResponseKind::ApiVersions(body) = body else { panic!("not ApiVersions") };
    assert_eq!((correlation_id, body.error_code), (77, 0));
}

fn run_local<F: std::future::Future<Output = ()>>(f: impl FnOnce(String) -> F) {
    let dir = std::env::temp_dir().join(format!("stormlog-bad-input-{}-{}", std::process::id(), free_port()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let addr = start_cluster(&dir);
        f(addr).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_frames_are_answered_with_an_error_or_a_closed_connection_and_other_connections_keep_working() {
    run_local(|addr| async move {
        let mut bystander = connect(&addr).await;
        api_versions_works(&mut bystander).await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &((REQUEST_BYTES_MAX + 1) as i32).to_be_bytes()).await;
        assert_closed(&mut s, "a size prefix above socket.request.max.bytes").await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &(-5i32).to_be_bytes()).await;
        assert_closed(&mut s, "a negative size prefix").await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &framed(&[1, 2, 3])).await;
        assert_closed(&mut s, "a frame too short for a request header").await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &framed(b"\xde\xad\xbe\xef garbage that is no request at all")).await;
        assert_closed(&mut s, "garbage").await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &request(999, 0, 1, &[])).await;
        assert_closed(&mut s, "an unknown API key").await;

        let mut s = connect(&addr).await;
        send_raw(&mut s, &request(ApiKey::Metadata as i16, 99, 2, &[])).await;
        assert_closed(&mut s, "an unsupported Metadata version").await;

        // A truncated body: Metadata v1 announces 3 topics and carries none.
        let mut s = connect(&addr).await;
        send_raw(&mut s, &request(ApiKey::Metadata as i16, 1, 3, &3i32.to_be_bytes())).await;
        assert_closed(&mut s, "a truncated Metadata request").await;

        // Array counts that would ask for gigabytes before a byte of them arrived.
        let mut s = connect(&addr).await;
        let mut produce = Vec::new();
        produce.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
        produce.extend_from_slice(&(-1i16).to_be_bytes()); // acks
        produce.extend_from_slice(&30_000i32.to_be_bytes()); // timeout
        produce.extend_from_slice(&i32::MAX.to_be_bytes()); // topic count
        send_raw(&mut s, &request(ApiKey::Produce as i16, 3, 4, &produce)).await;
        assert_closed(&mut s, "a Produce request claiming i32::MAX topics").await;

        let mut s = connect(&addr).await;
        let mut metadata_v9 = vec![0u8; 0];
        metadata_v9.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // compact array: u32::MAX - 1 topics
        let mut header = BytesMut::new();
        header.put_i16(ApiKey::Metadata as i16);
        header.put_i16(9);
        header.put_i32(5);
        header.put_i16(-1); // client id: null
        header.put_u8(0); // header tagged fields
        header.put_slice(&metadata_v9);
        send_raw(&mut s, &framed(&header)).await;
        assert_closed(&mut s, "a Metadata v9 request claiming 4 billion topics").await;

        // Kafka answers an ApiVersions version it does not know with v0 and the error.
        let mut s = connect(&addr).await;
        send_raw(&mut s, &request(ApiKey::ApiVersions as i16, 99, 6, &[])).await;
        let answer = read_frame(&mut s).await.expect("an ApiVersions error answer");
        let (correlation_id, body) = decode_response(ApiKey::ApiVersions, 0, answer).unwrap();
        let ResponseKind::ApiVersions(body) = body else { panic!("not ApiVersions") };
        assert_eq!((correlation_id, body.error_code), (6, 35), "UNSUPPORTED_VERSION");
        assert!(!body.api_keys.is_empty(), "the answer lists the versions we do serve");

        api_versions_works(&mut bystander).await;
        api_versions_works(&mut connect(&addr).await).await;
    });
}

async fn leader_ready(addr: &str) {
    for _ in 0..200 {
        let mut s = connect(addr).await;
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        send_raw(&mut s, &encode_request(ApiKey::Metadata, 9, 1, "probe", &body).unwrap()).await;
        if let Some(frame) = read_frame(&mut s).await {
            if let Ok((_, ResponseKind::Metadata(m))) = decode_response(ApiKey::Metadata, 9, frame) {
                if m.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == TOPIC) && t.partitions.first().is_some_and(|p| p.leader_id.0 == 0)) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{TOPIC}/0 never got a leader");
}

fn produce_of(value_bytes: usize) -> RequestKind {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from(vec![b'v'; value_bytes])),
        headers: Default::default(),
    };
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(encode_batch_v2(&[record])));
    let topic = TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str(TOPIC))).with_partition_data(vec![partition]);
    RequestKind::Produce(ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![topic]))
}

async fn produce_error(s: &mut TcpStream, value_bytes: usize) -> i16 {
    send_raw(s, &encode_request(ApiKey::Produce, 9, 9, "big", &produce_of(value_bytes)).unwrap()).await;
    let frame = read_frame(s).await.expect("a Produce answer");
    let (_, ResponseKind::Produce(r)) = decode_response(ApiKey::Produce, 9, frame).unwrap() else { panic!("not Produce") };
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn a_batch_above_message_max_bytes_is_refused_with_message_too_large() {
    run_local(|addr| async move {
        leader_ready(&addr).await;
        let mut s = connect(&addr).await;
        assert_eq!(produce_error(&mut s, 1_100_000).await, 10, "MESSAGE_TOO_LARGE");
        assert_eq!(produce_error(&mut s, 1_000).await, 0, "a small batch on the same connection is appended");
    });
}
