//! The lock engine, with milliseconds in and tuples out; `fencelock.Engine` is the Python face.

use fencelock_core::{
    AcquireOptions, Acquired, Config, Engine, Event, HashSeed, Instant, LockInfo, Mode, Start,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::errors::{to_pyerr, IntoPyResult};

/// The core engine. Every method that needs time takes `now_ms` from the caller's clock.
#[pyclass(module = "fencelock._native")]
#[derive(Debug)]
pub(crate) struct NativeEngine {
    engine: Engine,
}

#[pymethods]
impl NativeEngine {
    /// Creates an engine. `start` is "fresh", "crashed" (with `ceiling`) or "clean" (with
    /// `ceiling` and `snapshot` bytes); `config` overrides defaults by field name.
    #[new]
    #[pyo3(signature = (config=None, start="fresh", ceiling=0, snapshot=None, now_ms=0))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyDict>>,
        start: &str,
        ceiling: u64,
        snapshot: Option<&[u8]>,
        now_ms: u64,
    ) -> PyResult<Self> {
        let config = build_config(py, config)?;
        let start = Start::from_parts(start, ceiling, snapshot).into_py_result(py)?;
        let engine = Engine::start(Instant(now_ms), config, start).into_py_result(py)?;
        Ok(NativeEngine { engine })
    }

    /// Acquires; returns ("granted", token, deadline_ms) or ("queued", waiter, wait_deadline_ms).
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
    ) -> PyResult<(&'static str, u64, u64)> {
        let mut options = AcquireOptions::default();
        options.mode = if shared {
            Mode::Shared
        } else {
            Mode::Exclusive
        };
        options.wait_ms = wait_ms;
        options.owner = owner;
        options.steal = steal;
        options.client = client;
        options.ephemeral = ephemeral;
        options.lock_delay_ms = lock_delay_ms;
        let acquired = self
            .engine
            .acquire(Instant(now_ms), name, ttl_ms, &options)
            .into_py_result(py)?;
        match acquired {
            Acquired::Granted { token, deadline } => Ok(("granted", token, deadline.as_ms())),
            Acquired::Queued { waiter, deadline } => Ok(("queued", waiter, deadline.as_ms())),
            other => Err(unknown("acquire outcome", &other)),
        }
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

    /// Returns the next event as a tuple whose first item names its kind, or None.
    fn poll_event<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(event) = self.engine.poll_event() else {
            return Ok(None);
        };
        let tuple = match event {
            Event::Granted {
                name,
                token,
                waiter,
                client,
                deadline,
            } => ("granted", name, token, waiter, client, deadline.as_ms())
                .into_pyobject(py)?
                .into_any(),
            Event::WaitTimedOut {
                name,
                waiter,
                client,
                waited_ms,
            } => ("wait_timed_out", name, waiter, client, waited_ms)
                .into_pyobject(py)?
                .into_any(),
            Event::Expired {
                name,
                token,
                owner,
                client,
            } => ("expired", name, token, owner, client)
                .into_pyobject(py)?
                .into_any(),
            Event::Stolen {
                name,
                token,
                owner,
                client,
                by_token,
            } => ("stolen", name, token, owner, client, by_token)
                .into_pyobject(py)?
                .into_any(),
            other => return Err(unknown("event", &other)),
        };
        Ok(Some(tuple.cast_into::<PyTuple>()?))
    }

    /// Returns a raised token ceiling that must be made durable before any reply of the same
    /// call is delivered, or None.
    fn poll_persist(&mut self) -> Option<u64> {
        self.engine.poll_persist()
    }

    /// Returns locks whose name starts with `prefix`, sorted by name, as
    /// (name, [(token, mode, owner, ms_left, client)], [(waiter, position, mode, owner, client, ms_left)], delay_ms_left).
    #[pyo3(signature = (now_ms, prefix=""))]
    #[allow(clippy::type_complexity)]
    fn query(
        &mut self,
        now_ms: u64,
        prefix: &str,
    ) -> Vec<(
        String,
        Vec<(u64, &'static str, Option<String>, u64, u64)>,
        Vec<(u64, usize, &'static str, Option<String>, u64, u64)>,
        u64,
    )> {
        self.engine
            .query(Instant(now_ms), prefix)
            .into_iter()
            .map(|lock: LockInfo| {
                let LockInfo {
                    name,
                    holders,
                    waiters,
                    delay_ms_left,
                    ..
                } = lock;
                let holders = holders
                    .into_iter()
                    .map(|h| (h.token, h.mode.as_str(), h.owner, h.ms_left, h.client))
                    .collect();
                let waiters = waiters
                    .into_iter()
                    .map(|w| {
                        (
                            w.waiter,
                            w.position,
                            w.mode.as_str(),
                            w.owner,
                            w.client,
                            w.ms_left,
                        )
                    })
                    .collect();
                (name, holders, waiters, delay_ms_left)
            })
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

/// Reports a value of a `#[non_exhaustive]` core type that this glue does not translate yet:
/// the core and the glue are built together, so this is a bug in the glue, not user input.
pub(crate) fn unknown(what: &str, value: &dyn core::fmt::Debug) -> PyErr {
    PyRuntimeError::new_err(format!(
        "fencelock._native does not know this {what} of fencelock-core (a bug, please report it): {value:?}"
    ))
}
