//! The core's sans-IO client: `fencelock.client` and `fencelock.aio` are I/O loops around it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use fencelock_core::client::{
    Client, ClientConfig, Event, LostReason, Output, Reply, RequestId, Value,
};
use fencelock_core::Instant;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::engine::{acquire_options, lock_record};
use crate::errors::{to_pyerr, IntoPyResult};

/// One client: connections, requests in flight, tracked leases. Thread-safe: the sync client's
/// callers and its I/O thread share it.
#[pyclass(module = "fencelock._native", frozen)]
#[derive(Debug)]
pub(crate) struct NativeClient {
    client: Mutex<Client>,
}

#[pymethods]
impl NativeClient {
    /// Creates a client for `endpoints` addresses (the host maps an index to an address);
    /// `addresses` (`host:port` per endpoint) lets a cluster follower's `-MOVED` name one.
    #[new]
    #[pyo3(signature = (endpoints=1, resp3=true, request_timeout_ms=10_000, connect_timeout_ms=5_000, addresses=None, username=None, password=None))]
    fn new(
        endpoints: usize,
        resp3: bool,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        addresses: Option<Vec<String>>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> PyResult<Self> {
        if endpoints == 0 {
            return Err(PyValueError::new_err(
                "a client needs at least one endpoint",
            ));
        }
        let mut config = ClientConfig::default();
        config.endpoints = endpoints;
        config.resp3 = resp3;
        config.request_timeout_ms = request_timeout_ms;
        config.connect_timeout_ms = connect_timeout_ms;
        config.endpoint_addresses = addresses.unwrap_or_default();
        config.credentials = password.map(|password| {
            fencelock_core::client::Credentials::new(
                username.unwrap_or(fencelock_core::protocol::DEFAULT_USER),
                password,
            )
        });
        Ok(NativeClient {
            client: Mutex::new(Client::new(config)),
        })
    }

    /// Queues an ACQUIRE and returns its request id.
    #[pyo3(signature = (now_ms, name, ttl_ms, wait_ms=0, shared=false, steal=false, owner=None, ephemeral=false, lock_delay_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        py: Python<'_>,
        now_ms: u64,
        name: &str,
        ttl_ms: u64,
        wait_ms: u64,
        shared: bool,
        steal: bool,
        owner: Option<String>,
        ephemeral: bool,
        lock_delay_ms: Option<u64>,
    ) -> PyResult<RequestId> {
        // The connection is the client id on the server's side; here there is none.
        let options = acquire_options(shared, wait_ms, owner, steal, 0, ephemeral, lock_delay_ms);
        self.lock()
            .acquire(Instant(now_ms), name, ttl_ms, &options)
            .into_py_result(py)
    }

    /// Queues a RENEW.
    fn renew(
        &self,
        py: Python<'_>,
        now_ms: u64,
        name: &str,
        token: u64,
        ttl_ms: u64,
    ) -> PyResult<RequestId> {
        self.lock()
            .renew(Instant(now_ms), name, token, ttl_ms)
            .into_py_result(py)
    }

    /// Queues a RELEASE.
    fn release(&self, py: Python<'_>, now_ms: u64, name: &str, token: u64) -> PyResult<RequestId> {
        self.lock()
            .release(Instant(now_ms), name, token)
            .into_py_result(py)
    }

    /// Queues a VERIFY.
    fn verify(&self, py: Python<'_>, now_ms: u64, name: &str, token: u64) -> PyResult<RequestId> {
        self.lock()
            .verify(Instant(now_ms), name, token)
            .into_py_result(py)
    }

    /// Queues a QUERY.
    #[pyo3(signature = (now_ms, prefix=""))]
    fn query(&self, now_ms: u64, prefix: &str) -> RequestId {
        self.lock().query(Instant(now_ms), prefix)
    }

    /// Queues one page of a QUERY: at most `count` locks after `cursor` ("" for the first).
    #[pyo3(signature = (now_ms, prefix, count, cursor=""))]
    fn query_page(&self, now_ms: u64, prefix: &str, count: u64, cursor: &str) -> RequestId {
        self.lock()
            .query_page(Instant(now_ms), prefix, count, cursor)
    }

