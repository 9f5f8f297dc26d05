//! Faults on a server of the test's own: a frozen server (SIGSTOP) gives timeouts
//! within the configured time, a killed and restarted one is served again without any
//! action by the application (at most one failed call per connection, none through a
//! `RetryLayer`), and an exhausted pool gives a checkout timeout.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError, Layer};
use cache_layers::RetryLayer;
use cache_redis::{ConnectionModel, RedisCache};
use cache_testserver::hostile;
use common::{eventually, local_server};
use futures::future::join_all;

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

async fn frozen_server_times_out_and_recovers(
    cache: RedisCache,
    server: &cache_redis::testing::LocalServer,
) {
    cache.set("k", Bytes::from("before"), None).await.unwrap();
    server.pause();
    let start = Instant::now();
    let result = cache.get("k").await;
    let took = start.elapsed();
    server.resume();
    match result {
        Err(CacheError::Timeout {
            backend: "redis", ..
        }) => {}
        other => panic!("get on a frozen server: expected Timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "the timeout took {took:?}");
    assert!(
        took >= RESPONSE_TIMEOUT / 2,
        "the timeout came before the response timeout: {took:?}"
    );

    // The same cache object works again once the server runs, at the first try.
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("before")));
    cache.set("k", Bytes::from("after"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("after")));
}

/// Multiplexed: a get on a frozen server is a response `Timeout` in < 2 s, and the
/// cache works again after SIGCONT.
#[tokio::test]
async fn a_frozen_server_gives_a_response_timeout_and_the_cache_recovers() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .await
        .unwrap();
    frozen_server_times_out_and_recovers(cache, &server).await;
}

/// Pooled: the same, through the pool. A checkout's PING times out (response
/// timeout), then a new connection is tried (connect timeout): with both at 500 ms the
/// timeout comes in < 2 s.
#[tokio::test]
async fn a_frozen_server_gives_a_timeout_in_pooled_mode_and_the_cache_recovers() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .timeout(RESPONSE_TIMEOUT)
        .connection_model(ConnectionModel::Pooled { max_size: 2 })
        .build()
        .await
        .unwrap();
    frozen_server_times_out_and_recovers(cache, &server).await;
}

/// Kills the server, checks that calls fail quickly while it is away, and restarts it.
/// A host that accepts the connection and never answers fails the build within the
/// connect timeout: no question in another protocol holds the error back.
#[tokio::test]
async fn a_server_that_never_answers_fails_the_build_in_time() {
    let timeout = Duration::from_secs(1);
    let silent = hostile::silent_server().await;
    let build = RedisCache::builder(&format!("redis://{silent}"))
        .connect_timeout(timeout)
        .response_timeout(timeout)
        .build();
    hostile::assert_gives_up_in_time(build, timeout).await;
}

async fn kill_then_restart(cache: &RedisCache, server: &mut cache_redis::testing::LocalServer) {
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    server.kill();

    let start = Instant::now();
    // The error names the server it lost, as every later one does.
    let server_address = format!("127.0.0.1:{}", server.port());
    match cache.get("k").await {
        Err(
            err @ CacheError::Unreachable {
                backend: "redis", ..
            },
        ) => assert!(err.to_string().contains(&server_address), "{err}"),
        other => panic!("get on a killed server: expected Unreachable, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "failing took {:?}",
        start.elapsed()
    );
    // A second failure while the server is away is as quick, and starts no hang.
    match cache.set("k", Bytes::from("v"), None).await {
        Err(err @ CacheError::Unreachable { .. }) => {
            assert!(err.to_string().contains(&server_address), "{err}");
        }
        other => panic!("set on a killed server: expected Unreachable, got {other:?}"),
    }
    server.restart().await.unwrap();
}

/// After a restart, with nothing done to the cache: each of its `connections` may fail
/// one call (the call that finds it dropped starts its reconnect; the cache never sends
/// a call twice), then every call succeeds.
async fn restarted_server_is_served_again(
    cache: RedisCache,
    server: &mut cache_redis::testing::LocalServer,
    connections: usize,
) {
    kill_then_restart(&cache, server).await;
    let mut failures = Vec::new();
    for round in 0..connections + 4 {
        match cache.set("k", Bytes::from("again"), None).await {
            Ok(()) => {}
            Err(CacheError::Unreachable { .. }) if round < connections => failures.push(round),
            other => panic!("call {round} after the restart: expected Ok, got {other:?}"),
        }
    }
    assert!(
        failures.len() <= connections,
        "{failures:?} failed after the restart"
    );
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("again")));

    // A second restart while idle: served again within a few seconds at most.
    server.restart().await.unwrap();
    let took = eventually(Duration::from_secs(5), || {
        cache.set("k", Bytes::from("third"), None)
    })
    .await
    .unwrap();
    assert!(took < Duration::from_secs(5));
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("third")));
}

