//! The protocol server: bytes and time in, outputs out; `fencelock.server` is the I/O loop.

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{DataFile, DataFiles, Engine, Instant, Recovery, Start};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::engine::{boot_clock, build_config};
use crate::errors::{corrupt_file, to_pyerr, IntoPyResult};
use crate::records::{self, Close, Transmit};

/// The core's sans-IO protocol server with its engine.
#[pyclass(module = "fencelock._native")]
#[derive(Debug)]
pub(crate) struct NativeServer {
    server: Server,
    /// How `recover` started it; None for a server built directly.
    recovery: Option<Py<records::Recovery>>,
}

#[pymethods]
impl NativeServer {
    /// Creates a server. `config` holds engine settings, `server_config` protocol limits
    /// (`max_connections`, `max_request_bytes`, `max_bulk_bytes`, `max_args`,
    /// `max_output_bytes`, `test_clock`); `start` is as for `NativeEngine`.
    #[new]
    #[pyo3(signature = (config=None, server_config=None, start="fresh", ceiling=0, snapshot=None, now_ms=0))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyDict>>,
        server_config: Option<&Bound<'_, PyDict>>,
        start: &str,
        ceiling: u64,
        snapshot: Option<&[u8]>,
        now_ms: u64,
    ) -> PyResult<Self> {
        let engine_config = build_config(py, config)?;
        let start = Start::from_parts(start, ceiling, snapshot).into_py_result(py)?;
        let engine = Engine::start(Instant(now_ms), engine_config, start).into_py_result(py)?;
        let server_config = build_server_config(py, server_config)?;
        Ok(NativeServer {
            server: Server::new(engine, server_config),
            recovery: None,
        })
    }

    /// Starts a server from the data directory's files, read by the host: `files` maps each
    /// name in `DATA_FILES` to its bytes, or None (or no entry) when the file is absent.
    /// `recovery()` then says which start was taken and what to do on disk before serving.
    ///
    /// Raises `ValueError` for a corrupt ceiling file (guessing one could reissue tokens) or
    /// an unknown file name.
    ///
    /// `boot_id` (Linux: `/proc/sys/kernel/random/boot_id`) and `monotonic_ms` (the system
    /// monotonic clock, read with `now_ms`) let the server keep a lease horizon, so a crash
    /// restart on the same boot waits only until it; without them the grace is the full one.
    #[staticmethod]
    #[pyo3(signature = (files, config=None, server_config=None, now_ms=0, *, boot_id=None, monotonic_ms=None))]
    fn recover(
        py: Python<'_>,
        files: &Bound<'_, PyDict>,
        config: Option<&Bound<'_, PyDict>>,
        server_config: Option<&Bound<'_, PyDict>>,
        now_ms: u64,
        boot_id: Option<&str>,
        monotonic_ms: Option<u64>,
    ) -> PyResult<Self> {
        let mut engine_config = build_config(py, config)?;
        engine_config.boot_clock = boot_clock(py, boot_id, Instant(now_ms), monotonic_ms)?;
        let server_config = build_server_config(py, server_config)?;
        let mut contents: Vec<(DataFile, Vec<u8>)> = Vec::new();
        for (name, bytes) in files.iter() {
            let name: String = name.extract()?;
            let file = DataFile::from_name(&name).ok_or_else(|| {
                PyValueError::new_err(format!("{name:?} is not a fencelock data file"))
            })?;
            if !bytes.is_none() {
                contents.push((file, bytes.extract()?));
            }
        }
        let mut read = DataFiles::default();
        for (file, bytes) in &contents {
            read.set(*file, Some(bytes));
        }
        let mut plan = Recovery::plan(read).map_err(|error| corrupt_file(&error))?;
        let now = Instant(now_ms);
        let engine = plan.start_engine(now, engine_config);
        let actions = PyList::empty(py);
        for action in core::mem::take(&mut plan.actions) {
            actions.append(records::file_action(py, action)?)?;
        }
        let recovery = records::Recovery {
            kind: plan.kind.as_str(),
            summary: plan.summary(now, &engine),
            has_grace: plan.kind.has_grace(),
            grace_case: engine.grace_case().as_str(),
            grace_ms: engine.grace_ms(),
            refusal: plan.refusal.take(),
            actions: actions.unbind(),
        };
        Ok(NativeServer {
            server: Server::new(engine, server_config),
            recovery: Some(Py::new(py, recovery)?),
        })
    }

    /// Sets the users from a users file's bytes (JSON, parsed by the core), or turns
    /// authentication off with None. Raises `BadRequest` for a file the core refuses (the
    /// message never shows a password hash); the users in force stay then.
    fn set_users(&mut self, py: Python<'_>, users_file: Option<&[u8]>) -> PyResult<()> {
        self.server.set_users(parse_users(py, users_file)?);
        Ok(())
    }

    /// Sets one user, `default`, with every right and this password hash (`--requirepass`).
    fn set_password_hash(&mut self, py: Python<'_>, hash: &str) -> PyResult<()> {
        self.server.set_users(Some(single_user(py, hash)?));
        Ok(())
    }

    /// Returns True when connections must authenticate.
    fn auth_required(&self) -> bool {
        self.server.auth_required()
    }

    /// Returns the next audit event as `(kind, text, json)`, or None. Never holds a password.
    fn poll_audit(&mut self) -> Option<(&'static str, String, String)> {
        self.server.poll_audit().map(audit_tuple)
    }

    /// Returns how `recover` started this server, or None if it was built directly.
    fn recovery(&self, py: Python<'_>) -> Option<Py<records::Recovery>> {
        self.recovery
            .as_ref()
            .map(|recovery| recovery.clone_ref(py))
    }

    /// Ends the run cleanly: every connection is closed, and the outputs then yield the
    /// ceiling write, the remaining transmits and closes, and the snapshot write, in order.
    fn shutdown(&mut self, now_ms: u64) {
        self.server.shutdown(Instant(now_ms));
    }

    /// Registers a connection and returns its id (never 0).
    fn connect(&mut self, now_ms: u64) -> u64 {
        self.server.connect(Instant(now_ms))
    }

    /// Feeds received bytes, split anywhere.
    fn receive(&mut self, conn: u64, data: &[u8], now_ms: u64) {
        self.server.receive(Instant(now_ms), conn, data);
    }

    /// Runs one already-framed request (command name first).
    fn execute(&mut self, conn: u64, argv: Vec<Vec<u8>>, now_ms: u64) {
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        self.server.execute(Instant(now_ms), conn, &args);
    }

    /// Forgets a connection the host closed (drops its waits and EPHEMERAL leases).
    fn disconnect(&mut self, conn: u64, now_ms: u64) {
        self.server.disconnect(Instant(now_ms), conn);
    }

    /// Reports how many bytes the host holds unsent for a connection.
    fn handle_unsent(&mut self, conn: u64, unsent_bytes: usize, now_ms: u64) {
        self.server
            .handle_unsent(Instant(now_ms), conn, unsent_bytes);
    }

    /// Runs what is due (spurious calls are harmless).
    fn handle_timeout(&mut self, now_ms: u64) {
        self.server.handle_timeout(Instant(now_ms));
    }

    /// Returns the next output (`WriteFile`, `RemoveFile`, `Transmit`, `Close`), or None.
    fn poll_output(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.server
            .poll_output()
            .map(|output| output_record(py, output))
            .transpose()
    }

    /// Returns every pending output, in order (as `poll_output` until None).
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while let Some(output) = self.server.poll_output() {
            list.append(output_record(py, output)?)?;
        }
        Ok(list)
    }

    /// Returns when `handle_timeout` must next be called, in ms, or None. A call at or after
    /// that instant always makes progress: arm the timer for exactly it (no margin), and if
    /// it fires before the clock, truncated to ms, gets there, re-arm for the same instant.
    fn poll_timeout(&self) -> Option<u64> {
        self.server.poll_timeout().map(Instant::as_ms)
    }

    /// Returns how many connections are open.
    fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Returns the clean-shutdown snapshot of the engine as bytes.
    fn snapshot<'py>(&mut self, py: Python<'py>, now_ms: u64) -> Bound<'py, PyBytes> {
        PyBytes::new(
            py,
            &self.server.engine_mut().snapshot(Instant(now_ms)).encode(),
        )
    }

    /// Returns the restart grace left in ms.
    fn grace_left(&self, now_ms: u64) -> u64 {
        self.server.engine().grace_left(Instant(now_ms))
    }

    /// Returns the highest token issued.
    fn last_token(&self) -> u64 {
        self.server.engine().last_token()
    }

    fn live_leases(&self) -> usize {
        self.server.engine().live_leases()
    }

    fn live_locks(&self) -> usize {
        self.server.engine().live_locks()
    }

    /// Returns the Prometheus text exposition of the server's metrics, as bytes to serve at
    /// `GET /metrics` (rendered by the core, so every host serves the same text).
    fn metrics<'py>(&mut self, py: Python<'py>, now_ms: u64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.server.metrics_text(Instant(now_ms)).as_bytes())
    }

    /// Records how long one durable data-directory change took, in microseconds.
    fn record_persist(&mut self, micros: u64) {
        self.server.record_persist(micros);
    }
}

