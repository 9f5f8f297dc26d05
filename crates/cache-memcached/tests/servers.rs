//! Several servers: keys spread over all of them, a dead server fails only the keys it
//! holds, and a restarted one is used again by the same cache object. Two memcached
//! processes of the test's own.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::LocalServer, MemcachedCache};
use common::{address, local_server, raw_get};

const KEYS: usize = 64;

async fn two_servers() -> (LocalServer, LocalServer) {
    (local_server(&[]).await, local_server(&[]).await)
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("spread:{i}")).collect()
}

async fn cache_on(servers: &[&LocalServer], prefix: Option<&str>) -> MemcachedCache {
    let url = format!(
        "memcache://{}",
        servers
            .iter()
            .map(|server| address(&server.url()))
            .collect::<Vec<_>>()
            .join(",")
    );
    let builder = MemcachedCache::builder(&url).timeout(Duration::from_millis(500));
    match prefix {
        Some(prefix) => builder.key_prefix(prefix).namespace_refresh(Duration::ZERO),
        None => builder,
    }
    .build()
    .await
    .unwrap()
}

/// Which of the two servers holds each raw key, read from the servers themselves.
fn holders(a: &LocalServer, b: &LocalServer, raw_keys: &[Vec<u8>]) -> Vec<usize> {
    raw_keys
        .iter()
        .map(|key| {
            match (
                raw_get(&a.url(), key).is_some(),
                raw_get(&b.url(), key).is_some(),
            ) {
                (true, false) => 0,
                (false, true) => 1,
                found => panic!(
                    "{:?} found on (a, b): {found:?}",
                    String::from_utf8_lossy(key)
                ),
            }
        })
        .collect()
}

/// Keys land on both servers, each on exactly one, and `get_many` reads them back from
/// both in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_every_server() {
    let (a, b) = two_servers().await;
    let cache = cache_on(&[&a, &b], None).await;
    let keys = keys();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|key| (key.as_str(), Bytes::from(key.clone())))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    let raw: Vec<Vec<u8>> = keys.iter().map(|key| key.clone().into_bytes()).collect();
    let on = holders(&a, &b, &raw);
    let on_b = on.iter().sum::<usize>();
    assert!(
        on_b > 0 && on_b < KEYS,
        "{on_b} of {KEYS} keys on the second server"
    );

    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    wanted.insert(3, "spread:missing");
    let got = cache.get_many(&wanted).await.unwrap();
    for (key, value) in wanted.iter().zip(&got) {
        let expected = (*key != "spread:missing").then(|| Bytes::from(key.to_string()));
        assert_eq!(value, &expected, "{key}");
    }
    assert_eq!(cache.delete_many(&wanted).await.unwrap(), KEYS);
}

/// With one server killed, its keys fail with `Unreachable` and the other server's keys
/// work; once it is restarted, the same cache object uses it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_only_its_keys_until_it_is_back() {
    let (a, mut b) = two_servers().await;
    let cache = cache_on(&[&a, &b], None).await;
    let keys = keys();
    for key in &keys {
        cache.set(key, Bytes::from("before"), None).await.unwrap();
    }
    let raw: Vec<Vec<u8>> = keys.iter().map(|key| key.clone().into_bytes()).collect();
    let on = holders(&a, &b, &raw);

    b.kill();
    for (key, holder) in keys.iter().zip(&on) {
        let read = cache.get(key).await;
        let write = cache.set(key, Bytes::from("during"), None).await;
        if *holder == 0 {
            assert_eq!(
                read.unwrap().as_deref(),
                Some(&b"before"[..]),
                "{key} on the live server"
            );
            write.unwrap();
        } else {
            for error in [read.unwrap_err(), write.unwrap_err()] {
                assert!(
                    matches!(error, CacheError::Unreachable { .. }),
                    "{key}: {error:?}"
                );
            }
        }
    }

    b.restart().await.unwrap();
    for (key, holder) in keys.iter().zip(&on) {
        let expected = if *holder == 0 {
            Some(&b"during"[..])
        } else {
            None
        };
        assert_eq!(
            cache.get(key).await.unwrap().as_deref(),
            expected,
            "{key} after the restart"
        );
        cache.set(key, Bytes::from("after"), None).await.unwrap();
        assert_eq!(
            cache.get(key).await.unwrap().as_deref(),
            Some(&b"after"[..]),
            "{key}"
        );
    }
}

/// A prefixed cache keeps working on the other server when the server holding its
/// generation counter dies, even when it checks the counter on every operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_generation_server_fails_only_its_keys() {
    let (a, b) = two_servers().await;
    let cache = cache_on(&[&a, &b], Some("p:")).await;
    let keys = keys();
    // The first write creates the counter.
    for key in &keys {
        cache.set(key, Bytes::from("before"), None).await.unwrap();
    }
    let counter_on_a = raw_get(&a.url(), b"p:{gen}");
    let (mut counter_server, other) = match counter_on_a {
        Some(_) => (a, b),
        None => (b, a),
    };
    let generation =
        String::from_utf8(raw_get(&counter_server.url(), b"p:{gen}").unwrap()).unwrap();
    let on_other: Vec<&String> = keys
        .iter()
        .filter(|key| {
            raw_get(&other.url(), format!("p:{{{generation}}}{key}").as_bytes()).is_some()
        })
        .collect();
    assert!(
        !on_other.is_empty() && on_other.len() < KEYS,
        "{} keys on the other server",
        on_other.len()
    );

    counter_server.kill();
    for key in &keys {
        let result = cache.get(key).await;
        if on_other.contains(&key) {
            assert_eq!(result.unwrap().as_deref(), Some(&b"before"[..]), "{key}");
            cache.set(key, Bytes::from("during"), None).await.unwrap();
            assert_eq!(
                cache.get(key).await.unwrap().as_deref(),
                Some(&b"during"[..]),
                "{key}"
            );
        } else {
            let error = result.unwrap_err();
            assert!(
                matches!(error, CacheError::Unreachable { .. }),
                "{key}: {error:?}"
            );
        }
    }
}

/// A dead server among live ones fails the build with `Unreachable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_the_build() {
    let (a, mut b) = two_servers().await;
    b.kill();
    let error = MemcachedCache::builder(&a.url())
        .servers([address(&a.url()), address(&b.url())])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
}