/// Multiplexed: after kill and restart on the same port, the same cache serves again,
/// after at most one failed call per connection.
#[tokio::test]
async fn a_killed_and_restarted_server_is_served_again() {
    let mut server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .response_timeout(RESPONSE_TIMEOUT)
        .connection_model(ConnectionModel::Multiplexed { connections: 2 })
        .build()
        .await
        .unwrap();
    restarted_server_is_served_again(cache, &mut server, 2).await;
}

/// Pooled: broken pooled connections are dropped, not handed out again; a checkout
/// `PING`s an idle connection first, so at most one call fails after the restart.
#[tokio::test]
async fn a_killed_and_restarted_server_is_served_again_in_pooled_mode() {
    let mut server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .response_timeout(RESPONSE_TIMEOUT)
        .connection_model(ConnectionModel::Pooled { max_size: 3 })
        .build()
        .await
        .unwrap();
    // Fill the pool with three connections, all of which the kill breaks.
    let warm = (0..3).map(|i| cache.set(["a", "b", "c"][i], Bytes::from("x"), None));
    for result in join_all(warm).await {
        result.unwrap();
    }
    restarted_server_is_served_again(cache, &mut server, 1).await;
}

/// Through a `RetryLayer`, the first call after a restart already succeeds, in both
/// connection models: retrying is the application's choice, made by the layer.
#[tokio::test]
async fn through_a_retry_layer_the_first_call_after_a_restart_succeeds() {
    for pooled in [false, true] {
        let mut server = local_server(&[]).await;
        let builder = RedisCache::builder(&server.url()).response_timeout(RESPONSE_TIMEOUT);
        let builder = if pooled {
            builder.connection_model(ConnectionModel::Pooled { max_size: 2 })
        } else {
            builder.connection_model(ConnectionModel::Multiplexed { connections: 2 })
        };
        let cache = builder.build().await.unwrap();
        kill_then_restart(&cache, &mut server).await;
        let retried: Arc<dyn Cache> = RetryLayer::new().layer(Arc::new(cache));
        let first = retried.set("k", Bytes::from("again"), None).await;
        assert!(
            first.is_ok(),
            "pooled {pooled}: the first call after the restart: {first:?}"
        );
        assert_eq!(
            retried.get("k").await.unwrap(),
            Some(Bytes::from("again")),
            "pooled {pooled}"
        );
    }
}

/// A prefix `clear` (on a pooled connection of its own, `PING`ed at checkout) works at
/// the first call after a restart; the multiplexed connection fails at most one call.
#[tokio::test]
async fn clear_works_after_a_restart() {
    let mut server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .key_prefix("p:")
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .await
        .unwrap();
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    cache.clear().await.unwrap();
    server.restart().await.unwrap();
    cache.clear().await.unwrap();
    let mut failed = Vec::new();
    for round in 0..4 {
        let result = match round {
            0 | 1 => cache.set("k", Bytes::from("v"), None).await,
            2 => cache.clear().await,
            _ => cache.get("k").await.map(|found| assert_eq!(found, None)),
        };
        if let Err(err) = result {
            failed.push((round, err));
        }
    }
    assert!(
        matches!(&failed[..], [] | [(0, CacheError::Unreachable { .. })]),
        "after the restart: {failed:?}"
    );
}

/// A pool of two serves 32 concurrent callers: they wait their turn, all succeed.
#[tokio::test]
async fn a_pool_of_two_serves_32_concurrent_callers() {
    let server = local_server(&[]).await;
    let cache = RedisCache::builder(&server.url())
        .connection_model(ConnectionModel::Pooled { max_size: 2 })
        .build()
        .await
        .unwrap();
    let callers = (0..32).map(|i| {
        let cache = cache.clone();
        async move {
            let key = format!("caller-{i}");
            cache.set(&key, Bytes::from(key.clone()), None).await?;
            let read = cache.get(&key).await?;
            Ok::<_, CacheError>((key, read))
        }
    });
    for result in join_all(callers).await {
        let (key, read) = result.unwrap();
        assert_eq!(read, Some(Bytes::from(key)));
    }
    let mut client = common::plain(&server.url()).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut client)
        .await
        .unwrap();
    assert!(
        list.lines().count() <= 3,
        "more than two pooled connections: {list}"
    );
}

