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
    /// removes only what is under it. Ignored by `memory://`, whose every connection
    /// is a cache of its own.
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
    let (backend_url, from_url) = layers::split(url.trim())?;
    let params = layers::LayerParams::merged(options.layer_params(), from_url)?;
    let backend = connect_backend(&backend_url, options).await?;
    Ok(layers::stack(backend, params))
}

async fn connect_backend(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    if !url.contains("://") {
        return Err(CacheError::config(format!(
            "{:?} is not a cache URL: expected one of {}",
            redact(url),
            SCHEMES.join(", ")
        )));
    }
    // Schemes are case-insensitive (RFC 3986, section 3.1): the parser lowercases them.
    let parsed = CacheUrl::parse(url)?;
    let scheme = parsed.scheme();
    // Only the network backends read the options; a build without them has none.
    let _ = options;
    // Adding a backend means one more arm here, one feature in Cargo.toml.
    match scheme {
        #[cfg(feature = "memory")]
        "memory" => memory(url),
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
fn memory(url: &str) -> Result<Arc<dyn Cache>, CacheError> {
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
    // is accepted, as on every scheme, so one URL shape fits all.
    params.take_string(&["prefix", "key_prefix"])?;
    params.finish(
        "memory",
        &["max_capacity_bytes", "max_value_size", "prefix"],
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
            let err = connect(url).await.err().expect("nothing listens there");
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
            let err = connect(url).await.err().expect("nothing listens there");
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
            let err = connect(url).await.err().expect("a config error");
            assert!(
                matches!(&err, CacheError::Config { message } if message.contains(named)),
                "{url}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_password_in_a_memory_url_is_never_echoed() {
        for url in [
            "memory://u:hunter2@",
            "memory://u:hunter2@host?max_value_size=1",
            "MEMORY://:hunter2@",
        ] {
            let err = connect(url).await.err().expect("a config error");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
            assert!(shown.contains("***"), "{url}: {shown}");
        }
    }
}
