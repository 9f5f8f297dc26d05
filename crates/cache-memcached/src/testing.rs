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
//! [`fresh_ring_cache`] does the same on a ring of [`RING_SIZE`] servers ([`ring`]):
//! `MEMCACHED_RING_URL` when set, else as many `memcached` processes started from `PATH`.
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
    io::Write as _,
    ops::Deref,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

pub use cache_testserver::{
    shared_server, LocalServer, Origin, Ready, ServerKind, SharedServer, MEMCACHED, SOURCE_ENV,
};
use cache_testserver::{CleanUp, Source, TestCache};
use memcache::exp::{Delete, MetaClient};
use tokio::sync::OnceCell;

use crate::{Journal, MemcachedCache, MemcachedCacheBuilder};

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
    let journal: Journal = Arc::new(Mutex::new(HashSet::new()));
    let mut builder = MemcachedCache::builder(url).key_prefix(unique_prefix());
    builder.journal = Some(Arc::clone(&journal));
    let cache = configure(builder)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a memcached cache on {what}: {error}"));
    TestCache::new(JournaledMemcachedCache { cache, journal })
}

/// How many servers the fixture's ring has when it starts them itself.
pub const RING_SIZE: usize = 3;

/// The variable that names an external ring: a URL such as
/// `memcache://10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211` (at least two servers).
pub const RING_URL_ENV: &str = "MEMCACHED_RING_URL";

/// A ring of memcached servers shared by every test of the process; see [`ring`].
pub struct TestRing {
    url: String,
    servers: Vec<String>,
    origin: Origin,
    /// The servers started here. Kept for the life of the process; each dies with it
    /// (see `cache-testserver`'s `LocalServer`), even when the process is killed.
    _processes: Vec<LocalServer>,
}

impl TestRing {
    /// The URL of the whole ring, `memcache://host:port,host:port,...`, without
    /// parameters.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Each server as `host:port`, in the order of [`url`](Self::url).
    #[must_use]
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The URL of one server alone, `memcache://host:port`: for a client that looks at
    /// that server from outside the ring.
    ///
    /// # Panics
    ///
    /// When `index` is not below the number of servers.
    #[must_use]
    pub fn server_url(&self, index: usize) -> String {
        format!("memcache://{}", self.servers[index])
    }

    /// Where the ring comes from: [`Origin::Environment`] (`MEMCACHED_RING_URL`) or
    /// [`Origin::Binary`].
    #[must_use]
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// True when this process started the servers (so `flush_all` on them is allowed).
    #[must_use]
    pub fn owned_by_fixture(&self) -> bool {
        self.origin.owned_by_fixture()
    }
}

impl std::fmt::Debug for TestRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRing")
            .field("servers", &self.servers)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The ring every test of the process shares, found or started on first use.
///
/// `MEMCACHED_RING_URL` names an external ring; else [`RING_SIZE`] `memcached` processes
/// are started from `PATH` on free `127.0.0.1` ports, and stopped when the process ends
/// (even on panic, abort or `SIGKILL`). `CACHE_TEST_SERVERS=external` takes only the
/// variable, `binary` only the processes; `auto` and `containers` take the variable when
/// set, else the processes: there is no ring of containers.
///
/// Writes one line on stderr (past the test harness' capture) saying which ring is used.
///
/// # Panics
///
/// When no ring can be had, with a message that says what was tried and how to provide
/// one; every later call panics with the same message.
pub async fn ring() -> &'static TestRing {
    static RING: OnceCell<Result<TestRing, String>> = OnceCell::const_new();
    match RING.get_or_init(find_or_start_ring).await {
        Ok(ring) => ring,
        Err(message) => panic!("{message}"),
    }
}

async fn find_or_start_ring() -> Result<TestRing, String> {
    let source = Source::from_env().map_err(|error| format!("cache-memcached: {error}"))?;
    // There is no ring of containers: `containers` takes what `auto` does.
    let take_env = source != Source::Binary;
    let take_binary = source != Source::External;
    let mut tried = Vec::new();
    if take_env {
        match std::env::var(RING_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => return external_ring(url.trim()),
            _ => tried.push(format!("{RING_URL_ENV}: not set")),
        }
    }
    if take_binary {
        match start_ring().await {
            Ok(ring) => return Ok(ring),
            Err(error) => tried.push(format!("memcached from PATH: {error}")),
        }
    }
    Err(format!(
        "cache-memcached: no memcached ring available ({SOURCE_ENV}={}); tried: {}\n\
         provide one of:\n  - an external ring: {RING_URL_ENV}=memcache://host:port,host:port,host:port \
         (with {SOURCE_ENV} unset, auto or external)\n  - the binary on PATH: {hint} \
         (with {SOURCE_ENV} unset, auto or binary)",
        source.name(),
        tried.join("; "),
        hint = MEMCACHED.install_hint,
    ))
}

