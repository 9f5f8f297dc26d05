//! memcached's traps, each checked on a real server, often from outside the cache with a
//! raw client: TTL rounding and the 30-day rule, key encoding, protocol injection, value
//! limits, interop with plain clients, settings, and what errors show.
//!
//! Tests on the shared server use keys no other test uses, and never `clear` an
//! unprefixed cache there (that would flush the server).

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{
    testing::{fresh_cache, fresh_cache_with},
    MemcachedCache, DEFAULT_MAX_VALUE_SIZE, MAX_POOL_SIZE,
};
use common::{local_server, plain_client, raw_get, remaining_ttl, shared_url, unique_key, Cleanup};

const DAY: u64 = 24 * 60 * 60;

async fn unprefixed() -> (MemcachedCache, String) {
    let url = shared_url().await;
    let cache = MemcachedCache::connect(&url)
        .await
        .expect("a cache on the shared server");
    (cache, url)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A 300 ms TTL is sent as 1 s: the entry is gone 2 s later, and was never stored as
/// "never expires".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_below_a_second_is_one_second_never_forever() {
    let (cache, url) = unprefixed().await;
    let key = unique_key("ttl-300ms");
    let _cleanup = Cleanup::new(&url, [&key]);
    cache
        .set(&key, Bytes::from("short"), Some(Duration::from_millis(300)))
        .await
        .unwrap();
    // memcached's clock ticks once a second, so the entry may already be gone (None);
    // what it must never be is -1, "no expiry".
    let remaining = remaining_ttl(&url, key.as_bytes());
    assert!(
        matches!(remaining, None | Some(0 | 1)),
        "remaining ttl {remaining:?}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        cache.get(&key).await.unwrap(),
        None,
        "300 ms entry still there after 2.1 s"
    );
    assert_eq!(raw_get(&url, key.as_bytes()), None);
}

/// A set without TTL drops the TTL the entry had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_without_ttl_removes_the_old_ttl_on_the_server() {
    let (cache, url) = unprefixed().await;
    let key = unique_key("ttl-cleared");
    let _cleanup = Cleanup::new(&url, [&key]);
    cache
        .set(&key, Bytes::from("a"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let remaining = remaining_ttl(&url, key.as_bytes()).expect("entry stored");
    assert!((58..=60).contains(&remaining), "remaining ttl {remaining}");
    cache.set(&key, Bytes::from("b"), None).await.unwrap();
    assert_eq!(remaining_ttl(&url, key.as_bytes()), Some(-1));
    assert!(cache.delete(&key).await.unwrap());
}

/// 30 days is sent as a number of seconds, 31 days and 10 years as Unix times: all are
/// readable right after set and expire when they should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ttls_are_sent_as_unix_times() {
    let (cache, url) = unprefixed().await;
    for (name, days) in [
        ("ttl-30-days", 30),
        ("ttl-31-days", 31),
        ("ttl-10-years", 3653),
    ] {
        let key = unique_key(name);
        let _cleanup = Cleanup::new(&url, [&key]);
        let ttl = days * DAY;
        cache
            .set(&key, Bytes::from("long"), Some(Duration::from_secs(ttl)))
            .await
            .unwrap();
        assert_eq!(
            cache.get(&key).await.unwrap().as_deref(),
            Some(&b"long"[..]),
            "{name}"
        );
        let remaining = remaining_ttl(&url, key.as_bytes()).expect("entry stored");
        let remaining =
            u64::try_from(remaining).unwrap_or_else(|_| panic!("{name}: ttl {remaining}"));
        // A Unix time is read against memcached's own clock, which may be a second or two
        // off this machine's.
        assert!(
            ttl - 3 <= remaining && remaining <= ttl + 3,
            "{name}: {remaining} s left of {ttl}"
        );
        assert!(cache.delete(&key).await.unwrap());
    }
}

