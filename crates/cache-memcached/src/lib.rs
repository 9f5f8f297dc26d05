#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod admin;
mod config;
mod error;
mod keys;
mod namespace;
mod router;
#[cfg(feature = "testing")]
pub mod testing;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cache_api::{
    async_trait, validate_entries, validate_key, validate_keys, validate_value, Bytes, Cache,
    CacheError, Limits,
};
use memcache::exp::{
    AsyncMetaClient, Delete, Error as ClientError, Get, GetResult, MutationStatus, Router, Set,
};

pub use config::{
    MemcachedCacheBuilder, DEFAULT_MAX_VALUE_SIZE, DEFAULT_NAMESPACE_REFRESH, DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT,
};
use error::{unexpected, Context, BACKEND};
use keys::KeySpace;
use namespace::{fresh_generation, now_micros, Namespace, Snapshot};

/// The server keys a cache wrote, kept for a test fixture that removes them afterwards.
pub(crate) type Journal = Arc<Mutex<HashSet<Vec<u8>>>>;

/// Longest TTL memcached takes as a number of seconds; above it, a number is a Unix time.
const MAX_RELATIVE_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// How many timeouts a `clear` waits for memcached's crawler while another listing runs.
const CRAWLER_BUSY_TIMEOUTS: u32 = 10;

/// memcached parses an expiry as a signed 32-bit number: its last second is 2038-01-19.
const MAX_EXPIRY: u64 = i32::MAX as u64;

/// A [`Cache`] on one or several memcached servers, over the meta protocol of
/// `memcache::exp`.
///
/// Cheap to clone: clones share the connection pools and the namespace state. See the
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
    client: AsyncMetaClient,
    servers: Vec<String>,
    key_prefix: Option<String>,
    keys: KeySpace,
    namespace: Option<Namespace>,
    timeout: Duration,
    pool_size: usize,
    max_value_size: usize,
    get_many_fail_open: bool,
    journal: Option<Journal>,
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
            .field("max_value_size", &inner.max_value_size)
            .field("get_many_fail_open", &inner.get_many_fail_open)
            .finish_non_exhaustive()
    }
}

/// When an entry expires, in memcached's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No `T` flag: never (an earlier TTL is dropped).
    Never,
    /// The `T` value: seconds from now up to 30 days, a Unix time beyond.
    At(u32),
    /// A zero TTL: the entry is removed, nothing is stored.
    Expired,
}

fn expiry(ttl: Option<Duration>) -> Result<Expiry, CacheError> {
    let Some(ttl) = ttl else {
        return Ok(Expiry::Never);
    };
    if ttl.is_zero() {
        return Ok(Expiry::Expired);
    }
    let too_far = || CacheError::InvalidTtl {
        ttl,
        reason: "memcached cannot expire an entry after 2038-01-19",
    };
    // Rounded up: 300 ms is 1 s, never 0, which memcached reads as "never expires".
    let seconds = ttl
        .as_secs()
        .checked_add(u64::from(ttl.subsec_nanos() > 0))
        .ok_or_else(too_far)?;
    if seconds <= MAX_RELATIVE_TTL_SECS {
        return u32::try_from(seconds)
            .map(Expiry::At)
            .map_err(|_| too_far());
    }
    // memcached reads more than 30 days as a Unix time, so long TTLs are sent as one.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CacheError::InvalidTtl {
            ttl,
            reason: "the system clock is before 1970",
        })?
        .as_secs();
    match now.checked_add(seconds) {
        Some(at) if at <= MAX_EXPIRY => u32::try_from(at).map(Expiry::At).map_err(|_| too_far()),
        _ => Err(too_far()),
    }
}

/// Awaits a call of the client within the timeout, mapping its error.
async fn call<T>(
    context: Context,
    future: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(context.timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(context.map(error)),
        Err(_) => Err(context.timeout()),
    }
}

