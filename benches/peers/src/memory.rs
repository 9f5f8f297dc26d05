//! In-process peers: `cached`'s sharded LRU and `quick_cache`; and moka's sync and
//! future caches with the byte budget and per-entry expiry policy the in-memory backend
//! needs, the engines it was measured against (the future one was its engine before).

use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_bench::{BoxError, Target};
use cached::{stores::ShardedLruCache, ConcurrentCachedAsync};

/// The byte budget of the weighted peers: the in-memory backend's default.
pub(crate) const BUDGET_BYTES: u64 = 256 << 20;

/// `cached`'s sharded LRU: sync locks inside, an async trait outside.
pub(crate) struct CachedMemory(pub(crate) ShardedLruCache<String, Bytes>);

impl Target for CachedMemory {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        // The trait takes `&K`: a `String` per lookup is the price of its API.
        Ok(self.0.async_cache_get(&key.to_owned()).await?)
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let _previous = self.0.async_cache_set(key.to_owned(), value).await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            let _previous = self.0.async_cache_remove(&(*key).to_owned()).await?;
        }
        Ok(())
    }
}

/// Weighs an entry by its key and value, as the byte budgets of the others do.
#[derive(Clone)]
pub(crate) struct ByteWeighter;

impl quick_cache::Weighter<String, Bytes> for ByteWeighter {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        (key.len() + value.len()) as u64
    }
}

/// `quick_cache`'s sync cache, weighted in bytes, as its documentation shows: no TTL.
pub(crate) struct QuickCache(quick_cache::sync::Cache<String, Bytes, ByteWeighter>);

impl QuickCache {
    pub(crate) fn new(keys: usize) -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            keys.max(1) * 2,
            BUDGET_BYTES,
            ByteWeighter,
        ))
    }
}

impl Target for QuickCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        Ok(self.0.get(key))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        self.0.insert(key.to_owned(), value);
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        Ok(keys.iter().map(|key| self.0.get(*key)).collect())
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            self.0.remove(*key);
        }
        Ok(())
    }
}

/// A value and its TTL, which moka's expiry policy reads on every write.
#[derive(Clone)]
pub(crate) struct Timed {
    value: Bytes,
    ttl: Option<Duration>,
}

/// Every write sets the entry's own TTL (moka's default for an overwrite keeps the old).
struct PerEntryTtl;

impl moka::Expiry<String, Timed> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Timed, _at: Instant) -> Option<Duration> {
        entry.ttl
    }
    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Timed,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

/// moka's weigher signature takes the key type itself.
#[allow(clippy::ptr_arg)]
fn weigh(key: &String, entry: &Timed) -> u32 {
    u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
}

/// moka's sync cache with a byte budget, LRU eviction and a TTL per entry: the settings
/// the in-memory backend needs, on moka's sync API.
pub(crate) struct MokaSync(moka::sync::Cache<String, Timed, ahash::RandomState>);

impl MokaSync {
    pub(crate) fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(BUDGET_BYTES)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .weigher(weigh)
                .expire_after(PerEntryTtl)
                .build_with_hasher(ahash::RandomState::new()),
        )
    }
}

/// The same settings on moka's future cache.
pub(crate) struct MokaFuture(moka::future::Cache<String, Timed, ahash::RandomState>);

impl MokaFuture {
    pub(crate) fn new() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(BUDGET_BYTES)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .weigher(weigh)
                .expire_after(PerEntryTtl)
                .build_with_hasher(ahash::RandomState::new()),
        )
    }
}

impl Target for MokaFuture {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        Ok(self.0.get(key).await.map(|entry| entry.value))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        self.0
            .insert(key.to_owned(), Timed { value, ttl: None })
            .await;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.0.get(*key).await.map(|entry| entry.value));
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            self.0.invalidate(*key).await;
        }
        Ok(())
    }
}

impl Target for MokaSync {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        Ok(self.0.get(key).map(|entry| entry.value))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        self.0.insert(key.to_owned(), Timed { value, ttl: None });
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        Ok(keys
            .iter()
            .map(|key| self.0.get(*key).map(|entry| entry.value))
            .collect())
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            self.0.invalidate(*key);
        }
        Ok(())
    }
}
