//! The builder of a [`RedisCache`](crate::RedisCache): its settings, their defaults,
//! and the URL parameters it starts from. Checking them is `settings.rs`; reading the
//! URL itself is `endpoint.rs`.

use std::{fmt, path::PathBuf, time::Duration};

use cache_api::CacheError;

use crate::{
    endpoint::{redact_url, Nodes},
    tls::TlsSettings,
    url_query::{self, ModeParam, UrlParams},
    RedisCache,
};

/// Default time allowed to open a connection (TCP connect, `AUTH`, `SELECT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for the server's answer to one command or pipeline.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time a pooled operation waits for a free connection.
pub const DEFAULT_POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a timeout is: 1 hour. A longer one, `Duration::MAX` included, is taken as
/// 1 hour, so that no call waits without end on a server that stopped answering.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Default largest value: 64 MiB.
///
/// A value travels on a connection that other callers share; while 64 MiB are being
/// written or read, every caller behind it waits. Redis itself accepts up to 512 MiB
/// ([`REDIS_MAX_VALUE_SIZE`]), and [`RedisCacheBuilder::max_value_size`] can raise the
/// limit that far.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 64 << 20;
/// The largest string Redis stores (its `proto-max-bulk-len` default): 512 MiB. Also the
/// longest key, prefix included.
pub const REDIS_MAX_VALUE_SIZE: usize = 512 << 20;

/// Size of the pool that serves `clear` when the hot path is multiplexed: `clear`
/// holds a connection for its whole SCAN loop, and two of them at once is plenty.
pub(crate) const CLEAR_POOL_SIZE: usize = 2;

/// How the operations of a cache on one server reach it.
///
/// ```no_run
/// # async fn run() -> Result<(), cache_api::CacheError> {
/// use cache_redis::{ConnectionModel, RedisCache};
///
/// let cache = RedisCache::builder("redis://127.0.0.1:6379")
///     .connection_model(ConnectionModel::Pooled { max_size: 16 })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionModel {
    /// Operations spread round robin over `connections` multiplexed connections that
    /// reconnect by themselves; the default, with one. One serves hundreds of thousands
    /// of small operations a second when many tasks share it; more help when large
    /// values would otherwise queue behind each other. URL: `pool_size=n`.
    Multiplexed {
        /// How many connections, from 1 to [`MAX_CONNECTIONS`].
        connections: usize,
    },
    /// Every operation checks a connection out of a pool of at most `max_size`, one
    /// operation per connection at a time. Each checkout costs a `PING`, so this is
    /// slower; it suits servers or proxies that handle pipelined requests badly. URL:
    /// `mode=pooled` (`pool_size` default 16).
    Pooled {
        /// The most connections the pool opens, from 1 to [`MAX_CONNECTIONS`].
        max_size: usize,
    },
}

impl Default for ConnectionModel {
    /// One multiplexed connection.
    fn default() -> Self {
        Self::Multiplexed { connections: 1 }
    }
}

/// Builds a [`RedisCache`]; created by [`RedisCache::builder`] (one server, or a
/// cluster for a `redis+cluster://` URL) or [`RedisCache::cluster_builder`].
///
/// Every setting has a default (see the crate documentation's table), no timeout
/// is infinite (a timeout longer than 1 hour, `Duration::MAX` included, is one of 1
/// hour), and [`build`](Self::build) refuses zero or contradictory settings with
/// [`CacheError::Config`].
///
/// ```no_run
/// # async fn run() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_redis::{ConnectionModel, RedisCache};
///
/// let cache = RedisCache::builder("redis://:s3cret@127.0.0.1:6379/2")
///     .key_prefix("myapp:")
///     .response_timeout(Duration::from_millis(250))
///     .connection_model(ConnectionModel::Multiplexed { connections: 2 })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build().await` is called"]
#[derive(Clone)]
pub struct RedisCacheBuilder {
    pub(crate) url: String,
    /// The seed URLs given to [`RedisCache::cluster_builder`]; `url` is then unused.
    pub(crate) seeds: Option<Vec<String>>,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) connection_model: Option<ConnectionModel>,
    pub(crate) max_value_size: usize,
    pub(crate) database: Option<i64>,
    /// The connection model the URL's `mode` and `pool_size` ask for, used unless
    /// [`connection_model`](Self::connection_model) is called.
    pub(crate) url_model: Option<ConnectionModel>,
    /// The database the URL's `db` parameter names.
    pub(crate) url_database: Option<i64>,
    /// Why the URL's query could not be read, reported by `build`.
    pub(crate) url_error: Option<String>,
    /// Whether the URL names `pool_wait_timeout`, which only a pool waits by: refused
    /// when the connection model is not pooled.
    pub(crate) url_pool_wait_named: bool,
    /// CA file, client certificate and insecure mode of a `rediss://` URL.
    pub(crate) tls: TlsSettings,
    /// Whether [`tls_insecure_skip_verify`](Self::tls_insecure_skip_verify) was called,
    /// whatever its value: a TLS setting is refused where there is no TLS, even one
    /// that changes nothing.
    pub(crate) tls_insecure_named: bool,
}

