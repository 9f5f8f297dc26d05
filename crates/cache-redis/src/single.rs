//! One server: opening its connections (multiplexed managers or a pool) and sending one
//! request on the connection model's hot path. Kept apart from the `Cache` impl so the
//! operations read as the commands they send, not as connection handling.
//!
//! Nothing here sends a request twice: a failed call is the caller's to retry (see
//! `cache_layers::RetryLayer`). The connections recover by themselves: a
//! `ConnectionManager` reconnects after a drop, and the pool drops a connection that
//! failed on I/O, then recycles (`PING`s) every idle one before handing it out.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use cache_api::CacheError;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    AsyncConnectionConfig, Cmd, ConnectionInfo, FromRedisValue, Pipeline, RedisError,
};

use crate::{
    builder::CLEAR_POOL_SIZE,
    command::{escape_glob, scan_command},
    cut_short::{spawn_check, OnCutShort},
    endpoint::scrub,
    error::{lost_connection, needs_new_connection, ErrorContext},
    settings::Mode,
    throttle::AtMostEvery,
};

/// One server: the hot path, and the pool that serves `clear`.
pub(crate) struct Single {
    hot: HotPath,
    /// Serves `clear` in both models, and every operation in pooled mode.
    pool: deadpool_redis::Pool,
    pub(crate) database: i64,
    errors: ErrorContext,
}

enum HotPath {
    /// Multiplexed connections that reconnect by themselves, used round robin.
    Multiplexed {
        connections: Vec<Arc<Managed>>,
        next: AtomicUsize,
    },
    /// Every operation checks a connection out of the pool.
    Pooled,
}

/// Replacements of one stuck connection are at least this far apart.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// A multiplexed connection that has not answered for this long is checked with a
/// `PING` before the next call goes on it (see [`Managed::check_if_idle`]). Redis's own
/// `timeout` is a whole number of seconds, at least 1; a busy connection never pays
/// for the check.
const CHECK_AFTER_IDLE: Duration = Duration::from_millis(500);

/// One multiplexed connection, and whether it may be reconnecting.
struct Managed {
    /// The manager reconnects by itself after a drop, but a reconnect that fails with an
    /// error other than I/O (a reply it could not parse, a refused handshake) is kept and
    /// returned to every later call, for good: such a manager is swapped for a new one.
    connection: ArcSwap<ConnectionManager>,
    /// What a new manager is made of.
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Spaces out the swaps for a new manager.
    replacements: AtMostEvery,
    /// Set when an operation saw the connection dropped or refused (the manager then
    /// reconnects in the background), cleared by the next success. Both of the
    /// manager's timeouts surface as the same I/O error; this tells them apart.
    reconnecting: AtomicBool,
    /// Set while a `PING` checks the connection after a call on it was cut short.
    probing: AtomicBool,
    /// When the connection last answered, in milliseconds since `born`.
    answered_ms: AtomicU64,
    born: Instant,
}

impl Managed {
    /// Swaps the manager for a new one that connects on its first use, unless that was
    /// done less than [`REPLACE_AT_MOST_EVERY`] ago.
    fn replace(&self) {
        if !self.replacements.claim() {
            return;
        }
        // Only a configuration error fails a lazy manager, and this one was built before.
        if let Ok(fresh) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
        {
            self.connection.store(fresh.into());
            self.reconnecting.store(true, Ordering::Relaxed);
        }
    }

    fn answered(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.answered_ms.store(now, Ordering::Relaxed);
    }

