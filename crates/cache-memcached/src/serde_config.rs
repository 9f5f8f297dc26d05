//! [`MemcachedConfig`]: the builder's settings as plain data, for an application that
//! reads them from its configuration file (feature `serde`).

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{MemcachedCache, MemcachedCacheBuilder};

/// The settings of a [`MemcachedCache`] as plain data, loaded with serde from JSON, TOML
/// or any other format; durations are strings such as `"250ms"` or `"2s"`.
///
/// Only `url` is required; a field left out keeps what the URL says, else the builder's
/// default. Unknown fields are refused, so a misspelt setting is an error rather than
/// silently ignored. Nothing is checked until [`build`](Self::build) (or the builder's).
///
/// ```
/// // cache-memcached = { git = "https://github.com/cache-contract/cache-rs", features = ["serde"] }
/// use std::time::Duration;
/// use cache_memcached::MemcachedConfig;
///
/// let config: MemcachedConfig = serde_json::from_str(
///     r#"{
///         "url": "memcache://10.0.0.1:11211,10.0.0.2:11211",
///         "key_prefix": "shop:",
///         "timeout": "250ms",
///         "pool_size": 32
///     }"#,
/// )?;
/// assert_eq!(config.timeout, Some(Duration::from_millis(250)));
/// // Adjust further if needed, then `.build().await` (or `config.build().await`).
/// let builder = config.builder().get_many_fail_open(true);
/// # drop(builder);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemcachedConfig {
    /// `memcache://host[:port][,host[:port]...][?param=value...]`, as
    /// [`MemcachedCache::builder`] takes it.
    pub url: String,
    /// Replaces the URL's `prefix`; see [`MemcachedCacheBuilder::key_prefix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// See [`MemcachedCacheBuilder::timeout`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// See [`MemcachedCacheBuilder::pool_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
    /// In bytes; see [`MemcachedCacheBuilder::max_value_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_size: Option<usize>,
    /// See [`MemcachedCacheBuilder::namespace_refresh`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace_refresh: Option<Duration>,
    /// See [`MemcachedCacheBuilder::get_many_fail_open`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_many_fail_open: Option<bool>,
    /// PEM file of the CAs to trust instead of the system's roots, for a `memcaches://` URL;
    /// as the URL's `tls_ca`. See [`MemcachedCacheBuilder::tls_ca_file`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of the client certificate (chain) for mutual TLS, with `tls_key`; as the
    /// URL's `tls_cert`. See [`MemcachedCacheBuilder::tls_client_cert`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key, with `tls_cert`; as the URL's
    /// `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// **Insecure**, for test servers only: any server certificate accepted; as the
    /// URL's `tls_insecure_skip_verify`. See [`MemcachedCacheBuilder::tls_insecure_skip_verify`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_insecure_skip_verify: Option<bool>,
}

impl MemcachedConfig {
    /// A configuration of `url` alone.
    #[must_use]
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: None,
            timeout: None,
            pool_size: None,
            max_value_size: None,
            namespace_refresh: None,
            get_many_fail_open: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_insecure_skip_verify: None,
        }
    }

    /// A builder with these settings, the fields that are set overriding the URL, for
    /// further adjustment before `build`.
    pub fn builder(&self) -> MemcachedCacheBuilder {
        let mut builder = MemcachedCache::builder(&self.url);
        if let Some(prefix) = &self.key_prefix {
            builder = builder.key_prefix(prefix.clone());
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(size) = self.pool_size {
            builder = builder.pool_size(size);
        }
        if let Some(bytes) = self.max_value_size {
            builder = builder.max_value_size(bytes);
        }
        if let Some(every) = self.namespace_refresh {
            builder = builder.namespace_refresh(every);
        }
        if let Some(fail_open) = self.get_many_fail_open {
            builder = builder.get_many_fail_open(fail_open);
        }
        builder.with_tls_files(self)
    }

    /// Builds the cache: `self.builder().build()`.
    ///
    /// # Errors
    ///
    /// As [`MemcachedCacheBuilder::build`].
    pub async fn build(&self) -> Result<MemcachedCache, cache_api::CacheError> {
        self.builder().build().await
    }
}

impl MemcachedCacheBuilder {
    /// The TLS fields of `config` that are set, over the URL's; `build` checks them as
    /// it checks the URL's (a half pair of `tls_cert` and `tls_key`, a TLS setting on a
    /// plain URL: [`CacheError::Config`](cache_api::CacheError::Config)).
    fn with_tls_files(mut self, config: &MemcachedConfig) -> Self {
        if let Some(ca) = &config.tls_ca {
            self = self.with_tls("tls_ca", |tls| tls.ca_file = Some(ca.clone()));
        }
        if let Some(cert) = &config.tls_cert {
            self = self.with_tls("tls_cert", |tls| tls.cert_file = Some(cert.clone()));
        }
        if let Some(key) = &config.tls_key {
            self = self.with_tls("tls_key", |tls| tls.key_file = Some(key.clone()));
        }
        if let Some(skip) = config.tls_insecure_skip_verify {
            self = self.with_tls("tls_insecure_skip_verify", |tls| {
                tls.insecure_skip_verify = skip;
            });
        }
        self
    }
}

/// The URL is shown with its whole user info replaced by `***` (memcached refuses
/// credentials, but a configuration file may still hold some, and a user name alone may
/// be a token), and its parameters as `cache_url_core::redact` shows them (a value that
/// is not a setting in its expected form hidden).
impl fmt::Debug for MemcachedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedConfig")
            .field("url", &without_user_info(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("max_value_size", &self.max_value_size)
            .field("namespace_refresh", &self.namespace_refresh)
            .field("get_many_fail_open", &self.get_many_fail_open)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_insecure_skip_verify", &self.tls_insecure_skip_verify)
            .finish()
    }
}

