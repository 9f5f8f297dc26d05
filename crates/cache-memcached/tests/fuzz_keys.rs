//! Byte-fuzzing of the key encoding, on a real server: arbitrary strings (any UTF-8, control
//! bytes, protocol lines, the encoded marker `~#`, the generation tag's braces, lengths
//! around memcached's 250 bytes and up to 5000) go through `set`, `get`, `get_many` and
//! `delete_many`. Each key reads back its own value and no other (no collision, no
//! injection), the empty key is `InvalidKey` and nothing panics; afterwards every key the
//! server holds under the cache's prefix is at most 250 bytes with no space or control
//! byte (so the client never re-encodes it). The key prefix itself is fuzzed through the
//! builder, after a unique head: refused with `Config`, or usable. What a run writes is
//! removed again, generation counters included (`clear`).
//!
//! The committed corpus (`tests/fuzz-corpus/keys.jsonl`, one JSON list of keys per line)
//! runs first, then `CACHE_FUZZ_CASES` generated cases (512 by default).

mod common;

use std::time::{Duration, Instant};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::unique_prefix, MemcachedCache};
use proptest::{
    collection::vec,
    prelude::{any, prop_oneof, Just, Strategy},
    test_runner::{Config as RunnerConfig, TestCaseError, TestRunner},
};

const CORPUS: &str = include_str!("fuzz-corpus/keys.jsonl");
/// Entries written carry this TTL, so that whatever a failed run leaves ages out.
const TTL: Option<Duration> = Some(Duration::from_secs(300));

