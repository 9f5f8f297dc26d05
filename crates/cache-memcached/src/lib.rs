#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod admin;
mod batch;
mod calls;
mod clear;
mod config;
mod connect;
mod error;
mod expiry;
mod fail_open;
mod generation;
mod keys;
mod mux;
mod namespace;
mod router;
#[cfg(feature = "serde")]
mod serde_config;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;

use std::{
    fmt,
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};

use cache_api::{
    async_trait, validate_entries, validate_key, validate_keys, Bytes, Cache, CacheError, Limits,
};

#[cfg(feature = "serde")]
pub use serde_config::MemcachedConfig;

use batch::distinct;
pub use config::{
    MemcachedCacheBuilder, DEFAULT_MAX_VALUE_SIZE, DEFAULT_NAMESPACE_REFRESH, DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT, MAX_POOL_SIZE,
};
use expiry::{expiry, Expiry};
use generation::Absent;
use keys::KeySpace;
use namespace::Namespace;

/// A [`Cache`] on one or several memcached servers, over the meta protocol of
/// `memcache::exp`.
///
/// Cheap to clone: clones share the connections and the namespace state. See the
/// [crate documentation](crate) for the key encoding, TTL rules, `clear` and several
/// servers.
///
/// ```no_run
/// # async fn demo() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_api::{Bytes, Cache};
/// use cache_memcached::MemcachedCache;
///
/// let cache = MemcachedCache::connect("memcache://127.0.0.1:11211?prefix=app:").await?;
/// cache.set("user:42", Bytes::from("Ada"), Some(Duration::from_secs(300))).await?;
/// assert_eq!(cache.get("user:42").await?.as_deref(), Some(&b"Ada"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcachedCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: mux::Client,
    servers: Vec<String>,
    /// How every connection is dialled: the multiplexed ones and the admin ones.
    transport: transport::Transport,
    key_prefix: Option<String>,
    keys: KeySpace,
    namespace: Option<Namespace>,
    timeout: Duration,
    pool_size: usize,
    /// The largest value `set` takes: lowered when a server refuses a smaller one as too
    /// large (its item size lowered since the build).
    max_value_size: AtomicUsize,
    get_many_fail_open: bool,
}

impl fmt::Debug for MemcachedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("MemcachedCache")
            .field("servers", &inner.servers)
            .field("key_prefix", &inner.key_prefix)
            .field(
                "generation",
                &inner
                    .namespace
                    .as_ref()
                    .map(|namespace| namespace.snapshot().generation),
            )
            .field("timeout", &inner.timeout)
            .field("pool_size", &inner.pool_size)
            .field("max_value_size", &self.max_value_size())
            .field("get_many_fail_open", &inner.get_many_fail_open)
            .finish_non_exhaustive()
    }
}

impl MemcachedCache {
    /// Connects with the settings of `url` (see [`MemcachedCache::builder`]).
    ///
    /// # Errors
    ///
    /// As [`MemcachedCacheBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self, CacheError> {
        Self::builder(url).build().await
    }

    /// Starts a builder from a URL: `memcache://host[:port][,host[:port]...]`, with
    /// optional parameters `prefix`, `timeout`, `pool_size`, `max_value_size`,
    /// `namespace_refresh` and `get_many_fail_open` (see [`MemcachedCacheBuilder`]). A
    /// malformed URL is reported by [`build`](MemcachedCacheBuilder::build).
    pub fn builder(url: &str) -> MemcachedCacheBuilder {
        MemcachedCacheBuilder::from_url(url)
    }

    /// The servers, as `host:port`, in the order given.
    #[must_use]
    pub fn servers(&self) -> &[String] {
        &self.inner.servers
    }

    /// The key prefix, if any.
    #[must_use]
    pub fn key_prefix(&self) -> Option<&str> {
        self.inner.key_prefix.as_deref()
    }

    /// The bound on each call as a whole, and on connecting.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

