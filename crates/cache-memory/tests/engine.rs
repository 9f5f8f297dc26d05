//! What the in-memory backend keeps beyond the contract: the byte budget bounds memory
//! whatever the TTLs, expired entries are removed by a sweep, and an entry too heavy
//! for the table is refused with a typed error instead of being dropped silently.

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_memory::MemoryCache;

/// Writes far past the budget leave the charged bytes within it, and the latest write
/// readable.
#[tokio::test]
async fn the_budget_bounds_the_bytes_charged() {
    let budget = 1 << 20;
    let cache = MemoryCache::builder()
        .max_capacity_bytes(budget)
        .build()
        .unwrap();
    let value = Bytes::from(vec![1; 1000]);
    for i in 0..10_000 {
        let ttl = (i % 2 == 0).then_some(Duration::from_secs(3600));
        cache
            .set(&format!("key:{i}"), value.clone(), ttl)
            .await
            .unwrap();
        assert_eq!(
            cache.get(&format!("key:{i}")).await.unwrap().as_deref(),
            Some(&value[..]),
            "key:{i} right after its set"
        );
    }
    let charged = cache.weighted_size().await;
    assert!(
        charged <= budget,
        "{charged} bytes charged, budget {budget}"
    );
    // 10 MB were written: most of it must be gone.
    let entries = cache.entry_count().await;
    assert!(entries > 100 && entries < 1100, "{entries} entries left");
}

/// Entries whose TTL passed are not counted once a count has swept them, and give
/// their bytes back.
#[tokio::test]
async fn expired_entries_are_swept_by_a_count() {
    let cache = MemoryCache::new();
    for i in 0..100 {
        let key = format!("short:{i}");
        cache
            .set(&key, Bytes::from("x"), Some(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    cache.set("long", Bytes::from("y"), None).await.unwrap();
    assert_eq!(cache.entry_count().await, 101);
    let before = cache.weighted_size().await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(cache.entry_count().await, 1);
    assert!(cache.weighted_size().await < before);
    assert_eq!(cache.get("long").await.unwrap(), Some(Bytes::from("y")));
}

/// Entries that expired unread give their room to the live entries written after
/// them: a budget filled with expired entries, then written half full of live ones,
/// keeps every live one (written by `set` and by `add`).
#[tokio::test]
async fn expired_entries_make_room_for_live_ones() {
    let cache = MemoryCache::builder()
        .max_capacity_bytes(1 << 20)
        .build()
        .unwrap();
    let value = Bytes::from(vec![7; 900]);
    for i in 0..1000 {
        cache
            .set(
                &format!("short:{i}"),
                value.clone(),
                Some(Duration::from_millis(50)),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..500 {
        let key = format!("live:{i}");
        if i % 2 == 0 {
            cache.set(&key, value.clone(), None).await.unwrap();
        } else {
            assert!(cache.add(&key, value.clone(), None).await.unwrap(), "{key}");
        }
    }
    let mut lost = Vec::new();
    for i in 0..500 {
        let key = format!("live:{i}");
        if cache.get(&key).await.unwrap().is_none() {
            lost.push(key);
        }
    }
    assert!(
        lost.is_empty(),
        "{} of 500 live entries lost: {lost:?}",
        lost.len()
    );
}

/// A key so long that key and value outweigh a shard is refused as `ValueTooLarge`,
/// naming what would fit beside that key, by `set`, `set_many` and `add` alike; nothing
/// is written.
#[tokio::test]
async fn an_entry_heavier_than_a_shard_is_refused() {
    let cache = MemoryCache::builder()
        .max_capacity_bytes(64 << 10)
        .max_value_size(4 << 10)
        .build()
        .unwrap();
    let key = "k".repeat(70 << 10);
    let value = Bytes::from(vec![0; 100]);
    let refused = |err: CacheError| match err {
        CacheError::ValueTooLarge { size, limit } => {
            assert_eq!(size, 100);
            assert_eq!(limit, 0, "nothing fits beside a 70 KiB key in 64 KiB");
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    };
    refused(cache.set(&key, value.clone(), None).await.unwrap_err());
    refused(cache.add(&key, value.clone(), None).await.unwrap_err());
    let entries = [("fine", value.clone()), (key.as_str(), value.clone())];
    refused(cache.set_many(&entries, None).await.unwrap_err());
    assert_eq!(
        cache.get("fine").await.unwrap(),
        None,
        "set_many wrote part"
    );
    assert_eq!(cache.entry_count().await, 0);
}

/// An `add` over an entry whose TTL passed stores, and the new TTL holds.
#[tokio::test]
async fn add_replaces_an_expired_entry_with_its_own_ttl() {
    let cache = MemoryCache::new();
    cache
        .set("k", Bytes::from("old"), Some(Duration::from_millis(10)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(cache.add("k", Bytes::from("new"), None).await.unwrap());
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("new")));
    assert!(!cache.add("k", Bytes::from("newer"), None).await.unwrap());
    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
}
