//! The exact image of an engine: every piece of state that decides its future results, events
//! and tokens, in a versioned serde format, so that a cluster snapshot can stand in for the log
//! it replaces.
//!
//! Unlike the clean-shutdown [`crate::Snapshot`] (leases with their time left, for a restart
//! on another clock), an image keeps engine time as it is: an engine restored from it and fed
//! the same inputs as the original behaves identically, waiters, EPHEMERAL owners, counters and
//! the recently-expired tokens included. Derived indexes (timers, owners by client, waiters by
//! id, the lease count) are not stored; [`Engine::from_image`] rebuilds them the way the engine
//! builds them.
//!
//! Not in an image: undelivered events and durable writes (outputs the host takes after each
//! call), the input journal, and the lease horizon of a standalone server's data directory.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::lock::{Lease, Waiter};
use super::timers::{TimerKey, TimerKind};
use super::{Engine, Stats};
use crate::config::Config;
use crate::error::Error;
use crate::time::Instant;
use crate::tokens::{TokenSequence, MAX_TOKEN};

/// Version written by this build; [`Engine::from_image`] refuses any other.
pub const IMAGE_VERSION: u32 = 1;

/// The exact state of an [`Engine`], from [`Engine::image`]; see [`Engine::from_image`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineImage {
    version: u32,
    /// Engine time, ms.
    now: u64,
    next_token: u64,
    ceiling: u64,
    /// A raised ceiling the host has not taken yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_ceiling: Option<u64>,
    next_waiter: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    grace_until: u64,
    stats: Stats,
    /// (token, name key) of recently expired leases, by token.
    #[serde(default)]
    expired: Vec<(u64, u64)>,
    /// Every live lock, by name.
    locks: Vec<LockImage>,
}

