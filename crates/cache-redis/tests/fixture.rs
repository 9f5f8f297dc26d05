//! The test fixture keeps tests apart and leaves a server as it found it.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache};
use cache_redis::{
    testing::{fresh_cache, fresh_cache_on, fresh_cache_with, shared_server, unique_prefix, REDIS},
    ConnectionModel,
};
use common::{local_server, plain, snapshot};

/// A server that held data before holds exactly the same keys, values and TTLs after
/// fixture caches ran checks on it (clear included) and were dropped.
#[tokio::test]
async fn a_server_holding_data_is_left_exactly_as_it_was() {
    let server = local_server(&[]).await;
    let mut client = plain(&server.url()).await;
    let seed: [(&[u8], &[u8]); 4] = [
        (b"user:1", b"alice"),
        (b"cache-test:not-a-fixture-key", b"looks like ours, is not"),
        (b"bin\x00\xff", b"\x00\x01\x02\xfe\xff"),
        (b"empty", b""),
    ];
    for (key, value) in seed {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut client)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("with-ttl")
        .arg("v")
        .arg("EX")
        .arg(3600)
        .query_async(&mut client)
        .await
        .unwrap();
    let before = snapshot(&mut client).await;
    assert_eq!(before.len(), 5);

    for _ in 0..2 {
        let cache = fresh_cache_on(&server.url()).await;
        for name in [
            "test_set_and_get_value_without_ttl",
            "test_set_many_stores_every_entry_with_the_ttl",
            "test_clear_removes_every_entry",
            "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
            "test_long_ttls_are_readable_right_away",
        ] {
            let check =
                cache_tck::check_named(name).unwrap_or_else(|| panic!("no check named {name}"));
            (check.run)(&cache as &dyn Cache)
                .await
                .unwrap_or_else(|failure| panic!("{name}: {failure}"));
        }
        cache
            .set("left behind", Bytes::from("x"), None)
            .await
            .unwrap();
        cache
            .set(
                "left with ttl",
                Bytes::from("x"),
                Some(Duration::from_secs(600)),
            )
            .await
            .unwrap();
        let size: usize = redis::cmd("DBSIZE").query_async(&mut client).await.unwrap();
        assert!(
            size > before.len(),
            "the checks wrote nothing to the server"
        );
    }

    assert_eq!(snapshot(&mut client).await, before);
}

/// Two fresh caches have different prefixes and never see each other's keys.
#[tokio::test]
async fn fresh_caches_do_not_see_each_other() {
    let one = fresh_cache().await;
    let two = fresh_cache().await;
    assert_ne!(one.prefix(), two.prefix());
    assert!(one.prefix().ends_with(':') && one.prefix().contains(&std::process::id().to_string()));
    one.set("k", Bytes::from("one"), None).await.unwrap();
    assert_eq!(two.get("k").await.unwrap(), None);
    two.set("k", Bytes::from("two"), None).await.unwrap();
    two.clear().await.unwrap();
    assert_eq!(one.get("k").await.unwrap(), Some(Bytes::from("one")));
    assert_ne!(unique_prefix(), unique_prefix());
}

/// Dropping a fixture cache removes every key under its prefix from the shared server.
#[tokio::test]
async fn dropping_a_fixture_cache_removes_its_keys() {
    let cache = fresh_cache().await;
    let prefix = cache.prefix().to_owned();
    let entries: Vec<(String, Bytes)> = (0..700)
        .map(|i| (format!("k{i}"), Bytes::from("v")))
        .collect();
    let entries: Vec<(&str, Bytes)> = entries
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    cache
        .set("ttl", Bytes::from("v"), Some(Duration::from_secs(600)))
        .await
        .unwrap();

    let mut client = plain(shared_server(&REDIS).await.url()).await;
    let count = |client: &mut redis::aio::MultiplexedConnection| {
        let pattern = format!("{prefix}*");
        let mut client = client.clone();
        async move {
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut client)
                .await
                .unwrap();
            keys.len()
        }
    };
    assert_eq!(count(&mut client).await, 701);
    drop(cache);
    assert_eq!(count(&mut client).await, 0);
}

/// `fresh_cache_with` builds the cache with the builder as adjusted (here a pool of
/// three and a prefix of the test's own), and its drop removes the keys under the
/// prefix actually used.
#[tokio::test]
async fn fresh_cache_with_applies_the_builder_and_cleans_the_prefix_it_got() {
    let own = format!("{}own:", unique_prefix());
    let cache = fresh_cache_with(|builder| {
        builder
            .connection_model(ConnectionModel::Pooled { max_size: 3 })
            .key_prefix(own.clone())
    })
    .await;
    assert_eq!(cache.prefix(), own);
    assert_eq!(cache.key_prefix(), own);
    let shown = format!("{cache:?}");
    assert!(shown.contains("pooled(3)"), "{shown}");
    cache.set("k", Bytes::from("v"), None).await.unwrap();

    let mut client = plain(shared_server(&REDIS).await.url()).await;
    let key = format!("{own}k");
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"v"[..]));
    drop(cache);
    let left: usize = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(left, 0, "the drop left {key} behind");
}

/// A builder left without a key prefix is refused: its clean-up would empty the
/// database.
#[tokio::test]
#[should_panic(expected = "needs a key prefix")]
async fn fresh_cache_with_refuses_an_empty_prefix() {
    let _ = fresh_cache_with(|builder| builder.key_prefix("")).await;
}
