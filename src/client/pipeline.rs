//! A pipelined connection: many requests in flight on one TCP stream, answered in order (Kafka
//! answers each connection's requests in the order they were sent). One task owns the stream;
//! callers enqueue requests synchronously, so the order of `start` calls is the order on the wire.
//!
//! A request that is not answered within its timeout closes the connection and fails every
//! request still waiting on it, as Kafka's `NetworkClient` does: simulated TCP never
//! retransmits, so a silent stream must become an error.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::protocol::{decode_response, encode_request};
use crate::seam::{FramedStream, Network};

use super::error::ClientError;

/// What a started request resolves to: the response, or None for a request that gets none.
pub type Reply = Result<Option<ResponseKind>, ClientError>;

struct Job {
    frame: Vec<u8>,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    expects_response: bool,
    timeout_ms: u64,
    reply: oneshot::Sender<Reply>,
}

struct Waiting {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    deadline: Instant,
    reply: oneshot::Sender<Reply>,
}

/// The handle; dropping it closes the connection once the queued requests are written.
pub struct Pipeline {
    tx: mpsc::UnboundedSender<Job>,
    next_correlation_id: Cell<i32>,
    client_id: String,
    closed: Rc<Cell<bool>>,
    pub addr: String,
}

impl Pipeline {
    /// Connects and starts the connection's task. Must run inside a `LocalSet`.
    pub async fn connect(net: &dyn Network, addr: &str, client_id: &str, timeout_ms: u64) -> Result<Pipeline, ClientError> {
        let stream = match tokio::time::timeout(Duration::from_millis(timeout_ms), net.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Connect(format!("{addr}: {e}"))),
            Err(_) => return Err(ClientError::Connect(format!("{addr}: timed out"))),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Rc::new(Cell::new(false));
        tokio::task::spawn_local(run(FramedStream::new(stream), rx, closed.clone()));
        Ok(Pipeline { tx, next_correlation_id: Cell::new(0), client_id: client_id.to_string(), closed, addr: addr.to_string() })
    }

    /// True once the connection failed; every later request fails at once.
    pub fn is_closed(&self) -> bool {
        self.closed.get() || self.tx.is_closed()
    }

    /// Queues a request; the receiver gets its answer (None when `expects_response` is false,
    /// once the request was written).
    pub fn start(&self, api_key: ApiKey, version: i16, body: &RequestKind, timeout_ms: u64, expects_response: bool) -> oneshot::Receiver<Reply> {
        let (reply, rx) = oneshot::channel();
        let correlation_id = self.next_correlation_id.get();
        self.next_correlation_id.set(correlation_id.wrapping_add(1));
        let frame = match encode_request(api_key, version, correlation_id, &self.client_id, body) {
            Ok(f) => f,
            Err(e) => {
                let _ = reply.send(Err(ClientError::Protocol(e.to_string())));
                return rx;
            }
        };
        let job = Job { frame: frame.to_vec(), api_key, version, correlation_id, expects_response, timeout_ms, reply };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            let _ = job.reply.send(Err(ClientError::NotSent("connection closed".into())));
        }
        rx
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, api_key: ApiKey, version: i16, body: &RequestKind, timeout_ms: u64) -> Result<ResponseKind, ClientError> {
        match self.start(api_key, version, body, timeout_ms, true).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(ClientError::Protocol("no response".into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Io("connection task ended".into())),
        }
    }
}

async fn run(mut stream: FramedStream, mut rx: mpsc::UnboundedReceiver<Job>, closed: Rc<Cell<bool>>) {
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let failure = loop {
        let deadline = waiting.iter().map(|w| w.deadline).min();
        tokio::select! {
            biased;
            // `read_frame` is cancel-safe: bytes read are kept in the decoder.
            frame = stream.read_frame(), if !waiting.is_empty() => {
                let w = waiting.pop_front().expect("guarded by the branch condition");
                let frame = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        waiting.push_front(w);
                        break ClientError::Io("connection closed by peer".into());
                    }
                    Err(e) => {
                        waiting.push_front(w);
                        break ClientError::Io(e.to_string());
                    }
                };
                match decode_response(w.api_key, w.version, frame) {
                    Ok((got, resp)) if got == w.correlation_id => {
                        let _ = w.reply.send(Ok(Some(resp)));
                    }
                    Ok((got, _)) => {
                        let e = ClientError::Protocol(format!("correlation id {got}, expected {}", w.correlation_id));
                        let _ = w.reply.send(Err(e.clone()));
                        break e;
                    }
                    Err(e) => {
                        let e = ClientError::Protocol(e.to_string());
                        let _ = w.reply.send(Err(e.clone()));
                        break e;
                    }
                }
            }
            _ = sleep_until_opt(deadline), if deadline.is_some() => break ClientError::Timeout,
            job = rx.recv() => {
                let Some(job) = job else { break ClientError::Io("connection closed".into()) };
                if let Err(e) = stream.write_frame(&job.frame).await {
                    let e = ClientError::Io(e.to_string());
                    let _ = job.reply.send(Err(e.clone()));
                    break e;
                }
                if job.expects_response {
                    let deadline = Instant::now() + Duration::from_millis(job.timeout_ms);
                    waiting.push_back(Waiting { api_key: job.api_key, version: job.version, correlation_id: job.correlation_id, deadline, reply: job.reply });
                } else {
                    let _ = job.reply.send(Ok(None));
                }
            }
        }
    };
    closed.set(true);
    for w in waiting {
        let _ = w.reply.send(Err(failure.clone()));
    }
    rx.close();
    while let Some(job) = rx.recv().await {
        let _ = job.reply.send(Err(ClientError::NotSent(failure.to_string())));
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
