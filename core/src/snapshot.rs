//! The clean-shutdown snapshot: live leases with their time left, in a versioned format.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Version written by this build; decoding refuses any other.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Live state at a clean shutdown. Monotonic time does not survive a restart, so each lease
/// keeps its time left: a restored lease never ends earlier than it would have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version, [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The next token the engine would have issued.
    pub next_token: u64,
    /// The token ceiling persisted when the snapshot was taken; a snapshot whose ceiling is not
    /// the one on disk is stale and is treated as a crash.
    #[serde(default)]
    pub ceiling: u64,
    /// Every live lease.
    pub leases: Vec<SnapshotLease>,
    /// Locks inside a lock-delay.
    #[serde(default)]
    pub delays: Vec<SnapshotDelay>,
    /// Restart grace left at shutdown, in ms: a run that shut down cleanly while still in the
    /// grace of an earlier crash does not know that crash's leases, which may still be live.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grace_ms_left: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One live lease in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLease {
    /// Lock name.
    pub name: String,
    /// Fencing token of the lease.
    pub token: u64,
    /// Whether the lease is shared.
    pub shared: bool,
    /// Owner label, if any.
    #[serde(default)]
    pub owner: Option<String>,
    /// Milliseconds the lease had left at shutdown.
    pub ms_left: u64,
    /// Lock-delay applied if this lease expires.
    #[serde(default)]
    pub lock_delay_ms: u64,
}

/// A lock inside a lock-delay in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDelay {
    /// Lock name.
    pub name: String,
    /// The token whose expiry began the delay.
    #[serde(default)]
    pub token: u64,
    /// Milliseconds of delay left at shutdown.
    pub ms_left: u64,
}

impl Snapshot {
    /// Encodes the snapshot as JSON bytes, the same on every host.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a snapshot written by [`Snapshot::encode`].
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the bytes are not a snapshot of this version.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, Error> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| Error::bad(alloc::format!("snapshot is unreadable: {e}")))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(Error::bad(alloc::format!(
                "snapshot version {} is not supported (expected {SNAPSHOT_VERSION})",
                snapshot.version
            )));
        }
        Ok(snapshot)
    }
}
