//! The builder of [`MemcachedCache`](crate::MemcachedCache) and the connection URL it reads.
//!
//! URL form: `memcache://host[:port][,host[:port]...][/][?param=value&...]`, scheme
//! `memcache` or `memcached`, port 11211 by default, IPv6 hosts in brackets;
//! `memcaches://` for TLS (parameters `tls_ca`, `tls_cert`, `tls_key`,
//! `tls_insecure_skip_verify`, as for `rediss://`) and `memcache+unix:///path/to.sock` for
//! one server on a unix socket. Parameters:
//! `prefix`, `timeout` (`250ms`, `2s` or plain seconds such as `0.5`), `pool_size`,
//! `max_value_size` (bytes), `namespace_refresh` (like `timeout`) and `get_many_fail_open`
//! (`true` or `false`). Methods of the builder called after
//! [`MemcachedCache::builder`](crate::MemcachedCache::builder) override the URL.

use std::{fmt, path::PathBuf, time::Duration};

use cache_api::CacheError;
use cache_url_core::{CacheUrl, Host, TLS_PARAMS};

use crate::{
    keys::{is_native_byte, GENERATION_OPEN, MAX_PREFIX_LEN},
    transport::{Scheme, TlsSettings},
};

/// memcached's port when a URL names none.
pub(crate) const DEFAULT_PORT: u16 = 11211;

/// The longest a timeout is: 1 hour. A longer one, `Duration::MAX` included, is taken as
/// 1 hour, so that no call waits without end on a server that stopped answering.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Default for [`MemcachedCacheBuilder::timeout`]: memcached answers in well under a
/// millisecond, so a second already means trouble.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Default for [`MemcachedCacheBuilder::max_value_size`]: memcached's default item size of
/// 1 MiB less 512 bytes, the most an item spends on its header, flags and a 250-byte key
/// (measured: 309 bytes on memcached 1.6), so that a value of exactly this size is stored
/// by a server with default settings.
pub const DEFAULT_MAX_VALUE_SIZE: usize = (1 << 20) - 512;

/// Default for [`MemcachedCacheBuilder::pool_size`]: multiplexed connections per server.
/// Measured with `cachectl bench` (GET of 100 B at 128 tasks on one thread, see
/// BENCHMARKS.md): one, two and four connections read about as fast, sixteen slower
/// (each connection's writes gather fewer requests); two keep a second connection
/// busy while one is being dialled again, and let a server spread them over two threads.
pub const DEFAULT_POOL_SIZE: usize = 2;

/// The most connections to one server [`MemcachedCacheBuilder::pool_size`] takes:
/// memcached's default connection limit (`-c`) is 1024, and two serve any number of
/// tasks. A larger count is refused by `build` as a configuration error.
pub const MAX_POOL_SIZE: usize = 1024;

/// Default for [`MemcachedCacheBuilder::namespace_refresh`].
pub const DEFAULT_NAMESPACE_REFRESH: Duration = Duration::from_secs(1);

/// Settings of a [`MemcachedCache`](crate::MemcachedCache), checked by
/// [`build`](MemcachedCacheBuilder::build).
///
/// Created by [`MemcachedCache::builder`](crate::MemcachedCache::builder); a malformed URL
/// is reported by `build`, so the calls can be chained without a `?` in between.
///
/// ```no_run
/// # async fn demo() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_memcached::MemcachedCache;
///
/// let cache = MemcachedCache::builder("memcache://10.0.0.1:11211,10.0.0.2:11211")
///     .key_prefix("shop:")
///     .timeout(Duration::from_millis(250))
///     .pool_size(32)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until .build().await"]
#[derive(Clone)]
pub struct MemcachedCacheBuilder {
    pub(crate) servers: Result<Vec<String>, String>,
    pub(crate) scheme: Scheme,
    pub(crate) key_prefix: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) max_value_size: usize,
    pub(crate) namespace_refresh: Duration,
    pub(crate) get_many_fail_open: bool,
}

impl fmt::Debug for MemcachedCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only what was parsed is shown: a URL is never kept, so nothing it held leaks.
        f.debug_struct("MemcachedCacheBuilder")
            .field("servers", &self.servers.as_ref().map_err(|_| "invalid url"))
            .field("scheme", &self.scheme)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("max_value_size", &self.max_value_size)
            .field("namespace_refresh", &self.namespace_refresh)
            .field("get_many_fail_open", &self.get_many_fail_open)
            .finish_non_exhaustive()
    }
}

