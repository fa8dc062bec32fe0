//! The lock engine, with milliseconds in and typed records out; `fencelock.Engine` is the Python face.

use fencelock_core::{
    AcquireOptions, Acquired, BootClock, Config, Engine, Event, HashSeed, Horizon, Instant,
    LockInfo, Mode, Start,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{corrupt_file, to_pyerr, IntoPyResult};
use crate::records::{
    AcquireGranted, AcquireQueued, ExpiredEvent, GrantedEvent, HolderRecord, LockRecord,
    StolenEvent, WaitTimedOutEvent, WaiterRecord,
};

/// The core engine. Every method that needs time takes `now_ms` from the caller's clock.
#[pyclass(module = "fencelock._native")]
#[derive(Debug)]
pub(crate) struct NativeEngine {
    engine: Engine,
}

#[pymethods]
impl NativeEngine {
    /// Creates an engine. `start` is "fresh", "crashed" (with `ceiling`, and the bytes of the
    /// `horizon` file the last run left, if any) or "clean" (with `ceiling` and `snapshot`
    /// bytes); `config` overrides defaults by field name. `boot_id` and `monotonic_ms` (the
    /// system monotonic clock read with `now_ms`) give the engine a boot clock, so that it
    /// keeps a lease horizon.
    #[new]
    #[pyo3(signature = (config=None, start="fresh", ceiling=0, snapshot=None, now_ms=0, *, boot_id=None, monotonic_ms=None, horizon=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyDict>>,
        start: &str,
        ceiling: u64,
        snapshot: Option<&[u8]>,
        now_ms: u64,
        boot_id: Option<&str>,
        monotonic_ms: Option<u64>,
        horizon: Option<&[u8]>,
    ) -> PyResult<Self> {
        let mut config = build_config(py, config)?;
        let now = Instant(now_ms);
        config.boot_clock = boot_clock(py, boot_id, now, monotonic_ms)?;
        let start = Start::from_parts(start, ceiling, snapshot).into_py_result(py)?;
        let engine = match (start, horizon) {
            (Start::Crashed { ceiling }, Some(bytes)) => {
                let horizon = Horizon::decode(bytes).map_err(|error| corrupt_file(&error))?;
                Engine::after_crash_within(now, config, ceiling, Some(&horizon))
            }
            (start, _) => Engine::start(now, config, start).into_py_result(py)?,
        };
        Ok(NativeEngine { engine })
    }

    /// Acquires; returns an `AcquireGranted` or an `AcquireQueued` record.
    #[pyo3(signature = (now_ms, name, ttl_ms, *, shared=false, wait_ms=0, owner=None, steal=false, client=0, ephemeral=false, lock_delay_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        name: &str,
        ttl_ms: u64,
        shared: bool,
        wait_ms: u64,
        owner: Option<String>,
        steal: bool,
        client: u64,
        ephemeral: bool,
        lock_delay_ms: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let options = acquire_options(
            shared,
            wait_ms,
            owner,
            steal,
            client,
            ephemeral,
            lock_delay_ms,
        );
        let acquired = self
            .engine
            .acquire(Instant(now_ms), name, ttl_ms, &options)
            .into_py_result(py)?;
        Ok(match acquired {
            Acquired::Granted { token, deadline } => Py::new(
                py,
                AcquireGranted {
                    token,
                    deadline_ms: deadline.as_ms(),
                },
            )?
            .into_any(),
            Acquired::Queued { waiter, deadline } => Py::new(
                py,
                AcquireQueued {
                    waiter,
                    deadline_ms: deadline.as_ms(),
                },
            )?
            .into_any(),
            other => return Err(unknown("acquire outcome", &other)),
        })
    }

    /// Renews the lease (name, token) to `ttl_ms` from now; returns ms left.
    fn renew(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        name: &str,
        token: u64,
        ttl_ms: u64,
    ) -> PyResult<u64> {
        self.engine
            .renew(Instant(now_ms), name, token, ttl_ms)
            .into_py_result(py)
    }

    /// Releases the lease (name, token).
    fn release(&mut self, py: Python<'_>, now_ms: u64, name: &str, token: u64) -> PyResult<()> {
        self.engine
            .release(Instant(now_ms), name, token)
            .into_py_result(py)
    }

    /// Returns ms left on the lease (name, token).
    fn verify(&mut self, py: Python<'_>, now_ms: u64, name: &str, token: u64) -> PyResult<u64> {
        self.engine
            .verify(Instant(now_ms), name, token)
            .into_py_result(py)
    }

    /// Withdraws a queued request; returns whether it was still waiting.
    fn cancel_wait(&mut self, now_ms: u64, waiter: u64) -> bool {
        self.engine.cancel_wait(Instant(now_ms), waiter)
    }

    /// Drops the client's waits and EPHEMERAL leases.
    fn disconnect(&mut self, now_ms: u64, client: u64) {
        self.engine.disconnect(Instant(now_ms), client);
    }

    /// Does whatever is due at `now_ms` (spurious calls are harmless).
    fn handle_timeout(&mut self, now_ms: u64) {
        self.engine.handle_timeout(Instant(now_ms));
    }

    /// Returns the next deadline in ms, or None.
    fn poll_timeout(&self) -> Option<u64> {
        self.engine.poll_timeout().map(Instant::as_ms)
    }

    /// Returns the next event as a record (`GrantedEvent`, `WaitTimedOutEvent`,
    /// `ExpiredEvent`, `StolenEvent`), or None.
    fn poll_event(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(event) = self.engine.poll_event() else {
            return Ok(None);
        };
        let record = match event {
            Event::Granted {
                name,
                token,
                waiter,
                client,
                deadline,
            } => Py::new(
                py,
                GrantedEvent {
                    name,
                    token,
                    waiter,
                    client,
                    deadline_ms: deadline.as_ms(),
                },
            )?
            .into_any(),
            Event::WaitTimedOut {
                name,
                waiter,
                client,
                waited_ms,
            } => Py::new(
                py,
                WaitTimedOutEvent {
                    name,
                    waiter,
                    client,
                    waited_ms,
                },
            )?
            .into_any(),
            Event::Expired {
                name,
                token,
                owner,
                client,
            } => Py::new(
                py,
                ExpiredEvent {
                    name,
                    token,
                    owner,
                    client,
                },
            )?
            .into_any(),
            Event::Stolen {
                name,
                token,
                owner,
                client,
                by_token,
            } => Py::new(
                py,
                StolenEvent {
                    name,
                    token,
                    owner,
                    client,
                    by_token,
                },
            )?
            .into_any(),
            other => return Err(unknown("event", &other)),
        };
        Ok(Some(record))
    }

    /// Returns a raised token ceiling that must be made durable before any reply of the same
    /// call is delivered, or None.
    fn poll_persist(&mut self) -> Option<u64> {
        self.engine.poll_persist()
    }

    /// Returns the bytes of a lease horizon file that must be made durable (before the ceiling
    /// of `poll_persist`) before any reply of the same call is delivered, or None.
    fn poll_horizon<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.engine
            .poll_horizon()
            .map(|horizon| PyBytes::new(py, &horizon.encode()))
    }

    /// Returns the case that decided the restart grace: "none", "horizon", "rebooted",
    /// "no-boot-id", "no-horizon" or "stale-horizon".
    fn grace_case(&self) -> &'static str {
        self.engine.grace_case().as_str()
    }

    /// Returns locks whose name starts with `prefix`, sorted by name, as `LockRecord`s.
    #[pyo3(signature = (now_ms, prefix=""))]
    fn query(&mut self, now_ms: u64, prefix: &str) -> Vec<LockRecord> {
        self.engine
            .query(Instant(now_ms), prefix)
            .into_iter()
            .map(lock_record)
            .collect()
    }

    /// Returns the counters as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in self.engine.stats().counters() {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// Returns the clean-shutdown snapshot as bytes (JSON, identical on every host).
    fn snapshot<'py>(&mut self, py: Python<'py>, now_ms: u64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.engine.snapshot(Instant(now_ms)).encode())
    }

    /// Returns the restart grace left in ms (0: ready).
    fn grace_left(&self, now_ms: u64) -> u64 {
        self.engine.grace_left(Instant(now_ms))
    }

    /// Returns the highest token issued (0 if none).
    fn last_token(&self) -> u64 {
        self.engine.last_token()
    }

    /// Returns the token ceiling handed out for persisting.
    fn token_ceiling(&self) -> u64 {
        self.engine.token_ceiling()
    }

    fn live_locks(&self) -> usize {
        self.engine.live_locks()
    }

    fn live_leases(&self) -> usize {
        self.engine.live_leases()
    }

    fn waiting(&self) -> usize {
        self.engine.waiting()
    }

    /// Returns None if every invariant holds, else a description of the first broken one.
    fn check_invariants(&self) -> Option<String> {
        self.engine.check_invariants().err()
    }

    /// Returns the configuration as a dict.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_dict(py, self.engine.config())
    }
}

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
        holders: holders
            .into_iter()
            .map(|holder| HolderRecord {
                token: holder.token,
                mode: holder.mode.as_str(),
                owner: holder.owner,
                ms_left: holder.ms_left,
                client: holder.client,
            })
            .collect(),
        waiters: waiters
            .into_iter()
            .map(|waiter| WaiterRecord {
                waiter: waiter.waiter,
                position: waiter.position,
                mode: waiter.mode.as_str(),
                owner: waiter.owner,
                client: waiter.client,
                ms_left: waiter.ms_left,
            })
            .collect(),
        delay_ms_left,
    }
}