/// A TTL that ends after 2038-01-19 (memcached's 32-bit clock), `Duration::MAX` included,
/// ends on that last second: stored, readable, never refused and never a panic, through
/// `set`, `set_many` and `add` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_past_2038_end_on_its_last_second() {
    let (cache, url) = unprefixed().await;
    let key = unique_key("ttl-too-far");
    let _cleanup = Cleanup::new(&url, [&key]);
    let last_second = i32::MAX as u64;
    let past_2038 = Duration::from_secs(last_second - now() + 10);
    for ttl in [Duration::MAX, Duration::from_secs(u64::MAX), past_2038] {
        for how in ["set", "set_many", "add"] {
            cache.set(&key, Bytes::from("before"), None).await.unwrap();
            match how {
                "set" => cache.set(&key, Bytes::from(how), Some(ttl)).await.unwrap(),
                "set_many" => cache
                    .set_many(&[(&key, Bytes::from(how))], Some(ttl))
                    .await
                    .unwrap(),
                _ => {
                    assert!(cache.delete(&key).await.unwrap());
                    assert!(cache.add(&key, Bytes::from(how), Some(ttl)).await.unwrap());
                }
            }
            assert_eq!(
                cache.get(&key).await.unwrap().as_deref(),
                Some(how.as_bytes()),
                "{how} {ttl:?}"
            );
            let remaining = remaining_ttl(&url, key.as_bytes()).expect("entry stored");
            let remaining = u64::try_from(remaining)
                .unwrap_or_else(|_| panic!("{how} {ttl:?}: ttl {remaining}"));
            // Read against memcached's own clock, which may be a second or two off this
            // machine's.
            let expected = last_second - now();
            assert!(
                expected - 3 <= remaining && remaining <= expected + 3,
                "{how} {ttl:?}: {remaining} s left, {expected} to 2038-01-19"
            );
        }
    }
    assert!(cache.delete(&key).await.unwrap());
}

/// A 300-byte key with spaces round-trips under an encoded name, and a key sharing its
/// first 250 bytes is another entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_key_with_spaces_round_trips() {
    let cache = fresh_cache().await;
    let key = format!("{} end", "a key with spaces ".repeat(16));
    assert!(key.len() > 290, "{}", key.len());
    let twin = format!("{} END", &key[..key.len() - 4]);
    cache.set(&key, Bytes::from("one"), None).await.unwrap();
    cache.set(&twin, Bytes::from("two"), None).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(
        cache.get(&twin).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(cache.delete(&key).await.unwrap());
    assert_eq!(
        cache.get(&twin).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

/// A key holding `\r\nflush_all` stores a value under that key and flushes nothing: an
/// entry written by another client survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cannot_flush_the_server() {
    let (cache, url) = unprefixed().await;
    let plain = plain_client(&url);
    let bystander = unique_key("bystander");
    let _cleanup = Cleanup::new(&url, [&bystander]);
    plain.set(&bystander, &b"still here"[..], 60).unwrap();
    let key = format!("{}\r\nflush_all", unique_key("x"));
    cache
        .set(&key, Bytes::from("injected?"), None)
        .await
        .unwrap();
    cache
        .set(&format!("{key}\r\n"), Bytes::from("injected twice?"), None)
        .await
        .unwrap();
    assert_eq!(
        plain.get::<Vec<u8>>(&bystander).unwrap().as_deref(),
        Some(&b"still here"[..])
    );
    assert_eq!(
        cache.get(&key).await.unwrap().as_deref(),
        Some(&b"injected?"[..])
    );
    // Nothing was stored under the visible part of the key either.
    assert_eq!(
        raw_get(&url, key.split('\r').next().unwrap().as_bytes()),
        None
    );
    assert!(cache.delete(&key).await.unwrap());
    assert!(cache.delete(&format!("{key}\r\n")).await.unwrap());
    plain.delete(&bystander).unwrap();
}

/// A 2 MiB value is `ValueTooLarge` naming the limit before anything is sent; the key's
/// old value, other entries and the cache itself are unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_over_the_limit_is_refused_before_sending() {
    let cache = fresh_cache().await;
    cache.set("big", Bytes::from("old"), None).await.unwrap();
    cache
        .set("bystander", Bytes::from("b"), None)
        .await
        .unwrap();
    let huge = Bytes::from(vec![7; 2 << 20]);
    let error = cache.set("big", huge.clone(), None).await.unwrap_err();
    assert!(
        matches!(error, CacheError::ValueTooLarge { size, limit } if size == 2 << 20 && limit == DEFAULT_MAX_VALUE_SIZE),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&DEFAULT_MAX_VALUE_SIZE.to_string()),
        "{error}"
    );
    assert_eq!(
        cache.get("big").await.unwrap().as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        cache.get("bystander").await.unwrap().as_deref(),
        Some(&b"b"[..])
    );
    let exact = Bytes::from(vec![1; DEFAULT_MAX_VALUE_SIZE]);
    cache.set("big", exact.clone(), None).await.unwrap();
    assert_eq!(cache.get("big").await.unwrap(), Some(exact));
}

