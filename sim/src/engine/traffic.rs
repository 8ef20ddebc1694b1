//! Counts what crosses the simulated network, per link (initiator host -> acceptor host): the
//! connections opened and the Kafka frames and bytes written each way. It observes only: the
//! counts never feed back into the run, so they cannot break determinism. `stormlog bench`
//! reads them to size its bare-engine baseline; every run keeps them in its outcome.
//!
//! The counts live in a thread-local table because one simulation runs on one thread (seeds
//! run in parallel on separate threads) and every host's stream is created on it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one link carried. A link is the connections one host opened to another; requests
/// are the frames its initiator wrote, responses the frames its acceptor wrote (Kafka's
/// request/response direction: a client or follower asks, a broker or controller answers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTraffic {
    pub connections: u64,
    pub requests: u64,
    pub request_bytes: u64,
    pub responses: u64,
    pub response_bytes: u64,
}

impl LinkTraffic {
    pub fn frames(&self) -> u64 {
        self.requests + self.responses
    }

    pub fn bytes(&self) -> u64 {
        self.request_bytes + self.response_bytes
    }
}

/// Every link of one run, keyed (initiator, acceptor) by host name.
pub type Traffic = BTreeMap<(String, String), LinkTraffic>;

/// The shared counters of one link, bumped by every stream on it.
#[derive(Default)]
struct LinkCounters {
    connections: Cell<u64>,
    requests: Cell<u64>,
    request_bytes: Cell<u64>,
    responses: Cell<u64>,
    response_bytes: Cell<u64>,
}

thread_local! {
    static LINKS: RefCell<BTreeMap<(String, String), Rc<LinkCounters>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Forgets every count: a run starts from zero.
pub fn reset_traffic() {
    LINKS.with(|l| l.borrow_mut().clear());
}

/// The counts since the last reset, which it also is.
pub fn take_traffic() -> Traffic {
    let links = LINKS.with(|l| std::mem::take(&mut *l.borrow_mut()));
    links
        .into_iter()
        .map(|(k, c)| {
            let t = LinkTraffic {
                connections: c.connections.get(),
                requests: c.requests.get(),
                request_bytes: c.request_bytes.get(),
                responses: c.responses.get(),
                response_bytes: c.response_bytes.get(),
            };
            (k, t)
        })
        .collect()
}

/// Which side of the link a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Initiator,
    Acceptor,
}

/// Counts whole frames in a byte stream written as Kafka frames (`int32 size` then the
/// bytes), however the writes split them.
#[derive(Debug, Default, Clone)]
pub struct FrameCounter {
    header: [u8; 4],
    header_len: usize,
    body_left: u64,
}

impl FrameCounter {
    /// Feeds written bytes; returns how many frames they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.body_left > 0 {
                let take = usize::try_from(self.body_left).unwrap_or(usize::MAX).min(data.len());
                self.body_left -= take as u64;
                data = &data[take..];
                if self.body_left == 0 {
                    done += 1;
                }
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if self.header_len == 4 {
                self.header_len = 0;
                self.body_left = u64::try_from(i32::from_be_bytes(self.header)).unwrap_or(0);
                if self.body_left == 0 {
                    done += 1;
                }
            }
        }
        done
    }
}

/// A stream that counts what its side writes onto its link's counters.
pub struct Counted<S> {
    inner: S,
    side: Side,
    link: Rc<LinkCounters>,
    frames: FrameCounter,
}

impl<S> Counted<S> {
    /// Wraps a newly connected stream of the link `initiator -> acceptor`.
    pub fn new(inner: S, side: Side, initiator: String, acceptor: String) -> Counted<S> {
        let link = LINKS.with(|l| l.borrow_mut().entry((initiator, acceptor)).or_default().clone());
        if side == Side::Initiator {
            link.connections.set(link.connections.get() + 1);
        }
        Counted { inner, side, link, frames: FrameCounter::default() }
    }

    fn count(&mut self, written: &[u8]) {
        let frames = self.frames.feed(written);
        let (count, bytes) = match self.side {
            Side::Initiator => (&self.link.requests, &self.link.request_bytes),
            Side::Acceptor => (&self.link.responses, &self.link.response_bytes),
        };
        count.set(count.get() + frames);
        bytes.set(bytes.get() + written.len() as u64);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let out = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &out {
            this.count(&buf[..*n]);
        }
        out
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_counted_however_the_writes_split_them() {
        let mut bytes = frame(b"hello");
        bytes.extend(frame(b""));
        bytes.extend(frame(&[7u8; 300]));
        for split in [1, 2, 3, 5, 7, 64, bytes.len()] {
            let mut c = FrameCounter::default();
            let total: u64 = bytes.chunks(split).map(|chunk| c.feed(chunk)).sum();
            assert_eq!(total, 3, "split {split}");
        }
    }

    #[test]
    fn a_partial_frame_is_not_counted_until_it_is_whole() {
        let mut c = FrameCounter::default();
        let f = frame(b"abcdef");
        assert_eq!(c.feed(&f[..7]), 0);
        assert_eq!(c.feed(&f[7..]), 1);
    }
}
