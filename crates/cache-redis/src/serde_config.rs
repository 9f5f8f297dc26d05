//! [`RedisConfig`]: the builder's settings as plain data, for an application that reads
//! them from its configuration file (feature `serde`).

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    endpoint::redact_url, ConnectionModel, RedisCache, RedisCacheBuilder, DEFAULT_POOL_SIZE,
};

/// The settings of a [`RedisCache`] as plain data, loaded with serde from JSON, TOML or
/// any other format; durations are strings such as `"250ms"` or `"2s"`.
///
/// Only `url` is required (`redis://...` or `redis+cluster://...`); a field left out
/// keeps what the URL says, else the builder's default. Unknown fields are refused, so a
/// misspelt setting is an error rather than silently ignored. Nothing is checked until
/// [`build`](Self::build) (or the builder's). `Debug` shows the URL with its password
/// replaced by `***`, and so is the value of any parameter that is not a setting in its
/// expected form (`?db=2`, `?timeout=1s` and the prefix show, `?db=s3cret` or
/// `?colour=red` do not): a secret pasted into the wrong place does not reach a log.
///
/// ```
/// // cache-redis = { git = "https://github.com/cache-contract/cache-rs", features = ["serde"] }
/// use std::time::Duration;
/// use cache_redis::{ConnectionMode, RedisConfig};
///
/// let config: RedisConfig = serde_json::from_str(
///     r#"{
///         "url": "redis://:s3cret@10.0.0.1:6379/2",
///         "key_prefix": "shop:",
///         "response_timeout": "250ms",
///         "mode": "pooled",
///         "pool_size": 32
///     }"#,
/// )?;
/// assert_eq!(config.response_timeout, Some(Duration::from_millis(250)));
/// assert_eq!(config.mode, Some(ConnectionMode::Pooled));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// // Adjust further if needed, then `.build().await` (or `config.build().await`).
/// let builder = config.builder().max_value_size(1 << 20);
/// # drop(builder);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// As [`RedisCache::builder`] takes it, URL parameters included.
    pub url: String,
    /// Replaces the URL's `prefix`; see [`RedisCacheBuilder::key_prefix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Sets the three timeouts below at once (those also given override it); see
    /// [`RedisCacheBuilder::timeout`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// See [`RedisCacheBuilder::connect_timeout`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// See [`RedisCacheBuilder::response_timeout`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_timeout: Option<Duration>,
    /// See [`RedisCacheBuilder::pool_wait_timeout`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub pool_wait_timeout: Option<Duration>,
    /// The connection model, as the URL's `mode`: `"multiplexed"` or `"pooled"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ConnectionMode>,
    /// As the URL's `pool_size`: the number of multiplexed connections, or the pool's
    /// size with `mode = "pooled"` (default 16 there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
    /// In bytes; see [`RedisCacheBuilder::max_value_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_size: Option<usize>,
    /// See [`RedisCacheBuilder::database`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<u32>,
    /// PEM file of the CAs to trust instead of the system's roots, for a `rediss://` or `rediss+cluster://` URL;
    /// as the URL's `tls_ca`. See [`RedisCacheBuilder::tls_ca_file`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of the client certificate (chain) for mutual TLS, with `tls_key`; as the
    /// URL's `tls_cert`. See [`RedisCacheBuilder::tls_client_cert`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key, with `tls_cert`; as the URL's
    /// `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// **Insecure**, for test servers only: any server certificate accepted; as the
    /// URL's `tls_insecure_skip_verify`. See [`RedisCacheBuilder::tls_insecure_skip_verify`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_insecure_skip_verify: Option<bool>,
}

/// The kind of [`ConnectionModel`] a [`RedisConfig`] names; its size is `pool_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConnectionMode {
    /// [`ConnectionModel::Multiplexed`].
    Multiplexed,
    /// [`ConnectionModel::Pooled`].
    Pooled,
}

impl RedisConfig {
    /// A configuration of `url` alone.
    #[must_use]
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: None,
            timeout: None,
            connect_timeout: None,
            response_timeout: None,
            pool_wait_timeout: None,
            mode: None,
            pool_size: None,
            max_value_size: None,
            database: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_insecure_skip_verify: None,
        }
    }

    /// The connection model that `mode` and `pool_size` name, read as the URL's
    /// parameters of the same names are; `None` when neither is set.
    #[must_use]
    pub fn connection_model(&self) -> Option<ConnectionModel> {
        match (self.mode, self.pool_size) {
            (Some(ConnectionMode::Pooled), size) => Some(ConnectionModel::Pooled {
                max_size: size.unwrap_or(DEFAULT_POOL_SIZE),
            }),
            (Some(ConnectionMode::Multiplexed) | None, Some(connections)) => {
                Some(ConnectionModel::Multiplexed { connections })
            }
            (Some(ConnectionMode::Multiplexed), None) => Some(ConnectionModel::default()),
            (None, None) => None,
        }
    }

    /// A builder with these settings, the fields that are set overriding the URL, for
    /// further adjustment before `build`.
    pub fn builder(&self) -> RedisCacheBuilder {
        let mut builder = RedisCache::builder(&self.url);
        if let Some(prefix) = &self.key_prefix {
            builder = builder.key_prefix(prefix.clone());
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.response_timeout {
            builder = builder.response_timeout(timeout);
        }
        if let Some(timeout) = self.pool_wait_timeout {
            builder = builder.pool_wait_timeout(timeout);
        }
        if let Some(model) = self.connection_model() {
            builder = builder.connection_model(model);
        }
        if let Some(bytes) = self.max_value_size {
            builder = builder.max_value_size(bytes);
        }
        if let Some(database) = self.database {
            builder = builder.database(database);
        }
        builder.with_tls_files(self)
    }

    /// Builds the cache: `self.builder().build()`.
    ///
    /// # Errors
    ///
    /// As [`RedisCacheBuilder::build`].
    pub async fn build(&self) -> Result<RedisCache, cache_api::CacheError> {
        self.builder().build().await
    }
}

