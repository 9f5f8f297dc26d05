#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::{sync::Arc, time::Duration};

use cache_api::{Cache, CacheError};
use percent_encoding::percent_decode_str;

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

    /// Retries calls that failed with a retryable error, up to `retries` times.
    pub fn retry(mut self, retries: usize) -> Self {
        self.retry = Some(retries);
        self
    }

    /// Bounds every whole call, retries included, by `deadline`.
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
    "redis+cluster://",
    #[cfg(feature = "memcached")]
    "memcache://",
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
    let (backend_url, from_url) = layers::split(url)?;
    let backend = connect_backend(&backend_url, options).await?;
    Ok(layers::stack(backend, options.layer_params(), from_url))
}

async fn connect_backend(url: &str, options: &Options) -> Result<Arc<dyn Cache>, CacheError> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(CacheError::config(format!(
            "{:?} is not a cache URL: expected one of {}",
            redact(url),
            SCHEMES.join(", ")
        )));
    };
    // Schemes are case-insensitive (RFC 3986, section 3.1).
    let scheme = scheme.to_ascii_lowercase();
    // Only the network backends read the options; a build without them has none.
    let _ = options;
    // Adding a backend means one more arm here, one feature in Cargo.toml.
    match scheme.as_str() {
        #[cfg(feature = "memory")]
        "memory" => memory(url),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+unix" => redis(url, options).await,
        // `RedisCache::builder` reads the seed list of a `redis+cluster://` URL itself.
        #[cfg(feature = "redis")]
        "redis+cluster" => redis(url, options).await,
        #[cfg(feature = "memcached")]
        "memcache" | "memcached" => memcached(url, options).await,
        // Reached only for the schemes whose feature is off in this build.
        #[allow(unreachable_patterns)]
        "memory" | "redis" | "rediss" | "redis+unix" | "redis+cluster" | "memcache"
        | "memcached" => Err(CacheError::config(format!(
            "{scheme}:// support is not compiled in: enable the matching feature of cache-url"
        ))),
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
    let (_, query) = url.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    let mut prefix = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "prefix" || name == "key_prefix" {
            // The same decoding as the backends: `+` is a space, `%XX` a byte.
            let value = value.replace('+', " ");
            prefix = Some(
                percent_decode_str(&value)
                    .decode_utf8_lossy()
                    .trim()
                    .to_owned(),
            );
        }
    }
    prefix
}

#[cfg(feature = "memory")]
fn memory(url: &str) -> Result<Arc<dyn Cache>, CacheError> {
    let rest = &url["memory://".len()..];
    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !host.is_empty() {
        // The host part may hold user info with a password: show the URL redacted.
        return Err(CacheError::config(format!(
            "memory:// takes no host, got {:?}",
            redact(url)
        )));
    }
    let mut builder = cache_memory::MemoryCache::builder();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<u64>().map_err(|_| {
                CacheError::config(format!(
                    "the memory:// parameter {name} needs a number of bytes"
                ))
            })
        };
        builder = match name {
            "max_capacity_bytes" => builder.max_capacity_bytes(number()?),
            "max_value_size" => {
                builder.max_value_size(usize::try_from(number()?).unwrap_or(usize::MAX))
            }
            // Every memory:// cache is a namespace of its own: a prefix changes nothing,
            // but it is accepted, as on every scheme, so one URL shape fits all.
            "prefix" | "key_prefix" => builder,
            "timeout" | "pool_size" | "db" => {
                return Err(CacheError::config(format!(
                    "the url parameter {name} does not apply to memory://, which has no server"
                )))
            }
            _ => {
                return Err(CacheError::config(format!(
                    "unknown memory:// parameter {:?} (known: max_capacity_bytes, max_value_size, prefix)",
                    percent_decode_str(name).decode_utf8_lossy()
                )))
            }
        };
    }
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

/// The URL with the password of its user info replaced by `***`, safe for logs.
///
/// ```
/// assert_eq!(cache_url::redact("redis://alice:s3cret@127.0.0.1:6379/0"), "redis://alice:***@127.0.0.1:6379/0");
/// assert_eq!(cache_url::redact("redis://:s3cret@127.0.0.1"), "redis://:***@127.0.0.1");
/// assert_eq!(cache_url::redact("memcache://127.0.0.1:11211"), "memcache://127.0.0.1:11211");
/// ```
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL; it may still be a password pasted by mistake.
        return "<not a URL>".to_owned();
    };
    // The user info ends at the last '@', not at the first '/' as a parser would say: a
    // password with an unencoded '/', '?', '#' or '@' makes the URL malformed, and the
    // redactor must hide it all the same. A '@' further on (in a query value) only
    // hides more than needed.
    match rest.rfind('@') {
        Some(at) => {
            let (userinfo, after) = (&rest[..at], &rest[at..]);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{after}"),
                None => format!("{scheme}://{userinfo}{after}"),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_urls_connect_and_options_are_checked() {
        let cache = connect("memory://").await.unwrap();
        cache.set("k", "v".into(), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

        let small = connect("memory://?max_capacity_bytes=4096&max_value_size=100")
            .await
            .unwrap();
        assert_eq!(small.limits().max_value_size, 100);

        for bad in [
            "memory://host",
            "memory://?max_value_size=lots",
            "memory://?colour=red",
        ] {
            let err = connect(bad).await.err().expect("a config error");
            assert!(matches!(err, CacheError::Config { .. }), "{bad}: {err:?}");
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

    #[test]
    fn the_url_prefix_is_read_decoded() {
        assert_eq!(
            url_key_prefix("redis://h?prefix=a%3Ab%3A").as_deref(),
            Some("a:b:")
        );
        assert_eq!(
            url_key_prefix("redis://h?x=1&key_prefix=k:").as_deref(),
            Some("k:")
        );
        assert_eq!(url_key_prefix("redis://h?prefix=").as_deref(), Some(""));
        assert_eq!(url_key_prefix("redis://h"), None);
    }

    #[test]
    fn redact_hides_unencoded_reserved_characters_in_the_password() {
        assert_eq!(redact("memory://:pw/93@x@host"), "memory://:***@host");
        assert_eq!(redact("redis://u:pa?ss@host/1"), "redis://u:***@host/1");
        assert_eq!(redact("redis://u:p#w@host"), "redis://u:***@host");
        assert_eq!(
            redact("redis+cluster://u:p@h1:1,h2:2?prefix=a:"),
            "redis+cluster://u:***@h1:1,h2:2?prefix=a:"
        );
    }

    #[test]
    fn redact_handles_odd_user_info() {
        assert_eq!(redact("redis://user@host"), "redis://user@host");
        assert_eq!(
            redact("redis://u:p@ss@host/2?x=1"),
            "redis://u:***@host/2?x=1"
        );
        assert_eq!(
            redact("redis://host/?password=x"),
            "redis://host/?password=x"
        );
    }
}
