//! napi glue exposing fencelock-core to Node.js: the native addon of the npm package
//! `fencelock`. Every rule lives in the core; this crate only converts values. The JavaScript
//! in `node/lib` wraps these classes (`NativeEngine`, `NativeFence`, `NativeServer`,
//! `NativeCluster`, `NativeClient`) and turns the error records they throw into
//! `FencelockError` subclasses.
//!
//! Numbers: tokens and milliseconds cross as JavaScript numbers. Tokens never exceed 2^53-1
//! (the core's `MAX_TOKEN`), so they are exact; inputs are checked to be whole and in range.
//! etcd's lease ids and revisions (cluster mode) cross as decimal strings.

mod client;
mod cluster;
mod convert;
mod durable;
mod engine;
mod errors;
mod fence;
mod server;
mod tcp;

use napi_derive::napi;

pub use durable::{remove_file_durably, write_file_durably};

/// The addon's Rust allocations (leases, names, replies) go to mimalloc: under load glibc's
/// malloc and free took about a tenth of the Node server's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The constants of the core that hosts need.
#[napi(object)]
#[derive(Debug)]
pub struct Constants {
    /// Names of the files of a server's data directory, in the core's order.
    pub data_files: Vec<String>,
    /// The version written into fence files.
    pub fence_file_version: u32,
    /// The highest token the core issues (2^53-1).
    pub max_token: f64,
    /// The version written into snapshots.
    pub snapshot_version: u32,
    /// The version of this crate.
    pub version: String,
    /// The PBKDF2 iteration count `hashPassword` uses by default.
    pub default_iterations: u32,
}

/// Returns the system monotonic clock (`CLOCK_MONOTONIC`: system-wide, running since boot and
/// across process restarts) in whole ms, truncated. The server stores its lease horizon on this
/// clock; its own `performance.now()` is the same clock from another origin (libuv reads
/// `CLOCK_MONOTONIC` on Linux), which the tests check against this reading.
#[napi]
pub fn monotonic_ms() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let ms = u64::try_from(now.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000;
    convert::number(ms)
}

/// Returns the users-file hash of `password` (`pbkdf2-sha256$iterations$salt$key`); `salt`
/// must come from `crypto.randomBytes(16)`. Default iterations: `constants().defaultIterations`.
#[napi]
pub fn hash_password(
    password: napi::bindgen_prelude::Buffer,
    salt: napi::bindgen_prelude::Buffer,
    iterations: Option<u32>,
) -> String {
    fencelock_core::protocol::hash_password(
        &password,
        &salt,
        iterations.unwrap_or(fencelock_core::protocol::DEFAULT_ITERATIONS),
    )
}

/// Returns true when `password` matches a `hashPassword` hash.
#[napi]
pub fn verify_password(hash: String, password: napi::bindgen_prelude::Buffer) -> bool {
    fencelock_core::protocol::verify_password(&hash, &password)
}

/// Returns the core's constants.
#[napi]
pub fn constants() -> Constants {
    Constants {
        data_files: fencelock_core::DataFile::ALL
            .iter()
            .map(|file| file.name().to_owned())
            .collect(),
        fence_file_version: fencelock_core::FENCE_FILE_VERSION,
        max_token: convert::number(fencelock_core::MAX_TOKEN),
        snapshot_version: fencelock_core::SNAPSHOT_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        default_iterations: fencelock_core::protocol::DEFAULT_ITERATIONS,
    }
}
