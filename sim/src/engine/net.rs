use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use stormlog::seam::{BoxStream, Listener, LocalFuture, Network};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::traffic::{Counted, Side as LinkSide};
use crate::wire::{Dir, FrameScanner, Side, Wire, WireEvent};

/// turmoil's simulated TCP. Addresses are `host:port` with turmoil host names. Every stream
/// counts its frames onto its link (`traffic`); with a wire log, every stream is also tapped:
/// the Kafka frames it carries are recorded, the bytes untouched.
#[derive(Clone, Default)]
pub struct TurmoilNetwork {
    wire: Option<Rc<RefCell<Wire>>>,
}

impl TurmoilNetwork {
    pub fn tapped(wire: Rc<RefCell<Wire>>) -> TurmoilNetwork {
        TurmoilNetwork { wire: Some(wire) }
    }
}

struct TurmoilListener {
    inner: turmoil::net::TcpListener,
    wire: Option<Rc<RefCell<Wire>>>,
}

impl Listener for TurmoilListener {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            let me = host_name(stream.local_addr()?);
            let stream = tap(stream, self.wire.as_ref(), false);
            let counted = Counted::new(stream, LinkSide::Acceptor, host_name(peer), me);
            Ok((Box::new(counted) as BoxStream, peer.to_string()))
        })
    }
}

fn split(addr: &str) -> io::Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: expected host:port")))?;
    let port = port
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: bad port")))?;
    Ok((host.to_string(), port))
}

impl Network for TurmoilNetwork {
    fn bind(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>> {
        let parsed = split(addr);
        let wire = self.wire.clone();
        Box::pin(async move {
            let (_, port) = parsed?;
            let inner = turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?;
            Ok(Box::new(TurmoilListener { inner, wire }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let parsed = split(addr);
        let wire = self.wire.clone();
        Box::pin(async move {
            let (host, port) = parsed?;
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            let me = host_name(stream.local_addr()?);
            let stream = tap(stream, wire.as_ref(), true);
            Ok(Box::new(Counted::new(stream, LinkSide::Initiator, me, host)) as BoxStream)
        })
    }
}

fn host_name(addr: SocketAddr) -> String {
    turmoil::reverse_lookup(addr.ip()).unwrap_or_else(|| addr.ip().to_string())
}

/// The stream as is without a wire log (or without addresses), else wrapped in a tap.
fn tap(stream: turmoil::net::TcpStream, wire: Option<&Rc<RefCell<Wire>>>, client_end: bool) -> BoxStream {
    let (Some(wire), Ok(local), Ok(peer)) = (wire, stream.local_addr(), stream.peer_addr()) else {
        return Box::new(stream);
    };
    let (client, server) = if client_end { (local, peer) } else { (peer, local) };
    let conn = wire.borrow_mut().attach(&host_name(client), &host_name(server), (client, server), client_end);
    let (out_dir, in_dir) = if client_end { (Dir::Request, Dir::Response) } else { (Dir::Response, Dir::Request) };
    Box::new(Tap { inner: stream, wire: wire.clone(), conn, out: FrameScanner::new(out_dir), inn: FrameScanner::new(in_dir), apis: BTreeMap::new() })
}

/// A stream that reports the frames written to it and read from it to the wire log.
struct Tap {
    inner: turmoil::net::TcpStream,
    wire: Rc<RefCell<Wire>>,
    conn: u32,
    out: FrameScanner,
    inn: FrameScanner,
    /// Requests seen on this end whose response has not been: correlation id -> api key.
    apis: BTreeMap<i32, i16>,
}

impl Tap {
    fn saw(&mut self, bytes: &[u8], side: Side) {
        let scanner = match side {
            Side::Send => &mut self.out,
            Side::Recv => &mut self.inn,
        };
        let dir = scanner.dir();
        let heads = scanner.feed(bytes);
        let time_ms = crate::workload::sim_now_ms();
        for h in heads {
            let api_key = match h.api_key {
                Some(k) => {
                    self.apis.insert(h.correlation_id, k);
                    k
                }
                None => self.apis.remove(&h.correlation_id).unwrap_or(-1),
            };
            self.wire.borrow_mut().record(WireEvent { time_ms, conn: self.conn, dir, side, correlation_id: h.correlation_id, api_key });
        }
    }
}

impl AsyncRead for Tap {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.saw(&buf.filled()[before..], Side::Recv);
        }
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.saw(&buf[..n], Side::Send);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
