#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod builder;
mod bulk_limit;
mod cluster;
mod command;
mod cut_short;
mod endpoint;
mod error;
mod reply;
mod sentinel;
#[cfg(feature = "serde")]
mod serde_config;
mod settings;
mod single;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
mod tls;
mod url_query;
mod wrong_port;

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use cache_api::{
    async_trait, validate_entries, validate_key, validate_value, Bytes, Cache, CacheError, Limits,
};
use redis::{Cmd, FromRedisValue};

pub use builder::{
    ConnectionModel, RedisCacheBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_VALUE_SIZE,
    DEFAULT_POOL_SIZE, DEFAULT_POOL_WAIT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, MAX_CONNECTIONS,
    REDIS_MAX_VALUE_SIZE,
};
pub use cache_api;
/// The `redis` crate this backend is built on, for [`RedisCacheBuilder::connection_info`].
pub use redis;
#[cfg(feature = "serde")]
pub use serde_config::{ConnectionMode, RedisConfig};

use cluster::ClusterBackend;
use command::{expiry, Expiry};
use endpoint::Nodes;
use error::ErrorContext;
use reply::{Count, Stored};
use sentinel::SentinelBackend;
use settings::{Mode, Settings};
use single::{Request, Single};

/// A [`Cache`] on a Redis server, or on a Redis Cluster
/// ([`cluster_builder`](Self::cluster_builder), or a `redis+cluster://` URL).
///
/// Values are stored as the raw bytes given, under the key prefix plus the key, so
/// `redis-cli GET` reads exactly what was written. Cloning is cheap: clones share the
/// connections. The cache must be used inside a Tokio runtime, the one it was built in.
///
/// ```no_run
/// // cache-redis = { git = "https://github.com/cache-contract/cache-rs" }
/// # async fn run() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_redis::{cache_api::{Bytes, Cache}, RedisCache};
///
/// let cache = RedisCache::connect("redis://127.0.0.1:6379").await?;
/// cache.set("greeting", Bytes::from("hello"), Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get("greeting").await?, Some(Bytes::from("hello")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    max_value_size: usize,
    /// The longest key the servers take, the prefix excluded (see [`bulk_limit`]).
    max_key_len: usize,
    mode: Mode,
    redacted_url: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    errors: ErrorContext,
}

/// One server, one found through sentinels, or a cluster.
enum Backend {
    Single(Single),
    Sentinel(SentinelBackend),
    Cluster(ClusterBackend),
}

impl Backend {
    /// The longest argument each server takes (see [`bulk_limit`]).
    async fn bulk_limits(&self, errors: &ErrorContext) -> Vec<Option<usize>> {
        let mut answers: [Option<redis::Value>; 2] = [None, None];
        for (query, answer) in bulk_limit::queries().iter().zip(&mut answers) {
            *answer = match self {
                Backend::Single(single) => single.send(Request::Command(query)).await,
                Backend::Sentinel(sentinel) => sentinel.send(Request::Command(query)).await,
                Backend::Cluster(cluster) => return cluster.bulk_limits(errors).await,
            }
            .ok();
        }
        vec![bulk_limit::server_limit(
            answers.each_ref().map(Option::as_ref),
        )]
    }
}

/// One server, plain or followed through sentinels: what the operations that are not
/// split per master send to.
#[derive(Clone, Copy)]
enum OneServer<'a> {
    Plain(&'a Single),
    Sentinel(&'a SentinelBackend),
}

impl OneServer<'_> {
    async fn send<T: FromRedisValue + Send>(self, request: Request<'_>) -> Result<T, CacheError> {
        match self {
            Self::Plain(single) => single.send(request).await,
            // Boxed: the default model's futures stay as small as they were.
            Self::Sentinel(sentinel) => Box::pin(sentinel.send(request)).await,
        }
    }

    async fn clear_prefix(self, prefix: &str) -> Result<(), CacheError> {
        match self {
            Self::Plain(single) => single.clear_prefix(prefix).await,
            Self::Sentinel(sentinel) => sentinel.clear_prefix(prefix).await,
        }
    }
}

