//! `loadgen engine`: the in-process Rust engine, acquire + release pairs per second, the same
//! loop bench/node/engine.js and bench/python/engine.py run through their bindings.

use std::time::{Duration, Instant as StdInstant};

use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Instant};

/// Runs pairs for `duration` and returns pairs per second.
///
/// # Errors
/// An acquire that is not granted at once, or a refused release (a bug: the names are free).
pub fn pairs_per_second(duration: Duration) -> Result<f64, String> {
    let names: Vec<String> = (0..1024).map(|index| format!("lock:{index}")).collect();
    let options = AcquireOptions::default();
    let mut engine = Engine::new(Config::default());
    let start = StdInstant::now();
    let mut pairs = 0u64;
    while start.elapsed() < duration {
        for name in &names {
            // The clock is read per pair, as a host does.
            let now = Instant(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
            let Ok(Acquired::Granted { token, .. }) = engine.acquire(now, name, 30_000, &options)
            else {
                return Err(format!("acquire {name} was not granted"));
            };
            engine
                .release(now, name, token)
                .map_err(|error| error.message())?;
            while engine.poll_persist().is_some() {}
        }
        pairs += names.len() as u64;
    }
    Ok(pairs as f64 / start.elapsed().as_secs_f64())
}
