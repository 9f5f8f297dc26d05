//! What the Redis backend does beyond the contract, checked on real servers: raw bytes
//! that other clients read, TTLs as Redis sees them, one command per bulk operation,
//! prefixes and databases that keep caches apart, credentials, and settings.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{ConnectionModel, RedisCache, REDIS_MAX_VALUE_SIZE};
use common::{assert_err, everything_shown, local_server, plain};

fn binary_value() -> Bytes {
    let mut value: Vec<u8> = (0..=255).collect();
    value.extend_from_slice(b"\r\n$-1\r\n*0\r\n\x00 end");
    Bytes::from(value)
}

/// Values written by the cache are read byte for byte by a plain client, under the key as given.
#[tokio::test]
async fn a_plain_client_reads_exactly_what_the_cache_wrote() {
    let server = local_server(&[]).await;
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    cache.set("bin", binary_value(), None).await.unwrap();
    cache.set("empty", Bytes::new(), None).await.unwrap();
    cache
        .set("ünï code key", Bytes::from("välue"), None)
        .await
        .unwrap();

    let mut client = plain(&server.url()).await;
    let read: Vec<u8> = redis::cmd("GET")
        .arg("bin")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(read, binary_value().to_vec());
    let read: Option<Vec<u8>> = redis::cmd("GET")
        .arg("empty")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(read, Some(Vec::new()));
    let read: Vec<u8> = redis::cmd("GET")
        .arg("ünï code key")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(read, "välue".as_bytes());
}

/// Values written by a plain client are read byte for byte by the cache.
#[tokio::test]
async fn the_cache_reads_exactly_what_a_plain_client_wrote() {
    let server = local_server(&[]).await;
    let mut client = plain(&server.url()).await;
    let _: () = redis::cmd("SET")
        .arg("from-plain")
        .arg(binary_value().as_ref())
        .query_async(&mut client)
        .await
        .unwrap();
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    assert_eq!(cache.get("from-plain").await.unwrap(), Some(binary_value()));
    assert!(cache.exists("from-plain").await.unwrap());
    assert!(cache.delete("from-plain").await.unwrap());
    let gone: Option<Vec<u8>> = redis::cmd("GET")
        .arg("from-plain")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(gone, None);
}

/// `redis-cli GET key` prints exactly the bytes the cache wrote, with a prefix or without.
#[tokio::test]
async fn redis_cli_reads_exactly_what_was_written() {
    let server = local_server(&[]).await;
    let value = "line one\nline two, tab\t, ünïcode, \u{1F600}";
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    cache
        .set("cli-key", Bytes::from(value), None)
        .await
        .unwrap();
    let prefixed = RedisCache::builder(&server.url())
        .key_prefix("app:")
        .build()
        .await
        .unwrap();
    prefixed
        .set("cli-key", Bytes::from("prefixed"), None)
        .await
        .unwrap();

    let cli = |key: &str| {
        let output = std::process::Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.port().to_string(),
                "--raw",
                "GET",
                key,
            ])
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        assert!(output.status.success(), "redis-cli failed: {output:?}");
        output.stdout
    };
    assert_eq!(cli("cli-key"), format!("{value}\n").into_bytes());
    assert_eq!(cli("app:cli-key"), b"prefixed\n".to_vec());
}

