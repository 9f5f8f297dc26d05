//! Byte-fuzzing of `cachectl`'s arguments: arbitrary and hostile argv (arbitrary text and
//! non-UTF-8 bytes, keys with control characters, durations that overflow, malformed
//! queries, unknown flags) go to the binary. No run panics or hangs: each ends with exit
//! code 0, 1 or 2, an error says why on stderr, and no password from a URL is printed.
//!
//! The binary is `cachectl` itself (a binary crate has no library to call in-process); a
//! run is a process, bounded by [`RUN_LIMIT`]. URLs are `memory://` (with arbitrary query
//! strings) or point at port 1 of the loopback interface, which refuses: nothing leaves the
//! machine. `check` and `bench` get only refusing or invalid URLs, so each run stays short.
//!
//! The committed corpus (`tests/fuzz-corpus/args.jsonl`, one JSON list of arguments per
//! line) runs first, then `CACHE_FUZZ_CASES / 2` generated cases (256 by default).

use std::{
    ffi::OsString,
    io::Read,
    os::unix::ffi::OsStringExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use proptest::{
    collection::vec,
    prelude::{any, prop_oneof, Just, Strategy},
    sample::select,
    test_runner::{Config as RunnerConfig, TestCaseError, TestRunner},
};

const CORPUS: &str = include_str!("fuzz-corpus/args.jsonl");
/// The password some URLs carry; it must never be printed.
const SECRET: &str = "fuzzS3cret";
/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// URLs that reach nothing: `memory://`, or a refusing loopback port.
const NETWORK_URLS: &[&str] = &[
    "redis://127.0.0.1:1",
    "redis://user:fuzzS3cret@127.0.0.1:1/0",
    "redis://[::1]:1",
    "rediss://127.0.0.1:1",
    "redis+cluster://user:fuzzS3cret@127.0.0.1:1,127.0.0.1:1",
    "memcache://127.0.0.1:1",
    "memcache://127.0.0.1:1,127.0.0.1:1?prefix=app:",
];

fn cases() -> u32 {
    std::env::var("CACHE_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse::<u32>().ok())
        .unwrap_or(512)
        / 2
}

/// Text that cannot name a network target: no `://` in it.
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|text| text.replace("://", ":/").replace('\0', ""))
}

/// A URL for `get`, `set` and `del`: `memory://` with an arbitrary query, a refusing one,
/// or no URL at all.
fn url() -> impl Strategy<Value = String> {
    let key = select(vec![
        "prefix",
        "key_prefix",
        "max_value_size",
        "max_capacity_bytes",
        "retry",
        "deadline",
        "trace",
        "metrics",
        "timeout",
        "pool_size",
        "db",
        "mode",
        "",
    ]);
    let pair = (key, prop_oneof![text(), "[0-9]{0,25}(ms|s|%|:)?"])
        .prop_map(|(key, value)| format!("{key}={value}"));
    prop_oneof![
        vec(pair, 0..4).prop_map(|pairs| format!("memory://?{}", pairs.join("&"))),
        text().prop_map(|rest| format!("MeMoRy://{rest}")),
        select(NETWORK_URLS).prop_map(str::to_owned),
        text(),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}(ns|ms|s|m|h|d|days|y|years|)",
        Just("584942417355years".to_owned()),
        Just("-1s".to_owned()),
        text(),
    ]
}

/// One argument that is neither a subcommand that would run long (`check`, `bench` on
/// memory) nor a URL to anywhere: arbitrary text, flags, or arbitrary bytes.
fn token() -> impl Strategy<Value = OsString> {
    let flag = select(vec![
        "--ttl",
        "--timeout",
        "--json",
        "--group",
        "--workload",
        "--concurrency",
        "--help",
        "-h",
        "--",
        "-",
        "--version",
        "--unknown",
    ]);
    prop_oneof![
        text().prop_map(OsString::from),
        flag.prop_map(OsString::from),
        vec(1_u8..=255, 0..40).prop_map(OsString::from_vec),
    ]
    .prop_filter("no long-running subcommand", |token| {
        token != "check" && token != "bench"
    })
}

fn os(items: Vec<String>) -> Vec<OsString> {
    items.into_iter().map(OsString::from).collect()
}

/// A whole argv: a subcommand with plausible arguments and a tail of arbitrary ones, or
/// arbitrary tokens only.
fn argv() -> impl Strategy<Value = Vec<OsString>> {
    let tail = || vec(token(), 0..3);
    let refusing = || prop_oneof![select(NETWORK_URLS).prop_map(str::to_owned), text()];
    prop_oneof![
        (url(), text(), tail())
            .prop_map(|(url, key, tail)| { [os(vec!["get".into(), url, key]), tail].concat() }),
        (url(), text(), text(), duration(), tail()).prop_map(|(url, key, value, ttl, tail)| {
            [
                os(vec!["set".into(), url, key, value, "--ttl".into(), ttl]),
                tail,
            ]
            .concat()
        }),
        (url(), text(), duration()).prop_map(|(url, key, timeout)| {
            os(vec!["del".into(), url, key, "--timeout".into(), timeout])
        }),
        (refusing(), tail()).prop_map(|(url, tail)| [os(vec!["check".into(), url]), tail].concat()),
        (refusing(), tail()).prop_map(|(url, tail)| [os(vec!["bench".into(), url]), tail].concat()),
        vec(token(), 0..6),
    ]
}

/// Runs `cachectl` with `args`; the failure says what went wrong.
fn run(args: &[OsString]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cachectl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start cachectl: {err}"))?;
    let started = Instant::now();
    // Read on threads, so that a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|err| err.to_string())? {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {RUN_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let shown = format!("exit {status}\nstdout: {stdout}\nstderr: {stderr}");
    if stderr.contains("panicked") || !matches!(status.code(), Some(0..=2)) {
        return Err(format!("a panic or a crash: {shown}"));
    }
    if status.code() != Some(0) && stderr.trim().is_empty() {
        return Err(format!("an error without a message: {shown}"));
    }
    if stdout.contains(SECRET) || stderr.contains(SECRET) {
        return Err(format!("the password was printed: {shown}"));
    }
    Ok(())
}

/// No argv makes `cachectl` panic, hang, fail silently or print a password.
#[test]
fn arbitrary_arguments_end_in_an_exit_code_and_a_message() {
    let started = Instant::now();
    let corpus: Vec<Vec<String>> = CORPUS
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON list of arguments"))
        .collect();
    for args in &corpus {
        if let Err(failure) = run(&os(args.clone())) {
            panic!("corpus case {args:?}: {failure}");
        }
    }
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    if let Err(failure) = runner.run(&argv(), |args| run(&args).map_err(TestCaseError::fail)) {
        panic!("{failure}");
    }
    eprintln!(
        "fuzz cachectl: {} corpus cases and {} generated cases in {:.1?}",
        corpus.len(),
        cases(),
        started.elapsed()
    );
}