/// One lock of an [`EngineImage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LockImage {
    name: String,
    /// In the lock's own order (a steal reports its evictions in this order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holders: Vec<LeaseImage>,
    /// Queue order, head first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    waiters: Vec<WaiterImage>,
    #[serde(default, skip_serializing_if = "is_zero")]
    delay_until: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    delay_token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseImage {
    token: u64,
    deadline: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    client: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    lock_delay_ms: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    shared: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    ephemeral: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WaiterImage {
    id: u64,
    ttl_ms: u64,
    deadline: u64,
    enqueued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    client: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    lock_delay_ms: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    shared: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    ephemeral: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(value: &bool) -> bool {
    !*value
}

impl EngineImage {
    /// Encodes the image as JSON.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data (strings, integers, options) to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes an image (any version; [`Engine::from_image`] checks it).
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the bytes are not an image.
    pub fn decode(bytes: &[u8]) -> Result<EngineImage, Error> {
        serde_json::from_slice(bytes)
            .map_err(|error| Error::bad(alloc::format!("bad engine image: {error}")))
    }

    /// Returns the engine time the image was taken at.
    #[must_use]
    pub fn now(&self) -> Instant {
        Instant(self.now)
    }

    /// Returns the next token the imaged engine would issue.
    #[must_use]
    pub fn next_token(&self) -> u64 {
        self.next_token
    }
}

impl Engine {
    /// Returns the exact image of the engine's state: restored with [`Engine::from_image`]
    /// and given the same inputs, the copy answers, grants and issues tokens as this engine does.
    #[must_use]
    pub fn image(&self) -> EngineImage {
        let mut locks: Vec<LockImage> = self
            .locks
            .iter()
            .map(|(_, lock)| LockImage {
                name: String::from(&*lock.name),
                holders: lock.holders.as_slice().iter().map(lease_image).collect(),
                waiters: lock.waiters.iter().map(waiter_image).collect(),
                delay_until: lock.delay_until.as_ms(),
                delay_token: lock.delay_token,
            })
            .collect();
        // Slots are an allocation detail that no result depends on: the image is by name.
        crate::order::sort_by_text(&mut locks, |lock| &lock.name);
        EngineImage {
            version: IMAGE_VERSION,
            now: self.now.as_ms(),
            next_token: self.tokens.next(),
            ceiling: self.tokens.ceiling(),
            pending_ceiling: self.tokens.pending(),
            next_waiter: self.next_waiter,
            grace_until: self.grace_until.as_ms(),
            stats: self.stats,
            expired: self.expired.iter().collect(),
            locks,
        }
    }

    /// Rebuilds an engine from an [`EngineImage`], with its derived indexes, under `config`
    /// (which must be the settings the imaged engine ran with: they are not in the image).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for another image version or an image no engine could have been
    /// in: a token or waiter id at or above the next one, a token or waiter twice, a lease or
    /// wait already past its deadline, conflicting holders, a bad name, or a broken invariant.
    pub fn from_image(config: Config, image: &EngineImage) -> Result<Engine, Error> {
        if image.version != IMAGE_VERSION {
            return Err(Error::bad(alloc::format!(
                "engine image version {} is not {IMAGE_VERSION}",
                image.version
            )));
        }
        if image.next_token == 0 || image.next_token > MAX_TOKEN.saturating_add(1) {
            return Err(Error::bad("engine image next token is out of range"));
        }
        let mut engine = Engine::new(config);
        let now = Instant(image.now);
        engine.now = now;
        engine.tokens = TokenSequence::restore(
            image.next_token,
            image.ceiling,
            image.pending_ceiling,
            engine.config.token_block,
        );
        engine.next_waiter = image.next_waiter;
        engine.grace_until = Instant(image.grace_until);
        engine.grace_ms = engine.grace_until.ms_since(now);
        engine.stats = image.stats;
        for &(token, key) in &image.expired {
            if token >= image.next_token {
                return Err(Error::bad(
                    "engine image expired token is not below the next token",
                ));
            }
            engine.expired.insert(token, key);
        }
        while engine.expired.len() > engine.config.expired_memory {
            engine.expired.pop_first();
        }
        let mut tokens = BTreeSet::new();
        let mut names = BTreeSet::new();
        for lock in &image.locks {
            if !names.insert(lock.name.as_str()) {
                return Err(Error::bad(alloc::format!(
                    "engine image holds lock {:?} twice",
                    lock.name
                )));
            }
            engine.restore_lock(image, lock, &mut tokens)?;
        }
        engine.check_invariants().map_err(|broken| {
            Error::bad(alloc::format!("engine image is inconsistent: {broken}"))
        })?;
        Ok(engine)
    }

    /// Rebuilds one lock and its index entries as acquire, enqueue and expiry insert them.
    fn restore_lock(
        &mut self,
        image: &EngineImage,
        saved: &LockImage,
        tokens: &mut BTreeSet<u64>,
    ) -> Result<(), Error> {
        self.validate_name(&saved.name)?;
        let now = self.now;
        let (slot, _) = self
            .locks
            .find_or_create(&saved.name, self.config.max_locks)?;
        for lease in &saved.holders {
            if lease.token == 0 || lease.token >= image.next_token || !tokens.insert(lease.token) {
                return Err(Error::bad(alloc::format!(
                    "engine image lease token {} is repeated or not below the next token",
                    lease.token
                )));
            }
            if lease.ephemeral && lease.client == 0 {
                return Err(Error::bad("engine image EPHEMERAL lease has no client"));
            }
            if lease.deadline <= now.as_ms() {
                return Err(Error::bad(alloc::format!(
                    "engine image lease {} is past its deadline",
                    lease.token
                )));
            }
            self.install_lease(
                slot,
                Lease {
                    token: lease.token,
                    deadline: Instant(lease.deadline),
                    owner: lease.owner.as_deref().map(Box::from),
                    client: lease.client,
                    lock_delay_ms: lease.lock_delay_ms,
                    shared: lease.shared,
                    ephemeral: lease.ephemeral,
                },
            );
        }
        for waiter in &saved.waiters {
            if waiter.id == 0
                || waiter.id >= image.next_waiter
                || self.waiters.contains_key(&waiter.id)
            {
                return Err(Error::bad(alloc::format!(
                    "engine image waiter {} is repeated or not below the next waiter id",
                    waiter.id
                )));
            }
            if waiter.deadline <= now.as_ms() || waiter.enqueued_at > now.as_ms() {
                return Err(Error::bad(alloc::format!(
                    "engine image waiter {} is past its wait or queued in the future",
                    waiter.id
                )));
            }
            self.restore_waiter(slot, waiter)?;
        }
        if saved.delay_until != 0 {
            let timer = TimerKey::new(
                Instant(saved.delay_until),
                TimerKind::Delay,
                saved.delay_token,
            );
            if saved.delay_until <= now.as_ms()
                || saved.delay_token >= image.next_token
                || self.timers.contains_key(&timer)
            {
                return Err(Error::bad(alloc::format!(
                    "engine image lock-delay of {:?} has ended, names a future token or repeats another",
                    saved.name
                )));
            }
            self.set_delay(slot, Instant(saved.delay_until), saved.delay_token);
        }
        Ok(())
    }

    /// Queues a saved waiter with the entries `enqueue` makes.
    fn restore_waiter(&mut self, slot: u32, saved: &WaiterImage) -> Result<(), Error> {
        let deadline = Instant(saved.deadline);
        let Some(lock) = self.locks.get_mut(slot) else {
            return Err(Error::internal("a restored lock lost its slot"));
        };
        lock.waiters.push_back(Waiter {
            id: saved.id,
            ttl_ms: saved.ttl_ms,
            deadline,
            enqueued_at: Instant(saved.enqueued_at),
            owner: saved.owner.as_deref().map(Box::from),
            client: saved.client,
            lock_delay_ms: saved.lock_delay_ms,
            shared: saved.shared,
            ephemeral: saved.ephemeral,
        });
        self.waiters.insert(saved.id, (slot, deadline));
        self.timers
            .insert(TimerKey::new(deadline, TimerKind::Wait, saved.id), slot);
        if saved.client != 0 {
            self.by_client
                .insert(saved.client, TimerKind::Wait.tag(saved.id), slot);
        }
        Ok(())
    }
}

fn lease_image(lease: &Lease) -> LeaseImage {
    LeaseImage {
        token: lease.token,
        deadline: lease.deadline.as_ms(),
        owner: lease.owner.as_deref().map(String::from),
        client: lease.client,
        lock_delay_ms: lease.lock_delay_ms,
        shared: lease.shared,
        ephemeral: lease.ephemeral,
    }
}

fn waiter_image(waiter: &Waiter) -> WaiterImage {
    WaiterImage {
        id: waiter.id,
        ttl_ms: waiter.ttl_ms,
        deadline: waiter.deadline.as_ms(),
        enqueued_at: waiter.enqueued_at.as_ms(),
        owner: waiter.owner.as_deref().map(String::from),
        client: waiter.client,
        lock_delay_ms: waiter.lock_delay_ms,
        shared: waiter.shared,
        ephemeral: waiter.ephemeral,
    }
}
