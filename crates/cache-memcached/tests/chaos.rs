//! The chaos matrix on one memcached server of the test's own, reached through a chaos
//! proxy: for each fault, the error a call returns (kind and time), the time until the same
//! cache object answers again once the fault is lifted, and, under 32 tasks while the faults
//! come and go, no reply ever matched to the wrong request.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cache_api::{Bytes, Cache, CacheStack};
use cache_layers::TimeoutLayer;
use cache_memcached::{testing::LocalServer, MemcachedCache};
use cache_testserver::chaos::{
    probe::{self, Bounds},
    ChaosProxy, Fault,
};
use common::local_server;

/// The cache's timeout: one bound per call, connecting included.
const TIMEOUT: Duration = Duration::from_millis(300);

/// A caller's deadline within the cache's timeout.
const CUT_SHORT: Duration = Duration::from_millis(100);

/// The cells' bounds: a failing call within the timeout, with room for a loaded two-core
/// machine; healed within 3 s; three rounds of each fault on the same cache.
const BOUNDS: Bounds = Bounds {
    timeout: TIMEOUT,
    deadline: Duration::from_millis(300 + 700),
    heal_within: Duration::from_secs(3),
    rounds: 3,
};

/// A server, a proxy in front of it, and a cache on the proxy with [`TIMEOUT`].
async fn through_proxy() -> (LocalServer, ChaosProxy, MemcachedCache) {
    through_proxy_with(TIMEOUT).await
}

/// As [`through_proxy`], the cache with `timeout`.
async fn through_proxy_with(timeout: Duration) -> (LocalServer, ChaosProxy, MemcachedCache) {
    let (server, proxy) = proxy_to_a_server().await;
    let cache = MemcachedCache::builder(&format!("memcache://{}", proxy.address()))
        .timeout(timeout)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a cache through the proxy: {error}"));
    (server, proxy, cache)
}

/// A server of the test's own and a chaos proxy in front of it.
async fn proxy_to_a_server() -> (LocalServer, ChaosProxy) {
    let server = local_server(&[]).await;
    let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
        .await
        .unwrap_or_else(|error| panic!("cannot start the chaos proxy: {error}"));
    (server, proxy)
}

/// Runs the rounds of `fault` on one cache through a proxy of its own: every call under
/// it fails with `expected` in time, and the cache heals (`probe::assert_cell`).
async fn cell(fault: Fault, expected: &str) {
    let (_server, proxy, cache) = through_proxy_with(BOUNDS.cache_timeout(expected)).await;
    probe::assert_cell(
        &cache,
        &proxy,
        "memcached",
        fault,
        (expected, expected),
        BOUNDS,
    )
    .await;
}

/// Replies 1 s late, past the 300 ms timeout: `Timeout`, then healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_latency_gives_a_timeout_and_heals() {
    let fault = Fault::Latency {
        to_server: Duration::from_millis(20),
        to_client: Duration::from_secs(1),
    };
    cell(fault, "timeout").await;
}

/// A connection closed halfway through a reply: `Unreachable`, then healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_drop_mid_response_gives_unreachable_and_heals() {
    cell(Fault::DropMidResponse, "unreachable").await;
}

/// Every open connection severed for good (silent, never closed) and left so: the call
/// on it times out, and the cache answers again on new connections and closes the
/// severed ones, with the default two connections and with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_severed_connections_are_replaced() {
    let (_server, proxy, cache) = through_proxy().await;
    probe::assert_recovers_from_severed_connections(&cache, &proxy, "memcached", BOUNDS, 2).await;
    drop(cache);
    let one = MemcachedCache::builder(&format!("memcache://{}?pool_size=1", proxy.address()))
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a cache through the proxy: {error}"));
    let label = "memcached (1 connection)";
    probe::assert_recovers_from_severed_connections(&one, &proxy, label, BOUNDS, 1).await;
}

