//! The builder of a [`RedisCache`](crate::RedisCache): its settings, their defaults,
//! and the parsing of the connection URL.

use std::{fmt, time::Duration};

use cache_api::CacheError;
use redis::IntoConnectionInfo;
use url::Url;

use crate::RedisCache;

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

/// Builds a [`RedisCache`]; created by [`RedisCache::builder`].
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
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) connections: Option<usize>,
    pub(crate) pooled: Option<usize>,
    pub(crate) max_value_size: usize,
    pub(crate) database: Option<i64>,
}

impl RedisCacheBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            key_prefix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            pool_wait_timeout: DEFAULT_POOL_WAIT_TIMEOUT,
            connections: None,
            pooled: None,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            database: None,
        }
    }

    /// Puts `prefix` in front of every key this cache reads or writes, and limits
    /// [`clear`](cache_api::Cache::clear) to the keys that start with it.
    ///
    /// A non-empty prefix must end with an ASCII punctuation character, `:` by
    /// convention (`"myapp:"`): without one, the prefix `foo` would also see and clear
    /// the keys of a cache whose prefix is `foobar`. The empty prefix (the default)
    /// means no prefix: keys are stored as given and `clear` empties the database.
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
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Time an operation waits for a free pooled connection (in
    /// [`pooled`](Self::pooled) mode, and for [`clear`](cache_api::Cache::clear));
    /// past it the operation fails with a [`CacheError::Timeout`] whose operation is
    /// `"pool checkout"`. Default 1 s.
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
    /// each other. Contradicts [`pooled`](Self::pooled).
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = Some(connections);
        self
    }

    /// Sends every operation through a pool of at most `max_size` connections, one
    /// connection per operation at a time, instead of the shared multiplexed
    /// connections. Each checkout costs a `PING`, so this is slower; it suits servers
    /// or proxies that handle pipelined requests badly. Contradicts
    /// [`connections`](Self::connections).
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
    /// (`redis://host/2`); naming two different numbers is a configuration error.
    pub fn database(mut self, database: u32) -> Self {
        self.database = Some(i64::from(database));
        self
    }

    /// Checks the settings, connects and `PING`s the server.
    ///
    /// # Errors
    ///
    /// - [`CacheError::Config`] for a malformed URL, a `rediss://` URL (TLS is not
    ///   supported by this build), a zero timeout, size or count, a prefix without a
    ///   trailing delimiter, or contradictory settings;
    /// - [`CacheError::Unreachable`] or [`CacheError::Timeout`] when the server cannot
    ///   be reached;
    /// - [`CacheError::Auth`] when it refuses the credentials (or asks for some).
    pub async fn build(self) -> Result<RedisCache, CacheError> {
        let settings = self.validate()?;
        RedisCache::connect_with(settings).await
    }

    pub(crate) fn validate(&self) -> Result<Settings, CacheError> {
        for (name, value) in [
            ("connect timeout", self.connect_timeout),
            ("response timeout", self.response_timeout),
            ("pool wait timeout", self.pool_wait_timeout),
        ] {
            if value.is_zero() {
                return Err(CacheError::config(format!("the {name} must be positive")));
            }
        }
        let mode = match (self.connections, self.pooled) {
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
        let target = parse_url(&self.url, self.database)?;
        Ok(Settings {
            target,
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
        f.debug_struct("RedisCacheBuilder")
            .field("url", &redact_url(&self.url))
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
    Multiplexed { connections: usize },
    Pooled { max_size: usize },
}

/// Checked settings, ready to connect with.
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) mode: Mode,
    pub(crate) max_value_size: usize,
}

/// Where to connect, parsed from the URL.
pub(crate) struct Target {
    pub(crate) info: redis::ConnectionInfo,
    /// The URL with its password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded, so that no error message can
    /// carry it even if a dependency ever put it in one.
    pub(crate) secrets: Vec<String>,
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
    fn scrub_replaces_every_occurrence() {
        let secrets = vec!["s3cret".to_owned()];
        assert_eq!(scrub("a s3cret and s3cret", &secrets), "a *** and ***");
        assert_eq!(scrub("nothing here", &[String::new()]), "nothing here");
    }
}
