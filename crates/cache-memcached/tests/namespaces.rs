//! Key prefixes and `clear`: one prefix's clear never touches another's entries or
//! anyone else's, instances sharing a prefix see a clear within the refresh interval, a
//! lost generation counter never brings cleared entries back, and `clear` without a
//! prefix flushes the whole server. Each test runs its own memcached, so the prefixes are
//! exactly those named.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache};
use cache_memcached::MemcachedCache;
use common::{local_server, plain_client, raw_get};

async fn cache(url: &str, prefix: &str) -> MemcachedCache {
    MemcachedCache::builder(url)
        .key_prefix(prefix)
        .build()
        .await
        .unwrap()
}

fn value(text: &'static str) -> Option<Bytes> {
    Some(Bytes::from_static(text.as_bytes()))
}

/// Clearing "foo:" leaves "foobar:" and keys of other clients alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_one_prefix_leaves_another_alone() {
    let server = local_server(&[]).await;
    let url = server.url();
    let (foo, foobar) = (cache(&url, "foo:").await, cache(&url, "foobar:").await);
    let plain = plain_client(&url);
    plain.set("outside", &b"other application"[..], 0).unwrap();
    for key in ["k", "bar:k", "x"] {
        foo.set(key, Bytes::from("foo"), None).await.unwrap();
        foobar
            .set(key, Bytes::from("foobar"), Some(Duration::from_secs(60)))
            .await
            .unwrap();
    }
    foo.clear().await.unwrap();
    for key in ["k", "bar:k", "x"] {
        assert_eq!(
            foo.get(key).await.unwrap(),
            None,
            "foo:{key} after clearing foo:"
        );
        assert_eq!(
            foobar.get(key).await.unwrap(),
            value("foobar"),
            "foobar:{key} after clearing foo:"
        );
    }
    assert_eq!(
        plain.get::<Vec<u8>>("outside").unwrap().as_deref(),
        Some(&b"other application"[..])
    );
    foobar.clear().await.unwrap();
    assert_eq!(foobar.get("k").await.unwrap(), None);
    foo.set("k", Bytes::from("again"), None).await.unwrap();
    assert_eq!(foo.get("k").await.unwrap(), value("again"));
}

/// "foo:" + "bar:x" and "foobar:" + "x" are different entries: the generation tag
/// between prefix and key keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_do_not_share_keys() {
    let server = local_server(&[]).await;
    let url = server.url();
    let (foo, foobar) = (cache(&url, "foo:").await, cache(&url, "foobar:").await);
    foo.set("bar:x", Bytes::from("from foo"), None)
        .await
        .unwrap();
    foobar
        .set("x", Bytes::from("from foobar"), None)
        .await
        .unwrap();
    assert_eq!(foo.get("bar:x").await.unwrap(), value("from foo"));
    assert_eq!(foobar.get("x").await.unwrap(), value("from foobar"));
    assert_eq!(foo.get("x").await.unwrap(), None);
    assert_eq!(foobar.get("bar:x").await.unwrap(), None);
}

/// Keys are stored as `<prefix>{<generation>}<key>`, the generation under `<prefix>{gen}`:
/// what another client needs to read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixed_keys_are_readable_by_other_clients() {
    let server = local_server(&[]).await;
    let url = server.url();
    let shop = cache(&url, "shop:").await;
    shop.set("item:1", Bytes::from("apple"), None)
        .await
        .unwrap();
    let generation =
        String::from_utf8(raw_get(&url, b"shop:{gen}").expect("generation counter")).unwrap();
    let raw_key = format!("shop:{{{generation}}}item:1");
    assert_eq!(
        raw_get(&url, raw_key.as_bytes()).as_deref(),
        Some(&b"apple"[..])
    );
    shop.clear().await.unwrap();
    assert_eq!(
        raw_get(&url, b"shop:{gen}"),
        None,
        "clear deletes the counter"
    );
    assert_eq!(raw_get(&url, raw_key.as_bytes()), None, "and the entry");
}