/// A TTL lands as the key's PTTL, to the millisecond; `None` removes an old TTL.
#[tokio::test]
async fn ttls_land_as_pttl_in_milliseconds() {
    let server = local_server(&[]).await;
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    let mut client = plain(&server.url()).await;
    let pttl = |key: &'static str| {
        let mut client = client.clone();
        async move {
            redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut client)
                .await
                .unwrap()
        }
    };

    cache
        .set("ttl", Bytes::from("v"), Some(Duration::from_millis(12_345)))
        .await
        .unwrap();
    let left = pttl("ttl").await;
    assert!(
        (11_345..=12_345).contains(&left),
        "PTTL after a 12345 ms ttl: {left}"
    );

    // 9.9999 s is sent as 10 000 ms: rounded up, never down.
    cache
        .set(
            "ttl-up",
            Bytes::from("v"),
            Some(Duration::from_micros(9_999_900)),
        )
        .await
        .unwrap();
    let left = pttl("ttl-up").await;
    assert!(
        (9_000..=10_000).contains(&left),
        "PTTL after a 9999.9 ms ttl: {left}"
    );

    cache.set("ttl", Bytes::from("v2"), None).await.unwrap();
    assert_eq!(
        pttl("ttl").await,
        -1,
        "a set without ttl must remove the old ttl"
    );

    // Sub-millisecond TTLs are sent as 1 ms: accepted by Redis (PX 0 would be refused).
    cache
        .set("tiny", Bytes::from("v"), Some(Duration::from_nanos(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(cache.get("tiny").await.unwrap(), None);

    let _: () = redis::cmd("PING").query_async(&mut client).await.unwrap();
}

/// A 10-year TTL works, the longest TTL sent is accepted by Redis, and `Duration::MAX`
/// is `InvalidTtl` that leaves the old value in place.
#[tokio::test]
async fn long_ttls_work_and_unrepresentable_ones_are_invalid() {
    let server = local_server(&[]).await;
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    let mut client = plain(&server.url()).await;

    let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
    cache
        .set("long", Bytes::from("v"), Some(ten_years))
        .await
        .unwrap();
    let left: i64 = redis::cmd("PTTL")
        .arg("long")
        .query_async(&mut client)
        .await
        .unwrap();
    assert!(
        (315_359_000_000..=315_360_000_000).contains(&left),
        "PTTL after a 10-year ttl: {left}"
    );

    let longest = Duration::from_millis((i64::MAX / 2) as u64);
    cache
        .set("longest", Bytes::from("v"), Some(longest))
        .await
        .unwrap();
    assert_eq!(cache.get("longest").await.unwrap(), Some(Bytes::from("v")));

    for too_long in [longest + Duration::from_millis(1), Duration::MAX] {
        assert_err(
            cache
                .set("longest", Bytes::from("new"), Some(too_long))
                .await,
            "InvalidTtl",
            |err| matches!(err, CacheError::InvalidTtl { ttl, .. } if *ttl == too_long),
        );
        assert_err(
            cache
                .set_many(&[("longest", Bytes::from("new"))], Some(too_long))
                .await,
            "InvalidTtl from set_many",
            |err| matches!(err, CacheError::InvalidTtl { .. }),
        );
    }
    assert_eq!(cache.get("longest").await.unwrap(), Some(Bytes::from("v")));
}

fn command_calls(info: &str, command: &str) -> u64 {
    let wanted = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

async fn reset_stats(client: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(client)
        .await
        .unwrap();
}

async fn stats(client: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("commandstats")
        .query_async(client)
        .await
        .unwrap()
}

/// Bulk operations are one command each (`MGET`, `MSET`, `UNLINK`, `EXISTS`), and
/// empty lists send nothing at all.
#[tokio::test]
async fn bulk_operations_send_one_command_and_empty_ones_none() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .key_prefix("bulk:")
        .build()
        .await
        .unwrap();
    let mut client = plain(&server.url()).await;

    reset_stats(&mut client).await;
    assert_eq!(
        cache.get_many(&[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );
    cache.set_many(&[], None).await.unwrap();
    cache
        .set_many(&[], Some(Duration::from_secs(5)))
        .await
        .unwrap();
    cache.set_many(&[], Some(Duration::ZERO)).await.unwrap();
    assert_eq!(cache.delete_many(&[]).await.unwrap(), 0);
    let info = stats(&mut client).await;
    for command in ["mget", "mset", "set", "del", "unlink", "get"] {
        assert_eq!(
            command_calls(&info, command),
            0,
            "{command} was sent for an empty list:\n{info}"
        );
    }

    reset_stats(&mut client).await;
    let entries = [
        ("a", Bytes::from("1")),
        ("b", Bytes::from("2")),
        ("a", Bytes::from("3")),
    ];
    cache.set_many(&entries, None).await.unwrap();
    let got = cache.get_many(&["a", "b", "missing", "a"]).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some(Bytes::from("3")),
            Some(Bytes::from("2")),
            None,
            Some(Bytes::from("3"))
        ]
    );
    assert_eq!(
        cache
            .delete_many(&["a", "a", "b", "missing"])
            .await
            .unwrap(),
        2,
        "duplicates count once"
    );
    assert!(!cache.exists("a").await.unwrap());
    let info = stats(&mut client).await;
    for (command, calls) in [
        ("mset", 1),
        ("mget", 1),
        ("unlink", 1),
        ("exists", 1),
        ("get", 0),
        ("set", 0),
        ("del", 0),
    ] {
        assert_eq!(
            command_calls(&info, command),
            calls,
            "calls of {command}:\n{info}"
        );
    }

    reset_stats(&mut client).await;
    cache
        .set_many(&entries, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    cache
        .set_many(&entries[..2], Some(Duration::ZERO))
        .await
        .unwrap();
    let info = stats(&mut client).await;
    assert_eq!(command_calls(&info, "set"), 3, "{info}");
    assert_eq!(command_calls(&info, "unlink"), 1, "{info}");
    assert_eq!(cache.get_many(&["a", "b"]).await.unwrap(), vec![None, None]);
}

/// `set_many` with a TTL stores the last value of a repeated key, with the TTL on every entry.
#[tokio::test]
async fn set_many_with_a_ttl_sets_it_on_every_entry() {
    let server = local_server(&[]).await;
    let cache = RedisCache::connect(&server.url()).await.unwrap();
    let mut client = plain(&server.url()).await;
    cache
        .set_many(
            &[
                ("x", Bytes::from("1")),
                ("y", Bytes::from("2")),
                ("x", Bytes::from("last")),
            ],
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(cache.get("x").await.unwrap(), Some(Bytes::from("last")));
    for key in ["x", "y"] {
        let left: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut client)
            .await
            .unwrap();
        assert!((29_000..=30_000).contains(&left), "PTTL of {key}: {left}");
    }
}

/// `clear` of "foo:" leaves the keys of "foobar:" alone, and the reverse.
#[tokio::test]
async fn clear_of_one_prefix_leaves_a_longer_prefix_alone() {
    let server = local_server(&[]).await;
    let foo = RedisCache::builder(&server.url())
        .key_prefix("foo:")
        .build()
        .await
        .unwrap();
    let foobar = RedisCache::builder(&server.url())
        .key_prefix("foobar:")
        .build()
        .await
        .unwrap();
    foo.set("k", Bytes::from("foo's"), None).await.unwrap();
    foobar
        .set("k", Bytes::from("foobar's"), None)
        .await
        .unwrap();
    foobar
        .set("other", Bytes::from("foobar's"), None)
        .await
        .unwrap();
    assert_eq!(foo.get("k").await.unwrap(), Some(Bytes::from("foo's")));

    foo.clear().await.unwrap();
    assert_eq!(foo.get("k").await.unwrap(), None);
    assert_eq!(
        foobar.get("k").await.unwrap(),
        Some(Bytes::from("foobar's"))
    );
    assert_eq!(
        foobar.get("other").await.unwrap(),
        Some(Bytes::from("foobar's"))
    );

    foo.set("k", Bytes::from("foo's"), None).await.unwrap();
    foobar.clear().await.unwrap();
    assert_eq!(foo.get("k").await.unwrap(), Some(Bytes::from("foo's")));
    assert_eq!(foobar.get("k").await.unwrap(), None);
}

/// A prefix without a trailing delimiter ("foo", which would match "foobar...") is
/// refused at build time; one ending in another punctuation character is fine.
#[tokio::test]
async fn a_prefix_without_a_delimiter_is_refused() {
    let server = local_server(&[]).await;
    let result = RedisCache::builder(&server.url())
        .key_prefix("foo")
        .build()
        .await;
    assert_err(
        result,
        "Config for the prefix \"foo\"",
        |err| matches!(err, CacheError::Config { message } if message.contains("\"foo:\"")),
    );
    let dashed = RedisCache::builder(&server.url())
        .key_prefix("foo-")
        .build()
        .await
        .unwrap();
    dashed.set("k", Bytes::from("v"), None).await.unwrap();
    let mut client = plain(&server.url()).await;
    let stored: Vec<u8> = redis::cmd("GET")
        .arg("foo-k")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(stored, b"v");
}

/// Glob characters in a prefix match only themselves in `clear`: "a*:" does not clear
/// "ab:", "[x]:" does not clear "x:", "q?:" does not clear "qq:".
#[tokio::test]
async fn glob_characters_in_a_prefix_match_only_themselves() {
    let server = local_server(&[]).await;
    let url = server.url();
    let pairs = [
        ("a*:", "ab:"),
        ("[x]:", "x:"),
        ("q?:", "qq:"),
        ("back\\slash:", "backslash:"),
    ];
    for (globby, plain_prefix) in pairs {
        let globby_cache = RedisCache::builder(&url)
            .key_prefix(globby)
            .build()
            .await
            .unwrap();
        let plain_cache = RedisCache::builder(&url)
            .key_prefix(plain_prefix)
            .build()
            .await
            .unwrap();
        globby_cache.set("k", Bytes::from("g"), None).await.unwrap();
        plain_cache.set("k", Bytes::from("p"), None).await.unwrap();
        globby_cache.clear().await.unwrap();
        assert_eq!(
            globby_cache.get("k").await.unwrap(),
            None,
            "clear of {globby:?}"
        );
        assert_eq!(
            plain_cache.get("k").await.unwrap(),
            Some(Bytes::from("p")),
            "clear of {globby:?} removed a key of {plain_prefix:?}"
        );
    }
}

/// A prefix `clear` removes thousands of keys (many SCAN rounds) and only those.
#[tokio::test]
async fn clear_removes_many_keys_under_the_prefix_and_nothing_else() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .key_prefix("many:")
        .build()
        .await
        .unwrap();
    let values: Vec<(String, Bytes)> = (0..2_500)
        .map(|i| (format!("k{i}"), Bytes::from(format!("v{i}"))))
        .collect();
    let entries: Vec<(&str, Bytes)> = values
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    let mut client = plain(&server.url()).await;
    let _: () = redis::cmd("SET")
        .arg("many-not-mine")
        .arg("stays")
        .query_async(&mut client)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("other:k1")
        .arg("stays")
        .query_async(&mut client)
        .await
        .unwrap();

    cache.clear().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut client)
        .await
        .unwrap();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        vec!["many-not-mine".to_owned(), "other:k1".to_owned()]
    );
}

