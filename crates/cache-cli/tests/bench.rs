//! `cachectl bench` as a user runs it, on the in-memory backend, on a Redis Cluster of
//! the cache-redis fixture, on servers of the tests' own and on TLS servers of this
//! process: short runs bounded by an operation count, whose output must carry the
//! numbers, and runs stopped by Ctrl-C. Speed itself is never asserted.

mod common;

use std::time::Duration;

use cache_redis::testing::{ClusterSpec, RedisCluster};
use cache_testserver::{MEMCACHED, REDIS};
use common::{cachectl, start_server, text, Background};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let out = cachectl(args);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", text(&out.stdout)))
}

/// Runs `cachectl` from an async test, off its runtime's threads.
async fn cachectl_off_runtime(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        cachectl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("cachectl ran")
}

fn number(value: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(value, |value, name| &value[name])
        .as_f64()
        .unwrap_or_else(|| panic!("no number at {path} in {value:#}"))
}

/// `cachectl args` exits 2 (unusable settings) saying `said`; its standard error.
#[track_caller]
fn assert_refused(args: &[&str], said: &str) -> String {
    let out = cachectl(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(said), "{args:?}: {stderr}");
    stderr
}

/// Both sides of a `--baseline raw` report ran `ops` operations without an error.
#[track_caller]
fn assert_both_ran(report: &Value, ops: f64, context: &str) {
    for side in ["adapter", "raw"] {
        assert_eq!(
            number(report, &format!("{side}.ops")),
            ops,
            "{context}: {report:#}"
        );
        assert_eq!(
            number(report, &format!("{side}.errors")),
            0.0,
            "{context}: {report:#}"
        );
    }
}

/// The table names both sides and prints throughput, percentiles and the ratio.
#[test]
fn table_has_the_numbers() {
    let out = cachectl(&[
        "bench",
        "memory://",
        "--ops",
        "4000",
        "--warmup",
        "0s",
        "--concurrency",
        "4",
        "--baseline",
        "raw",
        "--rounds",
        "2",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for heading in ["ops/s", "keys/s", "p50 us", "p99 us", "p99.9 us", "hit %"] {
        assert!(stdout.contains(heading), "no {heading:?} column:\n{stdout}");
    }
    for side in ["adapter ", "raw ", "adapter/raw "] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(side))
            .unwrap_or_else(|| panic!("no {side:?} line:\n{stdout}"));
        let first: f64 = line[side.len()..]
            .split_whitespace()
            .next()
            .and_then(|figure| figure.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("no figure on {line:?}"));
        assert!(first > 0.0, "{line}");
    }
    assert!(
        stdout.contains("cleanup: removed every key written"),
        "{stdout}"
    );
}

/// `--json` prints one document whose counts match the operation budget exactly.
#[test]
fn json_counts_match_the_budget() {
    let report = json(&[
        "bench",
        "memory://",
        "--json",
        "--ops",
        "3000",
        "--warmup",
        "0s",
        "--concurrency",
        "8",
        "--baseline",
        "raw",
        "--rounds",
        "3",
        "--workload",
        "mix",
        "--value-size",
        "32",
        "--keys",
        "500",
    ]);
    assert_eq!(report["workload"], "mix");
    assert_eq!(report["backend"], "memory");
    assert_both_ran(&report, 3000.0, "mix");
    for side in ["adapter", "raw"] {
        // 90 % reads of stored keys: every read hits.
        assert_eq!(
            number(&report, &format!("{side}.misses")),
            0.0,
            "{report:#}"
        );
        assert!(
            number(&report, &format!("{side}.hits")) > 2000.0,
            "{report:#}"
        );
        let p50 = number(&report, &format!("{side}.p50_us"));
        let p99 = number(&report, &format!("{side}.p99_us"));
        assert!(p50 > 0.0 && p99 >= p50, "{report:#}");
        assert!(number(&report, &format!("{side}.ops_per_sec")) > 0.0);
    }
    assert!(number(&report, "ratio.throughput") > 0.0, "{report:#}");
    assert!(
        number(&report, "ratio.throughput_median") > 0.0,
        "{report:#}"
    );
    let rounds = report["ratio"]["throughput_rounds"]
        .as_array()
        .expect("a ratio per round");
    assert_eq!(rounds.len(), 3, "{report:#}");
    assert!(number(&report, "ratio.p99") > 0.0, "{report:#}");
    assert_eq!(report["cleanup"]["removed_keys"], 500, "{report:#}");
    assert!(report["cleanup"]["left_prefix"].is_null(), "{report:#}");
    assert!(
        report.get("batch").is_none(),
        "no batch for mix: {report:#}"
    );
}

