//! The log snapshot: the exact engine image after one batch, stored under
//! `/fencelock/<cluster>/snapshot` by the append of that batch, which also deletes the log
//! keys before it. A node that starts restores it and applies only the batches after it.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{EngineImage, Error};

/// Version written by this build; a node refuses to start from any other.
pub const LOG_SNAPSHOT_VERSION: u32 = 1;

/// The state of the replicated engine right after the batch `index` was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogSnapshot {
    /// Format version, [`LOG_SNAPSHOT_VERSION`].
    pub version: u32,
    /// The log index of the last batch the image includes.
    pub index: u64,
    /// The term of the leader that wrote it.
    pub term: u64,
    /// The highest client id in the log up to `index`: a new leader numbers connections above it.
    pub max_client: u64,
    /// The engine, exactly.
    pub image: EngineImage,
}

/// The fields of a snapshot a follower needs to know it was written, read without the image.
#[derive(Deserialize)]
struct SnapshotHeader {
    index: u64,
}

impl LogSnapshot {
    /// Encodes the snapshot as JSON (readable with `etcdctl get`).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data (strings, integers, options) to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a snapshot.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the bytes are not a snapshot of version [`LOG_SNAPSHOT_VERSION`].
    pub fn decode(bytes: &[u8]) -> Result<LogSnapshot, Error> {
        let snapshot: LogSnapshot = serde_json::from_slice(bytes)
            .map_err(|error| Error::bad(alloc::format!("bad log snapshot: {error}")))?;
        if snapshot.version != LOG_SNAPSHOT_VERSION {
            return Err(Error::bad(alloc::format!(
                "log snapshot version {} is not {LOG_SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        Ok(snapshot)
    }

    /// Returns the index of an encoded snapshot without rebuilding its image.
    #[must_use]
    pub fn index_of(bytes: &[u8]) -> Option<u64> {
        serde_json::from_slice::<SnapshotHeader>(bytes)
            .ok()
            .map(|header| header.index)
    }
}
