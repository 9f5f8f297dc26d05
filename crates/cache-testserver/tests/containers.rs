//! The container source: a real container from the local image, published on 127.0.0.1 only,
//! labelled, and removed when the test process ends.
//!
//! Needs Docker and the images built by `scripts/build-test-images`; without them these tests
//! fail with a message that says so.
#![cfg(feature = "containers")]

mod common;

use std::time::Duration;

use cache_testserver::{shared_server, Origin, ServerKind};
use common::{
    assert_child_passed, child_mode, describe, docker, memcached_version, port_of, redis_ping,
    report, report_ready, reported, run_child, spawn_child_until_ready, wait_container_gone,
    MEMCACHED, REDIS, REDIS_BROKEN_BINARY, REDIS_WITHOUT_BINARY,
};

/// How long `docker rm -f` may take once the test process is gone.
const REMOVED_WITHIN: Duration = Duration::from_secs(30);

/// The child's part: start the shared container of `kind`, check it, report its id.
async fn start_and_check_container(kind: &'static ServerKind) {
    let server = shared_server(kind).await;
    let again = shared_server(kind).await;
    assert!(
        std::ptr::eq(server, again),
        "the second call started another container"
    );
    assert_eq!(server.origin(), Origin::Container, "{server:?}");
    assert!(server.owned_by_fixture());
    let id = server.container_id().expect("a container id").to_owned();
    let port = port_of(server.url());
    assert!(
        server.url().contains(&format!("127.0.0.1:{port}")),
        "url {}",
        server.url()
    );

    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &id]);
    assert!(
        labels.contains("\"cache-testserver\":\"1\""),
        "labels {labels}"
    );
    assert!(
        labels.contains(&format!("\"cache-testserver.kind\":\"{}\"", kind.name)),
        "labels {labels}"
    );
    let published = docker(&["port", &id, &format!("{}/tcp", kind.container_port)]);
    assert_eq!(
        published,
        format!("127.0.0.1:{port}"),
        "the port must be published on 127.0.0.1 only"
    );
    report("CONTAINER", &id);
}

/// The child runs on a fresh runtime, as a test of a backend crate would.
fn in_child(kind: &'static ServerKind) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(start_and_check_container(kind));
}

fn assert_removed(ids: &[String], child_pid: u32, kind: &ServerKind) {
    assert_eq!(ids.len(), 1, "the child reported containers {ids:?}");
    for id in ids {
        assert!(
            wait_container_gone(id, REMOVED_WITHIN),
            "container {id} still exists {REMOVED_WITHIN:?} after its test process ended"
        );
    }
    // Also none the child did not report: their names carry the child's pid.
    let name = format!("name=cache-testserver-{}-{child_pid}-", kind.name);
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=cache-testserver=1",
        "--filter",
        &name,
    ]);
    assert!(left.is_empty(), "containers left behind: {left}");
}

fn run_and_check_removal(test: &str, kind: &ServerKind, source: &str) -> String {
    let child = common::child_command(test, "run", &[("CACHE_TEST_SERVERS", source)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the child test process starts");
    let child_pid = child.id();
    let output = child.wait_with_output().expect("the child's output");
    assert_child_passed(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let announced = format!(
        "cache-testserver: {} from container {}",
        kind.name, kind.default_image
    );
    assert!(
        stderr.contains(&announced),
        "no {announced:?}\n{}",
        describe(&output)
    );
    let ids = reported(&String::from_utf8_lossy(&output.stdout), "CONTAINER");
    assert_removed(&ids, child_pid, kind);
    stderr.into_owned()
}

/// With `CACHE_TEST_SERVERS=containers`, Redis runs in a labelled container on 127.0.0.1, answers
/// PING, and the container is removed when the test process exits.
#[test]
fn redis_container_serves_on_loopback_and_is_removed_at_exit() {
    if child_mode().is_some() {
        in_child(&REDIS);
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        assert_eq!(redis_ping(port_of(server.url())).expect("PING"), "+PONG");
        return;
    }
    run_and_check_removal(
        "redis_container_serves_on_loopback_and_is_removed_at_exit",
        &REDIS,
        "containers",
    );
}

/// The same for memcached, whose readiness is a line on stderr.
#[test]
fn memcached_container_serves_on_loopback_and_is_removed_at_exit() {
    if child_mode().is_some() {
        in_child(&MEMCACHED);
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&MEMCACHED));
        let version = memcached_version(port_of(server.url())).expect("version");
        assert!(version.starts_with("VERSION "), "version gave {version:?}");
        return;
    }
    run_and_check_removal(
        "memcached_container_serves_on_loopback_and_is_removed_at_exit",
        &MEMCACHED,
        "containers",
    );
}

/// In auto mode without a URL, a missing binary makes way for a container.
#[test]
fn auto_source_falls_back_to_a_container_without_the_binary() {
    if child_mode().is_some() {
        in_child(&REDIS_WITHOUT_BINARY);
        return;
    }
    run_and_check_removal(
        "auto_source_falls_back_to_a_container_without_the_binary",
        &REDIS_WITHOUT_BINARY,
        "auto",
    );
}

/// In auto mode, a binary that fails at start makes way for a container, and the failure is
/// shown.
#[test]
fn auto_source_falls_back_to_a_container_when_the_binary_fails() {
    if child_mode().is_some() {
        in_child(&REDIS_BROKEN_BINARY);
        return;
    }
    let stderr = run_and_check_removal(
        "auto_source_falls_back_to_a_container_when_the_binary_fails",
        &REDIS_BROKEN_BINARY,
        "auto",
    );
    assert!(
        stderr.contains(
            "cache-testserver: redis-broken-binary: binary false failed, trying a container"
        ),
        "the binary's failure was not shown\n{stderr}"
    );
}

/// A container is removed even when its test process is killed with SIGKILL.
#[test]
fn container_is_removed_when_the_test_process_is_killed() {
    if child_mode().is_some() {
        in_child(&REDIS);
        report_ready();
        std::thread::sleep(Duration::from_secs(60));
        panic!("the child was not killed within 60 s");
    }
    let (mut child, printed) = spawn_child_until_ready(
        "container_is_removed_when_the_test_process_is_killed",
        "kill",
        &[("CACHE_TEST_SERVERS", "containers")],
    );
    let child_pid = child.id();
    let ids = reported(&printed, "CONTAINER");
    let id = ids.first().expect("the child reported no container");
    let running = docker(&["inspect", "--format", "{{.State.Running}}", id]);
    assert_eq!(
        running, "true",
        "the container was not running before the kill"
    );
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    assert_removed(&ids, child_pid, &REDIS);
}

/// A missing image is reported with the script that builds it and the variable that overrides it.
#[test]
fn missing_image_is_reported_with_the_build_script() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(shared_server(&REDIS));
        panic!("a missing image gave {server:?}");
    }
    let output = run_child(
        "missing_image_is_reported_with_the_build_script",
        "run",
        &[
            ("CACHE_TEST_SERVERS", "containers"),
            ("REDIS_IMAGE", "cache-test/no-such-image:none"),
        ],
    );
    assert!(
        !output.status.success(),
        "the child passed\n{}",
        describe(&output)
    );
    let text = describe(&output);
    for expected in [
        "image cache-test/no-such-image:none not found locally",
        "run scripts/build-test-images",
        "REDIS_IMAGE=name:tag",
    ] {
        assert!(text.contains(expected), "missing {expected:?}\n{text}");
    }
    assert!(
        !text.contains("redis from binary"),
        "containers mode started a binary\n{text}"
    );
}
