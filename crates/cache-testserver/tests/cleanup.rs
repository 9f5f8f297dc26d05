//! Servers die with the test process that started them, however it ends.
//!
//! A child test process starts a shared server (from the binary) and two `LocalServer`s that it
//! never drops, reports their ports, and then either returns normally or waits to be killed with
//! `SIGKILL`. The parent checks that every reported port is closed shortly after the child is
//! gone: only the watchdogs can have closed them. Needs `redis-server` and `memcached` on PATH.

mod common;

use std::time::Duration;

use cache_testserver::{shared_server, LocalServer, Origin};
use common::{
    assert_child_passed, child_mode, port_of, redis_ping, report, report_ready, reported,
    run_child, spawn_child_until_ready, wait_port_closed, MEMCACHED, REDIS,
};

/// How long the watchdogs may take to kill the servers once the child is gone.
const CLEAN_UP_WITHIN: Duration = Duration::from_secs(5);

/// The child's part: start servers, leak the local ones, report the port of each, then ready.
async fn start_servers_and_report_ports() {
    let shared = shared_server(&REDIS).await;
    assert_eq!(shared.origin(), Origin::Binary, "{shared:?}");
    report("PORT", port_of(shared.url()));
    for kind in [&REDIS, &MEMCACHED] {
        let server = LocalServer::start(kind, &[])
            .await
            .unwrap_or_else(|err| panic!("cannot start a local {} server: {err}", kind.name));
        report("PORT", server.port());
        // Never dropped: only the watchdog can stop it now.
        std::mem::forget(server);
    }
    report_ready();
}

fn assert_ports_close(ports: &[u16]) {
    assert_eq!(ports.len(), 3, "the child reported ports {ports:?}");
    for &port in ports {
        assert!(
            wait_port_closed(port, CLEAN_UP_WITHIN),
            "127.0.0.1:{port} still accepts connections {CLEAN_UP_WITHIN:?} after its test process ended"
        );
    }
}

fn parse_ports(output: &str) -> Vec<u16> {
    reported(output, "PORT")
        .iter()
        .map(|port| port.parse().expect("a port number"))
        .collect()
}

/// Servers started by a test process that exits normally are gone shortly after.
#[test]
fn servers_die_when_the_test_process_exits() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(start_servers_and_report_ports());
        return;
    }
    let output = run_child(
        "servers_die_when_the_test_process_exits",
        "exit",
        &[("CACHE_TEST_SERVERS", "binary")],
    );
    assert_child_passed(&output);
    assert_ports_close(&parse_ports(&String::from_utf8_lossy(&output.stdout)));
}

/// Servers started by a test process killed with SIGKILL are gone shortly after.
#[test]
fn servers_die_when_the_test_process_is_killed() {
    if child_mode().is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(start_servers_and_report_ports());
        // Waits for the parent's SIGKILL; bounded, should the parent be gone.
        std::thread::sleep(Duration::from_secs(60));
        panic!("the child was not killed within 60 s");
    }
    let (mut child, printed) = spawn_child_until_ready(
        "servers_die_when_the_test_process_is_killed",
        "kill",
        &[("CACHE_TEST_SERVERS", "binary")],
    );
    let ports = parse_ports(&printed);
    let first = ports.first().copied().expect("the child reported no port");
    assert_eq!(
        redis_ping(first).expect("PING the child's shared server"),
        "+PONG",
        "the child's server was not serving before the kill"
    );
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    assert_ports_close(&ports);
}