/// A get-many operation reads `--batch` keys: keys/s is the batch times ops/s.
#[test]
fn get_many_counts_keys() {
    let report = json(&[
        "bench",
        "memory://",
        "--json",
        "--ops",
        "200",
        "--warmup",
        "0s",
        "--workload",
        "get-many",
        "--batch",
        "25",
        "--keys",
        "100",
    ]);
    assert_eq!(number(&report, "adapter.ops"), 200.0);
    assert_eq!(number(&report, "adapter.keys"), 5000.0);
    assert_eq!(number(&report, "adapter.hits"), 5000.0);
    assert!(
        report.get("raw").is_none(),
        "no baseline was asked for: {report:#}"
    );
}

/// A miss workload misses, and sampling records the process's memory.
#[test]
fn get_miss_misses_and_samples_are_taken() {
    let report = json(&[
        "bench",
        "memory://",
        "--json",
        "--ops",
        "500",
        "--warmup",
        "0s",
        "--workload",
        "get-miss",
        "--sample-every",
        "1s",
    ]);
    assert_eq!(number(&report, "adapter.misses"), 500.0);
    assert_eq!(number(&report, "adapter.hits"), 0.0);
    let samples = report["samples"].as_array().expect("samples");
    assert!(!samples.is_empty());
    assert!(
        samples
            .iter()
            .all(|sample| sample["rss_kib"].as_u64() > Some(0)),
        "{report:#}"
    );
}

/// `--footprint` stores the entries in a process per side and reports bytes per entry.
#[test]
fn footprint_reports_bytes_per_entry() {
    // Enough entries (10 MB of values) that what the allocator held before the first one
    // (pages it reuses without growing the resident set, a megabyte or two) moves the
    // figure by a few bytes per entry: with 20,000 a loaded machine once read 87 bytes.
    let report = json(&[
        "bench",
        "memory://",
        "--json",
        "--footprint",
        "100000",
        "--baseline",
        "raw",
    ]);
    for side in ["adapter", "raw"] {
        assert_eq!(
            number(&report, &format!("{side}.live_entries")),
            100_000.0,
            "{report:#}"
        );
        // The value alone is 100 bytes; the figure is a measurement, so only its sign
        // and rough size are checked.
        let per_entry = number(&report, &format!("{side}.bytes_per_entry"));
        assert!(per_entry > 100.0 && per_entry < 10_000.0, "{report:#}");
    }
}

