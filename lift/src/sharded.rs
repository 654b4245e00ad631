//! A sharded concurrent map: per-key state without one lock for every key.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{PoisonError, RwLock};

const SHARDS: usize = 16;

/// Keys spread over 16 `RwLock`ed maps by hash: lookups of existing keys take one shared
/// read lock, and writers for one key do not block readers of keys in other shards.
pub(crate) struct Shards<K, V> {
    hasher: RandomState,
    shards: Box<[RwLock<HashMap<K, V>>]>,
}

impl<K: Hash + Eq, V: Clone> Shards<K, V> {
    pub(crate) fn new() -> Self {
        Self { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| RwLock::default()).collect() }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<HashMap<K, V>> {
        // `Borrow` guarantees `Q` hashes as `K` does, so both find the same shard.
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[index]
    }

    /// The value of a key.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// The value of a key, inserting `make()` for a new key (`to_key` runs only then).
    pub(crate) fn get_or_insert_with<Q>(
        &self,
        key: &Q,
        to_key: impl FnOnce() -> K,
        make: impl FnOnce() -> V,
    ) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        if let Some(value) = shard.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return value.clone();
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = map.get(key) {
            return value.clone();
        }
        let value = make();
        map.insert(to_key(), value.clone());
        value
    }

    /// Every key and value (for metrics).
    pub(crate) fn snapshot(&self) -> Vec<(K, V)>
    where
        K: Clone,
    {
        self.shards
            .iter()
            .flat_map(|shard| {
                let map = shard.read().unwrap_or_else(PoisonError::into_inner);
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_once_and_finds_by_borrowed_key() {
        let map: Shards<String, u32> = Shards::new();
        assert_eq!(map.get_or_insert_with("a", || "a".to_owned(), || 1), 1);
        assert_eq!(map.get_or_insert_with("a", || unreachable!(), || 2), 1);
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(map.get("b"), None);
        assert_eq!(map.snapshot().len(), 1);
    }
}