impl MemcachedCacheBuilder {
    pub(crate) fn from_url(url: &str) -> Self {
        let mut builder = Self {
            servers: Ok(Vec::new()),
            scheme: Scheme::Tcp,
            key_prefix: None,
            timeout: DEFAULT_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            namespace_refresh: DEFAULT_NAMESPACE_REFRESH,
            get_many_fail_open: false,
        };
        match parse_url(url) {
            Ok(parsed) => {
                builder.servers = Ok(parsed.servers);
                builder.scheme = parsed.scheme;
                builder.key_prefix = parsed.prefix.or(builder.key_prefix);
                builder.timeout = parsed.timeout.unwrap_or(builder.timeout);
                builder.pool_size = parsed.pool_size.unwrap_or(builder.pool_size);
                builder.max_value_size = parsed.max_value_size.unwrap_or(builder.max_value_size);
                builder.namespace_refresh = parsed
                    .namespace_refresh
                    .unwrap_or(builder.namespace_refresh);
                builder.get_many_fail_open = parsed
                    .get_many_fail_open
                    .unwrap_or(builder.get_many_fail_open);
            }
            Err(message) => builder.servers = Err(message),
        }
        builder
    }

    /// Replaces the servers of the URL with these `host[:port]` addresses (port 11211
    /// when left out, IPv6 hosts in brackets). Keys are spread over them by rendezvous
    /// hashing. They replace the socket of a `memcache+unix://` URL too, and are then
    /// reached over TCP; with `memcaches://` they are reached over TLS. A server listed
    /// twice (`h` and `h:11211` alike) makes `build` fail with a `Config` error.
    pub fn servers<S: AsRef<str>>(mut self, servers: impl IntoIterator<Item = S>) -> Self {
        if self.scheme == Scheme::Unix {
            self.scheme = Scheme::Tcp;
        }
        let parsed: Result<Vec<String>, String> = servers
            .into_iter()
            .map(|server| parse_server(server.as_ref()))
            .collect();
        // A bad URL stays an error: it must not be hidden by a later call.
        if self.servers.is_ok() {
            self.servers = parsed;
        }
        self
    }

    /// Puts every key of this cache in a namespace of its own, and makes
    /// [`clear`](cache_api::Cache::clear) remove only that namespace (see the crate docs).
    ///
    /// The prefix must be at most 128 bytes without spaces, control characters or `{`, and
    /// end with an ASCII punctuation character (`"shop:"`), so that `clear` of `shop:`
    /// never touches `shopping:`. The empty prefix means no prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// How long each call may take as a whole, dialling a connection when one must be
    /// and the exchange with the server included (default 1 s); connecting at `build` is
    /// bounded by it too. A call that runs out of it fails with
    /// [`CacheError::Timeout`] and takes the connection it waited on down with it (see
    /// [`pool_size`](Self::pool_size)). Zero is refused by `build`. Any length is
    /// accepted, but none is infinite: one longer than 1 hour, `Duration::MAX` included,
    /// is taken as 1 hour.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connections to each server (default [`DEFAULT_POOL_SIZE`]), taken in turn. Each
    /// is multiplexed: it carries the requests of every task at once, written back to
    /// back and answered in order, so a few serve any number of tasks and no call waits
    /// for a free connection.
    ///
    /// A connection is dialled when first needed and again after it failed: when the
    /// server closed it, or when a call on it ran out of its timeout (the server stopped
    /// answering; the other calls on it then fail with `Timeout` too rather than each
    /// waiting out its own). Dials to a server that time out make the next ones wait a
    /// pause that doubles from 10 ms up to 250 ms, calls failing with `Unreachable`
    /// meanwhile; a refused dial costs no pause, so a restarted server is used by the
    /// next call. From 1 to [`MAX_POOL_SIZE`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Largest value `set` accepts, in bytes (default [`DEFAULT_MAX_VALUE_SIZE`], what a
    /// server with the default 1 MiB item size stores). Larger values are
    /// [`CacheError::ValueTooLarge`] before anything is sent. For a server started with a
    /// larger `-I`, raise it to that size less 512 bytes.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// With a key prefix: how old the generation number this instance knows may get
    /// before an operation checks it again (default 1 s). Another instance's
    /// [`clear`](cache_api::Cache::clear) of the same prefix is seen within this time; the
    /// check runs alongside the operation, so it adds no round trip. Zero checks on every
    /// operation.
    pub fn namespace_refresh(mut self, every: Duration) -> Self {
        self.namespace_refresh = every;
        self
    }

