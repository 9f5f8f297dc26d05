//! Fail-safe and factory timeouts: a stale value served while the backend is frozen or
//! the factory is slow or failing, and fresh values stored once things recover.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cache_api::{Cache, CacheStack};
use cache_layers::TimeoutLayer;
use cache_redis::{testing::LocalServer, RedisCache};
use cache_typed::{EntryOptions, Error};
use common::{user, users, Runs};

/// Resumes the server when dropped, so a failing test never leaves it frozen.
struct Frozen<'a>(&'a LocalServer);

impl<'a> Frozen<'a> {
    fn freeze(server: &'a LocalServer) -> Self {
        server.pause();
        Self(server)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}

/// The whole-call bound given to the backend (a `TimeoutLayer` over the client's own
/// response timeout).
const BACKEND_DEADLINE: Duration = Duration::from_millis(300);

/// A redis-server of the test's own.
async fn redis_server() -> LocalServer {
    LocalServer::start(&cache_redis::testing::REDIS, &[])
        .await
        .unwrap_or_else(|err| panic!("cannot start a redis-server for this test (install it with `apt-get install redis-server`): {err}"))
}

/// A cache on `server` whose every call ends within [`BACKEND_DEADLINE`]: the client's
/// response timeout, under a `TimeoutLayer`.
async fn bounded_cache(server: &LocalServer) -> Arc<dyn Cache> {
    let client = RedisCache::builder(&server.url())
        .response_timeout(Duration::from_millis(250))
        .build()
        .await
        .unwrap();
    CacheStack::new(Arc::new(client))
        .layer(TimeoutLayer::new(BACKEND_DEADLINE))
        .build()
}

/// With the Redis server frozen (SIGSTOP), a key cached earlier is served stale within
/// the backend's deadline, the factory is not run, and calls during the throttle are
/// served at once. After SIGCONT and the throttle, the next call stores a fresh value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_backend_serves_the_stale_value_then_recovers() {
    let server = redis_server().await;
    let typed = users(bounded_cache(&server).await);
    let throttle = Duration::from_millis(500);
    let options = EntryOptions::default()
        .ttl(Duration::from_millis(200))
        .fail_safe(Duration::from_secs(60), throttle);
    let runs = Runs::default();

    let first = typed
        .get_or_set(
            "user:7",
            options,
            runs.factory(Duration::ZERO, user(7, "v1")),
        )
        .await
        .unwrap();
    assert_eq!(first, user(7, "v1"));
    tokio::time::sleep(Duration::from_millis(250)).await; // logically stale now

    let frozen = Frozen::freeze(&server);
    let started = Instant::now();
    let entry = typed
        .get_or_set_entry(
            "user:7",
            options,
            runs.factory(Duration::ZERO, user(7, "v2")),
        )
        .await
        .expect("fail-safe serves the stale value");
    let took = started.elapsed();
    println!(
        "frozen backend: stale value served after {took:?} (backend deadline {BACKEND_DEADLINE:?})"
    );
    assert_eq!(entry.value, user(7, "v1"));
    assert!(
        entry.stale,
        "a value served in place of a fresh one is flagged stale"
    );
    assert!(
        took < BACKEND_DEADLINE + Duration::from_millis(200),
        "took {took:?}"
    );
    assert_eq!(
        runs.count(),
        1,
        "the factory is not run while the backend is down"
    );

    // Within the throttle: served from the process at once, backend and factory untried.
    let started = Instant::now();
    let again = typed
        .get_or_set_entry(
            "user:7",
            options,
            runs.factory(Duration::ZERO, user(7, "v2")),
        )
        .await
        .unwrap();
    assert!(again.stale && again.value == user(7, "v1"));
    // Half the backend's deadline: trying the frozen backend would take all of it.
    assert!(
        started.elapsed() < BACKEND_DEADLINE / 2,
        "took {:?}",
        started.elapsed()
    );
    drop(frozen);

    tokio::time::sleep(throttle + Duration::from_millis(50)).await;
    let fresh = typed
        .get_or_set_entry(
            "user:7",
            options,
            runs.factory(Duration::ZERO, user(7, "v2")),
        )
        .await
        .unwrap();
    assert_eq!(fresh.value, user(7, "v2"));
    assert!(!fresh.stale);
    assert_eq!(runs.count(), 2);
    let stored = typed.get_entry("user:7").await.unwrap().expect("stored");
    assert_eq!((stored.value, stored.stale), (user(7, "v2"), false));
}

const SOFT: Duration = Duration::from_millis(100);
const HARD: Duration = Duration::from_millis(150);
/// What a loaded two-core machine may add to a timer (the target is 10 ms, and the
/// figure is printed): well short of [`SLOW_FACTORY`], which a caller that waited for
/// the factory would take.
const MARGIN: Duration = Duration::from_millis(300);
/// How long the factories of the timeout tests take.
const SLOW_FACTORY: Duration = Duration::from_secs(1);

