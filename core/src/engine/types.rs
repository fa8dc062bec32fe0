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
#[non_exhaustive]
pub enum Mode {
    /// One holder at a time.
    #[default]
    Exclusive,
    /// Any number of shared holders, never together with an exclusive one.
    Shared,
}

impl Mode {
    /// Returns [`Mode::Shared`] if `shared`, else [`Mode::Exclusive`].
    #[must_use]
    pub const fn from_shared(shared: bool) -> Mode {
        if shared {
            Mode::Shared
        } else {
            Mode::Exclusive
        }
    }

    /// Returns `"exclusive"` or `"shared"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }
}

/// How to acquire a lease. Outside this crate, start from `AcquireOptions::default()` and set
/// fields: the struct may grow, so it cannot be built with a struct literal there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum Acquired {
    /// The lease is held now.
    Granted {
        /// The fencing token of the new lease.
        token: Token,
        /// When the lease ends unless renewed.
        deadline: Instant,
    },
    /// The request waits; a [`Event::Granted`] or [`Event::WaitTimedOut`] with this id follows.
    Queued {
        /// Identifies the queued request in later events and in [`crate::Engine::cancel_wait`].
        waiter: WaiterId,
        /// When the wait runs out.
        deadline: Instant,
    },
}

/// Something the host must deliver to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A queued request was granted.
    Granted {
        /// The lock.
        name: String,
        /// The fencing token of the new lease.
        token: Token,
        /// The request that was queued ([`Acquired::Queued`]).
        waiter: WaiterId,
        /// The client that asked (0: none).
        client: ClientId,
        /// When the lease ends unless renewed.
        deadline: Instant,
    },
    /// A queued request ran out of time.
    WaitTimedOut {
        /// The lock.
        name: String,
        /// The request that was queued ([`Acquired::Queued`]).
        waiter: WaiterId,
        /// The client that asked (0: none).
        client: ClientId,
        /// How long it waited, in ms.
        waited_ms: u64,
    },
    /// A lease reached its deadline.
    Expired {
        /// The lock.
        name: String,
        /// The token of the lapsed lease; it is stale from now on.
        token: Token,
        /// The owner label of the lease, if any.
        owner: Option<String>,
        /// The client that held it (0: none).
        client: ClientId,
    },
    /// A lease was taken by a steal; its token is stale from now on.
    Stolen {
        /// The lock.
        name: String,
        /// The token of the lease that was taken.
        token: Token,
        /// The owner label of the lease, if any.
        owner: Option<String>,
        /// The client that held it (0: none).
        client: ClientId,
        /// The token of the stealer's lease.
        by_token: Token,
    },
}

/// How an engine starts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Start {
    /// Nothing was ever persisted.
    Fresh,
    /// The last run ended without a snapshot: resume tokens above `ceiling` and grant nothing
    /// until every lease of the last run has lapsed.
    Crashed {
        /// The last token ceiling the host persisted.
        ceiling: u64,
    },
    /// The last run shut down cleanly and left `snapshot`.
    Clean {
        /// The last token ceiling the host persisted.
        ceiling: u64,
        /// The snapshot the last run wrote at shutdown.
        snapshot: crate::snapshot::Snapshot,
    },
}

/// One lock as shown by [`crate::Engine::query`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock.
    pub name: String,
    /// Its holders, by token.
    pub holders: Vec<HolderInfo>,
    /// Its queue, head first.
    pub waiters: Vec<WaiterInfo>,
    /// Lock-delay left, in ms (0: none).
    pub delay_ms_left: u64,
}

/// One holder in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HolderInfo {
    /// The fencing token of the lease.
    pub token: Token,
    /// Exclusive or shared.
    pub mode: Mode,
    /// The owner label, if any.
    pub owner: Option<String>,
    /// Time left on the lease, in ms.
    pub ms_left: u64,
    /// The client that holds it (0: none).
    pub client: ClientId,
}

/// One live lease as [`Engine::leases`] shows it: borrowed from the engine, nothing copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseView<'a> {
    /// The lock it is on.
    pub name: &'a str,
    /// The fencing token of the lease.
    pub token: Token,
    /// Exclusive or shared.
    pub mode: Mode,
    /// When it ends unless renewed, on the engine's clock.
    pub deadline: Instant,
    /// The owner label, if any.
    pub owner: Option<&'a str>,
    /// The client that holds it (0: none).
    pub client: ClientId,
    /// Whether it ends when its client disconnects.
    pub ephemeral: bool,
}

/// One waiter in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaiterInfo {
    /// Identifies the queued request.
    pub waiter: WaiterId,
    /// 1 for the head of the queue.
    pub position: usize,
    /// Exclusive or shared.
    pub mode: Mode,
    /// The owner label, if any.
    pub owner: Option<String>,
    /// The client that waits (0: none).
    pub client: ClientId,
    /// Wait left, in ms.
    pub ms_left: u64,
}

/// Counters since start. Serialisable because an exact engine image carries them: a counter
/// added later reads as 0 from an older image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Stats {
    /// Acquire calls that passed validation.
    pub acquires: u64,
    /// Leases granted, at once or after a wait.
    pub grants: u64,
    /// Leases granted to a queued request.
    pub grants_after_wait: u64,
    /// Leases released, by a call or by a disconnect.
    pub releases: u64,
    /// Leases renewed.
    pub renewals: u64,
    /// Leases that reached their deadline.
    pub expiries: u64,
    /// Acquires that took the lock with `steal`.
    pub steals: u64,
    /// Calls refused with `STALE` or `EXPIRED`.
    pub stale_rejections: u64,
    /// Queued requests that ran out of time.
    pub wait_timeouts: u64,
    /// Time queued requests waited before their grant, summed, in ms.
    pub total_wait_ms: u64,
    /// Lease horizons handed to the host to persist (one fsync each).
    pub horizon_writes: u64,
}

impl Stats {
    /// Returns every counter with its field name, in declaration order: the names `INFO` and
    /// every host report.
    pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTERS.iter().map(move |&(name, get)| (name, get(self)))
    }
}

/// Names a counter after its field, so the name cannot drift from the field.
macro_rules! counter {
    ($field:ident) => {
        (stringify!($field), |stats: &Stats| stats.$field)
    };
}

/// Reads one counter out of [`Stats`].
type Counter = fn(&Stats) -> u64;

/// Every counter of [`Stats`], in declaration order.
const COUNTERS: &[(&str, Counter)] = &[
    counter!(acquires),
    counter!(grants),
    counter!(grants_after_wait),
    counter!(releases),
    counter!(renewals),
    counter!(expiries),
    counter!(steals),
    counter!(stale_rejections),
    counter!(wait_timeouts),
    counter!(total_wait_ms),
    counter!(horizon_writes),
];

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
            (other, snapshot) => Err(crate::Error::BadRequest(
                crate::text::Text::new("start ")
                    .quoted(other)
                    .str(if snapshot.is_some() {
                        " with a snapshot"
                    } else {
                        " without a snapshot"
                    })
                    .str(" is not one of: fresh, crashed, clean with a snapshot")
                    .into(),
            )),
        }
    }
}