/// Without a prefix, `clear` empties its own database (FLUSHDB) and no other.
#[tokio::test]
async fn databases_keep_caches_apart_and_clear_without_prefix_flushes_only_its_own() {
    let server = local_server(&[]).await;
    let one = RedisCache::connect(&format!("{}/1", server.url()))
        .await
        .unwrap();
    let two = RedisCache::builder(&server.url())
        .database(2)
        .build()
        .await
        .unwrap();
    assert_eq!((one.database(), two.database()), (1, 2));
    one.set("k", Bytes::from("in one"), None).await.unwrap();
    two.set("k", Bytes::from("in two"), None).await.unwrap();
    assert_eq!(one.get("k").await.unwrap(), Some(Bytes::from("in one")));
    assert_eq!(two.get("k").await.unwrap(), Some(Bytes::from("in two")));

    let mut zero = plain(&server.url()).await;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("in zero")
        .query_async(&mut zero)
        .await
        .unwrap();

    one.clear().await.unwrap();
    assert_eq!(one.get("k").await.unwrap(), None);
    assert_eq!(two.get("k").await.unwrap(), Some(Bytes::from("in two")));
    let in_zero: Vec<u8> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut zero)
        .await
        .unwrap();
    assert_eq!(in_zero, b"in zero");

    let clash = RedisCache::builder(&format!("{}/1", server.url()))
        .database(2)
        .build()
        .await;
    assert_err(clash, "Config for two database numbers", |err| {
        matches!(err, CacheError::Config { .. })
    });
}

