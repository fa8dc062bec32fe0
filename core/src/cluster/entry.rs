//! Log entries: the engine's state-changing inputs, stamped with engine time, and their batches.
//!
//! The engine is deterministic given its inputs, so a replica that applies the same entries in
//! the same order holds the same leases, waiters, tokens and counters: the log records inputs,
//! never outputs.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{AcquireOptions, ClientId, Engine, Error, Instant, Mode, Token, WaiterId};

/// One state-changing input of the engine with the engine time it was handled at (`at`, ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entry {
    /// [`Engine::acquire`].
    Acquire {
        /// Engine time in ms.
        at: u64,
        /// Lock name.
        name: String,
        /// Lease length in ms.
        ttl_ms: u64,
        /// Shared rather than exclusive.
        #[serde(default)]
        shared: bool,
        /// How long to wait in the queue, in ms.
        #[serde(default)]
        wait_ms: u64,
        /// The holder's label.
        #[serde(default)]
        owner: Option<String>,
        /// Fence off the current holders.
        #[serde(default)]
        steal: bool,
        /// The client asking.
        #[serde(default)]
        client: ClientId,
        /// Released when the client disconnects.
        #[serde(default)]
        ephemeral: bool,
        /// Lock-delay override, in ms.
        #[serde(default)]
        lock_delay_ms: Option<u64>,
    },
    /// [`Engine::renew`].
    Renew {
        /// Engine time in ms.
        at: u64,
        /// Lock name.
        name: String,
        /// The lease's token.
        token: Token,
        /// New lease length in ms.
        ttl_ms: u64,
    },
    /// [`Engine::release`].
    Release {
        /// Engine time in ms.
        at: u64,
        /// Lock name.
        name: String,
        /// The lease's token.
        token: Token,
    },
    /// [`Engine::cancel_wait`].
    CancelWait {
        /// Engine time in ms.
        at: u64,
        /// The queued request.
        waiter: WaiterId,
    },
    /// [`Engine::disconnect`].
    Disconnect {
        /// Engine time in ms.
        at: u64,
        /// The client that left.
        client: ClientId,
    },
    /// [`Engine::orphan`]: a client of a leader that failed over.
    Orphan {
        /// Engine time in ms.
        at: u64,
        /// The client whose connection went with the old leader.
        client: ClientId,
    },
    /// Time reached `at` with timers due ([`Engine::handle_timeout`]).
    Tick {
        /// Engine time in ms.
        at: u64,
    },
}

impl Entry {
    /// Records an acquire.
    #[must_use]
    pub fn acquire(now: Instant, name: &str, ttl_ms: u64, options: &AcquireOptions) -> Entry {
        Entry::Acquire {
            at: now.as_ms(),
            name: String::from(name),
            ttl_ms,
            shared: options.mode == Mode::Shared,
            wait_ms: options.wait_ms,
            owner: options.owner.clone(),
            steal: options.steal,
            client: options.client,
            ephemeral: options.ephemeral,
            lock_delay_ms: options.lock_delay_ms,
        }
    }

    /// Returns the engine time of the entry.
    #[must_use]
    pub fn at(&self) -> Instant {
        Instant(match self {
            Entry::Acquire { at, .. }
            | Entry::Renew { at, .. }
            | Entry::Release { at, .. }
            | Entry::CancelWait { at, .. }
            | Entry::Disconnect { at, .. }
            | Entry::Orphan { at, .. }
            | Entry::Tick { at } => *at,
        })
    }

    /// Returns the client the entry names, if any.
    #[must_use]
    pub fn client(&self) -> Option<ClientId> {
        match self {
            Entry::Acquire { client, .. }
            | Entry::Disconnect { client, .. }
            | Entry::Orphan { client, .. } => Some(*client),
            _ => None,
        }
    }

    /// Applies the entry to a replica exactly as the leader's engine handled it. Results are
    /// dropped (the leader sent them); events and durable writes are the caller's to drain.
    pub fn apply(&self, engine: &mut Engine) {
        let now = self.at();
        match self {
            Entry::Acquire {
                name,
                ttl_ms,
                shared,
                wait_ms,
                owner,
                steal,
                client,
                ephemeral,
                lock_delay_ms,
                ..
            } => {
                let options = AcquireOptions {
                    mode: if *shared {
                        Mode::Shared
                    } else {
                        Mode::Exclusive
                    },
                    wait_ms: *wait_ms,
                    owner: owner.clone(),
                    steal: *steal,
                    client: *client,
                    ephemeral: *ephemeral,
                    lock_delay_ms: *lock_delay_ms,
                };
                let _ = engine.acquire(now, name, *ttl_ms, &options);
            }
            Entry::Renew {
                name,
                token,
                ttl_ms,
                ..
            } => {
                let _ = engine.renew(now, name, *token, *ttl_ms);
            }
            Entry::Release { name, token, .. } => {
                let _ = engine.release(now, name, *token);
            }
            Entry::CancelWait { waiter, .. } => {
                let _ = engine.cancel_wait(now, *waiter);
            }
            Entry::Disconnect { client, .. } => engine.disconnect(now, *client),
            Entry::Orphan { client, .. } => engine.orphan(now, *client),
            Entry::Tick { .. } => engine.handle_timeout(now),
        }
    }
}

/// What one guarded append writes under one log key: every entry of one turn (group commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Batch {
    /// The log index of the batch (1, 2, ...), also in its key.
    pub index: u64,
    /// The create revision of the election key of the leader that wrote it (its term).
    pub term: u64,
    /// The entries, in the order the leader's engine handled them.
    pub entries: Vec<Entry>,
}

impl Batch {
    /// Encodes the batch as JSON (readable with `etcdctl get`).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data (strings, integers, options) to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a batch.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the bytes are not a batch.
    pub fn decode(bytes: &[u8]) -> Result<Batch, Error> {
        serde_json::from_slice(bytes)
            .map_err(|error| Error::BadRequest(alloc::format!("bad log batch: {error}")))
    }
}