    /// Whether [`get_many`](cache_api::Cache::get_many) reads the keys of a server that
    /// is unreachable or does not answer in time as misses, instead of failing the whole
    /// batch (default `false`: the batch fails).
    ///
    /// Off, a `get_many` fails with [`CacheError::Unreachable`] or
    /// [`CacheError::Timeout`] as soon as one of the servers holding its keys fails, like
    /// every other operation. On, each server's part of the batch runs under its own
    /// timeout and the parts of the servers that failed come back as `None`, logged with
    /// `tracing::warn!`: a dead server among several then costs a batch only its own
    /// keys, at the price of reading them as misses where the caller cannot tell.
    /// Other errors (a garbled answer) still fail the batch. `get`, `exists` and the
    /// writes are not affected.
    pub fn get_many_fail_open(mut self, fail_open: bool) -> Self {
        self.get_many_fail_open = fail_open;
        self
    }

    /// Checks the settings, asks every server its item size (`stats settings`), connects
    /// to every server (one `mn` no-op each) and, with a
    /// key prefix, reads (never creates) the namespace's generation number.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for a malformed URL, no server, credentials in the URL (the
    /// meta protocol has no authentication), a zero timeout or pool size, a bad prefix, or
    /// a server that does not answer as memcached;
    /// [`CacheError::Unreachable`] or [`CacheError::Timeout`] when a server does not
    /// answer; [`CacheError::Auth`] when a TLS certificate is refused on either side.
    /// A TLS file that cannot be read or used is a `Config` error.
    pub async fn build(self) -> Result<crate::MemcachedCache, CacheError> {
        crate::MemcachedCache::from_builder(self).await
    }

    pub(crate) fn checked_servers(&self) -> Result<&[String], CacheError> {
        match &self.servers {
            Err(message) => Err(CacheError::config(message.clone())),
            Ok(servers) if servers.is_empty() => {
                Err(CacheError::config("no memcached server given"))
            }
            Ok(servers) => {
                // The same server twice would take two shares of the keys, and a typo
                // that repeats one is more likely than a wish for that.
                for (index, server) in servers.iter().enumerate() {
                    if servers[..index].contains(server) {
                        return Err(CacheError::config(format!(
                            "the memcached server {server} is listed twice"
                        )));
                    }
                }
                Ok(servers)
            }
        }
    }

    pub(crate) fn checked_prefix(&self) -> Result<Option<&str>, CacheError> {
        let Some(prefix) = self.key_prefix.as_deref() else {
            return Ok(None);
        };
        // The empty prefix is no prefix, as for every backend.
        if prefix.is_empty() {
            return Ok(None);
        }
        cache_url_core::check_prefix_delimiter(prefix)?;
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(CacheError::config(format!(
                "the key prefix is {} bytes, more than {MAX_PREFIX_LEN}",
                prefix.len()
            )));
        }
        if !prefix.bytes().all(is_native_byte) || prefix.contains(GENERATION_OPEN) {
            return Err(CacheError::config(format!(
                "the key prefix {prefix:?} holds a space, a control character or {GENERATION_OPEN:?}"
            )));
        }
        Ok(Some(prefix))
    }
}

/// What a URL says.
#[derive(Debug, Default, PartialEq)]
struct ParsedUrl {
    servers: Vec<String>,
    scheme: Scheme,
    prefix: Option<String>,
    timeout: Option<Duration>,
    pool_size: Option<usize>,
    max_value_size: Option<usize>,
    namespace_refresh: Option<Duration>,
    get_many_fail_open: Option<bool>,
}