    /// Queues an INFO.
    #[pyo3(signature = (now_ms, section=None))]
    fn info(&self, now_ms: u64, section: Option<&str>) -> RequestId {
        self.lock().info(Instant(now_ms), section)
    }

    /// Queues a PING.
    fn ping(&self, now_ms: u64) -> RequestId {
        self.lock().ping(Instant(now_ms))
    }

    /// Queues any command (name first); its reply comes back as plain Python values.
    fn command(&self, py: Python<'_>, now_ms: u64, argv: Vec<Vec<u8>>) -> PyResult<RequestId> {
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        self.lock()
            .command(Instant(now_ms), &args)
            .into_py_result(py)
    }

    /// Gives up on a request (a waiting acquire's connection is closed).
    fn cancel(&self, now_ms: u64, request: RequestId) {
        self.lock().cancel(Instant(now_ms), request);
    }

    /// Keeps a tracked lease alive; False if it is not tracked.
    fn keep_alive(&self, name: &str, token: u64) -> bool {
        self.lock().keep_alive(name, token)
    }

    /// Stops tracking a lease.
    fn forget(&self, name: &str, token: u64) {
        self.lock().forget(name, token);
    }

    /// Returns `(deadline_ms, ms_left, kept_alive)` of a tracked lease, or None.
    fn lease(&self, now_ms: u64, name: &str, token: u64) -> Option<(u64, u64, bool)> {
        self.lock()
            .lease(Instant(now_ms), name, token)
            .map(|status| (status.deadline.as_ms(), status.ms_left, status.kept_alive))
    }

    /// Reports that a connection is open.
    fn handle_connected(&self, now_ms: u64, conn: u64) {
        self.lock().handle_connected(Instant(now_ms), conn);
    }

    /// Feeds bytes received on a connection.
    fn receive(&self, now_ms: u64, conn: u64, data: &[u8]) {
        self.lock().receive(Instant(now_ms), conn, data);
    }

    /// Reports that a connection failed or closed.
    fn handle_disconnect(&self, now_ms: u64, conn: u64, reason: &str) {
        self.lock().handle_disconnect(Instant(now_ms), conn, reason);
    }

    /// Does what is due.
    fn handle_timeout(&self, now_ms: u64) {
        self.lock().handle_timeout(Instant(now_ms));
    }

    /// Closes every connection.
    fn close(&self, now_ms: u64) {
        self.lock().close(Instant(now_ms));
    }

    /// Returns when `handle_timeout` is next due, in ms, or None.
    fn poll_timeout(&self) -> Option<u64> {
        self.lock().poll_timeout().map(Instant::as_ms)
    }

    /// Returns every pending output, reply and event at once:
    /// `(outputs, replies, events, timeout_ms)`. Outputs are `("connect", conn, endpoint)`,
    /// `("transmit", conn, bytes)` or `("close", conn)`; replies `(id, payload)` where the
    /// payload is typed by the request, or a `FencelockError` instance; events
    /// `("lease_lost", name, token, reason_kind, reason_text, by_token, refusal)` or
    /// `("notice", kind, name, token, by_token)`.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let outputs = PyList::empty(py);
        let replies = PyList::empty(py);
        let events = PyList::empty(py);
        let timeout = {
            let mut client = self.lock();
            while let Some(output) = client.poll_output() {
                outputs.append(output_tuple(py, output)?)?;
            }
            while let Some((id, reply)) = client.poll_reply() {
                let payload = match reply {
                    Ok(reply) => reply_object(py, reply)?,
                    Err(error) => to_pyerr(py, &error).into_value(py).into_any(),
                };
                replies.append((id, payload))?;
            }
            while let Some(event) = client.poll_event() {
                events.append(event_tuple(py, event)?)?;
            }
            client.poll_timeout().map(Instant::as_ms)
        };
        (outputs, replies, events, timeout).into_pyobject(py)
    }

    /// Returns the connection a pending request was sent on.
    fn request_conn(&self, request: RequestId) -> Option<u64> {
        self.lock().request_conn(request)
    }

    /// Returns how many requests await their reply.
    fn pending(&self) -> usize {
        self.lock().pending()
    }
}

