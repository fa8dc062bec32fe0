//! The protocol server: bytes and time in, outputs out; `fencelock.server` is the I/O loop.

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{Engine, Instant, Start};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::engine::build_config;
use crate::errors::{to_pyerr, IntoPyResult};

/// The core's sans-IO protocol server with its engine.
#[pyclass(module = "fencelock._native")]
#[derive(Debug)]
pub(crate) struct NativeServer {
    server: Server,
}

#[pymethods]
impl NativeServer {
    /// Creates a server. `config` holds engine settings and `server_config` protocol limits,
    /// each by the field names of the core's tables (`Config::settings`,
    /// `ServerConfig::settings`); `start` is as for `NativeEngine`.
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
        })
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

    /// Returns the next output: ("persist", ceiling), ("transmit", conn, bytes), ("close", conn), or None.
    fn poll_output<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.server.poll_output() {
            Some(output) => Ok(Some(output_tuple(py, output)?)),
            None => Ok(None),
        }
    }

    /// Returns every pending output, in order (as `poll_output` until None).
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while let Some(output) = self.server.poll_output() {
            list.append(output_tuple(py, output)?)?;
        }
        Ok(list)
    }

    /// Returns when `handle_timeout` must next be called, in ms, or None.
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
}

fn output_tuple<'py>(py: Python<'py>, output: Output) -> PyResult<Bound<'py, PyTuple>> {
    let tuple = match output {
        Output::PersistCeiling(ceiling) => ("persist", ceiling).into_pyobject(py)?.into_any(),
        Output::Transmit { conn, bytes } => ("transmit", conn, PyBytes::new(py, &bytes))
            .into_pyobject(py)?
            .into_any(),
        Output::Close { conn } => ("close", conn).into_pyobject(py)?.into_any(),
        other => return Err(crate::engine::unknown("server output", &other)),
    };
    Ok(tuple.cast_into::<PyTuple>()?)
}

fn build_server_config(
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