/// Default pool size of `mode=pooled` in a URL that names no `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The most connections a cache opens to one server, pooled or multiplexed: Redis's
/// own default `maxclients`. A larger count is refused by `build` as a configuration
/// error.
pub const MAX_CONNECTIONS: usize = 10_000;

impl RedisCacheBuilder {
    pub(crate) fn new(url: &str) -> Self {
        let mut builder = Self::with_defaults(url);
        match url_query::split(url) {
            Ok((base, params)) => {
                builder.url = base;
                builder.apply(params);
            }
            Err(CacheError::Config { message }) => builder.url_error = Some(message),
            Err(other) => builder.url_error = Some(other.to_string()),
        }
        builder
    }

    /// Every default, with `url` kept as given and not read.
    fn with_defaults(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            seeds: None,
            key_prefix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            pool_wait_timeout: DEFAULT_POOL_WAIT_TIMEOUT,
            connection_model: None,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            database: None,
            url_model: None,
            url_database: None,
            url_error: None,
            url_pool_wait_named: false,
            tls: TlsSettings::default(),
            tls_insecure_named: false,
        }
    }

    /// Takes the settings a URL's query names; the builder's methods, called after,
    /// override them.
    fn apply(&mut self, params: UrlParams) {
        if let Some(prefix) = params.prefix {
            self.key_prefix = prefix;
        }
        if let Some(timeout) = params.timeout {
            self.connect_timeout = timeout;
            self.response_timeout = timeout;
            self.pool_wait_timeout = timeout;
        }
        self.connect_timeout = params.connect_timeout.unwrap_or(self.connect_timeout);
        self.response_timeout = params.response_timeout.unwrap_or(self.response_timeout);
        self.url_pool_wait_named = params.pool_wait_timeout.is_some();
        self.pool_wait_timeout = params.pool_wait_timeout.unwrap_or(self.pool_wait_timeout);
        self.max_value_size = params.max_value_size.unwrap_or(self.max_value_size);
        self.url_database = params.db.map(i64::from);
        self.tls.ca_file = params.tls_ca.map(PathBuf::from);
        self.tls.cert_file = params.tls_cert.map(PathBuf::from);
        self.tls.key_file = params.tls_key.map(PathBuf::from);
        self.tls.insecure_skip_verify = params.tls_insecure_skip_verify.unwrap_or(false);
        self.tls_insecure_named = params.tls_insecure_skip_verify.is_some();
        self.url_model = match (params.mode, params.pool_size) {
            (Some(ModeParam::Pooled), size) => Some(ConnectionModel::Pooled {
                max_size: size.unwrap_or(DEFAULT_POOL_SIZE),
            }),
            (Some(ModeParam::Multiplexed) | None, Some(connections)) => {
                Some(ConnectionModel::Multiplexed { connections })
            }
            (Some(ModeParam::Multiplexed), None) => Some(ConnectionModel::default()),
            (None, None) => None,
        };
    }

    pub(crate) fn new_cluster<I, S>(seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            seeds: Some(
                seeds
                    .into_iter()
                    .map(|seed| seed.as_ref().to_owned())
                    .collect(),
            ),
            ..Self::with_defaults("")
        }
    }

    /// Puts `prefix` in front of every key this cache reads or writes, and limits
    /// [`clear`](cache_api::Cache::clear) to the keys that start with it.
    ///
    /// A non-empty prefix must end with an ASCII punctuation character, `:` by
    /// convention (`"myapp:"`): without one, the prefix `foo` would also see and clear
    /// the keys of a cache whose prefix is `foobar`. The empty prefix (the default)
    /// means no prefix: keys are stored as given and `clear` empties the database.
    ///
    /// On a cluster, a prefix with a hash tag (`"{myapp}:"`) puts every key of the
    /// cache in one slot, so on one master: bulk operations become one command, but the
    /// whole namespace lives on that one master. A plain prefix (`"myapp:"`) spreads
    /// the keys over every master. See the crate documentation.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Time allowed to open a connection: TCP connect plus `AUTH` and `SELECT`.
    /// Default 2 s, at most 1 hour (a longer one is taken as 1 hour).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for the server's answer to one command (or one pipeline of a bulk
    /// operation); past it the operation fails with [`CacheError::Timeout`]. Default 1 s,
    /// at most 1 hour (a longer one is taken as 1 hour).
    ///
    /// On a cluster, one operation (redirects, reconnects and retries included) may
    /// take the connect plus the response timeout, after which it fails with a
    /// [`CacheError::Timeout`] whose phase is `"request"`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Time an operation waits for a free pooled connection (in
    /// [`ConnectionModel::Pooled`], and for [`clear`](cache_api::Cache::clear));
    /// past it the operation fails with a [`CacheError::Timeout`] whose phase is
    /// `"pool checkout"`. Default 1 s, at most 1 hour (a longer one is taken as 1 hour).
    /// Unused on a cluster, which has no pool.
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// Sets the connect, response and pool-wait timeouts to the same `timeout`. Any
    /// length is accepted, but none is infinite: one longer than 1 hour,
    /// `Duration::MAX` included, is taken as 1 hour.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.connect_timeout(timeout)
            .response_timeout(timeout)
            .pool_wait_timeout(timeout)
    }

    /// How operations reach the server: multiplexed connections (the default, one of
    /// them) or a pool; see [`ConnectionModel`]. Overrides the URL's `mode` and
    /// `pool_size`. A zero count or size is refused by [`build`](Self::build), and so is
    /// any model on a cluster, whose client keeps one multiplexed connection per node.
    pub fn connection_model(mut self, model: ConnectionModel) -> Self {
        self.connection_model = Some(model);
        self
    }

    /// The connection model [`build`](Self::build) will use on one server: the one set
    /// with [`connection_model`](Self::connection_model), else the URL's `mode` and
    /// `pool_size`, else one multiplexed connection. Tools that report how a cache
    /// connects read it here rather than parse the URL again.
    ///
    /// ```
    /// use cache_redis::{ConnectionModel, RedisCache};
    ///
    /// let builder = RedisCache::builder("redis://127.0.0.1:6379?mode=pooled&pool_size=8");
    /// assert_eq!(
    ///     builder.effective_connection_model(),
    ///     ConnectionModel::Pooled { max_size: 8 }
    /// );
    /// ```
    #[must_use]
    pub fn effective_connection_model(&self) -> ConnectionModel {
        self.connection_model.or(self.url_model).unwrap_or_default()
    }

    /// Largest value `set` accepts, in bytes; larger ones are refused with
    /// [`CacheError::ValueTooLarge`] before anything is sent. Default 64 MiB
    /// ([`DEFAULT_MAX_VALUE_SIZE`]), at most 512 MiB ([`REDIS_MAX_VALUE_SIZE`]).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The database number to `SELECT` (default 0). The URL path can name it too
    /// (`redis://host/2`); naming two different numbers is a configuration error. A
    /// cluster has only database 0: any other number is refused. A database the server
    /// refuses (past its `databases` setting, or past what Redis can number) makes
    /// [`build`](Self::build) fail with [`CacheError::Config`] naming it.
    pub fn database(mut self, database: u32) -> Self {
        self.database = Some(i64::from(database));
        self
    }

    /// Trusts the certificates in the PEM file at `path` (a private CA) instead of the
    /// system's roots, for a `rediss://` or `rediss+cluster://` URL. URL: `tls_ca=/path`.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate (chain) in the PEM file `cert` with its private
    /// key in `key`, for servers that ask for one (mutual TLS, Redis's
    /// `tls-auth-clients yes`). URL: `tls_cert=/path&tls_key=/path`.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.cert_file = Some(cert.into());
        self.tls.key_file = Some(key.into());
        self
    }

    /// **Insecure**: accepts any certificate the server shows, from anyone, so the
    /// connection is encrypted but not authenticated. Only for test servers with
    /// throw-away certificates; never in production. URL:
    /// `tls_insecure_skip_verify=true`. Like every TLS setting, refused by
    /// [`build`](Self::build) on a URL without TLS, whatever its value.
    pub fn tls_insecure_skip_verify(mut self, skip: bool) -> Self {
        self.tls.insecure_skip_verify = skip;
        self.tls_insecure_named = true;
        self
    }

    /// Where [`build`](Self::build) would connect, without connecting: the connection
    /// information of the one server, or of every seed of a cluster, with the user,
    /// password, database and TLS settings the URL and the builder name. For a client
    /// of the `redis` crate that must reach the same server as the cache (a tool, a
    /// benchmark's baseline); [`redis`] is re-exported so that the types match.
    ///
    /// ```
    /// use cache_redis::RedisCache;
    ///
    /// let infos = RedisCache::builder("redis://alice:p%40ss@127.0.0.1:6380/2?timeout=1s")
    ///     .connection_info()?;
    /// let settings = infos[0].redis_settings();
    /// assert_eq!((settings.username(), settings.password()), (Some("alice"), Some("p@ss")));
    /// assert_eq!(settings.db(), 2);
    /// # Ok::<(), cache_redis::cache_api::CacheError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for every setting `build` would refuse before connecting,
    /// and for a `redis+sentinel://` URL, whose master is known only once a sentinel
    /// has been asked.
    pub fn connection_info(&self) -> Result<Vec<redis::ConnectionInfo>, CacheError> {
        match self.validate()?.endpoint.nodes {
            Nodes::Single(info) => Ok(vec![info]),
            Nodes::Cluster(seeds) => Ok(seeds),
            Nodes::Sentinel(_) => Err(CacheError::config(
                "a redis+sentinel url names its master only once a sentinel is asked: \
                 connect to read where it is",
            )),
        }
    }

    /// Checks the settings, connects and `PING`s the server. For a cluster: connects
    /// to the seeds, and reads which master serves which slot (`CLUSTER SLOTS`).
    ///
    /// # Errors
    ///
    /// - [`CacheError::Config`] for a malformed URL (user info without a `:` included:
    ///   a user name is never sent without a password), an unknown or malformed URL
    ///   parameter (named in the message), a TLS file that cannot be read or parsed, TLS
    ///   settings on a URL without TLS (whatever their value), a zero timeout, size or
    ///   count, a prefix without a trailing delimiter, contradictory settings, a database
    ///   the server refuses (named), a master group the sentinels do not know (named), or a
    ///   TLS URL whose port answers Redis in plain text, or a plain URL whose port
    ///   answers over TLS (the message names the port and the URL for it); for a
    ///   cluster also seeds with
    ///   different credentials, a database other than 0, a connection model,
    ///   and a server whose cluster support is disabled;
    /// - [`CacheError::Unreachable`] or [`CacheError::Timeout`] when the server cannot
    ///   be reached;
    /// - [`CacheError::Auth`] when it refuses the credentials (or asks for some), and when
    ///   a TLS certificate is refused: the server's by this client (unknown CA, wrong host
    ///   name: the message names the verification failure) or this client's by the server;
    /// - [`CacheError::Backend`] when the port answers in another protocol than Redis's.
    pub async fn build(self) -> Result<RedisCache, CacheError> {
        let settings = self.validate()?;
        RedisCache::connect_with(settings)
            .await
            .map_err(|err| err.in_operation("connect"))
    }
}

/// The URL (or each seed URL) is shown with its password, and the value of any
/// parameter that is not a setting in its expected form, replaced by `***`; user info
/// without a `:` is hidden whole. The settings read from the URL's query show as fields.
impl fmt::Debug for RedisCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RedisCacheBuilder");
        match &self.seeds {
            Some(seeds) => debug.field(
                "cluster_seeds",
                &seeds
                    .iter()
                    .map(|seed| redact_url(seed))
                    .collect::<Vec<_>>(),
            ),
            None => debug.field("url", &redact_url(&self.url)),
        };
        debug
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("connection_model", &self.connection_model)
            .field("max_value_size", &self.max_value_size)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}
