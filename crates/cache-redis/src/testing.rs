//! The test fixture (feature `testing`): a [`RedisCache`] per test, on a server shared
//! by the whole test process, under a key prefix of its own that is emptied when the
//! cache is dropped. [`fresh_cluster_cache`] does the same on a shared Redis Cluster
//! ([`cluster`]), and [`RedisCluster`] starts a cluster of a test's own.
//!
//! The server comes from [`cache_testserver::shared_server`]: `REDIS_URL` when set,
//! else `redis-server` from `PATH` on a free port, else a container of
//! `REDIS_IMAGE` (default `cache-test/redis:latest`); `CACHE_TEST_SERVERS` narrows the
//! choice (`auto`, `binary`, `containers`, `external`). When none can be found or
//! started, the test fails with a message saying how to provide one.
//!
//! ```no_run
//! // [dev-dependencies] cache-redis = { git = "https://github.com/cache-contract/cache-rs", features = ["testing"] }
//! use cache_redis::{cache_api::{Bytes, Cache}, testing::fresh_cache};
//!
//! #[tokio::test]
//! async fn remembers_a_session() {
//!     let cache = fresh_cache().await;
//!     cache.set("session:1", Bytes::from("alice"), None).await.unwrap();
//!     assert_eq!(cache.get("session:1").await.unwrap(), Some(Bytes::from("alice")));
//! } // the keys under the cache's prefix are removed here
//! ```

use std::{fmt, ops::Deref, time::Duration};

pub use cache_testserver::{
    free_port, shared_server, LocalServer, Ready, ServerKind, SharedServer, REDIS,
};
use cache_testserver::{CleanUp, TestCache};

mod cluster;

pub use cache_testserver::redis_cluster::{
    shared_cluster as cluster, ClusterSpec, RedisCluster, SharedCluster, CLUSTER_URL_ENV,
    REDIS_CLUSTER_NODE,
};
pub use cluster::{cluster_masters, key_slot, ClusterMaster};

use crate::{command::escape_glob, endpoint, RedisCache, RedisCacheBuilder};

/// Response timeout of fixture caches: generous, because test machines are often
/// loaded and a check that writes the largest allowed value must not flake.
pub const FIXTURE_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A key prefix no other cache of any test process has used: pid, a per-process
/// counter and the clock in nanoseconds, ending with `:`.
#[must_use]
pub fn unique_prefix() -> String {
    cache_testserver::unique_prefix("cache-test")
}

/// A fresh, clean cache on the shared test server: a [`RedisTestCache`] with a
/// [unique prefix](unique_prefix).
///
/// # Panics
///
/// When no Redis server can be found or started (the message says how to provide
/// one), or when the cache cannot connect to it.
pub async fn fresh_cache() -> RedisTestCache {
    fresh_cache_with(|builder| builder).await
}

/// As [`fresh_cache`], with the builder adjusted by `configure` (a shorter timeout, a
/// connection model...) before the fixture builds it. The unique prefix is set before
/// `configure` runs; a prefix `configure` sets instead is the one cleaned up on drop,
/// and an empty one is refused, as its clean-up would empty the database.
///
/// ```no_run
/// // [dev-dependencies] cache-redis = { git = "https://github.com/cache-contract/cache-rs", features = ["testing"] }
/// use std::time::Duration;
/// use cache_redis::{testing::fresh_cache_with, ConnectionModel};
///
/// # async fn demo() {
/// let cache = fresh_cache_with(|builder| {
///     builder
///         .connection_model(ConnectionModel::Pooled { max_size: 4 })
///         .response_timeout(Duration::from_millis(500))
/// })
/// .await;
/// # }
/// ```
///
/// # Panics
///
/// As [`fresh_cache`], and when `configure` leaves the cache without a key prefix.
pub async fn fresh_cache_with(
    configure: impl FnOnce(RedisCacheBuilder) -> RedisCacheBuilder,
) -> RedisTestCache {
    let server = cache_testserver::shared_server(&REDIS).await;
    fresh_cache_on_with(server.url(), configure).await
}

/// A fresh, clean cache on the Redis Cluster the tests of this process share (see
/// [`cluster`]): a [`RedisTestCache`] with a [unique prefix](unique_prefix), whose keys
/// are removed from every master when it is dropped. The prefix has no hash tag, so the
/// keys spread over every master.
///
/// # Panics
///
/// When no cluster can be found or started (the message says how to provide one), or
/// when the cache cannot connect to it.
pub async fn fresh_cluster_cache() -> RedisTestCache {
    fresh_cache_on(cluster().await.url()).await
}

/// A fresh, clean cache on the server at `url`, exactly as [`fresh_cache`] makes them
/// on the shared server: useful to check what the fixture leaves behind on a server
/// of your own. A `redis+cluster://` URL gives a cache on that cluster, as
/// [`fresh_cluster_cache`] makes them.
///
/// # Panics
///
/// When the cache cannot connect to `url`.
pub async fn fresh_cache_on(url: &str) -> RedisTestCache {
    fresh_cache_on_with(url, |builder| builder).await
}

