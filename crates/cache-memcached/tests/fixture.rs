//! The test fixture cleans up after itself: dropping a test cache deletes every memcached
//! key written through it, its generation counter included, and nothing else. Each test
//! points the fixture at a memcached of its own and compares full key dumps.

mod common;

use std::{collections::BTreeSet, time::Duration};

use cache_api::{Bytes, Cache};
use cache_memcached::{testing::fresh_cache_with, MemcachedCache};
use common::{address, local_server, metadump};

fn dump(url: &str) -> BTreeSet<String> {
    metadump(&address(url))
        .into_iter()
        .map(|key| String::from_utf8_lossy(&key).into_owned())
        .collect()
}

/// Keys of every shape the cache stores differently: native, encoded, hashed.
fn awkward_keys() -> Vec<String> {
    vec![
        "plain".to_owned(),
        "with space\r\nand newline".to_owned(),
        "long:".repeat(100),
    ]
}

/// Dropping a test cache leaves the server as it found it, whatever was written through
/// `set`, `set_many` and `add`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_test_cache_deletes_what_it_wrote() {
    let server = local_server(&[]).await;
    let url = server.url();
    let cache = fresh_cache_with(|builder| builder.servers([address(&url)])).await;
    let keys = awkward_keys();
    for key in &keys {
        cache.set(key, Bytes::from("v"), None).await.unwrap();
    }
    let entries: Vec<(&str, Bytes)> = vec![("a", Bytes::from("1")), ("b", Bytes::from("2"))];
    cache.set_many(&entries, None).await.unwrap();
    assert!(cache.add("added", Bytes::from("x"), None).await.unwrap());
    assert_eq!(cache.written_keys(), keys.len() + 3);
    // The entries, plus the generation counter.
    let before = dump(&url);
    assert_eq!(before.len(), keys.len() + 4, "{before:?}");
    drop(cache);
    assert_eq!(dump(&url), BTreeSet::new(), "left behind after the drop");
}

/// Entries written before and after a `clear` (two generations of the prefix) are all
/// gone after the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_every_generation_are_deleted() {
    let server = local_server(&[]).await;
    let url = server.url();
    let cache = fresh_cache_with(|builder| {
        builder
            .servers([address(&url)])
            .namespace_refresh(Duration::ZERO)
    })
    .await;
    cache.set("k", Bytes::from("old"), None).await.unwrap();
    cache.clear().await.unwrap();
    cache.set("k", Bytes::from("new"), None).await.unwrap();
    // A second instance on the same prefix clears and writes: a third generation, seen
    // by the test cache at its next operation.
    let other = MemcachedCache::builder(&url)
        .key_prefix(cache.key_prefix().unwrap())
        .build()
        .await
        .unwrap();
    other.clear().await.unwrap();
    cache.set("j", Bytes::from("newer"), None).await.unwrap();
    // `j` went to the stale generation too, alongside the check that found the new one.
    let before = dump(&url);
    assert_eq!(before.len(), 3, "j twice and the counter: {before:?}");
    drop(cache);
    assert_eq!(dump(&url), BTreeSet::new(), "left behind after the drop");
}

/// Another test's entries on the same server survive the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_keeps_its_entries() {
    let server = local_server(&[]).await;
    let url = server.url();
    let ours = fresh_cache_with(|builder| builder.servers([address(&url)])).await;
    let theirs = fresh_cache_with(|builder| builder.servers([address(&url)])).await;
    ours.set("k", Bytes::from("ours"), None).await.unwrap();
    theirs.set("k", Bytes::from("theirs"), None).await.unwrap();
    let kept = dump(&url)
        .into_iter()
        .filter(|key| key.starts_with(theirs.key_prefix().unwrap()))
        .collect::<BTreeSet<_>>();
    assert_eq!(kept.len(), 2, "{kept:?}");
    drop(ours);
    assert_eq!(dump(&url), kept);
    assert_eq!(
        theirs.get("k").await.unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
}

/// A test cache that wrote nothing deletes nothing, and connects nowhere to do so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_wrote_nothing_leaves_the_server_alone() {
    let server = local_server(&[]).await;
    let url = server.url();
    let cache = fresh_cache_with(|builder| builder.servers([address(&url)])).await;
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert_eq!(cache.written_keys(), 0);
    drop(cache);
    assert_eq!(dump(&url), BTreeSet::new());
}
