//! The simulated side of the seam: turmoil's TCP as `Network`, turmoil's crash-consistent file
//! system as `Storage`, a per-node skewable `Clock`, and `traffic`, which counts the frames each
//! link carries. The only module besides `world` (and the bench's bare-engine baseline) that
//! names turmoil.

mod clock;
mod fs;
mod net;
pub mod traffic;

pub use clock::SimClock;
pub use fs::TurmoilStorage;
pub use net::TurmoilNetwork;
