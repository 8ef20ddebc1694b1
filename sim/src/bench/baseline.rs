//! The bare-engine baseline: the same turmoil hosts as a stormlog run, with the same engine
//! settings (tick, latency, capacity, simulated duration), exchanging the same number of
//! request/response frames of the same total size over turmoil TCP on the same links, with no
//! broker logic: a host answers each request with a frame of the asked-for size, and that is
//! all. stormlog's wall time over this one is the price of the system and the harness on top
//! of the engine; the baseline's own speed is the engine's limit.
//!
//! Besides `world`, the only code that builds a turmoil simulation: it must not go through
//! `world`, whose hosts are the system.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::traffic::{LinkTraffic, Traffic};
use crate::scenario::Scenario;
use crate::world::{broker_name, controller_name, derive_seed};

const PORT: u16 = 9000;
/// Requests are paced over the run but stop this long before its end, so that the last
/// answers arrive inside it.
const TAIL_MS: u64 = 200;
/// Connection attempts before a link gives up (a listener is bound within the first ticks).
const CONNECT_TRIES_MAX: u32 = 100;

/// One link's work: `round_trips` requests of `request_body` bytes, each answered by
/// `response_body` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub initiator: String,
    pub acceptor: String,
    pub round_trips: u64,
    pub request_body: u32,
    pub response_body: u32,
}

/// What the baseline runs: every host of the stormlog run and the work of each of its links.
#[derive(Debug, Clone)]
pub struct BaselinePlan {
    pub hosts: Vec<String>,
    pub links: Vec<LinkPlan>,
    pub sim_ms: u64,
    pub latency_ms: (u64, u64),
    pub seed: u64,
}

/// What the baseline did: frames and bytes delivered (counted on receipt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineOutcome {
    pub hosts: usize,
    pub links: usize,
    pub frames: u64,
    pub bytes: u64,
    pub sim_ms: u64,
}

/// Every host a scenario's world has: controllers, brokers, producer and consumer instances.
pub fn scenario_hosts(s: &Scenario) -> Vec<String> {
    let mut hosts: Vec<String> = (0..s.cluster.controllers).map(controller_name).collect();
    hosts.extend((0..s.cluster.brokers).map(broker_name));
    hosts.extend(s.producers.iter().flat_map(|p| (0..p.count).map(move |n| format!("{}-{n}", p.name))));
    hosts.extend(s.consumers.iter().flat_map(|c| (0..c.count).map(move |n| format!("{}-{n}", c.name))));
    hosts
}

/// One link's share of the work: as many round trips as half its frames (rounded up), sized so
/// that both directions carry the bytes they carried in the stormlog run.
fn link_plan(initiator: &str, acceptor: &str, t: &LinkTraffic) -> Option<LinkPlan> {
    let round_trips = t.frames().div_ceil(2);
    if round_trips == 0 {
        return None;
    }
    // Bytes include each frame's 4-byte size prefix; a request body carries the answer's size.
    let body = |bytes: u64, floor: u64| u32::try_from((bytes / round_trips).saturating_sub(4).max(floor)).unwrap_or(u32::MAX);
    Some(LinkPlan {
        initiator: initiator.to_string(),
        acceptor: acceptor.to_string(),
        round_trips,
        request_body: body(t.request_bytes, 4),
        response_body: body(t.response_bytes, 0),
    })
}

/// The baseline for one stormlog run of `s` (seed `seed`, `sim_ms` simulated) that carried
/// `traffic`.
pub fn plan_for(s: &Scenario, seed: u64, sim_ms: u64, traffic: &Traffic) -> BaselinePlan {
    let links: Vec<LinkPlan> = traffic.iter().filter_map(|((a, b), t)| link_plan(a, b, t)).collect();
    let mut hosts = scenario_hosts(s);
    let known: BTreeSet<String> = hosts.iter().cloned().collect();
    let named: BTreeSet<String> = links.iter().flat_map(|l| [l.initiator.clone(), l.acceptor.clone()]).collect();
    hosts.extend(named.difference(&known).cloned());
    BaselinePlan { hosts, links, sim_ms, latency_ms: s.network.latency_ms, seed }
}

/// Frames and bytes delivered, summed over every host.
#[derive(Default)]
struct Delivered {
    frames: Cell<u64>,
    bytes: Cell<u64>,
}

