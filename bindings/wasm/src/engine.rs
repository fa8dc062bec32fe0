//! The lock engine with milliseconds in and plain records out, and the records of acquire
//! options and locks that the client shares.

#[cfg(feature = "engine")]
use alloc::string::String;
#[cfg(feature = "engine")]
use alloc::vec::Vec;

use fencelock_core::{AcquireOptions, HolderInfo, LockInfo, Mode, WaiterInfo};
#[cfg(feature = "engine")]
use fencelock_core::{Acquired, BootClock, Engine, Event, Horizon};
use js_sys::Array;
#[cfg(feature = "engine")]
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::convert::number;
#[cfg(feature = "engine")]
use crate::convert::{engine_config, instant, start_engine, whole};
#[cfg(feature = "engine")]
use crate::errors::{corrupt_file, unknown, OrThrow};
use crate::record::{bool_field, string_field, whole_field, Record};
#[cfg(feature = "engine")]
use crate::record::{opt_text, text};

/// The core engine. Every method that needs time takes `nowMs` first.
#[cfg(feature = "engine")]
#[wasm_bindgen]
#[derive(Debug)]
pub struct WasmEngine {
    engine: Engine,
}

#[cfg(feature = "engine")]
#[wasm_bindgen]
impl WasmEngine {
    /// Creates an engine. `start` is `fresh`, `crashed` (with `ceiling`, and the bytes of the
    /// `horizon` file the last run left, if any) or `clean` (with `ceiling` and `snapshot`);
    /// `config` overrides settings by their core names. `bootId` and `monotonicMs` (a system
    /// monotonic clock read with `nowMs`) give the engine a boot clock, so that it keeps a
    /// lease horizon.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: JsValue,
        hash_seed: Option<Vec<u8>>,
        start_arg: JsValue,
        ceiling: Option<f64>,
        snapshot: Option<Vec<u8>>,
        now_ms: Option<f64>,
        boot_id: JsValue,
        monotonic_ms: Option<f64>,
        horizon: Option<Vec<u8>>,
    ) -> Result<WasmEngine, JsValue> {
        let start = opt_text("start", &start_arg)?;
        let mut config = engine_config(&config, hash_seed)?;
        if let Some(boot_id) = opt_text("bootId", &boot_id)? {
            let Some(monotonic_ms) = monotonic_ms else {
                return Err(js_sys::TypeError::new(
                    "a bootId needs the monotonicMs read with nowMs",
                )
                .into());
            };
            let now = instant(now_ms.unwrap_or(0.0))?;
            config.boot_clock =
                Some(BootClock::at(&boot_id, now, whole("monotonicMs", monotonic_ms)?).or_throw()?);
        }
        let engine = match (start.as_deref(), horizon) {
            (Some("crashed"), Some(bytes)) => {
                let horizon = Horizon::decode(&bytes).map_err(|error| corrupt_file(&error))?;
                let ceiling = whole("ceiling", ceiling.unwrap_or(0.0))?;
                let now = instant(now_ms.unwrap_or(0.0))?;
                Engine::after_crash_within(now, config, ceiling, Some(&horizon))
            }
            _ => start_engine(config, start, ceiling, snapshot, now_ms)?,
        };
        Ok(WasmEngine { engine })
    }

    /// Returns the case that decided the restart grace: `none`, `horizon`, `rebooted`,
    /// `no-boot-id`, `no-horizon` or `stale-horizon`.
    #[wasm_bindgen(js_name = graceCase)]
    pub fn grace_case(&self) -> String {
        self.engine.grace_case().as_str().into()
    }

    /// Returns the bytes of a lease horizon file that must be made durable (before the
    /// ceiling of `pollPersist`) before any reply of the same call is delivered, or undefined.
    #[wasm_bindgen(js_name = pollHorizon)]
    pub fn poll_horizon(&mut self) -> Option<Vec<u8>> {
        self.engine.poll_horizon().map(|horizon| horizon.encode())
    }

    /// Acquires; returns `{ token, deadlineMs }` or `{ waiter, deadlineMs }`.
    pub fn acquire(
        &mut self,
        now_ms: f64,
        name_arg: JsValue,
        ttl_ms: f64,
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        let options = acquire_options(&options, true)?;
        match self.engine.acquire(now, name, ttl, &options).or_throw()? {
            Acquired::Granted { token, deadline } => Ok(Record::new()
                .set("token", number(token))
                .set("deadlineMs", number(deadline.as_ms()))
                .into()),
            Acquired::Queued { waiter, deadline } => Ok(Record::new()
                .set("waiter", number(waiter))
                .set("deadlineMs", number(deadline.as_ms()))
                .into()),
            _ => Err(unknown("acquire outcome")),
        }
    }

    /// Renews the lease (name, token) to `ttlMs` from now; returns ms left.
    pub fn renew(
        &mut self,
        now_ms: f64,
        name_arg: JsValue,
        token: f64,
        ttl_ms: f64,
    ) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        self.engine
            .renew(now, name, token, ttl)
            .map(number)
            .or_throw()
    }

    /// Releases the lease (name, token).
    pub fn release(&mut self, now_ms: f64, name_arg: JsValue, token: f64) -> Result<(), JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        self.engine.release(now, name, token).or_throw()
    }

    /// Returns ms left on the lease (name, token).
    pub fn verify(&mut self, now_ms: f64, name_arg: JsValue, token: f64) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        self.engine.verify(now, name, token).map(number).or_throw()
    }

    /// Withdraws a queued request; returns whether it was still waiting.
    #[wasm_bindgen(js_name = cancelWait)]
    pub fn cancel_wait(&mut self, now_ms: f64, waiter: f64) -> Result<bool, JsValue> {
        let now = instant(now_ms)?;
        Ok(self.engine.cancel_wait(now, whole("waiter", waiter)?))
    }

    /// Drops the client's waits and EPHEMERAL leases.
    pub fn disconnect(&mut self, now_ms: f64, client: f64) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.engine.disconnect(now, whole("client", client)?);
        Ok(())
    }

    /// Does whatever is due at `nowMs` (spurious calls are harmless).
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), JsValue> {
        self.engine.handle_timeout(instant(now_ms)?);
        Ok(())
    }

    /// Returns the next deadline in ms, or undefined.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.engine.poll_timeout().map(|at| number(at.as_ms()))
    }

    /// Returns the next event, or undefined.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> Result<JsValue, JsValue> {
        match self.engine.poll_event() {
            Some(event) => event_record(event),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Returns a raised token ceiling to make durable before delivering results, or undefined.
    #[wasm_bindgen(js_name = pollPersist)]
    pub fn poll_persist(&mut self) -> Option<f64> {
        self.engine.poll_persist().map(number)
    }

    /// Returns locks whose name starts with `prefix`, sorted by name.
    pub fn query(&mut self, now_ms: f64, prefix_arg: JsValue) -> Result<Array, JsValue> {
        let prefix = opt_text("prefix", &prefix_arg)?;
        let now = instant(now_ms)?;
        Ok(self
            .engine
            .query(now, prefix.as_deref().unwrap_or(""))
            .into_iter()
            .map(lock_record)
            .collect())
    }

    /// Returns the counters since start.
    pub fn stats(&self) -> JsValue {
        let stats = self.engine.stats();
        Record::new()
            .set("acquires", number(stats.acquires))
            .set("grants", number(stats.grants))
            .set("grantsAfterWait", number(stats.grants_after_wait))
            .set("releases", number(stats.releases))
            .set("renewals", number(stats.renewals))
            .set("expiries", number(stats.expiries))
            .set("steals", number(stats.steals))
            .set("staleRejections", number(stats.stale_rejections))
            .set("waitTimeouts", number(stats.wait_timeouts))
            .set("totalWaitMs", number(stats.total_wait_ms))
            .set("horizonWrites", number(stats.horizon_writes))
            .into()
    }

    /// Returns the clean-shutdown snapshot as bytes (JSON, identical on every host).
    pub fn snapshot(&mut self, now_ms: f64) -> Result<Vec<u8>, JsValue> {
        Ok(self.engine.snapshot(instant(now_ms)?).encode())
    }

    /// Returns the restart grace left in ms (0: ready).
    #[wasm_bindgen(js_name = graceLeft)]
    pub fn grace_left(&self, now_ms: f64) -> Result<f64, JsValue> {
        Ok(number(self.engine.grace_left(instant(now_ms)?)))
    }

    /// Returns the highest token issued (0 if none).
    #[wasm_bindgen(js_name = lastToken)]
    pub fn last_token(&self) -> f64 {
        number(self.engine.last_token())
    }

    /// Returns how many locks exist.
    #[wasm_bindgen(js_name = liveLocks)]
    pub fn live_locks(&self) -> f64 {
        number(self.engine.live_locks() as u64)
    }

    /// Returns how many leases are live.
    #[wasm_bindgen(js_name = liveLeases)]
    pub fn live_leases(&self) -> f64 {
        number(self.engine.live_leases() as u64)
    }

    /// Returns how many requests wait.
    pub fn waiting(&self) -> f64 {
        number(self.engine.waiting() as u64)
    }

    /// Returns undefined if every invariant holds, else a description of the first broken one.
    #[wasm_bindgen(js_name = checkInvariants)]
    pub fn check_invariants(&self) -> Option<String> {
        self.engine.check_invariants().err()
    }
}

