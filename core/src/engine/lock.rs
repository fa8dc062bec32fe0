//! One named lock: its holders, its FIFO queue of waiters and its lock-delay.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{ClientId, Mode, Token, WaiterId};
use crate::time::Instant;

/// A granted lease.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) token: Token,
    pub(crate) deadline: Instant,
    pub(crate) owner: Option<Box<str>>,
    pub(crate) client: ClientId,
    pub(crate) lock_delay_ms: u32,
    pub(crate) shared: bool,
    pub(crate) ephemeral: bool,
}

/// A request queued until the lock is grantable or its wait runs out.
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    pub(crate) id: WaiterId,
    pub(crate) ttl_ms: u64,
    pub(crate) deadline: Instant,
    pub(crate) enqueued_at: Instant,
    pub(crate) owner: Option<Box<str>>,
    pub(crate) client: ClientId,
    pub(crate) lock_delay_ms: u32,
    pub(crate) shared: bool,
    pub(crate) ephemeral: bool,
}

/// The holders of a lock; a single holder (the common case) needs no allocation.
#[derive(Debug, Clone, Default)]
pub(crate) enum Holders {
    #[default]
    None,
    One(Lease),
    Many(Vec<Lease>),
}

impl Holders {
    pub(crate) fn as_slice(&self) -> &[Lease] {
        match self {
            Holders::None => &[],
            Holders::One(lease) => core::slice::from_ref(lease),
            Holders::Many(leases) => leases,
        }
    }

    pub(crate) fn find_mut(&mut self, token: Token) -> Option<&mut Lease> {
        match self {
            Holders::None => None,
            Holders::One(lease) => (lease.token == token).then_some(lease),
            Holders::Many(leases) => leases.iter_mut().find(|lease| lease.token == token),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Holders::None)
    }

    pub(crate) fn push(&mut self, lease: Lease) {
        *self = match core::mem::take(self) {
            Holders::None => Holders::One(lease),
            Holders::One(first) => Holders::Many(alloc::vec![first, lease]),
            Holders::Many(mut leases) => {
                leases.push(lease);
                Holders::Many(leases)
            }
        };
    }

    pub(crate) fn remove(&mut self, token: Token) -> Option<Lease> {
        match core::mem::take(self) {
            Holders::None => None,
            Holders::One(lease) if lease.token == token => Some(lease),
            Holders::One(other) => {
                *self = Holders::One(other);
                None
            }
            Holders::Many(mut leases) => {
                let removed = leases
                    .iter()
                    .position(|lease| lease.token == token)
                    .map(|at| leases.remove(at));
                *self = match leases.len() {
                    0 => Holders::None,
                    1 => leases.pop().map_or(Holders::None, Holders::One),
                    _ => Holders::Many(leases),
                };
                removed
            }
        }
    }

    pub(crate) fn take_all(&mut self) -> Vec<Lease> {
        match core::mem::take(self) {
            Holders::None => Vec::new(),
            Holders::One(lease) => alloc::vec![lease],
            Holders::Many(leases) => leases,
        }
    }

    /// Returns true if a request in `mode` may join the current holders (invariant I1).
    pub(crate) fn admits(&self, mode: Mode) -> bool {
        match mode {
            Mode::Exclusive => self.is_empty(),
            Mode::Shared => self.as_slice().iter().all(|lease| lease.shared),
        }
    }
}

/// A named lock. It exists only while it has holders, waiters or a running lock-delay.
#[derive(Debug)]
pub(crate) struct Lock {
    pub(crate) name: Box<str>,
    /// The keyed hash of `name`, kept so the index never hashes a stored name again.
    pub(crate) hash: u64,
    pub(crate) holders: Holders,
    pub(crate) waiters: VecDeque<Waiter>,
    /// Not grantable before this instant (lock-delay after an expiry).
    pub(crate) delay_until: Instant,
    /// The token whose expiry began the lock-delay (keys its timer).
    pub(crate) delay_token: Token,
}

impl Lock {
    pub(crate) fn new(name: &str, hash: u64) -> Self {
        Lock {
            name: name.into(),
            hash,
            holders: Holders::None,
            waiters: VecDeque::new(),
            delay_until: Instant::ZERO,
            delay_token: 0,
        }
    }

    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.holders.is_empty() && self.waiters.is_empty() && self.delay_until <= now
    }
}