/// As [`fresh_cache_on`], with the builder adjusted by `configure` as
/// [`fresh_cache_with`] does.
///
/// # Panics
///
/// As [`fresh_cache_on`], and when `configure` leaves the cache without a key prefix.
pub async fn fresh_cache_on_with(
    url: &str,
    configure: impl FnOnce(RedisCacheBuilder) -> RedisCacheBuilder,
) -> RedisTestCache {
    let builder = RedisCache::builder(url)
        .key_prefix(unique_prefix())
        .response_timeout(FIXTURE_RESPONSE_TIMEOUT);
    let cache = configure(builder).build().await.unwrap_or_else(|err| {
        panic!(
            "cannot connect the test cache to the redis server at {}: {err}",
            endpoint::redact_url(url)
        )
    });
    let prefix = cache.key_prefix().to_owned();
    assert!(
        !prefix.is_empty(),
        "a fixture cache needs a key prefix: without one, its clean-up would empty the database"
    );
    TestCache::new(PrefixedRedisCache {
        cache,
        url: url.to_owned(),
        prefix,
    })
}

/// A [`RedisCache`] under a prefix of its own, which removes every key under that
/// prefix when dropped, so a server that the fixture did not start ends up holding
/// exactly the keys it held before.
///
/// It is a [`Cache`](cache_api::Cache) (every operation forwarded) and derefs to the
/// [`RedisCache`], through the [`PrefixedRedisCache`] it wraps.
pub type RedisTestCache = TestCache<PrefixedRedisCache>;

/// What a [`RedisTestCache`] wraps: the [`RedisCache`] (it derefs to it), its prefix, and
/// the URL to remove the keys under that prefix from.
pub struct PrefixedRedisCache {
    cache: RedisCache,
    /// Kept to connect once more in `drop`; never shown, as it may hold a password.
    url: String,
    prefix: String,
}

impl PrefixedRedisCache {
    /// The prefix of this cache's keys on the server.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Deref for PrefixedRedisCache {
    type Target = RedisCache;

    fn deref(&self) -> &RedisCache {
        &self.cache
    }
}

/// Named for the [`RedisTestCache`] that shows it: the wrapper adds nothing to see.
impl fmt::Debug for PrefixedRedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTestCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl CleanUp for PrefixedRedisCache {
    /// Removes the keys under the prefix over a blocking connection of its own, so no
    /// async runtime is needed (the test's runtime may be shutting down). A failure is
    /// reported on stderr, never as a panic: dropping may happen while a failed test
    /// unwinds.
    fn clean_up(&mut self) {
        let result = if self.cache.is_cluster() {
            cluster::remove_keys_under_cluster(&self.url, &self.prefix)
        } else {
            remove_keys_under(&self.url, &self.prefix, false).map_err(|err| err.to_string())
        };
        if let Err(err) = result {
            let secrets = secrets_of(&self.url);
            eprintln!(
                "cache-redis testing: could not remove the keys under {:?} at {}: {}",
                self.prefix,
                endpoint::redact_url(&self.url),
                endpoint::scrub(&err, &secrets)
            );
        }
    }
}

/// The passwords a URL (one server's or a cluster's) carries, to scrub from messages.
fn secrets_of(url: &str) -> Vec<String> {
    let seeds = endpoint::split_cluster_url(url).unwrap_or_else(|_| vec![url.to_owned()]);
    seeds
        .iter()
        .filter_map(|seed| endpoint::parse_url(seed, None).ok())
        .flat_map(|target| target.secrets)
        .collect()
}

/// Removes every key under `prefix` on the server at `url`, with a blocking connection;
/// returns how many were removed. On a cluster node (`per_slot`), the keys of each
/// batch are unlinked one slot at a time, as a node refuses multi-key commands across
/// slots.
fn remove_keys_under(url: &str, prefix: &str, per_slot: bool) -> Result<usize, redis::RedisError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let client = redis::Client::open(url)?;
    let mut connection = client.get_connection_with_timeout(TIMEOUT)?;
    connection.set_read_timeout(Some(TIMEOUT))?;
    connection.set_write_timeout(Some(TIMEOUT))?;
    let pattern = format!("{}*", escape_glob(prefix));
    let mut cursor = 0_u64;
    let mut removed = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            crate::command::scan_command(cursor, &pattern).query(&mut connection)?;
        if per_slot && !keys.is_empty() {
            let mut slots: std::collections::BTreeMap<u16, Vec<&Vec<u8>>> =
                std::collections::BTreeMap::new();
            for key in &keys {
                slots.entry(key_slot(key)).or_default().push(key);
            }
            let mut pipeline = redis::pipe();
            for keys in slots.values() {
                pipeline.cmd("UNLINK").arg(keys);
            }
            let counts: Vec<usize> = pipeline.query(&mut connection)?;
            removed += counts.iter().sum::<usize>();
        } else if !keys.is_empty() {
            removed += redis::cmd("UNLINK")
                .arg(&keys)
                .query::<usize>(&mut connection)?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
