use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future that stays on the node's own (single) thread.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A connected byte stream (TCP, real or simulated).
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Accepts inbound connections on one bound address.
pub trait Listener {
    /// The next inbound connection and the peer's address.
    fn accept(&mut self) -> LocalFuture<'_, io::Result<(BoxStream, String)>>;
}

/// Binds and connects. Addresses are `host:port` strings: `broker-1:9092` in simulation,
/// `127.0.0.1:19092` for real.
pub trait Network {
    fn bind(&self, addr: &str) -> LocalFuture<'static, io::Result<Box<dyn Listener>>>;
    fn connect(&self, addr: &str) -> LocalFuture<'static, io::Result<BoxStream>>;
}
