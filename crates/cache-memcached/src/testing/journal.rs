//! The fixture's clean-up: a wrapper that records the keys written through it, and removes
//! them from the server when the test cache drops.
//!
//! The recording lives here, outside [`MemcachedCache`], so the production write path pays
//! nothing for it. Removing a prefixed cache's entries with `clear` would list every key of
//! the shared server for each test; the recorded keys, in each generation seen while
//! writing, plus the prefix's generation counter are deleted instead.

use std::{
    collections::HashSet,
    fmt,
    ops::Deref,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use cache_api::{async_trait, BackendInfo, Bytes, Cache, CacheError, Limits};
use cache_testserver::CleanUp;
use memcache::exp::{Delete, MetaClient};

use crate::{router::StableRendezvous, MemcachedCache};

/// Keys deleted in one pipelined batch.
const DELETE_BATCH: usize = 500;

/// A [`MemcachedCache`] that records every key passed to `set`, `set_many` and `add`, and
/// the generation of its prefix after each of those writes, so that
/// [`remove_written`](Self::remove_written) can delete exactly those entries.
///
/// It is a [`Cache`] itself and dereferences to the [`MemcachedCache`]. Writes through a
/// clone of that cache are not recorded.
pub struct JournaledMemcachedCache {
    cache: MemcachedCache,
    journal: Mutex<Journal>,
}

#[derive(Default)]
struct Journal {
    keys: HashSet<String>,
    /// Generations of the prefix seen after a write (`None`: no prefix, or no counter).
    generations: HashSet<Option<u64>>,
}

impl JournaledMemcachedCache {
    /// Starts recording the keys written through `cache`.
    #[must_use]
    pub fn new(cache: MemcachedCache) -> Self {
        Self {
            cache,
            journal: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        // Two sets, each updated in one call: a panic cannot leave them half-done.
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self) -> Option<u64> {
        self.cache
            .inner
            .namespace
            .as_ref()
            .and_then(|namespace| namespace.snapshot().generation)
    }

    fn record<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut journal = self.lock();
        for key in keys {
            if !journal.keys.contains(key) {
                journal.keys.insert(key.to_owned());
            }
        }
    }

    /// Notes the generation the write just used, or created.
    fn wrote(&self) {
        let generation = self.generation();
        self.lock().generations.insert(generation);
    }

    /// How many distinct keys were written through this cache so far and not yet removed.
    #[must_use]
    pub fn written_keys(&self) -> usize {
        self.lock().keys.len()
    }

    /// The memcached keys to delete: each recorded key in every generation seen, and the
    /// prefix's generation counter. Empty when nothing was written and no counter is known.
    fn server_keys(&self) -> Vec<Vec<u8>> {
        let current = self.generation();
        let journal = std::mem::take(&mut *self.lock());
        if journal.keys.is_empty() && current.is_none() {
            return Vec::new();
        }
        let mut generations = journal.generations;
        generations.insert(current);
        let space = &self.cache.inner.keys;
        let mut server_keys: Vec<Vec<u8>> = generations
            .iter()
            .flat_map(|&generation| {
                journal
                    .keys
                    .iter()
                    .filter(|key| !key.is_empty())
                    .map(move |key| space.server_key(generation, key))
            })
            .collect();
        server_keys.extend(space.generation_key());
        server_keys
    }

    /// Deletes every entry written so far, and the prefix's generation counter, now;
    /// dropping the test cache does the same. Synchronous, with a 1 s timeout per server;
    /// failures are ignored, the entries then age out.
    pub fn remove_written(&self) {
        let keys = self.server_keys();
        if keys.is_empty() {
            return;
        }
        let timeout = Some(Duration::from_secs(1));
        // Routed like the cache: same servers, same rendezvous hashing.
        let Ok(client) = MetaClient::builder()
            .router(StableRendezvous)
            .connect_timeout(timeout)
            .io_timeout(timeout)
            .connect_multiple(self.cache.servers().iter().map(String::as_str))
        else {
            return;
        };
        for batch in keys.chunks(DELETE_BATCH) {
            // Best effort: an entry left behind only ages out.
            let _ = client.run_many(batch.iter().map(Delete::new));
        }
    }
}

impl Deref for JournaledMemcachedCache {
    type Target = MemcachedCache;

    fn deref(&self) -> &MemcachedCache {
        &self.cache
    }
}

/// Named for the [`MemcachedTestCache`](super::MemcachedTestCache) that shows it: the
/// journal adds nothing worth seeing.
impl fmt::Debug for JournaledMemcachedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedTestCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Writes are recorded before they are sent (a write cut short may still have landed),
/// and the generation after they return.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Cache for JournaledMemcachedCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.cache.get(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.record([key]);
        let result = self.cache.set(key, value, ttl).await;
        self.wrote();
        result
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.cache.delete(key).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.cache.get_many(keys).await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.record(entries.iter().map(|(key, _)| *key));
        let result = self.cache.set_many(entries, ttl).await;
        self.wrote();
        result
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        self.cache.delete_many(keys).await
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.cache.exists(key).await
    }

    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        self.record([key]);
        let result = self.cache.add(key, value, ttl).await;
        self.wrote();
        result
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.cache.clear().await
    }

    fn limits(&self) -> Limits {
        self.cache.limits()
    }

    fn describe(&self) -> BackendInfo {
        self.cache.describe()
    }
}

/// What a [`MemcachedTestCache`](super::MemcachedTestCache) holds: the
/// [`JournaledMemcachedCache`] every operation goes through (it derefs to it), whose
/// written entries it removes when the test cache is dropped.
pub struct JournalCleanUp {
    cache: JournaledMemcachedCache,
}

impl JournalCleanUp {
    /// Removes what is written through `cache` when dropped inside a
    /// [`TestCache`](cache_testserver::TestCache).
    #[must_use]
    pub fn new(cache: JournaledMemcachedCache) -> Self {
        Self { cache }
    }
}

impl Deref for JournalCleanUp {
    type Target = JournaledMemcachedCache;

    fn deref(&self) -> &JournaledMemcachedCache {
        &self.cache
    }
}

impl fmt::Debug for JournalCleanUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cache.fmt(f)
    }
}

impl CleanUp for JournalCleanUp {
    fn clean_up(&mut self) {
        self.cache.remove_written();
    }
}
