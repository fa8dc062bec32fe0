//! Typed, immutable records that the native classes return instead of tuples with string kinds.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// Declares a frozen record class with read-only fields and a `Name(field=value, ...)` repr;
/// with a kind string, records of one family (events, outputs) also answer `.kind`.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident $(kind $kind:literal)? { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[pyclass(module = "fencelock._native", frozen, get_all)]
        #[derive(Debug)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)*
        }

        #[pymethods]
        impl $name {
            $(
                /// The family member this record is, as a string.
                #[getter]
                fn kind(&self) -> &'static str {
                    $kind
                }
            )?

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let parts: Vec<String> = vec![
                    $(format!("{}={}", stringify!($field), slf.getattr(stringify!($field))?.repr()?),)*
                ];
                Ok(format!("{}({})", stringify!($name), parts.join(", ")))
            }
        }
    };
}

record! {
    /// An acquire that holds the lock now, until `deadline_ms`.
    AcquireGranted kind "granted" { token: u64, deadline_ms: u64 }
}

record! {
    /// An acquire that waits in the queue until `deadline_ms` at the latest.
    AcquireQueued kind "queued" { waiter: u64, deadline_ms: u64 }
}

record! {
    /// A queued request was granted.
    GrantedEvent kind "granted" { name: String, token: u64, waiter: u64, client: u64, deadline_ms: u64 }
}

record! {
    /// A queued request ran out of time.
    WaitTimedOutEvent kind "wait_timed_out" { name: String, waiter: u64, client: u64, waited_ms: u64 }
}

record! {
    /// A lease reached its deadline.
    ExpiredEvent kind "expired" { name: String, token: u64, owner: Option<String>, client: u64 }
}

record! {
    /// A lease was taken by a steal; `by_token` is the new holder's token.
    StolenEvent kind "stolen" { name: String, token: u64, owner: Option<String>, client: u64, by_token: u64 }
}

record! {
    /// One holder of a lock, as listed by a query.
    #[derive(Clone)]
    HolderRecord { token: u64, mode: &'static str, owner: Option<String>, ms_left: u64, client: u64 }
}

record! {
    /// One waiter of a lock, as listed by a query (`position` 1 is the head).
    #[derive(Clone)]
    WaiterRecord { waiter: u64, position: usize, mode: &'static str, owner: Option<String>, client: u64, ms_left: u64 }
}

record! {
    /// One lock, as listed by a query.
    LockRecord { name: String, holders: Vec<HolderRecord>, waiters: Vec<WaiterRecord>, delay_ms_left: u64 }
}

record! {
    /// The answer of a fence check: whether the write may proceed, whether the mark moved.
    FenceCheck { accepted: bool, advanced: bool, highest: u64 }
}

record! {
    /// Write `data` to the connection.
    Transmit kind "transmit" { conn: u64, data: Py<PyBytes> }
}

record! {
    /// Close the connection once the bytes written before are flushed.
    Close kind "close" { conn: u64 }
}

record! {
    /// Atomically replace the data-directory file named `file` with `data` (temp file, fsync,
    /// rename, fsync dir), durably, before handling anything after it.
    WriteFile kind "write" { file: &'static str, data: Py<PyBytes> }
}

record! {
    /// Remove the data-directory file named `file` durably (fsync dir) before anything after it.
    RemoveFile kind "remove" { file: &'static str }
}

record! {
    /// How a server started from its data directory: `kind` is "fresh", "crashed", "clean" or
    /// "snapshot-refused"; `summary` is the line to log; `grace_case` says how the restart
    /// grace of `grace_ms` was decided ("none", "horizon", "rebooted", "no-boot-id",
    /// "no-horizon", "stale-horizon"); `actions` must be performed, in order, before serving.
    Recovery { kind: &'static str, summary: String, has_grace: bool, grace_case: &'static str, grace_ms: u64, refusal: Option<String>, actions: Py<PyList> }
}

/// Returns the record for a durable file action.
pub(crate) fn file_action(
    py: Python<'_>,
    action: fencelock_core::FileAction,
) -> PyResult<Py<PyAny>> {
    use fencelock_core::FileAction;
    Ok(match action {
        FileAction::Write { file, bytes } => Py::new(
            py,
            WriteFile {
                file: file.name(),
                data: PyBytes::new(py, &bytes).unbind(),
            },
        )?
        .into_any(),
        FileAction::Remove { file } => Py::new(py, RemoveFile { file: file.name() })?.into_any(),
    })
}