    /// Before a call on a connection quiet for [`CHECK_AFTER_IDLE`]: a `PING`. A server
    /// (its `timeout`), a proxy or a NAT may have closed the connection meanwhile, and
    /// the manager learns of it only from a request that fails: the `PING` is that
    /// request, and the call goes on the new connection the manager then opens (it waits
    /// for it). The call itself is never sent twice. `Err` for any other failure of the
    /// `PING` (a timeout: the call would have met it too).
    async fn check_if_idle(&self, connection: &mut ConnectionManager) -> Result<(), RedisError> {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet = now.saturating_sub(self.answered_ms.load(Ordering::Relaxed));
        if u128::from(quiet) < CHECK_AFTER_IDLE.as_millis()
            || self.reconnecting.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        match redis::cmd("PING").query_async::<()>(connection).await {
            Ok(()) => {
                self.answered();
                Ok(())
            }
            Err(err) if lost_connection(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Checks the connection after a call on it was cut short (`cut_short.rs`): a
    /// `PING` on it, behind the request that was left, and a `PING` unanswered within the
    /// response timeout replaces the connection, as a call that timed out does. One
    /// check at a time per connection.
    fn check_after_cut(self: &Arc<Self>) {
        spawn_check(
            self,
            |managed| &managed.probing,
            |managed| async move {
                let mut connection = ConnectionManager::clone(&managed.connection.load());
                if let Err(err) = redis::cmd("PING").query_async::<()>(&mut connection).await {
                    if err.is_timeout() {
                        managed.replace();
                    }
                }
            },
        );
    }
}

/// What one operation sends: a single command or a pipeline (one round trip either way).
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
}

impl Request<'_> {
    async fn send<T: FromRedisValue, C: ConnectionLike + Send>(
        self,
        connection: &mut C,
    ) -> Result<T, RedisError> {
        match self {
            Request::Command(command) => command.query_async(connection).await,
            Request::Pipeline(pipeline) => pipeline.query_async(connection).await,
        }
    }
}

impl Single {
    /// Opens the pool (and, multiplexed, the managed connections) and `PING`s the
    /// server, so that a wrong address or password shows at build time.
    pub(crate) async fn connect(
        info: ConnectionInfo,
        mode: Mode,
        errors: &ErrorContext,
    ) -> Result<Self, CacheError> {
        let errors = &errors.at(crate::endpoint::address(&info));
        let database = info.redis_settings().db();
        let pool_size = match mode {
            Mode::Pooled { max_size } => max_size,
            Mode::Multiplexed { .. } | Mode::Cluster => CLEAR_POOL_SIZE,
        };
        let pool = build_pool(info.clone(), pool_size, errors)?;
        let hot = match mode {
            Mode::Pooled { .. } => {
                let mut connection = pool.get().await.map_err(|err| match err {
                    deadpool_redis::PoolError::Backend(err) => errors.map_connect(err, database),
                    other => errors.map_pool(other),
                })?;
                redis::cmd("PING")
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|err| errors.map_opening(err, database, std::time::Duration::ZERO))?;
                HotPath::Pooled
            }
            Mode::Multiplexed { connections } => HotPath::Multiplexed {
                connections: connect_managed(&info, connections, database, errors).await?,
                next: AtomicUsize::new(0),
            },
            Mode::Cluster => unreachable!("a cluster has no single-server hot path"),
        };
        Ok(Self {
            hot,
            pool,
            database,
            errors: errors.clone(),
        })
    }

    /// Whether the server is a node of a Redis Cluster (`INFO cluster` says
    /// `cluster_enabled:1`). A server that does not say (an ACL without `+info`, a
    /// renamed `INFO`) is taken as not one.
    pub(crate) async fn is_cluster_node(&self) -> bool {
        let query = redis::cmd("INFO").arg("cluster").clone();
        self.send::<String>(Request::Command(&query))
            .await
            .is_ok_and(|info| info.lines().any(|line| line.trim() == "cluster_enabled:1"))
    }

    /// Sends `request` to the server, on the hot path of its connection model.
    pub(crate) async fn send<T: FromRedisValue + Send>(
        &self,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        match &self.hot {
            HotPath::Multiplexed { connections, next } => {
                self.send_multiplexed(connections, next, request).await
            }
            // Boxed: the pooled future would otherwise be part of every call's future,
            // which the default model then allocates and copies for nothing.
            HotPath::Pooled => Box::pin(self.send_pooled(request)).await,
        }
    }

    /// Sends `request` on the next multiplexed connection. A dropped or refused
    /// connection starts the manager's reconnect, which the next call on it waits for.
    ///
    /// No timer of its own: the connection bounds the wait for a reconnect by the
    /// connect timeout (one attempt, no retries inside the manager) and the answer by
    /// the response timeout, so an operation fails within the two.
    async fn send_multiplexed<T: FromRedisValue + Send>(
        &self,
        connections: &[Arc<Managed>],
        next: &AtomicUsize,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        let managed = match connections {
            [only] => only,
            _ => &connections[next.fetch_add(1, Ordering::Relaxed) % connections.len()],
        };
        let mut connection = ConnectionManager::clone(&managed.connection.load());
        let started = Instant::now();
        let cut_short = OnCutShort::new(|| managed.check_after_cut());
        let sent = match managed.check_if_idle(&mut connection).await {
            Ok(()) => request.send(&mut connection).await,
            Err(err) => Err(err),
        };
        cut_short.finish();
        match sent {
            Ok(value) => {
                managed.answered();
                if managed.reconnecting.load(Ordering::Relaxed) {
                    managed.reconnecting.store(false, Ordering::Relaxed);
                }
                Ok(value)
            }
            Err(err) => {
                let elapsed = started.elapsed();
                let connecting =
                    err.is_timeout() && self.timed_out_connecting(elapsed, &managed.reconnecting);
                let unanswered = err.is_timeout() && elapsed >= self.errors.response_timeout;
                if needs_new_connection(&err) || unanswered {
                    // A connection that may have left a request unanswered past the
                    // response timeout may never answer again (a flow a middlebox forgot,
                    // a host gone without a reset): TCP can take a quarter of an hour to
                    // give up on it, and the manager reconnects only once it does. Later
                    // calls go to a new connection; the calls in flight on this one keep
                    // it until they end. Replaced also when the timeout may have been a
                    // reconnect's (which of the two fired cannot always be told): a new
                    // manager then connects anew, as the old one would have.
                    managed.replace();
                } else if lost_connection(&err) {
                    managed.reconnecting.store(true, Ordering::Relaxed);
                }
                Err(self.errors.map(err, connecting))
            }
        }
    }