impl RedisCache {
    /// Connects to the server (or cluster) at `url` with every default setting: no key
    /// prefix, one multiplexed connection, the timeouts of the crate documentation.
    ///
    /// `url` is `redis://[[user]:password@]host[:port][/database]` for one server
    /// (`rediss://` over TLS, `redis+unix:///path/to/redis.sock` on a unix socket),
    /// `redis+sentinel://[[user]:password@]host:26379[,...]/group[/database]` for the
    /// master of a Sentinel group, or
    /// `redis+cluster://[[user]:password@]host1:port1,host2:port2[,...]` for a Redis
    /// Cluster (`rediss+cluster://` over TLS; see [`cluster_builder`](Self::cluster_builder)).
    ///
    /// # Errors
    ///
    /// As [`RedisCacheBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self, CacheError> {
        Self::builder(url).build().await
    }

    /// A builder for a cache on the server at `url`, to set a key prefix, timeouts,
    /// the connection model or the value limit before connecting.
    ///
    /// A `redis+cluster://host1:port1,host2:port2` URL makes it a cluster builder, as
    /// [`cluster_builder`](Self::cluster_builder) with those hosts as seeds.
    pub fn builder(url: &str) -> RedisCacheBuilder {
        RedisCacheBuilder::new(url)
    }

    /// A builder for a cache on a Redis Cluster, reached through `seeds`: one or more
    /// `redis://[[user]:password@]host:port` URLs of its nodes (any nodes: the others
    /// are found from them). The credentials of the seeds apply to every node.
    ///
    /// Every single-key command goes to the master of its key's slot and follows
    /// `MOVED` and `ASK` redirects by itself; bulk operations are split by slot and
    /// sent as one pipeline per master; `clear` walks every master. Key prefix,
    /// timeouts and value limit work as for one server; the database is always 0, and
    /// a [`connection_model`](RedisCacheBuilder::connection_model) is refused with
    /// `CacheError::Config`.
    ///
    /// ```no_run
    /// // cache-redis = { git = "https://github.com/cache-contract/cache-rs" }
    /// # async fn run() -> Result<(), cache_api::CacheError> {
    /// use cache_redis::RedisCache;
    ///
    /// let cache = RedisCache::cluster_builder(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
    ///     .key_prefix("myapp:")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_builder<I, S>(seeds: I) -> RedisCacheBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RedisCacheBuilder::new_cluster(seeds)
    }

    /// The prefix put in front of every key (empty when there is none).
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The database number this cache works in (always 0 on a cluster).
    #[must_use]
    pub fn database(&self) -> u32 {
        match &self.inner.backend {
            // Settings only ever hold a u32.
            Backend::Single(single) => u32::try_from(single.database).unwrap_or_default(),
            Backend::Sentinel(sentinel) => u32::try_from(sentinel.database()).unwrap_or_default(),
            Backend::Cluster(_) => 0,
        }
    }

    /// Whether this cache works on a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.backend, Backend::Cluster(_))
    }

    pub(crate) async fn connect_with(settings: Settings) -> Result<Self, CacheError> {
        let Settings {
            endpoint,
            key_prefix,
            connect_timeout,
            response_timeout,
            pool_wait_timeout,
            mode,
            max_value_size,
        } = settings;
        let errors = ErrorContext {
            connect_timeout,
            response_timeout,
            pool_wait_timeout,
            secrets: endpoint.secrets.clone(),
            origin: None,
        };
        let seed = wrong_port::Seed::of(&endpoint.nodes);
        let addresses = endpoint.nodes.addresses();
        let connected = match endpoint.nodes {
            Nodes::Single(info) => Single::connect(info, mode, &errors)
                .await
                .map(Backend::Single),
            Nodes::Sentinel(target) => SentinelBackend::connect(target, mode, &errors)
                .await
                .map(Backend::Sentinel),
            Nodes::Cluster(seeds) => ClusterBackend::connect(seeds, endpoint.certificates, &errors)
                .await
                .map(Backend::Cluster),
        };
        let backend = match (connected, seed) {
            (Ok(backend), _) => backend,
            (Err(error), Some(seed)) => {
                return Err(error::naming(
                    seed.explain(error, connect_timeout).await,
                    &addresses,
                ))
            }
            (Err(error), None) => return Err(error::naming(error, &addresses)),
        };
        if let Backend::Single(single) = &backend {
            if single.is_cluster_node().await {
                return Err(CacheError::config(format!(
                    "{} is a node of a Redis Cluster: a plain connection would see every key \
                     of another node's slots refused (MOVED); use the redis+cluster:// scheme \
                     (rediss+cluster:// over TLS) with the same host and port",
                    addresses.join(", ")
                )));
            }
        }
        let bulk_limits = backend.bulk_limits(&errors).await;
        let max_value_size = bulk_limit::effective(max_value_size, bulk_limits.iter().copied());
        let max_key_len = bulk_limit::effective(REDIS_MAX_VALUE_SIZE, bulk_limits)
            .saturating_sub(key_prefix.len());
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                prefix: key_prefix,
                max_value_size,
                max_key_len,
                mode,
                redacted_url: endpoint.redacted_url,
                connect_timeout,
                response_timeout,
                errors,
            }),
        })
    }

    fn key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        if self.inner.prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            let mut full = String::with_capacity(self.inner.prefix.len() + key.len());
            full.push_str(&self.inner.prefix);
            full.push_str(key);
            Cow::Owned(full)
        }
    }

    /// `name` with every key, prefixed, as its arguments.
    fn keys_command(&self, name: &str, keys: &[&str]) -> Cmd {
        let mut command = redis::cmd(name);
        for key in keys {
            command.arg(self.key(key).as_ref());
        }
        command
    }

    /// Every key with the prefix in front.
    fn full_keys<'a>(&self, keys: &[&'a str]) -> Vec<Cow<'a, str>> {
        keys.iter().map(|key| self.key(key)).collect()
    }

    /// Refuses the empty key, and a key the server would take for a protocol error
    /// (longer than its `proto-max-bulk-len` or query buffer with the prefix), which would close the
    /// connection of every call in flight on it.
    fn check_key(&self, key: &str) -> Result<(), CacheError> {
        validate_key(key)?;
        if key.len() > self.inner.max_key_len {
            return Err(CacheError::InvalidKey {
                reason: "the key, with the key prefix, is longer than the server takes in one \
                         argument (its proto-max-bulk-len or client-query-buffer-limit)",
            });
        }
        Ok(())
    }

    fn check_keys<'k>(&self, mut keys: impl Iterator<Item = &'k str>) -> Result<(), CacheError> {
        keys.try_for_each(|key| self.check_key(key))
    }

    fn check_size(&self, value: &[u8]) -> Result<(), CacheError> {
        validate_value(value, self.inner.max_value_size)
    }

    /// The one server, or the cluster.
    fn one_server(&self) -> Result<OneServer<'_>, &ClusterBackend> {
        match &self.inner.backend {
            Backend::Single(single) => Ok(OneServer::Plain(single)),
            Backend::Sentinel(sentinel) => Ok(OneServer::Sentinel(sentinel)),
            Backend::Cluster(cluster) => Err(cluster),
        }
    }

    /// Sends one command: to the one server (see [`send`](Self::send)), or through the
    /// cluster client to the master of its key's slot.
    async fn command<T: FromRedisValue + Send>(&self, command: &Cmd) -> Result<T, CacheError> {
        match &self.inner.backend {
            Backend::Single(single) => single.send(Request::Command(command)).await,
            Backend::Sentinel(sentinel) => Box::pin(sentinel.send(Request::Command(command))).await,
            // Boxed, as the pooled path is: the cluster future would otherwise be part
            // of every call's future, which the default model then allocates and copies
            // for nothing.
            Backend::Cluster(cluster) => {
                Box::pin(cluster.command(command, &self.inner.errors)).await
            }
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    /// One `GET`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        async {
            self.check_key(key)?;
            self.command(redis::cmd("GET").arg(self.key(key).as_ref()))
                .await
        }
        .await
        .map_err(|err: CacheError| err.in_operation("get"))
    }

    /// One `SET key value` (no TTL: any previous TTL is removed), `SET key value PX ms`
    /// (the TTL rounded up to whole milliseconds), or `UNLINK key` for a zero TTL.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        async {
            self.check_key(key)?;
            self.check_size(&value)?;
            let key = self.key(key);
            let mut command = redis::cmd("SET");
            match expiry(ttl)? {
                Expiry::Now => {
                    let Count(_) = self.command(redis::cmd("UNLINK").arg(key.as_ref())).await?;
                    return Ok(());
                }
                Expiry::Never => command.arg(key.as_ref()).arg(value.as_ref()),
                Expiry::Millis(millis) => command
                    .arg(key.as_ref())
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(millis),
            };
            let Stored = self.command(&command).await?;
            Ok(())
        }
        .await
        .map_err(|err: CacheError| err.in_operation("set"))
    }

    /// One `SET key value NX` (with `PX ms` for a TTL, rounded up as `set` does); true
    /// when Redis stored it. A zero TTL is `false` without a round trip. Sent once, like
    /// every operation: after a connection dropped with the command in flight it may
    /// have been applied, so only the caller can tell whether trying again is right.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        async {
            self.check_key(key)?;
            self.check_size(&value)?;
            let millis = match expiry(ttl)? {
                Expiry::Now => return Ok(false),
                Expiry::Never => None,
                Expiry::Millis(millis) => Some(millis),
            };
            let mut command = redis::cmd("SET");
            command
                .arg(self.key(key).as_ref())
                .arg(value.as_ref())
                .arg("NX");
            if let Some(millis) = millis {
                command.arg("PX").arg(millis);
            }
            // `OK` when stored, nil when the key was there.
            let stored: Option<Stored> = self.command(&command).await?;
            Ok(stored.is_some())
        }
        .await
        .map_err(|err: CacheError| err.in_operation("add"))
    }

    /// One `UNLINK` (a `DEL` that frees the memory in the background); true when a
    /// live entry was removed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        async {
            self.check_key(key)?;
            let Count(removed) = self
                .command(redis::cmd("UNLINK").arg(self.key(key).as_ref()))
                .await?;
            Ok(removed > 0)
        }
        .await
        .map_err(|err: CacheError| err.in_operation("delete"))
    }

    /// One `MGET`; no round trip for an empty list. On a cluster: one `MGET` per slot,
    /// pipelined per master, every master at once.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        async {
            self.check_keys(keys.iter().copied())?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            match &self.inner.backend {
                Backend::Single(_) | Backend::Sentinel(_) => {
                    self.command(&self.keys_command("MGET", keys)).await
                }
                Backend::Cluster(cluster) => {
                    cluster
                        .get_many(&self.full_keys(keys), &self.inner.errors)
                        .await
                }
            }
        }
        .await
        .map_err(|err: CacheError| err.in_operation("get_many"))
    }

    /// One round trip: `MSET` without TTL, a pipeline of `SET .. PX` with one, one
    /// `UNLINK` for a zero TTL; nothing for an empty list. Every key, value and the
    /// TTL are checked before anything is sent. On a cluster: the same commands per
    /// slot, pipelined per master, every master at once.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        async {
            validate_entries(entries, self.inner.max_value_size)?;
            self.check_keys(entries.iter().map(|(key, _)| *key))?;
            let expiry = expiry(ttl)?;
            if entries.is_empty() {
                return Ok(());
            }
            let single = match self.one_server() {
                Ok(single) => single,
                Err(cluster) => {
                    let entries: Vec<(Cow<'_, str>, &Bytes)> = entries
                        .iter()
                        .map(|(key, value)| (self.key(key), value))
                        .collect();
                    return cluster
                        .set_many(&entries, &expiry, &self.inner.errors)
                        .await;
                }
            };
            match expiry {
                Expiry::Never => {
                    let mut command = redis::cmd("MSET");
                    for (key, value) in entries {
                        command.arg(self.key(key).as_ref()).arg(value.as_ref());
                    }
                    let Stored = single.send(Request::Command(&command)).await?;
                }
                Expiry::Now => {
                    let mut command = redis::cmd("UNLINK");
                    for (key, _) in entries {
                        command.arg(self.key(key).as_ref());
                    }
                    let Count(_) = single.send(Request::Command(&command)).await?;
                }
                Expiry::Millis(millis) => {
                    let mut pipeline = redis::pipe();
                    for (key, value) in entries {
                        pipeline
                            .cmd("SET")
                            .arg(self.key(key).as_ref())
                            .arg(value.as_ref())
                            .arg("PX")
                            .arg(millis);
                    }
                    let _stored: Vec<Stored> = single.send(Request::Pipeline(&pipeline)).await?;
                }
            }
            Ok(())
        }
        .await
        .map_err(|err: CacheError| err.in_operation("set_many"))
    }

    /// One `UNLINK` of every key; a key named twice counts once. No round trip for an
    /// empty list. On a cluster: one `UNLINK` per slot, pipelined per master, every
    /// master at once.
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        async {
            self.check_keys(keys.iter().copied())?;
            if keys.is_empty() {
                return Ok(0);
            }
            match &self.inner.backend {
                Backend::Single(_) | Backend::Sentinel(_) => {
                    let Count(removed) = self.command(&self.keys_command("UNLINK", keys)).await?;
                    Ok(removed)
                }
                Backend::Cluster(cluster) => {
                    cluster
                        .delete_many(&self.full_keys(keys), &self.inner.errors)
                        .await
                }
            }
        }
        .await
        .map_err(|err: CacheError| err.in_operation("delete_many"))
    }

    /// One `EXISTS`.
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        async {
            self.check_key(key)?;
            let Count(count) = self
                .command(redis::cmd("EXISTS").arg(self.key(key).as_ref()))
                .await?;
            Ok(count > 0)
        }
        .await
        .map_err(|err: CacheError| err.in_operation("exists"))
    }

    /// With a key prefix: removes the keys that start with it and nothing else
    /// (`SCAN MATCH prefix*` with the prefix's glob characters escaped, and one `UNLINK`
    /// per batch found), on a pooled connection of its own; costs one round trip per
    /// 500 keys scanned, whoever owns them. Without a prefix: `FLUSHDB ASYNC`, which
    /// empties the **whole database**, keys of other applications included. On a
    /// cluster, the same on every master (all at once).
    async fn clear(&self) -> Result<(), CacheError> {
        async {
            let single = match self.one_server() {
                Ok(single) => single,
                Err(cluster) => return cluster.clear(&self.inner.prefix, &self.inner.errors).await,
            };
            if self.inner.prefix.is_empty() {
                let Stored = single
                    .send(Request::Command(redis::cmd("FLUSHDB").arg("ASYNC")))
                    .await?;
                return Ok(());
            }
            single.clear_prefix(&self.inner.prefix).await
        }
        .await
        .map_err(|err: CacheError| err.in_operation("clear"))
    }

    /// 1 ms TTL granularity, the configured value limit, and keys stored as-is up to
    /// the server's `proto-max-bulk-len` (512 MiB by default) minus the prefix (a longer
    /// key is `InvalidKey`); `clear`, pipelined batches and `add` (`SET NX`) are
    /// native.
    fn limits(&self) -> Limits {
        Limits::new(Duration::from_millis(1), self.inner.max_value_size)
            .with_max_native_key_len(self.inner.max_key_len)
            .with_clear()
            .with_native_bulk()
            .with_atomic_add()
    }

    /// `redis`, labelled `redis-cluster` on a cluster.
    fn describe(&self) -> cache_api::BackendInfo {
        let info = cache_api::BackendInfo::new("redis");
        match self.inner.mode {
            Mode::Cluster => info.with_label("redis-cluster"),
            _ => info,
        }
    }
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mode = match inner.mode {
            Mode::Multiplexed { connections } => format!("multiplexed({connections})"),
            Mode::Pooled { max_size } => format!("pooled({max_size})"),
            Mode::Cluster => "cluster".to_owned(),
        };
        f.debug_struct("RedisCache")
            .field("url", &inner.redacted_url)
            .field("database", &self.database())
            .field("key_prefix", &inner.prefix)
            .field("mode", &mode)
            .field("max_value_size", &inner.max_value_size)
            .field("connect_timeout", &inner.connect_timeout)
            .field("response_timeout", &inner.response_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<RedisCache>();
    }
}