/// Parses a connection URL, on the workspace's one URL parser. Error messages never
/// repeat the URL: it may hold a password.
fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    read_url(url).map_err(|err| match err {
        CacheError::Config { message } => message,
        other => other.to_string(),
    })
}

/// The parameters a memcached URL understands.
const KNOWN: &[&str] = &[
    "prefix",
    "timeout",
    "pool_size",
    "max_value_size",
    "namespace_refresh",
    "get_many_fail_open",
];

fn read_url(raw: &str) -> Result<ParsedUrl, CacheError> {
    let mut url = CacheUrl::parse(raw)?;
    let scheme_name = url.scheme().to_owned();
    if !matches!(
        scheme_name.as_str(),
        "memcache" | "memcached" | "memcaches" | "memcache+unix"
    ) {
        return Err(CacheError::config(
            "the url scheme must be memcache, memcached, memcaches or memcache+unix",
        ));
    }
    if url.username().is_some() || url.password().is_some() {
        return Err(CacheError::config(NO_CREDENTIALS));
    }
    let servers = servers_of(&url)?;
    let params = url.params_mut();
    let scheme = match scheme_name.as_str() {
        "memcaches" => Scheme::Tls(TlsSettings {
            ca_file: params.take_string(&["tls_ca"])?.map(PathBuf::from),
            cert_file: params.take_string(&["tls_cert"])?.map(PathBuf::from),
            key_file: params.take_string(&["tls_key"])?.map(PathBuf::from),
            insecure_skip_verify: params
                .take_bool("tls_insecure_skip_verify")?
                .unwrap_or(false),
        }),
        other => {
            params.refuse(other, TLS_PARAMS, "use memcaches:// for tls")?;
            if other == "memcache+unix" {
                Scheme::Unix
            } else {
                Scheme::Tcp
            }
        }
    };
    let parsed = ParsedUrl {
        servers,
        scheme,
        prefix: params.take_string(&["prefix", "key_prefix"])?,
        timeout: params.take_duration("timeout")?,
        pool_size: params.take_count("pool_size")?,
        max_value_size: params.take_count("max_value_size")?,
        namespace_refresh: params.take_duration_or_zero("namespace_refresh")?,
        get_many_fail_open: params.take_bool("get_many_fail_open")?,
    };
    if parsed.scheme == Scheme::Tcp || parsed.scheme == Scheme::Unix {
        params.finish(&scheme_name, KNOWN)?;
    } else {
        params.finish(&scheme_name, &[KNOWN, TLS_PARAMS].concat())?;
    }
    Ok(parsed)
}

/// The servers a URL names: `host:port` addresses, or the one socket path of
/// `memcache+unix://`.
fn servers_of(url: &CacheUrl) -> Result<Vec<String>, CacheError> {
    if url.scheme() == "memcache+unix" {
        if !url.hosts().is_empty() || url.path().is_empty() || url.path() == "/" {
            return Err(CacheError::config(
                "a memcache+unix url names one socket path and no host: memcache+unix:///path/to/memcached.sock",
            ));
        }
        return Ok(vec![url.path().to_owned()]);
    }
    if !matches!(url.path(), "" | "/") {
        return Err(CacheError::config("the url must not have a path"));
    }
    if url.hosts().is_empty() {
        return Err(CacheError::config("the url names no memcached server"));
    }
    Ok(url
        .hosts()
        .iter()
        .map(|host| host.address(DEFAULT_PORT))
        .collect())
}

const NO_CREDENTIALS: &str =
    "credentials in the url are not supported: memcached's meta protocol has no authentication";

