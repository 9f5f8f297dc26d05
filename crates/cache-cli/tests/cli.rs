//! `cachectl` as a user runs it: the binary, its output and its exit codes.

mod common;

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use common::{cachectl, text, Background};

/// `cachectl check` on the default memory backend runs every check, one line each, and
/// closes with the count line.
#[test]
fn check_on_memory_passes_every_check() {
    let out = cachectl(&["check"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    // Every check of the list, and the check of two caches after them.
    let total = cache_tck::CHECKS.len() + 1;
    assert_eq!(
        lines.last(),
        Some(&format!("{total} passed, 0 failed").as_str()),
        "{stdout}"
    );
    for check in cache_tck::CHECKS.iter().chain([&cache_tck::PAIR]) {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("PASS") && line.contains(check.name)),
            "no PASS line for {}:\n{stdout}",
            check.name
        );
    }
}

/// `--json` prints one document with a result per check.
#[test]
fn check_json_reports_each_check() {
    let out = cachectl(&["check", "memory://", "--group", "core", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["passed"], 5);
    assert_eq!(report["failed"], 0);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "test_set_and_get_value_without_ttl");
    assert_eq!(names.len(), 5);
}

/// A report that cannot be written (a full disk: `/dev/full`) fails the command and is
/// said on standard error; standard error that cannot be written is no panic (exit 101).
#[test]
fn output_that_cannot_be_written_fails_the_command_without_a_panic() {
    use std::{fs::OpenOptions, process::Command};

    let full = || {
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux")
    };
    let run = |args: &[&str], full_stdout: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cachectl"));
        command.args(args);
        if full_stdout {
            command.stdout(full());
        } else {
            command.stderr(full());
        }
        command.output().expect("cachectl runs")
    };
    for args in [
        &["check", "--group", "core"][..],
        &["check", "--group", "core", "--json"],
        &["del", "memory://", "k"],
        &["--help"],
        &["bench", "--help"],
        &["--version"],
    ] {
        let out = run(args, true);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("cannot write to standard output"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A miss is said on standard error; with that full, the exit code still says it.
    let miss = run(&["get", "memory://", "absent"], false);
    assert_eq!(miss.status.code(), Some(1));
    let bad_url = run(&["get", "nosuch://", "k"], false);
    assert_eq!(bad_url.status.code(), Some(2));
}

/// A filter that matches no check is an error, not an empty success.
#[test]
fn no_matching_check_is_an_error() {
    let out = cachectl(&["check", "--filter", "no-such-check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no check matches"));
}

/// Bad URLs are configuration errors (exit 2) that never echo a password.
#[test]
fn bad_urls_fail_clearly_without_secrets() {
    for url in [
        "ftp://user:hunter2@localhost",
        "hunter2",
        "memory://?colour=red",
    ] {
        let out = cachectl(&["get", url, "k"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains("invalid configuration"), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
}

/// A miss is exit code 1 with nothing on standard output.
#[test]
fn get_of_a_miss_exits_1() {
    let out = cachectl(&["get", "memory://", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("miss"));
}

/// A memory:// cache dies with the command: get, set and del say so, and a server's
/// URL gets no such note.
#[test]
fn commands_on_memory_say_that_nothing_outlives_them() {
    for args in [
        &["set", "memory://", "k", "v"][..],
        &["get", "memory://?max_value_size=10", "k"],
        &["del", " MEMORY://", "k"],
    ] {
        let out = cachectl(args);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("lives only as long as this command"),
            "{args:?}: {stderr}"
        );
    }
    let out = cachectl(&["get", "redis://127.0.0.1:1", "k", "--timeout", "100ms"]);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("lives only"), "{stderr}");
}

/// A server that takes connections and never answers cannot be used at all: connecting
/// times out, and every command that needs a connection exits 2 saying so, on every
/// network scheme alike (a timeout after connecting is exit 1, as any failed operation).
#[test]
fn a_server_that_never_answers_is_exit_2_on_every_scheme() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // The connections are accepted by the kernel and held in the backlog, never read.
    for scheme in ["redis", "memcache", "redis+cluster"] {
        let url = format!("{scheme}://127.0.0.1:{port}?timeout=300ms");
        for args in [
            &["get", &url, "k"][..],
            &["set", &url, "k", "v"],
            &["del", &url, "k"],
            &["check", &url, "--group", "core"],
        ] {
            let out = cachectl(args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(!stderr.is_empty(), "{args:?}: nothing said");
        }
    }
    drop(silent);
}

/// `set` with the value on standard input takes at most one byte more than the largest
/// value the backend takes: a longer input, even one that never ends, is refused as too
/// large (exit 1) without being read to its end. A value of the largest size is stored.
#[test]
fn set_reads_no_more_of_standard_input_than_the_backend_takes() {
    let url = "memory://?max_value_size=1000";
    let run = Background::start_with_endless_stdin(&["set", url, "k"]);
    let (code, stdout, stderr) = run.finish(Duration::from_secs(20), "an endless value");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("exceeds the limit of 1000 bytes"),
        "{stderr}"
    );
    for (size, code) in [(1000, Some(0)), (1001, Some(1))] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cachectl"))
            .args(["set", url, "k"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cachectl runs");
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(&vec![b'v'; size])
            .expect("the value is written");
        drop(stdin);
        let out = child.wait_with_output().expect("cachectl ends");
        assert_eq!(
            out.status.code(),
            code,
            "{size} bytes: {}",
            text(&out.stderr)
        );
    }
}

/// `set` with the value on standard input connects first: a bad URL or a server that
/// is down is said at once (exit 2), however much there is to read.
#[test]
fn set_says_a_bad_url_before_reading_standard_input() {
    let down = format!("redis://127.0.0.1:{}", cache_testserver::free_port());
    for url in ["nonsense", "memory://?colour=red", down.as_str()] {
        let run = Background::start_with_endless_stdin(&["set", url, "k"]);
        let (code, stdout, stderr) = run.finish(Duration::from_secs(20), url);
        assert_eq!(code, Some(2), "{url}: {stdout}{stderr}");
        assert!(stderr.starts_with("cachectl: "), "{url}: {stderr}");
    }
}
