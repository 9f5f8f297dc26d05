//! The builder of a [`RedisCache`](crate::RedisCache): its settings, their defaults,
//! and the parsing of the connection URL.

use std::{fmt, time::Duration};

use cache_api::CacheError;
use redis::IntoConnectionInfo;
use url::Url;

use crate::{
    url_query::{self, ModeParam, UrlParams},
    RedisCache,
};

/// Default time allowed to open a connection (TCP connect, `AUTH`, `SELECT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for the server's answer to one command or pipeline.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time a pooled operation waits for a free connection.
pub const DEFAULT_POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(1);
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

/// Builds a [`RedisCache`]; created by [`RedisCache::builder`] (one server, or a
/// cluster for a `redis+cluster://` URL) or [`RedisCache::cluster_builder`].
///
/// Every setting has a default (see the crate documentation's table), no timeout
/// is infinite, and [`build`](Self::build) refuses zero or contradictory settings
/// with [`CacheError::Config`].
///
/// ```no_run
/// # async fn run() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_redis::RedisCache;
///
/// let cache = RedisCache::builder("redis://:s3cret@127.0.0.1:6379/2")
///     .key_prefix("myapp:")
///     .response_timeout(Duration::from_millis(250))
///     .connections(2)
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
    pub(crate) connections: Option<usize>,
    pub(crate) pooled: Option<usize>,
    pub(crate) max_value_size: usize,
    pub(crate) database: Option<i64>,
    /// The connection model the URL's `mode` and `pool_size` ask for, used unless
    /// [`connections`](Self::connections) or [`pooled`](Self::pooled) is called.
    url_mode: (Option<usize>, Option<usize>),
    /// The database the URL's `db` parameter names.
    url_database: Option<i64>,
    /// Why the URL's query could not be read, reported by `build`.
    url_error: Option<String>,
}

/// Default pool size of `mode=pooled` in a URL that names no `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 16;

impl RedisCacheBuilder {
    pub(crate) fn new(url: &str) -> Self {
        let mut builder = Self {
            url: url.to_owned(),
            seeds: None,
            key_prefix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            pool_wait_timeout: DEFAULT_POOL_WAIT_TIMEOUT,
            connections: None,
            pooled: None,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            database: None,
            url_mode: (None, None),
            url_database: None,
            url_error: None,
        };
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
        self.pool_wait_timeout = params.pool_wait_timeout.unwrap_or(self.pool_wait_timeout);
        self.max_value_size = params.max_value_size.unwrap_or(self.max_value_size);
        self.url_database = params.db.map(i64::from);
        self.url_mode = match (params.mode, params.pool_size) {
            (Some(ModeParam::Pooled), size) => (None, Some(size.unwrap_or(DEFAULT_POOL_SIZE))),
            (Some(ModeParam::Multiplexed) | None, Some(size)) => (Some(size), None),
            (Some(ModeParam::Multiplexed), None) => (Some(1), None),
            (None, None) => (None, None),
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
            ..Self::new("")
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
    /// Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for the server's answer to one command (or one pipeline of a bulk
    /// operation); past it the operation fails with [`CacheError::Timeout`]. Default 1 s.
    ///
    /// On a cluster, one operation (redirects, reconnects and retries included) may
    /// take the connect plus the response timeout, after which it fails with a
    /// [`CacheError::Timeout`] whose operation is `"request"`.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Time an operation waits for a free pooled connection (in
    /// [`pooled`](Self::pooled) mode, and for [`clear`](cache_api::Cache::clear));
    /// past it the operation fails with a [`CacheError::Timeout`] whose operation is
    /// `"pool checkout"`. Default 1 s. Unused on a cluster, which has no pool.
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// Sets the connect, response and pool-wait timeouts to the same `timeout`.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.connect_timeout(timeout)
            .response_timeout(timeout)
            .pool_wait_timeout(timeout)
    }

    /// Number of multiplexed connections the operations are spread over, round robin.
    /// Default 1, which serves hundreds of thousands of small operations a second when
    /// many tasks share it; more help when large values would otherwise queue behind
    /// each other. Contradicts [`pooled`](Self::pooled). Refused on a cluster, whose
    /// client keeps one multiplexed connection per node.
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = Some(connections);
        self
    }

