//! The lease horizon: when the engine asks for one, what a restart makes of it, and where it
//! sits among the server's outputs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // Settings are set field by field: the structs are non-exhaustive outside the crate.
    clippy::field_reassign_with_default
)]

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{
    AcquireOptions, Acquired, BootClock, Config, DataFile, DataFiles, Engine, FileAction,
    GraceCase, Horizon, Instant, Recovery, StartKind,
};

/// The system monotonic clock reads this at the host's instant 0.
const BOOT_OFFSET: u64 = 7_000_000;

fn config_on(boot: &str, now: u64) -> Config {
    let mut config = Config::default();
    config.token_block = 10;
    config.horizon_slack_ms = 1_000;
    config.boot_clock = Some(BootClock::at(boot, Instant(now), BOOT_OFFSET + now).unwrap());
    config
}

fn grant(engine: &mut Engine, now: u64, name: &str, ttl: u64, options: &AcquireOptions) -> u64 {
    match engine.acquire(Instant(now), name, ttl, options) {
        Ok(Acquired::Granted { token, .. }) => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Drains the horizon and ceiling the engine asks for, in that order, as a host would.
fn drain(engine: &mut Engine, dir: &mut Dir) {
    while let Some(horizon) = engine.poll_horizon() {
        dir.horizon = Some(horizon.encode());
    }
    while let Some(ceiling) = engine.poll_persist() {
        dir.ceiling = Some(format!("{ceiling}\n").into_bytes());
    }
}

#[derive(Default)]
struct Dir {
    ceiling: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
    horizon: Option<Vec<u8>>,
}

impl Dir {
    fn files(&self) -> DataFiles<'_> {
        let mut files = DataFiles::default();
        files.set(DataFile::Ceiling, self.ceiling.as_deref());
        files.set(DataFile::Snapshot, self.snapshot.as_deref());
        files.set(DataFile::Horizon, self.horizon.as_deref());
        files
    }

    fn apply(&mut self, actions: impl IntoIterator<Item = FileAction>) {
        for action in actions {
            let (file, bytes) = match action {
                FileAction::Write { file, bytes } => (file, Some(bytes)),
                FileAction::Remove { file } => (file, None),
            };
            match file {
                DataFile::Ceiling => self.ceiling = bytes,
                DataFile::Snapshot => self.snapshot = bytes,
                DataFile::Horizon => self.horizon = bytes,
                other => panic!("unknown file {other:?}"),
            }
        }
    }

    fn horizon(&self) -> Horizon {
        Horizon::decode(self.horizon.as_deref().unwrap()).unwrap()
    }
}

#[test]
fn a_horizon_is_asked_for_once_per_slack_and_covers_lock_delay_and_renewals() {
    let mut engine = Engine::new(config_on("boot-a", 0));
    let mut dir = Dir::default();
    let token = grant(&mut engine, 0, "a", 2_000, &AcquireOptions::default());
    drain(&mut engine, &mut dir);
    // Deadline 2000 + slack 1000, on the system clock, plus one ms of rounding.
    assert_eq!(dir.horizon().monotonic_ms, BOOT_OFFSET + 3_001);
    assert_eq!(dir.horizon().ceiling, 10);
    assert_eq!(dir.horizon().boot_id, "boot-a");
    // Deadlines within the horizon ask for nothing.
    grant(&mut engine, 500, "b", 2_000, &AcquireOptions::default());
    assert!(engine.poll_horizon().is_none());
    // Lock-delay counts: 1000 + 1500 + 600 passes 3000.
    let mut delayed = AcquireOptions::default();
    delayed.lock_delay_ms = Some(600);
    grant(&mut engine, 1_000, "c", 1_500, &delayed);
    drain(&mut engine, &mut dir);
    assert_eq!(dir.horizon().monotonic_ms, BOOT_OFFSET + 4_101);
    // A renewal past the horizon asks for a new one.
    assert_eq!(engine.renew(Instant(1_500), "a", token, 5_000), Ok(5_000));
    drain(&mut engine, &mut dir);
    assert_eq!(dir.horizon().monotonic_ms, BOOT_OFFSET + 7_501);
    assert_eq!(engine.stats().horizon_writes, 3);
    assert_eq!(engine.horizon_ms_left(Instant(1_500)), Some(6_000));
}

#[test]
fn a_busy_engine_writes_a_horizon_about_once_per_slack_period() {
    let mut engine = Engine::new(config_on("boot-a", 0));
    let mut dir = Dir::default();
    for ms in 0..20_000u64 {
        let token = grant(&mut engine, ms, "hot", 1_000, &AcquireOptions::default());
        engine.release(Instant(ms), "hot", token).unwrap();
        drain(&mut engine, &mut dir);
    }
    // 20 s of grants with a 1 s slack: one horizon per slack period, plus one restamp per
    // ceiling raised (every 10 tokens here; every 2^20 by default, as below).
    let writes = engine.stats().horizon_writes;
    let ceilings = 20_000 / 10;
    assert!(
        writes <= 20 + 1 + ceilings,
        "{writes} horizon writes in 20 s"
    );
    let mut quiet = config_on("boot-a", 0);
    quiet.token_block = 1 << 20;
    let mut engine = Engine::new(quiet);
    for ms in 0..20_000u64 {
        let token = grant(&mut engine, ms, "hot", 1_000, &AcquireOptions::default());
        engine.release(Instant(ms), "hot", token).unwrap();
        drain(&mut engine, &mut dir);
    }
    assert!(engine.stats().horizon_writes <= 21, "{:?}", engine.stats());
}

#[test]
fn without_a_boot_clock_no_horizon_is_kept() {
    let mut config = Config::default();
    config.boot_clock = None;
    let mut engine = Engine::new(config);
    grant(&mut engine, 0, "a", 1_000, &AcquireOptions::default());
    assert!(engine.poll_horizon().is_none());
    assert_eq!(engine.horizon_ms_left(Instant(0)), None);
    let actions = engine.shutdown(Instant(1));
    assert!(actions
        .iter()
        .all(|action| action.file() != DataFile::Horizon));
}

/// Runs an engine that grants `ttl` at `at`, then crashes (its files as they were).
fn crashed_run(boot: &str, at: u64, ttl: u64) -> Dir {
    let mut engine = Engine::new(config_on(boot, 0));
    let mut dir = Dir::default();
    grant(&mut engine, at, "a", ttl, &AcquireOptions::default());
    drain(&mut engine, &mut dir);
    dir
}

#[test]
fn a_crash_on_the_same_boot_waits_only_until_the_horizon() {
    let dir = crashed_run("boot-a", 0, 8_000);
    // Restarted at once (the new process's clock starts at 0 again, 100 ms later on the
    // system clock): the grace is what is left of 8000 + 1000 + 1.
    let restart = |at_system: u64| {
        let mut plan = Recovery::plan(dir.files()).unwrap();
        assert_eq!(plan.kind, StartKind::Crashed);
        let mut config = config_on("boot-a", 0);
        config.boot_clock =
            Some(BootClock::at("boot-a", Instant(0), BOOT_OFFSET + at_system).unwrap());
        let engine = plan.start_engine(Instant(0), config);
        (plan, engine)
    };
    let (plan, mut engine) = restart(100);
    assert_eq!(engine.grace_case(), GraceCase::Horizon);
    assert_eq!(engine.grace_left(Instant(0)), 8_901);
    assert_eq!(engine.grace_ms(), 8_901);
    let summary = plan.summary(Instant(0), &engine);
    assert!(
        summary.contains("restart grace 8901 ms, case horizon"),
        "{summary}"
    );
    assert!(plan.actions.is_empty());
    assert!(engine
        .acquire(Instant(8_900), "z", 100, &AcquireOptions::default())
        .is_err());
    assert_eq!(
        grant(&mut engine, 8_901, "z", 100, &AcquireOptions::default()),
        11
    );
    // Restarted after the horizon passed: no grace at all.
    let (_, mut engine) = restart(60_000);
    assert_eq!(engine.grace_case(), GraceCase::Horizon);
    assert_eq!(engine.grace_left(Instant(0)), 0);
    assert_eq!(
        grant(&mut engine, 0, "z", 100, &AcquireOptions::default()),
        11
    );
}

#[test]
fn another_boot_no_boot_clock_no_horizon_or_a_stale_one_give_the_full_grace() {
    // The longest lease and then the longest lock-delay an ACQUIRE may ask for.
    let full = Config::default().max_ttl_ms + Config::default().max_lock_delay_ms;
    let dir = crashed_run("boot-a", 0, 1_000);

    let mut plan = Recovery::plan(dir.files()).unwrap();
    let engine = plan.start_engine(Instant(0), config_on("boot-b", 0));
    assert_eq!(engine.grace_case(), GraceCase::Rebooted);
    assert_eq!(engine.grace_left(Instant(0)), full);
    assert!(plan
        .summary(Instant(0), &engine)
        .contains("case rebooted (the stored lease horizon is from another boot"));

    // A host without a boot identity: the full grace, and the horizon goes before serving,
    // since the leases of this run will not be under it.
    let mut plan = Recovery::plan(dir.files()).unwrap();
    let engine = plan.start_engine(Instant(0), Config::default());
    assert_eq!(engine.grace_case(), GraceCase::NoBootId);
    assert_eq!(engine.grace_left(Instant(0)), full);
    assert_eq!(
        plan.actions,
        vec![FileAction::Remove {
            file: DataFile::Horizon
        }]
    );

    // A data directory from before horizons.
    let mut old = Dir::default();
    old.ceiling = dir.ceiling.clone();
    let mut plan = Recovery::plan(old.files()).unwrap();
    let engine = plan.start_engine(Instant(0), config_on("boot-a", 0));
    assert_eq!(engine.grace_case(), GraceCase::NoHorizon);
    assert_eq!(engine.grace_left(Instant(0)), full);

    // A horizon written under another ceiling: a later run did not keep it up to date.
    let mut stale = Dir::default();
    stale.ceiling = Some(b"20\n".to_vec());
    stale.horizon = dir.horizon.clone();
    let mut plan = Recovery::plan(stale.files()).unwrap();
    let engine = plan.start_engine(Instant(0), config_on("boot-a", 0));
    assert_eq!(engine.grace_case(), GraceCase::StaleHorizon);
    assert_eq!(engine.grace_left(Instant(0)), full);
}

#[test]
fn the_full_grace_outlasts_the_lock_delay_an_acquire_asked_for() {
    // A lease of the longest TTL with its own lock-delay, longer than the server's default
    // (0): after a crash on another boot, the lock stays ungranted until that lock-delay
    // would have ended, not only until the longest TTL.
    let mut config = config_on("boot-a", 0);
    config.max_ttl_ms = 10_000;
    config.max_lock_delay_ms = 4_000;
    let mut engine = Engine::new(config.clone());
    let mut dir = Dir::default();
    let mut options = AcquireOptions::default();
    options.lock_delay_ms = Some(4_000);
    grant(&mut engine, 0, "a", 10_000, &options);
    drain(&mut engine, &mut dir);

    let mut plan = Recovery::plan(dir.files()).unwrap();
    let mut restarted = config;
    restarted.boot_clock = Some(BootClock::at("boot-b", Instant(0), BOOT_OFFSET).unwrap());
    let mut engine = plan.start_engine(Instant(0), restarted);
    assert_eq!(engine.grace_case(), GraceCase::Rebooted);
    assert_eq!(engine.grace_left(Instant(0)), 14_000);
    // Past the TTL, inside the lock-delay: still refused.
    let refused = engine.acquire(Instant(12_000), "a", 1_000, &AcquireOptions::default());
    assert!(
        matches!(refused, Err(fencelock_core::Error::NotReady { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        engine.acquire(Instant(14_000), "a", 1_000, &AcquireOptions::default()),
        Ok(Acquired::Granted { .. })
    ));
}

#[test]
fn a_corrupt_horizon_is_a_clear_error() {
    let mut dir = Dir::default();
    dir.ceiling = Some(b"10\n".to_vec());
    dir.horizon = Some(b"{\"version\": 1, \"boot".to_vec());
    let error = Recovery::plan(dir.files()).unwrap_err();
    assert_eq!(error.what, "horizon");
    assert!(
        error.to_string().starts_with("horizon is corrupt: "),
        "{error}"
    );
}

/// An engine on boot-a that granted `count` leases of 1 s (token block 10), as its host
/// left its data directory.
fn granted_run(count: usize) -> (Engine, Dir) {
    let mut engine = Engine::new(config_on("boot-a", 0));
    let mut dir = Dir::default();
    for i in 0..count {
        grant(
            &mut engine,
            0,
            &format!("n{i}"),
            1_000,
            &AcquireOptions::default(),
        );
        drain(&mut engine, &mut dir);
    }
    (engine, dir)
}

#[test]
fn a_raised_ceiling_restamps_the_horizon_so_it_stays_trusted() {
    let (_, dir) = granted_run(11);
    assert_eq!(dir.ceiling.as_deref(), Some(&b"20\n"[..]));
    assert_eq!(dir.horizon().ceiling, 20);
    let mut plan = Recovery::plan(dir.files()).unwrap();
    let engine = plan.start_engine(Instant(0), config_on("boot-a", 0));
    assert_eq!(engine.grace_case(), GraceCase::Horizon);
}

/// Starts a crashed run from `dir` on boot-a, 100 ms later on the system clock.
fn restart_on_boot_a(dir: &Dir) -> (Recovery, Engine) {
    let mut plan = Recovery::plan(dir.files()).unwrap();
    let mut config = config_on("boot-a", 0);
    config.boot_clock = Some(BootClock::at("boot-a", Instant(0), BOOT_OFFSET + 100).unwrap());
    let engine = plan.start_engine(Instant(0), config);
    (plan, engine)
}

#[test]
fn a_crash_between_the_horizon_and_the_raised_ceiling_keeps_the_horizon_trusted() {
    // Ten grants fill the first block of tokens (ceiling 10); the eleventh raises it to 20.
    let (mut engine, mut dir) = granted_run(10);
    assert_eq!(dir.ceiling.as_deref(), Some(&b"10\n"[..]));
    grant(&mut engine, 0, "n10", 4_000, &AcquireOptions::default());
    // The host takes the horizon first: it names the raised ceiling and covers the new lease.
    let horizon = engine.poll_horizon().unwrap();
    assert_eq!(horizon.ceiling, 20);
    dir.horizon = Some(horizon.encode());
    // SIGKILL before the ceiling write: the ceiling file still says 10.
    let (plan, mut engine) = restart_on_boot_a(&dir);
    assert_eq!(plan.kind, StartKind::Crashed);
    assert_eq!(engine.grace_case(), GraceCase::Horizon);
    // What is left of 4000 + 1000 + 1 after 100 ms, not the full grace.
    assert_eq!(engine.grace_left(Instant(0)), 4_901);
    // Tokens resume above the horizon's ceiling, the higher of the two.
    assert_eq!(engine.last_token(), 20);
    assert_eq!(
        grant(&mut engine, 4_901, "z", 100, &AcquireOptions::default()),
        21
    );

    // The same crash on a fresh directory, at its first grant: no ceiling file at all.
    let mut engine = Engine::new(config_on("boot-a", 0));
    grant(&mut engine, 0, "a", 2_000, &AcquireOptions::default());
    let mut fresh = Dir::default();
    fresh.horizon = Some(engine.poll_horizon().unwrap().encode());
    let (plan, engine) = restart_on_boot_a(&fresh);
    assert_eq!(plan.kind, StartKind::Crashed);
    assert_eq!(engine.grace_case(), GraceCase::Horizon);
    assert_eq!(engine.grace_left(Instant(0)), 2_901);
    assert_eq!(engine.last_token(), 10);
}

#[test]
fn a_run_without_a_boot_clock_after_that_crash_leaves_no_horizon_to_trust() {
    let (mut engine, mut dir) = granted_run(10);
    grant(&mut engine, 0, "n10", 1_000, &AcquireOptions::default());
    dir.horizon = Some(engine.poll_horizon().unwrap().encode());
    // A run without a boot clock: it resumes above the horizon's ceiling and removes the
    // horizon before serving, since its own leases will not be under it.
    let mut plan = Recovery::plan(dir.files()).unwrap();
    let mut config = Config::default();
    config.token_block = 10;
    let mut blind = plan.start_engine(Instant(0), config);
    assert_eq!(blind.grace_case(), GraceCase::NoBootId);
    assert_eq!(blind.last_token(), 20);
    dir.apply(plan.actions.drain(..));
    assert!(dir.horizon.is_none());
    let full = Config::default().max_ttl_ms + Config::default().max_lock_delay_ms;
    assert_eq!(
        grant(&mut blind, full, "late", 60_000, &AcquireOptions::default()),
        21
    );
    drain(&mut blind, &mut dir);
    assert_eq!(dir.ceiling.as_deref(), Some(&b"30\n"[..]));
    // It crashes in turn: the next run on the same boot has no horizon and waits in full.
    let (_, engine) = restart_on_boot_a(&dir);
    assert_eq!(engine.grace_case(), GraceCase::NoHorizon);
    assert_eq!(engine.last_token(), 30);
}

#[test]
fn a_clean_start_covers_restored_leases_before_serving_and_shutdown_removes_the_horizon() {
    let mut engine = Engine::new(config_on("boot-a", 0));
    let mut dir = Dir::default();
    grant(&mut engine, 0, "kept", 10_000, &AcquireOptions::default());
    drain(&mut engine, &mut dir);
    let actions = engine.shutdown(Instant(1_000));
    let files: Vec<(DataFile, bool)> = actions
        .iter()
        .map(|action| (action.file(), matches!(action, FileAction::Write { .. })))
        .collect();
    assert_eq!(
        files,
        [
            (DataFile::Ceiling, true),
            (DataFile::Snapshot, true),
            (DataFile::Horizon, false)
        ]
    );
    dir.apply(actions);
    assert!(dir.horizon.is_none());

    // The new process starts 5 s later on the system clock; the lease has 9 s left.
    let mut plan = Recovery::plan(dir.files()).unwrap();
    assert_eq!(plan.kind, StartKind::Clean);
    let mut config = config_on("boot-a", 0);
    config.boot_clock = Some(BootClock::at("boot-a", Instant(0), BOOT_OFFSET + 6_000).unwrap());
    let engine = plan.start_engine(Instant(0), config);
    assert_eq!(engine.grace_case(), GraceCase::None);
    assert_eq!(plan.actions.len(), 2);
    assert_eq!(plan.actions[0].file(), DataFile::Horizon);
    assert_eq!(plan.actions[1].file(), DataFile::Snapshot);
    dir.apply(plan.actions.drain(..));
    assert_eq!(
        dir.horizon().monotonic_ms,
        BOOT_OFFSET + 6_000 + 9_000 + 1_000 + 1
    );
}

#[test]
fn the_server_persists_the_horizon_before_the_reply_that_depends_on_it() {
    let mut server = Server::new(Engine::new(config_on("boot-a", 0)), ServerConfig::default());
    let conn = server.connect(Instant(0));
    server.receive(Instant(0), conn, b"ACQUIRE a 4000\r\n");
    let kinds = |server: &mut Server| -> Vec<String> {
        std::iter::from_fn(|| server.poll_output())
            .map(|output| match output {
                Output::File(action) => action.file().name().to_owned(),
                Output::Transmit { .. } => String::from("transmit"),
                Output::Close { .. } => String::from("close"),
                other => panic!("unknown output {other:?}"),
            })
            .collect()
    };
    assert_eq!(kinds(&mut server), ["horizon", "ceiling", "transmit"]);
    server.receive(Instant(10), conn, b"ACQUIRE b 4000\r\n");
    assert_eq!(kinds(&mut server), ["transmit"]);
    server.receive(Instant(20), conn, b"ACQUIRE c 6000\r\n");
    assert_eq!(kinds(&mut server), ["horizon", "transmit"]);
    server.receive(Instant(30), conn, b"INFO server\r\n");
    let info = std::iter::from_fn(|| server.poll_output())
        .find_map(|output| match output {
            Output::Transmit { bytes, .. } => Some(String::from_utf8(bytes).unwrap()),
            _ => None,
        })
        .unwrap();
    assert!(info.contains("restart_grace_case:none\r\n"), "{info}");
    assert!(info.contains("lease_horizon_ms_left:6990\r\n"), "{info}");
    server.shutdown(Instant(40));
    assert_eq!(
        kinds(&mut server),
        ["ceiling", "close", "snapshot.json", "horizon"]
    );
}
