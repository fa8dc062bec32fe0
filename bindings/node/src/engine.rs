//! The lock engine with milliseconds in and plain records out; `node/lib/engine.js` is its face.

use std::collections::HashMap;

use fencelock_core::{
    AcquireOptions, Acquired, Engine, Event, HolderInfo, Horizon, Instant, LockInfo, Mode, Start,
    WaiterInfo,
};
use napi::bindgen_prelude::Buffer;
use napi::Env;
use napi_derive::napi;

use crate::convert::{boot_clock, engine_config, number, whole, whole_opt};
use crate::errors::{corrupt_file, unknown, OrThrow};

/// Options of an acquire, as the engine and the client take them (all optional).
#[napi(object)]
#[derive(Debug, Default)]
pub struct AcquireOpts {
    /// Take a shared (read) lease instead of an exclusive one.
    pub shared: Option<bool>,
    /// Wait up to this many ms in the FIFO queue when the lock is held.
    pub wait_ms: Option<f64>,
    /// A label shown by queries.
    pub owner: Option<String>,
    /// Take the lock from its holders (their tokens become stale).
    pub steal: Option<bool>,
    /// Engine only: the client (connection) id the lease belongs to.
    pub client: Option<f64>,
    /// End the lease when its client disconnects.
    pub ephemeral: Option<bool>,
    /// Keep the lock unavailable this long after the lease lapses.
    pub lock_delay_ms: Option<f64>,
}

/// The outcome of an acquire: `token` when granted, `waiter` when queued.
#[napi(object)]
#[derive(Debug)]
pub struct AcquireResult {
    /// Set when the lock is held now.
    pub token: Option<f64>,
    /// Set when the request waits in the queue.
    pub waiter: Option<f64>,
    /// The lease's deadline, or the wait's.
    pub deadline_ms: f64,
}

/// Something to deliver: `kind` is `granted`, `wait_timed_out`, `expired` or `stolen`.
#[napi(object)]
#[derive(Debug)]
pub struct EngineEvent {
    /// The event's kind.
    pub kind: String,
    /// The lock.
    pub name: String,
    /// The lease's token (all but `wait_timed_out`).
    pub token: Option<f64>,
    /// The waiter (`granted`, `wait_timed_out`).
    pub waiter: Option<f64>,
    /// The client id given with the acquire.
    pub client: f64,
    /// `granted`: the lease's deadline.
    pub deadline_ms: Option<f64>,
    /// `wait_timed_out`: how long it waited.
    pub waited_ms: Option<f64>,
    /// `expired`, `stolen`: the lease's owner label.
    pub owner: Option<String>,
    /// `stolen`: the new holder's token.
    pub by_token: Option<f64>,
}

/// One holder of a lock.
#[napi(object)]
#[derive(Debug)]
pub struct HolderRecord {
    /// The lease's token.
    pub token: f64,
    /// `exclusive` or `shared`.
    pub mode: String,
    /// The owner label.
    pub owner: Option<String>,
    /// ms until the lease lapses.
    pub ms_left: f64,
    /// The client id.
    pub client: f64,
}

/// One waiter of a lock (`position` 1 is the head).
#[napi(object)]
#[derive(Debug)]
pub struct WaiterRecord {
    /// The waiter id.
    pub waiter: f64,
    /// Its place in the queue.
    pub position: f64,
    /// `exclusive` or `shared`.
    pub mode: String,
    /// The owner label.
    pub owner: Option<String>,
    /// The client id.
    pub client: f64,
    /// ms until the wait ends.
    pub ms_left: f64,
}

/// One lock, as a query lists it.
#[napi(object)]
#[derive(Debug)]
pub struct LockRecord {
    /// The lock's name.
    pub name: String,
    /// Who holds it.
    pub holders: Vec<HolderRecord>,
    /// Who waits for it, in order.
    pub waiters: Vec<WaiterRecord>,
    /// ms of lock-delay left.
    pub delay_ms_left: f64,
}

