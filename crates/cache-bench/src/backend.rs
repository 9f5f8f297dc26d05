//! Which backend a URL names, with what the raw baseline needs to know about it that
//! the adapter reads from the URL itself.

use std::time::Duration;

use cache_api::CacheError;
use cache_redis::ConnectionModel;
use cache_url::CacheUrl;

use crate::Settings;

/// A backend, with its settings for the raw client.
#[allow(clippy::large_enum_variant)] // One per run: its size costs nothing.
pub(crate) enum Backend {
    Memory {
        capacity_bytes: u64,
    },
    /// One Redis server.
    Redis {
        node: redis::ConnectionInfo,
        /// The connection model the URL asks for (`mode`, `pool_size`).
        model: ConnectionModel,
    },
    /// A Redis Cluster, reached through each seed.
    RedisCluster {
        seeds: Vec<redis::ConnectionInfo>,
    },
    Memcached {
        servers: Vec<String>,
        /// The adapter's multiplexed connections per server (the URL's `pool_size`).
        pool_size: usize,
        timeout: Duration,
    },
    /// A URL the adapter reaches and the raw clients here do not (TLS, a unix socket,
    /// Sentinel): measured through the adapter alone.
    AdapterOnly {
        /// `redis` or `memcached`.
        name: &'static str,
        /// The URL's scheme, for reports.
        scheme: String,
        /// For one Redis server (or Sentinel's master), the connection model the URL
        /// asks for, which the bench may override as for `redis://`.
        redis_model: Option<ConnectionModel>,
    },
}

/// Why `--baseline raw` is refused for [`Backend::AdapterOnly`].
pub(crate) const NO_RAW_BASELINE: &str = "--baseline raw needs redis://, redis+cluster://, \
     memcache:// or memory://: the raw clients of the baseline speak no TLS, unix socket \
     or Sentinel; without --baseline, the adapter alone is measured on this url";

/// Connections per server of the raw baseline, the memcache crate's pooled client: its
/// usual setting, and the adapter's own before it multiplexed. The adapter's `pool_size`
/// counts multiplexed connections, a different thing, so it does not size this pool.
pub(crate) const RAW_MEMCACHED_POOL_SIZE: usize = 16;

impl Backend {
    /// The backend's name in reports (a cluster is `redis`; its mode tells).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Memory { .. } => "memory",
            Backend::Redis { .. } | Backend::RedisCluster { .. } => "redis",
            Backend::Memcached { .. } => "memcached",
            Backend::AdapterOnly { name, .. } => name,
        }
    }

    /// Whether the bench may set the adapter's connection model (`--pooled`,
    /// `--connections`): one Redis server.
    pub(crate) fn single_redis(&self) -> bool {
        matches!(
            self,
            Backend::Redis { .. }
                | Backend::AdapterOnly {
                    redis_model: Some(_),
                    ..
                }
        )
    }

    /// The memcached servers the URL names; empty for other backends.
    pub(crate) fn servers(&self) -> Vec<String> {
        match self {
            Backend::Memcached { servers, .. } => servers.clone(),
            _ => Vec::new(),
        }
    }

    /// How the adapter reaches the backend, for reports.
    pub(crate) fn mode(&self, settings: &Settings) -> String {
        let redis_model = |url_model: ConnectionModel| match redis_model(settings, url_model) {
            ConnectionModel::Pooled { max_size } => format!("pooled({max_size})"),
            ConnectionModel::Multiplexed { connections } => format!("multiplexed({connections})"),
            other => format!("{other:?}"),
        };
        match self {
            Backend::Redis { model, .. } => redis_model(*model),
            Backend::AdapterOnly {
                scheme,
                redis_model: Some(model),
                ..
            } => format!("{scheme}, {}", redis_model(*model)),
            Backend::AdapterOnly { scheme, .. } => scheme.clone(),
            Backend::RedisCluster { seeds } => format!("cluster({} seeds)", seeds.len()),
            Backend::Memcached { pool_size, .. } => {
                format!("multiplexed({pool_size} per server)")
            }
            Backend::Memory { capacity_bytes } => format!("capacity {capacity_bytes} bytes"),
        }
    }

    /// The backend `url` names; `timeout` is the one given besides the URL, which wins
    /// over the URL's own. Only what the raw client needs is read here: the adapter
    /// reads (and checks) the whole URL itself, as `cache_url::connect` does, so the
    /// layer parameters are taken out first, as it takes them out.
    pub(crate) fn of(url: &str, timeout: Option<Duration>) -> Result<Self, CacheError> {
        Self::read(url, timeout).map_err(cache_url::name_layer_params)
    }

    fn read(url: &str, timeout: Option<Duration>) -> Result<Self, CacheError> {
        let (raw, _) = cache_url_core::split_off_params(url.trim(), cache_url::LAYER_PARAMS);
        let raw = raw.as_str();
        let mut url = CacheUrl::parse(raw)?;
        match url.scheme() {
            "memory" => Ok(Backend::Memory {
                capacity_bytes: url
                    .params_mut()
                    .take_number("max_capacity_bytes", "a number of bytes")?
                    .unwrap_or(cache_memory::MemoryCache::DEFAULT_CAPACITY_BYTES),
            }),
            "redis" => Ok(Backend::Redis {
                node: redis_nodes(raw)?.remove(0),
                model: cache_redis::RedisCache::builder(raw).effective_connection_model(),
            }),
            "redis+cluster" => Ok(Backend::RedisCluster {
                seeds: redis_nodes(raw)?,
            }),
            "memcache" | "memcached" => Ok(Backend::Memcached {
                servers: url
                    .hosts()
                    .iter()
                    .map(|host| host.address(MEMCACHED_PORT))
                    .collect(),
                pool_size: url
                    .params_mut()
                    .take_count("pool_size")?
                    .unwrap_or(cache_memcached::DEFAULT_POOL_SIZE),
                timeout: match timeout {
                    Some(timeout) => timeout,
                    None => url
                        .params_mut()
                        .take_duration("timeout")?
                        .unwrap_or(cache_memcached::DEFAULT_TIMEOUT),
                },
            }),
            scheme @ ("rediss" | "redis+unix" | "redis+sentinel" | "rediss+cluster") => {
                Ok(Backend::AdapterOnly {
                    name: "redis",
                    scheme: scheme.to_owned(),
                    redis_model: (scheme != "rediss+cluster").then(|| {
                        cache_redis::RedisCache::builder(raw).effective_connection_model()
                    }),
                })
            }
            scheme @ ("memcaches" | "memcache+unix") => Ok(Backend::AdapterOnly {
                name: "memcached",
                scheme: scheme.to_owned(),
                redis_model: None,
            }),
            other => Err(CacheError::config(format!(
                "{other}:// is not a URL the benchmark knows: memory://, redis://, rediss://, \
                 redis+unix://, redis+sentinel://, redis+cluster://, rediss+cluster://, \
                 memcache://, memcaches:// or memcache+unix://"
            ))),
        }
    }
}

