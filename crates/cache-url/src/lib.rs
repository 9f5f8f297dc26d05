#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::{sync::Arc, time::Duration};

use cache_api::{Cache, CacheError};
/// The URL language every crate of the workspace shares: [`CacheUrl`] parses, [`redact`]
/// and [`scrub`] keep passwords out of messages, [`parse_duration`] is the one grammar
/// of durations.
pub use cache_url_core::{parse_duration, redact, scrub, CacheUrl, Host, Params};

mod layers;

pub use layers::{name_layer_params, LAYER_PARAMS};

/// Settings that apply whatever the backend; unset fields keep the backend's default.
///
/// ```
/// use std::time::Duration;
///
/// let options = cache_url::Options::default()
///     .key_prefix("myapp:")
///     .timeout(Duration::from_millis(500));
/// assert_eq!(options.key_prefix.as_deref(), Some("myapp:"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
#[must_use]
pub struct Options {
    /// The namespace of this cache object: every key is stored under it, and `clear`
    /// removes only what is under it. It must end with a delimiter such as `:`, on
    /// every scheme. Ignored otherwise by `memory://`, whose every connection is a
    /// cache of its own.
    pub key_prefix: Option<String>,
    /// Connect and response timeout of network backends.
    pub timeout: Option<Duration>,
    /// Retries of calls that failed with a retryable error (`RetryLayer`); URL: `retry=3`.
    pub retry: Option<usize>,
    /// One deadline for each whole call, retries included (`TimeoutLayer`); URL:
    /// `deadline=500ms`.
    pub deadline: Option<Duration>,
    /// A `tracing` span per call (`TracingLayer`); URL: `trace=true`.
    pub trace: Option<bool>,
    /// Counters and latency histograms on the `metrics` facade (`MetricsLayer`); URL:
    /// `metrics=true`.
    pub metrics: Option<bool>,
}

impl Options {
    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries calls that failed with a retryable error, up to `retries` times (at most
    /// 100: more is refused when connecting, as in a URL).
    pub fn retry(mut self, retries: usize) -> Self {
        self.retry = Some(retries);
        self
    }

    /// Bounds every whole call, retries included, by `deadline` (longer than zero: a
    /// zero deadline is refused when connecting).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Opens a `tracing` span per call.
    pub fn trace(mut self, trace: bool) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Records counters and latencies on the `metrics` facade.
    pub fn metrics(mut self, metrics: bool) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn layer_params(&self) -> layers::LayerParams {
        layers::LayerParams {
            retry: self.retry,
            deadline: self.deadline,
            trace: self.trace,
            metrics: self.metrics,
        }
    }
}

/// The schemes this build understands, for help texts.
pub const SCHEMES: &[&str] = &[
    #[cfg(feature = "memory")]
    "memory://",
    #[cfg(feature = "redis")]
    "redis://",
    #[cfg(feature = "redis")]
    "rediss://",
    #[cfg(feature = "redis")]
    "redis+unix://",
    #[cfg(feature = "redis")]
    "redis+sentinel://",
    #[cfg(feature = "redis")]
    "redis+cluster://",
    #[cfg(feature = "redis")]
    "rediss+cluster://",
    #[cfg(feature = "memcached")]
    "memcache://",
    #[cfg(feature = "memcached")]
    "memcaches://",
    #[cfg(feature = "memcached")]
    "memcache+unix://",
];

/// Connects to the backend the URL names, with its default settings.
///
/// # Errors
///
/// [`CacheError::Config`] for a malformed URL, an unknown scheme or one whose cargo
/// feature is off; the backend's connection error otherwise.
pub async fn connect(url: &str) -> Result<Arc<dyn Cache>, CacheError> {
    connect_with(url, &Options::default()).await
}

/// Connects to the backend the URL names, with `options` applied, and wraps it in the
/// layers the URL or the options ask for (`retry`, `deadline`, `trace`, `metrics`; the
/// options win over the URL).
///
/// ```
/// # async fn run() -> Result<(), cache_api::CacheError> {
/// let cache = cache_url::connect("memory://?retry=2&deadline=250ms&trace=true").await?;
/// cache.set("k", "v".into(), None).await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_with(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    // Whitespace around the URL (a newline left in an environment variable) is no part
    // of it.
    let url = url.trim();
    // The whole URL is parsed before any parameter is read: what looks like a layer's
    // parameter may be the tail of a password holding an unencoded '?'.
    check_whole(url)?;
    let (backend_url, from_url) = layers::split(url)?;
    let params = layers::LayerParams::merged(options.layer_params(), from_url)?;
    let backend = connect_backend(&backend_url, options)
        .await
        .map_err(layers::name_layer_params)?;
    Ok(layers::stack(backend, params))
}

