//! The resource-side fence: high-water marks per resource.

use fencelock_core::{Fence, FenceOutcome};
use pyo3::prelude::*;

/// An in-memory fence; `fencelock.Fence` adds the durable file and the Python API.
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

    /// Checks `token` for `resource`: returns (accepted, advanced, highest).
    fn check(&mut self, resource: &str, token: u64) -> (bool, bool, u64) {
        match self.fence.check(resource, token) {
            FenceOutcome::Accepted { advanced, highest } => (true, advanced, highest),
            FenceOutcome::Rejected { highest } => (false, false, highest),
            // An outcome added to the core later: its own verdict, and the mark as it stands.
            other => (other.is_accepted(), false, self.fence.highest(resource)),
        }
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    fn highest(&self, resource: &str) -> u64 {
        self.fence.highest(resource)
    }

    /// Raises the mark of `resource` to at least `token` (loading a durable file).
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