    /// Sends every operation through a pool of at most `max_size` connections, one
    /// connection per operation at a time, instead of the shared multiplexed
    /// connections. Each checkout costs a `PING`, so this is slower; it suits servers
    /// or proxies that handle pipelined requests badly. Contradicts
    /// [`connections`](Self::connections). Refused on a cluster.
    pub fn pooled(mut self, max_size: usize) -> Self {
        self.pooled = Some(max_size);
        self
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
    /// cluster has only database 0: any other number is refused.
    pub fn database(mut self, database: u32) -> Self {
        self.database = Some(i64::from(database));
        self
    }

    /// Checks the settings, connects and `PING`s the server. For a cluster: connects
    /// to the seeds, and reads which master serves which slot (`CLUSTER SLOTS`).
    ///
    /// # Errors
    ///
    /// - [`CacheError::Config`] for a malformed URL, an unknown or malformed URL
    ///   parameter (named in the message), a `rediss://` URL (TLS is not supported by
    ///   this build), a zero timeout, size or count, a prefix without a trailing
    ///   delimiter, contradictory settings, or a database the server does not have;
    ///   for a cluster also seeds with
    ///   different credentials, a database other than 0, `connections` or `pooled`,
    ///   and a server whose cluster support is disabled;
    /// - [`CacheError::Unreachable`] or [`CacheError::Timeout`] when the server cannot
    ///   be reached;
    /// - [`CacheError::Auth`] when it refuses the credentials (or asks for some);
    /// - [`CacheError::Backend`] when the port answers in another protocol than Redis's.
    pub async fn build(self) -> Result<RedisCache, CacheError> {
        let settings = self.validate()?;
        RedisCache::connect_with(settings).await
    }

    pub(crate) fn validate(&self) -> Result<Settings, CacheError> {
        if let Some(message) = &self.url_error {
            return Err(CacheError::config(message.clone()));
        }
        for (name, value) in [
            ("connect timeout", self.connect_timeout),
            ("response timeout", self.response_timeout),
            ("pool wait timeout", self.pool_wait_timeout),
        ] {
            if value.is_zero() {
                return Err(CacheError::config(format!("the {name} must be positive")));
            }
        }
        let cluster = self.seeds.is_some() || is_cluster_url(&self.url);
        // The builder's own calls win over what the URL said.
        let (connections, pooled) = if self.connections.is_some() || self.pooled.is_some() {
            (self.connections, self.pooled)
        } else {
            self.url_mode
        };
        let mode = match (connections, pooled) {
            (Some(_), _) | (_, Some(_)) if cluster => {
                return Err(CacheError::config(
                    "a connection count or pool (connections(n), pooled(max_size), or the url \
                     parameters pool_size and mode) does not apply to a redis cluster: \
                     the cluster client keeps one multiplexed connection per node",
                ))
            }
            _ if cluster => Mode::Cluster,
            (Some(_), Some(_)) => {
                return Err(CacheError::config(
                    "connections(n) and pooled(max_size) exclude each other: pick multiplexed or pooled",
                ))
            }
            (_, Some(0)) => return Err(CacheError::config("the pool size must be at least 1")),
            (_, Some(max_size)) => Mode::Pooled { max_size },
            (Some(0), None) => return Err(CacheError::config("the number of connections must be at least 1")),
            (connections, None) => Mode::Multiplexed {
                connections: connections.unwrap_or(1),
            },
        };
        if self.max_value_size == 0 || self.max_value_size > REDIS_MAX_VALUE_SIZE {
            return Err(CacheError::config(format!(
                "the max value size must be between 1 and {REDIS_MAX_VALUE_SIZE} bytes (redis's own limit), not {}",
                self.max_value_size
            )));
        }
        check_prefix(&self.key_prefix)?;
        let database = match (self.database, self.url_database) {
            (Some(set), Some(named)) if set != named => {
                return Err(CacheError::config(format!(
                    "the url parameter db names database {named} but database({set}) was set"
                )))
            }
            (set, named) => set.or(named),
        };
        let endpoint = if cluster {
            let seeds = match &self.seeds {
                Some(seeds) => seeds.clone(),
                None => split_cluster_url(&self.url)?,
            };
            let shown = match &self.seeds {
                Some(seeds) => seeds
                    .iter()
                    .map(|seed| redact_url(seed))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => redact_url(&self.url),
            };
            parse_cluster_seeds(&seeds, database, shown)?
        } else {
            let target = parse_url(&self.url, database)?;
            Endpoint {
                nodes: Nodes::Single(target.info),
                redacted_url: target.redacted_url,
                secrets: target.secrets,
            }
        };
        Ok(Settings {
            endpoint,
            key_prefix: self.key_prefix.clone(),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            pool_wait_timeout: self.pool_wait_timeout,
            mode,
            max_value_size: self.max_value_size,
        })
    }
}

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
            .field("connections", &self.connections)
            .field("pooled", &self.pooled)
            .field("max_value_size", &self.max_value_size)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// How operations reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Multiplexed {
        connections: usize,
    },
    Pooled {
        max_size: usize,
    },
    /// A Redis Cluster, through the cluster client of the `redis` crate.
    Cluster,
}

