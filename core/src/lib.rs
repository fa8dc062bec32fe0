//! fencelock-core: the whole semantics of fencelock as a sans-IO state machine.
//!
//! A client takes a lease on a named lock and receives a fencing token that is larger than
//! every token issued before it. The protected resource keeps the highest token it has
//! accepted ([`Fence`]) and refuses older ones, so a client paused past its lease can do no harm.
//!
//! Nothing here reads a clock, does I/O, spawns threads or panics on any input (invariant I6):
//! every method that needs time takes `now` as its first argument, inputs are calls
//! (`acquire`, `receive`, `handle_timeout`, ...) and outputs are polled (`poll_event`,
//! `poll_persist`, `poll_output`, `poll_timeout`). `docs/HOSTS.md` shows how a host drives it.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod client;
pub mod cluster;
mod config;
pub mod durable;
mod engine;
mod error;
mod fence;
mod hash_map;
mod horizon;
mod json;
mod order;
#[cfg(feature = "sim-bugs")]
mod planted;
pub mod protocol;
mod rules;
mod snapshot;
mod text;
mod time;
mod tokens;
mod vec_map;

pub use config::{Config, HashSeed};
pub use durable::{CorruptFile, DataFile, DataFiles, FileAction, Recovery, StartKind};
pub use engine::{
    AcquireOptions, Acquired, ClientId, Engine, EngineImage, Event, HolderInfo, LeaseView,
    LockInfo, Mode, Start, Stats, Token, WaiterId, WaiterInfo, IMAGE_VERSION,
};
pub use error::{Error, ErrorCode};
#[cfg(feature = "std")]
pub use fence::SharedFence;
pub use fence::{Fence, FenceMark, FenceOutcome, FENCE_FILE_VERSION};
pub use horizon::{BootClock, GraceCase, Horizon, HORIZON_VERSION};
#[cfg(feature = "sim-bugs")]
pub use planted::PlantedBug;
pub use snapshot::{Snapshot, SnapshotDelay, SnapshotLease, SNAPSHOT_VERSION};
#[cfg(feature = "std")]
pub use time::MonotonicClock;
pub use time::{Clock, Instant, ManualClock};
pub use tokens::MAX_TOKEN;

/// The README example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
