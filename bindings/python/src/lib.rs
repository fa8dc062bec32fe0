//! pyo3 glue: exposes fencelock-core to Python as the private module `fencelock._native`.
//!
//! Glue only: times are plain millisecond integers, results are typed records (`records`)
//! that the Python layer (`fencelock.engine`, `fencelock.fence`, `fencelock.server`) wraps.
//! The exception classes are defined here (`errors`) and re-exported by `fencelock.errors`;
//! every core error is raised as the class of its code. Nothing here panics on input.

mod client;
mod cluster;
mod engine;
mod errors;
mod fence;
mod records;
mod server;

use pyo3::prelude::*;

/// Returns the users-file hash of `password` (`pbkdf2-sha256$iterations$salt$key`); `salt`
/// must come from `os.urandom(16)`. The hash runs without the GIL.
#[pyfunction]
#[pyo3(signature = (password, salt, iterations=fencelock_core::protocol::DEFAULT_ITERATIONS))]
fn hash_password(py: Python<'_>, password: &[u8], salt: &[u8], iterations: u32) -> String {
    py.detach(|| fencelock_core::protocol::hash_password(password, salt, iterations))
}

/// Returns True when `password` matches a `hash_password` hash.
#[pyfunction]
fn verify_password(py: Python<'_>, hash: &str, password: &[u8]) -> bool {
    py.detach(|| fencelock_core::protocol::verify_password(hash, password))
}

/// The private native module; import `fencelock` instead.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::NativeClient>()?;
    module.add_class::<engine::NativeEngine>()?;
    module.add_class::<fence::NativeFence>()?;
    module.add_class::<server::NativeServer>()?;
    module.add_class::<cluster::NativeCluster>()?;
    module.add_class::<records::AcquireGranted>()?;
    module.add_class::<records::AcquireQueued>()?;
    module.add_class::<records::GrantedEvent>()?;
    module.add_class::<records::WaitTimedOutEvent>()?;
    module.add_class::<records::ExpiredEvent>()?;
    module.add_class::<records::StolenEvent>()?;
    module.add_class::<records::HolderRecord>()?;
    module.add_class::<records::WaiterRecord>()?;
    module.add_class::<records::LockRecord>()?;
    module.add_class::<records::FenceCheck>()?;
    module.add_class::<records::Transmit>()?;
    module.add_class::<records::Close>()?;
    module.add_class::<records::WriteFile>()?;
    module.add_class::<records::RemoveFile>()?;
    module.add_class::<records::Recovery>()?;
    module.add_function(wrap_pyfunction!(hash_password, module)?)?;
    module.add_function(wrap_pyfunction!(verify_password, module)?)?;
    module.add(
        "DEFAULT_ITERATIONS",
        fencelock_core::protocol::DEFAULT_ITERATIONS,
    )?;
    errors::register(module)?;
    let data_files: Vec<&str> = fencelock_core::DataFile::ALL
        .iter()
        .map(|file| file.name())
        .collect();
    module.add("DATA_FILES", data_files)?;
    module.add("FENCE_FILE_VERSION", fencelock_core::FENCE_FILE_VERSION)?;
    module.add("MAX_TOKEN", fencelock_core::MAX_TOKEN)?;
    module.add("SNAPSHOT_VERSION", fencelock_core::SNAPSHOT_VERSION)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