/// A configured limit above what the server stores (`-I 1m`) is lowered to the server's
/// item size less the item overhead; a larger value is `ValueTooLarge` naming that limit,
/// and the same cache keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_refusal_is_value_too_large() {
    let server = local_server(&["-I", "1m"]).await;
    let cache = MemcachedCache::builder(&server.url())
        .max_value_size(4 << 20)
        .build()
        .await
        .unwrap();
    cache.set("small", Bytes::from("kept"), None).await.unwrap();
    for _ in 0..2 {
        let error = cache
            .set("big", Bytes::from(vec![0; 2 << 20]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CacheError::ValueTooLarge { size, limit } if size == 2 << 20 && limit == DEFAULT_MAX_VALUE_SIZE),
            "{error:?}"
        );
        let error = cache
            .set_many(
                &[
                    ("big", Bytes::from(vec![0; 2 << 20])),
                    ("other", Bytes::from("o")),
                ],
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, CacheError::ValueTooLarge { .. }),
            "{error:?}"
        );
        assert_eq!(
            cache.get("small").await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
    }
    assert_eq!(cache.get("big").await.unwrap(), None);
    cache
        .set("after", Bytes::from("usable"), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get("after").await.unwrap().as_deref(),
        Some(&b"usable"[..])
    );
}

/// Short native keys are stored under their own name with the raw bytes: a plain client
/// reads what the cache wrote, and the cache reads what the plain client wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_keys_interoperate_with_a_plain_client() {
    let (cache, url) = unprefixed().await;
    let plain = plain_client(&url);
    let bytes: Vec<u8> = (0..=255).chain(*b"\r\nEND\r\n").collect();

    let ours = unique_key("written-by-the-cache");
    cache
        .set(&ours, Bytes::from(bytes.clone()), None)
        .await
        .unwrap();
    assert_eq!(plain.get::<Vec<u8>>(&ours).unwrap(), Some(bytes.clone()));

    let theirs = unique_key("written-by-a-plain-client");
    plain.set(&theirs, &bytes[..], 60).unwrap();
    assert_eq!(cache.get(&theirs).await.unwrap(), Some(Bytes::from(bytes)));

    let empty = unique_key("empty");
    let _cleanup = Cleanup::new(&url, [&ours, &theirs, &empty]);
    cache.set(&empty, Bytes::new(), None).await.unwrap();
    assert_eq!(plain.get::<Vec<u8>>(&empty).unwrap(), Some(Vec::new()));
    for key in [&ours, &theirs, &empty] {
        assert!(cache.delete(key).await.unwrap(), "{key}");
    }
}

/// `limits()` says what the cache does: 1 s granularity, the value limit, and the longest
/// key stored under its own name (a key one byte longer is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_say_which_keys_keep_their_name() {
    let (cache, url) = unprefixed().await;
    let limits = cache.limits();
    assert_eq!(limits.ttl_granularity, Duration::from_secs(1));
    assert_eq!(limits.max_value_size, DEFAULT_MAX_VALUE_SIZE);
    assert_eq!(limits.max_native_key_len, Some(250));
    let head = unique_key("");
    let native = format!("{head}{}", "n".repeat(250 - head.len()));
    let encoded = format!("{native}n");
    let _cleanup = Cleanup::new(&url, [&native]);
    cache
        .set(&native, Bytes::from("as is"), None)
        .await
        .unwrap();
    cache
        .set(&encoded, Bytes::from("encoded"), None)
        .await
        .unwrap();
    assert_eq!(
        raw_get(&url, native.as_bytes()).as_deref(),
        Some(&b"as is"[..])
    );
    assert_eq!(
        cache.get(&encoded).await.unwrap().as_deref(),
        Some(&b"encoded"[..])
    );
    assert!(cache.delete(&native).await.unwrap() && cache.delete(&encoded).await.unwrap());

    let prefixed = fresh_cache().await;
    let prefix_len = prefixed.key_prefix().unwrap().len();
    assert_eq!(
        prefixed.limits().max_native_key_len,
        Some(250 - prefix_len - 22)
    );
}

/// A dead address fails `connect` with `Unreachable`, at once, naming the server: beside
/// a live one, it says which is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_fails_at_build() {
    let dead = format!("127.0.0.1:{}", free_port());
    let live = common::address(&shared_url().await);
    for url in [
        format!("memcache://{dead}"),
        format!("memcache://{live},{dead}"),
    ] {
        let started = Instant::now();
        let error = MemcachedCache::connect(&url).await.unwrap_err();
        assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&format!("connecting to {dead}")),
            "{url}: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Credentials in the URL are refused (the meta protocol has no authentication), and the
