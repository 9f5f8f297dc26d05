//! A sequence the model-based property test (`cache_tck::model`, run on memcached by
//! `extended_tests!` in `contract.rs` and `ring.rs`) found, kept as a plain test.

use cache_memcached::testing::fresh_cache;

/// The shrunk sequence the model found on memcached, as a plain test: on a fresh
/// prefixed cache whose first operation comes after the generation refresh interval, an
/// `add` of an absent key stores it and returns true (once, not twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_as_the_first_operation_after_the_refresh_interval_returns_true() {
    use cache_api::{Bytes, Cache};
    use std::time::Duration;
    let cache = fresh_cache().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let added = cache
        .add("a", Bytes::from("a#1"), Some(Duration::from_secs(3)))
        .await;
    assert_eq!(
        added.ok(),
        Some(true),
        "add of an absent key on a fresh namespace"
    );
    assert_eq!(cache.get("a").await.ok(), Some(Some(Bytes::from("a#1"))));
}
