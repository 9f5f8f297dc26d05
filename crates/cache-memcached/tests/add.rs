//! `add` as memcached sees it: the raw value under the key as given (or encoded), with
//! memcached's own TTL, decided by the server against other clients' writes too; and in
//! a key prefix, a first write that creates the generation counter, and a `clear` after
//! which the key can be added again.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache};
use cache_memcached::MemcachedCache;
use common::{local_server, plain_client, raw_get, remaining_ttl};

/// Without a prefix: the value lands under the key as given with the TTL in seconds
/// (rounded up), a key another client wrote is present, an empty value round-trips,
/// and a 31-day TTL (sent as a Unix time) is readable at once.
#[tokio::test]
async fn add_writes_the_raw_value_with_the_ttl_and_respects_other_clients() {
    let server = local_server(&[]).await;
    let url = server.url();
    let cache = MemcachedCache::connect(&url).await.unwrap();

    assert!(cache
        .add(
            "fresh",
            Bytes::from_static(b"v1"),
            Some(Duration::from_millis(2_300))
        )
        .await
        .unwrap());
    assert_eq!(raw_get(&url, b"fresh").as_deref(), Some(&b"v1"[..]));
    let ttl = remaining_ttl(&url, b"fresh").expect("a ttl");
    assert!((1..=3).contains(&ttl), "remaining ttl {ttl}");

    assert!(!cache
        .add("fresh", Bytes::from_static(b"v2"), None)
        .await
        .unwrap());
    assert_eq!(raw_get(&url, b"fresh").as_deref(), Some(&b"v1"[..]));
    let after = remaining_ttl(&url, b"fresh").expect("a ttl");
    assert!(
        (1..=ttl).contains(&after),
        "remaining ttl after a refused add {after}"
    );

    plain_client(&url)
        .set("theirs", &b"other client"[..], 0)
        .unwrap();
    assert!(!cache
        .add("theirs", Bytes::from_static(b"mine"), None)
        .await
        .unwrap());
    assert_eq!(
        raw_get(&url, b"theirs").as_deref(),
        Some(&b"other client"[..])
    );

    assert!(cache.add("empty", Bytes::new(), None).await.unwrap());
    assert_eq!(cache.get("empty").await.unwrap(), Some(Bytes::new()));
    assert!(!cache
        .add("empty", Bytes::from_static(b"x"), None)
        .await
        .unwrap());

    let month = Duration::from_secs(31 * 24 * 3600);
    assert!(cache
        .add("month", Bytes::from_static(b"m"), Some(month))
        .await
        .unwrap());
    assert_eq!(
        cache.get("month").await.unwrap(),
        Some(Bytes::from_static(b"m"))
    );

    assert!(!cache
        .add("zero", Bytes::from_static(b"x"), Some(Duration::ZERO))
        .await
        .unwrap());
    assert_eq!(raw_get(&url, b"zero"), None);
}

/// In a fresh prefix, `add` is the first write: it creates the generation counter, and
/// another instance of the prefix reads the entry and cannot add it again; after
/// `clear`, the key can be added once more.
#[tokio::test]
async fn add_in_a_prefix_creates_the_generation_and_is_cleared_with_it() {
    let server = local_server(&[]).await;
    let url = server.url();
    let build = || MemcachedCache::builder(&url).key_prefix("app:").build();
    let (first, second) = (build().await.unwrap(), build().await.unwrap());

    assert!(first
        .add("k", Bytes::from_static(b"one"), None)
        .await
        .unwrap());
    assert!(
        raw_get(&url, b"app:{gen}").is_some(),
        "the generation counter"
    );
    assert_eq!(
        second.get("k").await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
    assert!(!second
        .add("k", Bytes::from_static(b"two"), None)
        .await
        .unwrap());

    first.clear().await.unwrap();
    assert!(first
        .add("k", Bytes::from_static(b"three"), None)
        .await
        .unwrap());
    assert_eq!(
        first.get("k").await.unwrap(),
        Some(Bytes::from_static(b"three"))
    );
}
