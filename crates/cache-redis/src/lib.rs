#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod cluster;
mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;
mod url_query;

use std::{
    borrow::Cow,
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{
    async_trait, validate_entries, validate_key, validate_keys, validate_value, Bytes, Cache,
    CacheError, Limits,
};
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError,
};

pub use cache_api;
pub use config::{
    RedisCacheBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_VALUE_SIZE, DEFAULT_POOL_SIZE,
    DEFAULT_POOL_WAIT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, REDIS_MAX_VALUE_SIZE,
};

use cluster::ClusterBackend;
use config::{Mode, Nodes, Settings, CLEAR_POOL_SIZE};
use error::{worth_one_retry, ErrorContext};

/// The longest TTL sent to Redis, in milliseconds: half of `i64::MAX`. Redis adds the
/// TTL to its clock and refuses the command when the sum overflows an `i64`; with half
/// the range left, no server clock of this era (or the next 140 million years) can
/// make it overflow.
const MAX_TTL_MILLIS: u64 = (i64::MAX / 2) as u64;

/// Keys asked for per `SCAN` round trip of a prefix `clear`.
const SCAN_COUNT: usize = 500;

/// A [`Cache`] on a Redis server, or on a Redis Cluster
/// ([`cluster_builder`](Self::cluster_builder), or a `redis+cluster://` URL).
///
/// Values are stored as the raw bytes given, under the key prefix plus the key, so
/// `redis-cli GET` reads exactly what was written. Cloning is cheap: clones share the
/// connections. The cache must be used inside a Tokio runtime, the one it was built in.
///
/// ```no_run
/// // cache-redis = "0.1"
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
    mode: Mode,
    redacted_url: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    errors: ErrorContext,
}

/// One server, or a cluster.
enum Backend {
    Single(Single),
    Cluster(ClusterBackend),
}

/// One server: the hot path, and the pool that serves `clear`.
struct Single {
    hot: HotPath,
    /// Serves `clear` in both modes, and every operation in pooled mode.
    pool: deadpool_redis::Pool,
    database: i64,
}

enum HotPath {
    /// Multiplexed connections that reconnect by themselves, used round robin.
    Multiplexed {
        connections: Vec<Managed>,
        next: AtomicUsize,
    },
    /// Every operation checks a connection out of the pool.
    Pooled,
}

/// One multiplexed connection, and whether it may be reconnecting.
struct Managed {
    connection: ConnectionManager,
    /// Set when an operation saw the connection dropped or refused (the manager then
    /// reconnects in the background), cleared by the next success. Both of the
    /// manager's timeouts surface as the same I/O error; this tells them apart.
    reconnecting: AtomicBool,
}

/// What one operation sends: a single command or a pipeline (one round trip either way).
#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
    /// A command whose answer changes when it is applied twice (`SET NX`): sent once
    /// more only when the connection was refused, which proves it was never sent.
    Unrepeatable(&'a Cmd),
}

impl Request<'_> {
    async fn send<T: FromRedisValue, C: ConnectionLike + Send>(
        self,
        connection: &mut C,
    ) -> Result<T, RedisError> {
        match self {
            Request::Command(command) | Request::Unrepeatable(command) => {
                command.query_async(connection).await
            }
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
        }
    }

    /// Whether the request may be sent once more after failing with `err`.
    fn worth_one_retry(self, err: &RedisError) -> bool {
        match self {
            Request::Command(_) | Request::Pipeline(_) => worth_one_retry(err),
            // A dropped connection may have carried it to the server before dropping.
            Request::Unrepeatable(_) => !err.is_timeout() && err.is_connection_refusal(),
        }
    }
}

/// Why one attempt failed: a redis error (which may be worth a retry), or an error
/// already mapped (a pool checkout or an overall deadline).
enum Failure {
    Redis(RedisError),
    Mapped(CacheError),
}

impl Failure {
    fn into_cache_error(self, errors: &ErrorContext) -> CacheError {
        match self {
            Failure::Redis(err) => errors.map(err, false),
            Failure::Mapped(err) => err,
        }
    }

