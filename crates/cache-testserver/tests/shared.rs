//! `shared_server`: the source chosen by `CACHE_TEST_SERVERS`, reuse, and the panic when nothing
//! works.
//!
//! Each test runs again as a child process with a controlled environment: the shared server is
//! chosen once per process, from the environment. Needs `redis-server` and `memcached` on PATH.

mod common;

use std::sync::Arc;

use cache_testserver::{shared_server, Origin, SharedServer};
use common::{
    assert_child_passed, child_mode, memcached_version, port_of, redis_ping, run_child, MEMCACHED,
    NOWHERE, REDIS,
};

/// Calls `shared_server(kind)` from `threads` threads at once, each on its own runtime, and
/// returns what each got.
fn from_many_runtimes(
    kind: &'static cache_testserver::ServerKind,
    threads: usize,
) -> Vec<&'static SharedServer> {
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let runtime = if i % 2 == 0 {
                    tokio::runtime::Builder::new_current_thread().build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .build()
                }
                .expect("a runtime");
                barrier.wait();
                runtime.block_on(shared_server(kind))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().expect("a caller thread"))
        .collect()
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

/// With `CACHE_TEST_SERVERS=binary`, concurrent calls from different runtimes all get the one
/// Redis started from the binary, which answers PING.
#[test]
fn binary_source_starts_one_redis_for_every_caller() {
    if child_mode().is_some() {
        let servers = from_many_runtimes(&REDIS, 6);
        let first = servers[0];
        for server in &servers {
            assert!(
                std::ptr::eq(*server, first),
                "two calls returned different servers: {server:?} and {first:?}"
            );
        }
        assert_eq!(first.origin(), Origin::Binary);
        assert!(first.owned_by_fixture());
        assert_eq!(first.container_id(), None);
        assert_eq!(redis_ping(port_of(first.url())).expect("PING"), "+PONG");
        return;
    }
    let output = run_child(
        "binary_source_starts_one_redis_for_every_caller",
        "run",
        &[("CACHE_TEST_SERVERS", "binary")],
    );
    assert_child_passed(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        count_lines(&stderr, "cache-testserver: redis from binary"),
        1,
        "expected exactly one start announced\n{}",
        common::describe(&output)
    );
}

/// A memcached from the binary answers `version`; a second call returns the same server.
#[test]
fn binary_source_serves_memcached() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let first = runtime.block_on(shared_server(&MEMCACHED));
        let second = runtime.block_on(shared_server(&MEMCACHED));
        assert!(
            std::ptr::eq(first, second),
            "the second call started another server"
        );
        assert_eq!(first.origin(), Origin::Binary);
        assert!(
            first.url().starts_with("memcache://127.0.0.1:"),
            "url {}",
            first.url()
        );
        let version = memcached_version(port_of(first.url())).expect("version");
        assert!(version.starts_with("VERSION "), "version gave {version:?}");
        return;
    }
    let output = run_child(
        "binary_source_serves_memcached",
        "run",
        &[("CACHE_TEST_SERVERS", "binary")],
    );
    assert_child_passed(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cache-testserver: memcached from binary"),
        "no start announced\n{}",
        common::describe(&output)
    );
}

/// Unset `CACHE_TEST_SERVERS` with no URL variable uses the binary.
#[test]
fn auto_source_uses_the_binary_without_a_url() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        assert_eq!(server.origin(), Origin::Binary, "{server:?}");
        assert_eq!(redis_ping(port_of(server.url())).expect("PING"), "+PONG");
        return;
    }
    let output = run_child("auto_source_uses_the_binary_without_a_url", "run", &[]);
    assert_child_passed(&output);
}