/// `url` redacted, with its user info hidden whole: `memcache://***@host`.
fn without_user_info(url: &str) -> String {
    let shown = cache_url_core::redact(url);
    match shown.split_once("://") {
        // A socket path (`memcache+unix:///p@th`) has no user info.
        Some((scheme, rest)) if !rest.starts_with('/') => match rest.rfind('@') {
            Some(at) => format!("{scheme}://***{}", &rest[at..]),
            None => shown,
        },
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_reaches_the_builder() {
        let config: MemcachedConfig = serde_json::from_str(
            r#"{
                "url": "memcache://h1:11212,h2?timeout=9s&prefix=url:",
                "key_prefix": "app:",
                "timeout": "250ms",
                "pool_size": 3,
                "max_value_size": 1000,
                "namespace_refresh": "2s 500ms",
                "get_many_fail_open": true
            }"#,
        )
        .unwrap();
        let builder = config.builder();
        assert_eq!(
            builder.checked_servers().unwrap(),
            ["h1:11212".to_owned(), "h2:11211".to_owned()]
        );
        assert_eq!(builder.checked_prefix().unwrap(), Some("app:"));
        assert_eq!(builder.timeout, Duration::from_millis(250));
        assert_eq!(builder.pool_size, 3);
        assert_eq!(builder.max_value_size, 1000);
        assert_eq!(builder.namespace_refresh, Duration::from_millis(2500));
        assert!(builder.get_many_fail_open);
    }

    #[test]
    fn fields_left_out_keep_the_url_then_the_defaults() {
        let config: MemcachedConfig =
            serde_json::from_str(r#"{"url": "memcache://h?timeout=3s&prefix=p:"}"#).unwrap();
        assert_eq!(
            config,
            MemcachedConfig::from_url("memcache://h?timeout=3s&prefix=p:")
        );
        let builder = config.builder();
        assert_eq!(builder.timeout, Duration::from_secs(3));
        assert_eq!(builder.checked_prefix().unwrap(), Some("p:"));
        assert_eq!(builder.pool_size, crate::DEFAULT_POOL_SIZE);
        // And back: only what was set is written.
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"url":"memcache://h?timeout=3s&prefix=p:"}"#
        );
    }

    #[test]
    fn tls_fields_reach_the_builder_and_are_checked_as_the_url_parameters() {
        let config: MemcachedConfig = serde_json::from_str(
            r#"{"url": "memcaches://h", "tls_cert": "/c.pem", "tls_key": "/k.pem"}"#,
        )
        .unwrap();
        match &config.builder().scheme {
            crate::transport::Scheme::Tls(tls) => {
                assert_eq!(tls.cert_file, config.tls_cert);
                assert_eq!(tls.key_file, config.tls_key);
                assert_eq!(tls.ca_file, None);
            }
            other => panic!("not tls: {other:?}"),
        }
        // A TLS setting on a plain URL is refused, naming it.
        let plain: MemcachedConfig =
            serde_json::from_str(r#"{"url": "memcache://h", "tls_ca": "/ca.pem"}"#).unwrap();
        let error = plain.builder().checked_servers().unwrap_err();
        assert!(error.to_string().contains("tls_ca"), "{error}");
        // Half a pair is refused when the transport is made.
        let half: MemcachedConfig =
            serde_json::from_str(r#"{"url": "memcaches://h", "tls_key": "/k.pem"}"#).unwrap();
        let error = crate::transport::Transport::new(&half.builder().scheme)
            .expect_err("a key without its certificate");
        assert!(error.to_string().contains("tls_cert"), "{error}");
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"url":"memcaches://h","tls_cert":"/c.pem","tls_key":"/k.pem"}"#
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused() {
        for (json, expected) in [
            (
                r#"{"url": "memcache://h", "timeuot": "1s"}"#,
                "unknown field",
            ),
            (r#"{"url": "memcache://h", "timeout": 5}"#, "invalid type"),
            (r#"{"url": "memcache://h", "timeout": "soon"}"#, "soon"),
            (r#"{"key_prefix": "p:"}"#, "missing field `url`"),
        ] {
            let error = serde_json::from_str::<MemcachedConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    /// No part of the user info shows: memcached takes no credentials, and a user
    /// name alone may be a token.
    #[test]
    fn debug_hides_the_whole_user_info() {
        for (url, expected) in [
            (
                "memcache://user:s3cret@h:11211?prefix=p:",
                "memcache://***@h:11211?prefix=p:",
            ),
            (
                "memcache://hunter2@127.0.0.1:11211",
                "memcache://***@127.0.0.1:11211",
            ),
            ("memcaches://hun@ter2@h", "memcaches://***@h"),
            ("memcache://user:hunter2", "memcache://user:***"),
            ("memcache://h?colour=hunter2", "memcache://h?colour=***"),
            (
                "memcache+unix:///run/m@c.sock?prefix=p:",
                "memcache+unix:///run/m@c.sock?prefix=p:",
            ),
            ("memcache://h1,h2:11212", "memcache://h1,h2:11212"),
        ] {
            let shown = format!("{:?}", MemcachedConfig::from_url(url));
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cret"),
                "{shown}"
            );
            assert!(
                shown.contains(&format!("url: {expected:?}")),
                "{url}: {shown}"
            );
        }
    }
}