/// Checked settings, ready to connect with.
pub(crate) struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) mode: Mode,
    pub(crate) max_value_size: usize,
}

/// Where to connect: one server or the seed nodes of a cluster.
pub(crate) struct Endpoint {
    pub(crate) nodes: Nodes,
    /// The URL (or the seed URLs) with the password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded, so that no error message can
    /// carry it even if a dependency ever put it in one.
    pub(crate) secrets: Vec<String>,
}

/// The connection information of one server, or of every seed node of a cluster.
pub(crate) enum Nodes {
    Single(redis::ConnectionInfo),
    Cluster(Vec<redis::ConnectionInfo>),
}

/// Where to connect, parsed from one `redis://` URL.
pub(crate) struct Target {
    pub(crate) info: redis::ConnectionInfo,
    /// The URL with its password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded.
    pub(crate) secrets: Vec<String>,
}

/// The scheme of a cluster URL: `redis+cluster://host1:port1,host2:port2`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster";

fn is_cluster_url(raw: &str) -> bool {
    raw.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(CLUSTER_SCHEME))
}

/// Splits `redis+cluster://[user:password@]host1[:port1],host2[:port2][/0]` into one
/// `redis://` URL per host, each with the same credentials and path.
pub(crate) fn split_cluster_url(raw: &str) -> Result<Vec<String>, CacheError> {
    let Some((_, rest)) = raw
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(CLUSTER_SCHEME))
    else {
        return Err(CacheError::config(format!(
            "{} is not a cluster url: expected {CLUSTER_SCHEME}://host1:port1,host2:port2",
            redact_url(raw)
        )));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host list holds no '@', so the last one ends the user info even when a
    // password holds an unencoded '@'.
    let (user_info, hosts) = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => (Some(user_info), hosts),
        None => (None, authority),
    };
    if hosts.is_empty() {
        return Err(CacheError::config("the redis cluster url names no host"));
    }
    hosts
        .split(',')
        .map(|host| {
            if host.trim().is_empty() {
                return Err(CacheError::config(format!(
                    "the redis cluster url {} has an empty entry in its host list",
                    redact_url(raw)
                )));
            }
            Ok(match user_info {
                Some(user_info) => format!("redis://{user_info}@{host}{tail}"),
                None => format!("redis://{host}{tail}"),
            })
        })
        .collect()
}