impl Delivered {
    fn add(&self, body: usize) {
        self.frames.set(self.frames.get() + 1);
        self.bytes.set(self.bytes.get() + body as u64 + 4);
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut size = [0u8; 4];
    r.read_exact(&mut size).await?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

fn frame(body_len: u32, answer_len: Option<u32>) -> Vec<u8> {
    let mut f = Vec::with_capacity(body_len as usize + 4);
    f.extend_from_slice(&body_len.to_be_bytes());
    f.resize(body_len as usize + 4, 0);
    if let Some(a) = answer_len {
        f[4..8].copy_from_slice(&a.to_be_bytes());
    }
    f
}

/// The acceptor's side of a connection: answer every request with the size it asks for.
async fn answer(mut stream: turmoil::net::TcpStream, delivered: Rc<Delivered>) {
    while let Ok(request) = read_frame(&mut stream).await {
        delivered.add(request.len());
        let asked = request.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if stream.write_all(&frame(asked, None)).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

async fn connect(acceptor: &str) -> std::io::Result<turmoil::net::TcpStream> {
    let mut tries = 0;
    loop {
        match turmoil::net::TcpStream::connect((acceptor, PORT)).await {
            Ok(s) => return Ok(s),
            Err(e) if tries >= CONNECT_TRIES_MAX => return Err(e),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The initiator's side of a link: requests paced evenly over the run, pipelined, with their
/// answers read as they come.
async fn ask(link: LinkPlan, window_ms: u64, delivered: Rc<Delivered>) -> std::io::Result<()> {
    let (mut rd, mut wr) = connect(&link.acceptor).await?.into_split();
    let n = link.round_trips;
    let reader_delivered = delivered.clone();
    let reader = tokio::task::spawn_local(async move {
        for _ in 0..n {
            let answer = read_frame(&mut rd).await?;
            reader_delivered.add(answer.len());
        }
        Ok::<(), std::io::Error>(())
    });
    let start = tokio::time::Instant::now();
    let window_us = window_ms.saturating_mul(1000);
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_micros(window_us * i / n)).await;
        wr.write_all(&frame(link.request_body, Some(link.response_body))).await?;
        wr.flush().await?;
    }
    reader.await.map_err(std::io::Error::other)?
}

/// Runs the baseline to `plan.sim_ms` of simulated time.
pub fn run_baseline(plan: &BaselinePlan) -> Result<BaselineOutcome, String> {
    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(Duration::from_millis(plan.sim_ms + 60_000))
        .tick_duration(Duration::from_millis(1))
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .min_message_latency(Duration::from_millis(plan.latency_ms.0))
        .max_message_latency(Duration::from_millis(plan.latency_ms.1))
        .tcp_capacity(1024)
        .rng_seed(derive_seed(plan.seed, "turmoil"));
    let mut sim = builder.build();
    let delivered = Rc::new(Delivered::default());
    let window_ms = plan.sim_ms.saturating_sub(TAIL_MS);
    for host in &plan.hosts {
        let outgoing: Rc<Vec<LinkPlan>> = Rc::new(plan.links.iter().filter(|l| &l.initiator == host).cloned().collect());
        let delivered = delivered.clone();
        sim.host(host.as_str(), move || {
            let (outgoing, delivered) = (outgoing.clone(), delivered.clone());
            async move {
                let listener = turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, PORT)).await?;
                for link in outgoing.iter() {
                    tokio::task::spawn_local(ask(link.clone(), window_ms, delivered.clone()));
                }
                loop {
                    let (stream, _) = listener.accept().await?;
                    tokio::task::spawn_local(answer(stream, delivered.clone()));
                }
            }
        });
    }
    while (sim.elapsed().as_millis() as u64) < plan.sim_ms {
        sim.step().map_err(|e| e.to_string())?;
    }
    let out = BaselineOutcome { hosts: plan.hosts.len(), links: plan.links.len(), frames: delivered.frames.get(), bytes: delivered.bytes.get(), sim_ms: sim.elapsed().as_millis() as u64 };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_plan_keeps_the_frames_and_the_bytes_of_each_direction() {
        let t = LinkTraffic { connections: 2, requests: 10, request_bytes: 10 * 104, responses: 9, response_bytes: 9 * 54 };
        let plan = link_plan("p-0", "broker-1", &t).unwrap();
        assert_eq!(plan.round_trips, 10);
        assert_eq!(plan.request_body, 100);
        assert_eq!(plan.response_body, 44);
        assert_eq!(link_plan("a", "b", &LinkTraffic::default()), None);
    }

    #[test]
    fn the_baseline_delivers_every_frame_it_plans() {
        let t = LinkTraffic { connections: 1, requests: 50, request_bytes: 50 * 40, responses: 50, response_bytes: 50 * 20 };
        let mut traffic = Traffic::new();
        traffic.insert(("p-0".into(), "broker-0".into()), t);
        traffic.insert(("broker-1".into(), "broker-0".into()), t);
        let plan = BaselinePlan {
            hosts: vec!["broker-0".into(), "broker-1".into(), "p-0".into()],
            links: traffic.iter().filter_map(|((a, b), t)| link_plan(a, b, t)).collect(),
            sim_ms: 2_000,
            latency_ms: (1, 10),
            seed: 7,
        };
        let out = run_baseline(&plan).unwrap();
        assert_eq!(out.frames, 200, "{out:?}");
        assert_eq!(out.bytes, 2 * (50 * 40 + 50 * 20), "{out:?}");
    }
}
