//! Locks by slot and by name: a slab of locks and a hash index over their names.

use alloc::vec::Vec;
use core::fmt;

use hashbrown::HashTable;
use siphasher::sip::SipHasher13;

use super::lock::Lock;
use crate::config::HashSeed;
use crate::error::Error;

/// Every live lock, in a slot that stays put while the lock lives, found by name in O(1).
#[derive(Debug)]
pub(crate) struct LockIndex {
    /// Locks by slot; a slot is reused after its lock is reclaimed.
    slots: Vec<Option<Lock>>,
    free_slots: Vec<u32>,
    /// Name -> slot, by the keyed hash stored in the slot's lock (names are kept once).
    by_name: HashTable<u32>,
    hasher: NameHasher,
}

impl LockIndex {
    pub(crate) fn new(seed: HashSeed) -> Self {
        LockIndex {
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_name: HashTable::new(),
            hasher: NameHasher(SipHasher13::new_with_key(&seed.to_bytes())),
        }
    }

    /// Returns the keyed hash of a lock name; clients who do not know the seed cannot choose
    /// names that collide.
    pub(crate) fn hash(&self, name: &str) -> u64 {
        self.hasher.0.hash(name.as_bytes())
    }

    /// Returns the slot of the lock named `name`, if it exists.
    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.find_hashed(self.hash(name), name)
    }

    /// Returns the slot and the lock named `name`, creating an idle lock if there is none.
    ///
    /// # Errors
    /// [`Error::Limit`] if `max_locks` locks already exist.
    pub(crate) fn find_or_create(
        &mut self,
        name: &str,
        max_locks: usize,
    ) -> Result<(u32, &mut Lock), Error> {
        // One hash serves both the lookup and the insertion of a new lock.
        let hash = self.hash(name);
        let slot = match self.find_hashed(hash, name) {
            Some(slot) => slot,
            None => self.create(hash, name, max_locks)?,
        };
        match self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            Some(lock) => Ok((slot, lock)),
            // `find_hashed` and `create` only return occupied slots.
            None => Err(Error::internal("the name index points at an empty slot")),
        }
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Lock> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Lock> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Takes the lock out of `slot` and frees the slot and its name.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<Lock> {
        let lock = self.slots.get_mut(slot as usize).and_then(Option::take)?;
        if let Ok(entry) = self.by_name.find_entry(lock.hash, |&other| other == slot) {
            entry.remove();
        }
        self.free_slots.push(slot);
        Some(lock)
    }

    /// Returns the number of live locks.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Iterates over the live locks with their slots, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Lock)> + '_ {
        // Slots are created by `create`, which refuses more than u32::MAX of them.
        self.slots
            .iter()
            .zip(0u32..)
            .filter_map(|(lock, slot)| lock.as_ref().map(|lock| (slot, lock)))
    }

    fn find_hashed(&self, hash: u64, name: &str) -> Option<u32> {
        let slots = &self.slots;
        self.by_name
            .find(hash, |&slot| slot_name(slots, slot) == Some(name))
            .copied()
    }

    fn create(&mut self, hash: u64, name: &str, max_locks: usize) -> Result<u32, Error> {
        if self.by_name.len() >= max_locks {
            return Err(Error::Limit("too many live locks".into()));
        }
        let lock = Lock::new(name, hash);
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                if let Some(entry) = self.slots.get_mut(slot as usize) {
                    *entry = Some(lock);
                }
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .map_err(|_| Error::Limit("too many live locks".into()))?;
                self.slots.push(Some(lock));
                slot
            }
        };
        let slots = &self.slots;
        // Growing the table moves every entry by the hash its lock keeps: no name is rehashed.
        self.by_name.insert_unique(hash, slot, |&other| {
            slots
                .get(other as usize)
                .and_then(Option::as_ref)
                .map_or(0, |lock| lock.hash)
        });
        Ok(slot)
    }
}

/// The keyed hasher of lock names; `Debug` hides its key, which `Engine`'s `Debug` would
/// otherwise print.
struct NameHasher(SipHasher13);

impl fmt::Debug for NameHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameHasher(SipHasher13, key hidden)")
    }
}

fn slot_name(slots: &[Option<Lock>], slot: u32) -> Option<&str> {
    slots
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map(|lock| &*lock.name)
}
