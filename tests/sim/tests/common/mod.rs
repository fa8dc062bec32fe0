//! What the seed tests of both simulations share.

use fencelock_core::client::ClientConfig;
use fencelock_core::Config;
use fencelock_sim::{Options, Outcome};

/// Runs `seeds` (each with `options`) through `run` with a bug planted in every engine or
/// client; returns the first seed that catches it and what it reported.
pub fn caught(
    seeds: std::ops::Range<u64>,
    options: fn(u64) -> Options,
    run: fn(&Options) -> Outcome,
    engine: Option<fn(&mut Config)>,
    client: Option<fn(&mut ClientConfig)>,
) -> Option<(u64, String)> {
    seeds.into_iter().find_map(|seed| {
        let mut options = options(seed);
        options.engine_tweak = engine;
        options.client_tweak = client;
        run(&options).violation.map(|v| {
            // The failing run is replayed with its trace for the report.
            assert!(
                v.trace.len() > 1
                    && v.trace
                        .last()
                        .is_some_and(|line| line.contains("VIOLATION")),
                "seed {seed}: a failure reported without the events before it"
            );
            (seed, v.message)
        })
    })
}