/// A value over the configured limit is `ValueTooLarge` naming the limit; nothing is sent.
#[tokio::test]
async fn values_over_the_configured_limit_are_refused_before_sending() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .max_value_size(1024)
        .build()
        .await
        .unwrap();
    assert_eq!(cache.limits().max_value_size, 1024);
    cache.set("k", Bytes::from("old"), None).await.unwrap();
    let mut client = plain(&server.url()).await;
    reset_stats(&mut client).await;
    assert_err(
        cache.set("k", Bytes::from(vec![7; 1025]), None).await,
        "ValueTooLarge { size: 1025, limit: 1024 }",
        |err| {
            matches!(
                err,
                CacheError::ValueTooLarge {
                    size: 1025,
                    limit: 1024
                }
            )
        },
    );
    assert_err(
        cache
            .set_many(
                &[("j", Bytes::from("ok")), ("k", Bytes::from(vec![7; 1025]))],
                None,
            )
            .await,
        "ValueTooLarge from set_many",
        |err| matches!(err, CacheError::ValueTooLarge { .. }),
    );
    let info = stats(&mut client).await;
    assert_eq!(
        command_calls(&info, "set") + command_calls(&info, "mset"),
        0,
        "{info}"
    );
    cache
        .set("k", Bytes::from(vec![7; 1024]), None)
        .await
        .unwrap();
    assert_eq!(cache.get("j").await.unwrap(), None);
}

