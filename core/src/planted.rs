//! Bugs planted on purpose, compiled only with the test-only `sim-bugs` feature, so that the
//! deterministic simulator (`tests/sim`) can show it finds each one. Every engine and client
//! carries its own switch ([`crate::Config::planted_bug`],
//! [`crate::client::ClientConfig::planted_bug`]), off unless a test sets it, so tests running
//! in parallel threads do not see each other's bugs. Never enable the feature in a release build.

/// A defect of the design fencelock starts from (docs/DESIGN.md), put back in on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedBug {
    /// A released or stolen lease keeps its expiry timer, and a timer that finds its lease
    /// gone expires whichever lease holds the lock now: a stale timer unlocks the next holder.
    StaleTimer,
    /// After a crash, tokens resume at the start of the last reserved block instead of above
    /// the ceiling: tokens already revealed are issued again.
    TokenReuse,
    /// The client measures a granted lease from when the reply arrived, not from when the
    /// request was sent: its deadline can be later than the server's.
    LateClientDeadline,
    /// QUERY lists each lock's holders one short (an off-by-one): the lease granted last is
    /// left out, though it is live.
    QueryDropsHolder,
    /// A connection that goes away keeps its queued requests: a waiter outlives the request
    /// that made it, and may be granted a lease nobody will hear of.
    DisconnectKeepsWaits,
}