/// Starts from `Config::default()` and applies each key of `overrides`. The key
/// `hash_seed` (an int below 2^128) fixes the name index's key, for reproducible tests;
/// without it the key is 16 bytes of `os.urandom`, so clients cannot craft colliding names.
pub(crate) fn build_config(
    py: Python<'_>,
    overrides: Option<&Bound<'_, PyDict>>,
) -> PyResult<Config> {
    let mut config = Config::default();
    let mut seed = None;
    for (key, value) in overrides.into_iter().flat_map(|overrides| overrides.iter()) {
        let key: String = key.extract()?;
        if key == "hash_seed" {
            seed = Some(value.extract::<u128>()?.to_le_bytes());
            continue;
        }
        config
            .set(&key, value.extract()?)
            .map_err(|error| to_pyerr(py, &error))?;
    }
    let seed = match seed {
        Some(seed) => seed,
        None => os_random_seed(py)?,
    };
    config.hash_seed = HashSeed::from_bytes(seed);
    Ok(config)
}

/// Builds the boot clock from what the host read, or None when it read no boot identity.
///
/// # Errors
/// `ValueError` for a boot identity that is not printable ASCII, or one without a reading.
pub(crate) fn boot_clock(
    py: Python<'_>,
    boot_id: Option<&str>,
    now: Instant,
    monotonic_ms: Option<u64>,
) -> PyResult<Option<BootClock>> {
    let Some(boot_id) = boot_id else {
        return Ok(None);
    };
    let Some(monotonic_ms) = monotonic_ms else {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a boot_id needs the monotonic_ms read with now_ms",
        ));
    };
    BootClock::at(boot_id, now, monotonic_ms)
        .map(Some)
        .map_err(|error| to_pyerr(py, &error))
}

