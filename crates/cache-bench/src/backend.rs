//! Which backend a URL names, with what the raw baseline needs to know about it that
//! the adapter reads from the URL itself.

use std::time::Duration;

use cache_api::CacheError;

use crate::Settings;

/// A backend, with its settings for the raw client.
pub(crate) enum Backend {
    Memory {
        capacity_bytes: u64,
    },
    Redis,
    /// A Redis Cluster, reached through the `redis://` URL of each seed.
    RedisCluster {
        seeds: Vec<String>,
    },
    Memcached {
        servers: Vec<String>,
        pool_size: usize,
        timeout: Duration,
    },
}

impl Backend {
    /// The backend's name in reports (a cluster is `redis`; its mode tells).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Memory { .. } => "memory",
            Backend::Redis | Backend::RedisCluster { .. } => "redis",
            Backend::Memcached { .. } => "memcached",
        }
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
        match (self, settings.pooled) {
            (Backend::Redis, Some(max_size)) => format!("pooled({max_size})"),
            (Backend::Redis, None) => {
                format!("multiplexed({})", settings.connections.unwrap_or(1))
            }
            (Backend::RedisCluster { seeds }, _) => format!("cluster({} seeds)", seeds.len()),
            (Backend::Memcached { pool_size, .. }, _) => format!("pool({pool_size} per server)"),
            (Backend::Memory { capacity_bytes }, _) => format!("capacity {capacity_bytes} bytes"),
        }
    }

    /// The backend `url` names; `timeout` is the one given besides the URL, which wins
    /// over the URL's own.
    pub(crate) fn of(url: &str, timeout: Option<Duration>) -> Result<Self, CacheError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            CacheError::config(format!("{:?} is not a cache URL", cache_url::redact(url)))
        })?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
        };
        match scheme {
            "memory" => {
                let capacity_bytes = match param("max_capacity_bytes") {
                    Some(value) => value.parse().map_err(|_| {
                        CacheError::config(format!(
                            "max_capacity_bytes needs a number, got {value:?}"
                        ))
                    })?,
                    None => cache_memory::MemoryCache::DEFAULT_CAPACITY_BYTES,
                };
                Ok(Backend::Memory { capacity_bytes })
            }
            "redis" => Ok(Backend::Redis),
            "redis+cluster" => Ok(Backend::RedisCluster {
                seeds: cluster_seeds(url)?,
            }),
            "memcache" | "memcached" => memcached(authority, &param, timeout),
            other => Err(CacheError::config(format!(
                "{other}:// is not a URL the benchmark knows: memory://, redis://, \
                 redis+cluster:// or memcache://"
            ))),
        }
    }
}

/// The memcached servers of a URL's authority (port 11211 where none is given), with the
/// pool size and timeout the backend reads from its query.
fn memcached<'q>(
    authority: &str,
    param: &impl Fn(&str) -> Option<&'q str>,
    timeout: Option<Duration>,
) -> Result<Backend, CacheError> {
    let servers = authority
        .trim_end_matches('/')
        .split(',')
        .map(|server| {
            let has_port = match server.rfind(']') {
                Some(end) => server[end..].contains(':'),
                None => server.contains(':'),
            };
            if has_port {
                server.to_owned()
            } else {
                format!("{server}:11211")
            }
        })
        .collect();
    let pool_size = match param("pool_size") {
        Some(value) => value
            .parse()
            .map_err(|_| CacheError::config(format!("pool_size needs a number, got {value:?}")))?,
        None => cache_memcached::DEFAULT_POOL_SIZE,
    };
    let timeout = match (timeout, param("timeout")) {
        (Some(timeout), _) => timeout,
        (None, Some(value)) => humantime::parse_duration(value)
            .ok()
            .or_else(|| {
                value
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
            })
            .ok_or_else(|| {
                CacheError::config(format!("timeout needs a duration, got {value:?}"))
            })?,
        (None, None) => cache_memcached::DEFAULT_TIMEOUT,
    };
    Ok(Backend::Memcached {
        servers,
        pool_size,
        timeout,
    })
}

/// The `redis://` URL of each host of `redis+cluster://[user:password@]h1:p1,h2:p2[/0]`,
/// each with the same user info and path: the seeds the redis backend reads from it.
fn cluster_seeds(url: &str) -> Result<Vec<String>, CacheError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host list holds no '@': the last one ends the user info, even when a password
    // holds an unencoded '@'.
    let (user_info, hosts) = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => (format!("{user_info}@"), hosts),
        None => (String::new(), authority),
    };
    hosts
        .split(',')
        .map(|host| {
            if host.trim().is_empty() {
                return Err(CacheError::config(format!(
                    "the redis cluster URL {} has an empty entry in its host list",
                    cache_url::redact(url)
                )));
            }
            Ok(format!("redis://{user_info}{host}{tail}"))
        })
        .collect()
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
    fn a_timeout_given_beside_the_url_wins() {
        let given = Some(Duration::from_secs(3));
        let Ok(Backend::Memcached { timeout, .. }) =
            Backend::of("memcache://h?timeout=250ms", given)
        else {
            panic!("a memcached backend");
        };
        assert_eq!(timeout, Duration::from_secs(3));
    }

    #[test]
    fn cluster_urls_give_the_raw_client_a_seed_per_host() {
        let seeds = |url: &str| match Backend::of(url, None) {
            Ok(Backend::RedisCluster { seeds }) => seeds,
            _ => panic!("a cluster backend for {url}"),
        };
        assert_eq!(
            seeds("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            seeds("redis+cluster://u:p@ss@h1:7000,h2/0"),
            ["redis://u:p@ss@h1:7000/0", "redis://u:p@ss@h2/0"]
        );
        let Err(err) = Backend::of("redis+cluster://:s3cret@h1,,h2", None) else {
            panic!("an empty host is refused");
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
