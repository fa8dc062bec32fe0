//! Keys of the expiry index: an ordered map from deadline to what is due, so runs are reproducible.

use crate::time::Instant;

/// What a timer ends. At one instant, leases expire before lock-delays end, and both before
/// waits time out, so a waiter whose wait ends exactly when the lock frees is still granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    Lease = 0,
    Delay = 1,
    Wait = 2,
}

const KIND_SHIFT: u32 = 56;
const ID_MASK: u64 = (1 << KIND_SHIFT) - 1;

impl TimerKind {
    /// Folds the kind into the top byte of an id (tokens stay below 2^53, waiter ids far below 2^56).
    pub(crate) const fn tag(self, id: u64) -> u64 {
        ((self as u64) << KIND_SHIFT) | (id & ID_MASK)
    }

    pub(crate) const fn untag(tagged: u64) -> (TimerKind, u64) {
        let kind = match tagged >> KIND_SHIFT {
            0 => TimerKind::Lease,
            1 => TimerKind::Delay,
            _ => TimerKind::Wait,
        };
        (kind, tagged & ID_MASK)
    }
}

/// (deadline, kind and id): unique per timer, ordered by deadline first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    pub(crate) at: Instant,
    tagged: u64,
}

impl TimerKey {
    pub(crate) const fn new(at: Instant, kind: TimerKind, id: u64) -> Self {
        TimerKey {
            at,
            tagged: kind.tag(id),
        }
    }

    pub(crate) const fn kind(self) -> TimerKind {
        TimerKind::untag(self.tagged).0
    }

    pub(crate) const fn id(self) -> u64 {
        TimerKind::untag(self.tagged).1
    }

    /// Returns (deadline in ms, tagged id): ordered as the key itself.
    pub(crate) const fn pair(self) -> (u64, u64) {
        (self.at.0, self.tagged)
    }

    pub(crate) const fn from_pair(at: Instant, tagged: u64) -> Self {
        TimerKey { at, tagged }
    }
}
