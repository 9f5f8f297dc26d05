//! [`TestCache`]: a backend's cache for one test, that removes what the test wrote when it
//! is dropped, so a server the fixture did not start keeps only its own data; and the unique
//! key prefixes that keep tests running side by side apart.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cache_api::Cache;

/// A key prefix that no other call, in this test process or any other, returns:
/// `{head}:{pid}:{counter}:{nanos}:`, the process id, a per-process counter and the clock
/// in nanoseconds.
#[must_use]
pub fn unique_prefix(head: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{head}:{}:{count}:{nanos}:", std::process::id())
}

/// What a [`TestCache`] holds: the cache under test, reached through `Deref`, and what it
/// takes to remove the entries a test wrote through it (a key prefix, a journal...).
pub trait CleanUp: Deref<Target: Cache> + Send + Sync {
    /// Removes what was written through the cache; the [`TestCache`] calls it when dropped.
    ///
    /// It runs in `Drop`, so it must not panic (a failed test may be unwinding) and should
    /// not need an async runtime (the test's may be shutting down): report failures on
    /// stderr, or leave entries to expire.
    fn clean_up(&mut self);
}

/// A cache for one test: a [`Cache`] that forwards every operation to the cache inside
/// `T`, derefs to `T` (and through it to that cache, so the backend's own methods are at
/// hand), and runs [`CleanUp::clean_up`] when dropped.
///
/// Backend fixtures name it for their cache, e.g. `type RedisTestCache =
/// TestCache<PrefixedRedisCache>`.
pub struct TestCache<T: CleanUp> {
    inner: T,
}

impl<T: CleanUp> TestCache<T> {
    /// Wraps `inner`, whose clean-up then runs when the test cache is dropped.
    #[must_use]
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

impl<T: CleanUp> Deref for TestCache<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: CleanUp> Drop for TestCache<T> {
    fn drop(&mut self) {
        self.inner.clean_up();
    }
}

/// Shown as what it wraps: the wrapper adds no state of its own.
impl<T: CleanUp + fmt::Debug> fmt::Debug for TestCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

cache_api::forward_cache!(
    /// Every operation goes to the cache inside `T`.
    impl[T: CleanUp] for TestCache<T>, |this| &*this.inner
);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::Deref;
    use std::sync::{Arc, Mutex};

    use cache_api::{async_trait, Bytes, Cache, CacheError};

    use super::{unique_prefix, CleanUp, TestCache};

    #[test]
    fn prefixes_are_unique_and_end_with_a_colon() {
        let (a, b) = (unique_prefix("t"), unique_prefix("t"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t:{}:", std::process::id())), "{a}");
        assert!(a.ends_with(':'), "{a}");
    }

    /// A map-backed cache; its entries are shared so a test can look after the drop.
    struct MapCache(Arc<Mutex<HashMap<String, Bytes>>>);

    #[async_trait]
    impl Cache for MapCache {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(
            &self,
            key: &str,
            value: Bytes,
            _ttl: Option<std::time::Duration>,
        ) -> Result<(), CacheError> {
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            Ok(self.0.lock().unwrap().remove(key).is_some())
        }
    }

    /// Empties the whole map on clean-up.
    struct Emptied {
        cache: MapCache,
    }

    impl Deref for Emptied {
        type Target = MapCache;
        fn deref(&self) -> &MapCache {
            &self.cache
        }
    }

    impl CleanUp for Emptied {
        fn clean_up(&mut self) {
            self.cache.0.lock().unwrap().clear();
        }
    }

    #[tokio::test]
    async fn forwards_every_operation_and_cleans_up_on_drop() {
        let entries = Arc::default();
        let cache = TestCache::new(Emptied {
            cache: MapCache(Arc::clone(&entries)),
        });
        cache.set("a", Bytes::from("1"), None).await.unwrap();
        cache
            .set_many(&[("b", Bytes::from("2"))], None)
            .await
            .unwrap();
        assert_eq!(cache.get("a").await.unwrap(), Some(Bytes::from("1")));
        assert_eq!(
            cache.get_many(&["b", "c"]).await.unwrap(),
            vec![Some(Bytes::from("2")), None]
        );
        assert!(cache.exists("a").await.unwrap());
        assert!(cache.delete("a").await.unwrap());
        assert_eq!(cache.delete_many(&["b", "c"]).await.unwrap(), 1);
        cache.set("d", Bytes::from("4"), None).await.unwrap();
        assert_eq!(
            entries.lock().unwrap().len(),
            1,
            "written through the wrapper"
        );
        drop(cache);
        assert!(entries.lock().unwrap().is_empty(), "emptied on drop");
    }
}