/// A `mg` of `key`, which it takes over (`Get::new` would copy it).
fn get_of(key: Vec<u8>) -> Get {
    let mut get = Get::new([]);
    get.key = key;
    get
}

/// A `md` of `key`, which it takes over.
fn delete_of(key: Vec<u8>) -> Delete {
    let mut delete = Delete::new([]);
    delete.key = key;
    delete
}

fn hit_value(result: GetResult) -> Option<Bytes> {
    result
        .hit()
        .then(|| Bytes::from(result.value.unwrap_or_default()))
}

/// The generation counter of a prefix, as found on the server.
enum Counter {
    Missing,
    Value(u64),
    /// Something that is no number: overwritten by another client.
    Garbage,
}

async fn read_counter(
    client: &AsyncMetaClient,
    key: &[u8],
    context: Context,
) -> Result<Counter, CacheError> {
    let result = call(context, client.run(Get::new(key))).await?;
    if !result.hit() {
        return Ok(Counter::Missing);
    }
    let value = result.value.unwrap_or_default();
    Ok(std::str::from_utf8(&value)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map_or(Counter::Garbage, Counter::Value))
}

/// Creates a missing generation counter with `fresh`: `Some(fresh)` when this call created
/// it, `None` when another instance did first (read or increment theirs instead).
async fn create_counter(
    client: &AsyncMetaClient,
    key: &[u8],
    fresh: u64,
    context: Context,
) -> Result<Option<u64>, CacheError> {
    let added = call(context, client.run(Set::new(key, fresh.to_string()).add())).await?;
    match added.status {
        MutationStatus::Applied => Ok(Some(fresh)),
        MutationStatus::AlreadyExists => Ok(None),
        other => Err(unexpected(format!(
            "creating the generation counter: {other:?}"
        ))),
    }
}

/// The generation of a prefix as the server holds it: `None` when the counter is absent,
/// or garbled (then the next write replaces it). Never writes.
async fn read_generation(
    client: &AsyncMetaClient,
    key: &[u8],
    context: Context,
) -> Result<Option<u64>, CacheError> {
    Ok(match read_counter(client, key, context).await? {
        Counter::Value(generation) => Some(generation),
        Counter::Missing | Counter::Garbage => None,
    })
}

/// What an operation does in a namespace whose generation counter is absent.
enum Absent<T> {
    /// A read (or a delete): nothing is reachable, so this is the answer once the counter
    /// is confirmed absent; nothing is written.
    Empty(T),
    /// A write: the counter is created first.
    Create,
}

/// The per-item overhead subtracted from a server's item size to get the largest value it
/// stores whatever the key (see [`DEFAULT_MAX_VALUE_SIZE`]).
const ITEM_OVERHEAD: usize = (1 << 20) - DEFAULT_MAX_VALUE_SIZE;

