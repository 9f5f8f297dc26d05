//! A prefixed cache writes nothing until its first write, and its `clear` removes the
//! namespace's entries from the servers (listed with `lru_crawler metadump`), never a
//! key outside it; a server that cannot list keeps them until they age out. Each test runs
//! its own memcached, and compares full key dumps.

mod common;

use std::{collections::BTreeSet, time::Duration};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::MemcachedCache;
use common::{address, local_server, metadump, plain_client};

async fn cache(url: &str, prefix: &str) -> MemcachedCache {
    MemcachedCache::builder(url)
        .key_prefix(prefix)
        .build()
        .await
        .unwrap()
}

fn dump(url: &str) -> BTreeSet<String> {
    metadump(&address(url))
        .into_iter()
        .map(|key| String::from_utf8_lossy(&key).into_owned())
        .collect()
}

/// Building a prefixed cache and reading from it through every read leaves the server
/// empty: reads never write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_write() {
    let server = local_server(&[]).await;
    let url = server.url();
    let app = MemcachedCache::builder(&url)
        .key_prefix("app:")
        .namespace_refresh(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(app.get("k").await.unwrap(), None);
    assert!(!app.exists("k").await.unwrap());
    assert_eq!(app.get_many(&["a", "b"]).await.unwrap(), [None, None]);
    assert!(!app.delete("k").await.unwrap());
    assert_eq!(app.delete_many(&["a", "b"]).await.unwrap(), 0);
    app.set("zero", Bytes::from("v"), Some(Duration::ZERO))
        .await
        .unwrap();
    app.clear().await.unwrap();
    assert_eq!(dump(&url), BTreeSet::new());
}

/// The first write creates the counter; instances that race to write first agree on one
/// generation and see each other's writes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_writes_agree_on_one_generation() {
    let server = local_server(&[]).await;
    let url = server.url();
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(cache(&url, "race:").await);
    }
    let keys: Vec<String> = (0..instances.len())
        .map(|index| format!("k{index}"))
        .collect();
    let writes = instances
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(index, (instance, key))| instance.set(key, Bytes::from(index.to_string()), None));
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    for reader in &instances {
        for index in 0..instances.len() {
            assert_eq!(
                reader.get(&format!("k{index}")).await.unwrap(),
                Some(Bytes::from(index.to_string())),
                "k{index}"
            );
        }
    }
    let counters = dump(&url)
        .into_iter()
        .filter(|key| key.ends_with("{gen}"))
        .count();
    assert_eq!(counters, 1);
}

/// `clear` removes every entry of its prefix (native and encoded keys, with and without
/// TTL, written by several instances) and its counter; keys of longer prefixes, of other
/// clients and of other namespaces stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_removes_the_namespace_and_nothing_else() {
    let server = local_server(&[]).await;
    let url = server.url();
    let plain = plain_client(&url);
    for key in [
        "app:",
        "app:k",
        "app:{gen",
        "app:{}k",
        "app:{x1}k",
        "apple:{12}k",
        "xapp:{12}k",
        "ap:{12}k",
        "outside",
    ] {
        plain.set(key, &b"other client"[..], 0).unwrap();
    }
    let apple = cache(&url, "apple:").await;
    apple.set("k", Bytes::from("kept"), None).await.unwrap();
    let before = dump(&url);

    let (first, second) = (cache(&url, "app:").await, cache(&url, "app:").await);
    let long = "long key with spaces ".repeat(20);
    for index in 0..300 {
        first
            .set(&format!("k{index}"), Bytes::from("v"), None)
            .await
            .unwrap();
    }
    first
        .set(&long, Bytes::from("v"), Some(Duration::from_secs(600)))
        .await
        .unwrap();
    second
        .set(
            "from the second",
            Bytes::from("v"),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    // An older generation's entry, as a lagging instance would leave.
    plain.set("app:{5}stale", &b"old"[..], 0).unwrap();
    assert!(dump(&url).len() > before.len() + 300);

    first.clear().await.unwrap();
    assert_eq!(dump(&url), before);
    assert_eq!(first.get("k1").await.unwrap(), None);
    assert_eq!(apple.get("k").await.unwrap(), Some(Bytes::from("kept")));
    assert_eq!(
        second.get("k1").await.unwrap(),
        None,
        "gone, not only hidden"
    );
    // The namespace goes on, in a new generation.
    first.set("again", Bytes::from("v"), None).await.unwrap();
    let third = cache(&url, "app:").await;
    assert_eq!(third.get("again").await.unwrap(), Some(Bytes::from("v")));
    assert_eq!(third.get("k1").await.unwrap(), None);
}

/// Entries of a generation above the clear's (a counter created again by another
/// instance after this clear deleted it) are kept: only what the clear cut off goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_keeps_generations_created_after_it() {
    let server = local_server(&[]).await;
    let url = server.url();
    let app = cache(&url, "app:").await;
    app.set("k", Bytes::from("v"), None).await.unwrap();
    let later = format!("app:{{{}}}k", u64::MAX / 2);
    plain_client(&url)
        .set(&later, &b"written after"[..], 0)
        .unwrap();
    app.clear().await.unwrap();
    assert_eq!(dump(&url), BTreeSet::from([later]));
}

/// Clears of several prefixes at once all finish and remove everything: memcached runs
/// one crawler at a time, and a busy one is asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clears_all_finish() {
    let server = local_server(&[]).await;
    let url = server.url();
    let mut caches = Vec::new();
    for index in 0..8 {
        let cache = cache(&url, &format!("p{index}:")).await;
        for key in 0..500 {
            cache
                .set(&format!("k{key}"), Bytes::from("v"), None)
                .await
                .unwrap();
        }
        caches.push(cache);
    }
    for result in futures::future::join_all(caches.iter().map(|cache| cache.clear())).await {
        result.unwrap();
    }
    assert_eq!(dump(&url), BTreeSet::new());
}

/// A server that refuses to list its keys (`-o no_lru_crawler`): `clear` still succeeds
/// and the namespace reads empty; the entries stay until they age out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metadump_clear_falls_back_to_a_new_generation() {
    let server = local_server(&["-o", "no_lru_crawler"]).await;
    let url = server.url();
    let app = cache(&url, "app:").await;
    app.set("k", Bytes::from("v"), None).await.unwrap();
    app.clear().await.unwrap();
    assert_eq!(app.get("k").await.unwrap(), None);
    let other = cache(&url, "app:").await;
    assert_eq!(other.get("k").await.unwrap(), None);
    app.set("k", Bytes::from("new"), None).await.unwrap();
    assert_eq!(other.get("k").await.unwrap(), Some(Bytes::from("new")));
}

/// A clear on a frozen server times out, and once the server is back, the same clear
/// finishes and removes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_on_a_frozen_server_times_out_then_finishes() {
    let server = local_server(&[]).await;
    let url = server.url();
    let app = MemcachedCache::builder(&url)
        .key_prefix("app:")
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    app.set("k", Bytes::from("v"), None).await.unwrap();
    server.pause();
    let error = app.clear().await.unwrap_err();
    server.resume();
    assert!(
        matches!(error, CacheError::Timeout { .. }),
        "clear on a frozen server: {error:?}"
    );
    app.clear().await.unwrap();
    assert_eq!(dump(&url), BTreeSet::new());
}
