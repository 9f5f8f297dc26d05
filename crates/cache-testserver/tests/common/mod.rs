//! What the integration tests share: server kinds (the crate's own, and some made to fail), raw
//! protocol probes, and a way to run one test again in a child process with a chosen environment.
//!
//! Child processes matter here because the behaviour under test is per process (one shared server
//! per process, chosen from the environment once; clean-up when the process dies), and because
//! changing the environment of a running test binary would race with its other tests.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cache_testserver::{Ready, ServerKind};
pub use cache_testserver::{MEMCACHED, REDIS};

/// Redis whose binary is missing, so that `auto` has to fall back to a container.
pub static REDIS_WITHOUT_BINARY: ServerKind = ServerKind {
    name: "redis-without-binary",
    binary: "cache-testserver-no-such-server",
    ..REDIS
};

/// Redis whose "binary" exits at once (`false`), so that `auto` has to fall back to a container.
pub static REDIS_BROKEN_BINARY: ServerKind = ServerKind {
    name: "redis-broken-binary",
    binary: "false",
    ..REDIS
};

/// A kind whose binary and image exist nowhere, to see what "nothing works" looks like.
pub static NOWHERE: ServerKind = ServerKind {
    name: "nowhere",
    url_env: "CACHE_TESTSERVER_NOWHERE_URL",
    binary: "cache-testserver-no-such-server",
    image_env: "CACHE_TESTSERVER_NOWHERE_IMAGE",
    default_image: "cache-test/no-such-image:latest",
    container_ready: Ready::StdoutLine("never"),
    install_hint: "apt-get install no-such-server",
    ..REDIS
};

/// The port of a `scheme://host:port` URL.
pub fn port_of(url: &str) -> u16 {
    let port = url
        .rsplit(':')
        .next()
        .and_then(|tail| tail.split('/').next())
        .and_then(|port| port.parse().ok());
    port.unwrap_or_else(|| panic!("no port in url {url}"))
}

/// Sends `request` to `127.0.0.1:port` and returns the first reply line, waiting at most
/// `timeout`.
pub fn exchange(port: u16, request: &str, timeout: Duration) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Redis' answer to `PING`.
pub fn redis_ping(port: u16) -> std::io::Result<String> {
    exchange(port, "PING\r\n", Duration::from_secs(2))
}

/// memcached's answer to `version`.
pub fn memcached_version(port: u16) -> std::io::Result<String> {
    exchange(port, "version\r\n", Duration::from_secs(2))
}

/// True when a TCP connection to `127.0.0.1:port` is refused.
pub fn port_closed(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
}

/// Polls until `127.0.0.1:port` refuses connections; false when it still accepts after `within`.
pub fn wait_port_closed(port: u16, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if port_closed(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    port_closed(port)
}

/// Set in a child process: names what the child should do.
pub const CHILD_ENV: &str = "CACHE_TESTSERVER_TEST_CHILD";

/// The mode this process was started in as a child, if it is one.
pub fn child_mode() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Variables a child starts without, so the parent's environment cannot choose its server.
const CLEARED: &[&str] = &[
    "CACHE_TEST_SERVERS",
    "REDIS_URL",
    "MEMCACHED_URL",
    "CACHE_TESTSERVER_NOWHERE_URL",
];

/// This test binary, set to run only `test` (exactly) in child `mode`, with `env` added.
pub fn child_command(test: &str, mode: &str, env: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().expect("the path of the running test binary");
    let mut command = Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::null());
    for name in CLEARED {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `test` as a child in `mode` to its end and returns what it did.
pub fn run_child(test: &str, mode: &str, env: &[(&str, &str)]) -> Output {
    child_command(test, mode, env)
        .output()
        .expect("the child test process starts")
}

/// Text of a child's stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that a child finished successfully, showing its output otherwise.
pub fn assert_child_passed(output: &Output) {
    assert!(
        output.status.success(),
        "the child test failed\n{}",
        describe(output)
    );
}

/// What a child reported with `report(key, value)`, in order.
///
/// Searched anywhere in a line: with `--nocapture` the harness' `test NAME ... ` shares a line
/// with what the test prints first.
pub fn reported(output: &str, key: &str) -> Vec<String> {
    let marker = format!("@{key} ");
    output
        .lines()
        .filter_map(|line| line.find(&marker).map(|at| &line[at + marker.len()..]))
        .map(|value| value.trim().to_owned())
        .collect()
}

/// Reports `value` under `key` to the parent, on a line of its own.
pub fn report(key: &str, value: impl std::fmt::Display) {
    println!("\n@{key} {value}");
}

/// Tells the parent waiting in [`spawn_child_until_ready`] that the child is ready.
pub fn report_ready() {
    println!("\n@READY");
}

/// Starts `test` as a child in `mode`, reads its stdout until [`report_ready`], and returns the
/// running child with everything it printed before that line.
pub fn spawn_child_until_ready(test: &str, mode: &str, env: &[(&str, &str)]) -> (Child, String) {
    let child = child_command(test, mode, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child test process starts");
    read_until_ready(child)
}

fn read_until_ready(mut child: Child) -> (Child, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .expect("reading the child's stdout");
        if read == 0 {
            let output = child.wait_with_output().expect("the child's status");
            panic!(
                "the child ended ({}) before it was ready\n--- stdout ---\n{seen}\n--- stderr ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if line.trim_end().ends_with("@READY") {
            return (child, seen);
        }
        seen.push_str(&line);
    }
}

/// Runs `docker` with `args` and returns its stdout; panics when docker fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run docker {args:?}: {err}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Polls until no container with id `id` exists any more; false when one still does after
/// `within`.
pub fn wait_container_gone(id: &str, within: Duration) -> bool {
    let filter = format!("id={id}");
    let start = Instant::now();
    loop {
        if docker(&["ps", "-aq", "--filter", &filter]).is_empty() {
            return true;
        }
        if start.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
