//! Numbers, settings and seeds from JavaScript into the core's types.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use fencelock_core::protocol::ServerConfig;
use fencelock_core::{BootClock, Config, HashSeed, Instant};
use napi::bindgen_prelude::Buffer;
use napi::{Env, Error, Status};

/// 2^64: every whole number below it fits a `u64`. Above 2^53 a JavaScript number may
/// already be rounded, but the core, not the glue, decides what is out of range
/// (a token above 2^53-1 is its `BadRequest`).
const U64_END: f64 = 18_446_744_073_709_551_616.0;

/// Returns `value` as a JavaScript number; every value the core hands out (tokens, ms, ids)
/// stays below 2^53, where the conversion is exact.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn number(value: u64) -> f64 {
    value as f64
}

/// Reads a whole, non-negative JavaScript number (below 2^64) as a `u64`.
///
/// # Errors
/// `InvalidArg` for a fraction, a negative, NaN, an infinity or a number of 2^64 or more.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn whole(what: &str, value: f64) -> napi::Result<u64> {
    if (0.0..U64_END).contains(&value) && value.fract() == 0.0 {
        // Checked above: a whole number in 0..2^64, which u64 holds exactly.
        Ok(value as u64)
    } else {
        Err(Error::new(
            Status::InvalidArg,
            format!("{what} must be a whole number >= 0, got {value}"),
        ))
    }
}

/// Reads an optional whole number.
///
/// # Errors
/// As [`whole`].
pub(crate) fn whole_opt(what: &str, value: Option<f64>) -> napi::Result<Option<u64>> {
    value.map(|value| whole(what, value)).transpose()
}

/// Builds the boot clock from what the host read, or None when it read no boot identity.
///
/// # Errors
/// The core's `BadRequest` for a boot identity that is not printable ASCII, or `InvalidArg`
/// for one without a monotonic reading.
pub(crate) fn boot_clock(
    env: &Env,
    boot_id: Option<String>,
    now: Instant,
    monotonic_ms: Option<f64>,
) -> napi::Result<Option<BootClock>> {
    let Some(boot_id) = boot_id else {
        return Ok(None);
    };
    let Some(monotonic_ms) = monotonic_ms else {
        return Err(Error::new(
            Status::InvalidArg,
            "a bootId needs the monotonicMs read with nowMs",
        ));
    };
    let monotonic_ms = whole("monotonicMs", monotonic_ms)?;
    crate::errors::OrThrow::or_throw(BootClock::at(&boot_id, now, monotonic_ms), env).map(Some)
}

/// Starts from `Config::default()` and applies each setting by its core name (`max_ttl_ms`,
/// ...). The hash seed comes from `seed` (16 bytes the host drew from the OS), or else from
/// the process's random hasher keys, so clients cannot choose colliding lock names.
///
/// # Errors
/// The core's `BadRequest` for an unknown name or a bad value (as a structured error), or
/// `InvalidArg` for a seed that is not 16 bytes.
pub(crate) fn engine_config(
    env: &Env,
    settings: Option<HashMap<String, f64>>,
    seed: Option<Buffer>,
) -> napi::Result<Config> {
    let mut config = Config::default();
    for (name, value) in settings.unwrap_or_default() {
        let value = whole(&name, value)?;
        config
            .set(&name, value)
            .map_err(|error| crate::errors::throw(env, &error))?;
    }
    let seed = match seed {
        Some(bytes) => <[u8; 16]>::try_from(bytes.as_ref())
            .map_err(|_| Error::new(Status::InvalidArg, "hashSeed must be 16 bytes".to_owned()))?,
        None => process_random_seed(),
    };
    config.hash_seed = HashSeed::from_bytes(seed);
    Ok(config)
}

/// Starts from `ServerConfig::default()` and applies each setting by its core name
/// (`max_connections`, `test_clock` as 0 or 1, ...).
///
/// # Errors
/// As [`engine_config`].
pub(crate) fn server_config(
    env: &Env,
    settings: Option<HashMap<String, f64>>,
) -> napi::Result<ServerConfig> {
    let mut config = ServerConfig::default();
    for (name, value) in settings.unwrap_or_default() {
        let value = whole(&name, value)?;
        config
            .set(&name, value)
            .map_err(|error| crate::errors::throw(env, &error))?;
    }
    Ok(config)
}

/// Draws 16 bytes from the standard library's per-process random hasher keys (which it reads
/// from the OS), for hosts that pass no seed.
fn process_random_seed() -> [u8; 16] {
    let state = RandomState::new();
    let low = state.hash_one(0x5eed_u32).to_le_bytes();
    let high = state.hash_one(0xfe_u32).to_le_bytes();
    let mut seed = [0_u8; 16];
    let (first, second) = seed.split_at_mut(8);
    first.copy_from_slice(&low);
    second.copy_from_slice(&high);
    seed
}
