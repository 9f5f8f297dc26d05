//! Unix sockets (`memcache+unix:///path/to/memcached.sock`): the whole contract on a
//! `memcached -s` of this test process, whose socket lives in a temporary directory of
//! its own (memcached then listens on no TCP port at all, so every connection, the
//! multiplexed ones, `stats settings`, `clear`'s crawler and `flush_all`, went over the
//! socket).

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::unique_prefix, MemcachedCache};
use cache_testserver::unix::UnixMemcached;
use tokio::sync::OnceCell;

async fn server() -> &'static UnixMemcached {
    static SERVER: OnceCell<UnixMemcached> = OnceCell::const_new();
    SERVER
        .get_or_init(|| async {
            UnixMemcached::start().await.unwrap_or_else(|err| {
                panic!("cannot start memcached -s (apt-get install memcached): {err}")
            })
        })
        .await
}

/// A cache on the socket under a prefix of its own; the server is this process's own.
async fn factory() -> MemcachedCache {
    let url = format!("{}?prefix={}", server().await.url(), unique_prefix());
    MemcachedCache::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect over the unix socket: {err}"))
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

/// Without a prefix, `clear` flushes the server over the socket too.
#[tokio::test]
async fn flush_all_goes_over_the_socket() {
    // A server of this test's own: flushing the shared one would empty other tests' keys.
    let own = UnixMemcached::start().await.expect("memcached -s");
    let cache = MemcachedCache::connect(&own.url())
        .await
        .expect("unix socket");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert!(own.socket().starts_with(own.dir().path()));
}

/// A socket that does not exist is `Unreachable`, naming nothing but the path.
#[tokio::test]
async fn a_missing_socket_is_unreachable() {
    let dir = server().await.dir().join("nonexistent.sock");
    let url = format!("memcache+unix://{}?timeout=500ms", dir.display());
    match MemcachedCache::connect(&url).await {
        Err(CacheError::Unreachable { .. }) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// A host, no path or TLS parameters are refused with a `Config` error.
#[tokio::test]
async fn malformed_socket_urls_are_refused() {
    for url in [
        "memcache+unix://host/tmp/m.sock",
        "memcache+unix://",
        "memcache+unix:///tmp/m.sock?tls_ca=/ca.pem",
    ] {
        match MemcachedCache::connect(url).await {
            Err(CacheError::Config { .. }) => {}
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }
}