/// The instance that clears sees it at once; another instance of the same prefix sees it
/// within its refresh interval, or at once with a zero interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_prefix_see_a_clear_within_the_refresh_interval() {
    let server = local_server(&[]).await;
    let url = server.url();
    let clearer = cache(&url, "shared:").await;
    let lagging = MemcachedCache::builder(&url)
        .key_prefix("shared:")
        .namespace_refresh(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let strict = MemcachedCache::builder(&url)
        .key_prefix("shared:")
        .namespace_refresh(Duration::ZERO)
        .build()
        .await
        .unwrap();
    clearer.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(lagging.get("k").await.unwrap(), value("v"));
    assert_eq!(strict.get("k").await.unwrap(), value("v"));

    clearer.clear().await.unwrap();
    assert_eq!(clearer.get("k").await.unwrap(), None);
    assert_eq!(strict.get("k").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        lagging.get("k").await.unwrap(),
        None,
        "a clear 600 ms ago, refresh every 500 ms"
    );

    // After the clear all three write and read in the same generation again.
    lagging.set("k", Bytes::from("new"), None).await.unwrap();
    assert_eq!(clearer.get("k").await.unwrap(), value("new"));
    assert_eq!(strict.get("k").await.unwrap(), value("new"));
}

/// A lost generation counter (evicted, or the server restarted) is created again above
/// every earlier number: entries written before it are hidden, cleared ones never return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_generation_counter_never_revives_cleared_entries() {
    let server = local_server(&[]).await;
    let url = server.url();
    let first = MemcachedCache::builder(&url)
        .key_prefix("lost:")
        .namespace_refresh(Duration::ZERO)
        .build()
        .await
        .unwrap();
    first
        .set("cleared", Bytes::from("old"), None)
        .await
        .unwrap();
    first.clear().await.unwrap();
    first
        .set("kept", Bytes::from("current"), None)
        .await
        .unwrap();
    let plain = plain_client(&url);
    assert!(plain.delete("lost:{gen}").unwrap(), "the counter existed");

    let second = cache(&url, "lost:").await;
    assert_eq!(second.get("cleared").await.unwrap(), None);
    assert_eq!(
        second.get("kept").await.unwrap(),
        None,
        "entries before the loss are hidden"
    );
    assert_eq!(first.get("cleared").await.unwrap(), None);
    second
        .set("fresh", Bytes::from("after"), None)
        .await
        .unwrap();
    assert_eq!(
        first.get("fresh").await.unwrap(),
        value("after"),
        "both instances use the new counter"
    );
}

/// Without a prefix, `clear` is `flush_all` on the server: every entry goes, other
/// clients' too, as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_without_a_prefix_flushes_the_whole_server() {
    let server = local_server(&[]).await;
    let url = server.url();
    let whole = MemcachedCache::connect(&url).await.unwrap();
    let prefixed = cache(&url, "app:").await;
    let plain = plain_client(&url);
    plain.set("outside", &b"other application"[..], 0).unwrap();
    whole.set("mine", Bytes::from("x"), None).await.unwrap();
    prefixed
        .set("theirs", Bytes::from("y"), None)
        .await
        .unwrap();
    whole.clear().await.unwrap();
    assert_eq!(whole.get("mine").await.unwrap(), None);
    assert_eq!(plain.get::<Vec<u8>>("outside").unwrap(), None);
    assert_eq!(prefixed.get("theirs").await.unwrap(), None);
    // The prefixed cache goes on: its counter is created again at the next check.
    prefixed
        .set("theirs", Bytes::from("z"), None)
        .await
        .unwrap();
    assert_eq!(prefixed.get("theirs").await.unwrap(), value("z"));
}

/// A generation counter overwritten by another client with something that is no number
/// reads as an empty namespace and is replaced by the next write: building, checking and
/// clearing all go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_generation_counter_is_replaced() {
    let server = local_server(&[]).await;
    let url = server.url();
    let plain = plain_client(&url);
    plain.set("odd:{gen}", &b"not a number"[..], 0).unwrap();
    let odd = MemcachedCache::builder(&url)
        .key_prefix("odd:")
        .namespace_refresh(Duration::ZERO)
        .build()
        .await
        .unwrap();
    odd.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(odd.get("k").await.unwrap(), value("v"));
    plain.set("odd:{gen}", &b"garbled again"[..], 0).unwrap();
    assert_eq!(
        odd.get("k").await.unwrap(),
        None,
        "a garbled counter reads as empty"
    );
    odd.clear().await.unwrap();
    assert_eq!(odd.get("k").await.unwrap(), None);
    assert_eq!(raw_get(&url, b"odd:{gen}"), None);
    plain
        .set("odd:{gen}", &b"garbled once more"[..], 0)
        .unwrap();
    odd.set("k", Bytes::from("v"), None).await.unwrap();
    let counter = raw_get(&url, b"odd:{gen}").unwrap();
    assert!(
        std::str::from_utf8(&counter)
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "{counter:?}"
    );
    odd.set("k", Bytes::from("w"), None).await.unwrap();
    assert_eq!(odd.get("k").await.unwrap(), value("w"));
}