/// The generation tag of a data key of `prefix`: the digits between `{` and `}` right
/// after the prefix. `None` for any other key, the counter `<prefix>{gen}` included.
fn generation_of(prefix: &[u8], server_key: &[u8]) -> Option<u64> {
    let rest = server_key.strip_prefix(prefix)?.strip_prefix(b"{")?;
    let end = rest.iter().position(|&byte| byte == b'}')?;
    let digits = &rest[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The largest value every server stores: the configured limit, lowered to the smallest
/// server's item size (`item_size_max` of `stats settings`) less [`ITEM_OVERHEAD`]. Asks
/// every server at once.
///
/// # Errors
///
/// `Config` when a server does not answer as memcached; `Unreachable` or `Timeout` when
/// one does not answer at all.
async fn effective_value_limit(
    servers: &[String],
    configured: usize,
    context: Context,
) -> Result<usize, CacheError> {
    let asks = servers.iter().map(|server| async move {
        let mut admin = admin::Admin::connect(server, context).await?;
        admin.item_size_max().await
    });
    let mut limit = configured;
    for item_size in futures::future::join_all(asks).await {
        if let Some(item_size) = item_size? {
            limit = limit.min(item_size.saturating_sub(ITEM_OVERHEAD).max(1));
        }
    }
    Ok(limit)
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

    async fn from_builder(builder: MemcachedCacheBuilder) -> Result<Self, CacheError> {
        let servers = builder.checked_servers()?.to_vec();
        let prefix = builder.checked_prefix()?.map(str::to_owned);
        if builder.timeout.is_zero() {
            return Err(CacheError::config("the timeout must be longer than zero"));
        }
        if builder.pool_size == 0 {
            return Err(CacheError::config("the pool size must be at least 1"));
        }
        if builder.max_value_size == 0 {
            return Err(CacheError::config(
                "the largest value size must be at least 1 byte",
            ));
        }
        let timeout = builder.timeout;
        let connect = Context {
            operation: "connect",
            timeout,
            value: None,
        };
        // Before the meta client: a server that is no memcached (a Redis port) is told so
        // here in plain words, not by a parse error of the meta protocol.
        let max_value_size =
            effective_value_limit(&servers, builder.max_value_size, connect).await?;
        let client = call(
            connect,
            AsyncMetaClient::builder()
                .router(router::StableRendezvous)
                .connect_timeout(Some(timeout))
                // No I/O timeout inside the client: every call is bounded as a whole by
                // `call`, and a second timer per exchange would only cost time. An
                // exchange cut short there drops its connection, never reuses it.
                .io_timeout(None)
                .max_idle(builder.pool_size)
                .max_connections(Some(builder.pool_size))
                .connect_multiple_async(servers.iter().map(String::as_str)),
        )
        .await?;
        // Connections are dialled lazily: a no-op on every server finds a dead address now.
        let every_server = Context {
            timeout: timeout.saturating_mul(u32::try_from(servers.len()).unwrap_or(u32::MAX)),
            ..connect
        };
        call(every_server, client.noop()).await?;

        let keys = KeySpace::new(prefix.as_deref());
        let namespace = match keys.generation_key() {
            None => None,
            Some(key) => {
                // Only read: a cache that is built and read from writes nothing.
                let generation = read_generation(&client, &key, connect).await?;
                Some(Namespace::new(key, generation, builder.namespace_refresh))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                servers,
                key_prefix: prefix,
                keys,
                namespace,
                timeout,
                pool_size: builder.pool_size,
                max_value_size,
                get_many_fail_open: builder.get_many_fail_open,
                journal: builder.journal,
            }),
        })
    }

    fn context(&self, operation: &'static str) -> Context {
        Context {
            operation,
            timeout: self.inner.timeout,
            value: None,
        }
    }

    fn value_context(&self, operation: &'static str, size: usize) -> Context {
        Context {
            value: Some((size, self.inner.max_value_size)),
            ..self.context(operation)
        }
    }

    fn check_size(&self, value: &Bytes) -> Result<(), CacheError> {
        validate_value(value, self.inner.max_value_size)
    }

    fn record(&self, server_key: &[u8]) {
        if let Some(journal) = &self.inner.journal {
            journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(server_key.to_vec());
        }
    }

    /// Runs `run` in the current generation of the prefix (`None` without a prefix). When
    /// the counter is absent, `absent` says what to do. When a check of the generation is
    /// due it runs alongside, and `run` is repeated once in the new generation if the
    /// number moved or vanished.
    async fn in_namespace<T, F, Fut>(&self, absent: Absent<T>, run: F) -> Result<T, CacheError>
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let Some(namespace) = &self.inner.namespace else {
            return run(None).await;
        };
        let seen = namespace.snapshot();
        if !namespace.claim_check() {
            return self
                .run_in(namespace, seen.generation, &absent, &run)
                .await
                .1;
        }
        // Boxed: a check is due once per refresh interval, and its state would otherwise
        // make every operation's future several times larger.
        Box::pin(self.run_with_check(namespace, seen, absent, run)).await
    }

    /// Runs `run` in `generation`, or does what `absent` says when there is none. Returns
    /// the generation used with the result.
    async fn run_in<T, F, Fut>(
        &self,
        namespace: &Namespace,
        generation: Option<u64>,
        absent: &Absent<T>,
        run: &F,
    ) -> (Option<u64>, Result<T, CacheError>)
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let generation = match (generation, absent) {
            (Some(generation), _) => generation,
            // Looked up every time while absent: the read costs the round trip a data
            // read would, and another instance's first write is seen at once.
            (None, Absent::Empty(empty)) => {
                let before = namespace.snapshot();
                let found = read_generation(
                    &self.inner.client,
                    &namespace.key,
                    self.context("generation check"),
                )
                .await;
                match found
                    .map(|found| found.and_then(|found| namespace.adopt(before, Some(found))))
                {
                    Err(error) => return (None, Err(error)),
                    Ok(None) => return (None, Ok(empty.clone())),
                    Ok(Some(generation)) => generation,
                }
            }
            (None, Absent::Create) => match self.create_generation(namespace).await {
                Ok(generation) => generation,
                Err(error) => return (None, Err(error)),
            },
        };
        (Some(generation), run(Some(generation)).await)
    }

    async fn run_with_check<T, F, Fut>(
        &self,
        namespace: &Namespace,
        seen: Snapshot,
        absent: Absent<T>,
        run: F,
    ) -> Result<T, CacheError>
    where
        T: Clone,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let (latest, (used, result)) = tokio::join!(
            self.check_generation(namespace, seen),
            self.run_in(namespace, seen.generation, &absent, &run)
        );
        match latest {
            Some(latest) if latest != used => self.run_in(namespace, latest, &absent, &run).await.1,
            _ => result,
        }
    }

    /// The generation to use from now on (`Some(None)`: the counter is absent), or `None`
    /// when the server could not tell (the known one stays in use, so keys on other
    /// servers keep working).
    async fn check_generation(&self, namespace: &Namespace, seen: Snapshot) -> Option<Option<u64>> {
        let context = self.context("generation check");
        match read_generation(&self.inner.client, &namespace.key, context).await {
            Ok(generation) => Some(namespace.adopt(seen, generation)),
            Err(error) => {
                tracing::warn!(%error, "memcached: could not check the generation of the key prefix, keeping the known one");
                None
            }
        }
    }

    /// Creates the absent generation counter (memcached `add`: of racing instances one
    /// creates it, the others read its number), above every generation this instance knew.
    async fn create_generation(&self, namespace: &Namespace) -> Result<u64, CacheError> {
        let context = self.context("generation create");
        let client = &self.inner.client;
        let key = &namespace.key;
        for _ in 0..3 {
            let known = namespace.snapshot().highest;
            let fresh = fresh_generation(known);
            self.record(key);
            if let Some(created) = create_counter(client, key, fresh, context).await? {
                namespace.set(Some(created), created);
                return Ok(created);
            }
            match read_counter(client, key, context).await? {
                Counter::Value(theirs) => {
                    namespace.set(Some(theirs), theirs);
                    return Ok(theirs);
                }
                // Deleted again in between (a `clear`): try once more.
                Counter::Missing => {}
                // Overwritten by another client with something that is no number.
                Counter::Garbage => {
                    call(context, client.run(Set::new(key, fresh.to_string()))).await?;
                    namespace.set(Some(fresh), fresh);
                    return Ok(fresh);
                }
            }
        }
        Err(unexpected(
            "the generation counter kept changing while it was created",
        ))
    }

    async fn get_in(
        &self,
        generation: Option<u64>,
        key: &str,
    ) -> Result<Option<Bytes>, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let result = call(
            self.context("get"),
            self.inner.client.run(get_of(server_key)),
        )
        .await?;
        Ok(hit_value(result))
    }

    async fn exists_in(&self, generation: Option<u64>, key: &str) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let probe = get_of(server_key).without_value();
        Ok(call(self.context("exists"), self.inner.client.run(probe))
            .await?
            .hit())
    }

    fn set_operation(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Set {
        let server_key = self.inner.keys.server_key(generation, key);
        self.record(&server_key);
        let mut set = Set::new([], []);
        set.key = server_key;
        set.value = value.to_vec();
        match expiry {
            Expiry::At(at) => set.ttl_raw(at),
            Expiry::Never | Expiry::Expired => set,
        }
    }

    async fn set_in(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Result<(), CacheError> {
        let set = self.set_operation(generation, key, value, expiry);
        let context = self.value_context("set", value.len());
        let result = call(context, self.inner.client.run(set)).await?;
        stored(result.status)
    }

    async fn add_in(
        &self,
        generation: Option<u64>,
        key: &str,
        value: &Bytes,
        expiry: Expiry,
    ) -> Result<bool, CacheError> {
        let add = self.set_operation(generation, key, value, expiry).add();
        let context = self.value_context("add", value.len());
        let result = call(context, self.inner.client.run(add)).await?;
        added(result.status)
    }

    async fn delete_in(&self, generation: Option<u64>, key: &str) -> Result<bool, CacheError> {
        let server_key = self.inner.keys.server_key(generation, key);
        let result = call(
            self.context("delete"),
            self.inner.client.run(delete_of(server_key)),
        )
        .await?;
        removed(result.status)
    }

    async fn get_many_in(
        &self,
        generation: Option<u64>,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let context = self.context("get_many");
        let server_keys: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| self.inner.keys.server_key(generation, key))
            .collect();
        if self.inner.get_many_fail_open {
            return self.get_many_fail_open(&server_keys, context).await;
        }
        // One pipelined exchange per server, the servers in parallel.
        let results = call(
            context,
            self.inner
                .client
                .run_many(server_keys.into_iter().map(get_of)),
        )
        .await?;
        results
            .into_iter()
            .map(|result| result.map(hit_value).map_err(|error| context.map(error)))
            .collect()
    }

    /// `get_many` where a server that is unreachable or too slow costs only its own keys,
    /// read as misses. Each server's part is a batch of its own under its own timeout: one
    /// timeout over the whole batch would let a hung server throw away the answers of the
    /// others.
    async fn get_many_fail_open(
        &self,
        server_keys: &[Vec<u8>],
        context: Context,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let servers = &self.inner.servers;
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); servers.len()];
        for (position, key) in server_keys.iter().enumerate() {
            // The client clamps a route the same way, so both agree on the server.
            let server = router::StableRendezvous
                .route(key, servers)
                .min(servers.len() - 1);
            parts[server].push(position);
        }
        let exchanges = parts
            .iter()
            .enumerate()
            .filter(|(_, positions)| !positions.is_empty())
            .map(|(server, positions)| async move {
                let reads = positions
                    .iter()
                    .map(|&position| Get::new(&server_keys[position]));
                let answers = call(context, self.inner.client.run_many(reads)).await;
                (server, positions, answers)
            });
        let mut values = vec![None; server_keys.len()];
        for (server, positions, answers) in futures::future::join_all(exchanges).await {
            let failed = |error: CacheError| -> Result<(), CacheError> {
                if !error.is_retryable() {
                    return Err(error);
                }
                tracing::warn!(
                    server = %servers[server],
                    %error,
                    keys = positions.len(),
                    "memcached: get_many reads the keys of a failed server as misses"
                );
                Ok(())
            };
            let answers = match answers {
                Ok(answers) => answers,
                Err(error) => {
                    failed(error)?;
                    continue;
                }
            };
            for (&position, answer) in positions.iter().zip(answers) {
                match answer {
                    Ok(result) => values[position] = hit_value(result),
                    // A server failing mid-batch fails every answer it still owed: say so once.
                    Err(error) => {
                        failed(context.map(error))?;
                        break;
                    }
                }
            }
        }
        Ok(values)
    }

    async fn set_many_in(
        &self,
        generation: Option<u64>,
        entries: &[(&str, &Bytes)],
        expiry: Expiry,
    ) -> Result<(), CacheError> {
        let writes: Vec<Set> = entries
            .iter()
            .map(|(key, value)| self.set_operation(generation, key, value, expiry))
            .collect();
        let results = call(self.context("set_many"), self.inner.client.run_many(writes)).await?;
        for (result, (_, value)) in results.into_iter().zip(entries) {
            let result =
                result.map_err(|error| self.value_context("set_many", value.len()).map(error))?;
            stored(result.status)?;
        }
        Ok(())
    }

    async fn delete_many_in(
        &self,
        generation: Option<u64>,
        keys: &[&str],
    ) -> Result<usize, CacheError> {
        let context = self.context("delete_many");
        let deletes = keys
            .iter()
            .map(|key| delete_of(self.inner.keys.server_key(generation, key)));
        let results = call(context, self.inner.client.run_many(deletes)).await?;
        let mut count = 0;
        for result in results {
            count += usize::from(removed(result.map_err(|error| context.map(error))?.status)?);
        }
        Ok(count)
    }

    /// Deletes, on every server at once, each entry of the prefix in a generation up to
    /// `cutoff`. Entries of a later generation were written after the counter was deleted
    /// (by another instance that created it again) and are kept.
    async fn remove_entries(&self, cutoff: u64) -> Result<(), CacheError> {
        let Some(prefix) = self.inner.key_prefix.as_deref() else {
            return Ok(());
        };
        let context = self.context("clear");
        let wanted = |key: &[u8]| {
            // Sent back as they are: a key the text protocol cannot carry is not ours.
            generation_of(prefix.as_bytes(), key).is_some_and(|generation| generation <= cutoff)
                && key.iter().copied().all(keys::is_native_byte)
        };
        let removals = self.inner.servers.iter().map(|server| async move {
            let mut admin = match admin::Admin::connect(server, context).await {
                Ok(admin) => admin,
                // A server that refuses connections is not running, and memcached keeps
                // nothing across a restart: there is nothing to remove.
                Err(CacheError::Unreachable { source, .. })
                    if source
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) =>
                {
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
            // memcached runs one crawler at a time; other clears may be listing too.
            let busy_for = self.inner.timeout.saturating_mul(CRAWLER_BUSY_TIMEOUTS);
            match admin.metadump(wanted, busy_for).await? {
                admin::Dump::Keys(keys) => admin.delete(&keys).await,
                admin::Dump::Refused(answer) => {
                    tracing::warn!(
                        %server,
                        %answer,
                        "memcached: the server does not list its keys; the cleared entries stay until they age out"
                    );
                    Ok(())
                }
            }
        });
        futures::future::join_all(removals)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, CacheError>>()
            .map(drop)
    }

    /// `flush_all` on every server, through the crate's synchronous client: the meta
    /// protocol has no flush.
    async fn flush_all(&self) -> Result<(), CacheError> {
        let context = self.context("clear");
        let timeout = self.inner.timeout;
        // The synchronous client's pool reports a hung and a dead server alike; a no-op
        // first tells them apart, and spares the blocking thread when a server is down.
        let servers = u32::try_from(self.inner.servers.len()).unwrap_or(u32::MAX);
        let every_server = Context {
            timeout: timeout.saturating_mul(servers),
            ..context
        };
        call(every_server, self.inner.client.noop()).await?;
        let urls: Vec<String> = self
            .inner
            .servers
            .iter()
            .map(|server| format!("memcache://{server}?protocol=ascii"))
            .collect();
        let flush = tokio::task::spawn_blocking(move || {
            memcache::Client::builder()
                .add_server(urls)?
                .with_connection_timeout(timeout)
                .with_read_timeout(timeout)
                .with_write_timeout(timeout)
                .build()?
                .flush()
        });
        // Connecting and flushing, one server after the other.
        let limit = timeout
            .saturating_mul(servers.saturating_mul(2))
            .saturating_add(timeout);
        match tokio::time::timeout(limit, flush).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(context.map_sync(error)),
            Ok(Err(join)) => Err(CacheError::Backend {
                backend: BACKEND,
                source: Box::new(join),
            }),
            Err(_) => Err(context.timeout()),
        }
    }
}