/// Parses the seed URLs of a cluster: each a `redis://` URL, all with the same
/// credentials, none naming a database other than 0.
fn parse_cluster_seeds(
    seeds: &[String],
    database: Option<i64>,
    redacted_url: String,
) -> Result<Endpoint, CacheError> {
    if seeds.is_empty() {
        return Err(CacheError::config(
            "a redis cluster needs at least one seed url",
        ));
    }
    if let Some(database) = database.filter(|database| *database != 0) {
        return Err(CacheError::config(format!(
            "a redis cluster has only database 0, but database({database}) was set"
        )));
    }
    let mut infos = Vec::with_capacity(seeds.len());
    let mut secrets: Vec<String> = Vec::new();
    let mut credentials = None;
    for seed in seeds {
        let target = parse_url(seed, None)?;
        for secret in target.secrets {
            if !secrets.contains(&secret) {
                secrets.push(secret);
            }
        }
        let settings = target.info.redis_settings();
        if settings.db() != 0 {
            return Err(CacheError::config(format!(
                "a redis cluster has only database 0, but the url {} names database {}",
                target.redacted_url,
                settings.db()
            )));
        }
        let these = (
            settings.username().map(str::to_owned),
            settings.password().map(str::to_owned),
        );
        match &credentials {
            None => credentials = Some(these),
            Some(first) if *first != these => {
                return Err(CacheError::config(
                    "the seed urls of a redis cluster must all carry the same user and password",
                ))
            }
            Some(_) => {}
        }
        infos.push(target.info);
    }
    Ok(Endpoint {
        nodes: Nodes::Cluster(infos),
        redacted_url,
        secrets,
    })
}

fn check_prefix(prefix: &str) -> Result<(), CacheError> {
    match prefix.chars().last() {
        None => Ok(()),
        Some(last) if last.is_ascii_punctuation() => Ok(()),
        Some(_) => Err(CacheError::config(format!(
            "the key prefix {prefix:?} must end with a delimiter such as ':' (\"{prefix}:\"), \
             or it would also match the keys of longer prefixes like \"{prefix}bar\""
        ))),
    }
}

/// Parses and checks a `redis://` URL; the database comes from its path or from
/// `database`, which must agree when both are given.
pub(crate) fn parse_url(raw: &str, database: Option<i64>) -> Result<Target, CacheError> {
    // url::ParseError never repeats the input, so the message cannot carry a password.
    let url =
        Url::parse(raw).map_err(|err| CacheError::config(format!("invalid redis url: {err}")))?;
    match url.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(CacheError::config(
                "rediss:// asks for tls, which is not supported by this build of cache-redis \
                 (built without openssl or rustls): use redis:// on a trusted network or through a tls tunnel",
            ))
        }
        other => {
            return Err(CacheError::config(format!(
                "unsupported url scheme {other:?}: expected redis://"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CacheError::config("the redis url names no host"));
    }
    if url.query().is_some_and(|query| !query.is_empty()) {
        // The builder takes the parameters of its own URL out before this point; a
        // query here is on a seed of `cluster_builder`, where it would be lost.
        return Err(CacheError::config(
            "the seed urls of cluster_builder take no parameters: set them on the builder",
        ));
    }
    let from_path = match url.path().trim_matches('/') {
        "" => None,
        path => Some(path.parse::<u32>().map(i64::from).map_err(|_| {
            CacheError::config(format!(
                "the path of a redis url is the database number, not {path:?}"
            ))
        })?),
    };
    let db = match (from_path, database) {
        (Some(a), Some(b)) if a != b => {
            return Err(CacheError::config(format!(
                "the url names database {a} but database({b}) was set"
            )))
        }
        (a, b) => a.or(b).unwrap_or(0),
    };

    let mut secrets = Vec::new();
    if let Some(password) = url.password() {
        secrets.push(password.to_owned());
        if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
            if decoded != password {
                secrets.push(decoded.into_owned());
            }
        }
    }
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|err| CacheError::config(scrub(&format!("invalid redis url: {err}"), &secrets)))?;
    let redis_settings = info.redis_settings().clone().set_db(db);
    let info = info.set_redis_settings(redis_settings);
    Ok(Target {
        info,
        redacted_url: redact_url(raw),
        secrets,
    })
}