/// The engine's counters.
#[napi(object)]
#[derive(Debug)]
pub struct StatsRecord {
    pub acquires: f64,
    pub grants: f64,
    pub grants_after_wait: f64,
    pub releases: f64,
    pub renewals: f64,
    pub expiries: f64,
    pub steals: f64,
    pub stale_rejections: f64,
    pub wait_timeouts: f64,
    pub total_wait_ms: f64,
    pub horizon_writes: f64,
}

/// The core engine. Every method that needs time takes `nowMs` first.
#[napi]
#[derive(Debug)]
pub struct NativeEngine {
    engine: Engine,
}

#[napi]
impl NativeEngine {
    /// Creates an engine. `start` is `fresh`, `crashed` (with `ceiling`, and the bytes of the
    /// `horizon` file the last run left, if any) or `clean` (with `ceiling` and `snapshot`);
    /// `config` overrides settings by their core names. `bootId` and `monotonicMs` (the
    /// system monotonic clock read with `nowMs`) give the engine a boot clock, so that it
    /// keeps a lease horizon.
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: Env,
        config: Option<HashMap<String, f64>>,
        hash_seed: Option<Buffer>,
        start: Option<String>,
        ceiling: Option<f64>,
        snapshot: Option<Buffer>,
        now_ms: Option<f64>,
        boot_id: Option<String>,
        monotonic_ms: Option<f64>,
        horizon: Option<Buffer>,
    ) -> napi::Result<Self> {
        let mut config = engine_config(&env, config, hash_seed)?;
        let ceiling = whole("ceiling", ceiling.unwrap_or(0.0))?;
        let now = Instant(whole("nowMs", now_ms.unwrap_or(0.0))?);
        config.boot_clock = boot_clock(&env, boot_id, now, monotonic_ms)?;
        let start = Start::from_parts(
            start.as_deref().unwrap_or("fresh"),
            ceiling,
            snapshot.as_deref(),
        )
        .or_throw(&env)?;
        let engine = match (start, horizon) {
            (Start::Crashed { ceiling }, Some(bytes)) => {
                let horizon = Horizon::decode(&bytes).map_err(|error| corrupt_file(&error))?;
                Engine::after_crash_within(now, config, ceiling, Some(&horizon))
            }
            (start, _) => Engine::start(now, config, start).or_throw(&env)?,
        };
        Ok(NativeEngine { engine })
    }

    /// Acquires; returns `{ token, deadlineMs }` or `{ waiter, deadlineMs }`.
    #[napi]
    pub fn acquire(
        &mut self,
        env: Env,
        now_ms: f64,
        name: String,
        ttl_ms: f64,
        options: Option<AcquireOpts>,
    ) -> napi::Result<AcquireResult> {
        let now = Instant(whole("nowMs", now_ms)?);
        let ttl = whole("ttlMs", ttl_ms)?;
        let options = acquire_options(options.unwrap_or_default())?;
        let acquired = self
            .engine
            .acquire(now, &name, ttl, &options)
            .or_throw(&env)?;
        match acquired {
            Acquired::Granted { token, deadline } => Ok(AcquireResult {
                token: Some(number(token)),
                waiter: None,
                deadline_ms: number(deadline.as_ms()),
            }),
            Acquired::Queued { waiter, deadline } => Ok(AcquireResult {
                token: None,
                waiter: Some(number(waiter)),
                deadline_ms: number(deadline.as_ms()),
            }),
            other => Err(unknown("acquire outcome", &other)),
        }
    }

    /// Renews the lease (name, token) to `ttlMs` from now; returns ms left.
    #[napi]
    pub fn renew(
        &mut self,
        env: Env,
        now_ms: f64,
        name: String,
        token: f64,
        ttl_ms: f64,
    ) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        self.engine
            .renew(now, &name, token, ttl)
            .map(number)
            .or_throw(&env)
    }

    /// Releases the lease (name, token).
    #[napi]
    pub fn release(&mut self, env: Env, now_ms: f64, name: String, token: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        self.engine.release(now, &name, token).or_throw(&env)
    }

    /// Returns ms left on the lease (name, token).
    #[napi]
    pub fn verify(&mut self, env: Env, now_ms: f64, name: String, token: f64) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        self.engine
            .verify(now, &name, token)
            .map(number)
            .or_throw(&env)
    }

    /// Withdraws a queued request; returns whether it was still waiting.
    #[napi]
    pub fn cancel_wait(&mut self, now_ms: f64, waiter: f64) -> napi::Result<bool> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(self.engine.cancel_wait(now, whole("waiter", waiter)?))
    }

    /// Drops the client's waits and EPHEMERAL leases.
    #[napi]
    pub fn disconnect(&mut self, now_ms: f64, client: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.engine.disconnect(now, whole("client", client)?);
        Ok(())
    }

    /// Does whatever is due at `nowMs` (spurious calls are harmless).
    #[napi]
    pub fn handle_timeout(&mut self, now_ms: f64) -> napi::Result<()> {
        self.engine.handle_timeout(Instant(whole("nowMs", now_ms)?));
        Ok(())
    }

    /// Returns the next deadline in ms, or null.
    #[napi]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.engine.poll_timeout().map(|at| number(at.as_ms()))
    }

    /// Returns the next event, or null.
    #[napi]
    pub fn poll_event(&mut self) -> napi::Result<Option<EngineEvent>> {
        self.engine.poll_event().map(event_record).transpose()
    }

    /// Returns a raised token ceiling to make durable before delivering results, or null.
    #[napi]
    pub fn poll_persist(&mut self) -> Option<f64> {
        self.engine.poll_persist().map(number)
    }

    /// Returns locks whose name starts with `prefix`, sorted by name.
    #[napi]
    pub fn query(&mut self, now_ms: f64, prefix: Option<String>) -> napi::Result<Vec<LockRecord>> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(self
            .engine
            .query(now, prefix.as_deref().unwrap_or(""))
            .into_iter()
            .map(lock_record)
            .collect())
    }

    /// Returns the counters since start.
    #[napi]
    pub fn stats(&self) -> StatsRecord {
        let stats = self.engine.stats();
        StatsRecord {
            acquires: number(stats.acquires),
            grants: number(stats.grants),
            grants_after_wait: number(stats.grants_after_wait),
            releases: number(stats.releases),
            renewals: number(stats.renewals),
            expiries: number(stats.expiries),
            steals: number(stats.steals),
            stale_rejections: number(stats.stale_rejections),
            wait_timeouts: number(stats.wait_timeouts),
            total_wait_ms: number(stats.total_wait_ms),
            horizon_writes: number(stats.horizon_writes),
        }
    }

    /// Returns the clean-shutdown snapshot as bytes (JSON, identical on every host).
    #[napi]
    pub fn snapshot(&mut self, now_ms: f64) -> napi::Result<Buffer> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(Buffer::from(self.engine.snapshot(now).encode()))
    }

    /// Returns the restart grace left in ms (0: ready).
    #[napi]
    pub fn grace_left(&self, now_ms: f64) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(number(self.engine.grace_left(now)))
    }

    /// Returns the case that decided the restart grace: `none`, `horizon`, `rebooted`,
    /// `no-boot-id`, `no-horizon` or `stale-horizon`.
    #[napi]
    pub fn grace_case(&self) -> String {
        self.engine.grace_case().as_str().to_owned()
    }

    /// Returns the bytes of a lease horizon file that must be made durable (before the
    /// ceiling of `pollPersist`) before any reply of the same call is delivered, or null.
    #[napi]
    pub fn poll_horizon(&mut self) -> Option<Buffer> {
        self.engine
            .poll_horizon()
            .map(|horizon| Buffer::from(horizon.encode()))
    }

    /// Returns the highest token issued (0 if none).
    #[napi]
    pub fn last_token(&self) -> f64 {
        number(self.engine.last_token())
    }

    /// Returns the token ceiling handed out for persisting.
    #[napi]
    pub fn token_ceiling(&self) -> f64 {
        number(self.engine.token_ceiling())
    }

    /// Returns how many locks exist.
    #[napi]
    pub fn live_locks(&self) -> f64 {
        number(self.engine.live_locks() as u64)
    }

    /// Returns how many leases are live.
    #[napi]
    pub fn live_leases(&self) -> f64 {
        number(self.engine.live_leases() as u64)
    }

    /// Returns how many requests wait.
    #[napi]
    pub fn waiting(&self) -> f64 {
        number(self.engine.waiting() as u64)
    }

    /// Returns null if every invariant holds, else a description of the first broken one.
    #[napi]
    pub fn check_invariants(&self) -> Option<String> {
        self.engine.check_invariants().err()
    }

    /// Returns the configuration by core setting name.
    #[napi]
    pub fn config(&self) -> HashMap<String, f64> {
        self.engine
            .config()
            .settings()
            .map(|(name, value)| (name.to_owned(), number(value)))
            .collect()
    }
}

