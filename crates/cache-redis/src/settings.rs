//! Checking a builder's settings into what a connection needs: the connection model,
//! the limits, the prefix and where to connect. Every refusal is a `CacheError::Config`.

use std::time::Duration;

use cache_api::CacheError;

use crate::{
    builder::{
        ConnectionModel, RedisCacheBuilder, MAX_CONNECTIONS, MAX_TIMEOUT, REDIS_MAX_VALUE_SIZE,
    },
    endpoint::{
        certificates_for, is_cluster_url, parse_cluster_seeds, parse_url, redact_url,
        split_cluster_url, Database, Endpoint, Nodes,
    },
    sentinel::{is_sentinel_url, parse_sentinel_url},
    tls::configure,
};

impl RedisCacheBuilder {
    /// Checks every setting, the builder's own calls winning over the URL's parameters.
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
        // No timeout is infinite: a longer one (`Duration::MAX`, a URL's `584542046090y`)
        // is the longest there is, so that no call waits without end on a stopped server.
        let [connect_timeout, response_timeout, pool_wait_timeout] = [
            self.connect_timeout,
            self.response_timeout,
            self.pool_wait_timeout,
        ]
        .map(|timeout| timeout.min(MAX_TIMEOUT));
        let cluster = self.seeds.is_some() || is_cluster_url(&self.url);
        let mode = self.mode(cluster)?;
        if self.url_pool_wait_named && !matches!(mode, Mode::Pooled { .. }) {
            return Err(CacheError::config(
                "the url parameter pool_wait_timeout applies to a pool only (mode=pooled): \
                 multiplexed connections and a cluster have no pool to wait for",
            ));
        }
        if self.max_value_size == 0 || self.max_value_size > REDIS_MAX_VALUE_SIZE {
            return Err(CacheError::config(format!(
                "the max value size must be between 1 and {REDIS_MAX_VALUE_SIZE} bytes (redis's own limit), not {}",
                self.max_value_size
            )));
        }
        cache_url_core::check_prefix_delimiter(&self.key_prefix)?;
        let endpoint = self.endpoint(cluster)?;
        if self.tls_insecure_named {
            refuse_tls_without_tls(&endpoint.nodes)?;
        }
        Ok(Settings {
            endpoint,
            key_prefix: self.key_prefix.clone(),
            connect_timeout,
            response_timeout,
            pool_wait_timeout,
            mode,
            max_value_size: self.max_value_size,
        })
    }

    /// The connection model: the builder's call, else the URL's `mode` and `pool_size`.
    fn mode(&self, cluster: bool) -> Result<Mode, CacheError> {
        let model = self.connection_model.or(self.url_model);
        Ok(match model {
            Some(_) if cluster => {
                return Err(CacheError::config(
                    "a connection model (connection_model(..), or the url parameters \
                     pool_size and mode) does not apply to a redis cluster: \
                     the cluster client keeps one multiplexed connection per node",
                ))
            }
            None if cluster => Mode::Cluster,
            None => Mode::Multiplexed { connections: 1 },
            Some(ConnectionModel::Pooled { max_size }) => Mode::Pooled {
                max_size: connection_count("the pool size", max_size)?,
            },
            Some(ConnectionModel::Multiplexed { connections }) => Mode::Multiplexed {
                connections: connection_count("the number of connections", connections)?,
            },
        })
    }

    /// Where to connect: the URL (or seeds) with the database the builder names.
    fn endpoint(&self, cluster: bool) -> Result<Endpoint, CacheError> {
        let database = match (self.database, self.url_database) {
            (Some(set), Some(named)) if set != named => {
                return Err(CacheError::config(format!(
                    "{} but database({set}) was set",
                    Database::Param(named).asked()
                )))
            }
            (Some(set), _) => Some(Database::Set(set)),
            (None, named) => named.map(Database::Param),
        };
        if !cluster {
            if is_sentinel_url(&self.url) {
                return parse_sentinel_url(&self.url, database, &self.tls);
            }
            let target = parse_url(&self.url, database)?;
            let certificates = certificates_for(std::slice::from_ref(&target.info), &self.tls)?;
            return Ok(Endpoint {
                nodes: Nodes::Single(configure(target.info, &self.tls, certificates.as_ref())?),
                redacted_url: target.redacted_url,
                secrets: target.secrets,
                certificates,
            });
        }
        let (seeds, shown) = match &self.seeds {
            Some(seeds) => (
                seeds.clone(),
                seeds
                    .iter()
                    .map(|seed| redact_url(seed))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => (split_cluster_url(&self.url)?, redact_url(&self.url)),
        };
        parse_cluster_seeds(&seeds, database, shown, &self.tls)
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

/// Refuses a TLS setting given for `nodes` when any of them is reached without TLS:
/// the setting would be ignored there, whatever its value. (Settings that change
/// something are refused before their files are read, in `endpoint.rs`; this catches
/// `tls_insecure_skip_verify(false)`, which changes nothing.)
fn refuse_tls_without_tls(nodes: &Nodes) -> Result<(), CacheError> {
    let plain =
        |info: &redis::ConnectionInfo| !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    let without_tls = match nodes {
        Nodes::Single(info) => plain(info),
        Nodes::Cluster(seeds) => seeds.iter().any(plain),
        Nodes::Sentinel(_) => true,
    };
    if without_tls {
        return Err(CacheError::config(
            "tls_insecure_skip_verify was given, whatever its value, for a url without tls: \
             tls_ca, tls_cert, tls_key and tls_insecure_skip_verify apply to rediss:// (and \
             rediss+cluster://) only",
        ));
    }
    Ok(())
}

/// `count` when it is from 1 to [`MAX_CONNECTIONS`].
fn connection_count(what: &str, count: usize) -> Result<usize, CacheError> {
    if (1..=MAX_CONNECTIONS).contains(&count) {
        return Ok(count);
    }
    Err(CacheError::config(format!(
        "{what} must be from 1 to {MAX_CONNECTIONS}, not {count}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_VALUE_SIZE, DEFAULT_POOL_SIZE,
        DEFAULT_POOL_WAIT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT,
    };

    #[test]
    fn prefixes_must_end_with_a_delimiter() {
        assert!(cache_url_core::check_prefix_delimiter("").is_ok());
        assert!(cache_url_core::check_prefix_delimiter("foo:").is_ok());
        assert!(cache_url_core::check_prefix_delimiter("foo/").is_ok());
        let err = cache_url_core::check_prefix_delimiter("foo").unwrap_err();
        assert!(err.to_string().contains("\"foo:\""), "{err}");
    }

    #[test]
    fn zero_and_contradictory_settings_are_refused() {
        let base = RedisCacheBuilder::new("redis://127.0.0.1");
        for builder in [
            base.clone().timeout(Duration::ZERO),
            base.clone().response_timeout(Duration::ZERO),
            base.clone()
                .connection_model(ConnectionModel::Multiplexed { connections: 0 }),
            base.clone()
                .connection_model(ConnectionModel::Pooled { max_size: 0 }),
            base.clone().connection_model(ConnectionModel::Multiplexed {
                connections: MAX_CONNECTIONS + 1,
            }),
            base.clone().connection_model(ConnectionModel::Pooled {
                max_size: usize::MAX,
            }),
            RedisCacheBuilder::new("redis://127.0.0.1?pool_size=18446744073709551615"),
            RedisCacheBuilder::new("redis://127.0.0.1?mode=pooled&pool_size=10001"),
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
            base.clone()
                .connection_model(ConnectionModel::Pooled {
                    max_size: MAX_CONNECTIONS
                })
                .validate()
                .unwrap()
                .mode,
            Mode::Pooled {
                max_size: MAX_CONNECTIONS
            }
        );
        assert_eq!(
            base.connection_model(ConnectionModel::Pooled { max_size: 3 })
                .validate()
                .unwrap()
                .mode,
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
            _ => panic!("one server"),
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
            .connection_model(ConnectionModel::Pooled { max_size: 2 })
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
    fn a_pool_wait_timeout_without_a_pool_is_refused() {
        for url in [
            "redis://h?pool_wait_timeout=1s",
            "redis://h?mode=multiplexed&pool_wait_timeout=1s",
            "redis://h?pool_size=4&pool_wait_timeout=1s",
            "redis+cluster://h1,h2?pool_wait_timeout=1s",
        ] {
            let message =
                cache_tck::config_message(RedisCacheBuilder::new(url).validate().map(drop));
            assert!(
                message.contains("pool_wait_timeout applies to a pool only"),
                "{url}: {message}"
            );
        }
        let pooled = RedisCacheBuilder::new("redis://h?mode=pooled&pool_wait_timeout=1s")
            .validate()
            .unwrap();
        assert_eq!(pooled.pool_wait_timeout, Duration::from_secs(1));
        // The builder's pooled model makes the URL's wait apply.
        let made_pooled = RedisCacheBuilder::new("redis://h?pool_wait_timeout=1s")
            .connection_model(ConnectionModel::Pooled { max_size: 2 })
            .validate()
            .unwrap();
        assert_eq!(made_pooled.pool_wait_timeout, Duration::from_secs(1));
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

    /// A database clash names what the caller wrote: `db=2` when the url's parameter
    /// asked for it, `database(2)` when the builder did; a cluster's names the cluster
    /// url as written.
    #[test]
    fn database_clashes_name_what_was_written() {
        for (builder, said, not_said) in [
            (
                RedisCacheBuilder::new("redis://:s3cret@h/1?db=2"),
                "db=2",
                "database(2)",
            ),
            (
                RedisCacheBuilder::new("redis://:s3cret@h/1").database(2),
                "database(2)",
                "db=2",
            ),
            (
                RedisCacheBuilder::new("redis+sentinel://:s3cret@h/mymaster/1?db=2"),
                "db=2",
                "database(2)",
            ),
            (
                RedisCacheBuilder::new("redis+cluster://:s3cret@h1,h2?db=1"),
                "db=1",
                "database(1)",
            ),
            (
                RedisCacheBuilder::new("redis+cluster://:s3cret@h1:7000,h2/2"),
                "redis+cluster://:***@h1:7000,h2/2",
                "redis://",
            ),
            (
                RedisCacheBuilder::new("rediss+cluster://:s3cret@h1:7000,h2/2"),
                "rediss+cluster://:***@h1:7000,h2/2",
                "rediss://",
            ),
        ] {
            let shown = format!("{builder:?}");
            let message = cache_tck::config_message(builder.validate().map(drop));
            assert!(
                message.contains(said) && !message.contains(not_said),
                "{shown}: {message}"
            );
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    /// TLS settings where there is no TLS are refused as such before any file they name
    /// is read: a missing file is not the mistake to report.
    #[test]
    fn tls_settings_without_tls_are_refused_before_their_files_are_read() {
        let missing = "/nonexistent/ca.pem";
        for builder in [
            RedisCacheBuilder::new("redis://127.0.0.1"),
            RedisCacheBuilder::new("redis+unix:///run/redis.sock"),
            RedisCacheBuilder::new("redis+cluster://h1,h2"),
            RedisCacheBuilder::new_cluster(["redis://h1", "redis://h2"]),
            RedisCacheBuilder::new_cluster(["rediss://h1", "redis://h2"]),
        ] {
            let shown = format!("{builder:?}");
            let message =
                cache_tck::config_message(builder.tls_ca_file(missing).validate().map(drop));
            assert!(
                message.contains("apply to rediss://") && !message.contains(missing),
                "{shown}: {message}"
            );
        }
        for url in [
            "redis://127.0.0.1?tls_ca=/nonexistent/ca.pem",
            "redis+unix:///run/redis.sock?tls_ca=/nonexistent/ca.pem",
        ] {
            let message =
                cache_tck::config_message(RedisCacheBuilder::new(url).validate().map(drop));
            assert!(
                message.contains("does not apply") && !message.contains(missing),
                "{url}: {message}"
            );
        }
        // Where TLS applies, the file is read, and its absence said.
        let message = cache_tck::config_message(
            RedisCacheBuilder::new("rediss://127.0.0.1?tls_ca=/nonexistent/ca.pem")
                .validate()
                .map(drop),
        );
        assert!(message.contains(missing), "{message}");
    }

    /// No timeout is infinite: one past the longest, from the builder or the url, is
    /// the longest; one within it is kept.
    #[test]
    fn timeouts_past_the_longest_are_the_longest() {
        let longest = [MAX_TIMEOUT; 3];
        let timeouts = |builder: RedisCacheBuilder| {
            let settings = builder.validate().unwrap();
            [
                settings.connect_timeout,
                settings.response_timeout,
                settings.pool_wait_timeout,
            ]
        };
        for builder in [
            RedisCacheBuilder::new("redis://127.0.0.1").timeout(Duration::MAX),
            RedisCacheBuilder::new("redis://127.0.0.1")
                .timeout(MAX_TIMEOUT + Duration::from_nanos(1)),
            RedisCacheBuilder::new("redis://127.0.0.1?timeout=18446744073709551615s"),
            RedisCacheBuilder::new(
                "redis://127.0.0.1?connect_timeout=10000000000y&response_timeout=10000000000y\
                 &pool_wait_timeout=584542046090y&mode=pooled",
            ),
            RedisCacheBuilder::new("redis+cluster://h1,h2?timeout=584542046090y"),
            RedisCacheBuilder::new_cluster(["redis://h1"]).timeout(Duration::MAX),
        ] {
            let shown = format!("{builder:?}");
            assert_eq!(timeouts(builder), longest, "{shown}");
        }
        let within = Duration::from_secs(30 * 60);
        assert_eq!(
            timeouts(RedisCacheBuilder::new("redis://127.0.0.1").timeout(within)),
            [within; 3]
        );
        assert_eq!(
            timeouts(RedisCacheBuilder::new("redis://127.0.0.1?timeout=1h")),
            longest
        );
        let response = RedisCacheBuilder::new("redis://127.0.0.1")
            .response_timeout(Duration::MAX)
            .validate()
            .unwrap();
        assert_eq!(response.response_timeout, MAX_TIMEOUT);
        assert_eq!(response.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    /// `tls_insecure_skip_verify`, `false` included, is refused where there is no TLS,
    /// as every TLS setting is; over TLS it is taken.
    #[test]
    fn tls_insecure_skip_verify_without_tls_is_refused_whatever_its_value() {
        for skip in [false, true] {
            for builder in [
                RedisCacheBuilder::new("redis://127.0.0.1"),
                RedisCacheBuilder::new("redis+unix:///run/redis.sock"),
                RedisCacheBuilder::new("redis+cluster://h1,h2"),
                RedisCacheBuilder::new("redis+sentinel://h/mymaster"),
                RedisCacheBuilder::new_cluster(["redis://h1", "redis://h2"]),
                RedisCacheBuilder::new_cluster(["rediss://h1", "redis://h2"]),
            ] {
                let builder = builder.tls_insecure_skip_verify(skip);
                let shown = format!("{builder:?}");
                let message = cache_tck::config_message(builder.validate().map(drop));
                assert!(
                    message.contains("tls_insecure_skip_verify"),
                    "{shown}: {message}"
                );
            }
        }
        for url in ["rediss://127.0.0.1", "rediss+cluster://h1,h2"] {
            for skip in [false, true] {
                let builder = RedisCacheBuilder::new(url).tls_insecure_skip_verify(skip);
                assert!(builder.validate().is_ok(), "{url} {skip}");
            }
        }
    }

    /// User info without a ':' is refused on every Redis scheme, and shown nowhere: the
    /// `redis` crate would take it for a user name and never send it, and it may be a
    /// password.
    #[test]
    fn user_info_without_a_colon_is_refused_and_never_shown() {
        for url in [
            "redis://S3cretPw@127.0.0.1",
            "rediss://S3cretPw@127.0.0.1:6380/2",
            "redis+unix://S3cretPw@/run/redis.sock",
            "redis+cluster://S3cretPw@h1:7000,h2:7001",
            "rediss+cluster://S3cretPw@h1:7000,h2:7001",
            "redis+sentinel://S3cretPw@h1:26379/mymaster",
            "redis://S3cretPw@127.0.0.1?prefix=app:",
        ] {
            let builder = RedisCacheBuilder::new(url);
            let shown = format!("{builder:?}");
            assert!(!shown.contains("S3cretPw"), "{url}: {shown}");
            let message = cache_tck::config_message(builder.validate().map(drop));
            assert!(
                message.contains("user info") && !message.contains("S3cretPw"),
                "{url}: {message}"
            );
        }
        let seeds = RedisCacheBuilder::new_cluster(["redis://S3cretPw@h1", "redis://S3cretPw@h2"]);
        assert!(!format!("{seeds:?}").contains("S3cretPw"));
        let message = cache_tck::config_message(seeds.validate().map(drop));
        assert!(!message.contains("S3cretPw"), "{message}");
    }

    /// `Debug` never shows a password missing its `@host`, nor a parameter's value that
    /// is not a setting in its expected form.
    #[test]
    fn debug_shows_no_password_and_no_odd_parameter_value() {
        for url in [
            "redis://default:S3cretPw",
            "redis://:S3cretPw",
            "rediss://default:S3cretPw",
            "redis+cluster://default:S3cretPw,127.0.0.1:7000",
            "redis+sentinel://default:S3cretPw/mymaster",
            "redis://[::1]:S3cretPw",
            "redis://h?db=S3cretPw",
            "redis://h?colour=S3cretPw",
            "redis://h?timeout=S3cretPw",
        ] {
            let builder = RedisCacheBuilder::new(url);
            let shown = format!("{builder:?}");
            assert!(!shown.contains("S3cretPw"), "{url}: {shown}");
            let message = cache_tck::config_message(builder.validate().map(drop));
            assert!(!message.contains("S3cretPw"), "{url}: {message}");
        }
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

        let tls = cluster("rediss+cluster://h1:7000,h2:7001?tls_insecure_skip_verify=true")
            .validate()
            .unwrap();
        assert!(
            matches!(&tls.endpoint.nodes, Nodes::Cluster(seeds) if seeds.iter().all(|seed|
            matches!(seed.addr(), redis::ConnectionAddr::TcpTls { insecure: true, .. })))
        );
        let seeds = RedisCacheBuilder::new_cluster(["redis://127.0.0.1:7000"]);
        assert_eq!(seeds.validate().unwrap().mode, Mode::Cluster);
        assert!(seeds.clone().database(0).validate().is_ok());
        for builder in [
            seeds.clone().database(1),
            seeds
                .clone()
                .connection_model(ConnectionModel::Multiplexed { connections: 1 }),
            seeds
                .clone()
                .connection_model(ConnectionModel::Pooled { max_size: 4 }),
            cluster("redis+cluster://h1:7000/2"),
            RedisCacheBuilder::new_cluster(["redis://:a@h1", "redis://:b@h2"]),
            RedisCacheBuilder::new_cluster(["redis://alice:a@h1", "redis://:a@h2"]),
            RedisCacheBuilder::new_cluster(Vec::<String>::new()),
            RedisCacheBuilder::new_cluster(["redis+unix:///tmp/redis.sock"]),
        ] {
            let shown = format!("{builder:?}");
            assert!(
                matches!(builder.validate(), Err(CacheError::Config { .. })),
                "{shown} was accepted"
            );
        }
    }

    #[test]
    fn connection_info_is_where_build_would_connect() {
        let shown = |builder: RedisCacheBuilder| {
            builder
                .connection_info()
                .unwrap()
                .iter()
                .map(|info| {
                    let settings = info.redis_settings();
                    format!(
                        "{} db={} user={:?} password={:?}",
                        info.addr(),
                        settings.db(),
                        settings.username(),
                        settings.password()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(RedisCacheBuilder::new("redis://u:p%2Fw@127.0.0.1/1").database(1)),
            ["127.0.0.1:6379 db=1 user=Some(\"u\") password=Some(\"p/w\")"]
        );
        assert_eq!(
            shown(RedisCacheBuilder::new(
                "redis+cluster://:pw@127.0.0.1:7000,[::1]:7001?prefix=app:"
            )),
            [
                "127.0.0.1:7000 db=0 user=None password=Some(\"pw\")",
                "::1:7001 db=0 user=None password=Some(\"pw\")"
            ]
        );
        let tls = RedisCacheBuilder::new("rediss://127.0.0.1:6380?tls_insecure_skip_verify=true")
            .connection_info()
            .unwrap();
        assert!(matches!(
            tls[0].addr(),
            redis::ConnectionAddr::TcpTls {
                insecure: true,
                port: 6380,
                ..
            }
        ));
        // What build refuses before connecting, and a sentinel group, whose master is
        // known only once asked.
        for url in [
            "redis://h?db=1&db=2",
            "redis://h?mode=fast",
            "redis+sentinel://:s3cret@127.0.0.1:26379/mymaster",
        ] {
            let message = cache_tck::config_message(RedisCacheBuilder::new(url).connection_info());
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}