/// With both pooled connections held by calls to a frozen server, a third caller gets
/// a "pool checkout" `Timeout` after the pool-wait timeout, not a hang.
#[tokio::test]
async fn an_exhausted_pool_gives_a_checkout_timeout() {
    let server = local_server(&[]).await;
    let pool_wait = Duration::from_millis(300);
    let cache = RedisCache::builder(&server.url())
        .connection_model(ConnectionModel::Pooled { max_size: 2 })
        .pool_wait_timeout(pool_wait)
        .response_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let warm = join_all([
        cache.set("a", Bytes::from("1"), None),
        cache.set("b", Bytes::from("2"), None),
    ])
    .await;
    assert!(warm.iter().all(Result::is_ok), "{warm:?}");

    server.pause();
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("a").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let result = cache.get("b").await;
    let took = start.elapsed();
    server.resume();

    match result {
        Err(CacheError::Timeout {
            phase: "pool checkout",
            after,
            ..
        }) => assert_eq!(after, pool_wait),
        other => panic!("expected a pool checkout Timeout, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "the checkout timeout took {took:?}"
    );
    for holder in holders {
        // Answered once the server runs again (or timed out): either way, no hang.
        let _ = tokio::time::timeout(Duration::from_secs(5), holder)
            .await
            .expect("a holder hung");
    }
    assert_eq!(cache.get("b").await.unwrap(), Some(Bytes::from("2")));
}

/// A timeout names the phase that ran out and its own bound: a frozen server's answer
/// is a `response` timeout after the response timeout, with the defaults (connect 2 s,
/// response 1 s), with both equal, and for a bulk write too large to be answered in time;
/// at build, a connection opened whose first command is not answered is one too.
#[tokio::test]
async fn timeouts_name_the_phase_that_ran_out_and_its_bound() {
    let server = local_server(&[]).await;
    // Each call below is a `set` or a `set_many`: the error names that operation too.
    let expect_response = |result: Result<(), CacheError>, after: Duration, what: &str| match result
    {
        Err(CacheError::Timeout {
            operation: "set" | "set_many",
            phase: "response",
            after: bound,
            ..
        }) if bound == after => {}
        other => panic!("{what}: expected a response timeout after {after:?}, got {other:?}"),
    };

    let defaults = RedisCache::connect(&server.url()).await.unwrap();
    let equal = RedisCache::connect(&format!("{}?timeout=500ms", server.url()))
        .await
        .unwrap();
    server.pause();
    expect_response(
        defaults.set("k", Bytes::from("v"), None).await,
        cache_redis::DEFAULT_RESPONSE_TIMEOUT,
        "default timeouts",
    );
    expect_response(
        equal.set("k", Bytes::from("v"), None).await,
        Duration::from_millis(500),
        "timeout=500ms",
    );
    server.resume();

    let quick = RedisCache::builder(&server.url())
        .response_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let keys: Vec<String> = (0..300_000).map(|i| format!("bulk:{i}")).collect();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|key| (key.as_str(), Bytes::from_static(b"0123456789")))
        .collect();
    expect_response(
        quick.set_many(&entries, None).await,
        Duration::from_millis(50),
        "a set_many of 300,000 keys",
    );
    // Whatever part of the batch landed, the connection serves the next call.
    eventually(Duration::from_secs(10), || quick.get("bulk:0"))
        .await
        .unwrap_or_else(|err| panic!("the cache did not serve again: {err}"));
    quick.clear().await.unwrap();

    // At build, the operation is `connect`, whichever phase ran out.
    server.pause();
    let built = RedisCache::builder(&server.url())
        .timeout(Duration::from_millis(300))
        .build()
        .await;
    server.resume();
    match built {
        Err(CacheError::Timeout {
            operation: "connect",
            ..
        }) => {}
        other => panic!("a build against a frozen server: {:?}", other.map(drop)),
    }

    // The connection opens and the server, its clients paused, does not answer its
    // first command: the response timeout ran out, and the error says so, not the
    // connect timeout, which did not.
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("CLIENT")
        .arg(&["PAUSE", "3000", "ALL"])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let built = RedisCache::builder(&server.url())
        .connect_timeout(Duration::from_secs(5))
        .response_timeout(Duration::from_millis(300))
        .build()
        .await;
    let took = started.elapsed();
    match built {
        Err(CacheError::Timeout {
            operation: "connect",
            phase: "response",
            after,
            ..
        }) if after == Duration::from_millis(300) && took < Duration::from_secs(4) => {}
        other => panic!(
            "a build whose first command is not answered, after {took:?}: {:?}",
            other.map(drop)
        ),
    }
}

