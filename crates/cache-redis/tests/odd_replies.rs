//! A write is done when Redis answers `OK`. A server, or a proxy in front of one, that
//! answers a write with anything else (nil, a number, another status, data) has not
//! stored it as asked: the call fails with `Backend`, and the cache stays usable. The
//! same holds for a count (`UNLINK`, `EXISTS`) answered with anything but an integer.

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{ConnectionModel, RedisCache};

/// A fake Redis: every write (`SET`, `MSET`, `FLUSHDB`) answered with `odd`, `GET` with
/// a miss, `UNLINK` with 0, anything else (`PING`, the client's setup) with `OK`.
async fn answering_writes_with(odd: &'static str) -> String {
    answering(move |name| match name {
        "SET" | "MSET" | "FLUSHDB" => odd,
        "GET" => "$-1\r\n",
        "UNLINK" => ":0\r\n",
        "PING" => "+PONG\r\n",
        _ => "+OK\r\n",
    })
    .await
}

/// A fake Redis answering each command with what `answer` gives for its name.
async fn answering(answer: impl Fn(&str) -> &'static str + Send + Sync + 'static) -> String {
    cache_testserver::hostile::fake_redis(move |name, _| answer(name), |_| {}).await
}

/// A cache on the fake server at `url`, calls bounded by 2 s.
async fn built(url: &str) -> RedisCache {
    RedisCache::builder(url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_or_else(|err| panic!("{url}: {err}"))
}

fn is_backend(result: Result<(), CacheError>) -> bool {
    matches!(result, Err(CacheError::Backend { .. }))
}

#[tokio::test]
async fn a_write_answered_with_anything_but_ok_fails() {
    for odd in [
        "$-1\r\n",
        ":42\r\n",
        "+QUEUED\r\n",
        "$5\r\nhello\r\n",
        "*1\r\n+OK\r\n",
    ] {
        let url = answering_writes_with(odd).await;
        for mode in ["multiplexed", "pooled"] {
            let model = if mode == "pooled" {
                ConnectionModel::Pooled { max_size: 2 }
            } else {
                ConnectionModel::Multiplexed { connections: 1 }
            };
            let cache = RedisCache::builder(&url)
                .connection_model(model)
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .unwrap_or_else(|err| panic!("{odd:?} {mode}: {err}"));
            let value = Bytes::from_static(b"v");
            let ttl = Some(Duration::from_secs(60));
            let calls = [
                ("set", cache.set("k", value.clone(), None).await),
                ("set with a ttl", cache.set("k", value.clone(), ttl).await),
                (
                    "set_many",
                    cache
                        .set_many(&[("a", value.clone()), ("b", value.clone())], None)
                        .await,
                ),
                (
                    "set_many with a ttl",
                    cache
                        .set_many(&[("a", value.clone()), ("b", value.clone())], ttl)
                        .await,
                ),
                ("clear", cache.clear().await),
            ];
            for (call, result) in calls {
                let shown = format!("{result:?}");
                assert!(is_backend(result), "{odd:?} {mode} {call}: {shown}");
                assert!(!shown.contains("hello"), "{shown}");
            }
            // What the server answered was whole: the connection is still in step.
            assert_eq!(cache.get("k").await.unwrap(), None, "{odd:?} {mode}");
            // A zero TTL removes: `UNLINK`, whose answer is a count.
            cache.set("k", value, Some(Duration::ZERO)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_count_answered_with_anything_but_an_integer_fails() {
    for odd in [",3.14\r\n", "$1\r\n1\r\n", "+OK\r\n", ":-1\r\n", "$-1\r\n"] {
        let url = answering(move |name| match name {
            "UNLINK" | "EXISTS" => odd,
            "PING" => "+PONG\r\n",
            "GET" => "$-1\r\n",
            _ => "+OK\r\n",
        })
        .await;
        let cache = built(&url).await;
        let delete = cache.delete("k").await.map(drop);
        let delete_many = cache.delete_many(&["a", "b"]).await.map(drop);
        let exists = cache.exists("k").await.map(drop);
        let removed_by_ttl = cache
            .set("k", Bytes::from_static(b"v"), Some(Duration::ZERO))
            .await;
        for (call, result) in [
            ("delete", delete),
            ("delete_many", delete_many),
            ("exists", exists),
            ("set with a zero ttl", removed_by_ttl),
        ] {
            let shown = format!("{result:?}");
            assert!(is_backend(result), "{odd:?} {call}: {shown}");
        }
        assert_eq!(cache.get("k").await.unwrap(), None, "{odd:?}");
    }
}

/// A reply that is not Redis's protocol at all (memcached's `ERROR` now answering on
/// the port) is `Backend` in one line that says so, not the parser's dump of byte
/// values.
#[tokio::test]
async fn a_reply_in_another_protocol_is_said_so_in_one_line() {
    let url = answering(|name| match name {
        "GET" => "ERROR\r\n",
        "PING" => "+PONG\r\n",
        _ => "+OK\r\n",
    })
    .await;
    let cache = built(&url).await;
    match cache.get("k").await {
        Err(error @ CacheError::Backend { .. }) => {
            let shown = error.to_string();
            assert!(
                shown.contains("other than the redis protocol") && !shown.contains('\n'),
                "{shown}"
            );
        }
        other => panic!("a reply in another protocol: {other:?}"),
    }
}
