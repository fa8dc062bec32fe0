//! Limits and defaults of an engine.

/// Limits and defaults of an engine; every bound is checked with a clear error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Longest lease a client may ask for, in ms (default 5 minutes).
    pub max_ttl_ms: u64,
    /// Longest wait a client may ask for, in ms (default 1 hour).
    pub max_wait_ms: u64,
    /// Lock-delay after a lease expires, unless the acquire sets its own (default 0: off).
    pub lock_delay_ms: u64,
    /// Longest lock-delay a client may ask for, in ms (default 60 s, as Chubby and Consul).
    pub max_lock_delay_ms: u64,
    /// Longest lock name, in bytes (default 1024).
    pub max_name_len: usize,
    /// Longest owner label, in bytes (default 256).
    pub max_owner_len: usize,
    /// Waiters allowed on one lock (default 4096).
    pub max_waiters_per_lock: usize,
    /// Waiters allowed in all (default 65536).
    pub max_waiters_total: usize,
    /// Locks that may exist at once: held, waited on or in lock-delay (default 2^21).
    pub max_locks: usize,
    /// Holders allowed on one shared lock (default 4096).
    pub max_holders_per_lock: usize,
    /// Tokens reserved per durable write of the token ceiling (default 2^20).
    pub token_block: u64,
    /// Expired tokens remembered so that late calls get `EXPIRED` instead of `STALE` (default 65536).
    pub expired_memory: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_ttl_ms: 300_000,
            max_wait_ms: 3_600_000,
            lock_delay_ms: 0,
            max_lock_delay_ms: 60_000,
            max_name_len: 1024,
            max_owner_len: 256,
            max_waiters_per_lock: 4096,
            max_waiters_total: 65_536,
            max_locks: 1 << 21,
            max_holders_per_lock: 4096,
            token_block: 1 << 20,
            expired_memory: 65_536,
        }
    }
}