/// The URL with its password (if any) replaced by `***`; a URL that does not parse is
/// not shown at all, since where its password is cannot be told.
pub(crate) fn redact_url(raw: &str) -> String {
    if is_cluster_url(raw) {
        return redact_cluster_url(raw);
    }
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some("***")).is_err() {
                return "<redacted url>".to_owned();
            }
            url.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// A `redis+cluster://` URL with its password (if any) replaced by `***`; the url crate
/// cannot parse its host list, so the user info is cut out by hand.
fn redact_cluster_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return "<unparseable url>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, hosts)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}{tail}"),
            None => format!("{scheme}://{user_info}@{hosts}{tail}"),
        },
        None => raw.to_owned(),
    }
}

/// Replaces every secret in `text` by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_message(result: Result<Target, CacheError>) -> String {
        match result {
            Err(CacheError::Config { message }) => message,
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("expected a config error, got a target"),
        }
    }

    #[test]
    fn the_password_is_redacted_in_every_form() {
        assert_eq!(
            redact_url("redis://alice:pa%40ss@127.0.0.1:6379/2"),
            "redis://alice:***@127.0.0.1:6379/2"
        );
        assert_eq!(
            redact_url("redis://:s3cret@localhost"),
            "redis://:***@localhost"
        );
        assert_eq!(
            redact_url("redis://localhost:6379"),
            "redis://localhost:6379"
        );
        assert_eq!(redact_url("not a url with s3cret"), "<unparseable url>");
    }

    #[test]
    fn urls_are_parsed_with_user_password_and_database() {
        let target = parse_url("redis://alice:pa%40ss@127.0.0.1:7000/3", None).unwrap();
        let redis = target.info.redis_settings();
        assert_eq!(redis.username(), Some("alice"));
        assert_eq!(redis.password(), Some("pa@ss"));
        assert_eq!(redis.db(), 3);
        assert_eq!(
            target.secrets,
            vec!["pa%40ss".to_owned(), "pa@ss".to_owned()]
        );

        let legacy = parse_url("redis://:s3cret@127.0.0.1", Some(5)).unwrap();
        assert_eq!(legacy.info.redis_settings().username(), None);
        assert_eq!(legacy.info.redis_settings().password(), Some("s3cret"));
        assert_eq!(legacy.info.redis_settings().db(), 5);

        let same = parse_url("redis://127.0.0.1/4", Some(4)).unwrap();
        assert_eq!(same.info.redis_settings().db(), 4);
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        let tls = config_message(parse_url("rediss://:s3cret@127.0.0.1", None));
        assert!(
            tls.contains("tls") && tls.contains("not supported"),
            "{tls}"
        );
        assert!(!tls.contains("s3cret"));

        let scheme = config_message(parse_url("http://:s3cret@127.0.0.1", None));
        assert!(scheme.contains("\"http\""), "{scheme}");

        let db = config_message(parse_url("redis://:s3cret@127.0.0.1/abc", None));
        assert!(
            db.contains("database number") && !db.contains("s3cret"),
            "{db}"
        );

        let clash = config_message(parse_url("redis://127.0.0.1/2", Some(3)));
        assert!(
            clash.contains("database 2") && clash.contains("database(3)"),
            "{clash}"
        );

        let garbage = config_message(parse_url("s3cret", None));
        assert!(!garbage.contains("s3cret"), "{garbage}");
    }

    #[test]
    fn prefixes_must_end_with_a_delimiter() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("foo:").is_ok());
        assert!(check_prefix("foo/").is_ok());
        let err = check_prefix("foo").unwrap_err();
        assert!(err.to_string().contains("\"foo:\""), "{err}");
    }

    #[test]
    fn zero_and_contradictory_settings_are_refused() {
        let base = RedisCacheBuilder::new("redis://127.0.0.1");
        for builder in [
            base.clone().timeout(Duration::ZERO),
            base.clone().response_timeout(Duration::ZERO),
            base.clone().connections(0),
            base.clone().pooled(0),
            base.clone().connections(2).pooled(2),
            base.clone().max_value_size(0),
            base.clone().max_value_size(REDIS_MAX_VALUE_SIZE + 1),
            base.clone().key_prefix("foo"),
        ] {
            let shown = format!("{builder:?}");
            assert!(
                matches!(builder.validate(), Err(CacheError::Config { .. })),
                "{shown} was accepted"
            );
        }
        let settings = base.clone().validate().unwrap();
        assert_eq!(settings.mode, Mode::Multiplexed { connections: 1 });
        assert_eq!(settings.max_value_size, DEFAULT_MAX_VALUE_SIZE);
        assert_eq!(settings.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(settings.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(settings.pool_wait_timeout, DEFAULT_POOL_WAIT_TIMEOUT);
        assert_eq!(
            base.pooled(3).validate().unwrap().mode,
            Mode::Pooled { max_size: 3 }
        );
    }

    #[test]
    fn url_parameters_are_applied_and_the_builder_overrides_them() {
        let settings = RedisCacheBuilder::new(
            "redis://:s3cret@127.0.0.1:6379?prefix=app%3A&timeout=250ms&db=3&pool_size=4",
        )
        .validate()
        .unwrap();
        assert_eq!(settings.key_prefix, "app:");
        assert_eq!(settings.connect_timeout, Duration::from_millis(250));
        assert_eq!(settings.response_timeout, Duration::from_millis(250));
        assert_eq!(settings.pool_wait_timeout, Duration::from_millis(250));
        assert_eq!(settings.mode, Mode::Multiplexed { connections: 4 });
        match &settings.endpoint.nodes {
            Nodes::Single(info) => assert_eq!(info.redis_settings().db(), 3),
            Nodes::Cluster(_) => panic!("one server"),
        }
        assert!(!settings.endpoint.redacted_url.contains("s3cret"));

        let pooled = RedisCacheBuilder::new("redis://h?mode=pooled")
            .validate()
            .unwrap();
        assert_eq!(
            pooled.mode,
            Mode::Pooled {
                max_size: DEFAULT_POOL_SIZE
            }
        );
        let overridden = RedisCacheBuilder::new("redis://h?prefix=a:&pool_size=4")
            .key_prefix("b:")
            .pooled(2)
            .validate()
            .unwrap();
        assert_eq!(overridden.key_prefix, "b:");
        assert_eq!(overridden.mode, Mode::Pooled { max_size: 2 });

        let upper = RedisCacheBuilder::new("REDIS://127.0.0.1:6379/1?PREFIX=x:");
        assert!(
            matches!(upper.validate(), Err(CacheError::Config { message }) if message.contains("\"PREFIX\"")),
            "parameter names are case-sensitive"
        );
        let upper = RedisCacheBuilder::new("REDIS://127.0.0.1:6379/1")
            .validate()
            .unwrap();
        assert!(matches!(upper.endpoint.nodes, Nodes::Single(_)));
    }

    #[test]
    fn bad_url_parameters_are_config_errors_naming_them() {
        for (url, named) in [
            ("redis://:s3cret@h?colour=red", "colour"),
            ("redis://:s3cret@h?pool_size=0", "pool_size"),
            ("redis://:s3cret@h?timeout=abc", "timeout"),
            ("redis://:s3cret@h/2?db=3", "database 2"),
            ("redis://:s3cret@h?prefix=app", "\"app:\""),
            ("redis+cluster://:s3cret@h1,h2?pool_size=2", "pool_size"),
            ("redis+cluster://:s3cret@h1,h2?db=1", "database 0"),
        ] {
            match RedisCacheBuilder::new(url).validate() {
                Err(CacheError::Config { message }) => {
                    assert!(message.contains(named), "{url}: {message}");
                    assert!(!message.contains("s3cret"), "{url}: {message}");
                }
                Err(other) => panic!("{url}: expected a config error, got {other:?}"),
                Ok(_) => panic!("{url} was accepted"),
            }
        }
        let seeds = RedisCacheBuilder::new_cluster(["redis://h1?prefix=a:"]);
        assert!(matches!(seeds.validate(), Err(CacheError::Config { .. })));
        let clash = RedisCacheBuilder::new("redis://h?db=3").database(4);
        assert!(matches!(clash.validate(), Err(CacheError::Config { .. })));
    }

    #[test]
    fn cluster_urls_carry_their_parameters() {
        let settings =
            RedisCacheBuilder::new("redis+cluster://h1:7000,h2:7001?prefix=c:&timeout=2s")
                .validate()
                .unwrap();
        assert_eq!(settings.key_prefix, "c:");
        assert_eq!(settings.response_timeout, Duration::from_secs(2));
        assert!(matches!(&settings.endpoint.nodes, Nodes::Cluster(seeds) if seeds.len() == 2));
    }

    #[test]
    fn cluster_urls_split_into_seeds_with_the_same_credentials() {
        assert_eq!(
            split_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
                .unwrap(),
            vec![
                "redis://u:p%40ss@10.0.0.1:7000",
                "redis://u:p%40ss@10.0.0.2:7001",
                "redis://u:p%40ss@[::1]:7002",
            ]
        );
        assert_eq!(
            split_cluster_url("REDIS+CLUSTER://h1,h2:7001/0").unwrap(),
            vec!["redis://h1/0", "redis://h2:7001/0"]
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://:s3cret@",
            "redis+cluster://:s3cret@h1,,h2",
            "redis://:s3cret@h1",
        ] {
            let err = split_cluster_url(bad).unwrap_err();
            assert!(matches!(err, CacheError::Config { .. }), "{bad}: {err:?}");
            assert!(!err.to_string().contains("s3cret"), "{bad}: {err}");
        }
    }

    #[test]
    fn cluster_settings_are_checked() {
        let cluster = |url: &str| RedisCacheBuilder::new(url);
        let settings = cluster("redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001")
            .validate()
            .unwrap();
        assert_eq!(settings.mode, Mode::Cluster);
        assert!(matches!(&settings.endpoint.nodes, Nodes::Cluster(seeds) if seeds.len() == 2));
        assert_eq!(
            settings.endpoint.redacted_url,
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001"
        );
        assert_eq!(settings.endpoint.secrets, vec!["s3cret".to_owned()]);

        let seeds = RedisCacheBuilder::new_cluster(["redis://127.0.0.1:7000"]);
        assert_eq!(seeds.validate().unwrap().mode, Mode::Cluster);
        assert!(seeds.clone().database(0).validate().is_ok());
        for builder in [
            seeds.clone().database(1),
            seeds.clone().connections(1),
            seeds.clone().pooled(4),
            cluster("redis+cluster://h1:7000/2"),
            RedisCacheBuilder::new_cluster(["redis://:a@h1", "redis://:b@h2"]),
            RedisCacheBuilder::new_cluster(["redis://alice:a@h1", "redis://:a@h2"]),
            RedisCacheBuilder::new_cluster(Vec::<String>::new()),
            RedisCacheBuilder::new_cluster(["rediss://h1"]),
        ] {
            let shown = format!("{builder:?}");
            assert!(
                matches!(builder.validate(), Err(CacheError::Config { .. })),
                "{shown} was accepted"
            );
        }
    }

    #[test]
    fn cluster_urls_are_redacted() {
        assert_eq!(
            redact_url("redis+cluster://alice:s3cret@h1:7000,h2:7001/0"),
            "redis+cluster://alice:***@h1:7000,h2:7001/0"
        );
        assert_eq!(
            redact_url("redis+cluster://h1:7000,h2:7001"),
            "redis+cluster://h1:7000,h2:7001"
        );
        let shown = format!(
            "{:?}",
            RedisCacheBuilder::new_cluster(["redis://:s3cret@h1:7000", "redis://:s3cret@h2"])
        );
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let secrets = vec!["s3cret".to_owned()];
        assert_eq!(scrub("a s3cret and s3cret", &secrets), "a *** and ***");
        assert_eq!(scrub("nothing here", &[String::new()]), "nothing here");
    }
}
