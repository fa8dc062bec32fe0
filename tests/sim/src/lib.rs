//! fencelock-sim: the whole system (protocol servers, core clients, a network, disks, crashes
//! and a fenced resource) in one seeded, single-threaded process on simulated time.
//!
//! [`run`] simulates one seed and checks the invariants after every step and at the end; the
//! same seed always gives the same run, so a failure replays exactly (`tests/sim/README.md`).

/// Adds a line to a world's trace, formatted only when the run is traced.
macro_rules! note {
    ($world:expr, $($arg:tt)*) => {
        if $world.tracing {
            let line = format!($($arg)*);
            $world.note(&line);
        }
    };
}

mod cluster;
pub mod lin;
pub mod rng;
mod sim;
mod trace;

pub use cluster::run_cluster;
pub use sim::{run, Options, Outcome, Violation};