/// Builds the core's options field by field: the struct is non-exhaustive.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn acquire_options(options: AcquireOpts) -> napi::Result<AcquireOptions> {
    let mut built = AcquireOptions::default();
    built.mode = Mode::from_shared(options.shared.unwrap_or(false));
    built.wait_ms = whole_opt("waitMs", options.wait_ms)?.unwrap_or(0);
    built.owner = options.owner;
    built.steal = options.steal.unwrap_or(false);
    built.client = whole_opt("client", options.client)?.unwrap_or(0);
    built.ephemeral = options.ephemeral.unwrap_or(false);
    built.lock_delay_ms = whole_opt("lockDelayMs", options.lock_delay_ms)?;
    Ok(built)
}

fn event_record(event: Event) -> napi::Result<EngineEvent> {
    let blank = |kind: &str, name: String, client: u64| EngineEvent {
        kind: kind.to_owned(),
        name,
        token: None,
        waiter: None,
        client: number(client),
        deadline_ms: None,
        waited_ms: None,
        owner: None,
        by_token: None,
    };
    Ok(match event {
        Event::Granted {
            name,
            token,
            waiter,
            client,
            deadline,
        } => EngineEvent {
            token: Some(number(token)),
            waiter: Some(number(waiter)),
            deadline_ms: Some(number(deadline.as_ms())),
            ..blank("granted", name, client)
        },
        Event::WaitTimedOut {
            name,
            waiter,
            client,
            waited_ms,
        } => EngineEvent {
            waiter: Some(number(waiter)),
            waited_ms: Some(number(waited_ms)),
            ..blank("wait_timed_out", name, client)
        },
        Event::Expired {
            name,
            token,
            owner,
            client,
        } => EngineEvent {
            token: Some(number(token)),
            owner,
            ..blank("expired", name, client)
        },
        Event::Stolen {
            name,
            token,
            owner,
            client,
            by_token,
        } => EngineEvent {
            token: Some(number(token)),
            owner,
            by_token: Some(number(by_token)),
            ..blank("stolen", name, client)
        },
        other => return Err(unknown("event", &other)),
    })
}

/// Returns a lock as a plain record.
pub(crate) fn lock_record(lock: LockInfo) -> LockRecord {
    let LockInfo {
        name,
        holders,
        waiters,
        delay_ms_left,
        ..
    } = lock;
    LockRecord {
        name,
        holders: holders.into_iter().map(holder_record).collect(),
        waiters: waiters.into_iter().map(waiter_record).collect(),
        delay_ms_left: number(delay_ms_left),
    }
}

fn holder_record(holder: HolderInfo) -> HolderRecord {
    HolderRecord {
        token: number(holder.token),
        mode: holder.mode.as_str().to_owned(),
        owner: holder.owner,
        ms_left: number(holder.ms_left),
        client: number(holder.client),
    }
}

fn waiter_record(waiter: WaiterInfo) -> WaiterRecord {
    WaiterRecord {
        waiter: number(waiter.waiter),
        position: number(waiter.position as u64),
        mode: waiter.mode.as_str().to_owned(),
        owner: waiter.owner,
        client: number(waiter.client),
        ms_left: number(waiter.ms_left),
    }
}
