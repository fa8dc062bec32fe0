//! Public value types of the engine: options, outcomes, events, introspection.

use alloc::string::String;
use alloc::vec::Vec;

use crate::time::Instant;

/// A fencing token: strictly increasing across all locks, restarts and crashes (I2).
pub type Token = u64;
/// Identifies a client (a connection) to the engine; 0 means "no client".
pub type ClientId = u64;
/// Identifies a queued request.
pub type WaiterId = u64;

/// Whether a lease excludes every other or may be held alongside other shared leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One holder at a time.
    #[default]
    Exclusive,
    /// Any number of shared holders, never together with an exclusive one.
    Shared,
}

impl Mode {
    /// Returns `"exclusive"` or `"shared"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }
}

/// How to acquire a lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    /// Exclusive (default) or shared.
    pub mode: Mode,
    /// How long to wait in the queue, in ms; 0 tries once and fails with `LOCKED`.
    pub wait_ms: u64,
    /// A label shown in introspection and events.
    pub owner: Option<String>,
    /// Take the lock at once, fencing off the current holders.
    pub steal: bool,
    /// The client asking; its waits (and, with `ephemeral`, its lease) end when it disconnects.
    pub client: ClientId,
    /// Release the lease when `client` disconnects.
    pub ephemeral: bool,
    /// Lock-delay after this lease expires, overriding the engine default.
    pub lock_delay_ms: Option<u64>,
}

/// The outcome of a successful acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is held now.
    Granted { token: Token, deadline: Instant },
    /// The request waits; a [`Event::Granted`] or [`Event::WaitTimedOut`] with this id follows.
    Queued { waiter: WaiterId, deadline: Instant },
}

/// Something the host must deliver to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A queued request was granted.
    Granted {
        name: String,
        token: Token,
        waiter: WaiterId,
        client: ClientId,
        deadline: Instant,
    },
    /// A queued request ran out of time.
    WaitTimedOut {
        name: String,
        waiter: WaiterId,
        client: ClientId,
        waited_ms: u64,
    },
    /// A lease reached its deadline.
    Expired {
        name: String,
        token: Token,
        owner: Option<String>,
        client: ClientId,
    },
    /// A lease was taken by a steal; its token is stale from now on.
    Stolen {
        name: String,
        token: Token,
        owner: Option<String>,
        client: ClientId,
        by_token: Token,
    },
}

/// How an engine starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Nothing was ever persisted.
    Fresh,
    /// The last run ended without a snapshot: resume tokens above `ceiling` and grant nothing
    /// until every lease of the last run has lapsed.
    Crashed { ceiling: u64 },
    /// The last run shut down cleanly and left `snapshot`.
    Clean {
        ceiling: u64,
        snapshot: crate::snapshot::Snapshot,
    },
}

/// One lock as shown by [`crate::Engine::query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub name: String,
    pub holders: Vec<HolderInfo>,
    pub waiters: Vec<WaiterInfo>,
    /// Lock-delay left, in ms (0: none).
    pub delay_ms_left: u64,
}

/// One holder in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderInfo {
    pub token: Token,
    pub mode: Mode,
    pub owner: Option<String>,
    pub ms_left: u64,
    pub client: ClientId,
}

/// One waiter in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    pub waiter: WaiterId,
    /// 1 for the head of the queue.
    pub position: usize,
    pub mode: Mode,
    pub owner: Option<String>,
    pub client: ClientId,
    /// Wait left, in ms.
    pub ms_left: u64,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub acquires: u64,
    pub grants: u64,
    pub grants_after_wait: u64,
    pub releases: u64,
    pub renewals: u64,
    pub expiries: u64,
    pub steals: u64,
    pub stale_rejections: u64,
    pub wait_timeouts: u64,
    pub total_wait_ms: u64,
}

impl Start {
    /// Builds a start from what a host read off its data directory: `kind` is `"fresh"`,
    /// `"crashed"` (with the persisted `ceiling`) or `"clean"` (with `ceiling` and the
    /// snapshot's bytes). Every host names starts this way.
    ///
    /// # Errors
    /// [`crate::Error::BadRequest`] for another kind, a snapshot where none belongs (or none
    /// where one is needed), or snapshot bytes that do not decode.
    pub fn from_parts(
        kind: &str,
        ceiling: u64,
        snapshot: Option<&[u8]>,
    ) -> Result<Start, crate::Error> {
        match (kind, snapshot) {
            ("fresh", None) => Ok(Start::Fresh),
            ("crashed", None) => Ok(Start::Crashed { ceiling }),
            ("clean", Some(bytes)) => Ok(Start::Clean {
                ceiling,
                snapshot: crate::snapshot::Snapshot::decode(bytes)?,
            }),
            (other, snapshot) => Err(crate::Error::BadRequest(alloc::format!(
                "start {other:?} {} is not one of: fresh, crashed, clean with a snapshot",
                if snapshot.is_some() {
                    "with a snapshot"
                } else {
                    "without a snapshot"
                }
            ))),
        }
    }
}
