//! The test fixture: a fresh [`MemcachedCache`] of its own on a real memcached server.
//!
//! [`fresh_cache`] finds or starts the server once per test process (through
//! `cache-testserver`: `MEMCACHED_URL`, else `memcached` from `PATH`, else a container
//! built by `scripts/build-test-images`, else a panic that says how to provide one) and
//! hands each test a cache under a unique key prefix. Tests running in parallel on one
//! server never see or clear each other's entries, and each cache deletes the keys it
//! wrote when it is dropped, so a server the fixture did not start keeps only its own data.
//!
//! ```no_run
//! // [dev-dependencies] cache-memcached = { version = "0.1", features = ["testing"] }
//! use cache_api::{Bytes, Cache};
//!
//! async fn remembers() {
//!     let cache = cache_memcached::testing::fresh_cache().await;
//!     cache.set("k", Bytes::from("v"), None).await.unwrap();
//!     assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
//! }
//! ```

use std::{
    collections::HashSet,
    ops::Deref,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cache_api::{async_trait, Bytes, Cache, CacheError, Limits};
pub use cache_testserver::{shared_server, LocalServer, Ready, ServerKind, SharedServer};
use memcache::exp::{Delete, MetaClient};

use crate::{Journal, MemcachedCache, MemcachedCacheBuilder};

/// memcached for `cache-testserver`: `MEMCACHED_URL` names an external server,
/// `MEMCACHED_IMAGE` overrides the image `cache-test/memcached:latest`.
///
/// The binary listens on `127.0.0.1` only, without UDP. The image's entrypoint already
/// runs `memcached -u root -vv` (and `-vv` makes it print `server listening` when ready),
/// so the container gets no arguments of its own: repeating `-vv` would make memcached
/// trace every command.
pub static MEMCACHED: ServerKind = ServerKind {
    name: "memcached",
    url_env: "MEMCACHED_URL",
    binary: "memcached",
    binary_args: memcached_args,
    image_env: "MEMCACHED_IMAGE",
    default_image: "cache-test/memcached:latest",
    container_port: 11211,
    container_args: &[],
    container_ready: Ready::StderrLine("server listening"),
    url_for: memcached_url,
    install_hint: "apt-get install memcached",
};

fn memcached_args(port: u16) -> Vec<String> {
    let mut args: Vec<String> = ["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
    // memcached refuses to start as root unless told which user to run as.
    if running_as_root() {
        args.extend(["-u".to_owned(), "root".to_owned()]);
    }
    args
}

fn memcached_url(host: &str, port: u16) -> String {
    format!("memcache://{host}:{port}")
}

/// Whether this process runs as root (real or effective user id 0), read from `/proc`.
fn running_as_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().take(2).any(|id| id == "0"))
}

/// A key prefix no other cache of any test process uses: process id, a counter and the
/// clock in nanoseconds.
#[must_use]
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    format!("test:{}:{count}:{nanos}:", std::process::id())
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
    let journal: Journal = Arc::new(Mutex::new(HashSet::new()));
    let mut builder = MemcachedCache::builder(server.url()).key_prefix(unique_prefix());
    builder.journal = Some(Arc::clone(&journal));
    let cache = configure(builder).build().await.unwrap_or_else(|error| {
        panic!("cannot build a memcached cache on the test server: {error}")
    });
    MemcachedTestCache { cache, journal }
}

/// A [`MemcachedCache`] that deletes every key it wrote when dropped.
///
/// It is a [`Cache`] itself and dereferences to the [`MemcachedCache`]. The clean-up is
/// synchronous (a blocking meta protocol client, one pipelined delete per server, 1 s
/// timeout) so it also runs when a test panics; failures are ignored, the entries then
/// age out like any other.
pub struct MemcachedTestCache {
    cache: MemcachedCache,
    journal: Journal,
}

impl std::fmt::Debug for MemcachedTestCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedTestCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Deref for MemcachedTestCache {
    type Target = MemcachedCache;

    fn deref(&self) -> &MemcachedCache {
        &self.cache
    }
}

impl MemcachedTestCache {
    /// How many distinct memcached keys this cache wrote so far (its generation counter
    /// included) and will delete when dropped.
    #[must_use]
    pub fn written_keys(&self) -> usize {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Deletes every key written so far, now; dropping the cache does the same.
    pub fn remove_written(&self) {
        let keys: Vec<Vec<u8>> =
            std::mem::take(&mut *self.journal.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if keys.is_empty() {
            return;
        }
        let timeout = Some(Duration::from_secs(1));
        // Routed like the cache: same servers, same rendezvous hashing.
        let Ok(client) = MetaClient::builder()
            .router(crate::router::StableRendezvous)
            .connect_timeout(timeout)
            .io_timeout(timeout)
            .connect_multiple(self.cache.servers().iter().map(String::as_str))
        else {
            return;
        };
        for batch in keys.chunks(500) {
            // Best effort: an entry left behind only ages out.
            let _ = client.run_many(batch.iter().map(Delete::new));
        }
    }
}

impl Drop for MemcachedTestCache {
    fn drop(&mut self) {
        self.remove_written();
    }
}

#[async_trait]
impl Cache for MemcachedTestCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.cache.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.cache.set(key, value, ttl).await
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
        self.cache.set_many(entries, ttl).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        self.cache.delete_many(keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.cache.exists(key).await
    }
    async fn clear(&self) -> Result<(), CacheError> {
        self.cache.clear().await
    }
    fn limits(&self) -> Limits {
        self.cache.limits()
    }
}

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

    #[test]
    fn the_binary_listens_on_loopback_only() {
        let args = memcached_args(12345);
        assert!(args.windows(2).any(|pair| pair == ["-l", "127.0.0.1"]));
        assert!(args.windows(2).any(|pair| pair == ["-p", "12345"]));
        assert!(args.windows(2).any(|pair| pair == ["-U", "0"]));
    }
}