/// password appears in no error and no `Debug` output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_show() {
    let url = "memcache://admin:s3cr3t-pw@127.0.0.1:11211?timeout=1s";
    let builder = MemcachedCache::builder(url);
    assert!(!format!("{builder:?}").contains("s3cr3t"), "{builder:?}");
    let error = builder.build().await.unwrap_err();
    assert!(matches!(error, CacheError::Config { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("credentials"), "{shown}");
    }
    let (cache, url) = unprefixed().await;
    let shown = format!("{cache:?}");
    assert!(
        shown.contains(&common::address(&url)) && shown.ends_with(".. }"),
        "{shown}"
    );
}

/// Contradictory or malformed settings are `Config` errors, found before connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_config_errors() {
    let url = shared_url().await;
    let builders = [
        MemcachedCache::builder(&url).timeout(Duration::ZERO),
        MemcachedCache::builder(&url).pool_size(0),
        MemcachedCache::builder(&url).pool_size(MAX_POOL_SIZE + 1),
        MemcachedCache::builder(&format!("{url}?pool_size=18446744073709551615")),
        MemcachedCache::builder(&url).max_value_size(0),
        MemcachedCache::builder(&url).key_prefix("no-delimiter"),
        MemcachedCache::builder(&url).key_prefix("with space:"),
        MemcachedCache::builder(&url).key_prefix("brace{:"),
        MemcachedCache::builder(&url).key_prefix("p".repeat(129)),
        MemcachedCache::builder(&url).servers(Vec::<String>::new()),
        MemcachedCache::builder(&url).servers(["host:notaport"]),
        MemcachedCache::builder("memcache://127.0.0.1?color=blue"),
        MemcachedCache::builder("redis://127.0.0.1"),
    ];
    for builder in builders {
        let shown = format!("{builder:?}");
        let error = builder.build().await.unwrap_err();
        assert!(
            matches!(error, CacheError::Config { .. }),
            "{shown}: {error:?}"
        );
    }
    let cache = MemcachedCache::builder("memcache://127.0.0.1:1")
        .servers([common::address(&url)])
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert_eq!(cache.timeout(), Duration::from_millis(500));
    let largest = MemcachedCache::builder(&url)
        .pool_size(MAX_POOL_SIZE)
        .build()
        .await
        .unwrap();
    assert_eq!(
        largest.get(&unique_key("largest-pool")).await.unwrap(),
        None
    );
}

/// A server restarted with a smaller item size under a built cache (`-I 2m`, then
/// `512k`): a value it now refuses, through `set`, `set_many` or `add`, is
/// `ValueTooLarge` naming its new limit, which `limits()` reports from then on and which
/// refuses larger values before anything is sent; other entries stay, and a value of
/// exactly the new limit is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_size_lowered_after_build_is_learnt() {
    let mut server = local_server(&["-I", "2m"]).await;
    let limit = (512 << 10) - 512;
    for how in ["set", "set_many", "add"] {
        server.restart_with(&["-I", "2m"]).await.unwrap();
        let cache = MemcachedCache::builder(&server.url())
            .max_value_size(4 << 20)
            .build()
            .await
            .unwrap();
        assert_eq!(cache.limits().max_value_size, (2 << 20) - 512);
        server.restart_with(&["-I", "512k"]).await.unwrap();
        // The first call after the restart may find its connection closed.
        let mut tries = 0;
        while cache.set("small", Bytes::from("kept"), None).await.is_err() {
            tries += 1;
            assert!(tries < 20, "{how}: the cache did not reconnect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let big = Bytes::from(vec![7; 800_000]);
        let error = match how {
            "set" => cache.set("big", big.clone(), None).await.unwrap_err(),
            "set_many" => cache
                .set_many(&[("other", Bytes::from("o")), ("big", big.clone())], None)
                .await
                .unwrap_err(),
            _ => cache.add("big", big.clone(), None).await.unwrap_err(),
        };
        assert!(
            matches!(error, CacheError::ValueTooLarge { size: 800_000, limit: named } if named == limit),
            "{how}: {error:?}"
        );
        assert_eq!(cache.limits().max_value_size, limit, "{how}");
        let error = cache.set("big", big, None).await.unwrap_err();
        assert!(
            matches!(error, CacheError::ValueTooLarge { size: 800_000, limit: named } if named == limit),
            "{how}, then set: {error:?}"
        );
        assert_eq!(
            cache.get("small").await.unwrap().as_deref(),
            Some(&b"kept"[..]),
            "{how}"
        );
        let exact = Bytes::from(vec![1; limit]);
        cache.set("exact", exact.clone(), None).await.unwrap();
        assert_eq!(cache.get("exact").await.unwrap(), Some(exact), "{how}");
    }
}

/// A server started with `-I 512k`: the limit is its item size less 512 bytes, a value of
/// exactly that size is stored under the longest key, one byte more is `ValueTooLarge`
/// naming it (never "exceeds the limit" of its own size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_follows_a_smaller_server_item_size() {
    let small = local_server(&["-I", "512k"]).await;
    let limit = (512 << 10) - 512;
    let cache = MemcachedCache::connect(&small.url()).await.unwrap();
    assert_eq!(cache.limits().max_value_size, limit);
    let long_key = "k".repeat(cache.limits().max_native_key_len.unwrap_or(250));
    let exact = Bytes::from(vec![1; limit]);
    cache.set(&long_key, exact.clone(), None).await.unwrap();
    assert_eq!(cache.get(&long_key).await.unwrap(), Some(exact));
    let error = cache
        .set("over", Bytes::from(vec![1; limit + 1]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CacheError::ValueTooLarge { size, limit: named } if size == limit + 1 && named == limit),
        "{error:?}"
    );
    assert!(error.to_string().contains(&limit.to_string()), "{error}");

    // Over a ring: the smallest server sets the limit.
    let large = local_server(&["-I", "2m"]).await;
    let ring = MemcachedCache::builder(&large.url())
        .servers([common::address(&small.url()), common::address(&large.url())])
        .max_value_size(4 << 20)
        .build()
        .await
        .unwrap();
    assert_eq!(ring.limits().max_value_size, limit);
    // A smaller configured limit stays.
    let configured = MemcachedCache::builder(&small.url())
        .max_value_size(1000)
        .build()
        .await
        .unwrap();
    assert_eq!(configured.limits().max_value_size, 1000);
}

