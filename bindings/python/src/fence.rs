//! The resource-side fence: high-water marks per resource, and their durable file format.

use fencelock_core::{Fence, FenceOutcome};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::corrupt_file;
use crate::records::FenceCheck;

/// An in-memory fence; `fencelock.Fence` writes `encode()` to its file and reads it back with
/// `decode()`, so the file format is the core's.
#[pyclass(module = "fencelock._native")]
#[derive(Debug, Default)]
pub(crate) struct NativeFence {
    fence: Fence,
}

#[pymethods]
impl NativeFence {
    #[new]
    fn new() -> Self {
        NativeFence::default()
    }

    /// Decodes the content of a fence file into a fence.
    ///
    /// Raises `ValueError` if the bytes are not a fence file: a fence that forgot its marks
    /// would accept stale tokens.
    #[staticmethod]
    fn decode(data: &[u8]) -> PyResult<NativeFence> {
        Fence::decode(data)
            .map(|fence| NativeFence { fence })
            .map_err(|error| corrupt_file(&error))
    }

    /// Returns every mark as the content of a fence file, to write atomically and durably.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.fence.encode())
    }

    /// Checks `token` for `resource` and advances the mark if it is accepted.
    fn check(&mut self, resource: &str, token: u64) -> FenceCheck {
        match self.fence.check(resource, token) {
            FenceOutcome::Accepted { advanced, highest } => FenceCheck {
                accepted: true,
                advanced,
                highest,
            },
            FenceOutcome::Rejected { highest } => FenceCheck {
                accepted: false,
                advanced: false,
                highest,
            },
            // An outcome added to the core later: its own verdict, and the mark as it stands.
            other => FenceCheck {
                accepted: other.is_accepted(),
                advanced: false,
                highest: self.fence.highest(resource),
            },
        }
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    fn highest(&self, resource: &str) -> u64 {
        self.fence.highest(resource)
    }

    /// Raises the mark of `resource` to at least `token`.
    fn restore(&mut self, resource: &str, token: u64) {
        self.fence.restore(resource, token);
    }

    /// Returns every (resource, highest) pair.
    fn marks(&self) -> Vec<(String, u64)> {
        self.fence
            .marks()
            .map(|(resource, highest)| (resource.to_owned(), highest))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.fence.marks().count()
    }
}
