//! Limits and defaults of an engine.

use alloc::format;

use crate::error::Error;

/// Limits and defaults of an engine; every bound is checked with a clear error.
///
/// Outside this crate, start from `Config::default()` and set fields (or use [`Config::set`]):
/// the struct may grow, so it cannot be built with a struct literal there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl Config {
    /// Sets one setting by its field name, as hosts read settings from flags, files and test
    /// vectors; every host shares this table, so a name means the same everywhere.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an unknown name or a value too large for the setting.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), Error> {
        let size = || {
            usize::try_from(value)
                .map_err(|_| Error::bad(format!("setting {name} = {value} is too large")))
        };
        match name {
            "max_ttl_ms" => self.max_ttl_ms = value,
            "max_wait_ms" => self.max_wait_ms = value,
            "lock_delay_ms" => self.lock_delay_ms = value,
            "max_lock_delay_ms" => self.max_lock_delay_ms = value,
            "max_name_len" => self.max_name_len = size()?,
            "max_owner_len" => self.max_owner_len = size()?,
            "max_waiters_per_lock" => self.max_waiters_per_lock = size()?,
            "max_waiters_total" => self.max_waiters_total = size()?,
            "max_locks" => self.max_locks = size()?,
            "max_holders_per_lock" => self.max_holders_per_lock = size()?,
            "token_block" => self.token_block = value,
            "expired_memory" => self.expired_memory = size()?,
            other => return Err(Error::bad(format!("unknown engine setting {other:?}"))),
        }
        Ok(())
    }

    /// Returns every setting with its field name, in declaration order.
    #[must_use]
    pub fn settings(&self) -> [(&'static str, u64); 12] {
        // usize -> u64 is lossless on every target Rust supports (pointers are at most 64 bits).
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        [
            ("max_ttl_ms", self.max_ttl_ms),
            ("max_wait_ms", self.max_wait_ms),
            ("lock_delay_ms", self.lock_delay_ms),
            ("max_lock_delay_ms", self.max_lock_delay_ms),
            ("max_name_len", wide(self.max_name_len)),
            ("max_owner_len", wide(self.max_owner_len)),
            ("max_waiters_per_lock", wide(self.max_waiters_per_lock)),
            ("max_waiters_total", wide(self.max_waiters_total)),
            ("max_locks", wide(self.max_locks)),
            ("max_holders_per_lock", wide(self.max_holders_per_lock)),
            ("token_block", self.token_block),
            ("expired_memory", wide(self.expired_memory)),
        ]
    }
}