/// Builds the core's options field by field (the struct is non-exhaustive) from
/// `{ shared, waitMs, owner, steal, client, ephemeral, lockDelayMs }`; `client` is read
/// only for the engine (on a connection the connection is the client).
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn acquire_options(
    options: &JsValue,
    with_client: bool,
) -> Result<AcquireOptions, JsValue> {
    let mut built = AcquireOptions::default();
    built.mode = Mode::from_shared(bool_field(options, "shared")?.unwrap_or(false));
    built.wait_ms = whole_field(options, "waitMs")?.unwrap_or(0);
    built.owner = string_field(options, "owner")?;
    built.steal = bool_field(options, "steal")?.unwrap_or(false);
    if with_client {
        built.client = whole_field(options, "client")?.unwrap_or(0);
    }
    built.ephemeral = bool_field(options, "ephemeral")?.unwrap_or(false);
    built.lock_delay_ms = whole_field(options, "lockDelayMs")?;
    Ok(built)
}

#[cfg(feature = "engine")]
fn event_record(event: Event) -> Result<JsValue, JsValue> {
    let base = |kind: &str, name: String, client: u64| {
        Record::new()
            .set("kind", kind)
            .set("name", name)
            .set("client", number(client))
    };
    Ok(match event {
        Event::Granted {
            name,
            token,
            waiter,
            client,
            deadline,
        } => base("granted", name, client)
            .set("token", number(token))
            .set("waiter", number(waiter))
            .set("deadlineMs", number(deadline.as_ms())),
        Event::WaitTimedOut {
            name,
            waiter,
            client,
            waited_ms,
        } => base("wait_timed_out", name, client)
            .set("waiter", number(waiter))
            .set("waitedMs", number(waited_ms)),
        Event::Expired {
            name,
            token,
            owner,
            client,
        } => base("expired", name, client)
            .set("token", number(token))
            .maybe("owner", owner),
        Event::Stolen {
            name,
            token,
            owner,
            client,
            by_token,
        } => base("stolen", name, client)
            .set("token", number(token))
            .maybe("owner", owner)
            .set("byToken", number(by_token)),
        _ => return Err(unknown("event")),
    }
    .into())
}

/// Returns a lock as a plain record `{ name, holders, waiters, delayMsLeft }`.
pub(crate) fn lock_record(lock: LockInfo) -> JsValue {
    let LockInfo {
        name,
        holders,
        waiters,
        delay_ms_left,
        ..
    } = lock;
    let holders: Array = holders.into_iter().map(holder_record).collect();
    let waiters: Array = waiters.into_iter().map(waiter_record).collect();
    Record::new()
        .set("name", name)
        .set("holders", holders)
        .set("waiters", waiters)
        .set("delayMsLeft", number(delay_ms_left))
        .into()
}

fn holder_record(holder: HolderInfo) -> JsValue {
    Record::new()
        .set("token", number(holder.token))
        .set("mode", holder.mode.as_str())
        .maybe("owner", holder.owner)
        .set("msLeft", number(holder.ms_left))
        .set("client", number(holder.client))
        .into()
}

fn waiter_record(waiter: WaiterInfo) -> JsValue {
    Record::new()
        .set("waiter", number(waiter.waiter))
        .set("position", number(waiter.position as u64))
        .set("mode", waiter.mode.as_str())
        .maybe("owner", waiter.owner)
        .set("client", number(waiter.client))
        .set("msLeft", number(waiter.ms_left))
        .into()
}