    fn worth_one_retry(&self) -> bool {
        matches!(self, Failure::Redis(err) if worth_one_retry(err))
    }
}

/// What a TTL becomes in Redis.
enum Expiry {
    /// Plain `SET`: no TTL, and any previous one is removed.
    Never,
    /// A zero TTL: the entry is already gone, so the key is removed.
    Now,
    /// `SET .. PX`.
    Millis(u64),
}

fn expiry(ttl: Option<Duration>) -> Result<Expiry, CacheError> {
    let Some(ttl) = ttl else {
        return Ok(Expiry::Never);
    };
    if ttl.is_zero() {
        return Ok(Expiry::Now);
    }
    // Rounded up, so that 1 ns is 1 ms and never 0 (which Redis refuses).
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    match u64::try_from(millis) {
        Ok(millis) if millis <= MAX_TTL_MILLIS => Ok(Expiry::Millis(millis)),
        _ => Err(CacheError::InvalidTtl {
            ttl,
            reason: "longer than redis can represent (at most i64::MAX / 2 milliseconds, about 146 million years)",
        }),
    }
}

/// `SCAN cursor MATCH pattern COUNT 500`: one round of walking the keys under a prefix.
pub(crate) fn scan_command(cursor: u64, pattern: &str) -> Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    scan
}

