//! The wire log: every Kafka request and response that crossed the simulated network, as it
//! was written by one node and read by the other (sim time, connection, correlation id, API).
//! It is what the report's message (Lamport) diagram draws. It is kept apart from the trace:
//! it is large, and the trace's hash stays about what nodes did.
//!
//! Kept compact (one small record per frame seen) and bounded: past `EVENTS_MAX` events the
//! log stops growing and says so. It only observes; it never touches the bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A bound on the log, so a long run cannot eat the machine: about 48 MB of records.
pub const EVENTS_MAX: usize = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Send,
    Recv,
}

/// One frame seen at one end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireEvent {
    pub time_ms: u64,
    pub conn: u32,
    pub dir: Dir,
    pub side: Side,
    pub correlation_id: i32,
    pub api_key: i16,
}

/// A connection between a client end and a server end, by host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub client: String,
    pub server: String,
    addrs: (SocketAddr, SocketAddr),
    /// Which ends have attached to this entry (client, server).
    attached: (bool, bool),
}

#[derive(Debug, Default, Clone)]
pub struct Wire {
    conns: Vec<Conn>,
    events: Vec<WireEvent>,
    dropped: u64,
}

/// One message as the diagram draws it: sent by `from` at `sent_ms`, read by `to` at
/// `received_ms` (None: never read, e.g. cut by a partition or its reader died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: String,
    pub to: String,
    pub sent_ms: u64,
    pub received_ms: Option<u64>,
    pub api: String,
    pub dir: Dir,
    pub correlation_id: i32,
    /// Position of the send in the log: a total order for ties in time.
    pub order: usize,
}

impl Wire {
    /// The connection id for one end of the connection `client` -> `server`: both ends of one
    /// TCP connection get the same id, whichever attaches first.
    pub fn attach(&mut self, client: &str, server: &str, addrs: (SocketAddr, SocketAddr), client_end: bool) -> u32 {
        let free = |c: &Conn| c.addrs == addrs && if client_end { !c.attached.0 } else { !c.attached.1 };
        let index = match self.conns.iter().rposition(free) {
            Some(i) => i,
            None => {
                self.conns.push(Conn { client: client.to_string(), server: server.to_string(), addrs, attached: (false, false) });
                self.conns.len() - 1
            }
        };
        let c = &mut self.conns[index];
        if client_end {
            c.attached.0 = true;
        } else {
            c.attached.1 = true;
        }
        u32::try_from(index).expect("fewer than 2^32 connections")
    }

    pub fn record(&mut self, event: WireEvent) {
        assert!((event.conn as usize) < self.conns.len(), "event on unknown connection {}", event.conn);
        if self.events.len() >= EVENTS_MAX {
            self.dropped += 1;
            return;
        }
        self.events.push(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Frames not recorded because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How many messages were sent (requests and responses).
    pub fn sent_count(&self) -> usize {
        self.events.iter().filter(|e| e.side == Side::Send).count()
    }

    /// Every message whose send falls in `[from_ms, to_ms]`, paired with its receive.
    pub fn messages(&self, from_ms: u64, to_ms: u64) -> Vec<Message> {
        // Receives by (conn, dir, correlation id), in log order: the first receive after a
        // send is its own (a correlation id is not reused while its request is in flight).
        let mut recvs: BTreeMap<(u32, Dir, i32), Vec<(usize, u64)>> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate().filter(|(_, e)| e.side == Side::Recv) {
            recvs.entry((e.conn, e.dir, e.correlation_id)).or_default().push((i, e.time_ms));
        }
        let mut out = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            if e.side != Side::Send || e.time_ms < from_ms || e.time_ms > to_ms {
                continue;
            }
            let c = &self.conns[e.conn as usize];
            let (from, to) = match e.dir {
                Dir::Request => (&c.client, &c.server),
                Dir::Response => (&c.server, &c.client),
            };
            let received_ms = recvs.get(&(e.conn, e.dir, e.correlation_id)).and_then(|list| list.iter().find(|(j, _)| *j > i)).map(|(_, t)| *t);
            out.push(Message { from: from.clone(), to: to.clone(), sent_ms: e.time_ms, received_ms, api: api_name(e.api_key), dir: e.dir, correlation_id: e.correlation_id, order: i });
        }
        out
    }
}

/// Kafka's name for an API key ("Produce", "Fetch", ...).
pub fn api_name(key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api-{key}"),
    }
}