/// Refuses a text that is no URL, or a malformed one, showing it only redacted.
fn check_whole(url: &str) -> Result<CacheUrl, CacheError> {
    if !url.contains("://") {
        return Err(CacheError::config(format!(
            "{:?} is not a cache URL: expected one of {}",
            redact(url),
            SCHEMES.join(", ")
        )));
    }
    CacheUrl::parse(url)
}

async fn connect_backend(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    // Schemes are case-insensitive (RFC 3986, section 3.1): the parser lowercases them.
    let parsed = check_whole(url)?;
    let scheme = parsed.scheme();
    // A build without any backend reads no option.
    let _ = options;
    // Adding a backend means one more arm here, one feature in Cargo.toml.
    match scheme {
        #[cfg(feature = "memory")]
        "memory" => memory(url, options),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+unix" => redis(url, options).await,
        // `RedisCache::builder` reads the host list of a cluster or sentinel URL itself.
        #[cfg(feature = "redis")]
        "redis+cluster" | "rediss+cluster" | "redis+sentinel" => redis(url, options).await,
        #[cfg(feature = "memcached")]
        "memcache" | "memcached" | "memcaches" | "memcache+unix" => memcached(url, options).await,
        // Reached only for the schemes whose feature is off in this build.
        #[allow(unreachable_patterns)]
        "memory" | "redis" | "rediss" | "redis+unix" | "redis+cluster" | "rediss+cluster"
        | "redis+sentinel" | "memcache" | "memcached" | "memcaches" | "memcache+unix" => {
            Err(CacheError::config(format!(
                "{scheme}:// support is not compiled in: enable the matching feature of cache-url"
            )))
        }
        _ => Err(CacheError::config(format!(
            "unknown cache URL scheme in {:?}: expected one of {}",
            redact(url),
            SCHEMES.join(", ")
        ))),
    }
}

/// The key prefix a URL's query names (`?prefix=app:`, percent-decoded), if any.
///
/// Tools that work inside an application's namespace use it to nest a namespace of
/// their own under it (`app:` then `app:tool-run-1:`), so that clearing their own
/// namespace never touches the application's keys.
///
/// ```
/// assert_eq!(cache_url::url_key_prefix("redis://h:6379/0?prefix=app%3A").as_deref(), Some("app:"));
/// assert_eq!(cache_url::url_key_prefix("memcache://h?timeout=1s"), None);
/// ```
#[must_use]
pub fn url_key_prefix(url: &str) -> Option<String> {
    cache_url_core::key_prefix(url)
}

#[cfg(feature = "memory")]
fn memory(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    let mut url = CacheUrl::parse(url)?;
    if !url.hosts().is_empty() || url.username().is_some() || url.password().is_some() {
        // The host part may hold user info with a password: show the URL redacted.
        return Err(CacheError::config(format!(
            "memory:// takes no host, got {:?}",
            url.redacted()
        )));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(CacheError::config(
            "memory:// takes no path: every memory:// cache is a process's own (memory://)",
        ));
    }
    let params = url.params_mut();
    params.refuse(
        "memory",
        &["timeout", "pool_size", "db"],
        "which has no server",
    )?;
    let mut builder = cache_memory::MemoryCache::builder();
    if let Some(bytes) = params.take_number("max_capacity_bytes", "a number of bytes")? {
        builder = builder.max_capacity_bytes(bytes);
    }
    if let Some(bytes) = params.take_number("max_value_size", "a number of bytes")? {
        builder = builder.max_value_size(bytes);
    }
    // Every memory:// cache is a namespace of its own: a prefix changes nothing, but it
    // is accepted, as on every scheme, so one URL shape fits all; and checked as on every
    // scheme, so that a prefix refused elsewhere is not first accepted here.
    let from_url = params.take_string(&["prefix", "key_prefix"])?;
    for prefix in options.key_prefix.iter().chain(from_url.as_ref()) {
        cache_url_core::check_prefix_delimiter(prefix)?;
    }
    params.finish(
        "memory",
        &[
            "max_capacity_bytes",
            "max_value_size",
            "prefix",
            "key_prefix",
        ],
    )?;
    Ok(Arc::new(builder.build()?))
}

#[cfg(feature = "redis")]
async fn redis(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    let mut builder = cache_redis::RedisCache::builder(url);
    if let Some(prefix) = &options.key_prefix {
        builder = builder.key_prefix(prefix.clone());
    }
    if let Some(timeout) = options.timeout {
        builder = builder.timeout(timeout);
    }
    Ok(Arc::new(builder.build().await?))
}

