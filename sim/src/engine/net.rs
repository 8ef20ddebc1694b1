use std::io;

use stormlog::seam::{BoxStream, Listener, LocalFuture, Network};

use super::traffic::{Counted, Side};

/// turmoil's simulated TCP. Addresses are `host:port` with turmoil host names. Every stream
/// counts its frames onto its link (`traffic`).
pub struct TurmoilNetwork;

/// The host name behind a simulated address ("?" if turmoil does not know it).
fn host_of(addr: std::net::SocketAddr) -> String {
    turmoil::reverse_lookup(addr.ip()).unwrap_or_else(|| "?".to_string())
}

struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            let me = host_of(stream.local_addr()?);
            let counted = Counted::new(stream, Side::Acceptor, host_of(peer), me);
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
        Box::pin(async move {
            let (_, port) = parsed?;
            let listener = turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?;
            Ok(Box::new(TurmoilListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>> {
        let parsed = split(addr);
        Box::pin(async move {
            let (host, port) = parsed?;
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            let me = host_of(stream.local_addr()?);
            Ok(Box::new(Counted::new(stream, Side::Initiator, me, host)) as BoxStream)
        })
    }
}