fn stored(status: MutationStatus) -> Result<(), CacheError> {
    match status {
        MutationStatus::Applied => Ok(()),
        other => Err(unexpected(format!(
            "memcached did not store the value: {other:?}"
        ))),
    }
}

fn added(status: MutationStatus) -> Result<bool, CacheError> {
    match status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::AlreadyExists => Ok(false),
        other => Err(unexpected(format!(
            "memcached did not answer the add: {other:?}"
        ))),
    }
}

fn removed(status: MutationStatus) -> Result<bool, CacheError> {
    match status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::NotFound => Ok(false),
        other => Err(unexpected(format!(
            "memcached did not delete the key: {other:?}"
        ))),
    }
}

/// The keys of a batch without repeats, in the order first seen, and for each position of
/// the batch the index of its key in that list.
fn distinct<'a>(keys: impl IntoIterator<Item = &'a str>) -> (Vec<&'a str>, Vec<usize>) {
    let keys = keys.into_iter();
    let room = keys.size_hint().0;
    // aHash: this runs for every key of every batch, and SipHash was a visible part of it.
    let mut index: HashMap<&str, usize, ahash::RandomState> =
        HashMap::with_capacity_and_hasher(room, ahash::RandomState::new());
    let mut unique = Vec::with_capacity(room);
    let positions = keys
        .map(|key| {
            *index.entry(key).or_insert_with(|| {
                unique.push(key);
                unique.len() - 1
            })
        })
        .collect();
    (unique, positions)
}

