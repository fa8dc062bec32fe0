//! The engine's three ordered maps (timers, what each client owns, recently expired tokens)
//! over one B-tree type, `BTreeMap<(u64, u64), u64>`. Each key and value type of a `BTreeMap`
//! links its own copy of the B-tree code (about 7 KB of the browser's module); sharing one
//! type links it once. Operations, their O(log n) cost and iteration order are those of the
//! typed maps they replace.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::timers::TimerKey;
use super::types::{ClientId, Token};
use crate::time::Instant;

type Pairs = BTreeMap<(u64, u64), u64>;

/// Deadlines of leases, waits and lock-delays, in firing order: each timer to its lock's slot.
#[derive(Debug, Default)]
pub(crate) struct Timers(Pairs);

impl Timers {
    pub(crate) fn insert(&mut self, key: TimerKey, slot: u32) {
        self.0.insert(key.pair(), u64::from(slot));
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<u32> {
        self.0.remove(&key.pair()).map(slot)
    }

    pub(crate) fn get(&self, key: &TimerKey) -> Option<u32> {
        self.0.get(&key.pair()).copied().map(slot)
    }

    pub(crate) fn contains_key(&self, key: &TimerKey) -> bool {
        self.0.contains_key(&key.pair())
    }

    /// Returns the timer that fires first, with its slot.
    pub(crate) fn first(&self) -> Option<(TimerKey, u32)> {
        self.0
            .first_key_value()
            .map(|(&(at, tagged), &value)| (TimerKey::from_pair(Instant(at), tagged), slot(value)))
    }
}

/// The waits and EPHEMERAL leases of each client, dropped on disconnect: (client, timer-tagged
/// id) to the slot of the lock. A tagged id (a waiter id or a token) is never reused, so the
/// pair names one entry; iteration is by client, then tagged id, as the set of
/// (client, tagged id, slot) it replaces.
#[derive(Debug, Default)]
pub(crate) struct Owners(Pairs);

impl Owners {
    pub(crate) fn insert(&mut self, client: ClientId, tagged: u64, slot: u32) {
        self.0.insert((client, tagged), u64::from(slot));
    }

    /// Removes the entry (client, tagged) if it is on `slot`.
    pub(crate) fn remove(&mut self, client: ClientId, tagged: u64, slot: u32) {
        if self.0.get(&(client, tagged)) == Some(&u64::from(slot)) {
            self.0.remove(&(client, tagged));
        }
    }

    /// Returns the (client, tagged id, slot) entries of `client`, in order.
    pub(crate) fn of(&self, client: ClientId) -> Vec<(ClientId, u64, u32)> {
        self.0
            .range((client, 0)..=(client, u64::MAX))
            .map(entry)
            .collect()
    }

    /// Returns every (client, tagged id, slot) entry, in order.
    pub(crate) fn all(&self) -> Vec<(ClientId, u64, u32)> {
        self.0.iter().map(entry).collect()
    }

    /// Returns the client of every entry, in order (repeated per entry).
    pub(crate) fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.0.keys().map(|&(client, _)| client)
    }
}

/// Recently expired tokens, oldest first, each to the name key of its lock.
#[derive(Debug, Default)]
pub(crate) struct Expired(Pairs);

impl Expired {
    pub(crate) fn insert(&mut self, token: Token, name_key: u64) {
        self.0.insert((token, 0), name_key);
    }

    pub(crate) fn get(&self, token: Token) -> Option<u64> {
        self.0.get(&(token, 0)).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Forgets the oldest token.
    pub(crate) fn pop_first(&mut self) {
        self.0.pop_first();
    }

    /// Returns every (token, name key), oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Token, u64)> + '_ {
        self.0
            .iter()
            .map(|(&(token, _), &name_key)| (token, name_key))
    }
}

/// A slot as stored: every value of `Timers` and `Owners` was a `u32` slot.
#[allow(clippy::cast_possible_truncation)]
fn slot(value: u64) -> u32 {
    value as u32
}

fn entry((&(client, tagged), &value): (&(u64, u64), &u64)) -> (ClientId, u64, u32) {
    (client, tagged, slot(value))
}