/// Reads 16 bytes from the operating system's randomness through Python's `os.urandom`.
fn os_random_seed(py: Python<'_>) -> PyResult<[u8; 16]> {
    let bytes: Vec<u8> = py.import("os")?.call_method1("urandom", (16,))?.extract()?;
    bytes
        .try_into()
        .map_err(|_| PyRuntimeError::new_err("os.urandom(16) did not return 16 bytes"))
}

fn config_dict<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in config.settings() {
        dict.set_item(name, value)?;
    }
    Ok(dict)
}

/// Reports a value of the core that this glue does not know: a bug in the glue, not the input.
pub(crate) fn unknown(what: &str, value: &dyn core::fmt::Debug) -> PyErr {
    PyRuntimeError::new_err(format!(
        "fencelock._native does not know this {what} of fencelock-core (a bug, please report it): {value:?}"
    ))
}

/// Builds acquire options from the keyword arguments the engine's and the client's `acquire`
/// take, field by field: the options struct is non-exhaustive.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn acquire_options(
    shared: bool,
    wait_ms: u64,
    owner: Option<String>,
    steal: bool,
    client: u64,
    ephemeral: bool,
    lock_delay_ms: Option<u64>,
) -> AcquireOptions {
    let mut options = AcquireOptions::default();
    options.mode = Mode::from_shared(shared);
    options.wait_ms = wait_ms;
    options.owner = owner;
    options.steal = steal;
    options.client = client;
    options.ephemeral = ephemeral;
    options.lock_delay_ms = lock_delay_ms;
    options
}