#[async_trait]
impl Cache for MemcachedCache {
    /// One `mg` on the key's server.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        validate_key(key)?;
        self.in_namespace(Absent::Empty(None), move |generation| {
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
                .in_namespace(Absent::Empty(false), move |generation| {
                    self.delete_in(generation, key)
                })
                .await
                .map(drop);
        }
        let value = &value;
        self.in_namespace(Absent::Create, move |generation| {
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
        self.in_namespace(Absent::Create, move |generation| {
            self.add_in(generation, key, value, expiry)
        })
        .await
    }

    /// One `md` on the key's server: true when memcached removed a live entry.
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.in_namespace(Absent::Empty(false), move |generation| {
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
            .in_namespace(Absent::Empty(vec![None; unique.len()]), move |generation| {
                self.get_many_in(generation, unique)
            })
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
        validate_entries(entries, self.inner.max_value_size)?;
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
                .in_namespace(Absent::Empty(0), move |generation| {
                    self.delete_many_in(generation, keys)
                })
                .await
                .map(drop);
        }
        let batch = &batch;
        self.in_namespace(Absent::Create, move |generation| {
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
        self.in_namespace(Absent::Empty(0), move |generation| {
            self.delete_many_in(generation, unique)
        })
        .await
    }

    /// One `mg` without the value on the key's server.
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.in_namespace(Absent::Empty(false), move |generation| {
            self.exists_in(generation, key)
        })
        .await
    }

    /// With a key prefix: deletes the prefix's generation counter (the namespace reads
    /// empty at once here, within `namespace_refresh` on other instances), then lists each
    /// server's keys (`lru_crawler metadump all`) and deletes every entry of the prefix,
    /// in pipelined batches. A server that refuses to list keeps them until they age out.
    /// Without a prefix: **`flush_all` on every server, which removes every entry of every
    /// client of those servers.**
    async fn clear(&self) -> Result<(), CacheError> {
        let Some(namespace) = &self.inner.namespace else {
            return self.flush_all().await;
        };
        let context = self.context("clear");
        let client = &self.inner.client;
        // Every generation used so far is at most this: the counter's number, what this
        // instance knew, and the clock, from which any counter created later starts.
        let current = read_generation(client, &namespace.key, context).await?;
        let cutoff = now_micros()
            .max(namespace.snapshot().highest)
            .max(current.unwrap_or_default());
        let result = call(context, client.run(delete_of(namespace.key.clone()))).await?;
        removed(result.status)?;
        namespace.set(None, cutoff);
        self.remove_entries(cutoff).await
    }

    /// 1 s TTL granularity, the configured largest value, and 250 bytes less the prefix
    /// and its generation tag (22 bytes) for keys stored under their own name; `clear`,
    /// pipelined batches and `add` are native.
    fn limits(&self) -> Limits {
        Limits::new(Duration::from_secs(1), self.inner.max_value_size)
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
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(expiry(None).unwrap(), Expiry::Never);
        assert_eq!(expiry(Some(Duration::ZERO)).unwrap(), Expiry::Expired);
        assert_eq!(
            expiry(Some(Duration::from_nanos(1))).unwrap(),
            Expiry::At(1)
        );
        assert_eq!(
            expiry(Some(Duration::from_millis(300))).unwrap(),
            Expiry::At(1)
        );
        assert_eq!(
            expiry(Some(Duration::from_millis(1001))).unwrap(),
            Expiry::At(2)
        );
        let thirty_days = Duration::from_secs(MAX_RELATIVE_TTL_SECS);
        assert_eq!(expiry(Some(thirty_days)).unwrap(), Expiry::At(2_592_000));
    }

    #[test]
    fn ttls_over_30_days_become_unix_times() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let thirty_one_days = 31 * 24 * 60 * 60;
        let Expiry::At(at) = expiry(Some(Duration::from_secs(thirty_one_days))).unwrap() else {
            panic!("31 days must expire");
        };
        let at = u64::from(at);
        assert!(
            at >= now + thirty_one_days && at <= now + thirty_one_days + 2,
            "{at}"
        );
        // 30 days and a fraction of a second round up into the absolute range.
        let just_over = Duration::from_secs(MAX_RELATIVE_TTL_SECS) + Duration::from_millis(1);
        assert!(matches!(expiry(Some(just_over)).unwrap(), Expiry::At(at) if u64::from(at) > now));
    }

    #[test]
    fn ttls_beyond_2038_are_invalid() {
        for ttl in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(100 * 365 * 24 * 3600),
        ] {
            assert!(
                matches!(expiry(Some(ttl)), Err(CacheError::InvalidTtl { .. })),
                "{ttl:?}"
            );
        }
    }

    #[test]
    fn the_cache_is_cheap_to_share_across_tasks() {
        fn shareable<T: Cache + Clone + Send + Sync + fmt::Debug + 'static>() {}
        shareable::<MemcachedCache>();
        fn object(cache: MemcachedCache) -> Arc<dyn Cache> {
            Arc::new(cache)
        }
        let _ = object;
    }

    #[test]
    fn only_data_keys_of_the_exact_prefix_have_a_generation() {
        let prefix = b"app:";
        assert_eq!(generation_of(prefix, b"app:{17}k"), Some(17));
        assert_eq!(generation_of(prefix, b"app:{17}"), Some(17));
        assert_eq!(generation_of(prefix, b"app:{17}~#x#hash"), Some(17));
        for other in [
            &b"app:{gen}"[..],
            b"app:{}k",
            b"app:{1a}k",
            b"app:{17k",
            b"app:17}k",
            b"app:k",
            b"apple:{17}k",
            b"ap:{17}k",
            b"xapp:{17}k",
            b"app:app:{17}k",
            b"app:{99999999999999999999999}k",
        ] {
            assert_eq!(
                generation_of(prefix, other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn batches_lose_repeats_but_keep_positions() {
        let (unique, positions) = distinct(["b", "a", "b", "c", "a"]);
        assert_eq!(unique, ["b", "a", "c"]);
        assert_eq!(positions, [0, 1, 0, 2, 1]);
    }
}
