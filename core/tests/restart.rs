//! Restart paths the vectors cannot express: stale and corrupt snapshots.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Error, Instant, Snapshot, Start};

fn grant(engine: &mut Engine, now: u64, name: &str) -> u64 {
    match engine.acquire(Instant(now), name, 10_000, &AcquireOptions::default()) {
        Ok(Acquired::Granted { token, .. }) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn a_snapshot_older_than_the_ceiling_counts_as_a_crash() {
    let mut config = Config::default();
    config.token_block = 10;
    let mut engine = Engine::new(config.clone());
    grant(&mut engine, 0, "a");
    let ceiling = engine.poll_persist().unwrap();
    let old_snapshot = engine.snapshot(Instant(1));

    // The next run restores it but never removes it, issues past the ceiling, then crashes.
    let mut next_run = Engine::start(
        Instant(0),
        config.clone(),
        Start::Clean {
            ceiling,
            snapshot: old_snapshot.clone(),
        },
    )
    .unwrap();
    let mut issued = 0;
    for i in 0..15 {
        issued = grant(&mut next_run, 0, &format!("n{i}"));
    }
    let newer_ceiling = next_run.poll_persist().unwrap();
    assert!(newer_ceiling > ceiling);

    // Restarting from the stale snapshot with the newer ceiling must not reissue tokens.
    let mut third = Engine::start(
        Instant(0),
        config.clone(),
        Start::Clean {
            ceiling: newer_ceiling,
            snapshot: old_snapshot,
        },
    )
    .unwrap();
    assert!(
        third.grace_left(Instant(0)) > 0,
        "a stale snapshot is a crash: restart grace"
    );
    let after = grant(
        &mut third,
        config.max_ttl_ms + config.max_lock_delay_ms,
        "a",
    );
    assert!(
        after > issued,
        "token {after} must exceed every earlier token ({issued})"
    );
}

#[test]
fn corrupt_or_foreign_snapshots_are_refused_with_a_clear_error() {
    let err = Snapshot::decode(b"{not json").unwrap_err();
    assert!(
        matches!(err, Error::BadRequest(ref m) if m.starts_with("snapshot is unreadable")),
        "{err}"
    );
    let err = Snapshot::decode(br#"{"version": 99, "next_token": 1, "leases": []}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ERR snapshot version 99 is not supported (expected 1)"
    );
    let bad = Snapshot::decode(
        br#"{"version": 1, "next_token": 5, "ceiling": 9, "leases": [{"name": "a", "token": 7, "shared": false, "ms_left": 10}]}"#,
    )
    .unwrap();
    let err = Engine::start(
        Instant(0),
        Config::default(),
        Start::Clean {
            ceiling: 9,
            snapshot: bad,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not below the next token"),
        "{err}"
    );
}

#[test]
fn snapshot_round_trips_through_bytes() {
    let mut engine = Engine::new(Config::default());
    grant(&mut engine, 0, "x");
    let snapshot = engine.snapshot(Instant(2_500));
    let decoded = Snapshot::decode(&snapshot.encode()).unwrap();
    assert_eq!(decoded, snapshot);
    assert_eq!(decoded.leases[0].ms_left, 7_500);
}

#[test]
fn hosts_name_starts_with_one_shared_table() {
    assert!(matches!(
        Start::from_parts("fresh", 0, None),
        Ok(Start::Fresh)
    ));
    assert!(matches!(
        Start::from_parts("crashed", 7, None),
        Ok(Start::Crashed { ceiling: 7 })
    ));
    let bytes = Engine::new(Config::default()).snapshot(Instant(0)).encode();
    assert!(matches!(
        Start::from_parts("clean", 0, Some(&bytes)),
        Ok(Start::Clean { ceiling: 0, .. })
    ));
    let err = Start::from_parts("clean", 0, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ERR start \"clean\" without a snapshot is not one of: fresh, crashed, clean with a snapshot"
    );
    assert!(Start::from_parts("warm", 0, None).is_err());
    assert!(Start::from_parts("clean", 0, Some(b"{}")).is_err());
}
