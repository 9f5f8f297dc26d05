//! Checking a builder's settings into what a connection needs: the connection model,
//! the limits, the prefix and where to connect. Every refusal is a `CacheError::Config`.

use std::time::Duration;

use cache_api::CacheError;

use crate::{
    builder::{ConnectionModel, RedisCacheBuilder, MAX_CONNECTIONS, REDIS_MAX_VALUE_SIZE},
    endpoint::{
        is_cluster_url, parse_cluster_seeds, parse_url, redact_url, split_cluster_url, Endpoint,
        Nodes,
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
        let cluster = self.seeds.is_some() || is_cluster_url(&self.url);
        let mode = self.mode(cluster)?;
        if self.max_value_size == 0 || self.max_value_size > REDIS_MAX_VALUE_SIZE {
            return Err(CacheError::config(format!(
                "the max value size must be between 1 and {REDIS_MAX_VALUE_SIZE} bytes (redis's own limit), not {}",
                self.max_value_size
            )));
        }
        cache_url_core::check_prefix_delimiter(&self.key_prefix)?;
        Ok(Settings {
            endpoint: self.endpoint(cluster)?,
            key_prefix: self.key_prefix.clone(),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            pool_wait_timeout: self.pool_wait_timeout,
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
                    "the url parameter db names database {named} but database({set}) was set"
                )))
            }
            (set, named) => set.or(named),
        };
        if !cluster {
            if is_sentinel_url(&self.url) {
                return parse_sentinel_url(&self.url, database, &self.tls);
            }
            let target = parse_url(&self.url, database)?;
            let certificates = crate::tls::certificates(&self.tls)?;
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
