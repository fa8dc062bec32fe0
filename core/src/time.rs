//! Time as the engine sees it: milliseconds on a monotonic clock, always passed in by the host.

use core::fmt;
use portable_atomic::{AtomicU64, Ordering};

/// A point on a monotonic clock, in milliseconds from an arbitrary origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// Returns the instant `ms` milliseconds later, saturating instead of overflowing.
    #[must_use]
    pub const fn plus_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }

    /// Returns the milliseconds from `earlier` to `self`, or 0 if `earlier` is later.
    #[must_use]
    pub const fn ms_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Returns the milliseconds since the clock's origin.
    #[must_use]
    pub const fn as_ms(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A source of [`Instant`]s for drivers; the engine itself never calls it.
pub trait Clock {
    /// Returns the current instant; successive calls never go backwards.
    fn now(&self) -> Instant;
}

/// A clock that moves only when told to, for tests and simulated time.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// Creates a clock showing `start`.
    #[must_use]
    pub const fn new(start: Instant) -> Self {
        ManualClock {
            ms: AtomicU64::new(start.0),
        }
    }

    /// Moves the clock forward by `ms` milliseconds and returns the new instant.
    pub fn advance(&self, ms: u64) -> Instant {
        let previous = self.ms.fetch_add(ms, Ordering::SeqCst);
        Instant(previous.saturating_add(ms))
    }

    /// Sets the clock to `to` unless that would move it backwards.
    pub fn set(&self, to: Instant) {
        self.ms.fetch_max(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant(self.ms.load(Ordering::SeqCst))
    }
}

/// The operating system's monotonic clock, measured from when this value was created.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

#[cfg(feature = "std")]
impl MonotonicClock {
    /// Creates a clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        MonotonicClock {
            origin: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "std")]
impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        // u64 milliseconds last 584 million years; truncation cannot happen in practice.
        let elapsed = self.origin.elapsed().as_millis();
        Instant(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}
