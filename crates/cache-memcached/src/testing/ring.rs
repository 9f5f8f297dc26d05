//! The ring of memcached servers the fixture's ring tests share: an external one named by
//! `MEMCACHED_RING_URL`, else servers started from `PATH` for the life of the process.

use std::io::Write as _;

use cache_testserver::{LocalServer, Origin, Source, MEMCACHED, SOURCE_ENV};
use tokio::sync::OnceCell;

use super::{fresh_cache_on, MemcachedTestCache};
use crate::{MemcachedCache, MemcachedCacheBuilder};

/// How many servers the fixture's ring has when it starts them itself.
pub const RING_SIZE: usize = 3;

/// The variable that names an external ring: a URL such as
/// `memcache://10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211` (at least two servers).
pub const RING_URL_ENV: &str = "MEMCACHED_RING_URL";

/// A ring of memcached servers shared by every test of the process; see [`ring()`].
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

/// A [`MemcachedCache`] on the [`ring()`] under a [`unique_prefix`](super::unique_prefix),
/// cleaned up on drop like [`fresh_cache`](super::fresh_cache)'s.
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