fn cases() -> u32 {
    std::env::var("CACHE_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(512)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        // Failures are reported with their input; the corpus is the committed record.
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// Keys that go wrong in adapters: arbitrary text, protocol-looking text, lengths near
/// memcached's limit, and lossy arbitrary bytes.
fn hostile_key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(~#)?[a-z {}#~%_\\r\\n\\t\\x00\\x7f]{0,12}",
        (0_usize..5000, any::<char>()).prop_map(|(len, c)| format!("{}{c}", "k".repeat(len))),
        (240_usize..260, "[ _\\r\\n]").prop_map(|(len, tail)| format!("{}{tail}", "k".repeat(len))),
        vec(any::<u8>(), 0..300).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        Just(String::new()),
    ]
}

fn value_of(index: usize, key: &str) -> Bytes {
    Bytes::from(format!("{index}:{}", key.len()))
}

/// One case: the distinct keys are written, read back one by one and together, then
/// removed and counted. The empty key is refused by every operation with `InvalidKey`.
async fn round_trip(cache: &MemcachedCache, keys: &[String]) -> Result<(), String> {
    let mut distinct: Vec<&str> = Vec::new();
    for key in keys {
        if !distinct.contains(&key.as_str()) {
            distinct.push(key);
        }
    }
    let (empty, keys): (Vec<&str>, Vec<&str>) = distinct.into_iter().partition(|k| k.is_empty());
    if !empty.is_empty() {
        refused_empty_key(cache).await?;
    }
    for (index, key) in keys.iter().enumerate() {
        cache
            .set(key, value_of(index, key), TTL)
            .await
            .map_err(|err| format!("set({key:?}): {err:?}"))?;
    }
    for (index, key) in keys.iter().enumerate() {
        let read = cache
            .get(key)
            .await
            .map_err(|err| format!("get({key:?}): {err:?}"))?;
        if read != Some(value_of(index, key)) {
            return Err(format!("get({key:?}) read {read:?}, not its own value"));
        }
    }
    let read = cache
        .get_many(&keys)
        .await
        .map_err(|err| format!("get_many({keys:?}): {err:?}"))?;
    let expected: Vec<Option<Bytes>> = (0..keys.len())
        .map(|index| Some(value_of(index, keys[index])))
        .collect();
    if read != expected {
        return Err(format!("get_many({keys:?}) read {read:?}"));
    }
    let removed = cache
        .delete_many(&keys)
        .await
        .map_err(|err| format!("delete_many({keys:?}): {err:?}"))?;
    if removed != keys.len() {
        return Err(format!("delete_many({keys:?}) removed {removed}"));
    }
    Ok(())
}

async fn refused_empty_key(cache: &MemcachedCache) -> Result<(), String> {
    let answers = [
        cache.get("").await.err(),
        cache.set("", Bytes::from("v"), TTL).await.err(),
        cache.delete("").await.err(),
        cache.get_many(&["a", ""]).await.err(),
    ];
    for answer in answers {
        if !matches!(answer, Some(CacheError::InvalidKey { .. })) {
            return Err(format!(
                "the empty key: expected Err(InvalidKey), got {answer:?}"
            ));
        }
    }
    Ok(())
}

/// Arbitrary keys round-trip apart, and are native memcached keys on the wire.
#[test]
fn arbitrary_keys_round_trip_apart_and_are_native_on_the_wire() {
    let runtime = runtime();
    let url = runtime.block_on(common::shared_url());
    let prefix = unique_prefix();
    let cache = runtime
        .block_on(MemcachedCache::builder(&url).key_prefix(&prefix).build())
        .expect("a cache on the test server");
    let started = Instant::now();
    let corpus: Vec<Vec<String>> = CORPUS
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON list of keys"))
        .collect();
    for keys in &corpus {
        if let Err(failure) = runtime.block_on(round_trip(&cache, keys)) {
            panic!("corpus case {keys:?}: {failure}");
        }
    }
    let mut runner = runner();
    let result = runner.run(&vec(hostile_key(), 1..8), |keys| {
        runtime
            .block_on(round_trip(&cache, &keys))
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The corpus and the last cases wrote under the prefix and deleted; write the corpus
    // again, to look at it on the server.
    for keys in &corpus {
        for key in keys.iter().filter(|key| !key.is_empty()) {
            runtime
                .block_on(cache.set(key, Bytes::from("v"), TTL))
                .unwrap();
        }
    }
    let on_server: Vec<Vec<u8>> = common::metadump(&common::address(&url))
        .into_iter()
        .filter(|key| key.starts_with(prefix.as_bytes()))
        .collect();
    let written = corpus
        .iter()
        .flatten()
        .filter(|key| !key.is_empty())
        .count();
    assert!(
        on_server.len() >= written / 2,
        "{} keys on the server",
        on_server.len()
    );
    for key in &on_server {
        assert!(
            key.len() <= 250 && key.iter().all(|&byte| byte > b' ' && byte != 0x7f),
            "not a native memcached key: {:?}",
            String::from_utf8_lossy(key)
        );
    }
    runtime.block_on(cache.clear()).unwrap();
    eprintln!(
        "fuzz keys: {} corpus cases and {} generated cases in {:.1?}, {} server keys checked",
        corpus.len(),
        cases(),
        started.elapsed(),
        on_server.len()
    );
}

/// An arbitrary key prefix is refused with `Config` or gives a cache that works.
#[test]
fn arbitrary_prefixes_are_refused_with_config_or_work() {
    let runtime = runtime();
    let url = runtime.block_on(common::shared_url());
    let started = Instant::now();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases() / 4,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let prefix = prop_oneof![
        any::<String>(),
        "[a-z{}: ]{0,8}:",
        (100_usize..140).prop_map(|len| format!("{}:", "p".repeat(len))),
    ];
    let result = runner.run(&prefix, |arbitrary| {
        // Under a unique head, so that the clear after the probe reaches nothing of
        // anyone else's on a shared server.
        let prefix = format!("{}{arbitrary}", unique_prefix());
        let built = runtime.block_on(MemcachedCache::builder(&url).key_prefix(&prefix).build());
        match built {
            Err(CacheError::Config { .. }) => Ok(()),
            Err(other) => Err(TestCaseError::fail(format!("{prefix:?}: {other:?}"))),
            Ok(cache) => {
                let key = format!("{}-probe", unique_prefix());
                runtime
                    .block_on(async {
                        cache.set(&key, Bytes::from("v"), TTL).await?;
                        let read = cache.get(&key).await?;
                        cache.delete(&key).await?;
                        // Removes the prefix's generation counter too.
                        cache.clear().await?;
                        Ok::<_, CacheError>(read)
                    })
                    .map_err(|err| TestCaseError::fail(format!("{prefix:?}: {err:?}")))
                    .and_then(|read| match read {
                        Some(value) if value == "v" => Ok(()),
                        other => Err(TestCaseError::fail(format!("{prefix:?}: read {other:?}"))),
                    })
            }
        }
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "fuzz prefixes: {} cases in {:.1?}",
        cases() / 4,
        started.elapsed()
    );
}
