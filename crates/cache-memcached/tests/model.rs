//! The model-based property test (`cache_tck::model`) on memcached: random sequences of
//! every declared operation, answer by answer against the reference model, each on a
//! fresh prefixed cache of the fixture, on one server and on the three-node ring. A
//! bystander cache of the same fixture checks that `clear` stays within its prefix.
//!
//! memcached's clock has a granularity of 1 s, so TTLs of 2 and 3 s and pauses of 1 and
//! 3.5 s: 16 sequences run at once to keep the run near 20 s. `CACHE_MODEL_CASES` sets
//! how many sequences run (32 by default).

use cache_memcached::testing::{fresh_cache, fresh_ring_cache};
use cache_tck::model::{self, Config};

fn config() -> Config {
    Config::from_env()
        .expect("CACHE_MODEL_CASES and CACHE_MODEL_SEED are numbers")
        .with_parallel(16)
}

/// Every answer of a single memcached server is one the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_keeps_the_model() {
    model::assert_kept("memcached", model::run(fresh_cache, &config()).await);
}

/// Every answer of a ring of three memcached servers is one the model allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_ring_keeps_the_model() {
    model::assert_kept(
        "memcached ring",
        model::run(fresh_ring_cache, &config()).await,
    );
}

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