/// A server that cannot be reached is a usable error, exit code 2, not a hang.
#[test]
fn unreachable_server_exits_2() {
    let out = cachectl(&[
        "bench",
        "redis://127.0.0.1:1",
        "--ops",
        "10",
        "--timeout",
        "2s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("cachectl bench:"),
        "{}",
        text(&out.stderr)
    );
}

/// Redis-only settings are refused for other backends.
#[test]
fn pooled_is_refused_outside_redis() {
    let out = cachectl(&["bench", "memory://", "--ops", "10", "--pooled", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("redis:// only"),
        "{}",
        text(&out.stderr)
    );
}

/// A value over the largest the backend takes is refused before any is made, for a
/// load run and for a footprint, even one no machine could allocate.
#[test]
fn values_over_the_backends_limit_are_refused() {
    for args in [
        &[
            "bench",
            "memory://?max_value_size=4096",
            "--ops",
            "10",
            "--value-size",
            "4097",
        ][..],
        &[
            "bench",
            "memory://",
            "--ops",
            "10",
            "--value-size",
            "99999999999999",
        ],
        &[
            "bench",
            "memory://",
            "--footprint",
            "10",
            "--value-size",
            "99999999999999",
        ],
    ] {
        assert_refused(args, "is over the largest the backend takes");
    }
    let at_the_limit = cachectl(&[
        "bench",
        "memory://?max_value_size=4096",
        "--ops",
        "10",
        "--keys",
        "10",
        "--value-size",
        "4096",
    ]);
    assert!(
        at_the_limit.status.success(),
        "{}",
        text(&at_the_limit.stderr)
    );
}

/// Against a Redis Cluster, both sides of every workload run without an error, the
/// adapter/raw ratio is reported and the cluster's password never shows.
#[tokio::test]
async fn cluster_runs_both_sides() {
    const PASSWORD: &str = "bench-s3cret";
    // Three masters without replicas: the run needs no failover, only the slots spread.
    let spec = ClusterSpec::new().replicas_per_master(0).password(PASSWORD);
    let cluster = RedisCluster::start_with(&spec)
        .await
        .unwrap_or_else(|err| panic!("cannot start a redis cluster: {err}"));
    let url = cluster.url();
    for workload in ["get", "set", "mix", "get-many"] {
        let args = [
            "bench",
            url.as_str(),
            "--json",
            "--baseline",
            "raw",
            "--workload",
            workload,
            "--ops",
            "600",
            "--rounds",
            "2",
            "--warmup",
            "0s",
            "--concurrency",
            "8",
            "--keys",
            "300",
            "--batch",
            "20",
        ];
        let out = cachectl_off_runtime(&args).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{workload}: {stdout}{stderr}");
        assert!(
            !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
            "{workload}: the password shows: {stdout}{stderr}"
        );
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}):\n{stdout}"));
        assert_eq!(report["backend"], "redis", "{report:#}");
        assert!(
            report["mode"]
                .as_str()
                .is_some_and(|mode| mode.starts_with("cluster")),
            "{report:#}"
        );
        assert_both_ran(&report, 600.0, workload);
        for side in ["adapter", "raw"] {
            if workload != "set" {
                assert_eq!(
                    number(&report, &format!("{side}.misses")),
                    0.0,
                    "{report:#}"
                );
            }
        }
        assert!(number(&report, "ratio.throughput") > 0.0, "{report:#}");
        assert!(
            number(&report, "ratio.throughput_median") > 0.0,
            "{report:#}"
        );
        assert_eq!(report["cleanup"]["removed_keys"], 300, "{report:#}");
        assert!(report["cleanup"]["left_prefix"].is_null(), "{report:#}");
    }
}

