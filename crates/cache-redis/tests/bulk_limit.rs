//! A server that takes shorter strings than the cache's value limit
//! (`proto-max-bulk-len`) lowers that limit at build: a longer value is refused as
//! `ValueTooLarge` before it is sent, instead of the server closing the connection under
//! it and every call in flight on it. A key longer than that limit (with the prefix) is
//! refused alike, as `InvalidKey`.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{ConnectionModel, RedisCache, DEFAULT_MAX_VALUE_SIZE};
use common::local_server;
use futures::future::join_all;

const SERVER_LIMIT: usize = 1 << 20;

#[tokio::test]
async fn a_value_over_the_servers_bulk_length_is_refused_before_it_is_sent() {
    values_over_the_limit_are_refused_before_they_are_sent(
        &["--proto-max-bulk-len", "1mb"],
        SERVER_LIMIT,
    )
    .await;
}

/// A query buffer limit lowered below the value limit lowers it too, by what a command
/// holds beside its value (64 KiB): the server would close the connection on a command
/// longer than its buffer.
#[tokio::test]
async fn a_value_over_the_servers_query_buffer_is_refused_before_it_is_sent() {
    values_over_the_limit_are_refused_before_they_are_sent(
        &["--client-query-buffer-limit", "1mb"],
        SERVER_LIMIT - 64 * 1024,
    )
    .await;
}

async fn values_over_the_limit_are_refused_before_they_are_sent(
    server_args: &[&str],
    server_limit: usize,
) {
    let server = local_server(server_args).await;
    for model in [
        ConnectionModel::Multiplexed { connections: 1 },
        ConnectionModel::Pooled { max_size: 4 },
    ] {
        let cache = RedisCache::builder(&server.url())
            .timeout(Duration::from_secs(2))
            .connection_model(model)
            .build()
            .await
            .unwrap_or_else(|err| panic!("{model:?}: {err}"));
        assert_eq!(cache.limits().max_value_size, server_limit, "{model:?}");
        cache
            .set("keeper", Bytes::from("kept"), None)
            .await
            .unwrap();

        // Others' calls in flight beside the refused values all succeed.
        let oversized = Bytes::from(vec![b'x'; server_limit + 1]);
        let readers = (0..20).map(|_| cache.get("keeper"));
        let writes = async {
            (
                cache.set("big", oversized.clone(), None).await,
                cache.add("big", oversized.clone(), None).await,
                cache
                    .set_many(
                        &[("small", Bytes::from("s")), ("big", oversized.clone())],
                        None,
                    )
                    .await,
            )
        };
        let (reads, (set, add, set_many)) = tokio::join!(join_all(readers), writes);
        for read in reads {
            assert_eq!(read.unwrap(), Some(Bytes::from("kept")), "{model:?}");
        }
        for (operation, refused) in [("set", set), ("add", add.map(drop)), ("set_many", set_many)] {
            match refused {
                Err(CacheError::ValueTooLarge { size, limit }) => {
                    assert_eq!(
                        (size, limit),
                        (server_limit + 1, server_limit),
                        "{model:?} {operation}"
                    );
                }
                other => {
                    panic!("{model:?}: {operation} of a value over the server's limit: {other:?}")
                }
            }
        }
        assert_eq!(
            cache.get("small").await.unwrap(),
            None,
            "{model:?}: set_many wrote part"
        );
        assert_eq!(cache.get("big").await.unwrap(), None, "{model:?}");

        // A value of exactly the server's limit is stored and read back whole.
        let largest = Bytes::from(vec![b'y'; server_limit]);
        cache.set("big", largest.clone(), None).await.unwrap();
        assert_eq!(cache.get("big").await.unwrap(), Some(largest), "{model:?}");
        cache.clear().await.unwrap();
    }
}