/// `limits()` declares 1 ms granularity, the value limit, and 512 MiB minus the prefix for keys.
#[tokio::test]
async fn limits_are_declared() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .key_prefix("app:")
        .build()
        .await
        .unwrap();
    let limits = cache.limits();
    assert_eq!(limits.ttl_granularity, Duration::from_millis(1));
    assert_eq!(limits.max_value_size, 64 << 20);
    assert_eq!(limits.max_native_key_len, Some(REDIS_MAX_VALUE_SIZE - 4));
}

/// With `.connection_model(ConnectionModel::Multiplexed { connections: 3 })` the operations are spread over three connections.
#[tokio::test]
async fn several_multiplexed_connections_are_opened_and_used() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .connection_model(ConnectionModel::Multiplexed { connections: 3 })
        .build()
        .await
        .unwrap();
    let tasks = (0..60).map(|i| {
        let cache = cache.clone();
        async move {
            let key = format!("k{i}");
            cache.set(&key, Bytes::from(key.clone()), None).await?;
            cache.get(&key).await
        }
    });
    for (i, result) in futures::future::join_all(tasks)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(result.unwrap(), Some(Bytes::from(format!("k{i}"))));
    }
    let mut client = plain(&server.url()).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut client)
        .await
        .unwrap();
    // Three of the cache, one of this check; the pool that serves `clear` opens lazily.
    assert_eq!(list.lines().count(), 4, "{list}");
    // Each connection's last command is one of the operations above, not the PING of
    // the build: round robin used all three.
    let last_commands: Vec<&str> = list
        .lines()
        .filter(|line| !line.contains("cmd=client"))
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("cmd=")))
        .collect();
    assert_eq!(last_commands.len(), 3, "{list}");
    assert!(
        last_commands
            .iter()
            .all(|command| matches!(*command, "get" | "set")),
        "a connection was never used: {list}"
    );
}