impl NativeClient {
    fn lock(&self) -> MutexGuard<'_, Client> {
        // A panic cannot happen inside the core (I6); if one did, the state is still the
        // last consistent one, so keep using it rather than poisoning every later call.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn output_tuple<'py>(py: Python<'py>, output: Output) -> PyResult<Bound<'py, PyTuple>> {
    match output {
        Output::Connect { conn, endpoint } => ("connect", conn, endpoint).into_pyobject(py),
        Output::Transmit { conn, bytes } => {
            ("transmit", conn, PyBytes::new(py, &bytes)).into_pyobject(py)
        }
        Output::Close { conn } => ("close", conn).into_pyobject(py),
        other => Err(PyValueError::new_err(format!(
            "unknown client output {other:?}"
        ))),
    }
}

fn reply_object(py: Python<'_>, reply: Reply) -> PyResult<Py<PyAny>> {
    match reply {
        Reply::Granted { token, deadline } => (token, deadline.as_ms()).into_py_any(py),
        Reply::MsLeft(ms) => ms.into_py_any(py),
        Reply::Ok => true.into_py_any(py),
        Reply::Locks(locks) => locks
            .into_iter()
            .map(lock_record)
            .collect::<Vec<_>>()
            .into_py_any(py),
        Reply::LockPage { cursor, locks } => (
            cursor,
            locks.into_iter().map(lock_record).collect::<Vec<_>>(),
        )
            .into_py_any(py),
        Reply::Info(entries) => entries
            .into_iter()
            .map(|entry| (entry.section, entry.key, entry.value))
            .collect::<Vec<_>>()
            .into_py_any(py),
        Reply::Pong(message) => PyBytes::new(py, &message).into_py_any(py),
        Reply::Value(value) => value_object(py, value),
        other => Err(PyValueError::new_err(format!("unknown reply {other:?}"))),
    }
}

/// Converts a raw reply to plain Python values: bulk strings are bytes, simple strings str,
/// maps dicts (unhashable keys become tuples), nested errors `FencelockError` instances.
fn value_object(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    match value {
        Value::Simple(text) => text.into_py_any(py),
        Value::Error(text) => Ok(to_pyerr(py, &fencelock_core::Error::from_wire(&text))
            .into_value(py)
            .into_any()),
        Value::Integer(number) => number.into_py_any(py),
        Value::Bulk(bytes) => PyBytes::new(py, &bytes).into_py_any(py),
        Value::Null => Ok(py.None()),
        Value::Boolean(flag) => flag.into_py_any(py),
        Value::Double(number) => number.into_py_any(py),
        Value::BigNumber(digits) => py
            .get_type::<pyo3::types::PyInt>()
            .call1((digits,))
            .map(Bound::unbind),
        Value::Array(items) | Value::Push(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_object(py, item)?)?;
            }
            list.into_py_any(py)
        }
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (key, value) in pairs {
                let key = value_object(py, key)?;
                let key = match key.bind(py).cast::<PyList>() {
                    Ok(list) => PyTuple::new(py, list.iter())?.into_any().unbind(),
                    Err(_) => key,
                };
                dict.set_item(key, value_object(py, value)?)?;
            }
            dict.into_py_any(py)
        }
        other => Err(PyValueError::new_err(format!(
            "unknown RESP value {other:?}"
        ))),
    }
}

fn event_tuple<'py>(py: Python<'py>, event: Event) -> PyResult<Bound<'py, PyTuple>> {
    match event {
        Event::LeaseLost {
            name,
            token,
            reason,
        } => {
            let refused = match &reason {
                LostReason::Refused(error) => Some(error.to_string()),
                _ => None,
            };
            let (kind, by_token) = match &reason {
                LostReason::Refused(_) => ("refused", None),
                LostReason::Lapsed => ("lapsed", None),
                LostReason::Expired => ("expired", None),
                LostReason::Stolen { by_token } => ("stolen", Some(*by_token)),
                LostReason::ConnectionClosed => ("connection_closed", None),
                _ => ("other", None),
            };
            (
                "lease_lost",
                name,
                token,
                kind,
                reason.describe(),
                by_token,
                refused,
            )
                .into_pyobject(py)
        }
        Event::Notice {
            kind,
            name,
            token,
            by_token,
        } => ("notice", kind, name, token, by_token).into_pyobject(py),
        other => Err(PyValueError::new_err(format!(
            "unknown client event {other:?}"
        ))),
    }
}
