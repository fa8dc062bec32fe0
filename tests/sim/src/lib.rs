//! fencelock-sim: the whole system (protocol servers, core clients, a network, disks, crashes
//! and a fenced resource) in one seeded, single-threaded process on simulated time.
//!
//! [`run`] simulates one seed and checks the invariants after every step and at the end; the
//! same seed always gives the same run, so a failure replays exactly (`tests/sim/README.md`).

mod cluster;
pub mod lin;
pub mod rng;
mod sim;

pub use cluster::run_cluster;
pub use sim::{run, Options, Outcome, Violation};
