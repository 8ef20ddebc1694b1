//! The `hold-request` fault: a broker holds one request of a given Kafka API from given
//! clients, unhandled, until the fault heals, while everything else goes on. Kafka handles a
//! connection's requests in order, so the connection behind the held request waits too; a
//! client that times the request out and retries on a new connection gets through, and the
//! held copy is handled late. That is how a request is "delayed across a transaction boundary"
//! (KAFKA-17754, KAFKA-14402), which holding a whole link cannot do.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;

use stormlog::broker::RequestHold;
use stormlog::observe::Tracer;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first matching request.
    Armed,
    /// A request is held.
    Holding,
    /// Healed: a held request goes on; nothing more is held.
    Released,
}

struct Held {
    api: i16,
    api_name: String,
    /// The client (or broker) nodes whose requests this hold catches.
    peers: Vec<String>,
    state: Cell<State>,
    release: Notify,
}

/// One broker's holds. Lives in the world, outside the broker's process, so it outlasts
/// restarts (a held request dies with the process that held it).
#[derive(Clone, Default)]
pub struct RequestHolds(Rc<RefCell<Vec<Rc<Held>>>>);

impl RequestHolds {
    /// Holds the next request of `api` from any of `peers`.
    pub fn arm(&self, api: i16, api_name: &str, peers: &[String]) {
        let held = Held { api, api_name: api_name.to_string(), peers: peers.to_vec(), state: Cell::new(State::Armed), release: Notify::new() };
        self.0.borrow_mut().push(Rc::new(held));
    }

    /// Ends every hold of this broker: a held request is handled now; an armed hold that
    /// caught nothing is dropped.
    pub fn release_all(&self) {
        for h in self.0.borrow_mut().drain(..) {
            h.state.set(State::Released);
            h.release.notify_one();
        }
    }

    /// The broker's fault point (see `BrokerEnv::request_hold`). Runs inside the broker's host,
    /// where turmoil resolves the peer's address to its node name.
    pub fn hook(&self, trace: Tracer) -> RequestHold {
        let holds = self.0.clone();
        Rc::new(move |api: i16, peer: &str| {
            if holds.borrow().is_empty() {
                return None;
            }
            let ip: IpAddr = peer.rsplit_once(':')?.0.parse().ok()?;
            let who = turmoil::reverse_lookup(ip)?;
            let held = holds.borrow().iter().find(|h| h.state.get() == State::Armed && h.api == api && h.peers.contains(&who)).cloned()?;
            held.state.set(State::Holding);
            trace.emit(|| format!("hold-request: holding {} from {who}", held.api_name));
            let trace = trace.clone();
            Some(Box::pin(async move {
                while held.state.get() != State::Released {
                    held.release.notified().await;
                }
                trace.emit(|| format!("hold-request: handling the held {} from {who}", held.api_name));
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ends_armed_and_held_holds() {
        let holds = RequestHolds::default();
        holds.arm(26, "EndTxn", &["p-0".to_string()]);
        holds.arm(0, "Produce", &["p-0".to_string()]);
        holds.0.borrow()[0].state.set(State::Holding);
        let kept: Vec<Rc<Held>> = holds.0.borrow().clone();
        holds.release_all();
        assert!(holds.0.borrow().is_empty());
        assert!(kept.iter().all(|h| h.state.get() == State::Released));
    }
}
