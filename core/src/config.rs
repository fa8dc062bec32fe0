//! Limits and defaults of an engine.

use crate::text::Text;
use core::fmt;

use crate::error::Error;
use crate::horizon::BootClock;

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
    /// How far past a deadline each persisted lease horizon reaches, in ms (default 5 s): a
    /// busy server persists a horizon about once per this period, and a restart after a crash
    /// on the same boot waits at most this much longer than the last deadline it revealed.
    pub horizon_slack_ms: u64,
    /// Where the host's clock stands on the system's boot-wide monotonic clock. With it the
    /// engine keeps a lease horizon on disk and a crash restart waits only until it; without
    /// it (the default, and every host without a boot identity) a crash restart waits the full
    /// grace. Like the hash seed, a fact the host injects, not a setting.
    pub boot_clock: Option<BootClock>,
    /// The secret key of the lock-name index. Lock names are chosen by clients, so a server
    /// must set random bytes from the operating system here; the default is a fixed, public
    /// key, fine for tests and simulations only.
    pub hash_seed: HashSeed,
    /// A bug planted on purpose for the simulator's own tests (feature `sim-bugs` only).
    #[cfg(feature = "sim-bugs")]
    pub planted_bug: Option<crate::PlantedBug>,
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
            horizon_slack_ms: 5_000,
            boot_clock: None,
            hash_seed: HashSeed::default(),
            #[cfg(feature = "sim-bugs")]
            planted_bug: None,
        }
    }
}

/// A 128-bit key for the keyed hash (SipHash-1-3) of lock names.
///
/// With a key the clients cannot know, they cannot choose names that collide in the engine's
/// name index and turn each lookup into a scan. The core never reads the operating system's
/// randomness itself (invariant I6), so the host injects the key; [`HashSeed::default`] is a
/// fixed key of zeros so that tests stay reproducible. `Debug` does not show the key.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct HashSeed([u8; 16]);

impl HashSeed {
    /// Creates a seed from 16 bytes; a server passes bytes from the operating system's randomness.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> HashSeed {
        HashSeed(bytes)
    }

    /// Returns the 16 bytes of the key.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Debug for HashSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A key in a log would let a reader craft colliding names.
        f.write_str("HashSeed(..)")
    }
}

impl Config {
    /// Sets one setting by its field name, as hosts read settings from flags, files and test
    /// vectors; every host shares this table, so a name means the same everywhere.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an unknown name or a value too large for the setting.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), Error> {
        set_by_name(self, ENGINE_SETTINGS, "engine", name, value)
    }

    /// Returns every setting with its field name, in declaration order (the boot clock and
    /// the hash seed, facts the host injects rather than settings, are not among them).
    pub fn settings(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ENGINE_SETTINGS
            .iter()
            .map(move |setting| (setting.name, (setting.get)(self)))
    }
}

/// One setting of a configuration struct `C`, read and written as a `u64` by its field name.
pub(crate) struct Setting<C> {
    pub(crate) name: &'static str,
    pub(crate) get: fn(&C) -> u64,
    pub(crate) set: fn(&mut C, u64) -> Result<(), Refusal>,
}

/// Why a setting refused a value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    /// The value does not fit the field's type on this target.
    TooLarge,
    /// A switch takes 0 or 1.
    NotASwitch,
}

/// Builds a [`Setting`] for a field of type `u64`, `usize` or `bool` (0 or 1).
macro_rules! setting {
    ($field:ident: u64) => {
        $crate::config::Setting {
            name: stringify!($field),
            get: |config| config.$field,
            set: |config, value| {
                config.$field = value;
                Ok(())
            },
        }
    };
    ($field:ident: usize) => {
        $crate::config::Setting {
            name: stringify!($field),
            // usize -> u64 is lossless on every target Rust supports (pointers are at most
            // 64 bits), so the fallback is never taken.
            get: |config| u64::try_from(config.$field).unwrap_or(u64::MAX),
            set: |config, value| {
                config.$field =
                    usize::try_from(value).map_err(|_| $crate::config::Refusal::TooLarge)?;
                Ok(())
            },
        }
    };
    ($field:ident: bool) => {
        $crate::config::Setting {
            name: stringify!($field),
            get: |config| u64::from(config.$field),
            set: |config, value| {
                config.$field = match value {
                    0 => false,
                    1 => true,
                    _ => return Err($crate::config::Refusal::NotASwitch),
                };
                Ok(())
            },
        }
    };
}
pub(crate) use setting;

/// Every engine setting: the one list that [`Config::set`], [`Config::settings`], `INFO` and
/// every host read.
const ENGINE_SETTINGS: &[Setting<Config>] = &[
    setting!(max_ttl_ms: u64),
    setting!(max_wait_ms: u64),
    setting!(lock_delay_ms: u64),
    setting!(max_lock_delay_ms: u64),
    setting!(max_name_len: usize),
    setting!(max_owner_len: usize),
    setting!(max_waiters_per_lock: usize),
    setting!(max_waiters_total: usize),
    setting!(max_locks: usize),
    setting!(max_holders_per_lock: usize),
    setting!(token_block: u64),
    setting!(expired_memory: usize),
    setting!(horizon_slack_ms: u64),
];

/// Sets `name` in `config` from `table`; `kind` names the table in errors.
pub(crate) fn set_by_name<C>(
    config: &mut C,
    table: &[Setting<C>],
    kind: &str,
    name: &str,
    value: u64,
) -> Result<(), Error> {
    let Some(setting) = table.iter().find(|setting| setting.name == name) else {
        return Err(Error::bad(
            Text::new("unknown ")
                .str(kind)
                .str(" setting ")
                .quoted(name),
        ));
    };
    (setting.set)(config, value).map_err(|refusal| {
        Error::bad(match refusal {
            Refusal::TooLarge => Text::new("setting ")
                .str(name)
                .str(" = ")
                .num(value)
                .str(" is too large"),
            Refusal::NotASwitch => Text::new("setting ").str(name).str(" takes 0 or 1"),
        })
    })
}
