//! Core errors become Python exceptions of the class `fencelock.errors` maps their code to.

use fencelock_core::Error;
use pyo3::prelude::*;

/// Builds the Python exception for a core error by asking `fencelock.errors.error_from_code`,
/// so that the code-to-class table lives in one Python file.
pub(crate) fn to_pyerr(py: Python<'_>, error: &Error) -> PyErr {
    let code = error.wire_code();
    let message = error.message();
    let built = py
        .import("fencelock.errors")
        .and_then(|errors| errors.getattr("error_from_code"))
        .and_then(|build| build.call1((code, message.as_str())));
    match built {
        Ok(exception) => PyErr::from_value(exception),
        // Only if the Python package is broken: report that instead of the core error.
        Err(import_failure) => import_failure,
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
