//! Regression (found by the deterministic simulator, tests/sim, seed 11): a server that shut
//! down cleanly while still in the restart grace of an earlier crash must keep that grace
//! after its clean restart. The crashed run's leases are in no snapshot and may still be live.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

use fencelock_core::{
    AcquireOptions, Config, DataFile, DataFiles, Engine, Error, FileAction, Instant, Recovery,
    StartKind,
};

#[test]
fn a_clean_restart_keeps_the_grace_of_an_earlier_crash() {
    let mut config = Config::default();
    config.max_ttl_ms = 1_000;
    // No lock-delay may be asked for: the full grace is the longest TTL alone.
    config.max_lock_delay_ms = 0;
    let mut crashed = Engine::after_crash(Instant(0), config.clone(), 10);
    assert_eq!(crashed.grace_left(Instant(0)), 1_000);
    // Shut down cleanly 100 ms into the grace, restart 100 ms later.
    let actions = crashed.shutdown(Instant(100));
    let mut ceiling = None;
    let mut snapshot = None;
    for action in actions {
        if let FileAction::Write { file, bytes } = action {
            match file {
                DataFile::Ceiling => ceiling = Some(bytes),
                DataFile::Snapshot => snapshot = Some(bytes),
                _ => {}
            }
        }
    }
    let mut files = DataFiles::default();
    files.ceiling = ceiling.as_deref();
    files.snapshot = snapshot.as_deref();
    let mut plan = Recovery::plan(files).unwrap();
    assert_eq!(plan.kind, StartKind::Clean);
    let mut engine = plan.start_engine(Instant(200), config);
    let early = engine.acquire(Instant(200), "job", 500, &AcquireOptions::default());
    assert!(
        matches!(early, Err(Error::NotReady { ms_left: 900 })),
        "granted inside the crash grace: {early:?}"
    );
    assert!(engine
        .acquire(Instant(1_100), "job", 500, &AcquireOptions::default())
        .is_ok());
}
