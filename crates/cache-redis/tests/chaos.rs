//! The chaos matrix on one Redis server of the test's own, reached through a chaos proxy:
//! for each fault, the error a call returns (kind and time), the time until the same cache
//! object answers again once the fault is lifted, and, under 32 tasks while the faults come
//! and go, no reply ever matched to the wrong request.
//!
//! Redis Cluster has a matrix of its own (`cluster_chaos.rs`): its node has to announce
//! the proxy's port, or the client, once it has read the topology, talks to it directly.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cache_api::{Cache, CacheStack};
use cache_layers::TimeoutLayer;
use cache_redis::{testing::LocalServer, ConnectionModel, RedisCache};
use cache_testserver::chaos::{
    probe::{self, Bounds},
    ChaosProxy, Fault,
};
use common::local_server;

const TIMEOUT: Duration = common::CHAOS_TIMEOUT;
const BOUNDS: Bounds = common::CHAOS_BOUNDS;

/// A caller's deadline within the cache's timeout.
const CUT_SHORT: Duration = Duration::from_millis(100);

/// The default connection model: one multiplexed connection.
const MULTIPLEXED: ConnectionModel = ConnectionModel::Multiplexed { connections: 1 };

/// A server, a proxy in front of it, and a cache on the proxy with `timeout`.
async fn through_proxy(
    model: ConnectionModel,
    timeout: Duration,
) -> (LocalServer, ChaosProxy, RedisCache) {
    let server = local_server(&[]).await;
    let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
        .await
        .unwrap_or_else(|error| panic!("cannot start the chaos proxy: {error}"));
    let cache = RedisCache::builder(&format!("redis://{}", proxy.address()))
        .timeout(timeout)
        .connection_model(model)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a cache through the proxy: {error}"));
    (server, proxy, cache)
}

/// Runs the rounds of `fault` on one cache through a proxy of its own: the first call
/// under it fails with `expected`, the next with `then`, in time, and the cache heals
/// (`probe::assert_cell`).
async fn cell_with(fault: Fault, expected: &str, then: &str) {
    cell_in(MULTIPLEXED, "redis", fault, expected, then).await;
}

/// As [`cell_with`] with the same error for both calls.
async fn cell(fault: Fault, expected: &str) {
    cell_with(fault, expected, expected).await;
}

/// As [`cell_with`], in connection model `model`, the row labelled `label`.
async fn cell_in(model: ConnectionModel, label: &str, fault: Fault, expected: &str, then: &str) {
    let timeout = BOUNDS.cache_timeout(expected);
    let (_server, proxy, cache) = through_proxy(model, timeout).await;
    probe::assert_cell(&cache, &proxy, label, fault, (expected, then), BOUNDS).await;
}

/// A connection lost under a call, or refused when dialled again: the `Unreachable`
/// names the server, in both connection models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_unreachable_errors_name_the_server() {
    for model in [MULTIPLEXED, ConnectionModel::Pooled { max_size: 2 }] {
        let timeout = BOUNDS.cache_timeout("unreachable");
        let (_server, proxy, cache) = through_proxy(model, timeout).await;
        let faults = [Fault::DropMidResponse, Fault::Refuse];
        probe::assert_errors_name_the_server(&cache, &proxy, &faults, BOUNDS.heal_within).await;
    }
}

/// Replies 1 s late, past the 300 ms response timeout: `Timeout`, then healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_latency_gives_a_timeout_and_heals() {
    let fault = Fault::Latency {
        to_server: Duration::from_millis(20),
        to_client: Duration::from_secs(1),
    };
    cell(fault, "timeout").await;
}

/// A connection closed halfway through a reply: the call whose reply was cut fails with
/// `Unreachable` (the `redis` crate reports the truncated reply as a parse error,
/// "unexpected end of input", which the backend maps as the lost connection it is), and
/// so do the next ones; then healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_drop_mid_response_gives_an_error_and_heals() {
    cell_with(Fault::DropMidResponse, "unreachable", "unreachable").await;
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
/// reconnects by itself).
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

/// Every open connection severed for good (silent, never closed) and left so: the call
/// on it times out, and the cache answers again on new connections and closes the
/// severed ones, in both connection models and with several multiplexed connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_severed_connections_are_replaced() {
    for (model, label, max_open) in [
        (MULTIPLEXED, "redis", 1),
        (
            ConnectionModel::Multiplexed { connections: 3 },
            "redis (3 multiplexed connections)",
            3,
        ),
        (ConnectionModel::Pooled { max_size: 4 }, "redis (pooled)", 4),
    ] {
        let (_server, proxy, cache) = through_proxy(model, TIMEOUT).await;
        probe::assert_recovers_from_severed_connections(&cache, &proxy, label, BOUNDS, max_open)
            .await;
    }
}

/// As above with every call cut short by a deadline of the caller's (a `TimeoutLayer` of
/// 100 ms, within the cache's 300 ms): the calls never run to the cache's own timeout,
/// and the severed connections are given up all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_severed_connections_are_replaced_when_calls_are_cut_short() {
    for (model, label, max_open) in [
        (MULTIPLEXED, "redis (calls cut short)", 1),
        (
            ConnectionModel::Pooled { max_size: 4 },
            "redis (pooled, calls cut short)",
            4,
        ),
    ] {
        let (_server, proxy, cache) = through_proxy(model, TIMEOUT).await;
        let cut = CacheStack::new(Arc::new(cache) as Arc<dyn Cache>)
            .layer(TimeoutLayer::new(CUT_SHORT))
            .build();
        probe::assert_recovers_from_severed_connections(
            cut.as_ref(),
            &proxy,
            label,
            BOUNDS,
            max_open,
        )
        .await;
    }
}

/// 32 tasks read and write keys whose values name them while every fault comes and goes:
/// no read ever returns another key's value, and the cache works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_no_reply_is_matched_to_the_wrong_request() {
    let (_server, proxy, cache) = through_proxy(MULTIPLEXED, TIMEOUT).await;
    probe::assert_no_mismatch(Arc::new(cache), &proxy, "redis").await;
}

/// Pooled mode (a `PING` at each checkout, a connection that failed on I/O dropped): every
/// fault gives its error in time and the pool heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_fault_in_pooled_mode() {
    let pooled = ConnectionModel::Pooled { max_size: 4 };
    let late = Fault::Latency {
        to_server: Duration::ZERO,
        to_client: Duration::from_secs(1),
    };
    let cells = [
        (late, "timeout", "timeout"),
        (Fault::DropMidResponse, "unreachable", "unreachable"),
        (Fault::HalfReplyThenStall, "timeout", "timeout"),
        (Fault::Blackhole, "timeout", "timeout"),
        (Fault::Refuse, "unreachable", "unreachable"),
        (Fault::GarbledReplies, "backend", "backend"),
    ];
    for (fault, expected, then) in cells {
        cell_in(pooled, "redis (pooled)", fault, expected, then).await;
    }
}