pub(crate) fn output_record(py: Python<'_>, output: Output) -> PyResult<Py<PyAny>> {
    Ok(match output {
        Output::File(action) => records::file_action(py, action)?,
        Output::Transmit { conn, bytes } => Py::new(
            py,
            Transmit {
                conn,
                data: PyBytes::new(py, &bytes).unbind(),
            },
        )?
        .into_any(),
        Output::Close { conn } => Py::new(py, Close { conn })?.into_any(),
        other => return Err(crate::engine::unknown("server output", &other)),
    })
}

pub(crate) fn build_server_config(
    py: Python<'_>,
    overrides: Option<&Bound<'_, PyDict>>,
) -> PyResult<ServerConfig> {
    let mut config = ServerConfig::default();
    let Some(overrides) = overrides else {
        return Ok(config);
    };
    for (key, value) in overrides.iter() {
        let key: String = key.extract()?;
        // `test_clock` arrives as a Python bool; every other setting as an int.
        let number: u64 = match value.extract::<bool>() {
            Ok(flag) => u64::from(flag),
            Err(_) => value.extract()?,
        };
        config
            .set(&key, number)
            .map_err(|error| to_pyerr(py, &error))?;
    }
    Ok(config)
}

/// Parses a users file's bytes (`None`: authentication off); `BadRequest` for a file the core refuses.
pub(crate) fn parse_users(
    py: Python<'_>,
    users_file: Option<&[u8]>,
) -> PyResult<Option<fencelock_core::protocol::Users>> {
    users_file
        .map(fencelock_core::protocol::Users::parse)
        .transpose()
        .into_py_result(py)
}

/// One user, `default`, with every right and this password hash (`--requirepass`).
pub(crate) fn single_user(py: Python<'_>, hash: &str) -> PyResult<fencelock_core::protocol::Users> {
    fencelock_core::protocol::Users::single(hash).into_py_result(py)
}

/// An audit event as Python gets it: `(kind, text, json)`.
pub(crate) fn audit_tuple(
    event: fencelock_core::protocol::AuditEvent,
) -> (&'static str, String, String) {
    (event.kind(), event.to_text(), event.to_json())
}
