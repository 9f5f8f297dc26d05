//! `add` as Redis sees it: one `SET NX` under the prefix, with the TTL rounded up to
//! milliseconds, or none; and the TCK's add checks in pooled mode, which the contract
//! suite (multiplexed) does not run.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{ConnectionModel, RedisCache};
use cache_tck::{run_check, Requirement, CHECKS};
use common::{local_server, plain};
use redis::aio::MultiplexedConnection;

async fn pttl(client: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(client)
        .await
        .unwrap()
}

async fn get(client: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(client)
        .await
        .unwrap()
}

/// In both connection models: `add` stores the raw value under the prefix with the TTL
/// in milliseconds (none without one), leaves value and TTL of a present key alone, and
/// sends nothing for a zero TTL.
#[tokio::test]
async fn add_is_a_set_nx_under_the_prefix_with_the_ttl() {
    let server = local_server(&[]).await;
    let mut client = plain(&server.url()).await;
    for (prefix, pooled) in [("multiplexed:", false), ("pooled:", true)] {
        let builder = RedisCache::builder(&server.url()).key_prefix(prefix);
        let builder = if pooled {
            builder.connection_model(ConnectionModel::Pooled { max_size: 4 })
        } else {
            builder
        };
        let cache = builder.build().await.unwrap();
        let full = |key: &str| format!("{prefix}{key}");

        assert!(cache
            .add(
                "ttl",
                Bytes::from_static(b"first\r\n"),
                Some(Duration::from_micros(1_500_500))
            )
            .await
            .unwrap());
        assert_eq!(
            get(&mut client, &full("ttl")).await.as_deref(),
            Some(&b"first\r\n"[..])
        );
        let ttl = pttl(&mut client, &full("ttl")).await;
        assert!((1..=1501).contains(&ttl), "{prefix} PTTL after add: {ttl}");

        assert!(!cache
            .add("ttl", Bytes::from_static(b"second"), None)
            .await
            .unwrap());
        assert_eq!(
            get(&mut client, &full("ttl")).await.as_deref(),
            Some(&b"first\r\n"[..])
        );
        let after = pttl(&mut client, &full("ttl")).await;
        assert!(
            (1..=ttl).contains(&after),
            "{prefix} PTTL after a refused add: {after}"
        );

        assert!(cache.add("none", Bytes::new(), None).await.unwrap());
        assert_eq!(get(&mut client, &full("none")).await, Some(Vec::new()));
        assert_eq!(
            pttl(&mut client, &full("none")).await,
            -1,
            "{prefix} no TTL"
        );

        assert!(!cache
            .add("zero", Bytes::from_static(b"x"), Some(Duration::ZERO))
            .await
            .unwrap());
        assert_eq!(get(&mut client, &full("zero")).await, None);

        let err = cache
            .add("max", Bytes::from_static(b"x"), Some(Duration::MAX))
            .await
            .unwrap_err();
        assert!(matches!(err, CacheError::InvalidTtl { .. }), "{err:?}");
        assert_eq!(get(&mut client, &full("max")).await, None);
    }
}

/// Every add check of the TCK passes on a pooled cache too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_checks_pass_in_pooled_mode() {
    let server = local_server(&[]).await;
    let checks: Vec<_> = CHECKS
        .iter()
        .filter(|check| Requirement::of(check) == Some(Requirement::AtomicAdd))
        .collect();
    assert_eq!(checks.len(), 8, "the add checks of the TCK");
    for (i, check) in checks.into_iter().enumerate() {
        let cache = RedisCache::builder(&server.url())
            .key_prefix(format!("pooled-{i}:"))
            .connection_model(ConnectionModel::Pooled { max_size: 8 })
            .build()
            .await
            .unwrap();
        let outcome = run_check(check, &cache).await;
        assert!(outcome.passed(), "{}: {:?}", check.name, outcome.result);
    }
}
