//! The TCK's safety net, held by every check: a value written without a TTL, or with
//! one longer than an hour, is small, so that a check run against a live server that
//! dies before its clean-up leaves nothing large behind for good. Every check runs here
//! on the memory backend through a wrapper that records each write.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use cache_api::{async_trait, Bytes, Cache, CacheError, Limits};
use cache_memory::MemoryCache;
use cache_tck::{run_check, CHECKS};

/// The longest TTL a large value may carry.
const SAFETY_TTL: Duration = Duration::from_secs(3600);
/// The largest value that may be written without a TTL, or with a longer one.
const SMALL: usize = 1024;

/// One write: check, key, value size and TTL.
type Write = (&'static str, String, usize, Option<Duration>);

struct Recording {
    check: &'static str,
    inner: MemoryCache,
    writes: Arc<Mutex<Vec<Write>>>,
}

impl Recording {
    fn record(&self, key: &str, value: &Bytes, ttl: Option<Duration>) {
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.check, key.chars().take(40).collect(), value.len(), ttl));
    }
}

#[async_trait]
impl Cache for Recording {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.record(key, &value, ttl);
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
        for (key, value) in entries {
            self.record(key, value, ttl);
        }
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
        self.record(key, &value, ttl);
        self.inner.add(key, value, ttl).await
    }
    async fn clear(&self) -> Result<(), CacheError> {
        self.inner.clear().await
    }
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}

/// No check writes a value over 1 KiB without a TTL of at most an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_check_leaves_a_large_value_without_a_short_ttl() {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let runs = CHECKS.iter().map(|check| {
        let cache = Recording {
            check: check.name,
            inner: MemoryCache::new(),
            writes: Arc::clone(&writes),
        };
        async move { run_check(check, &cache).await }
    });
    let outcomes = futures::future::join_all(runs).await;
    // The recording must not change what the checks see.
    for outcome in &outcomes {
        assert!(outcome.passed(), "{:?}", outcome.result);
    }
    let writes = writes.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(writes.len() > CHECKS.len(), "too few writes recorded");
    let offending: Vec<&Write> = writes
        .iter()
        .filter(|(_, _, size, ttl)| *size > SMALL && ttl.is_none_or(|ttl| ttl > SAFETY_TTL))
        .collect();
    assert!(
        offending.is_empty(),
        "checks wrote large values without a TTL of at most {SAFETY_TTL:?}: {offending:#?}"
    );
}
