//! The fixed seeds `make test` runs, and the planted bugs (feature `sim-bugs` of
//! fencelock-core, a dev-dependency here) each found within them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fencelock_core::client::ClientConfig;
use fencelock_core::{Config, PlantedBug};
use fencelock_sim::{run, Options};

mod common;

/// Seeds run by `cargo test -p fencelock-sim`, each 30 simulated seconds plus the drain.
const FIXED_SEEDS: std::ops::Range<u64> = 0..16;

/// Seeds that found a bug (tests/sim/README.md, "Found so far"), run as long as the seed
/// took to find it (two simulated minutes, the default, plus the drain).
const FOUND_SEEDS: [u64; 8] = [21, 41, 43, 346, 527, 1157, 6939, 8742];

fn options(seed: u64) -> Options {
    let mut options = Options::new(seed);
    options.duration_ms = 30_000;
    options
}

#[test]
fn fixed_seeds_pass() {
    for seed in FIXED_SEEDS {
        passes(seed, &options(seed));
    }
}

#[test]
fn seeds_that_found_bugs_pass() {
    for seed in FOUND_SEEDS {
        passes(seed, &Options::new(seed));
    }
}

/// Seeds with a lock history that needs more than 100 000 search pairs to decide (the
/// budget before `lin::BUDGET` was raised): each is decided, linearizable.
const HARD_HISTORY_SEEDS: [u64; 2] = [61432, 69096];

#[test]
fn seeds_with_hard_histories_are_decided() {
    for seed in HARD_HISTORY_SEEDS {
        passes(seed, &Options::new(seed));
    }
}

/// Runs a seed; fails on a violation, and on a lock history the linearizability search
/// could not decide (a check that gives up checks nothing).
fn passes(seed: u64, options: &Options) {
    let outcome = run(options);
    if let Some(violation) = outcome.violation {
        panic!(
            "seed {seed}: {}\n{}\nreplay: cargo run -p fencelock-sim --profile sim -- --seed {seed}",
            violation.message,
            violation.trace.join("\n")
        );
    }
    assert!(outcome.checked_ops > 0, "seed {seed} checked no history");
    assert_eq!(
        outcome.undecided_histories, 0,
        "seed {seed}: a lock history was left undecided"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(&options(7));
    let second = run(&options(7));
    assert_eq!(
        (first.steps, first.grants, first.crashes, first.checked_ops),
        (
            second.steps,
            second.grants,
            second.crashes,
            second.checked_ops
        )
    );
}

/// Runs the fixed seeds with a bug planted; returns the first seed that catches it.
fn caught(
    engine: Option<fn(&mut Config)>,
    client: Option<fn(&mut ClientConfig)>,
) -> Option<(u64, String)> {
    common::caught(FIXED_SEEDS, options, run, engine, client)
}

#[test]
fn planted_stale_timer_is_found() {
    let found = caught(Some(|c| c.planted_bug = Some(PlantedBug::StaleTimer)), None);
    let (seed, message) = found.expect("a stale timer unlocking the next holder went unnoticed");
    eprintln!("stale timer found by seed {seed}: {message}");
}

#[test]
fn planted_token_reuse_is_found() {
    let found = caught(Some(|c| c.planted_bug = Some(PlantedBug::TokenReuse)), None);
    let (seed, message) = found.expect("a token reused after a crash went unnoticed");
    eprintln!("token reuse found by seed {seed}: {message}");
}

#[test]
fn planted_late_client_deadline_is_found() {
    let found = caught(
        None,
        Some(|c| c.planted_bug = Some(PlantedBug::LateClientDeadline)),
    );
    let (seed, message) = found.expect("a client deadline later than the server's went unnoticed");
    eprintln!("late client deadline found by seed {seed}: {message}");
}

#[test]
fn planted_query_dropping_a_holder_is_found() {
    let found = caught(
        Some(|c| c.planted_bug = Some(PlantedBug::QueryDropsHolder)),
        None,
    );
    let (seed, message) = found.expect("a QUERY leaving out a live holder went unnoticed");
    eprintln!("QUERY leaving out a holder found by seed {seed}: {message}");
}

#[test]
fn planted_waits_kept_after_a_disconnect_are_found() {
    let found = caught(
        Some(|c| c.planted_bug = Some(PlantedBug::DisconnectKeepsWaits)),
        None,
    );
    let (seed, message) = found.expect("a waiter outliving its connection went unnoticed");
    eprintln!("waits kept after a disconnect found by seed {seed}: {message}");
}
