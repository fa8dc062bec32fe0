//! pyo3 glue: exposes fencelock-core to Python as the private module `fencelock._native`.
//!
//! Glue only: times are plain millisecond integers, results are tuples and dicts that the
//! Python layer (`fencelock.engine`, `fencelock.fence`, `fencelock.server`) wraps. Every core
//! error is raised as the `fencelock.errors` class of its code; nothing here panics on input.

mod client;
mod engine;
mod errors;
mod fence;
mod server;

use pyo3::prelude::*;

/// The private native module; import `fencelock` instead.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::NativeClient>()?;
    module.add_class::<engine::NativeEngine>()?;
    module.add_class::<fence::NativeFence>()?;
    module.add_class::<server::NativeServer>()?;
    module.add("MAX_TOKEN", fencelock_core::MAX_TOKEN)?;
    module.add("SNAPSHOT_VERSION", fencelock_core::SNAPSHOT_VERSION)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
