//! The exception classes of fencelock, defined here and re-exported by `fencelock.errors`, and
//! the one place where core errors become them.
//!
//! The classes are built at import as ordinary (heap) exception classes rather than
//! `#[pyclass(extends=PyException)]`: a pyclass adds its own instance layout, and CPython
//! refuses a class with two such layouts, but `ConnectionLost` must derive from both
//! `FencelockError` and the builtin `ConnectionError`. Attributes live in the instance dict;
//! `__init__` and `__str__` are Rust functions bound through a small descriptor.

use pyo3::exceptions::{PyConnectionError, PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use fencelock_core::{CorruptFile, Error};

/// Builds the Python exception for a core error: the class of its code, `.code` and
/// `.message` from the core (never parsed back out of the text), plus `ms_left` for
/// `Locked` and `NotReady`.
pub(crate) fn to_pyerr(py: Python<'_>, error: &Error) -> PyErr {
    match build_exception(py, error) {
        Ok(exception) => PyErr::from_value(exception),
        // Only if the interpreter cannot build an object: report that instead.
        Err(failure) => failure,
    }
}

/// Shorthand for `result.map_err(|e| to_pyerr(py, &e))`.
pub(crate) trait IntoPyResult<T> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|error| to_pyerr(py, &error))
    }
}

/// Builds the `ValueError` for a durable file that cannot be trusted.
pub(crate) fn corrupt_file(error: &CorruptFile) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// Adds every exception class to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    for (spec, class) in SPECS.iter().zip(classes(py)?) {
        module.add(spec.name, class.bind(py))?;
    }
    Ok(())
}

/// One exception class: its name, stable code, extra attributes and their defaults.
struct Spec {
    name: &'static str,
    code: &'static str,
    doc: &'static str,
    fields: &'static [(&'static str, FieldDefault)],
    /// Also a builtin `ConnectionError`, so `except ConnectionError` catches it.
    connection_error: bool,
}

/// The class-level default of an extra attribute.
#[derive(Clone, Copy)]
enum FieldDefault {
    None,
    Zero,
    Empty,
}

/// Every class, the base first; [`Kind`] indexes this table.
const SPECS: [Spec; 16] = [
    spec("FencelockError", "ERROR", "Base class of every fencelock error; `code` is the stable wire code.", &[]),
    spec("Locked", "LOCKED", "The lock is held (or in lock-delay) and the caller did not wait; `ms_left` says until when.", &[("ms_left", FieldDefault::None)]),
    spec("Stale", "STALE", "The token is not a live lease of that lock (released, superseded, stolen or unknown).", &[]),
    spec("Expired", "EXPIRED", "The token's lease lapsed; a lapsed lease stays lapsed.", &[]),
    spec("LockTimeout", "TIMEOUT", "The wait ran out before the lock was granted.", &[]),
    spec("NotReady", "NOTREADY", "The server restarted after a crash and grants nothing until its restart grace ends (`ms_left`).", &[("ms_left", FieldDefault::None)]),
    spec("LimitReached", "LIMIT", "A configured limit (waiters, locks, holders, connections) was reached.", &[]),
    spec("TokensExhausted", "EXHAUSTED", "The token sequence reached 2^53-1; no further token can be issued.", &[]),
    spec("BadRequest", "ERR", "The request was malformed: names, numbers, TTL bounds or syntax.", &[]),
    spec("ProtocolError", "PROTOCOL", "The peer sent bytes that are not RESP, or a reply of the wrong shape.", &[]),
    spec("LeaseLost", "LOST", "A lease held in a `lock()` block was lost (expired, stolen, or renewal failed).", &[("name", FieldDefault::Empty), ("token", FieldDefault::Zero)]),
    Spec {
        connection_error: true,
        ..spec("ConnectionLost", "CONNECTION", "The connection to the server failed; the request may or may not have been applied.", &[])
    },
    spec("FenceRejected", "FENCED", "A fence refused a token lower than the highest it has accepted for the resource.", &[("resource", FieldDefault::Empty), ("token", FieldDefault::Zero), ("highest", FieldDefault::Zero)]),
    spec("AuthRequired", "NOAUTH", "The server requires authentication: pass `username=` and `password=` to the client.", &[]),
    spec("PermissionDenied", "NOPERM", "The user's rules do not allow the command; the message names the user and the rule.", &[]),
    spec("AuthFailed", "WRONGPASS", "Authentication failed: unknown user or wrong password (the server never says which).", &[]),
];

const fn spec(
    name: &'static str,
    code: &'static str,
    doc: &'static str,
    fields: &'static [(&'static str, FieldDefault)],
) -> Spec {
    Spec {
        name,
        code,
        doc,
        fields,
        connection_error: false,
    }
}

/// Positions in [`SPECS`].
#[derive(Clone, Copy)]
enum Kind {
    Base = 0,
    Locked = 1,
    Stale = 2,
    Expired = 3,
    Timeout = 4,
    NotReady = 5,
    Limit = 6,
    Exhausted = 7,
    BadRequest = 8,
    Protocol = 9,
    ConnectionLost = 11,
    NoAuth = 13,
    NoPerm = 14,
    WrongPass = 15,
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    CLASSES.get_or_try_init(py, || build_classes(py))
}

