//! Atomic, durable file changes for the Node host, used by the native socket loop
//! (`tcp.rs`) and, through `writeFileDurably` and `removeFileDurably`, by
//! `node/lib/durable.js` (the `net` loop, the fence file, the ready file): one implementation
//! of the rule in docs/HOSTS.md (temp file, fsync, rename, fsync of the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use napi::bindgen_prelude::Buffer;
use napi::Status;
use napi_derive::napi;

/// The directory holding `file` (`.` for a bare name).
fn directory(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Replaces `file` with `data` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomic(file: &Path, data: &[u8]) -> io::Result<()> {
    let name = file
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = directory(file);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    {
        let mut handle = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)?;
        handle.write_all(data)?;
        handle.sync_all()?;
    }
    fs::rename(&temp, file)?;
    File::open(dir)?.sync_all()
}

/// Deletes `file` (if present) and makes the deletion durable.
pub(crate) fn remove_durable(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Ok(()) => File::open(directory(file))?.sync_all(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Replaces the file at `path` with `data` atomically and durably; throws with the system's
/// reason on any failure.
#[napi]
pub fn write_file_durably(path: String, data: Buffer) -> napi::Result<()> {
    write_atomic(Path::new(&path), &data)
        .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))
}

/// Deletes the file at `path` (if present) and makes the deletion durable; throws with the
/// system's reason on any failure.
#[napi]
pub fn remove_file_durably(path: String) -> napi::Result<()> {
    remove_durable(Path::new(&path))
        .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))
}