#[async_trait]
impl Cache for MemcachedCache {
    /// One `mg` on the key's server.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        validate_key(key)?;
        self.in_namespace("get", Absent::Empty(None), move |generation| {
            self.get_in(generation, key)
        })
        .await
    }

    /// One `ms` on the key's server; a zero TTL is an `md` instead. The value is checked
    /// against the size limit before anything is sent.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        validate_key(key)?;
        self.check_size(&value)?;
        let expiry = expiry(ttl)?;
        if expiry == Expiry::Expired {
            return self
                .in_namespace("set", Absent::Empty(false), move |generation| {
                    self.delete_in(generation, key)
                })
                .await
                .map(drop);
        }
        let value = &value;
        self.in_namespace("set", Absent::Create, move |generation| {
            self.set_in(generation, key, value, expiry)
        })
        .await
    }

    /// One `ms` in add mode (`MA`) on the key's server, whose answer says whether it
    /// stored; an expired entry counts as absent there. TTL and key as `set`; in a prefix,
    /// the generation counter is created first as for any write. A zero TTL is `false`
    /// without a round trip.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.check_size(&value)?;
        let expiry = expiry(ttl)?;
        if expiry == Expiry::Expired {
            return Ok(false);
        }
        let value = &value;
        self.in_namespace("add", Absent::Create, move |generation| {
            self.add_in(generation, key, value, expiry)
        })
        .await
    }

    /// One `md` on the key's server: true when memcached removed a live entry.
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.in_namespace("delete", Absent::Empty(false), move |generation| {
            self.delete_in(generation, key)
        })
        .await
    }

    /// One pipelined exchange per server holding any of the keys, the servers in
    /// parallel; a key named twice is read once. Fails as a whole when any server fails,
    /// unless [`get_many_fail_open`](MemcachedCacheBuilder::get_many_fail_open) is set:
    /// then the keys of a server that is unreachable or too slow read as misses.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        validate_keys(keys.iter().copied())?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (unique, positions) = distinct(keys.iter().copied());
        let unique = &unique;
        let values = self
            .in_namespace(
                "get_many",
                Absent::Empty(vec![None; unique.len()]),
                move |generation| self.get_many_in(generation, unique),
            )
            .await?;
        if unique.len() == keys.len() {
            // No key named twice: the answers are already in the order asked.
            return Ok(values);
        }
        Ok(positions
            .into_iter()
            .map(|index| values[index].clone())
            .collect())
    }

    /// One pipelined exchange per server, the servers in parallel; for a key named twice
    /// only the last value is sent.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        validate_entries(entries, self.max_value_size())?;
        let expiry = expiry(ttl)?;
        if entries.is_empty() {
            return Ok(());
        }
        let (unique, positions) = distinct(entries.iter().map(|(key, _)| *key));
        let mut last: Vec<Option<&Bytes>> = vec![None; unique.len()];
        for (position, (_, value)) in positions.into_iter().zip(entries) {
            last[position] = Some(value);
        }
        let batch: Vec<(&str, &Bytes)> = unique
            .iter()
            .zip(last)
            .filter_map(|(key, value)| value.map(|value| (*key, value)))
            .collect();
        if expiry == Expiry::Expired {
            let keys: Vec<&str> = batch.iter().map(|(key, _)| *key).collect();
            let keys = &keys;
            return self
                .in_namespace("set_many", Absent::Empty(0), move |generation| {
                    self.delete_many_in(generation, keys)
                })
                .await
                .map(drop);
        }
        let batch = &batch;
        self.in_namespace("set_many", Absent::Create, move |generation| {
            self.set_many_in(generation, batch, expiry)
        })
        .await
    }

    /// One pipelined exchange per server, the servers in parallel; a key named twice is
    /// deleted and counted once.
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        validate_keys(keys.iter().copied())?;
        if keys.is_empty() {
            return Ok(0);
        }
        let (unique, _) = distinct(keys.iter().copied());
        let unique = &unique;
        self.in_namespace("delete_many", Absent::Empty(0), move |generation| {
            self.delete_many_in(generation, unique)
        })
        .await
    }

    /// One `mg` without the value on the key's server.
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.in_namespace("exists", Absent::Empty(false), move |generation| {
            self.exists_in(generation, key)
        })
        .await
    }

    /// With a key prefix: deletes the prefix's generation counter (the namespace reads
    /// empty at once here, within `namespace_refresh` on other instances), then lists each
    /// server's keys (`lru_crawler metadump hash`, `all` where `hash` is unknown) and
    /// deletes every entry of the prefix, in pipelined batches. A server that refuses to
    /// list keeps them until they age out.
    /// Without a prefix: **`flush_all` on every server, which removes every entry of every
    /// client of those servers.**
    async fn clear(&self) -> Result<(), CacheError> {
        match &self.inner.namespace {
            Some(namespace) => self.clear_namespace(namespace).await,
            None => self.flush_all().await,
        }
    }

    /// 1 s TTL granularity, the configured largest value, and 250 bytes less the prefix
    /// and its generation tag (22 bytes) for keys stored under their own name; `clear`,
    /// pipelined batches and `add` are native.
    fn limits(&self) -> Limits {
        Limits::new(Duration::from_secs(1), self.max_value_size())
            .with_max_native_key_len(self.inner.keys.max_native_key_len())
            .with_clear()
            .with_native_bulk()
            .with_atomic_add()
    }

    /// `memcached`.
    fn describe(&self) -> cache_api::BackendInfo {
        cache_api::BackendInfo::new("memcached")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_cheap_to_share_across_tasks() {
        fn shareable<T: Cache + Clone + Send + Sync + fmt::Debug + 'static>() {}
        shareable::<MemcachedCache>();
        fn object(cache: MemcachedCache) -> Arc<dyn Cache> {
            Arc::new(cache)
        }
        let _ = object;
    }
}