/// `host[:port]` to `host:port`; IPv6 hosts stay in brackets.
fn parse_server(server: &str) -> Result<String, String> {
    if server.contains('@') {
        // Not repeated: what precedes the `@` may be a password.
        return Err(NO_CREDENTIALS.to_owned());
    }
    // Quoted only when it cannot be a password (`user:password` missing its `@host`).
    Host::parse_or_explain(server).map(|host| host.address(DEFAULT_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_several_servers() {
        let parsed = parse_url("memcache://127.0.0.1:11211").unwrap();
        assert_eq!(parsed.servers, ["127.0.0.1:11211"]);
        let parsed = parse_url("memcached://a,b:11212,[::1]:11213,[::1]/").unwrap();
        assert_eq!(
            parsed.servers,
            ["a:11211", "b:11212", "[::1]:11213", "[::1]:11211"]
        );
    }

    #[test]
    fn parameters() {
        let parsed = parse_url(
            "memcache://h?prefix=shop%3A&timeout=250ms&pool_size=4&max_value_size=100&namespace_refresh=0",
        )
        .unwrap();
        assert_eq!(parsed.prefix.as_deref(), Some("shop:"));
        assert_eq!(parsed.timeout, Some(Duration::from_millis(250)));
        assert_eq!(parsed.pool_size, Some(4));
        assert_eq!(parsed.max_value_size, Some(100));
        assert_eq!(parsed.namespace_refresh, Some(Duration::ZERO));
        assert_eq!(parsed.get_many_fail_open, None);
        for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            let url = format!("memcache://a,b?get_many_fail_open={value}");
            assert_eq!(parse_url(&url).unwrap().get_many_fail_open, Some(expected));
            let builder = MemcachedCacheBuilder::from_url(&url);
            assert_eq!(builder.get_many_fail_open, expected, "{url}");
        }
        assert_eq!(
            parse_url("memcache://h?timeout=2s").unwrap().timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_url("memcache://h?timeout=0.5").unwrap().timeout,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for url in [
            "redis://h",
            "h:11211",
            "memcache://",
            "memcache://h:0",
            "memcache://h:99999",
            "memcache://h/db",
            "memcache://h,,k",
            "memcache://[::1",
            "memcache://h?timeout=-1",
            "memcache://h?timeout=soon",
            "memcache://h?pool_size=many",
            "memcache://h?get_many_fail_open=yes",
            "memcache://h?password=hunter2",
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn credentials_are_refused_and_never_repeated() {
        for url in [
            "memcache://user:hunter2@h:11211",
            "memcache://user:hun/ter2@h:11211",
            "memcache://:hunter2@h",
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(error.contains("credentials"), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("hun/ter2"),
                "{error}"
            );
            let builder = MemcachedCacheBuilder::from_url(url);
            assert!(!format!("{builder:?}").contains("hunter2"));
        }
        let error = parse_server("user:hunter2@h:11211").unwrap_err();
        assert!(
            error.contains("credentials") && !error.contains("hunter2"),
            "{error}"
        );
    }

    /// `user:password` missing its `@host` reads as a server whose port is the
    /// password: in a URL or in a server list, it is refused without being repeated; a
    /// server that cannot be a password is named.
    #[test]
    fn a_password_missing_its_host_is_never_repeated() {
        for url in [
            "memcache://user:hunter2",
            "memcache://:hunter2",
            "memcaches://h1,user:hunter2",
            "memcache://[::1]:hunter2",
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
        for server in ["user:hunter2", ":hunter2", "[::1]:hunter2", "h:hun/ter2"] {
            let builder = MemcachedCacheBuilder::from_url("memcache://h").servers([server]);
            let error = builder.servers.expect_err(server);
            assert!(
                !error.contains("hunter2") && !error.contains("hun/ter2"),
                "{server}: {error}"
            );
        }
        let named = parse_server("bad host:11211").unwrap_err();
        assert!(named.contains("\"bad host:11211\""), "{named}");
    }

    #[test]
    fn tls_and_unix_schemes() {
        let parsed =
            parse_url("memcaches://a:1,b?tls_ca=/ca.pem&tls_cert=/c.pem&tls_key=/c.key").unwrap();
        assert_eq!(parsed.servers, ["a:1", "b:11211"]);
        let Scheme::Tls(settings) = parsed.scheme else {
            panic!("expected tls, got {:?}", parsed.scheme);
        };
        assert_eq!(settings.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(settings.cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(settings.key_file, Some(PathBuf::from("/c.key")));
        assert!(!settings.insecure_skip_verify);
        let insecure = parse_url("memcaches://h?tls_insecure_skip_verify=true").unwrap();
        assert!(matches!(insecure.scheme, Scheme::Tls(ref tls) if tls.insecure_skip_verify));
        let unix = parse_url("memcache+unix:///run/memcached.sock?prefix=app%3A").unwrap();
        assert_eq!(unix.servers, ["/run/memcached.sock"]);
        assert_eq!(unix.scheme, Scheme::Unix);
        assert_eq!(unix.prefix.as_deref(), Some("app:"));
        assert_eq!(parse_url("memcache://h").unwrap().scheme, Scheme::Tcp);
        for (url, name) in [
            ("memcache://h?tls_ca=/ca.pem", "tls_ca"),
            (
                "memcache+unix:///s.sock?tls_insecure_skip_verify=true",
                "tls_insecure",
            ),
            ("memcache+unix://h/s.sock", "memcache+unix"),
            ("memcache+unix:///", "memcache+unix"),
            (
                "memcaches://h?tls_insecure_skip_verify=maybe",
                "tls_insecure_skip_verify",
            ),
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(error.contains(name), "{url}: {error}");
        }
        // `servers` replaces the socket with TCP servers.
        let builder = MemcachedCacheBuilder::from_url("memcache+unix:///s.sock").servers(["h:1"]);
        assert_eq!(builder.scheme, Scheme::Tcp);
    }

    #[test]
    fn a_server_listed_twice_is_refused() {
        for builder in [
            MemcachedCacheBuilder::from_url("memcache://a:11211,b,a:11211"),
            // Written otherwise, the same server: the default port made explicit.
            MemcachedCacheBuilder::from_url("memcache://a,a:11211"),
            MemcachedCacheBuilder::from_url("memcache://h").servers(["[::1]:7000", "[::1]:7000"]),
        ] {
            match builder.checked_servers() {
                Err(CacheError::Config { message }) => {
                    assert!(message.contains("listed twice"), "{message}");
                }
                other => panic!("expected a config error, got {other:?}"),
            }
        }
        let distinct = MemcachedCacheBuilder::from_url("memcache://a,b,a:11212");
        assert_eq!(distinct.checked_servers().unwrap().len(), 3);
    }

    #[test]
    fn schemes_are_case_insensitive() {
        for url in ["MEMCACHE://h", "Memcached://h:11212", "memCache://h"] {
            assert!(parse_url(url).is_ok(), "{url}");
        }
        assert!(parse_url("MEMCACHEX://h").is_err());
    }

    #[test]
    fn bad_parameters_are_named() {
        for (url, name) in [
            ("memcache://h?colour=blue", "colour"),
            ("memcache://h?timeout", "timeout"),
            ("memcache://h?pool_size=-1", "pool_size"),
            ("memcache://h?namespace_refresh=later", "namespace_refresh"),
            ("memcache://h?max_value_size=1.5", "max_value_size"),
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(error.contains(name), "{url}: {error}");
        }
    }

    fn prefix_of(prefix: &str) -> Result<Option<String>, CacheError> {
        MemcachedCacheBuilder::from_url("memcache://h")
            .key_prefix(prefix)
            .checked_prefix()
            .map(|prefix| prefix.map(str::to_owned))
    }

    #[test]
    fn the_empty_prefix_is_no_prefix() {
        assert_eq!(prefix_of("").unwrap(), None);
        let builder = MemcachedCacheBuilder::from_url("memcache://h?prefix=");
        assert_eq!(builder.checked_prefix().unwrap(), None);
    }

    #[test]
    fn prefixes_must_end_with_a_delimiter() {
        for good in ["app:", "a.b.", "x-", "shop/", "ns_", "k#"] {
            assert_eq!(prefix_of(good).unwrap().as_deref(), Some(good));
        }
        let error = prefix_of("foo").unwrap_err().to_string();
        assert!(
            error
                .contains(r#"the key prefix "foo" must end with a delimiter such as ':' ("foo:")"#)
                && error.contains(r#"longer prefixes like "foobar""#),
            "{error}"
        );
        for bad in ["app", "été", "a:b", "x1"] {
            assert!(prefix_of(bad).is_err(), "{bad}");
        }
        // memcached's own rules stay.
        for bad in ["a b:", "a{b:", "{:", "tab\t:"] {
            assert!(prefix_of(bad).is_err(), "{bad:?}");
        }
        assert!(prefix_of(&format!("{}:", "p".repeat(MAX_PREFIX_LEN))).is_err());
        assert!(prefix_of(&format!("{}:", "p".repeat(MAX_PREFIX_LEN - 1))).is_ok());
    }
}
