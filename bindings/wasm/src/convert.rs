//! Numbers, settings and seeds from JavaScript into the core's types.

use alloc::string::String;
use alloc::vec::Vec;

use fencelock_core::protocol::ServerConfig;
use fencelock_core::{Config, Engine, HashSeed, Instant, Start};
use wasm_bindgen::JsValue;

use crate::errors::{throw, OrThrow};
use crate::record::settings;

/// 2^64: every whole number below it fits a `u64`. Above 2^53 a JavaScript number may
/// already be rounded, but the core, not the glue, decides what is out of range.
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
/// A `RangeError` for a fraction, a negative, NaN, an infinity or a number of 2^64 or more.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn whole(what: &str, value: f64) -> Result<u64, JsValue> {
    // In 0..2^64 the cast truncates exactly, so the round trip holds for whole numbers only
    // (`f64::fract` is not in `core`).
    if (0.0..U64_END).contains(&value) && (value as u64) as f64 == value {
        // Checked above: a whole number in 0..2^64, which u64 holds exactly.
        Ok(value as u64)
    } else {
        // JavaScript prints the number: formatting floats in Rust would add their code to
        // every page's module.
        let shown = js_sys::Number::from(value)
            .to_string_with_radix(10)
            .unwrap_or_else(|_| "?".into());
        let message = js_sys::JsString::from([what, " must be a whole number >= 0, got "].concat())
            .concat(&shown);
        Err(js_sys::RangeError::new(&String::from(message)).into())
    }
}

/// Reads `nowMs`.
pub(crate) fn instant(now_ms: f64) -> Result<Instant, JsValue> {
    whole("nowMs", now_ms).map(Instant)
}

/// Returns a `TypeError` with `message`.
pub(crate) fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

/// Starts from `Config::default()` and applies each setting by its core name. The hash seed
/// is 16 bytes the host drew from `crypto.getRandomValues`; without one the core's fixed,
/// public key is used, which only tests should do.
///
/// # Errors
/// The core's `ERR` for an unknown name or a bad value, or a `TypeError` for a seed that is
/// not 16 bytes.
pub(crate) fn engine_config(
    settings_object: &JsValue,
    seed: Option<Vec<u8>>,
) -> Result<Config, JsValue> {
    let mut config = Config::default();
    for (name, value) in settings(settings_object)? {
        config.set(&name, value).map_err(|error| throw(&error))?;
    }
    if let Some(bytes) = seed {
        let seed = <[u8; 16]>::try_from(bytes.as_slice())
            .map_err(|_| type_error("hashSeed must be 16 bytes"))?;
        config.hash_seed = HashSeed::from_bytes(seed);
    }
    Ok(config)
}

/// Starts from `ServerConfig::default()` and applies each setting by its core name.
///
/// # Errors
/// As [`engine_config`].
pub(crate) fn server_config(settings_object: &JsValue) -> Result<ServerConfig, JsValue> {
    let mut config = ServerConfig::default();
    for (name, value) in settings(settings_object)? {
        config.set(&name, value).map_err(|error| throw(&error))?;
    }
    Ok(config)
}

/// Starts an engine: `start` is `fresh` (the default), `crashed` (with `ceiling`) or `clean`
/// (with `ceiling` and `snapshot`), at `now_ms` (default 0).
///
/// # Errors
/// The core's `ERR` for an unknown start or a snapshot that does not decode.
pub(crate) fn start_engine(
    config: Config,
    start: Option<String>,
    ceiling: Option<f64>,
    snapshot: Option<Vec<u8>>,
    now_ms: Option<f64>,
) -> Result<Engine, JsValue> {
    let ceiling = whole("ceiling", ceiling.unwrap_or(0.0))?;
    let now = instant(now_ms.unwrap_or(0.0))?;
    let start = Start::from_parts(
        start.as_deref().unwrap_or("fresh"),
        ceiling,
        snapshot.as_deref(),
    )
    .or_throw()?;
    Engine::start(now, config, start).or_throw()
}