/// As above with every call cut short by a deadline of the caller's (a `TimeoutLayer` of
/// 100 ms, within the cache's 300 ms): the calls never run to the cache's own timeout,
/// and the severed connections are given up all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_severed_connections_are_replaced_when_calls_are_cut_short() {
    let (_server, proxy, cache) = through_proxy().await;
    let cut = CacheStack::new(Arc::new(cache) as Arc<dyn Cache>)
        .layer(TimeoutLayer::new(CUT_SHORT))
        .build();
    let label = "memcached (calls cut short)";
    probe::assert_recovers_from_severed_connections(cut.as_ref(), &proxy, label, BOUNDS, 2).await;
}

/// Half a reply, then nothing: `Timeout`; the held replies arrive after healing and are
/// matched to nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_half_reply_then_stall_gives_a_timeout_and_heals() {
    cell(Fault::HalfReplyThenStall, "timeout").await;
}

/// Accepted, never answered: `Timeout`, then healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_blackhole_gives_a_timeout_and_heals() {
    cell(Fault::Blackhole, "timeout").await;
}

/// Connections reset and new ones refused: `Unreachable`, then healed (the cache
/// connects again by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_refused_connections_give_unreachable_and_heal() {
    cell(Fault::Refuse, "unreachable").await;
}

/// Replies the client cannot parse, as from a broken server or middlebox, on connections
/// that stay open: `Backend` (the contract's kind for an answer that cannot be read), the
/// connection given up rather than read on (its later replies would answer other
/// requests), and after healing the cache answers on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_garbled_replies_give_a_backend_error_and_heal() {
    cell(Fault::GarbledReplies, "backend").await;
}

/// A connection lost under a call, refused when dialled again, or out of step: each
/// error names the server (in a ring, the one that failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_errors_name_the_server() {
    let timeout = BOUNDS.cache_timeout("unreachable");
    let (_server, proxy, cache) = through_proxy_with(timeout).await;
    let faults = [Fault::DropMidResponse, Fault::Refuse, Fault::GarbledReplies];
    probe::assert_errors_name_the_server(&cache, &proxy, &faults, BOUNDS.heal_within).await;
}

/// 32 tasks read and write keys whose values name them while every fault comes and goes:
/// no read ever returns another key's value, and the cache works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_no_reply_is_matched_to_the_wrong_request() {
    let (_server, proxy, cache) = through_proxy().await;
    probe::assert_no_mismatch(Arc::new(cache), &proxy, "memcached").await;
}

/// A `clear` whose caller stops waiting after the counter's delete was sent, before its
/// answer came: the instance still takes the delete, so that it agrees with the server.
/// Before, it went on in the old generation, read the entries cleared on the server, and
/// acknowledged writes that the next check of the counter lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_cut_short_after_its_delete_was_sent_is_seen_by_its_instance() {
    let (_server, proxy) = proxy_to_a_server().await;
    let cache = MemcachedCache::connect(&format!(
        "memcache://{}?prefix=cut:&pool_size=1&timeout=2s&namespace_refresh=1s",
        proxy.address()
    ))
    .await
    .unwrap();
    cache.set("old", Bytes::from("old"), None).await.unwrap();
    // Replies 100 ms late: the clear reads the counter (answered at 100 ms), sends its
    // delete, and is cut short at 150 ms, before the delete's answer (at 200 ms).
    proxy.inject(Fault::Latency {
        to_server: Duration::ZERO,
        to_client: Duration::from_millis(100),
    });
    let cut = tokio::time::timeout(Duration::from_millis(150), cache.clear()).await;
    assert!(cut.is_err(), "the clear ended before it was cut short");
    proxy.heal();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cache.get("old").await.unwrap(),
        None,
        "the cleared entry is read"
    );
    cache.set("new", Bytes::from("v"), None).await.unwrap();
    // Past the refresh interval: the next call checks the counter.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        cache.get("new").await.unwrap(),
        Some(Bytes::from("v")),
        "an acknowledged write was lost at the next check of the counter"
    );
}
