//! The broker's async shell: the same code under both simulators and real tokio. It accepts
//! connections, hands frames to the core, writes answers, runs one replica fetcher per leader
//! and a ticker. It holds no protocol logic of its own.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::{list_offset, ClientError, Connection, LATEST_TIMESTAMP};
use crate::ids::{BrokerId, TopicPartition};
use crate::observe::Tracer;
use crate::protocol::{FrameDecoder, REQUEST_BYTES_MAX};
use crate::seam::{BoxStream, Network, Storage};

use super::config::BrokerConfig;
use super::core::{BrokerCore, Handled};
use super::metadata::ClusterMetadata;
use super::replica_fetcher::REPLICA_FETCH_VERSION;

/// Everything a broker process is started with.
pub struct BrokerEnv {
    pub id: BrokerId,
    /// The address to bind, e.g. `0.0.0.0:9092`.
    pub listen: String,
    pub config: BrokerConfig,
    pub metadata: ClusterMetadata,
    pub net: Rc<dyn Network>,
    pub storage: Rc<dyn Storage>,
    pub trace: Tracer,
}

/// Shared between the broker's tasks (all on one thread).
struct Shared {
    core: RefCell<BrokerCore>,
    /// Woken after every change to the core, so parked requests re-check.
    changed: Notify,
    started: Instant,
    net: Rc<dyn Network>,
    metadata: ClusterMetadata,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Runs a broker until its listener fails. Must run inside a `LocalSet`.
pub async fn run_broker(env: BrokerEnv) -> io::Result<()> {
    let started = Instant::now();
    let core = BrokerCore::open(env.id, env.config, env.metadata.clone(), env.storage, env.trace, 0)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut listener = env.net.bind(&env.listen).await?;
    let shared = Rc::new(Shared { core: RefCell::new(core), changed: Notify::new(), started, net: env.net, metadata: env.metadata });
    let leaders = shared.core.borrow().fetch_leaders();
    for leader in leaders {
        tokio::task::spawn_local(fetcher(shared.clone(), leader));
    }
    tokio::task::spawn_local(ticker(shared.clone()));
    loop {
        let (stream, _peer) = listener.accept().await?;
        tokio::task::spawn_local(serve_connection(shared.clone(), stream));
    }
}

async fn ticker(shared: Rc<Shared>) {
    let interval = Duration::from_millis(shared.core.borrow().tick_interval_ms());
    loop {
        tokio::time::sleep(interval).await;
        shared.core.borrow_mut().tick(shared.now_ms());
        shared.changed.notify_waiters();
    }
}

/// Reads frames, answers them in order; a parked request holds the connection (as Kafka mutes
/// a channel while a request is in flight).
async fn serve_connection(shared: Rc<Shared>, mut stream: BoxStream) {
    let mut decoder = FrameDecoder::new(REQUEST_BYTES_MAX);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let frame = match decoder.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    decoder.push(&buf[..n]);
                    continue;
                }
            },
            Err(_) => return,
        };
        let handled = shared.core.borrow_mut().handle_frame(shared.now_ms(), frame);
        shared.changed.notify_waiters();
        let answer = match handled {
            Handled::Reply(b) => b,
            Handled::NoReply => continue,
            Handled::Close(_) => return,
            Handled::Parked { id, deadline_ms } => wait_parked(&shared, id, deadline_ms).await,
        };
        if stream.write_all(&answer).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

async fn wait_parked(shared: &Shared, id: u64, deadline_ms: u64) -> bytes::Bytes {
    let deadline = shared.started + Duration::from_millis(deadline_ms);
    loop {
        // Registered before the check, so a change between the two is not missed.
        let changed = shared.changed.notified();
        if let Some(answer) = shared.core.borrow_mut().poll_parked(id, shared.now_ms()) {
            return answer;
        }
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Replicates every partition led by `leader`: fetch, append, repeat; reconnect on failure.
async fn fetcher(shared: Rc<Shared>, leader: BrokerId) {
    let client_id = format!("replica-fetcher-{}", shared.core.borrow().id().0);
    let Some(addr) = shared.metadata.brokers.get(&leader).map(|a| a.addr()) else { return };
    let timeout = shared.core.borrow().config.replica_socket_timeout_ms;
    loop {
        if let Ok(mut conn) = Connection::connect(shared.net.as_ref(), &addr, &client_id, timeout).await {
            while fetch_once(&shared, &mut conn, leader, timeout).await.is_ok() {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fetch_once(shared: &Shared, conn: &mut Connection, leader: BrokerId, timeout: u64) -> Result<(), ClientError> {
    let req = shared.core.borrow().replica_fetch_request(leader);
    let wait = u64::try_from(req.max_wait_ms).unwrap_or(0);
    let resp = conn.request(ApiKey::Fetch, REPLICA_FETCH_VERSION, RequestKind::Fetch(req), timeout + wait).await?;
    let ResponseKind::Fetch(resp) = resp else {
        return Err(ClientError::Protocol("expected a Fetch response".into()));
    };
    let out_of_range = shared.core.borrow_mut().handle_replica_fetch_response(&resp);
    shared.changed.notify_waiters();
    for tp in out_of_range {
        let end = leader_log_end(shared, conn, &tp, timeout).await?;
        shared.core.borrow_mut().truncate_follower(&tp, end);
    }
    Ok(())
}

/// Asks the leader for its log end offset (ListOffsets latest, as a replica).
async fn leader_log_end(shared: &Shared, conn: &mut Connection, tp: &TopicPartition, timeout: u64) -> Result<i64, ClientError> {
    let me = shared.core.borrow().id();
    list_offset(conn, tp, LATEST_TIMESTAMP, me.0, 0, timeout).await
}