/// A URL variable wins in auto mode; the server is not owned, and its password is never shown.
#[test]
fn auto_source_prefers_the_url_variable_and_hides_its_password() {
    const URL: &str = "redis://user:s3cret@127.0.0.1:1/0";
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        assert_eq!(server.origin(), Origin::Environment);
        assert_eq!(server.url(), URL);
        assert!(
            !server.owned_by_fixture(),
            "an external server is not ours to flush"
        );
        let debug = format!("{server:?}");
        assert!(
            !debug.contains("s3cret"),
            "Debug shows the password: {debug}"
        );
        assert!(debug.contains("user:***@127.0.0.1:1"), "Debug: {debug}");
        return;
    }
    let output = run_child(
        "auto_source_prefers_the_url_variable_and_hides_its_password",
        "run",
        &[("REDIS_URL", URL)],
    );
    assert_child_passed(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cache-testserver: redis from REDIS_URL at redis://user:***@127.0.0.1:1/0"),
        "no redacted announcement\n{}",
        common::describe(&output)
    );
    assert!(
        !stderr.contains("s3cret"),
        "the password was printed\n{stderr}"
    );
}

/// `external` without the URL variable panics, naming the variable.
#[test]
fn external_source_without_url_panics_naming_the_variable() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        panic!("external mode without REDIS_URL returned {server:?}");
    }
    let output = run_child(
        "external_source_without_url_panics_naming_the_variable",
        "run",
        &[("CACHE_TEST_SERVERS", "external")],
    );
    assert!(
        !output.status.success(),
        "the child passed\n{}",
        common::describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "no redis server available (CACHE_TEST_SERVERS=external)",
        "REDIS_URL: not set",
    ] {
        assert!(
            stdout.contains(expected) || String::from_utf8_lossy(&output.stderr).contains(expected),
            "missing {expected:?}\n{}",
            common::describe(&output)
        );
    }
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("redis from binary"),
        "external mode started a binary\n{}",
        common::describe(&output)
    );
}

/// An unknown `CACHE_TEST_SERVERS` value panics, listing the valid ones.
#[test]
fn unknown_source_panics_listing_the_valid_ones() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        panic!("CACHE_TEST_SERVERS=bogus returned {server:?}");
    }
    let output = run_child(
        "unknown_source_panics_listing_the_valid_ones",
        "run",
        &[("CACHE_TEST_SERVERS", "bogus")],
    );
    assert!(
        !output.status.success(),
        "the child passed\n{}",
        common::describe(&output)
    );
    let text = common::describe(&output);
    assert!(
        text.contains(
            "CACHE_TEST_SERVERS=\"bogus\" is not one of auto, binary, containers, external"
        ),
        "{text}"
    );
}

/// When nothing works, the panic says what was tried and every way to provide a server; a second
/// call panics the same way.
#[test]
fn nothing_available_panics_with_what_was_tried_and_how_to_fix_it() {
    if child_mode().is_some() {
        let messages: Vec<String> = (0..2)
            .map(|_| {
                let runtime = tokio::runtime::Runtime::new().expect("a runtime");
                let caught = std::panic::catch_unwind(|| runtime.block_on(shared_server(&NOWHERE)));
                let payload = caught.expect_err("a server of a kind that exists nowhere");
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .expect("a formatted panic message")
            })
            .collect();
        assert_eq!(
            messages[0], messages[1],
            "the second call failed differently"
        );
        let message = &messages[0];
        for expected in [
            "no nowhere server available (CACHE_TEST_SERVERS=auto)",
            "CACHE_TESTSERVER_NOWHERE_URL: not set",
            "cache-testserver-no-such-server not found on PATH",
            "apt-get install no-such-server",
            "run scripts/build-test-images",
            "CACHE_TESTSERVER_NOWHERE_IMAGE=name:tag",
        ] {
            assert!(
                message.contains(expected),
                "missing {expected:?} in:\n{message}"
            );
        }
        println!("PANIC-MESSAGE-CHECKED");
        return;
    }
    let output = run_child(
        "nothing_available_panics_with_what_was_tried_and_how_to_fix_it",
        "run",
        &[],
    );
    assert_child_passed(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("PANIC-MESSAGE-CHECKED"),
        "the child did not reach its checks\n{}",
        common::describe(&output)
    );
}