fn external_ring(url: &str) -> Result<TestRing, String> {
    // Only the parsed addresses are kept and shown: the URL is not repeated anywhere.
    let builder = MemcachedCache::builder(url);
    let servers = builder
        .checked_servers()
        .map_err(|error| format!("cache-memcached: {RING_URL_ENV} is not usable: {error}"))?
        .to_vec();
    if servers.len() < 2 {
        return Err(format!(
            "cache-memcached: {RING_URL_ENV} names {} server; a ring needs at least 2",
            servers.len()
        ));
    }
    announce(&format!(
        "ring of {} memcached from {RING_URL_ENV}: {}",
        servers.len(),
        servers.join(",")
    ));
    Ok(TestRing {
        url: format!("memcache://{}", servers.join(",")),
        servers,
        origin: Origin::Environment,
        _processes: Vec::new(),
    })
}

async fn start_ring() -> Result<TestRing, String> {
    let mut processes = Vec::with_capacity(RING_SIZE);
    for _ in 0..RING_SIZE {
        // A server that started is killed on drop when a later one fails.
        processes.push(LocalServer::start(&MEMCACHED, &[]).await?);
    }
    let servers: Vec<String> = processes
        .iter()
        .map(|server| format!("127.0.0.1:{}", server.port()))
        .collect();
    let pids: Vec<String> = processes
        .iter()
        .filter_map(LocalServer::pid)
        .map(|pid| pid.to_string())
        .collect();
    announce(&format!(
        "ring of {RING_SIZE} memcached from binary (pids {}) at memcache://{}",
        pids.join(","),
        servers.join(",")
    ));
    Ok(TestRing {
        url: format!("memcache://{}", servers.join(",")),
        servers,
        origin: Origin::Binary,
        _processes: processes,
    })
}

/// One line on stderr, past the test harness' capture: which ring a run used is worth
/// seeing even when every test passes.
fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "cache-memcached: {line}");
}

/// A [`MemcachedCache`] on the [`ring`] under a [`unique_prefix`], cleaned up on drop
/// like [`fresh_cache`]'s.
///
/// # Panics
///
/// When no ring can be found or started (the message says how to provide one), or when
/// the cache cannot be built on it.
pub async fn fresh_ring_cache() -> MemcachedTestCache {
    fresh_ring_cache_with(|builder| builder).await
}

/// As [`fresh_ring_cache`], with the builder adjusted by `configure`. The prefix is set
/// before `configure` runs; replacing it gives up the isolation.
///
/// # Panics
///
/// As [`fresh_ring_cache`].
pub async fn fresh_ring_cache_with(
    configure: impl FnOnce(MemcachedCacheBuilder) -> MemcachedCacheBuilder,
) -> MemcachedTestCache {
    let ring = ring().await;
    fresh_cache_on(ring.url(), "the test ring", configure).await
}

/// A [`MemcachedCache`] that deletes every key it wrote when dropped.
///
/// It is a [`Cache`](cache_api::Cache) itself and dereferences to the [`MemcachedCache`],
/// through the [`JournaledMemcachedCache`] it wraps. The clean-up is synchronous (a
/// blocking meta protocol client, one pipelined delete per server, 1 s timeout) so it
/// also runs when a test panics; failures are ignored, the entries then age out like any
/// other.
pub type MemcachedTestCache = TestCache<JournaledMemcachedCache>;

/// What a [`MemcachedTestCache`] wraps: the [`MemcachedCache`] (it derefs to it) and the
/// journal of every key it wrote.
pub struct JournaledMemcachedCache {
    cache: MemcachedCache,
    journal: Journal,
}

/// Named for the [`MemcachedTestCache`] that shows it: the wrapper adds nothing to see.
impl std::fmt::Debug for JournaledMemcachedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedTestCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Deref for JournaledMemcachedCache {
    type Target = MemcachedCache;

    fn deref(&self) -> &MemcachedCache {
        &self.cache
    }
}

impl JournaledMemcachedCache {
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

impl CleanUp for JournaledMemcachedCache {
    fn clean_up(&mut self) {
        self.remove_written();
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
}