/// The connection model of the adapter (and of the raw baseline) on one Redis server:
/// `--pooled` or `--connections` where given, else the URL's.
pub(crate) fn redis_model(settings: &Settings, url_model: ConnectionModel) -> ConnectionModel {
    match (settings.pooled, settings.connections) {
        (Some(max_size), _) => ConnectionModel::Pooled { max_size },
        (None, Some(connections)) => ConnectionModel::Multiplexed { connections },
        (None, None) => url_model,
    }
}

/// memcached's port where a URL names none.
const MEMCACHED_PORT: u16 = 11211;

/// The connection information of each host of a `redis://` or `redis+cluster://` URL,
/// as the adapter reads it (`RedisCacheBuilder::connection_info`): user and password
/// percent-decoded, the database of the path or of `db`.
fn redis_nodes(url: &str) -> Result<Vec<redis::ConnectionInfo>, CacheError> {
    cache_redis::RedisCache::builder(url).connection_info()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcached_urls_give_the_raw_client_its_servers() {
        let Backend::Memcached {
            servers,
            pool_size,
            timeout,
        } = Backend::of(
            "memcache://127.0.0.1,[::1]:7001,[::1]/?pool_size=4&timeout=250ms",
            None,
        )
        .unwrap()
        else {
            panic!("a memcached backend");
        };
        assert_eq!(servers, ["127.0.0.1:11211", "[::1]:7001", "[::1]:11211"]);
        assert_eq!(pool_size, 4);
        assert_eq!(timeout, Duration::from_millis(250));
        let Backend::Memory { capacity_bytes } =
            Backend::of("memory://?max_capacity_bytes=4096", None).unwrap()
        else {
            panic!("a memory backend");
        };
        assert_eq!(capacity_bytes, 4096);
        assert!(Backend::of("ftp://host", None).is_err());
        assert!(Backend::of("memory://?max_capacity_bytes=lots", None).is_err());
    }

    #[test]
    fn tls_socket_and_sentinel_urls_are_measured_through_the_adapter_alone() {
        for (url, name, single_redis) in [
            ("rediss://h:6380", "redis", true),
            ("redis+unix:///run/redis.sock", "redis", true),
            ("redis+sentinel://h:26379/mymaster", "redis", true),
            ("rediss+cluster://h1:7000,h2:7001", "redis", false),
            ("memcaches://h:11211", "memcached", false),
            ("memcache+unix:///run/memcached.sock", "memcached", false),
        ] {
            let backend = Backend::of(url, None).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert!(
                matches!(backend, Backend::AdapterOnly { .. }),
                "{url} is measured through the adapter alone"
            );
            assert_eq!(backend.name(), name, "{url}");
            assert_eq!(backend.single_redis(), single_redis, "{url}");
            assert!(backend.servers().is_empty(), "{url}");
        }
    }

    #[test]
    fn the_urls_connection_model_is_reported_unless_a_flag_sets_one() {
        for (url, pooled, connections, expected) in [
            ("redis://h", None, None, "multiplexed(1)"),
            ("redis://h?pool_size=3", None, None, "multiplexed(3)"),
            ("redis://h?mode=pooled", None, None, "pooled(16)"),
            ("redis://h?mode=pooled&pool_size=5", None, None, "pooled(5)"),
            (
                "redis://h?mode=pooled&pool_size=5",
                None,
                Some(2),
                "multiplexed(2)",
            ),
            ("redis://h?pool_size=3", Some(4), None, "pooled(4)"),
            (
                "redis+unix:///run/redis.sock?mode=pooled&pool_size=2",
                None,
                None,
                "redis+unix, pooled(2)",
            ),
        ] {
            let mut settings = Settings::new(url);
            settings.pooled = pooled;
            settings.connections = connections;
            let backend = Backend::of(url, None).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(backend.mode(&settings), expected, "{url}");
        }
    }

    #[test]
    fn a_timeout_given_beside_the_url_wins() {
        let given = Some(Duration::from_secs(3));
        let Ok(Backend::Memcached { timeout, .. }) =
            Backend::of("memcache://h?timeout=250ms", given)
        else {
            panic!("a memcached backend");
        };
        assert_eq!(timeout, Duration::from_secs(3));
    }

    /// Layer parameters, which `cache_url::connect` takes on every scheme, are taken
    /// out before the raw client reads the URL; the rest of the URL still counts.
    #[test]
    fn layer_parameters_are_taken_out_on_every_scheme() {
        let layers = "retry=2&deadline=250ms&trace=true&metrics=true";
        for url in [
            format!("redis://:pw@127.0.0.1:6479/3?{layers}"),
            format!("redis+cluster://127.0.0.1:7000,127.0.0.1:7001?trace=true&prefix=a:&{layers}"),
            format!("memcache://127.0.0.1:11311?{layers}&pool_size=3"),
            format!("memory://?{layers}&max_capacity_bytes=8192"),
            format!("rediss://h:6380?{layers}"),
            format!("memcaches://h:11211?{layers}"),
        ] {
            let backend = Backend::of(&url, None).unwrap_or_else(|err| panic!("{url}: {err}"));
            let mode = backend.mode(&Settings::new(url.as_str()));
            match backend {
                Backend::Redis { node, .. } => {
                    assert_eq!(node.addr().to_string(), "127.0.0.1:6479");
                    assert_eq!(node.redis_settings().db(), 3);
                    assert_eq!(node.redis_settings().password(), Some("pw"));
                }
                Backend::RedisCluster { seeds } => assert_eq!(seeds.len(), 2),
                Backend::Memcached { pool_size, .. } => assert_eq!(pool_size, 3),
                Backend::Memory { capacity_bytes } => assert_eq!(capacity_bytes, 8192),
                Backend::AdapterOnly { .. } => assert!(!mode.is_empty()),
            }
        }
        // Other unknown parameters are still refused where the raw client reads them.
        assert!(Backend::of("redis://h?colour=red&trace=true", None).is_err());
    }

    #[test]
    fn redis_urls_give_the_raw_client_each_node_as_the_adapter_reads_it() {
        let nodes = |url: &str| match Backend::of(url, None) {
            Ok(Backend::RedisCluster { seeds }) => seeds,
            Ok(Backend::Redis { node, .. }) => vec![node],
            _ => panic!("a redis backend for {url}"),
        };
        let shown = |info: &redis::ConnectionInfo| {
            let settings = info.redis_settings();
            format!(
                "{} db={} user={:?} password={:?}",
                info.addr(),
                settings.db(),
                settings.username(),
                settings.password()
            )
        };
        let all = |url: &str| nodes(url).iter().map(shown).collect::<Vec<_>>();
        assert_eq!(
            all("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            [
                "127.0.0.1:7000 db=0 user=None password=None",
                "127.0.0.1:7001 db=0 user=None password=None"
            ]
        );
        // Reserved characters in a password, unencoded or encoded, reach the client
        // decoded; the database comes from the path or from `db`.
        assert_eq!(
            all("redis://full:Pa:ss/w@rd%25x@127.0.0.1:6479/3"),
            ["127.0.0.1:6479 db=3 user=Some(\"full\") password=Some(\"Pa:ss/w@rd%x\")"]
        );
        assert_eq!(
            all("REDIS://:p%40ss@h?db=2&prefix=app:"),
            ["h:6379 db=2 user=None password=Some(\"p@ss\")"]
        );
        let Err(err) = Backend::of("redis+cluster://:s3cret@h1,,h2", None) else {
            panic!("an empty host is refused");
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