/// `memcache://` pointed at a Redis server says so in plain words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_port_is_no_memcached_server() {
    let redis = cache_testserver::LocalServer::start(&cache_testserver::REDIS, &[])
        .await
        .unwrap_or_else(|error| panic!("this test needs redis-server: {error}"));
    let url = format!("memcache://127.0.0.1:{}", redis.port());
    let error = MemcachedCache::builder(&url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::Config { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "invalid configuration: 127.0.0.1:{} does not answer as a memcached server",
            redis.port()
        )
    );
}

/// Schemes are case-insensitive, and the empty prefix is no prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upper_case_schemes_and_the_empty_prefix_work() {
    let url = shared_url().await;
    let upper = url.replacen("memcache://", "MEMCACHE://", 1);
    let cache = MemcachedCache::connect(&format!("{upper}?prefix="))
        .await
        .unwrap();
    assert_eq!(cache.key_prefix(), None);
    let key = unique_key("upper");
    cache.set(&key, Bytes::from("v"), None).await.unwrap();
    assert_eq!(
        raw_get(&url, key.as_bytes()).as_deref(),
        Some(&b"v"[..]),
        "stored under the key itself"
    );
    assert!(cache.delete(&key).await.unwrap());
}

/// Timeouts past an hour, even too long for the clock to add (a URL's `584542046090y`,
/// `Duration::MAX`), are an hour, as on Redis, and never a panic: every call works on a
/// live server, a prefixed cache's `clear` too, and a dead address still fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_past_an_hour_are_an_hour() {
    let url = shared_url().await;
    let key = unique_key("longest-timeout");
    let _cleanup = Cleanup::new(&url, [&key]);
    let from_url = MemcachedCache::connect(&format!(
        "{url}?timeout=584542046090y&namespace_refresh=584542046090y"
    ))
    .await
    .unwrap();
    let built = MemcachedCache::builder(&url)
        .timeout(Duration::MAX)
        .build()
        .await
        .unwrap();
    for cache in [from_url, built] {
        assert_eq!(cache.timeout(), Duration::from_secs(60 * 60));
        cache.set(&key, Bytes::from("v"), None).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(cache.get_many(&[&key]).await.unwrap().len(), 1);
        assert!(cache.delete(&key).await.unwrap());
    }
    // A prefixed cache's `clear` lists its keys, asking again while the server is busy
    // until its timeout has passed.
    let prefixed = fresh_cache_with(|builder| builder.timeout(Duration::MAX)).await;
    prefixed.set("k", Bytes::from("v"), None).await.unwrap();
    prefixed.clear().await.unwrap();
    assert_eq!(prefixed.get("k").await.unwrap(), None);
    let error = MemcachedCache::builder(&format!("memcache://127.0.0.1:{}", free_port()))
        .timeout(Duration::MAX)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
}