    /// Which of the manager's two timers ran out, from how long the operation took: a
    /// response timeout cannot fire before the response timeout has passed, nor a
    /// connect timeout before the connect timeout; past both, only a connection known
    /// to be reconnecting was waiting for a connect.
    fn timed_out_connecting(&self, elapsed: Duration, reconnecting: &AtomicBool) -> bool {
        if elapsed < self.errors.response_timeout {
            true
        } else if elapsed < self.errors.connect_timeout {
            false
        } else {
            reconnecting.load(Ordering::Relaxed)
        }
    }

    /// Sends `request` on a pooled connection.
    async fn send_pooled<T: FromRedisValue + Send>(
        &self,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        let mut connection = self
            .pool
            .get()
            .await
            .map_err(|err| self.errors.map_pool(err))?;
        let result = request.send(&mut connection).await;
        if let Err(err) = &result {
            if err.is_io_error() {
                // Never hand a connection that failed on I/O (or timed out with an
                // answer still owed) to the next caller.
                drop(deadpool_redis::Connection::take(connection));
            }
        }
        result.map_err(|err| self.errors.map(err, false))
    }

    /// Removes the keys under `prefix`: `SCAN MATCH prefix*` with its glob characters
    /// escaped, one `UNLINK` per batch, on a pooled connection of its own.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> Result<(), CacheError> {
        let mut connection = self
            .pool
            .get()
            .await
            .map_err(|err| self.errors.map_pool(err))?;
        let pattern = format!("{}*", escape_glob(prefix));
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
        result.map_err(|err| self.errors.map(err, false))
    }
}

/// The pool with every timeout set: deadpool's own defaults wait forever.
fn build_pool(
    info: ConnectionInfo,
    max_size: usize,
    errors: &ErrorContext,
) -> Result<deadpool_redis::Pool, CacheError> {
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(errors.connect_timeout))
        .set_response_timeout(Some(errors.response_timeout));
    let manager = deadpool_redis::Manager::new_with_config(info, connection_config)
        .map_err(|err| config_error(&err, errors))?;
    deadpool_redis::Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .wait_timeout(Some(errors.pool_wait_timeout))
        .create_timeout(Some(errors.connect_timeout))
        .recycle_timeout(Some(errors.response_timeout))
        .build()
        .map_err(|err| CacheError::config(format!("cannot build the connection pool: {err}")))
}

/// Opens `count` managed connections, each `PING`ed.
async fn connect_managed(
    info: &ConnectionInfo,
    count: usize,
    database: i64,
    errors: &ErrorContext,
) -> Result<Vec<Arc<Managed>>, CacheError> {
    // No retries inside the manager: a failed reconnect surfaces at once as an error
    // of the operation that waited for it, and the next operation starts a new
    // attempt. That keeps every operation within its timeouts while the server is away.
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(errors.connect_timeout))
        .set_response_timeout(Some(errors.response_timeout))
        .set_number_of_retries(0);
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        let client = redis::Client::open(info.clone()).map_err(|err| config_error(&err, errors))?;
        let connecting = ConnectionManager::new_with_config(client.clone(), manager_config.clone());
        let started = std::time::Instant::now();
        let mut connection = tokio::time::timeout(errors.connect_timeout, connecting)
            .await
            .map_err(|_| errors.timeout("connect", errors.connect_timeout))?
            .map_err(|err| errors.map_opening(err, database, started.elapsed()))?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(|err| errors.map_opening(err, database, std::time::Duration::ZERO))?;
        connections.push(Arc::new(Managed {
            connection: ArcSwap::from_pointee(connection),
            client,
            config: manager_config.clone(),
            replacements: AtMostEvery::new(REPLACE_AT_MOST_EVERY),
            reconnecting: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            answered_ms: AtomicU64::new(0),
            born: Instant::now(),
        }));
    }
    Ok(connections)
}

fn config_error(err: &RedisError, errors: &ErrorContext) -> CacheError {
    CacheError::config(scrub(
        &format!("invalid redis settings: {err}"),
        &errors.secrets,
    ))
}