/// Writes `value` under `key` and lets its TTL pass, so it is stale but kept.
async fn stale_value(
    typed: &cache_typed::TypedCache<common::User, cache_typed::JsonCodec>,
    key: &str,
    options: EntryOptions,
    value: common::User,
) {
    typed
        .set_with(key, &value, &options.ttl(Duration::from_millis(30)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let kept = typed
        .get_entry(key)
        .await
        .unwrap()
        .expect("kept past its ttl");
    assert!(kept.stale);
}

/// Polls `get` until it returns `expected`, for up to 2 s.
async fn eventually_stored(
    typed: &cache_typed::TypedCache<common::User, cache_typed::JsonCodec>,
    key: &str,
    expected: &common::User,
) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if typed.get(key).await.unwrap().as_ref() == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the factory's value was not stored within 2 s");
}

/// A factory slower than the soft timeout: the stale value comes back at the soft
/// timeout (measured and printed; asserted within [`MARGIN`]), and the factory's value
/// is stored when it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_soft_timeout_the_stale_value_is_returned_and_the_factory_completes() {
    let typed = users(common::memory());
    let options = EntryOptions::default()
        .ttl(Duration::from_secs(60))
        .fail_safe(Duration::from_secs(60), Duration::from_secs(1))
        .soft_timeout(SOFT)
        .hard_timeout(Duration::from_secs(5));
    stale_value(&typed, "user:1", options, user(1, "old")).await;
    let runs = Runs::default();
    let started = Instant::now();
    let entry = typed
        .get_or_set_entry(
            "user:1",
            options,
            runs.factory(SLOW_FACTORY, user(1, "new")),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    println!("soft timeout {SOFT:?}: stale value returned after {took:?}");
    assert_eq!((entry.value, entry.stale), (user(1, "old"), true));
    assert!(took >= SOFT && took < SOFT + MARGIN, "took {took:?}");
    eventually_stored(&typed, "user:1", &user(1, "new")).await;
    assert_eq!(runs.count(), 1);
}

/// Without a stale value, a factory slower than the hard timeout gives the caller
/// `Error::Timeout` at the hard timeout; the factory still completes and stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hard_timeout_the_caller_gets_a_timeout_error() {
    let typed = users(common::memory());
    let options = EntryOptions::default()
        .soft_timeout(SOFT)
        .hard_timeout(HARD);
    let runs = Runs::default();
    let started = Instant::now();
    let err = typed
        .get_or_set(
            "user:2",
            options,
            runs.factory(SLOW_FACTORY, user(2, "slow")),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { after } if after == HARD),
        "{err:?}"
    );
    assert!(took >= HARD && took < HARD + MARGIN, "took {took:?}");
    eventually_stored(&typed, "user:2", &user(2, "slow")).await;
}

/// A failing factory with a stale value: the stale value is served, flagged, and the
/// factory is not tried again before the throttle has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_factory_serves_the_stale_value_and_is_throttled() {
    let typed = users(common::memory());
    let throttle = Duration::from_millis(300);
    let options = EntryOptions::default().fail_safe(Duration::from_secs(60), throttle);
    stale_value(&typed, "user:3", options, user(3, "old")).await;
    let attempts = Runs::default();
    let failing = |attempts: &Runs| {
        let attempts = attempts.clone();
        move || async move {
            let _ = attempts.factory(Duration::ZERO, user(0, "unused"))().await;
            Err::<common::User, _>(std::io::Error::other("database down"))
        }
    };
    let entry = typed
        .try_get_or_set_entry("user:3", options, failing(&attempts))
        .await
        .unwrap();
    assert_eq!((entry.value, entry.stale), (user(3, "old"), true));
    let entry = typed
        .try_get_or_set_entry("user:3", options, failing(&attempts))
        .await
        .unwrap();
    assert!(entry.stale);
    assert_eq!(
        attempts.count(),
        1,
        "the factory is throttled after a failure"
    );
    tokio::time::sleep(throttle + Duration::from_millis(20)).await;
    let entry = typed
        .try_get_or_set_entry("user:3", options, failing(&attempts))
        .await
        .unwrap();
    assert!(entry.stale);
    assert_eq!(attempts.count(), 2, "tried again once the throttle passed");

    // Without fail-safe, the same failure is the caller's error, with its source.
    let err = typed
        .try_get_or_set("user:3", options.no_fail_safe(), failing(&attempts))
        .await
        .unwrap_err();
    assert!(err.factory_error::<std::io::Error>().is_some(), "{err:?}");
}

/// With the server frozen, a new key's value comes from the factory at once; its write
/// hangs. The callers get the value within the hard timeout after the failed read, not
/// a timeout: the hard timeout bounds the wait for the factory and for the write, and
/// a write still hanging when it runs out ends in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_hangs_never_turns_a_computed_value_into_a_timeout() {
    let server = redis_server().await;
    let typed = users(bounded_cache(&server).await);
    let hard = Duration::from_millis(150);
    let options = EntryOptions::default()
        .ttl(Duration::from_secs(60))
        .hard_timeout(hard);
    let runs = Runs::default();

    let frozen = Frozen::freeze(&server);
    let started = Instant::now();
    let calls = (0..50).map(|_| {
        let typed = typed.clone();
        let factory = runs.factory(Duration::ZERO, user(8, "fresh"));
        tokio::spawn(async move {
            let value = typed.get_or_set("user:8", options, factory).await;
            (value, started.elapsed())
        })
    });
    for call in futures::future::join_all(calls).await {
        let (value, took) = call.unwrap();
        assert_eq!(value.unwrap(), user(8, "fresh"));
        // The failed read (the backend's deadline), then at most the hard timeout.
        assert!(
            took < BACKEND_DEADLINE + hard + Duration::from_millis(400),
            "took {took:?}"
        );
    }
    assert_eq!(runs.count(), 1, "single flight");
    drop(frozen);

    // Once the server answers again, values are written and read as before.
    let stored = typed
        .get_or_set(
            "user:9",
            options,
            runs.factory(Duration::ZERO, user(9, "v")),
        )
        .await
        .unwrap();
    assert_eq!(stored, user(9, "v"));
    assert_eq!(
        typed.get("user:9").await.unwrap(),
        Some(user(9, "v")),
        "the write of a call that returned is visible to the next read"
    );
}