/// Finds frame boundaries in one direction of a byte stream: a 4-byte big-endian size, then
/// the header (requests: api key, api version, correlation id; responses: correlation id).
#[derive(Debug, Clone)]
pub struct FrameScanner {
    dir: Dir,
    header: [u8; 12],
    have: usize,
    body_left: usize,
}

/// A frame header found by the scanner: correlation id and, for requests, the api key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub correlation_id: i32,
    pub api_key: Option<i16>,
}

impl FrameScanner {
    pub fn new(dir: Dir) -> FrameScanner {
        FrameScanner { dir, header: [0; 12], have: 0, body_left: 0 }
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    fn header_len(&self) -> usize {
        match self.dir {
            Dir::Request => 12,
            Dir::Response => 8,
        }
    }

    /// Feeds the next bytes of the stream; returns the frame headers completed by them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<FrameHead> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let need = self.header_len() - self.have;
            let n = need.min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == self.header_len() {
                out.push(self.finish_header());
            }
        }
        out
    }

    fn finish_header(&mut self) -> FrameHead {
        let h = &self.header;
        let size = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let seen = self.header_len() - 4;
        self.body_left = usize::try_from(size).unwrap_or(0).saturating_sub(seen);
        self.have = 0;
        match self.dir {
            Dir::Request => FrameHead { correlation_id: i32::from_be_bytes([h[8], h[9], h[10], h[11]]), api_key: Some(i16::from_be_bytes([h[4], h[5]])) },
            Dir::Response => FrameHead { correlation_id: i32::from_be_bytes([h[4], h[5], h[6], h[7]]), api_key: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(api: i16, corr: i32, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&((8 + body.len()) as i32).to_be_bytes());
        f.extend_from_slice(&api.to_be_bytes());
        f.extend_from_slice(&3i16.to_be_bytes());
        f.extend_from_slice(&corr.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_found_however_the_bytes_are_split() {
        let mut stream = request(0, 7, b"hello world");
        stream.extend(request(1, 8, b""));
        stream.extend(request(18, 9, &[0; 300]));
        for chunk in [1, 2, 5, 13, 1000] {
            let mut s = FrameScanner::new(Dir::Request);
            let heads: Vec<FrameHead> = stream.chunks(chunk).flat_map(|c| s.feed(c)).collect();
            let got: Vec<(i32, Option<i16>)> = heads.iter().map(|h| (h.correlation_id, h.api_key)).collect();
            assert_eq!(got, vec![(7, Some(0)), (8, Some(1)), (9, Some(18))], "chunk {chunk}");
        }
    }

    #[test]
    fn a_send_pairs_with_the_next_receive_of_the_same_frame() {
        let a: SocketAddr = "10.0.0.1:49152".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:9092".parse().unwrap();
        let mut w = Wire::default();
        let c = w.attach("p-0", "broker-0", (a, b), true);
        assert_eq!(w.attach("p-0", "broker-0", (a, b), false), c);
        let ev = |t, dir, side| WireEvent { time_ms: t, conn: c, dir, side, correlation_id: 1, api_key: 0 };
        w.record(ev(10, Dir::Request, Side::Send));
        w.record(ev(13, Dir::Request, Side::Recv));
        w.record(ev(14, Dir::Response, Side::Send));
        let m = w.messages(0, 100);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].from.as_str(), m[0].to.as_str(), m[0].received_ms), ("p-0", "broker-0", Some(13)));
        assert_eq!((m[1].from.as_str(), m[1].api.as_str(), m[1].received_ms), ("broker-0", "Produce", None));
        // A new connection on the same addresses after both ends attached is a new entry.
        assert_ne!(w.attach("p-0", "broker-0", (a, b), true), c);
    }
}
