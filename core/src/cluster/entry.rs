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
        #[serde(default, skip_serializing_if = "is_false")]
        shared: bool,
        /// How long to wait in the queue, in ms.
        #[serde(default, skip_serializing_if = "is_zero")]
        wait_ms: u64,
        /// The holder's label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// Fence off the current holders.
        #[serde(default, skip_serializing_if = "is_false")]
        steal: bool,
        /// The client asking.
        #[serde(default, skip_serializing_if = "is_zero")]
        client: ClientId,
        /// Released when the client disconnects.
        #[serde(default, skip_serializing_if = "is_false")]
        ephemeral: bool,
        /// Lock-delay override, in ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// [`Engine::orphan_all`]: every client of a leader that failed over, at once.
    OrphanAll {
        /// Engine time in ms.
        at: u64,
        /// The clients whose connections went with the old leader.
        clients: Vec<ClientId>,
    },
    /// Time reached `at` with timers due ([`Engine::handle_timeout`]).
    Tick {
        /// Engine time in ms.
        at: u64,
    },
}

/// A default field of an acquire is left out of the log (decoding restores it): batches are
/// about half as long, which is etcd's and every node's work per batch.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
fn is_false(value: &bool) -> bool {
    !*value
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
fn is_zero(value: &u64) -> bool {
    *value == 0
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
            | Entry::OrphanAll { at, .. }
            | Entry::Tick { at } => *at,
        })
    }

    /// Returns the client the entry names, if any (the highest, for an `OrphanAll`).
    #[must_use]
    pub fn client(&self) -> Option<ClientId> {
        match self {
            Entry::Acquire { client, .. }
            | Entry::Disconnect { client, .. }
            | Entry::Orphan { client, .. } => Some(*client),
            Entry::OrphanAll { clients, .. } => clients.iter().copied().max(),
            _ => None,
        }
    }

    /// For an `Acquire`: the lock, the TTL and the options the leader's engine was given.
    #[must_use]
    pub fn acquire_request(&self) -> Option<(&str, u64, AcquireOptions)> {
        let Entry::Acquire {
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
        } = self
        else {
            return None;
        };
        let options = AcquireOptions {
            mode: Mode::from_shared(*shared),
            wait_ms: *wait_ms,
            owner: owner.clone(),
            steal: *steal,
            client: *client,
            ephemeral: *ephemeral,
            lock_delay_ms: *lock_delay_ms,
        };
        Some((name, *ttl_ms, options))
    }

    /// Applies the entry to a replica exactly as the leader's engine handled it. Results are
    /// dropped (the leader sent them); events and durable writes are the caller's to drain.
    pub fn apply(&self, engine: &mut Engine) {
        let now = self.at();
        match self {
            Entry::Acquire { .. } => {
                if let Some((name, ttl_ms, options)) = self.acquire_request() {
                    let _ = engine.acquire(now, name, ttl_ms, &options);
                }
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
            Entry::OrphanAll { clients, .. } => engine.orphan_all(now, clients),
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

#[cfg(test)]
mod tests {
    use super::{Batch, Entry};
    use crate::{AcquireOptions, Instant, Mode};
    use alloc::string::String;

    #[test]
    fn default_fields_are_left_out_and_restored() {
        let plain = Entry::acquire(Instant(5), "jobs", 3000, &AcquireOptions::default());
        let options = AcquireOptions {
            mode: Mode::Shared,
            wait_ms: 7,
            owner: Some(String::from("tab 1")),
            steal: false,
            client: 9,
            ephemeral: true,
            lock_delay_ms: Some(0),
            ..AcquireOptions::default()
        };
        let full = Entry::acquire(Instant(6), "jobs", 3000, &options);
        let batch = Batch {
            index: 4,
            term: 2,
            entries: alloc::vec![plain.clone(), full.clone()],
        };
        let bytes = batch.encode();
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        assert!(
            text.contains(r#"{"op":"acquire","at":5,"name":"jobs","ttl_ms":3000}"#),
            "{text}"
        );
        assert!(text.contains(r#""lock_delay_ms":0"#), "{text}");
        let decoded = Batch::decode(&bytes).map(|batch| batch.entries);
        assert_eq!(decoded.ok(), Some(alloc::vec![plain, full]));
        // A log written with every field, as before, reads the same.
        let old = br#"{"index":4,"term":2,"entries":[{"op":"acquire","at":5,"name":"jobs","ttl_ms":3000,"shared":false,"wait_ms":0,"owner":null,"steal":false,"client":0,"ephemeral":false,"lock_delay_ms":null}]}"#;
        let old = Batch::decode(old).map(|batch| batch.entries);
        assert_eq!(
            old.ok(),
            Some(alloc::vec![Entry::acquire(
                Instant(5),
                "jobs",
                3000,
                &AcquireOptions::default()
            )])
        );
    }

    #[test]
    fn orphan_all_names_its_clients_and_round_trips() {
        let entry = Entry::OrphanAll {
            at: 9,
            clients: alloc::vec![3, 1, 7],
        };
        assert_eq!(entry.client(), Some(7));
        assert_eq!(entry.at(), Instant(9));
        let batch = Batch {
            index: 1,
            term: 1,
            entries: alloc::vec![entry.clone()],
        };
        let text = String::from_utf8(batch.encode()).unwrap_or_default();
        assert!(
            text.contains(r#"{"op":"orphan_all","at":9,"clients":[3,1,7]}"#),
            "{text}"
        );
        assert_eq!(
            Batch::decode(text.as_bytes())
                .map(|batch| batch.entries)
                .ok(),
            Some(alloc::vec![entry])
        );
    }
}
