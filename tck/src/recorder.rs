//! A cache wrapper that remembers every key written through it, so that checks run
//! against a live server can remove exactly what they wrote and nothing else.

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use cache_api::{async_trait, Bytes, Cache, CacheError, Limits};

/// Wraps a cache and records every key passed to `set` and `set_many`;
/// [`remove_written`](KeyRecorder::remove_written) deletes them all afterwards.
///
/// This is how `cachectl check` works on a server it does not own: whatever the
/// backend (memcached cannot list keys), it removes only the keys it wrote.
///
/// ```
/// # async fn demo(cache: impl cache_api::Cache) -> Result<(), cache_api::CacheError> {
/// use cache_api::{Bytes, Cache};
/// use cache_tck::KeyRecorder;
///
/// let recorder = KeyRecorder::new(cache);
/// recorder.set("scratch", Bytes::from("x"), None).await?;
/// recorder.remove_written().await?; // deletes "scratch", and only it
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KeyRecorder<C> {
    inner: C,
    written: Mutex<BTreeSet<String>>,
}

impl<C: Cache> KeyRecorder<C> {
    /// Starts recording the keys written to `inner`.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            written: Mutex::new(BTreeSet::new()),
        }
    }

    /// The wrapped cache.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The keys written so far (valid or not, stored or not), sorted.
    pub fn written_keys(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Deletes every non-empty key written so far, in batches, and forgets them.
    ///
    /// # Errors
    ///
    /// The backend's error; the keys not yet deleted stay recorded.
    pub async fn remove_written(&self) -> Result<(), CacheError> {
        let keys: Vec<String> = self
            .lock()
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect();
        for batch in keys.chunks(100) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            self.inner.delete_many(&refs).await?;
            let mut written = self.lock();
            for key in batch {
                written.remove(key);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic elsewhere while holding the lock leaves the set itself consistent.
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut written = self.lock();
        for key in keys {
            if !written.contains(key) {
                written.insert(key.to_owned());
            }
        }
    }
}

#[async_trait]
impl<C: Cache> Cache for KeyRecorder<C> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.record([key]);
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.inner.delete(key).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.inner.get_many(keys).await
    }
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.record(entries.iter().map(|(key, _)| *key));
        self.inner.set_many(entries, ttl).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        self.inner.delete_many(keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.inner.exists(key).await
    }
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        self.record([key]);
        self.inner.add(key, value, ttl).await
    }
    async fn clear(&self) -> Result<(), CacheError> {
        self.inner.clear().await
    }
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    fn describe(&self) -> cache_api::BackendInfo {
        self.inner.describe()
    }
}