/// A server that is not there gives `Unreachable` at build time, quickly.
#[tokio::test]
async fn an_absent_server_is_unreachable_at_build_time() {
    let port = cache_redis::testing::free_port();
    let start = std::time::Instant::now();
    let result = RedisCache::connect(&format!("redis://:s3cret@127.0.0.1:{port}")).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    match result {
        Err(err @ CacheError::Unreachable { .. }) => {
            assert!(!everything_shown(&err).contains("s3cret"));
            assert!(
                err.to_string()
                    .contains(&format!("connecting to 127.0.0.1:{port}")),
                "the error does not say where it connected: {err}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Sentinels that are not there give `Unreachable` at build time, naming the group and
/// every sentinel asked, and never the password.
#[tokio::test]
async fn absent_sentinels_are_named_at_build_time() {
    let ports = [
        cache_redis::testing::free_port(),
        cache_redis::testing::free_port(),
    ];
    let url = format!(
        "redis+sentinel://:s3cret@127.0.0.1:{},127.0.0.1:{}/mymaster",
        ports[0], ports[1]
    );
    match RedisCache::connect(&url).await {
        Err(err @ CacheError::Unreachable { .. }) => {
            assert!(!everything_shown(&err).contains("s3cret"));
            let expected = format!(
                "looking up the master of `mymaster` through the sentinels 127.0.0.1:{}, 127.0.0.1:{}",
                ports[0], ports[1]
            );
            assert!(err.to_string().contains(&expected), "{err}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Timeouts too long for the clock to add (`Duration::MAX`, a URL's `584542046090y`) are
/// the longest timeout (an hour) rather than a panic, in both connection models; a
/// sentinel or a server where nothing listens still fails at once.
#[tokio::test]
async fn timeouts_too_long_for_the_clock_work_as_the_longest() {
    let server = local_server(&[]).await;
    let longest = "timeout=584542046090y&connect_timeout=584542046090y";
    for url in [
        format!("{}?{longest}", server.url()),
        format!("{}?{longest}&mode=pooled&pool_size=2", server.url()),
    ] {
        let cache = RedisCache::connect(&url).await.unwrap();
        cache.set("k", Bytes::from("v"), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert!(cache.delete("k").await.unwrap());
    }
    let built = RedisCache::builder(&server.url())
        .timeout(Duration::MAX)
        .build()
        .await
        .unwrap();
    assert_eq!(built.get("k").await.unwrap(), None);
    let port = cache_redis::testing::free_port();
    for dead in [
        format!("redis://127.0.0.1:{port}?{longest}"),
        format!("redis+sentinel://127.0.0.1:{port}/mymaster?{longest}"),
    ] {
        assert_err(RedisCache::connect(&dead).await, "Unreachable", |err| {
            matches!(err, CacheError::Unreachable { .. })
        });
    }
}

/// `rediss://` to a port where nothing listens is `Unreachable`, and a TLS parameter on
/// `redis://` is a `Config` error naming it; neither shows the password.
#[tokio::test]
async fn tls_urls_fail_with_a_clear_error_and_no_password() {
    let down = cache_redis::testing::free_port();
    let result = RedisCache::connect(&format!("rediss://:s3cret@127.0.0.1:{down}")).await;
    assert_err(result, "Unreachable without the password", |err| {
        matches!(err, CacheError::Unreachable { .. }) && !everything_shown(err).contains("s3cret")
    });
    let result = RedisCache::connect("redis://:s3cret@127.0.0.1:6380?tls_ca=/a/ca.pem").await;
    assert_err(result, "Config naming tls_ca", |err| {
        matches!(err, CacheError::Config { message }
            if message.contains("tls_ca") && !message.contains("s3cret"))
    });
}

const PASSWORD: &str = "Pw-of-the-test-9271";

/// With `requirepass`: the right password works; a wrong one and none give `Auth`,
/// whose text and `Debug` never show the password.
#[tokio::test]
async fn requirepass_right_password_works_and_wrong_or_none_is_auth() {
    let server = local_server(&["--requirepass", PASSWORD]).await;
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}", server.port());

    let cache = RedisCache::connect(&url(PASSWORD)).await.unwrap();
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    assert!(!format!("{cache:?}").contains(PASSWORD));

    let pooled = RedisCache::builder(&url(PASSWORD))
        .connection_model(ConnectionModel::Pooled { max_size: 2 })
        .build()
        .await
        .unwrap();
    assert_eq!(pooled.get("k").await.unwrap(), Some(Bytes::from("v")));

    let wrong = format!("{PASSWORD}-wrong");
    for (what, result) in [
        ("a wrong password", RedisCache::connect(&url(&wrong)).await),
        (
            "a wrong password, pooled",
            RedisCache::builder(&url(&wrong))
                .connection_model(ConnectionModel::Pooled { max_size: 2 })
                .build()
                .await,
        ),
        ("no password", RedisCache::connect(&server.url()).await),
        (
            "no password, pooled",
            RedisCache::builder(&server.url())
                .connection_model(ConnectionModel::Pooled { max_size: 2 })
                .build()
                .await,
        ),
    ] {
        match result {
            Err(err @ CacheError::Auth { .. }) => {
                let shown = everything_shown(&err);
                assert!(
                    !shown.contains(PASSWORD),
                    "{what}: the error shows the password: {shown}"
                );
            }
            other => panic!("{what}: expected Auth, got {other:?}"),
        }
    }
}

/// An ACL user (`redis://user:password@`) works; a wrong password for it is `Auth`.
#[tokio::test]
async fn acl_users_authenticate_with_user_and_password() {
    let server = local_server(&["--user", "alice", "on", ">alice-pw-5531", "~*", "+@all"]).await;
    let url = |password: &str| format!("redis://alice:{password}@127.0.0.1:{}", server.port());
    let cache = RedisCache::connect(&url("alice-pw-5531")).await.unwrap();
    cache.set("k", Bytes::from("alice's"), None).await.unwrap();
    let mut client = plain(&url("alice-pw-5531")).await;
    let whoami: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut client)
        .await
        .unwrap();
    assert_eq!(whoami, "alice");

    match RedisCache::connect(&url("not-alice-pw")).await {
        Err(err @ CacheError::Auth { .. }) => {
            assert!(!everything_shown(&err).contains("not-alice-pw"))
        }
        other => panic!("expected Auth, got {other:?}"),
    }
}

/// A password with URL-reserved characters is percent-decoded, and neither its encoded
/// nor its decoded form shows in `Debug` or errors.
#[tokio::test]
async fn percent_encoded_passwords_work_and_stay_hidden() {
    let password = "p@ss:w/rd%1";
    let encoded = "p%40ss%3Aw%2Frd%251";
    let server = local_server(&["--requirepass", password]).await;
    let url = format!("redis://:{encoded}@127.0.0.1:{}/3", server.port());
    let cache = RedisCache::connect(&url).await.unwrap();
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    let shown = format!("{cache:?} {:?}", RedisCache::builder(&url));
    assert!(
        !shown.contains(encoded) && !shown.contains(password),
        "{shown}"
    );
    assert!(shown.contains("redis://:***@127.0.0.1"), "{shown}");

    let wrong = format!("redis://:{encoded}x@127.0.0.1:{}", server.port());
    match RedisCache::connect(&wrong).await {
        Err(err @ CacheError::Auth { .. }) => {
            let shown = everything_shown(&err);
            assert!(
                !shown.contains(encoded) && !shown.contains(password),
                "{shown}"
            );
        }
        other => panic!("expected Auth, got {other:?}"),
    }
}

/// `Debug` of the builder and the cache shows the URL with the password as `***`.
#[tokio::test]
async fn debug_output_hides_the_password() {
    let server = local_server(&["--requirepass", PASSWORD]).await;
    let url = format!("redis://default:{PASSWORD}@127.0.0.1:{}/0", server.port());
    let builder = RedisCache::builder(&url).key_prefix("dbg:");
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains(PASSWORD) && shown.contains("default:***@"),
        "{shown}"
    );
    let cache = builder.build().await.unwrap();
    let shown = format!("{cache:?} {cache:#?}");
    assert!(
        !shown.contains(PASSWORD) && shown.contains("default:***@"),
        "{shown}"
    );
    assert!(
        shown.contains("dbg:") && shown.contains("multiplexed(1)"),
        "{shown}"
    );
}
