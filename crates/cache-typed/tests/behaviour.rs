//! How `get_or_set` behaves around its factory: panics and errors release every
//! waiter, a dropped caller cancels nothing, eager refresh runs once, read errors
//! follow the policy, undecodable values are misses, TTLs get their jitter.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{async_trait, Bytes, Cache, CacheError};
use cache_typed::{
    DistributedLock, EntryOptions, Error, JsonCodec, ReadErrors, TypedCache, LOCK_SUFFIX,
};
use common::{user, users, Runs, User};
use futures::future::join_all;

/// 50 callers of a factory that panics are all released with `FactoryPanicked`; the
/// next call runs the factory again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_factory_releases_every_waiter() {
    let typed = users(common::memory());
    let runs = Runs::default();
    let callers = (0..50).map(|_| {
        let (typed, runs) = (typed.clone(), runs.clone());
        tokio::spawn(async move {
            typed
                .get_or_set("user:9", typed.options(), move || async move {
                    runs.factory(Duration::from_millis(50), user(0, "x"))().await;
                    panic!("the database driver panicked");
                })
                .await
        })
    });
    let started = Instant::now();
    for answer in join_all(callers).await {
        match answer.expect("the caller's task itself does not panic") {
            Err(Error::FactoryPanicked { message }) => {
                assert!(message.contains("driver panicked"), "{message}");
            }
            other => panic!("expected FactoryPanicked, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(runs.count(), 1);
    let value = typed
        .get_or_set(
            "user:9",
            typed.options(),
            runs.factory(Duration::ZERO, user(9, "ok")),
        )
        .await
        .unwrap();
    assert_eq!((value, runs.count()), (user(9, "ok"), 2));
}

/// A failing factory's error reaches every waiter, with its original type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_factory_fails_every_waiter_with_its_error() {
    let typed = users(common::memory());
    let runs = Runs::default();
    let callers = (0..20).map(|_| {
        let (typed, runs) = (typed.clone(), runs.clone());
        tokio::spawn(async move {
            typed
                .try_get_or_set("user:10", typed.options(), move || async move {
                    runs.factory(Duration::from_millis(50), user(0, "x"))().await;
                    Err::<User, _>(std::io::Error::new(std::io::ErrorKind::TimedOut, "db slow"))
                })
                .await
        })
    });
    for answer in join_all(callers).await {
        let err = answer.unwrap().unwrap_err();
        let source = err
            .factory_error::<std::io::Error>()
            .expect("the factory's error");
        assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
    }
    assert_eq!(runs.count(), 1);
    assert_eq!(typed.get("user:10").await.unwrap(), None, "nothing stored");
}

/// The first caller is dropped while its factory runs: the factory completes, a
/// caller that joined gets the value, and the value is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_caller_does_not_cancel_the_factory() {
    let typed = users(common::memory());
    let runs = Runs::default();
    let first = {
        let (typed, runs) = (typed.clone(), runs.clone());
        tokio::spawn(async move {
            let factory = runs.factory(Duration::from_millis(150), user(11, "kept"));
            typed.get_or_set("user:11", typed.options(), factory).await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = {
        let (typed, runs) = (typed.clone(), runs.clone());
        tokio::spawn(async move {
            let factory = runs.factory(Duration::ZERO, user(11, "second"));
            typed.get_or_set("user:11", typed.options(), factory).await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(second.await.unwrap().unwrap(), user(11, "kept"));
    assert_eq!(runs.count(), 1);
    assert_eq!(typed.get("user:11").await.unwrap(), Some(user(11, "kept")));
}

/// Hits past the eager-refresh threshold return the current value at once and start
/// one background refresh between them; the refreshed value is then stored. The refresh
/// takes 300 ms and the hits must be back within 200 ms: apart enough that a stall of a
/// busy machine does not blur them; the TTL leaves 400 ms either side of the hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_refresh_refreshes_once_in_the_background() {
    let typed = users(common::memory());
    let options = EntryOptions::default()
        .ttl(Duration::from_secs(1))
        .eager_refresh(0.5);
    typed
        .set_with("user:12", &user(12, "old"), &options)
        .await
        .unwrap();
    let runs = Runs::default();
    // Before the threshold: no refresh.
    let early = typed
        .get_or_set(
            "user:12",
            options,
            runs.factory(Duration::ZERO, user(12, "new")),
        )
        .await
        .unwrap();
    assert_eq!((early, runs.count()), (user(12, "old"), 0));

    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = Instant::now();
    let hits = (0..10).map(|_| {
        let factory = runs.factory(Duration::from_millis(300), user(12, "new"));
        typed.get_or_set("user:12", options, factory)
    });
    for hit in join_all(hits).await {
        assert_eq!(hit.unwrap(), user(12, "old"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "hits waited for the refresh"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs.count(), 1, "one refresh for all the hits");
    assert_eq!(typed.get("user:12").await.unwrap(), Some(user(12, "new")));
}

/// A cache whose reads fail while `failing` is set.
#[derive(Default)]
struct FlakyReads {
    inner: cache_memory::MemoryCache,
    failing: AtomicBool,
}

#[async_trait]
impl Cache for FlakyReads {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(CacheError::Unreachable {
                backend: "flaky",
                source: "connection refused".into(),
            });
        }
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.inner.delete(key).await
    }
}

/// A read error: computed by default (fail-open), returned with `ReadErrors::Propagate`.
#[tokio::test]
async fn read_errors_fail_open_by_default_and_propagate_on_request() {
    let flaky = Arc::new(FlakyReads::default());
    flaky.failing.store(true, Ordering::SeqCst);
    let typed = users(flaky.clone());
    let runs = Runs::default();
    let value = typed
        .get_or_set(
            "user:13",
            typed.options(),
            runs.factory(Duration::ZERO, user(13, "db")),
        )
        .await
        .unwrap();
    assert_eq!((value, runs.count()), (user(13, "db"), 1));

    let strict = typed.options().read_errors(ReadErrors::Propagate);
    let err = typed
        .get_or_set(
            "user:13",
            strict,
            runs.factory(Duration::ZERO, user(13, "db")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Cache(CacheError::Unreachable { .. })),
        "{err:?}"
    );
    assert_eq!(runs.count(), 1);
}

/// Bytes that are not this cache's envelope (another writer, another codec, a
/// truncated value) read as a miss, and `get_or_set` computes over them.
#[tokio::test]
async fn values_that_do_not_decode_are_misses() {
    let backend = common::memory();
    let typed = users(Arc::clone(&backend));
    let valid = typed.encode(&user(14, "ok"), &typed.options()).unwrap();
    let foreign: [(&str, Bytes); 4] = [
        ("plain", Bytes::from_static(b"{\"id\":14}")),
        ("truncated", valid.slice(..valid.len() - 3)),
        ("header-only", valid.slice(..10)),
        ("other-codec", {
            let mut bytes = valid.to_vec();
            bytes[3] = 0x02;
            Bytes::from(bytes)
        }),
    ];
    let runs = Runs::default();
    for (key, bytes) in foreign {
        backend.set(key, bytes, None).await.unwrap();
        assert_eq!(typed.get(key).await.unwrap(), None, "{key}");
        let value = typed
            .get_or_set(
                key,
                typed.options(),
                runs.factory(Duration::ZERO, user(14, "db")),
            )
            .await
            .unwrap();
        assert_eq!(value, user(14, "db"), "{key}");
        assert_eq!(
            typed.get(key).await.unwrap(),
            Some(user(14, "db")),
            "{key}: overwritten"
        );
    }
    assert_eq!(runs.count(), 4);
}

/// Jitter adds up to its maximum to each TTL, and the TTLs differ.
#[tokio::test]
async fn jitter_spreads_expiries() {
    let typed = users(common::memory());
    let options = EntryOptions::default()
        .ttl(Duration::from_secs(60))
        .jitter(Duration::from_secs(10));
    let mut lifetimes = Vec::new();
    for i in 0..20 {
        let key = format!("user:{i}");
        typed.set_with(&key, &user(i, "j"), &options).await.unwrap();
        let entry = typed.get_entry(&key).await.unwrap().unwrap();
        let lifetime = entry
            .expires_at
            .unwrap()
            .duration_since(entry.written_at)
            .unwrap();
        assert!(
            lifetime >= Duration::from_secs(60) && lifetime <= Duration::from_secs(70),
            "{lifetime:?}"
        );
        lifetimes.push(lifetime);
    }
    lifetimes.sort();
    lifetimes.dedup();
    assert!(
        lifetimes.len() > 10,
        "only {} distinct lifetimes",
        lifetimes.len()
    );
}

/// The typed bulk operations and delete keep order, misses and the fail-safe copy.
#[tokio::test]
async fn bulk_operations_and_delete() {
    let typed = users(common::memory());
    typed
        .set_many(&[("a", user(1, "a")), ("b", user(2, "b"))])
        .await
        .unwrap();
    let got = typed.get_many(&["b", "missing", "a"]).await.unwrap();
    assert_eq!(got, vec![Some(user(2, "b")), None, Some(user(1, "a"))]);
    assert!(typed.delete("a").await.unwrap());
    assert!(!typed.delete("a").await.unwrap());
    assert!(matches!(
        typed.get("").await,
        Err(Error::Cache(CacheError::InvalidKey { .. }))
    ));
    let err = typed
        .get_or_set("", typed.options(), || async { user(0, "never") })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Cache(CacheError::InvalidKey { .. })),
        "{err:?}"
    );
}

/// Every duration option at `Duration::MAX`, and the largest fail-safe capacity, work
/// rather than overflowing a clock or an allocation: TTL, jitter, fail-safe, timeouts,
/// eager refresh and a lock wait with no end, which polls until the other holder's lock
/// entry expires and then takes the lock.
#[tokio::test]
async fn every_duration_option_at_its_longest_works() {
    let backend = common::memory();
    // The largest in-process fail-safe copy too: a bound, not an allocation.
    let typed = TypedCache::builder(Arc::clone(&backend), JsonCodec)
        .fail_safe_capacity(u64::MAX)
        .build();
    let lock = DistributedLock::new(Duration::from_secs(5)).wait(Duration::MAX);
    let longest = typed
        .options()
        .ttl(Duration::MAX)
        .jitter(Duration::MAX)
        .fail_safe(Duration::MAX, Duration::MAX)
        .soft_timeout(Duration::MAX)
        .hard_timeout(Duration::MAX)
        .eager_refresh(0.5)
        .distributed_lock(lock);
    // Another process holds the lock for 300 ms and never stores a value.
    let lock_key = format!("user:long{LOCK_SUFFIX}");
    backend
        .set(
            &lock_key,
            Bytes::from("other"),
            Some(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    let runs = Runs::default();
    let started = Instant::now();
    let value = typed
        .get_or_set(
            "user:long",
            longest,
            runs.factory(Duration::ZERO, user(1, "long")),
        )
        .await
        .unwrap();
    assert_eq!((value, runs.count()), (user(1, "long"), 1));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the factory ran after {:?}, before the other holder's lock expired",
        started.elapsed()
    );
    let again = typed
        .get_or_set(
            "user:long",
            longest.distributed_lock(DistributedLock::new(Duration::MAX)),
            runs.factory(Duration::ZERO, user(2, "never")),
        )
        .await
        .unwrap();
    assert_eq!((again, runs.count()), (user(1, "long"), 1));
    assert_eq!(typed.get("user:long").await.unwrap(), Some(user(1, "long")));
}