/// Escapes the glob characters of `SCAN MATCH` so that a prefix matches only itself.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl RedisCache {
    /// Connects to the server (or cluster) at `url` with every default setting: no key
    /// prefix, one multiplexed connection, the timeouts of the crate documentation.
    ///
    /// `url` is `redis://[[user]:password@]host[:port][/database]` for one server, or
    /// `redis+cluster://[[user]:password@]host1:port1,host2:port2[,...]` for a Redis
    /// Cluster (see [`cluster_builder`](Self::cluster_builder)).
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
    /// [`connections`](RedisCacheBuilder::connections) or
    /// [`pooled`](RedisCacheBuilder::pooled) are refused with `CacheError::Config`.
    ///
    /// ```no_run
    /// // cache-redis = "0.1"
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
        };
        let backend = match endpoint.nodes {
            Nodes::Single(info) => {
                Backend::Single(Self::connect_single(info, mode, &errors).await?)
            }
            Nodes::Cluster(seeds) => {
                Backend::Cluster(ClusterBackend::connect(seeds, &errors).await?)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                prefix: key_prefix,
                max_value_size,
                mode,
                redacted_url: endpoint.redacted_url,
                connect_timeout,
                response_timeout,
                errors,
            }),
        })
    }

    async fn connect_single(
        info: redis::ConnectionInfo,
        mode: Mode,
        errors: &ErrorContext,
    ) -> Result<Single, CacheError> {
        let ErrorContext {
            connect_timeout,
            response_timeout,
            pool_wait_timeout,
            ..
        } = *errors;
        let config_error = |err: RedisError| {
            CacheError::config(config::scrub(
                &format!("invalid redis settings: {err}"),
                &errors.secrets,
            ))
        };

        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let pool_size = match mode {
            Mode::Pooled { max_size } => max_size,
            Mode::Multiplexed { .. } | Mode::Cluster => CLEAR_POOL_SIZE,
        };
        let database = info.redis_settings().db();
        let manager = deadpool_redis::Manager::new_with_config(info.clone(), connection_config)
            .map_err(config_error)?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(pool_wait_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(response_timeout))
            .build()
            .map_err(|err| {
                CacheError::config(format!("cannot build the connection pool: {err}"))
            })?;

        let hot = match mode {
            Mode::Pooled { .. } => {
                let mut connection = pool.get().await.map_err(|err| match err {
                    deadpool_redis::PoolError::Backend(err) => errors.map_connect(err, database),
                    other => errors.map_pool(other),
                })?;
                redis::cmd("PING")
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|err| errors.map_connect(err, database))?;
                HotPath::Pooled
            }
            Mode::Multiplexed { connections: count } => {
                // No retries inside the manager: a failed reconnect surfaces at once
                // as an error of the operation that waited for it, and the next
                // operation starts a new attempt. That keeps every operation within
                // its timeouts while the server is away.
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(0);
                let mut connections = Vec::with_capacity(count);
                for _ in 0..count {
                    let client = redis::Client::open(info.clone()).map_err(config_error)?;
                    let connecting =
                        ConnectionManager::new_with_config(client, manager_config.clone());
                    let mut connection = tokio::time::timeout(connect_timeout, connecting)
                        .await
                        .map_err(|_| errors.timeout("connect", connect_timeout))?
                        .map_err(|err| errors.map_connect(err, database))?;
                    redis::cmd("PING")
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(|err| errors.map_connect(err, database))?;
                    connections.push(Managed {
                        connection,
                        reconnecting: AtomicBool::new(false),
                    });
                }
                HotPath::Multiplexed {
                    connections,
                    next: AtomicUsize::new(0),
                }
            }
            Mode::Cluster => unreachable!("a cluster has no single-server hot path"),
        };
        Ok(Single {
            hot,
            pool,
            database,
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

    fn check_size(&self, value: &[u8]) -> Result<(), CacheError> {
        validate_value(value, self.inner.max_value_size)
    }

    /// Sends one command: to the one server (see [`send`](Self::send)), or through the
    /// cluster client to the master of its key's slot.
    async fn command<T: FromRedisValue + Send>(&self, command: &Cmd) -> Result<T, CacheError> {
        match &self.inner.backend {
            Backend::Single(single) => self.send(single, Request::Command(command)).await,
            // Boxed, here and for the pooled mode below: the futures of the other modes
            // would otherwise be part of every call's future, which the default mode
            // then allocates and copies for nothing.
            Backend::Cluster(cluster) => {
                Box::pin(cluster.command(command, &self.inner.errors)).await
            }
        }
    }

    /// Sends `request` to the one server, on the hot path of its mode.
    async fn send<T: FromRedisValue + Send>(
        &self,
        single: &Single,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        match &single.hot {
            HotPath::Multiplexed { connections, next } => {
                self.send_multiplexed(connections, next, request).await
            }
            HotPath::Pooled => Box::pin(self.send_pooled(single, request)).await,
        }
    }

    /// Sends `request` on the next multiplexed connection, once more if the connection
    /// was dropped or refused (every operation of the contract is idempotent). The
    /// retry goes to the same connection, whose reconnect the failure has started.
    ///
    /// No timer of its own: the connection bounds the wait for a reconnect by the
    /// connect timeout (one attempt, no retries inside the manager) and the answer by
    /// the response timeout, so an operation fails within the two.
    async fn send_multiplexed<T: FromRedisValue + Send>(
        &self,
        connections: &[Managed],
        next: &AtomicUsize,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        let managed = match connections {
            [only] => only,
            _ => &connections[next.fetch_add(1, Ordering::Relaxed) % connections.len()],
        };
        let mut connection = managed.connection.clone();
        let started = Instant::now();
        let mut result = request.send(&mut connection).await;
        if matches!(&result, Err(err) if request.worth_one_retry(err)) {
            managed.reconnecting.store(true, Ordering::Relaxed);
            result = request.send(&mut connection).await;
        }
        match result {
            Ok(value) => {
                if managed.reconnecting.load(Ordering::Relaxed) {
                    managed.reconnecting.store(false, Ordering::Relaxed);
                }
                Ok(value)
            }
            Err(err) => {
                if worth_one_retry(&err) {
                    managed.reconnecting.store(true, Ordering::Relaxed);
                }
                let connecting = err.is_timeout()
                    && self.timed_out_connecting(started.elapsed(), &managed.reconnecting);
                Err(self.inner.errors.map(err, connecting))
            }
        }
    }

    /// Which of the manager's two timers ran out, from how long the operation took: a
    /// response timeout cannot fire before the response timeout has passed, nor a
    /// connect timeout before the connect timeout; past both, only a connection known
    /// to be reconnecting was waiting for a connect.
    fn timed_out_connecting(&self, elapsed: Duration, reconnecting: &AtomicBool) -> bool {
        if elapsed < self.inner.response_timeout {
            true
        } else if elapsed < self.inner.connect_timeout {
            false
        } else {
            reconnecting.load(Ordering::Relaxed)
        }
    }

    /// Sends `request` on a pooled connection, once more on a fresh one if the
    /// connection was dropped or refused.
    async fn send_pooled<T: FromRedisValue + Send>(
        &self,
        single: &Single,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        let result = match self.attempt_pooled(single, request).await {
            Err(Failure::Redis(err)) if request.worth_one_retry(&err) => {
                self.attempt_pooled(single, request).await
            }
            other => other,
        };
        result.map_err(|failure| failure.into_cache_error(&self.inner.errors))
    }

    async fn attempt_pooled<T: FromRedisValue + Send>(
        &self,
        single: &Single,
        request: Request<'_>,
    ) -> Result<T, Failure> {
        let errors = &self.inner.errors;
        let mut connection = single
            .pool
            .get()
            .await
            .map_err(|err| Failure::Mapped(errors.map_pool(err)))?;
        let result = request.send(&mut connection).await;
        if let Err(err) = &result {
            if err.is_io_error() {
                // Never hand a connection that failed on I/O (or timed out with an
                // answer still owed) to the next caller.
                drop(deadpool_redis::Connection::take(connection));
            }
        }
        result.map_err(Failure::Redis)
    }

    async fn clear_prefix(&self, single: &Single) -> Result<(), Failure> {
        let errors = &self.inner.errors;
        let mut connection = single
            .pool
            .get()
            .await
            .map_err(|err| Failure::Mapped(errors.map_pool(err)))?;
        let pattern = format!("{}*", escape_glob(&self.inner.prefix));
        let result: Result<(), RedisError> = async {
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = scan_command(cursor, &pattern)
                    .query_async(&mut connection)
                    .await?;
                if !keys.is_empty() {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut connection)
                        .await?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        }
        .await;
        if let Err(err) = &result {
            if err.is_io_error() {
                drop(deadpool_redis::Connection::take(connection));
            }
        }
        result.map_err(Failure::Redis)
    }
}

#[async_trait]
impl Cache for RedisCache {
    /// One `GET`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        async {
            validate_key(key)?;
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
            validate_key(key)?;
            self.check_size(&value)?;
            let key = self.key(key);
            let mut command;
            match expiry(ttl)? {
                Expiry::Now => {
                    command = redis::cmd("UNLINK");
                    command.arg(key.as_ref());
                }
                Expiry::Never => {
                    command = redis::cmd("SET");
                    command.arg(key.as_ref()).arg(value.as_ref());
                }
                Expiry::Millis(millis) => {
                    command = redis::cmd("SET");
                    command
                        .arg(key.as_ref())
                        .arg(value.as_ref())
                        .arg("PX")
                        .arg(millis);
                }
            }
            self.command(&command).await
        }
        .await
        .map_err(|err: CacheError| err.in_operation("set"))
    }

    /// One `SET key value NX` (with `PX ms` for a TTL, rounded up as `set` does); true
    /// when Redis stored it. A zero TTL is `false` without a round trip. Sent once more
    /// only when the connection was refused: after a connection dropped with the command
    /// in flight it may have been applied, and a second `SET NX` would answer `false`.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        async {
            validate_key(key)?;
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
            let stored: Option<String> = match &self.inner.backend {
                Backend::Single(single) => {
                    self.send(single, Request::Unrepeatable(&command)).await?
                }
                Backend::Cluster(cluster) => {
                    Box::pin(cluster.command(&command, &self.inner.errors)).await?
                }
            };
            Ok(stored.is_some())
        }
        .await
        .map_err(|err: CacheError| err.in_operation("add"))
    }

    /// One `UNLINK` (a `DEL` that frees the memory in the background); true when a
    /// live entry was removed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        async {
            validate_key(key)?;
            let removed: usize = self
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
            validate_keys(keys.iter().copied())?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            match &self.inner.backend {
                Backend::Single(single) => {
                    let command = self.keys_command("MGET", keys);
                    self.send(single, Request::Command(&command)).await
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
            let expiry = expiry(ttl)?;
            if entries.is_empty() {
                return Ok(());
            }
            let single = match &self.inner.backend {
                Backend::Single(single) => single,
                Backend::Cluster(cluster) => {
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
                    self.send(single, Request::Command(&command)).await
                }
                Expiry::Now => {
                    let mut command = redis::cmd("UNLINK");
                    for (key, _) in entries {
                        command.arg(self.key(key).as_ref());
                    }
                    self.send(single, Request::Command(&command)).await
                }
                Expiry::Millis(millis) => {
                    let mut pipeline = redis::pipe();
                    for (key, value) in entries {
                        pipeline
                            .cmd("SET")
                            .arg(self.key(key).as_ref())
                            .arg(value.as_ref())
                            .arg("PX")
                            .arg(millis)
                            .ignore();
                    }
                    self.send(single, Request::Pipeline(&pipeline)).await
                }
            }
        }
        .await
        .map_err(|err: CacheError| err.in_operation("set_many"))
    }

    /// One `UNLINK` of every key; a key named twice counts once. No round trip for an
    /// empty list. On a cluster: one `UNLINK` per slot, pipelined per master, every
    /// master at once.
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        async {
            validate_keys(keys.iter().copied())?;
            if keys.is_empty() {
                return Ok(0);
            }
            match &self.inner.backend {
                Backend::Single(single) => {
                    let command = self.keys_command("UNLINK", keys);
                    self.send(single, Request::Command(&command)).await
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
            validate_key(key)?;
            let count: usize = self
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
            let single = match &self.inner.backend {
                Backend::Single(single) => single,
                Backend::Cluster(cluster) => {
                    return cluster.clear(&self.inner.prefix, &self.inner.errors).await
                }
            };
            if self.inner.prefix.is_empty() {
                return self
                    .send(single, Request::Command(redis::cmd("FLUSHDB").arg("ASYNC")))
                    .await;
            }
            let result = match self.clear_prefix(single).await {
                Err(failure) if failure.worth_one_retry() => self.clear_prefix(single).await,
                other => other,
            };
            result.map_err(|failure| failure.into_cache_error(&self.inner.errors))
        }
        .await
        .map_err(|err: CacheError| err.in_operation("clear"))
    }

    /// 1 ms TTL granularity, the configured value limit, and keys stored as-is up to
    /// 512 MiB minus the prefix; `clear`, pipelined batches and `add` (`SET NX`) are
    /// native.
    fn limits(&self) -> Limits {
        Limits::new(Duration::from_millis(1), self.inner.max_value_size)
            .with_max_native_key_len(REDIS_MAX_VALUE_SIZE - self.inner.prefix.len())
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
    fn ttls_round_up_to_milliseconds() {
        assert!(matches!(expiry(None), Ok(Expiry::Never)));
        assert!(matches!(expiry(Some(Duration::ZERO)), Ok(Expiry::Now)));
        assert!(matches!(
            expiry(Some(Duration::from_nanos(1))),
            Ok(Expiry::Millis(1))
        ));
        assert!(matches!(
            expiry(Some(Duration::from_micros(1_500))),
            Ok(Expiry::Millis(2))
        ));
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        assert!(matches!(expiry(Some(ten_years)), Ok(Expiry::Millis(ms)) if ms == 315_360_000_000));
        assert!(matches!(
            expiry(Some(Duration::from_millis(MAX_TTL_MILLIS))),
            Ok(Expiry::Millis(MAX_TTL_MILLIS))
        ));
        for too_long in [Duration::from_millis(MAX_TTL_MILLIS + 1), Duration::MAX] {
            assert!(matches!(
                expiry(Some(too_long)),
                Err(CacheError::InvalidTtl { .. })
            ));
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?c[d]e\\f:"), "a\\*b\\?c\\[d\\]e\\\\f:");
        assert_eq!(escape_glob("plain:"), "plain:");
    }

    #[test]
    fn the_cache_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<RedisCache>();
    }
}
