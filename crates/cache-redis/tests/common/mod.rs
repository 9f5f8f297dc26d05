//! Helpers shared by the test files: dedicated servers and a plain client to look at
//! what the cache really stored.
#![allow(dead_code, unreachable_pub)]

use std::{collections::BTreeMap, time::Duration};

use cache_api::CacheError;
use cache_redis::testing::{LocalServer, REDIS};
use redis::aio::MultiplexedConnection;

/// A redis-server of the test's own, killed when dropped.
pub async fn local_server(extra_args: &[&str]) -> LocalServer {
    LocalServer::start(&REDIS, extra_args).await.unwrap_or_else(|err| {
        panic!("cannot start a redis-server for this test (install it with `apt-get install redis-server`): {err}")
    })
}

/// A plain client connection, not going through `RedisCache`.
pub async fn plain(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("a plain client connects")
}

/// Every key of the connection's database with its value (strings only) and TTL.
pub async fn snapshot(
    connection: &mut MultiplexedConnection,
) -> BTreeMap<Vec<u8>, (Vec<u8>, bool)> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(connection)
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for key in keys {
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(connection)
            .await
            .unwrap();
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(connection)
            .await
            .unwrap();
        all.insert(key, (value, pttl >= 0));
    }
    all
}

/// Fails unless `result` is the error `expected` describes.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(
    result: Result<T, CacheError>,
    expected: &str,
    matches: impl Fn(&CacheError) -> bool,
) {
    match result {
        Err(err) if matches(&err) => {}
        other => panic!("expected {expected}, got {other:?}"),
    }
}

/// Runs `step` until it succeeds or `within` has passed; returns how long it took.
pub async fn eventually<F, Fut, T>(within: Duration, mut step: F) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CacheError>>,
{
    let start = std::time::Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match step().await {
            Ok(_) => return Ok(start.elapsed()),
            Err(err) => last = format!("{err} [{err:?}]"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "still failing after {within:?}; last error: {last}"
    ))
}

/// The whole error chain as text: Display and Debug of the error and of each source.
pub fn everything_shown(err: &CacheError) -> String {
    let mut shown = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        shown.push_str(&format!(" | {cause} | {cause:?}"));
        source = cause.source();
    }
    shown
}

/// A Redis Cluster of the test's own, killed when dropped.
pub async fn local_cluster(
    spec: &cache_redis::testing::ClusterSpec,
) -> cache_redis::testing::RedisCluster {
    cache_redis::testing::RedisCluster::start_with(spec)
        .await
        .unwrap_or_else(|err| panic!("cannot start a redis cluster for this test: {err}"))
}

/// The masters of the cluster at `url`.
pub fn masters(url: &str) -> Vec<cache_redis::testing::ClusterMaster> {
    cache_redis::testing::cluster_masters(url)
        .unwrap_or_else(|err| panic!("cannot read the masters of the cluster: {err}"))
}

/// The keys of one node that match `pattern` (a `KEYS` glob).
pub async fn keys_on(node_url: &str, pattern: &str) -> Vec<Vec<u8>> {
    let mut client = plain(node_url).await;
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut client)
        .await
        .unwrap()
}

/// The chaos matrices' cache timeout (connect and response).
pub const CHAOS_TIMEOUT: Duration = Duration::from_millis(300);

/// The chaos matrices' bounds: a failing call within a reconnect (connect timeout) and the
/// answer (response timeout), with room for a loaded two-core machine; healed within 3 s;
/// three rounds of each fault on the same cache.
pub const CHAOS_BOUNDS: cache_testserver::chaos::probe::Bounds =
    cache_testserver::chaos::probe::Bounds {
        timeout: CHAOS_TIMEOUT,
        deadline: Duration::from_millis(2 * 300 + 700),
        heal_within: Duration::from_secs(3),
        rounds: 3,
    };

/// Sets the password the server asks of new connections (`CONFIG SET requirepass`), through
/// `admin`, whose own login stands.
pub async fn set_requirepass(admin: &mut MultiplexedConnection, password: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async::<()>(admin)
        .await
        .unwrap_or_else(|err| panic!("CONFIG SET requirepass: {err}"));
}

/// Closes every client connection of the server but `admin`'s own (`CLIENT KILL TYPE
/// normal`).
pub async fn kill_other_clients(admin: &mut MultiplexedConnection) {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async::<i64>(admin)
        .await
        .unwrap_or_else(|err| panic!("CLIENT KILL: {err}"));
}

/// Creates (or resets) the ACL user `user` with `password`, the keys matching `keys` and
/// the `rights` (`+get`, `+config|get`...), through `admin`.
pub async fn set_acl_user(
    admin: &mut MultiplexedConnection,
    user: &str,
    password: &str,
    keys: &str,
    rights: &[&str],
) {
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(keys)
        .arg("resetchannels");
    for right in rights {
        command.arg(*right);
    }
    command
        .query_async::<()>(admin)
        .await
        .unwrap_or_else(|err| panic!("ACL SETUSER {user}: {err}"));
}