fn class(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyType>> {
    classes(py)?
        .get(kind as usize)
        .map(|class| class.bind(py).clone())
        .ok_or_else(|| PyTypeError::new_err("fencelock exception table is incomplete"))
}

fn build_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let make_type = py.get_type::<PyType>();
    let mut built: Vec<Py<PyType>> = Vec::with_capacity(SPECS.len());
    for spec in &SPECS {
        let namespace = PyDict::new(py);
        // Shown in tracebacks and used by pickle; `fencelock.errors` re-exports every class.
        namespace.set_item("__module__", "fencelock.errors")?;
        namespace.set_item("__doc__", spec.doc)?;
        namespace.set_item("code", spec.code)?;
        let names: Vec<&str> = spec.fields.iter().map(|(name, _)| *name).collect();
        namespace.set_item("_fields", PyTuple::new(py, names)?)?;
        for (name, default) in spec.fields {
            match default {
                FieldDefault::None => namespace.set_item(name, py.None())?,
                FieldDefault::Zero => namespace.set_item(name, 0)?,
                FieldDefault::Empty => namespace.set_item(name, "")?,
            }
        }
        let bases = match built.first() {
            None => {
                namespace.set_item("__init__", Method::new(py, exception_init)?)?;
                namespace.set_item("__str__", Method::new(py, exception_str)?)?;
                PyTuple::new(py, [py.get_type::<PyException>()])?
            }
            Some(base) if spec.connection_error => PyTuple::new(
                py,
                [base.bind(py).clone(), py.get_type::<PyConnectionError>()],
            )?,
            Some(base) => PyTuple::new(py, [base.bind(py).clone()])?,
        };
        let class = make_type.call1((spec.name, bases, namespace))?;
        built.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(built)
}

fn build_exception<'py>(py: Python<'py>, error: &Error) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(py);
    let kind = match error {
        Error::Locked { ms_left } => {
            kwargs.set_item("ms_left", ms_left)?;
            Kind::Locked
        }
        Error::NotReady { ms_left } => {
            kwargs.set_item("ms_left", ms_left)?;
            Kind::NotReady
        }
        Error::Stale { .. } => Kind::Stale,
        Error::Expired { .. } => Kind::Expired,
        Error::Timeout { .. } => Kind::Timeout,
        Error::Limit(_) => Kind::Limit,
        Error::Exhausted => Kind::Exhausted,
        Error::BadRequest(_) => Kind::BadRequest,
        Error::ConnectionLost(_) => Kind::ConnectionLost,
        Error::Protocol(_) => Kind::Protocol,
        Error::NoAuth(_) => Kind::NoAuth,
        Error::NoPerm(_) => Kind::NoPerm,
        Error::WrongPass(_) => Kind::WrongPass,
        // An unknown reply code, and any variant added later: the base class with its code.
        _ => {
            kwargs.set_item("code", error.wire_code())?;
            Kind::Base
        }
    };
    class(py, kind)?.call((error.message(),), Some(&kwargs))
}

/// `FencelockError.__init__(self, message="", *, code=None, **fields)`: `fields` are the
/// class's extra attributes (`ms_left`, `name`, `token`, `resource`, `highest`).
fn exception_init<'py>(
    receiver: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let py = receiver.py();
    let type_name = receiver.get_type().name()?;
    if args.len() > 1 {
        return Err(PyTypeError::new_err(format!(
            "{type_name}() takes at most one positional argument (the message), got {}",
            args.len()
        )));
    }
    let message = match args.get_item(0) {
        Ok(message) => message.str()?,
        Err(_) => PyString::new(py, ""),
    };
    // The next __init__ in the MRO: BaseException's, or OSError's for ConnectionLost.
    let base = class(py, Kind::Base)?;
    pyo3::types::PySuper::new(&base, receiver)?.call_method1("__init__", (&message,))?;
    receiver.setattr("message", &message)?;
    let fields = receiver.getattr("_fields")?;
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key = key.cast_into::<PyString>()?;
            if key.to_cow()? == "code" {
                if !value.is_none() {
                    receiver.setattr("code", value.str()?)?;
                }
            } else if fields.contains(&key)? {
                receiver.setattr(&key, value)?;
            } else {
                return Err(PyTypeError::new_err(format!(
                    "{type_name}() got an unexpected keyword argument {}",
                    key.repr()?
                )));
            }
        }
    }
    Ok(py.None())
}

/// `FencelockError.__str__`: `"CODE message"`, the text of a wire error reply.
fn exception_str<'py>(
    receiver: &Bound<'py, PyAny>,
    _args: &Bound<'py, PyTuple>,
    _kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let code = receiver.getattr("code")?.str()?;
    let message = receiver.getattr("message")?.str()?;
    let text = if message.is_empty()? {
        code.to_string()
    } else {
        format!("{code} {message}")
    };
    Ok(PyString::new(receiver.py(), &text).into_any().unbind())
}

type MethodBody = for<'py> fn(
    &Bound<'py, PyAny>,
    &Bound<'py, PyTuple>,
    Option<&Bound<'py, PyDict>>,
) -> PyResult<Py<PyAny>>;

/// A Rust function that binds like a Python method when stored on a class, which a builtin
/// function does not (it has no `__get__`).
#[pyclass(module = "fencelock._native", frozen, name = "_Method")]
struct Method {
    body: MethodBody,
}

impl Method {
    fn new(py: Python<'_>, body: MethodBody) -> PyResult<Bound<'_, Method>> {
        Bound::new(py, Method { body })
    }
}

#[pymethods]
impl Method {
    fn __get__(
        slf: Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match instance {
            None => Ok(slf.into_any().unbind()),
            Some(instance) => Ok(py
                .import("types")?
                .getattr("MethodType")?
                .call1((slf, instance))?
                .unbind()),
        }
    }

    #[pyo3(signature = (receiver, *args, **kwargs))]
    fn __call__(
        &self,
        receiver: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        (self.body)(receiver, args, kwargs)
    }
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Method")
    }
}