/// `--pooled` and `--connections` are refused for a cluster, before connecting.
#[test]
fn pooled_is_refused_on_a_cluster() {
    for extra in [["--pooled", "4"], ["--connections", "2"]] {
        let mut args = vec![
            "bench",
            "redis+cluster://127.0.0.1:1,127.0.0.1:2",
            "--ops",
            "10",
        ];
        args.extend(extra);
        let out = cachectl(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("do not apply to a redis cluster"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// `--threads` sets the runtime the run reports: 1 is a single thread, 3 three workers.
#[test]
fn threads_set_the_runtime() {
    for threads in [1, 3] {
        let threads_arg = threads.to_string();
        let report = json(&[
            "bench",
            "memory://",
            "--ops",
            "500",
            "--warmup",
            "0s",
            "--concurrency",
            "4",
            "--threads",
            &threads_arg,
            "--baseline",
            "raw",
            "--rounds",
            "2",
            "--json",
        ]);
        assert_eq!(number(&report, "threads"), f64::from(threads), "{report:#}");
        assert_both_ran(&report, 500.0, &format!("{threads} threads"));
    }
}

/// URLs the raw clients do not speak (TLS here) are measured through the adapter alone,
/// with every key removed after; `--baseline raw` on them is refused before connecting,
/// saying why.
#[tokio::test]
async fn tls_urls_are_measured_through_the_adapter_alone() {
    use cache_testserver::tls::TlsPair;

    let redis = TlsPair::redis().await;
    let memcached = TlsPair::memcached().await;
    let urls = [
        (
            format!("{}?tls_ca={}", redis.server.url(), redis.certs.ca.display()),
            "redis",
            "rediss, multiplexed(1)",
        ),
        (
            format!(
                "{}?tls_ca={}",
                memcached.server.url(),
                memcached.certs.ca.display()
            ),
            "memcached",
            "memcaches",
        ),
    ];
    for (url, backend, mode) in urls {
        let args = [
            "bench",
            &url,
            "--json",
            "--workload",
            "mix",
            "--ops",
            "500",
            "--warmup",
            "0s",
            "--concurrency",
            "4",
            "--keys",
            "100",
        ];
        let out = cachectl_off_runtime(&args).await;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{url}: {stdout}{}", text(&out.stderr));
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}):\n{stdout}"));
        assert_eq!(report["backend"], backend, "{report:#}");
        assert_eq!(report["mode"], mode, "{report:#}");
        assert_eq!(number(&report, "adapter.ops"), 500.0, "{report:#}");
        assert_eq!(number(&report, "adapter.errors"), 0.0, "{report:#}");
        assert!(report["raw"].is_null(), "{report:#}");
        assert_eq!(report["cleanup"]["removed_keys"], 100, "{report:#}");

        let refused =
            cachectl_off_runtime(&["bench", &url, "--baseline", "raw", "--ops", "10"]).await;
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
        assert!(
            text(&refused.stderr).contains("--baseline raw needs"),
            "{}",
            text(&refused.stderr)
        );
    }
}

/// Lengths past thirty days are refused with a message naming the flag, never a panic,
/// and a timeout too long for the clock is no bound: the run goes ahead.
#[test]
fn lengths_past_thirty_days_are_refused_and_huge_timeouts_are_no_bound() {
    for (flag, value) in [
        ("--warmup", "584542046090y"),
        ("--duration", "31days"),
        ("--sample-every", "18446744073709551615s"),
    ] {
        let out = cachectl(&["bench", "memory://", "--ops", "10", flag, value]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        let name = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            stderr.contains(&name) && stderr.contains("at most 30 days"),
            "{flag} {value}: {stderr}"
        );
    }
    let out = cachectl(&[
        "bench",
        "memory://?deadline=584542046090y",
        "--ops",
        "10",
        "--keys",
        "10",
        "--warmup",
        "0s",
        "--timeout",
        "584542046090y",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The layer parameters `cache_url::connect` takes on every scheme (`retry`, `deadline`,
/// `trace`, `metrics`) are taken by `bench` too: with and without the raw baseline, and
/// with the connection models `--pooled` and `--connections` set on redis.
#[test]
fn layer_parameters_are_taken_on_every_scheme() {
    let (_redis_runtime, redis) = start_server(&REDIS);
    let (_memcached_runtime, memcached) = start_server(&MEMCACHED);
    let layers = "retry=2&deadline=2s&trace=true&metrics=true";
    let redis_url = format!("{}?{layers}", redis.url());
    // Each URL, the flags beside it, and the connection model the report names (the
    // adapter's and the raw baseline's); the flags win over the URL's own model.
    let runs: [(String, &[&str], &str); 9] = [
        (format!("memory://?{layers}"), &[], ""),
        (format!("{}?{layers}", memcached.url()), &[], ""),
        (redis_url.clone(), &[], "multiplexed(1)"),
        (redis_url.clone(), &["--pooled", "2"], "pooled(2)"),
        (redis_url.clone(), &["--connections", "2"], "multiplexed(2)"),
        (
            format!("{redis_url}&mode=pooled&pool_size=3"),
            &["--connections", "2"],
            "multiplexed(2)",
        ),
        (
            format!("{redis_url}&mode=pooled&pool_size=3"),
            &[],
            "pooled(3)",
        ),
        (format!("{redis_url}&pool_size=2"), &[], "multiplexed(2)"),
        (
            format!("{}?trace=true", redis.url()),
            &["--pooled", "2"],
            "pooled(2)",
        ),
    ];
    for (url, extra, model) in runs {
        let mut args = vec![
            "bench",
            &url,
            "--json",
            "--ops",
            "200",
            "--warmup",
            "0s",
            "--keys",
            "50",
            "--baseline",
            "raw",
            "--rounds",
            "1",
        ];
        args.extend(extra);
        let report = json(&args);
        assert_both_ran(&report, 200.0, &format!("{url} {extra:?}"));
        assert_eq!(
            report["cleanup"]["removed_keys"], 50,
            "{url} {extra:?}: {report:#}"
        );
        if !model.is_empty() {
            assert_eq!(report["mode"], model, "{url} {extra:?}: {report:#}");
        }
    }
    // A malformed layer parameter is refused as a configuration error, naming it.
    let out = cachectl(&[
        "bench",
        &format!("{}?trace=yes", redis.url()),
        "--ops",
        "10",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("trace"), "{stderr}");
}

/// Ctrl-C while the keys are being written stops the writing at once: the run removes
/// the keys written so far (not every key it meant to write), measures nothing, says it
/// was interrupted and exits 130.
#[test]
fn ctrl_c_while_writing_the_keys_stops_and_removes_those_written() {
    const KEYS: usize = 1_000_000;
    let keys = KEYS.to_string();
    // Into the writing of the keys, which takes seconds for a million of them.
    let run = Background::catching_ctrl_c(
        &long_memory_run(&["--keys", &keys]),
        Duration::from_millis(500),
    );
    let ended = run.interrupt_and_finish(Duration::from_secs(30), "Ctrl-C while writing");
    assert_eq!(ended.code, Some(130), "{}{}", ended.stdout, ended.stderr);
    let report: Value = serde_json::from_str(&ended.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", ended.stdout));
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert_eq!(
        number(&report, "adapter.ops"),
        0.0,
        "nothing is measured: {report:#}"
    );
    let removed = number(&report, "cleanup.removed_keys");
    assert!(
        removed < KEYS as f64,
        "the writing went on to the last key after Ctrl-C: {report:#}"
    );
    assert!(report["cleanup"]["left_prefix"].is_null(), "{report:#}");
    assert!(
        ended.took < Duration::from_secs(10),
        "ended {:?} after Ctrl-C",
        ended.took
    );
}

/// Ctrl-C reaches a run of the in-memory backend, whose tasks never wait, while it
/// measures; a second Ctrl-C, while the run removes its keys, ends the process at once,
/// with exit code 130 and no report.
#[test]
fn ctrl_c_stops_a_measuring_run_and_a_second_one_quits_at_once() {
    // The set workload writes keys at random while it measures, so that removing them
    // after (every key it may have written) takes a while.
    let mut run = Background::catching_ctrl_c(
        &long_memory_run(&["--workload", "set", "--keys", "1000000"]),
        Duration::from_millis(1500),
    );
    run.interrupt();
    assert!(
        run.wait_for_stderr("interrupted: stopping", Duration::from_secs(10)),
        "the first Ctrl-C was not taken within 10 s"
    );
    let ended = run.interrupt_and_finish(Duration::from_secs(30), "a second Ctrl-C");
    assert_eq!(ended.code, Some(130), "{}{}", ended.stdout, ended.stderr);
    assert!(
        ended.took < Duration::from_secs(2),
        "ended {:?} after the second Ctrl-C",
        ended.took
    );
    assert!(
        ended.stdout.is_empty(),
        "the run went on to its report:\n{}",
        ended.stdout
    );
}

/// Ctrl-C while connecting to a server that takes the connection and never answers
/// ends the run at once, exit code 130, not once the connect timeout is over.
#[test]
fn ctrl_c_while_connecting_exits_130_at_once() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // The connections are accepted by the kernel and held in the backlog, never read.
    for scheme in ["redis", "memcache", "redis+cluster"] {
        let url = format!("{scheme}://127.0.0.1:{port}");
        let run = Background::catching_ctrl_c(
            &["bench", &url, "--timeout", "60s", "--ops", "10"],
            Duration::from_millis(300),
        );
        let ended = run.interrupt_and_finish(Duration::from_secs(30), &url);
        assert_eq!(
            ended.code,
            Some(130),
            "{url}: {}{}",
            ended.stdout,
            ended.stderr
        );
        assert!(
            ended.took < Duration::from_secs(5),
            "{url}: ended {:?} after Ctrl-C",
            ended.took
        );
        assert!(
            ended
                .stderr
                .contains("interrupted before any key was written"),
            "{url}: {}",
            ended.stderr
        );
    }
    drop(silent);
}

/// The arguments of a minute-long `--json` run of the in-memory backend with 8-byte
/// values, and `extra`: a run that the tests interrupt long before its end.
fn long_memory_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "bench",
        "memory://",
        "--json",
        "--value-size",
        "8",
        "--duration",
        "60s",
        "--warmup",
        "0s",
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs that cannot be made as asked are refused before anything is made: more keys
/// than a run holds (the whole list is made up front), a get-many batch larger than
/// the keys it reads from, and fewer operations than rounds to split them among.
#[test]
fn runs_that_cannot_be_made_as_asked_are_refused() {
    for (args, said) in [
        (
            &[
                "bench",
                "memory://",
                "--keys",
                "4294967295",
                "--warmup",
                "0s",
            ][..],
            "4294967295 is not in 1..=10000000",
        ),
        (
            &[
                "bench",
                "memory://",
                "--workload",
                "get-many",
                "--batch",
                "100",
                "--keys",
                "5",
            ],
            "a batch of 100 keys is more than the 5 keys of the run",
        ),
        (
            &[
                "bench",
                "memory://",
                "--baseline",
                "raw",
                "--ops",
                "3",
                "--rounds",
                "100",
            ],
            "3 operations cannot be split among 100 rounds",
        ),
    ] {
        assert_refused(args, said);
    }
}

/// `--ops` is split among the rounds exactly: each side runs as many as asked.
#[test]
fn operations_are_split_among_rounds_exactly() {
    let report = json(&[
        "bench",
        "memory://",
        "--json",
        "--baseline",
        "raw",
        "--ops",
        "1001",
        "--rounds",
        "4",
        "--warmup",
        "0s",
        "--keys",
        "50",
    ]);
    assert_both_ran(&report, 1001.0, "1001 operations in 4 rounds");
}

/// An unknown URL parameter is refused naming every parameter the URL takes, the
/// layers' included, whichever backend the URL names.
#[test]
fn unknown_url_parameters_are_refused_naming_the_layers_too() {
    for url in [
        "memory://?foo=1",
        "redis://127.0.0.1:1?foo=1",
        "memcache://127.0.0.1:1?foo=1",
    ] {
        let stderr = assert_refused(&["bench", url, "--ops", "1"], "\"foo\"");
        assert!(
            stderr.contains("the layers' retry, deadline"),
            "{url}: {stderr}"
        );
    }
}