#[cfg(feature = "memcached")]
async fn memcached(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    let mut builder = cache_memcached::MemcachedCache::builder(url);
    if let Some(prefix) = &options.key_prefix {
        builder = builder.key_prefix(prefix.clone());
    }
    if let Some(timeout) = options.timeout {
        builder = builder.timeout(timeout);
    }
    Ok(Arc::new(builder.build().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_urls_connect_and_options_are_checked() {
        let cache = connect("memory://").await.unwrap();
        cache.set("k", "v".into(), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

        // Whitespace around a URL, as an environment variable may leave it, is ignored.
        let padded = connect(" memory://?max_value_size=100\n").await.unwrap();
        assert_eq!(padded.limits().max_value_size, 100);
        let small = connect("memory://?max_capacity_bytes=4096&max_value_size=100")
            .await
            .unwrap();
        assert_eq!(small.limits().max_value_size, 100);

        for (bad, said) in [
            ("memory://host", "takes no host"),
            ("memory:///some/path", "takes no path"),
            ("memory://?max_value_size=lots", "max_value_size must be"),
            ("memory://?colour=red", "\"colour\""),
            ("memory://?prefix=a:&prefix=b:", "prefix is given 2 times"),
            ("memory://?prefix=%E9:", "prefix is not utf-8"),
            (
                "memory://?max_capacity_bytes=1",
                "max_capacity_bytes (1 bytes) is too small",
            ),
        ] {
            let message = cache_tck::config_message(connect(bad).await.map(drop));
            assert!(message.contains(said), "{bad}: {message}");
        }
    }

    /// Every Redis scheme reaches the Redis backend: a refusing port answers with
    /// `Unreachable` (or `Timeout`), never with an unknown scheme.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn every_redis_scheme_is_dispatched_to_the_redis_backend() {
        for url in [
            "rediss://127.0.0.1:1?tls_insecure_skip_verify=true&timeout=500ms",
            "rediss+cluster://127.0.0.1:1?timeout=500ms",
            "redis+sentinel://:s3cret@127.0.0.1:1/mymaster?timeout=500ms",
            "redis+unix:///nonexistent/redis.sock?timeout=500ms",
        ] {
            let scheme = &url[..url.find("://").unwrap() + 3];
            assert!(SCHEMES.contains(&scheme), "{scheme} listed");
            let err = connect(url).await.expect_err("nothing listens there");
            assert!(
                matches!(
                    err,
                    CacheError::Unreachable { .. } | CacheError::Timeout { .. }
                ),
                "{url}: {err:?}"
            );
            assert!(!format!("{err} {err:?}").contains("s3cret"), "{url}: {err}");
        }
    }

    /// Every memcached scheme reaches the memcached backend: a refusing port or a
    /// missing socket answers with `Unreachable` (or `Timeout`), never an unknown scheme.
    #[cfg(feature = "memcached")]
    #[tokio::test]
    async fn every_memcached_scheme_is_dispatched_to_the_memcached_backend() {
        for url in [
            "memcaches://127.0.0.1:1?tls_insecure_skip_verify=true&timeout=500ms",
            "memcache+unix:///nonexistent/memcached.sock?timeout=500ms",
        ] {
            let scheme = &url[..url.find("://").unwrap() + 3];
            assert!(SCHEMES.contains(&scheme), "{scheme} listed");
            let err = connect(url).await.expect_err("nothing listens there");
            assert!(
                matches!(
                    err,
                    CacheError::Unreachable { .. } | CacheError::Timeout { .. }
                ),
                "{url}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_schemes_and_non_urls_are_config_errors_without_secrets() {
        let err = connect("ftp://user:hunter2@host").await.err().unwrap();
        assert!(
            err.to_string()
                .contains("unknown cache URL scheme in \"ftp://user:***@host\""),
            "{err}"
        );
        let err = connect("hunter2").await.err().unwrap();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    #[tokio::test]
    async fn schemes_are_case_insensitive_and_memory_takes_the_shared_parameters() {
        for url in [
            "MEMORY://",
            "Memory://?prefix=app%3A",
            "memory://?key_prefix=x:",
        ] {
            assert!(connect(url).await.is_ok(), "{url}");
        }
        for (url, named) in [
            ("memory://?timeout=1s", "timeout"),
            ("memory://?pool_size=2", "pool_size"),
            ("memory://?db=2", "db"),
            ("memory://?colour=red", "colour"),
        ] {
            let err = connect(url).await.expect_err("a config error");
            assert!(
                matches!(&err, CacheError::Config { message } if message.contains(named)),
                "{url}: {err:?}"
            );
        }
    }

    /// A prefix without a trailing delimiter is refused on memory:// as on every other
    /// scheme, with the same message, whether the url or the options give it.
    #[tokio::test]
    async fn memory_refuses_a_prefix_without_a_delimiter() {
        let expected = cache_tck::config_message(cache_url_core::check_prefix_delimiter("app"));
        for url in ["memory://?prefix=app", "memory://?key_prefix=app"] {
            let message = cache_tck::config_message(connect(url).await.map(drop));
            assert_eq!(message, expected, "{url}");
        }
        let options = Options::default().key_prefix("app");
        let message =
            cache_tck::config_message(connect_with("memory://", &options).await.map(drop));
        assert_eq!(message, expected);
        for url in ["memory://?prefix=app:", "memory://?prefix="] {
            assert!(connect(url).await.is_ok(), "{url}");
        }
    }

    /// A parameter with an empty name is refused, naming that, on memory:// as well.
    #[tokio::test]
    async fn a_parameter_with_an_empty_name_is_refused() {
        for url in ["memory://?=1", "memory://?&=x", "memory://?retry=1&=x"] {
            let message = cache_tck::config_message(connect(url).await.map(drop));
            assert!(message.contains("empty name"), "{url}: {message}");
        }
        for url in ["memory://?max_value_size=+100", "memory://?retry=+1"] {
            let message = cache_tck::config_message(connect(url).await.map(drop));
            let name = &url[url.find('?').unwrap() + 1..url.find('=').unwrap()];
            assert!(message.contains(name), "{url}: {message}");
        }
    }

    /// What follows a '?' before an '@' may be the tail of a password: it is never read
    /// as parameters, the layers' included, nor shown.
    #[tokio::test]
    async fn the_tail_of_a_password_holding_a_query_mark_is_never_shown() {
        for url in [
            "memory://u:1?hunter2&x@",
            "memory://u:1?retry=hunter2&x@h",
            "memory://u:1?deadline=0&hunter2@h",
            "memcache://u:11211?hunter2&x@127.0.0.1:1",
        ] {
            let err = connect(url).await.expect_err("a config error");
            let shown = format!("{err} {err:?}");
            assert!(
                matches!(err, CacheError::Config { .. }) && !shown.contains("hunter2"),
                "{url}: {shown}"
            );
            assert!(
                !shown.contains("deadline") && !shown.contains("retry"),
                "{url}: {shown}"
            );
        }
    }

    /// `user:password` or `:password` missing its `@host` reads as a host whose port is
    /// the password: `connect` refuses it with `Config` on every scheme, and neither the
    /// error nor `redact` shows it; nor a bare token before an `@`, nor a parameter's
    /// value that is no setting's.
    #[tokio::test]
    async fn a_password_missing_its_host_is_never_shown_whatever_the_scheme() {
        let schemes = SCHEMES.iter().map(|scheme| scheme.trim_end_matches("://"));
        for scheme in schemes.chain(["ftp"]) {
            for rest in [
                "default:S3cretPw",
                ":S3cretPw",
                "[::1]:S3cretPw",
                "user:S3cretPw,127.0.0.1:1",
                "127.0.0.1:1,default:S3cr/etPw",
                "default:S3cr?etPw&x",
            ] {
                let url = format!("{scheme}://{rest}");
                let err = connect(&url).await.expect_err("a config error");
                let shown = format!("{err} {err:?} {}", redact(&url));
                assert!(
                    matches!(err, CacheError::Config { .. }),
                    "{url}: expected Config, got {err:?}"
                );
                for part in ["S3cr", "etPw"] {
                    assert!(!shown.contains(part), "{url}: {shown}");
                }
            }
            for url in [
                format!("{scheme}://S3cretPw@127.0.0.1:1"),
                format!("{scheme}://h?db=S3cretPw&colour=S3cretPw"),
            ] {
                assert!(!redact(&url).contains("S3cretPw"), "{}", redact(&url));
                let parsed = CacheUrl::parse(&url).unwrap();
                assert!(!format!("{parsed:?}").contains("S3cretPw"), "{parsed:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_password_in_a_memory_url_is_never_echoed() {
        for url in [
            "memory://u:hunter2@",
            "memory://u:hunter2@host?max_value_size=1",
            "MEMORY://:hunter2@",
        ] {
            let err = connect(url).await.expect_err("a config error");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
            assert!(shown.contains("***"), "{url}: {shown}");
        }
    }
}
