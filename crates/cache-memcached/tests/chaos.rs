//! The chaos matrix on one memcached server of the test's own, reached through a chaos
//! proxy: for each fault, the error a call returns (kind and time), the time until the same
//! cache object answers again once the fault is lifted, and, under 32 tasks while the faults
//! come and go, no reply ever matched to the wrong request.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cache_api::Cache;
use cache_memcached::{testing::LocalServer, MemcachedCache};
use cache_testserver::chaos::{probe, ChaosProxy, Fault};
use common::local_server;

/// The cache's timeout: one bound per call, connecting included.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The longest a failing call may take: the timeout, with room for a loaded two-core
/// machine.
const DEADLINE: Duration = Duration::from_millis(300 + 700);
/// How long the cache may take to answer again once the fault is lifted.
const HEAL_WITHIN: Duration = Duration::from_secs(3);
/// Each fault is injected and lifted this many times on the same cache.
const ROUNDS: usize = 3;

/// A server, a proxy in front of it, and a cache on the proxy with [`TIMEOUT`].
async fn through_proxy() -> (LocalServer, ChaosProxy, MemcachedCache) {
    let server = local_server(&[]).await;
    let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
        .await
        .unwrap_or_else(|error| panic!("cannot start the chaos proxy: {error}"));
    let cache = MemcachedCache::builder(&format!("memcache://{}", proxy.address()))
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a cache through the proxy: {error}"));
    (server, proxy, cache)
}

/// Runs [`ROUNDS`] of `fault` on one cache: every call under it fails with `expected`
/// within [`DEADLINE`], and the cache heals within [`HEAL_WITHIN`]. Prints each round and
/// the row of the README's matrix.
async fn cell(fault: Fault, expected: &str) {
    cell_with(fault, expected, expected).await;
}

/// As [`cell`], when the call that meets the fault first fails otherwise than the next.
async fn cell_with(fault: Fault, expected: &str, then: &str) {
    let (_server, proxy, cache) = through_proxy().await;
    let (mut errors, mut heals) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let report = probe::fault_cell(&cache, &proxy, fault, HEAL_WITHIN)
            .await
            .unwrap_or_else(|message| panic!("round {round}: {message}"));
        println!("memcached round {round}: {report}");
        assert_eq!(
            probe::kind(&report.error),
            expected,
            "{fault}, round {round}: the first call under the fault returned {:?}",
            report.error
        );
        assert_eq!(
            report.second_error, then,
            "{fault}, round {round}: the second call under the fault"
        );
        assert!(
            report.time_to_error < DEADLINE,
            "{fault}, round {round}: the error took {:?}, past {DEADLINE:?}",
            report.time_to_error
        );
        if expected == "timeout" {
            assert!(
                report.time_to_error >= TIMEOUT / 2,
                "{fault}, round {round}: a timeout before the timeout: {:?}",
                report.time_to_error
            );
        }
        errors.push(report.time_to_error);
        heals.push(report.time_to_heal);
    }
    println!(
        "{}",
        probe::matrix_row("memcached", fault, (expected, then), &errors, &heals)
    );
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

/// 32 tasks read and write keys whose values name them while every fault comes and goes:
/// no read ever returns another key's value, and the cache works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_no_reply_is_matched_to_the_wrong_request() {
    let (_server, proxy, cache) = through_proxy().await;
    let cache: Arc<dyn Cache> = Arc::new(cache);
    let report = probe::mixed_load(
        Arc::clone(&cache),
        &proxy,
        &probe::every_fault(Duration::from_secs(1)),
        32,
        Duration::from_millis(600),
    )
    .await
    .unwrap_or_else(|error| panic!("cannot write the keys before the faults: {error}"));
    println!("memcached mixed load under faults: {report:?}");
    probe::assert_sound(&report, "memcached");
    probe::populate(cache.as_ref(), "after")
        .await
        .unwrap_or_else(|error| panic!("the cache does not work after the faults: {error}"));
}