/// A key the server would not take in one argument is `InvalidKey` on every operation,
/// before anything is sent: the connection, and the calls of others on it, go on.
#[tokio::test]
async fn a_key_over_the_servers_bulk_length_is_refused_before_it_is_sent() {
    let server = local_server(&["--proto-max-bulk-len", "1mb"]).await;
    let prefix = "app:";
    let cache = RedisCache::builder(&server.url())
        .key_prefix(prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let longest = SERVER_LIMIT - prefix.len();
    assert_eq!(cache.limits().max_native_key_len, Some(longest));
    cache
        .set("keeper", Bytes::from("kept"), None)
        .await
        .unwrap();
    let long = "k".repeat(longest + 1);
    let value = || Bytes::from("v");
    let refused = [
        ("get", cache.get(&long).await.map(drop)),
        ("set", cache.set(&long, value(), None).await),
        ("add", cache.add(&long, value(), None).await.map(drop)),
        ("delete", cache.delete(&long).await.map(drop)),
        ("exists", cache.exists(&long).await.map(drop)),
        (
            "get_many",
            cache.get_many(&["keeper", &long]).await.map(drop),
        ),
        (
            "set_many",
            cache
                .set_many(&[("small", value()), (&long, value())], None)
                .await,
        ),
        (
            "delete_many",
            cache.delete_many(&["keeper", &long]).await.map(drop),
        ),
    ];
    for (operation, result) in refused {
        assert!(
            matches!(result, Err(CacheError::InvalidKey { .. })),
            "{operation} of a key over the server's limit: {result:?}"
        );
    }
    assert_eq!(
        cache.get("small").await.unwrap(),
        None,
        "set_many wrote part"
    );
    assert_eq!(
        cache.get("keeper").await.unwrap(),
        Some(Bytes::from("kept"))
    );
    // The longest key the server takes is stored and read back.
    let longest_key = "k".repeat(longest);
    cache.set(&longest_key, value(), None).await.unwrap();
    assert_eq!(cache.get(&longest_key).await.unwrap(), Some(value()));
}

#[tokio::test]
async fn a_lower_configured_limit_stays_and_a_server_that_does_not_say_keeps_it() {
    let server = local_server(&["--proto-max-bulk-len", "1mb"]).await;
    let lower = RedisCache::builder(&server.url())
        .max_value_size(1000)
        .build()
        .await
        .unwrap();
    assert_eq!(lower.limits().max_value_size, 1000);

    // A user without `+config|get` cannot read the server's limit: the configured one
    // stays, and the cache works.
    let mut admin = common::plain(&server.url()).await;
    for (user, rights) in [("no-config", &[][..]), ("config-get", &["+config|get"][..])] {
        let mut all = vec!["+get", "+set", "+ping"];
        all.extend_from_slice(rights);
        common::set_acl_user(&mut admin, user, "pw", "~*", &all).await;
        let url = format!("redis://{user}:pw@127.0.0.1:{}", server.port());
        let cache = RedisCache::connect(&url).await.unwrap();
        let expected = if rights.is_empty() {
            DEFAULT_MAX_VALUE_SIZE
        } else {
            SERVER_LIMIT
        };
        assert_eq!(cache.limits().max_value_size, expected, "{user}");
        cache.set("k", Bytes::from("v"), None).await.unwrap();
        assert_eq!(
            cache.get("k").await.unwrap(),
            Some(Bytes::from("v")),
            "{user}"
        );
    }
}

#[tokio::test]
async fn on_a_cluster_the_smallest_masters_limit_wins() {
    let cluster =
        common::local_cluster(&cache_redis::testing::ClusterSpec::new().replicas_per_master(0))
            .await;
    let url = cluster.url();
    let masters = common::masters(&url);
    let lowered = &masters[1];
    let mut node = common::plain(&lowered.url).await;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("2mb")
        .query_async::<()>(&mut node)
        .await
        .unwrap();
    let cache = RedisCache::connect(&url).await.unwrap();
    assert_eq!(cache.limits().max_value_size, 2 << 20);
    let refused = cache
        .set("k", Bytes::from(vec![0; (2 << 20) + 1]), None)
        .await;
    assert!(
        matches!(refused, Err(CacheError::ValueTooLarge { .. })),
        "{refused:?}"
    );
}
