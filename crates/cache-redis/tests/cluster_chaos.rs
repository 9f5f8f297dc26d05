//! The chaos matrix on Redis Cluster: a cluster of one master holding every slot, reached
//! through a chaos proxy whose port the node announces (`cluster-announce-port`), so that
//! the topology the client reads (`CLUSTER SLOTS`) leads it through the proxy too. For
//! each fault, the error a call returns (kind and time) and the time until the same cache
//! object answers again once the fault is lifted; then, under 32 tasks while the faults
//! come and go, no reply matched to the wrong request.
//!
//! One master is enough for what the proxy can show: how the cluster client meets a sick
//! connection (finding the slot's node, reconnecting, refreshing the topology). A master's
//! loss and its replica's promotion are `cluster_failover.rs`'s.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cache_api::{Cache, CacheStack};
use cache_layers::TimeoutLayer;
use cache_redis::RedisCache;
use cache_testserver::{
    chaos::{
        probe::{self, Bounds},
        ChaosProxy, Fault,
    },
    free_port, LocalServer, TestDir, REDIS,
};
use common::plain;

/// As the single-node matrix (`chaos.rs`).
const TIMEOUT: Duration = common::CHAOS_TIMEOUT;
const BOUNDS: Bounds = common::CHAOS_BOUNDS;

/// A one-master cluster of the test's own behind a proxy it announces, and a cache on it.
struct ProxiedCluster {
    _dir: TestDir,
    _node: LocalServer,
    proxy: ChaosProxy,
    cache: RedisCache,
}

/// A one-master cluster whose node announces the proxy's port, and a cache on it with
/// `timeout`.
async fn proxied_cluster_with(timeout: Duration) -> ProxiedCluster {
    let dir = TestDir::new("cluster-chaos").unwrap_or_else(|err| panic!("{err}"));
    let dir_arg = dir.path().display().to_string();
    let bus_port = free_port().to_string();
    let node = LocalServer::start(
        &REDIS,
        &[
            "--dir",
            &dir_arg,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus_port,
            "--cluster-node-timeout",
            "1000",
        ],
    )
    .await
    .unwrap_or_else(|err| {
        panic!("cannot start a redis-server for this test (install it with `apt-get install redis-server`): {err}")
    });
    let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], node.port())))
        .await
        .unwrap_or_else(|error| panic!("cannot start the chaos proxy: {error}"));
    let mut admin = plain(&node.url()).await;
    redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async::<()>(&mut admin)
        .await
        .expect("the node takes every slot");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("cluster-announce-port")
        .arg(proxy.address().port())
        .query_async::<()>(&mut admin)
        .await
        .expect("the node announces the proxy's port");
    // The node takes the slots and the port it announces at once; the loop waits for the
    // cluster to call itself healthy and its topology to name the proxy.
    let announced = format!("int({})", proxy.address().port());
    let mut last = String::new();
    for _ in 0..100 {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut admin)
            .await
            .expect("CLUSTER INFO");
        let slots: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut admin)
            .await
            .expect("CLUSTER SLOTS");
        last = format!("{slots:?}");
        if info.contains("cluster_state:ok") && last.contains(&announced) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last.contains(&announced),
        "the one-master cluster did not come up announcing the proxy: {last}"
    );
    let cache = RedisCache::builder(&format!("redis+cluster://{}", proxy.address()))
        .timeout(timeout)
        .build()
        .await
        .unwrap_or_else(|error| panic!("cannot build a cache through the proxy: {error}"));
    ProxiedCluster {
        _dir: dir,
        _node: node,
        proxy,
        cache,
    }
}

/// A one-master cluster behind a proxy, the cache on it with [`TIMEOUT`].
async fn proxied_cluster() -> ProxiedCluster {
    proxied_cluster_with(TIMEOUT).await
}

async fn cell(fault: Fault, expected: &str, then: &str) {
    let cluster = proxied_cluster_with(BOUNDS.cache_timeout(expected)).await;
    probe::assert_cell(
        &cluster.cache,
        &cluster.proxy,
        "redis-cluster",
        fault,
        (expected, then),
        BOUNDS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_latency() {
    let fault = Fault::Latency {
        to_server: Duration::from_millis(20),
        to_client: Duration::from_secs(1),
    };
    cell(fault, "timeout", "timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_drop_mid_response() {
    cell(Fault::DropMidResponse, "unreachable", "unreachable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_half_reply_then_stall() {
    cell(Fault::HalfReplyThenStall, "timeout", "timeout").await;
}

/// Every open connection severed for good (silent, never closed) and left so: the call
/// on it times out, and the cache answers again on new connections and closes the
/// severed ones (one node: one connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_severed_connections_are_replaced() {
    let cluster = proxied_cluster().await;
    probe::assert_recovers_from_severed_connections(
        &cluster.cache,
        &cluster.proxy,
        "redis-cluster",
        BOUNDS,
        1,
    )
    .await;
}

/// As above with every call cut short by a deadline of the caller's (a `TimeoutLayer` of
/// 100 ms, within the cache's 600 ms): the calls never run to the cache's own deadline,
/// and the severed connections are given up all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_severed_connections_are_replaced_when_calls_are_cut_short() {
    let cluster = proxied_cluster().await;
    let cut = CacheStack::new(Arc::new(cluster.cache) as Arc<dyn Cache>)
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .build();
    probe::assert_recovers_from_severed_connections(
        cut.as_ref(),
        &cluster.proxy,
        "redis-cluster (calls cut short)",
        BOUNDS,
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_blackhole() {
    cell(Fault::Blackhole, "timeout", "timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_refused_connections() {
    cell(Fault::Refuse, "unreachable", "unreachable").await;
}

/// Unlike one node's connections, the cluster client does not hand the parse error on: it
/// drops the connection that gave it and retries the call, which then finds no connection
/// to the node (`ClusterConnectionNotFound`), `Unreachable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_garbled_replies() {
    cell(Fault::GarbledReplies, "unreachable", "unreachable").await;
}

/// 32 tasks read and write keys whose values name them while every fault comes and goes:
/// no read ever returns another key's value, and the cache works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_no_reply_is_matched_to_the_wrong_request() {
    let cluster = proxied_cluster().await;
    probe::assert_no_mismatch(Arc::new(cluster.cache), &cluster.proxy, "redis-cluster").await;
}
