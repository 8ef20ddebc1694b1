//! The simulated side of the seam: turmoil's TCP as `Network`, turmoil's crash-consistent file
//! system as `Storage`, and a per-node skewable `Clock`. The only module besides `world` that
//! names turmoil.

mod clock;
mod fs;
mod net;

pub use clock::SimClock;
pub use fs::TurmoilStorage;
pub use net::TurmoilNetwork;
