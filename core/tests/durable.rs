//! The data directory rules: recovery plans from raw bytes, shutdown ordering, the fence file
//! codec and the timer rule.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // Settings are set field by field: the structs are non-exhaustive outside the crate.
    clippy::field_reassign_with_default
)]

use fencelock_core::durable::{decode_ceiling, encode_ceiling};
use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{
    AcquireOptions, Acquired, Config, DataFile, DataFiles, Engine, Fence, FileAction, Instant,
    Recovery, Start, StartKind,
};
use proptest::prelude::*;

fn config() -> Config {
    let mut config = Config::default();
    config.token_block = 10;
    config
}

fn grant(engine: &mut Engine, now: u64, name: &str, options: &AcquireOptions) -> u64 {
    match engine.acquire(Instant(now), name, 10_000, options) {
        Ok(Acquired::Granted { token, .. }) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn files<'a>(ceiling: Option<&'a [u8]>, snapshot: Option<&'a [u8]>) -> DataFiles<'a> {
    let mut files = DataFiles::default();
    files.set(DataFile::Ceiling, ceiling);
    files.set(DataFile::Snapshot, snapshot);
    files
}

/// Applies file actions to an in-memory data directory, as a host would on disk.
fn apply(dir: &mut [Option<Vec<u8>>; 3], actions: impl IntoIterator<Item = FileAction>) {
    for action in actions {
        match action {
            FileAction::Write { file, bytes } => dir[file as usize] = Some(bytes),
            FileAction::Remove { file } => dir[file as usize] = None,
        }
    }
}

fn read(dir: &[Option<Vec<u8>>; 3]) -> DataFiles<'_> {
    let mut read = files(dir[0].as_deref(), dir[1].as_deref());
    read.set(DataFile::Horizon, dir[2].as_deref());
    read
}

#[test]
fn data_files_have_fixed_names() {
    assert_eq!(DataFile::Ceiling.name(), "ceiling");
    assert_eq!(DataFile::Snapshot.name(), "snapshot.json");
    for file in DataFile::ALL {
        assert_eq!(DataFile::from_name(file.name()), Some(file));
    }
    assert_eq!(DataFile::from_name("other"), None);
}

#[test]
fn nothing_on_disk_is_a_fresh_start_with_nothing_to_do() {
    let mut plan = Recovery::plan(DataFiles::default()).unwrap();
    assert_eq!(plan.kind, StartKind::Fresh);
    assert!(plan.actions.is_empty());
    let engine = plan.start_engine(Instant(0), config());
    assert_eq!(engine.grace_left(Instant(0)), 0);
    assert!(plan.summary(Instant(0), &engine).contains("fresh"));
}

#[test]
fn a_ceiling_without_a_snapshot_is_a_crash() {
    let mut plan = Recovery::plan(files(Some(b"40\n"), None)).unwrap();
    assert_eq!(plan.kind, StartKind::Crashed);
    assert!(matches!(plan.start, Start::Crashed { ceiling: 40 }));
    assert!(plan.actions.is_empty());
    let mut engine = plan.start_engine(Instant(0), config());
    let grace = engine.grace_left(Instant(0));
    assert_eq!(grace, config().max_ttl_ms + config().max_lock_delay_ms);
    let summary = plan.summary(Instant(0), &engine);
    assert!(
        summary.starts_with("recovered from a crash") && summary.contains("restart grace"),
        "{summary}"
    );
    assert_eq!(
        grant(&mut engine, grace, "a", &AcquireOptions::default()),
        41
    );
}

#[test]
fn a_clean_shutdown_restarts_clean_and_removes_the_snapshot_first() {
    let mut dir: [Option<Vec<u8>>; 3] = [None, None, None];
    let mut engine = Engine::new(config());
    let kept = grant(&mut engine, 0, "kept", &AcquireOptions::default());
    let mut ephemeral = AcquireOptions::default();
    ephemeral.client = 7;
    ephemeral.ephemeral = true;
    grant(&mut engine, 0, "gone", &ephemeral);
    apply(&mut dir, engine.shutdown(Instant(1_000)));
    assert_eq!(decode_ceiling(dir[0].as_deref().unwrap()).unwrap(), 10);

    let mut plan = Recovery::plan(read(&dir)).unwrap();
    assert_eq!(plan.kind, StartKind::Clean);
    assert_eq!(
        plan.actions,
        vec![FileAction::Remove {
            file: DataFile::Snapshot
        }]
    );
    let mut engine = plan.start_engine(Instant(0), config());
    assert_eq!(engine.grace_left(Instant(0)), 0);
    assert_eq!(
        engine.live_leases(),
        1,
        "the EPHEMERAL lease ended with its client"
    );
    assert_eq!(engine.verify(Instant(0), "kept", kept), Ok(9_000));
    assert!(plan
        .summary(Instant(0), &engine)
        .starts_with("recovered from a clean shutdown: 1 leases restored"));
    apply(&mut dir, plan.actions);
    assert!(dir[1].is_none());
    // A crash now restarts as a crash: the snapshot cannot revive leases twice.
    assert_eq!(Recovery::plan(read(&dir)).unwrap().kind, StartKind::Crashed);
}

#[test]
fn a_corrupt_snapshot_is_refused_and_the_start_is_a_crash() {
    let mut plan = Recovery::plan(files(Some(b"30"), Some(b"{not json"))).unwrap();
    assert_eq!(plan.kind, StartKind::SnapshotRefused);
    assert!(matches!(plan.start, Start::Crashed { ceiling: 30 }));
    assert!(plan.refusal.as_deref().unwrap().contains("unreadable"));
    assert_eq!(
        plan.actions,
        vec![FileAction::Remove {
            file: DataFile::Snapshot
        }]
    );
    let engine = plan.start_engine(Instant(0), config());
    assert!(engine.grace_left(Instant(0)) > 0);
    let summary = plan.summary(Instant(0), &engine);
    assert!(summary.contains("recovering as from a crash"), "{summary}");
}

#[test]
fn a_snapshot_from_another_run_is_refused_without_reissuing_tokens() {
    let mut engine = Engine::new(config());
    grant(&mut engine, 0, "a", &AcquireOptions::default());
    let actions = engine.shutdown(Instant(1));
    let FileAction::Write {
        bytes: snapshot, ..
    } = &actions[1]
    else {
        panic!("the snapshot comes second: {actions:?}")
    };
    // The ceiling moved on after the snapshot was written.
    let plan = Recovery::plan(files(Some(b"1010\n"), Some(snapshot))).unwrap();
    assert_eq!(plan.kind, StartKind::SnapshotRefused);
    assert!(matches!(plan.start, Start::Crashed { ceiling: 1010 }));
    assert!(plan
        .refusal
        .as_deref()
        .unwrap()
        .contains("not from the last run"));
    // A lost ceiling file: the snapshot still vouches for its own ceiling.
    let plan = Recovery::plan(files(None, Some(snapshot))).unwrap();
    assert_eq!(plan.kind, StartKind::SnapshotRefused);
    assert!(matches!(plan.start, Start::Crashed { ceiling: 10 }));
}

#[test]
fn an_inconsistent_snapshot_becomes_a_crash_start_not_an_error() {
    let bad = br#"{"version": 1, "next_token": 5, "ceiling": 9, "leases": [{"name": "a", "token": 7, "shared": false, "ms_left": 10}]}"#;
    let mut plan = Recovery::plan(files(Some(b"9"), Some(bad))).unwrap();
    assert_eq!(plan.kind, StartKind::Clean);
    let mut engine = plan.start_engine(Instant(0), config());
    assert_eq!(plan.kind, StartKind::SnapshotRefused);
    assert!(plan
        .refusal
        .as_deref()
        .unwrap()
        .contains("not below the next token"));
    let grace = engine.grace_left(Instant(0));
    assert!(grace > 0);
    assert_eq!(
        grant(&mut engine, grace, "a", &AcquireOptions::default()),
        10
    );
}

#[test]
fn a_corrupt_ceiling_is_a_clear_error() {
    for bad in [
        &b""[..],
        b"\n",
        b"12x",
        b"-3",
        b"1e5",
        b"99999999999999999999",
        b"9007199254740992",
    ] {
        let error = Recovery::plan(files(Some(bad), None)).unwrap_err();
        assert_eq!(error.what, "ceiling");
        assert!(
            error.to_string().starts_with("ceiling is corrupt: "),
            "{error}"
        );
    }
    assert!(Recovery::plan(files(Some(b"x"), Some(b"{}"))).is_err());
    assert_eq!(decode_ceiling(b" 42 \n"), Ok(42));
    assert_eq!(
        decode_ceiling(&encode_ceiling(9_007_199_254_740_991)),
        Ok(9_007_199_254_740_991)
    );
}

#[test]
fn shutdown_writes_the_ceiling_then_closes_then_writes_the_snapshot() {
    let mut server = Server::new(Engine::new(config()), ServerConfig::default());
    let holder = server.connect(Instant(0));
    let waiter = server.connect(Instant(0));
    server.receive(
        Instant(0),
        holder,
        b"ACQUIRE a 10000\r\nACQUIRE e 10000 EPHEMERAL\r\n",
    );
    let first: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    assert!(matches!(
        first[0],
        Output::File(FileAction::Write {
            file: DataFile::Ceiling,
            ..
        })
    ));
    server.receive(Instant(1), waiter, b"ACQUIRE a 10000 WAIT 5000\r\n");
    server.shutdown(Instant(2));
    let outputs: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    let kinds: Vec<&str> = outputs
        .iter()
        .map(|output| match output {
            Output::File(FileAction::Write {
                file: DataFile::Ceiling,
                ..
            }) => "ceiling",
            Output::File(FileAction::Write {
                file: DataFile::Snapshot,
                ..
            }) => "snapshot",
            Output::File(FileAction::Remove { .. }) => "remove",
            Output::Transmit { .. } => "transmit",
            Output::Close { .. } => "close",
            other => panic!("unexpected output {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["ceiling", "close", "close", "snapshot"]);
    assert_eq!(server.connections(), 0);
    assert_eq!(server.poll_timeout(), None);
    let Output::File(FileAction::Write { bytes, .. }) = &outputs[3] else {
        unreachable!()
    };
    let plan = Recovery::plan(files(Some(b"10\n"), Some(bytes))).unwrap();
    assert_eq!(plan.kind, StartKind::Clean);
    let Start::Clean { snapshot, .. } = &plan.start else {
        unreachable!()
    };
    assert_eq!(
        snapshot.leases.len(),
        1,
        "only the non-ephemeral lease is kept"
    );
    assert_eq!(snapshot.leases[0].name, "a");

    // A connection after shutdown is told and closed.
    let late = server.connect(Instant(3));
    let outputs: Vec<Output> = std::iter::from_fn(|| server.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![
            Output::Transmit {
                conn: late,
                bytes: b"-ERR server is shutting down\r\n".to_vec()
            },
            Output::Close { conn: late }
        ]
    );
}

#[test]
fn shutdown_persists_a_ceiling_raised_just_before_it() {
    let mut engine = Engine::new(config());
    for i in 0..10 {
        grant(&mut engine, 0, &format!("n{i}"), &AcquireOptions::default());
    }
    let _ = engine.poll_persist();
    grant(&mut engine, 0, "eleventh", &AcquireOptions::default());
    // The ceiling 20 is pending; the shutdown's ceiling write replaces it.
    let actions = engine.shutdown(Instant(1));
    assert_eq!(engine.poll_persist(), None);
    assert_eq!(
        actions[0],
        FileAction::Write {
            file: DataFile::Ceiling,
            bytes: b"20\n".to_vec()
        }
    );
}

#[test]
fn fence_file_round_trips_and_reads_the_earlier_format() {
    let mut fence = Fence::new();
    fence.check("db", 42);
    fence.check("ünïcode \"quoted\"", 7);
    let decoded = Fence::decode(&fence.encode()).unwrap();
    assert_eq!(
        decoded.marks().collect::<Vec<_>>(),
        fence.marks().collect::<Vec<_>>()
    );
    // What fencelock.Fence wrote before the codec moved into core.
    let earlier = Fence::decode(br#"{"marks": {"db": 41, "q": 3}, "version": 1}"#).unwrap();
    assert_eq!(earlier.highest("db"), 41);
    assert_eq!(earlier.highest("q"), 3);
    assert_eq!(
        Fence::decode(br#"{"marks": {}, "version": 1}"#)
            .unwrap()
            .marks()
            .count(),
        0
    );
}

#[test]
fn corrupt_fence_files_are_refused_with_a_clear_error() {
    for (bad, says) in [
        (&b"{broken"[..], "fence file is corrupt"),
        (
            br#"{"marks": {"db": 1}, "version": 2}"#,
            "version 2, expected 1",
        ),
        (br#"{"marks": {"db": -1}, "version": 1}"#, "invalid value"),
        (br#"{"marks": {"db": "1"}, "version": 1}"#, "invalid type"),
        (br#"{"version": 1}"#, "missing field `marks`"),
        (br#"[1, 2]"#, "fence file"),
        (b"", "fence file"),
    ] {
        let error = Fence::decode(bad).unwrap_err();
        assert!(error.to_string().contains(says), "{error} lacks {says:?}");
    }
}

#[test]
fn handle_timeout_at_poll_timeout_always_makes_progress() {
    let mut delayed = config();
    delayed.lock_delay_ms = 3;
    let mut engine = Engine::new(delayed);
    let mut wait = AcquireOptions::default();
    wait.wait_ms = 25;
    for i in 0..20u64 {
        let name = format!("l{}", i % 4);
        let _ = engine.acquire(Instant(i), &name, 7 + i % 5, &wait);
    }
    let mut last = Instant::ZERO;
    let mut steps = 0;
    while let Some(due) = engine.poll_timeout() {
        assert!(due >= last);
        // One millisecond early does nothing ...
        if due > last {
            engine.handle_timeout(Instant(due.as_ms() - 1));
            assert_eq!(engine.poll_timeout(), Some(due));
        }
        // ... and exactly on time always moves on.
        engine.handle_timeout(due);
        assert!(engine.poll_timeout().map_or(true, |next| next > due));
        last = due;
        steps += 1;
        assert!(steps < 1_000);
    }
    assert!(steps > 5, "only {steps} timers");
}

proptest! {
    #[test]
    fn ceiling_and_fence_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_ceiling(&bytes);
        let _ = Fence::decode(&bytes);
        let _ = Recovery::plan(files(Some(&bytes), Some(&bytes)));
        let _ = Recovery::plan(files(None, Some(&bytes)));
        let mut with_horizon = files(Some(b"1"), None);
        with_horizon.set(DataFile::Horizon, Some(&bytes));
        let _ = Recovery::plan(with_horizon);
        let _ = fencelock_core::Horizon::decode(&bytes);
    }

    #[test]
    fn ceilings_round_trip(ceiling in 0u64..=fencelock_core::MAX_TOKEN) {
        prop_assert_eq!(decode_ceiling(&encode_ceiling(ceiling)), Ok(ceiling));
    }

    #[test]
    fn fence_files_round_trip(marks in proptest::collection::btree_map(".{0,8}", any::<u64>(), 0..8)) {
        let mut fence = Fence::new();
        for (resource, token) in &marks {
            fence.restore(resource, *token);
        }
        let decoded = Fence::decode(&fence.encode()).unwrap();
        prop_assert_eq!(decoded.marks().collect::<Vec<_>>(), fence.marks().collect::<Vec<_>>());
    }
}