impl RedisCacheBuilder {
    /// The TLS fields of `config` that are set, over the URL's; `build` checks them as
    /// it checks the URL's (a half pair of `tls_cert` and `tls_key`, a TLS setting on a
    /// plain URL whatever its value, `false` included:
    /// [`CacheError::Config`](cache_api::CacheError::Config)).
    fn with_tls_files(mut self, config: &RedisConfig) -> Self {
        if let Some(ca) = &config.tls_ca {
            self.tls.ca_file = Some(ca.clone());
        }
        if let Some(cert) = &config.tls_cert {
            self.tls.cert_file = Some(cert.clone());
        }
        if let Some(key) = &config.tls_key {
            self.tls.key_file = Some(key.clone());
        }
        if let Some(skip) = config.tls_insecure_skip_verify {
            self = self.tls_insecure_skip_verify(skip);
        }
        self
    }
}

/// The URL is shown with its password, and the values of parameters that are not a
/// setting in its expected form, replaced by `***`.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("mode", &self.mode)
            .field("pool_size", &self.pool_size)
            .field("max_value_size", &self.max_value_size)
            .field("database", &self.database)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_insecure_skip_verify", &self.tls_insecure_skip_verify)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Mode;

    #[test]
    fn every_setting_reaches_the_builder() {
        let config: RedisConfig = serde_json::from_str(
            r#"{
                "url": "redis://:s3cret@h:6380?timeout=9s&prefix=url:",
                "key_prefix": "app:",
                "timeout": "250ms",
                "response_timeout": "1s 500ms",
                "mode": "pooled",
                "pool_size": 3,
                "max_value_size": 1000,
                "database": 2
            }"#,
        )
        .unwrap();
        let settings = config.builder().validate().unwrap();
        assert_eq!(settings.key_prefix, "app:");
        assert_eq!(settings.connect_timeout, Duration::from_millis(250));
        assert_eq!(settings.pool_wait_timeout, Duration::from_millis(250));
        assert_eq!(settings.response_timeout, Duration::from_millis(1500));
        assert_eq!(settings.mode, Mode::Pooled { max_size: 3 });
        assert_eq!(settings.max_value_size, 1000);
        match &settings.endpoint.nodes {
            crate::endpoint::Nodes::Single(info) => assert_eq!(info.redis_settings().db(), 2),
            _ => panic!("one server"),
        }
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn fields_left_out_keep_the_url_then_the_defaults() {
        let config: RedisConfig =
            serde_json::from_str(r#"{"url": "redis://h?timeout=3s&prefix=p:&pool_size=2"}"#)
                .unwrap();
        assert_eq!(
            config,
            RedisConfig::from_url("redis://h?timeout=3s&prefix=p:&pool_size=2")
        );
        let settings = config.builder().validate().unwrap();
        assert_eq!(settings.response_timeout, Duration::from_secs(3));
        assert_eq!(settings.key_prefix, "p:");
        assert_eq!(settings.mode, Mode::Multiplexed { connections: 2 });
        assert_eq!(settings.max_value_size, crate::DEFAULT_MAX_VALUE_SIZE);
        // And back: only what was set is written.
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"url":"redis://h?timeout=3s&prefix=p:&pool_size=2"}"#
        );
    }

    #[test]
    fn tls_fields_reach_the_builder_and_are_checked_as_the_url_parameters() {
        let config: RedisConfig = serde_json::from_str(
            r#"{"url": "rediss://h", "tls_ca": "/no/such/ca.pem", "tls_insecure_skip_verify": false}"#,
        )
        .unwrap();
        let builder = config.builder();
        assert_eq!(builder.tls.ca_file, config.tls_ca);
        assert!(!builder.tls.insecure_skip_verify);
        let message = |json: &str| {
            let config: RedisConfig = serde_json::from_str(json).unwrap();
            match config.builder().validate() {
                Err(error @ cache_api::CacheError::Config { .. }) => error.to_string(),
                Err(other) => panic!("{json}: {other:?}"),
                Ok(_) => panic!("{json}: accepted"),
            }
        };
        // The file is read at build, and a missing one named.
        let missing = message(r#"{"url": "rediss://h", "tls_ca": "/no/such/ca.pem"}"#);
        assert!(missing.contains("tls_ca"), "{missing}");
        let half = message(r#"{"url": "rediss://h", "tls_cert": "/c.pem"}"#);
        assert!(half.contains("tls_key"), "{half}");
        message(r#"{"url": "redis://h", "tls_insecure_skip_verify": true}"#);
        // And back: the fields set are written under the URL parameters' names.
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"url":"rediss://h","tls_ca":"/no/such/ca.pem","tls_insecure_skip_verify":false}"#
        );
    }

    /// A TLS field on a URL without TLS is refused whatever its value, `false` included,
    /// as the URL's parameter is.
    #[test]
    fn a_tls_field_on_a_url_without_tls_is_refused_whatever_its_value() {
        for url in [
            "redis://h",
            "redis+unix:///run/redis.sock",
            "redis+cluster://h1,h2",
            "redis+sentinel://h/mymaster",
        ] {
            for skip in [false, true] {
                let config = RedisConfig {
                    tls_insecure_skip_verify: Some(skip),
                    ..RedisConfig::from_url(url)
                };
                let message = cache_tck::config_message(config.builder().validate().map(drop));
                assert!(
                    message.contains("tls_insecure_skip_verify"),
                    "{url} {skip}: {message}"
                );
            }
        }
        let tls = RedisConfig {
            tls_insecure_skip_verify: Some(false),
            ..RedisConfig::from_url("rediss://h")
        };
        assert!(tls.builder().validate().is_ok());
    }

    /// A timeout past the longest, in any field, is the longest: none is infinite.
    #[test]
    fn timeouts_past_the_longest_are_the_longest() {
        for json in [
            r#"{"url": "redis://h", "timeout": "10000000000y"}"#,
            r#"{"url": "redis://h", "response_timeout": "10000000000y",
                "connect_timeout": "584542046090y", "pool_wait_timeout": "18446744073709551615s"}"#,
        ] {
            let config: RedisConfig = serde_json::from_str(json).unwrap();
            let settings = config.builder().validate().unwrap();
            assert_eq!(
                [
                    settings.connect_timeout,
                    settings.response_timeout,
                    settings.pool_wait_timeout
                ],
                [crate::builder::MAX_TIMEOUT; 3],
                "{json}"
            );
        }
    }

    /// `Debug` shows neither a password missing its `@host` nor a parameter's value
    /// that is not a setting in its expected form; a setting's value shows.
    #[test]
    fn debug_shows_no_password_and_no_odd_parameter_value() {
        for (url, expected) in [
            ("redis://default:S3cretPw", "redis://default:***"),
            ("redis+cluster://:S3cretPw,h:7000", "redis+cluster://:***"),
            ("redis://S3cretPw@h", "redis://***@h"),
            ("redis://h?db=S3cretPw", "redis://h?db=***"),
            ("redis://h?colour=S3cretPw", "redis://h?colour=***"),
            (
                "redis://h/2?prefix=app:&timeout=250ms&db=2",
                "redis://h/2?prefix=app:&timeout=250ms&db=2",
            ),
        ] {
            let shown = format!("{:?}", RedisConfig::from_url(url));
            assert!(
                shown.contains(&format!("url: {expected:?}")),
                "{url}: {shown}"
            );
        }
    }

    #[test]
    fn mode_and_pool_size_read_as_the_url_parameters() {
        let model = |json: &str| {
            serde_json::from_str::<RedisConfig>(json)
                .unwrap()
                .connection_model()
        };
        assert_eq!(model(r#"{"url": "redis://h"}"#), None);
        assert_eq!(
            model(r#"{"url": "redis://h", "mode": "pooled"}"#),
            Some(ConnectionModel::Pooled {
                max_size: DEFAULT_POOL_SIZE
            })
        );
        assert_eq!(
            model(r#"{"url": "redis://h", "pool_size": 4}"#),
            Some(ConnectionModel::Multiplexed { connections: 4 })
        );
        assert_eq!(
            model(r#"{"url": "redis://h", "mode": "multiplexed"}"#),
            Some(ConnectionModel::Multiplexed { connections: 1 })
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        for json in [
            r#"{"url": "redis://h", "prefix": "typo:"}"#,
            r#"{"url": "redis://h", "timeout": "soon"}"#,
            r#"{"url": "redis://h", "mode": "sharded"}"#,
            r#"{"key_prefix": "no-url:"}"#,
        ] {
            assert!(
                serde_json::from_str::<RedisConfig>(json).is_err(),
                "{json} was accepted"
            );
        }
        let zero = RedisConfig {
            pool_size: Some(0),
            ..RedisConfig::from_url("redis://h")
        };
        assert!(matches!(
            zero.builder().validate(),
            Err(cache_api::CacheError::Config { .. })
        ));
        let cluster = RedisConfig {
            mode: Some(ConnectionMode::Pooled),
            ..RedisConfig::from_url("redis+cluster://:s3cret@h1:7000,h2:7001")
        };
        match cluster.builder().validate() {
            Err(cache_api::CacheError::Config { message }) => {
                assert!(!message.contains("s3cret"), "{message}");
            }
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("a pool on a cluster was accepted"),
        }
        let shown = format!("{cluster:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
