//! The only seam between node code and the world: `Network`, `Storage`, `Clock`, `Entropy`.
//!
//! Node code (brokers, clients) is written against these and never names a simulator. The
//! real implementations live next to the traits (tokio TCP, std fs, the system clock); the
//! simulated ones live in the `sim` crate, except the in-memory storage, which unit tests and
//! the second engine share.

mod clock;
mod entropy;
mod framed;
mod mem_storage;
mod network;
mod std_storage;
mod storage;
mod tokio_network;

pub use clock::{Clock, SystemClock};
pub use entropy::Entropy;
pub use framed::FramedStream;
pub use mem_storage::MemStorage;
pub use network::{BoxStream, Listener, LocalFuture, Network, Stream};
pub use std_storage::StdStorage;
pub use storage::{write_atomically, Storage};
pub use tokio_network::TokioNetwork;
