//! A map kept as a vector sorted by key, for the few small maps off the hot path (users,
//! a client's connections). Each `BTreeMap` key and value type links its own copy of the
//! B-tree code (about 7 KB each in the browser's module); this one is a binary search and a
//! vector insert or remove.

use alloc::vec::Vec;

/// A map from `K` to `V`, iterated in key order. Inserting or removing is linear in its
/// length: for maps of tens of entries, not thousands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Creates an empty map.
    pub(crate) fn new() -> Self {
        VecMap::default()
    }

    /// Returns the value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(key).ok()?;
        self.entries.get(at).map(|(_, value)| value)
    }

    /// Returns the value of `key`, to change it.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(key).ok()?;
        self.entries.get_mut(at).map(|(_, value)| value)
    }

    /// Returns true if `key` has a value.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Sets the value of `key`, returning the one it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(at) => self
                .entries
                .get_mut(at)
                .map(|(_, old)| core::mem::replace(old, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes `key` and returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(key).ok()?;
        Some(self.entries.remove(at).1)
    }

    /// Returns how many keys have a value.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true if no key has a value.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the keys and values in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    /// Iterates over the keys in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.entries.iter().map(|(key, _)| key)
    }

    /// Iterates over the values in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().map(|(_, value)| value)
    }

    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(probe, _)| probe.borrow().cmp(key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_as_a_btree_map(ops in proptest::collection::vec((0u8..3, 0u8..12, 0u32..100), 0..80)) {
            let mut ours = VecMap::new();
            let mut model = BTreeMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(key, value), model.insert(key, value)),
                    1 => prop_assert_eq!(ours.remove(&key), model.remove(&key)),
                    _ => {
                        if let Some(found) = ours.get_mut(&key) {
                            *found += 1;
                        }
                        if let Some(found) = model.get_mut(&key) {
                            *found += 1;
                        }
                    }
                }
                prop_assert_eq!(ours.get(&key), model.get(&key));
                prop_assert_eq!(ours.contains_key(&key), model.contains_key(&key));
                prop_assert_eq!(ours.len(), model.len());
                prop_assert_eq!(ours.is_empty(), model.is_empty());
                prop_assert!(ours.keys().eq(model.keys()));
                prop_assert!(ours.values().eq(model.values()));
                prop_assert!(ours.iter().eq(model.iter()));
            }
        }
    }
}
