//! `LocalServer`: a dedicated server per test, paused, resumed, killed and restarted.
//!
//! Needs `redis-server` and `memcached` on PATH (`apt-get install redis-server memcached`).

mod common;

use std::time::Duration;

use cache_testserver::LocalServer;
use common::{exchange, memcached_version, port_closed, redis_ping, MEMCACHED, NOWHERE, REDIS};

async fn start(kind: &'static cache_testserver::ServerKind, args: &[&str]) -> LocalServer {
    LocalServer::start(kind, args).await.unwrap_or_else(|err| {
        panic!(
            "cannot start a local {} server (install it: {}): {err}",
            kind.name, kind.install_hint
        )
    })
}

/// A started Redis answers PING on the port and URL it reports.
#[tokio::test]
async fn local_redis_answers_ping_at_its_url() {
    let server = start(&REDIS, &[]).await;
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(server.pid().is_some(), "a running server has a pid");
    assert_eq!(redis_ping(server.port()).expect("PING"), "+PONG");
}

/// A paused server keeps connections but answers nothing until it is resumed.
#[tokio::test]
async fn paused_server_answers_nothing_until_resumed() {
    let server = start(&REDIS, &[]).await;
    server.pause();
    let paused = exchange(server.port(), "PING\r\n", Duration::from_millis(500));
    assert!(paused.is_err(), "a paused server answered PING: {paused:?}");
    server.resume();
    assert_eq!(
        redis_ping(server.port()).expect("PING after resume"),
        "+PONG"
    );
}

/// A killed server's port is closed when `kill` returns; a restart serves on the same port.
#[tokio::test]
async fn killed_server_closes_its_port_and_restarts_on_it() {
    let mut server = start(&REDIS, &[]).await;
    let port = server.port();
    let first_pid = server.pid();
    server.kill();
    assert!(
        port_closed(port),
        "127.0.0.1:{port} still accepts after kill"
    );
    assert_eq!(server.pid(), None, "a killed server has no pid");
    server.kill(); // a second kill does nothing

    server.restart().await.expect("restart");
    assert_eq!(server.port(), port, "the restart moved the port");
    assert_ne!(server.pid(), first_pid, "the restart kept the old process");
    assert_eq!(redis_ping(port).expect("PING after restart"), "+PONG");
}

/// Killing a paused server works too (SIGKILL needs no SIGCONT), and so does restarting it.
#[tokio::test]
async fn paused_server_can_be_killed_and_restarted() {
    let mut server = start(&REDIS, &[]).await;
    let port = server.port();
    server.pause();
    server.kill();
    assert!(
        port_closed(port),
        "127.0.0.1:{port} still accepts after kill"
    );
    server.restart().await.expect("restart");
    assert_eq!(redis_ping(port).expect("PING after restart"), "+PONG");
}

/// Restarting a running server replaces it.
#[tokio::test]
async fn restart_of_a_running_server_replaces_it() {
    let mut server = start(&REDIS, &[]).await;
    let first_pid = server.pid();
    server.restart().await.expect("restart");
    assert_ne!(server.pid(), first_pid, "the restart kept the old process");
    assert_eq!(redis_ping(server.port()).expect("PING"), "+PONG");
}

/// Dropping the server kills it.
#[tokio::test]
async fn dropped_server_closes_its_port() {
    let server = start(&REDIS, &[]).await;
    let port = server.port();
    drop(server);
    assert!(
        common::wait_port_closed(port, Duration::from_secs(5)),
        "127.0.0.1:{port} still accepts 5 s after the drop"
    );
}

/// Extra arguments reach the server, across restarts, and stay out of `Debug`.
#[tokio::test]
async fn extra_args_reach_the_server_and_stay_out_of_debug() {
    let mut server = start(&REDIS, &["--requirepass", "s3cret"]).await;
    let reply = redis_ping(server.port()).expect("PING");
    assert!(
        reply.starts_with("-NOAUTH"),
        "PING without AUTH gave {reply:?}"
    );
    let reply = exchange(server.port(), "AUTH s3cret\r\n", Duration::from_secs(2)).expect("AUTH");
    assert_eq!(reply, "+OK");

    server.restart().await.expect("restart");
    let reply = redis_ping(server.port()).expect("PING after restart");
    assert!(
        reply.starts_with("-NOAUTH"),
        "after restart, PING gave {reply:?}"
    );

    let debug = format!("{server:?}");
    assert!(
        !debug.contains("s3cret"),
        "Debug shows the password: {debug}"
    );
    assert!(debug.contains("redis"), "Debug names no kind: {debug}");
}

/// Two servers of the same kind get different ports.
#[tokio::test]
async fn two_servers_get_different_ports() {
    let first = start(&REDIS, &[]).await;
    let second = start(&REDIS, &[]).await;
    assert_ne!(first.port(), second.port());
    assert_eq!(redis_ping(first.port()).expect("PING first"), "+PONG");
    assert_eq!(redis_ping(second.port()).expect("PING second"), "+PONG");
}

/// A memcached server answers `version`, and can be paused, killed and restarted.
#[tokio::test]
async fn local_memcached_answers_version_and_restarts() {
    let mut server = start(&MEMCACHED, &[]).await;
    let port = server.port();
    assert_eq!(server.url(), format!("memcache://127.0.0.1:{port}"));
    let version = memcached_version(port).expect("version");
    assert!(version.starts_with("VERSION "), "version gave {version:?}");

    server.pause();
    let paused = exchange(port, "version\r\n", Duration::from_millis(500));
    assert!(paused.is_err(), "a paused memcached answered: {paused:?}");
    server.resume();
    assert!(memcached_version(port)
        .expect("version")
        .starts_with("VERSION "));

    server.kill();
    assert!(
        port_closed(port),
        "127.0.0.1:{port} still accepts after kill"
    );
    server.restart().await.expect("restart");
    assert!(memcached_version(port)
        .expect("version")
        .starts_with("VERSION "));
}

/// A binary missing from PATH is an error that says how to install it.
#[tokio::test]
async fn missing_binary_is_reported_with_the_install_hint() {
    let err = LocalServer::start(&NOWHERE, &[])
        .await
        .expect_err("a server without a binary started");
    assert!(
        err.contains("cache-testserver-no-such-server not found on PATH"),
        "message: {err}"
    );
    assert!(
        err.contains("apt-get install no-such-server"),
        "message: {err}"
    );
}

/// A server that exits at start is an error that carries what it wrote.
#[tokio::test]
async fn early_exit_is_reported_with_the_server_output() {
    let err = LocalServer::start(&REDIS, &["--no-such-directive", "1"])
        .await
        .expect_err("redis started with a bad directive");
    assert!(err.contains("exited"), "message: {err}");
    assert!(
        err.contains("no-such-directive"),
        "the message lacks redis' own complaint: {err}"
    );
}

/// Pausing a killed server is a caller mistake, reported by a panic that says so.
#[tokio::test]
async fn pausing_a_killed_server_panics() {
    let mut server = start(&REDIS, &[]).await;
    server.kill();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.pause()));
    let payload = caught.expect_err("pausing a killed server did not panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("was killed"), "panic message: {message:?}");
}
