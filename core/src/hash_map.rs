//! The hash maps' hasher. The native hosts (`std`) use hashbrown's default, foldhash (fast);
//! the browser's module, built without `std`, uses the SipHash-1-3 that the lock-name index
//! links anyway, which keeps foldhash's code and its seed generation out of every page's
//! download. No result depends on a map's iteration order (the default hasher is seeded at
//! random per process), so the choice changes no output.

#[cfg(feature = "std")]
pub(crate) type HashMap<K, V> = hashbrown::HashMap<K, V>;

#[cfg(not(feature = "std"))]
pub(crate) type HashMap<K, V> =
    hashbrown::HashMap<K, V, core::hash::BuildHasherDefault<siphasher::sip::SipHasher13>>;
