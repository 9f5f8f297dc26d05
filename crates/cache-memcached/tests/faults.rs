//! A hung server (SIGSTOP) gives `Timeout` within the configured timeout, never a hang,
//! and the same cache object works again once it resumes; a killed server gives
//! `Unreachable` until it is restarted. memcached processes of the tests' own.

mod common;

use std::time::{Duration, Instant};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::MemcachedCache;
use cache_testserver::hostile;
use common::local_server;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Room for a loaded two-core machine on top of the timeout.
const MARGIN: Duration = Duration::from_millis(700);

/// Runs `operation` and checks it failed with `Timeout`, naming it, within the timeout
/// and margin.
async fn times_out<T: std::fmt::Debug>(
    what: &str,
    operation: impl std::future::Future<Output = Result<T, CacheError>>,
) {
    let started = Instant::now();
    let result = operation.await;
    let elapsed = started.elapsed();
    match result {
        Err(CacheError::Timeout {
            after, operation, ..
        }) => {
            assert_eq!(after, TIMEOUT, "{what}");
            // The error names the call, not a step inside it (the prefix's generation).
            let called = if what == "build" { "connect" } else { what };
            assert_eq!(operation, called, "{what}");
        }
        other => panic!("{what} on a paused server: expected Err(Timeout), got {other:?}"),
    }
    assert!(
        elapsed < TIMEOUT + MARGIN,
        "{what} took {elapsed:?} with a {TIMEOUT:?} timeout"
    );
}

/// How long a woken server is given to run the requests it received while paused.
const SETTLE: Duration = Duration::from_millis(300);

/// Every operation on a paused server times out in time; after SIGCONT the same cache
/// answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_times_out_and_is_used_again_after_resume() {
    for prefix in [None, Some("faults:")] {
        let server = local_server(&[]).await;
        let builder = MemcachedCache::builder(&server.url()).timeout(TIMEOUT);
        let builder = match prefix {
            // Checking the generation on every operation must not add to the wait.
            Some(prefix) => builder.key_prefix(prefix).namespace_refresh(Duration::ZERO),
            None => builder,
        };
        let cache = builder.build().await.unwrap();
        cache.set("k", Bytes::from("before"), None).await.unwrap();

        server.pause();
        times_out("get", cache.get("k")).await;
        times_out("set", cache.set("k", Bytes::from("during"), None)).await;
        times_out("delete", cache.delete("other")).await;
        times_out("exists", cache.exists("k")).await;
        times_out("get_many", cache.get_many(&["k", "other"])).await;
        times_out("set_many", cache.set_many(&[("a", Bytes::from("1"))], None)).await;
        times_out("delete_many", cache.delete_many(&["a", "b"])).await;
        times_out("clear", cache.clear()).await;
        if prefix.is_some() {
            // A prefix nothing was written under yet: each call looks for its generation
            // counter first (a write creates it), and a timeout there is the call's.
            let untouched = MemcachedCache::builder(&server.url())
                .timeout(TIMEOUT)
                .key_prefix("untouched:");
            server.resume();
            let untouched = untouched.build().await.unwrap();
            server.pause();
            times_out("get", untouched.get("k")).await;
            times_out("set", untouched.set("k", Bytes::from("v"), None)).await;
            times_out("add", untouched.add("k", Bytes::from("v"), None)).await;
            times_out("delete", untouched.delete("k")).await;
        }
        server.resume();
        // The calls cut short by the timeout dropped their connections with the request
        // already sent: the server still runs those once it wakes, the prefix's `clear`
        // among them. Let them land first, or one landing late could move the generation
        // between the `set` and the `get` below.
        tokio::time::sleep(SETTLE).await;

        // The timed-out writes were sent and may have been applied once the server woke.
        let value = cache.get("k").await.unwrap();
        assert!(
            matches!(value.as_deref(), Some(b"before" | b"during") | None),
            "{prefix:?}: {value:?}"
        );
        cache.set("k", Bytes::from("after"), None).await.unwrap();
        assert_eq!(
            cache.get("k").await.unwrap().as_deref(),
            Some(&b"after"[..]),
            "{prefix:?}"
        );
    }
}

/// Connecting to a paused server fails with `Timeout` in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_paused_server_times_out() {
    let server = local_server(&[]).await;
    server.pause();
    let builder = MemcachedCache::builder(&server.url())
        .key_prefix("p:")
        .timeout(TIMEOUT);
    times_out("build", builder.build()).await;
    server.resume();
    MemcachedCache::builder(&server.url())
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
}

/// A host that accepts the connection and never answers fails the build within its
/// timeout: no question in another protocol holds the error back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_build_in_time() {
    let timeout = Duration::from_secs(1);
    let silent = hostile::silent_server().await;
    let build = MemcachedCache::builder(&format!("memcache://{silent}"))
        .timeout(timeout)
        .build();
    hostile::assert_gives_up_in_time(build, timeout).await;
}

/// A killed server gives `Unreachable`; restarted on the same port, it is used again by
/// the same cache object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_unreachable_until_restarted() {
    let mut server = local_server(&[]).await;
    let cache = MemcachedCache::builder(&server.url())
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    server.kill();
    let error = cache.get("k").await.unwrap_err();
    assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
    assert!(error.is_retryable());
    server.restart().await.unwrap();
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "a restarted memcached is empty"
    );
    cache.set("k", Bytes::from("again"), None).await.unwrap();
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}