/// A reconnect refused at login (the server's password changed while the cache was
/// connected, then its connections were killed) fails calls with `Auth`; once the password
/// is the cache's again, the same cache is served again by itself, in both connection
/// models. (The `redis` crate's `ConnectionManager` keeps a reconnect that failed other
/// than on I/O for good; the backend replaces such a manager.)
#[tokio::test]
async fn a_login_refused_on_reconnect_heals_once_the_password_is_back() {
    let server = local_server(&["--requirepass", "old-secret"]).await;
    let url = format!("redis://:old-secret@127.0.0.1:{}", server.port());
    let mut admin = common::plain(&url).await;
    for model in [
        ConnectionModel::Multiplexed { connections: 2 },
        ConnectionModel::Pooled { max_size: 2 },
    ] {
        let cache = RedisCache::builder(&url)
            .timeout(RESPONSE_TIMEOUT)
            .connection_model(model)
            .build()
            .await
            .unwrap_or_else(|err| panic!("{model:?}: cannot connect: {err}"));
        cache.set("k", Bytes::from("before"), None).await.unwrap();

        common::set_requirepass(&mut admin, "new-secret").await;
        common::kill_other_clients(&mut admin).await;
        let mut refused = false;
        for _ in 0..6 {
            match cache.get("k").await {
                Err(CacheError::Auth { .. }) => refused = true,
                Err(CacheError::Unreachable { .. }) => {}
                other => panic!("{model:?}: under the new password: {other:?}"),
            }
        }
        assert!(refused, "{model:?}: no call was refused at login");

        common::set_requirepass(&mut admin, "old-secret").await;
        eventually(Duration::from_secs(3), || cache.get("k"))
            .await
            .unwrap_or_else(|err| panic!("{model:?}: not served again: {err}"));
        assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("before")));
    }
}

/// Opens plain connections to `port` until the server refuses one; the ones it took,
/// held open, and the refusal's line.
fn fill_connections(port: u16) -> (Vec<std::net::TcpStream>, String) {
    use std::io::{BufRead, BufReader, Write};
    let mut held = Vec::new();
    for _ in 0..256 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // A refused connection may be closed before the command is written.
        let _ = stream.write_all(b"PING\r\n");
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
        if line.starts_with("+PONG") {
            held.push(stream);
        } else {
            return (held, line);
        }
    }
    panic!("the server took 256 connections: is --maxclients honoured?");
}

/// A server out of connections (`maxclients`) answers a new one with `-ERR max number
/// of clients reached` and closes it: `build` fails with `Unreachable` (worth a retry)
/// naming that reason, not a bare "broken pipe" or "connection reset"; and a cache is
/// built once the server has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_connections_is_unreachable_naming_why() {
    const REASON: &str = "max number of clients reached";
    let server = local_server(&["--maxclients", "4"]).await;
    let url = server.url();
    let (held, refusal) = fill_connections(server.port());
    assert!(refusal.contains(REASON), "{refusal:?}");
    for model in [
        ConnectionModel::Multiplexed { connections: 1 },
        ConnectionModel::Pooled { max_size: 2 },
    ] {
        let error = RedisCache::builder(&url)
            .timeout(Duration::from_secs(2))
            .connection_model(model)
            .build()
            .await
            .expect_err("no room for a connection");
        let shown = common::everything_shown(&error);
        assert!(
            matches!(error, CacheError::Unreachable { .. }) && error.is_retryable(),
            "{model:?}: {shown}"
        );
        assert!(shown.contains(REASON), "{model:?}: {shown}");
    }
    drop(held);
    let cache = RedisCache::builder(&url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("built once the server has room");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
}

/// A server that closes idle connections (`timeout 1`, as a proxy or a NAT may too): the
/// first call after each quiet spell works, in both connection models, with one or
/// several multiplexed connections, for `get` and `clear` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_idle_connections_fails_no_call() {
    let server = local_server(&["--timeout", "1"]).await;
    for model in [
        ConnectionModel::Multiplexed { connections: 1 },
        ConnectionModel::Multiplexed { connections: 3 },
        ConnectionModel::Pooled { max_size: 2 },
    ] {
        let cache = RedisCache::builder(&server.url())
            .timeout(RESPONSE_TIMEOUT)
            .connection_model(model)
            .build()
            .await
            .unwrap();
        cache.set("idle", Bytes::from("kept"), None).await.unwrap();
        for round in 0..2 {
            // Past the server's timeout of 1 s, checked by it every 100 ms.
            tokio::time::sleep(Duration::from_millis(2300)).await;
            for call in 0..3 {
                let read = cache.get("idle").await;
                assert!(
                    matches!(&read, Ok(Some(value)) if value == &Bytes::from("kept")),
                    "{model:?}, round {round}, call {call} after the quiet spell: {read:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(2300)).await;
        cache.clear().await.unwrap();
        assert_eq!(cache.get("idle").await.unwrap(), None);
    }
}
