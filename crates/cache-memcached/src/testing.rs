//! The test fixture: a fresh [`MemcachedCache`] of its own on a real memcached server, or
//! on a ring of several.
//!
//! [`fresh_cache`] finds or starts the server once per test process (through
//! `cache-testserver`: `MEMCACHED_URL`, else `memcached` from `PATH`, else a container
//! built by `scripts/build-test-images`, else a panic that says how to provide one) and
//! hands each test a cache under a unique key prefix. Tests running in parallel on one
//! server never see or clear each other's entries, and each cache deletes the keys it
//! wrote when it is dropped, so a server the fixture did not start keeps only its own data.
//!
//! [`fresh_ring_cache`] does the same on a ring of [`RING_SIZE`] servers ([`ring()`]):
//! `MEMCACHED_RING_URL` when set, else as many `memcached` processes started from `PATH`.
//!
//! ```no_run
//! // [dev-dependencies] cache-memcached = { git = "https://github.com/cache-contract/cache-rs", features = ["testing"] }
//! use cache_api::{Bytes, Cache};
//!
//! async fn remembers() {
//!     let cache = cache_memcached::testing::fresh_cache().await;
//!     cache.set("k", Bytes::from("v"), None).await.unwrap();
//!     assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
//! }
//! ```

mod journal;
mod ring;

use cache_testserver::TestCache;
pub use cache_testserver::{
    shared_server, LocalServer, Origin, Ready, ServerKind, SharedServer, MEMCACHED, SOURCE_ENV,
};
pub use journal::{JournalCleanUp, JournaledMemcachedCache};
pub use ring::{fresh_ring_cache, fresh_ring_cache_with, ring, TestRing, RING_SIZE, RING_URL_ENV};

use crate::{MemcachedCache, MemcachedCacheBuilder};

/// A key prefix no other cache of any test process uses: process id, a counter and the
/// clock in nanoseconds.
#[must_use]
pub fn unique_prefix() -> String {
    cache_testserver::unique_prefix("test")
}

/// A [`MemcachedCache`] on the shared test server under a [`unique_prefix`].
///
/// # Panics
///
/// When no memcached server can be found or started (the message says how to provide
/// one), or when the cache cannot be built on it.
pub async fn fresh_cache() -> MemcachedTestCache {
    fresh_cache_with(|builder| builder).await
}

/// As [`fresh_cache`], with the builder adjusted by `configure` (a shorter timeout, a
/// smaller pool...). The prefix is set before `configure` runs; replacing it gives up the
/// isolation.
///
/// # Panics
///
/// As [`fresh_cache`].
pub async fn fresh_cache_with(
    configure: impl FnOnce(MemcachedCacheBuilder) -> MemcachedCacheBuilder,
) -> MemcachedTestCache {
    let server = shared_server(&MEMCACHED).await;
    fresh_cache_on(server.url(), "the test server", configure).await
}

async fn fresh_cache_on(
    url: &str,
    what: &str,
    configure: impl FnOnce(MemcachedCacheBuilder) -> MemcachedCacheBuilder,
) -> MemcachedTestCache {
    let builder = MemcachedCache::builder(url).key_prefix(unique_prefix());
    let cache = configure(builder)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a memcached cache on {what}: {error}"));
    TestCache::new(JournalCleanUp::new(JournaledMemcachedCache::new(cache)))
}

/// A [`MemcachedCache`] that deletes every key written through it when dropped.
///
/// It is a [`Cache`](cache_api::Cache) itself, whose writes go through a
/// [`JournaledMemcachedCache`] (which records their keys), and it dereferences to the
/// [`MemcachedCache`] through it. The clean-up is synchronous (a blocking meta protocol
/// client, one pipelined delete per server, 1 s timeout) so it also runs when a test
/// panics; failures are ignored, the entries then age out like any other.
pub type MemcachedTestCache = TestCache<JournalCleanUp>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_valid() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        assert!(a.ends_with(':') && a.len() < 64, "{a}");
        let builder = MemcachedCache::builder("memcache://127.0.0.1").key_prefix(a);
        assert!(builder.checked_prefix().is_ok());
    }
}
