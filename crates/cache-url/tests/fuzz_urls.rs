//! Byte-fuzzing of URL handling: arbitrary strings and hostile URLs go to the one parser
//! (`cache_url_core::CacheUrl::parse`, with `redact`, `key_prefix` and the parameter
//! readers) and to `cache_url::connect`. Nothing panics; every refusal is a typed
//! `CacheError` (`Config` for the parser; `Config`, `Unreachable` or `Timeout` from
//! `connect`), a password never shows in an error, a `Debug` output or the redacted
//! URL, and no error message carries a control character decoded from the URL.
//!
//! `connect` only ever reaches `memory://` or port 1 of the loopback interface, which
//! refuses (hosts are never arbitrary text, so no name is looked up), under a per-call
//! bound of 10 s.
//!
//! The committed corpus (`tests/fuzz-corpus/urls.jsonl`, one JSON string per line) runs
//! first, through both; then `CACHE_FUZZ_CASES * 4` generated strings through the parser
//! (2048 by default) and `CACHE_FUZZ_CASES / 2` generated URLs through `connect` (256).

use std::time::{Duration, Instant};

use cache_api::CacheError;
use cache_url_core::{key_prefix, parse_bool, parse_count, parse_duration, redact, CacheUrl};
use proptest::{
    collection::vec,
    prelude::{any, prop_oneof, Just, Strategy},
    sample::select,
    test_runner::{Config as RunnerConfig, TestCaseError, TestRunner},
};

const CORPUS: &str = include_str!("fuzz-corpus/urls.jsonl");
/// Every password of the generated and corpus URLs starts with it.
const SECRET_MARK: &str = "ZqPW";
/// The longest one `connect` may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

fn base_cases() -> u32 {
    std::env::var("CACHE_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(512)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

fn corpus() -> Vec<String> {
    CORPUS
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON string"))
        .collect()
}

/// The passwords `url` may carry: the generated ones are `ZqPW` and 8 more characters.
fn secrets_in(url: &str) -> Vec<&str> {
    url.match_indices(SECRET_MARK)
        .map(|(at, _)| {
            let end = url[at..]
                .char_indices()
                .find(|(_, c)| matches!(c, '@' | '/' | '?' | ','))
                .map_or(url.len(), |(offset, _)| at + offset);
            &url[at..end]
        })
        .filter(|secret| secret.len() > SECRET_MARK.len())
        .collect()
}

/// Fails when an error's message carries a control character (a NUL or an escape
/// sequence decoded from the URL would reach the terminal or the log as it is).
fn printable(url: &str, shown: &str) -> Result<(), String> {
    match shown.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "the error of {url:?} carries the control character {c:?}: {shown:?}"
        )),
        None => Ok(()),
    }
}

/// Fails when `shown` repeats a password of `url`.
fn no_secret(url: &str, what: &str, shown: &str) -> Result<(), String> {
    match secrets_in(url)
        .into_iter()
        .find(|secret| shown.contains(secret))
    {
        Some(secret) => Err(format!(
            "{what} of {url:?} shows the password {secret:?}: {shown}"
        )),
        None => Ok(()),
    }
}

/// The parser and its helpers on one string: no panic, `Config` on refusal, no password
/// shown.
fn parse_one(raw: &str) -> Result<(), String> {
    match CacheUrl::parse(raw) {
        Ok(url) => {
            no_secret(raw, "redacted()", url.redacted())?;
            no_secret(raw, "scrub()", &url.scrub(raw))?;
            let _ = (
                url.hosts().len(),
                url.per_host_urls("redis"),
                url.params().is_empty(),
            );
        }
        Err(err @ CacheError::Config { .. }) => {
            no_secret(raw, "the error", &err.to_string())?;
            printable(raw, &err.to_string())?;
            no_secret(raw, "the error's Debug", &format!("{err:?}"))?;
        }
        Err(other) => return Err(format!("parse({raw:?}): expected Config, got {other:?}")),
    }
    no_secret(raw, "redact()", &redact(raw))?;
    let _ = (
        key_prefix(raw),
        parse_duration(raw),
        parse_count(raw),
        parse_bool(raw),
    );
    Ok(())
}

/// Hostile text for the parser: arbitrary strings, and URL-shaped ones built from the
/// characters that matter to it.
fn raw_url() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z+]{0,14}://[a-zA-Z0-9:@/?=&%#\\[\\],. _-]{0,60}",
        (
            select(vec![
                "memory",
                "redis",
                "redis+cluster",
                "memcache",
                "rediss",
                "REDIS",
                "x"
            ]),
            "[a-zA-Z0-9%]{0,12}",
            "[a-z0-9:\\[\\],.]{0,30}",
            "[a-z_=&%0-9.:;]{0,40}",
        )
            .prop_map(|(scheme, user, hosts, query)| {
                format!("{scheme}://{user}:{SECRET_MARK}x{user}@{hosts}?{query}")
            }),
    ]
}

/// The parser never panics, refuses only with `Config`, and shows no password.
#[test]
fn arbitrary_strings_parse_or_are_refused_with_config() {
    let started = Instant::now();
    for raw in corpus() {
        if let Err(failure) = parse_one(&raw) {
            panic!("corpus case {raw:?}: {failure}");
        }
    }
    let cases = base_cases() * 4;
    let result = runner(cases).run(&raw_url(), |raw| {
        parse_one(&raw).map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "fuzz url parser: {} corpus strings and {cases} generated in {:.1?}",
        corpus().len(),
        started.elapsed()
    );
}

/// URLs that may only reach `memory://` or a refusing loopback port: fixed hosts, hostile
/// user info, paths and queries.
fn connectable_url() -> impl Strategy<Value = String> {
    let scheme = select(vec![
        "memory",
        "MEMORY",
        "redis",
        "redis+cluster",
        "redis+sentinel",
        "memcache",
        "rediss",
        "nope",
    ]);
    let user = prop_oneof![
        select(vec!["", "user@", ":@", "@"]).prop_map(str::to_owned),
        "[a-z%]{0,6}".prop_map(|user| format!("{user}:{SECRET_MARK}{user}x@")),
    ];
    let hosts = select(vec![
        "127.0.0.1:1",
        "[::1]:1",
        "127.0.0.1:1,127.0.0.1:1",
        "127.0.0.1:99999",
        "[::1",
        "127.0.0.1:1:2",
        "",
    ]);
    let key = select(vec![
        "prefix",
        "key_prefix",
        "timeout",
        "connect_timeout",
        "pool_size",
        "db",
        "mode",
        "max_value_size",
        "max_capacity_bytes",
        "namespace_refresh",
        "get_many_fail_open",
        "deadline",
        "trace",
        "metrics",
        "retry",
        "",
    ]);
    // Numbers up to 22 digits with units, years and days included: durations past what
    // the clock can add to an instant must not panic.
    let value = prop_oneof![any::<String>(), "[0-9]{0,22}(ms|s|%|:|\\.5|y|days)?"];
    let pair = (key, value).prop_map(|(key, value)| format!("{key}={value}"));
    (
        scheme,
        user,
        hosts,
        "(/[0-9a-z%]{0,5})?",
        // Half without parameters, so that more URLs get as far as connecting.
        prop_oneof![Just(Vec::new()), vec(pair, 1..4)],
    )
        .prop_map(|(scheme, user, hosts, path, pairs)| {
            let hosts = if scheme.eq_ignore_ascii_case("memory") {
                ""
            } else {
                hosts
            };
            format!("{scheme}://{user}{hosts}{path}?{}", pairs.join("&"))
        })
}

/// `connect` on one URL: a cache that answers, or a typed refusal; no password shown.
/// Returns how it ended, for the tally.
async fn connect_one(url: &str) -> Result<&'static str, String> {
    let connected = tokio::time::timeout(CONNECT_LIMIT, cache_url::connect(url))
        .await
        .map_err(|_| format!("connect({url:?}) still running after {CONNECT_LIMIT:?}"))?;
    match connected {
        Ok(cache) => {
            let read = tokio::time::timeout(CONNECT_LIMIT, cache.get("k"))
                .await
                .map_err(|_| format!("get on {url:?} hung"))?;
            if let Err(err) = read {
                no_secret(url, "the error of get", &format!("{err} {err:?}"))?;
                printable(url, &err.to_string())?;
            }
            Ok("connected")
        }
        Err(
            err @ (CacheError::Config { .. }
            | CacheError::Unreachable { .. }
            | CacheError::Timeout { .. }),
        ) => {
            no_secret(url, "the error", &format!("{err} {err:?}"))?;
            printable(url, &err.to_string())?;
            Ok(match err {
                CacheError::Config { .. } => "Config",
                CacheError::Unreachable { .. } => "Unreachable",
                _ => "Timeout",
            })
        }
        Err(other) => Err(format!(
            "connect({url:?}): expected Config, Unreachable or Timeout, got {other:?}"
        )),
    }
}

/// `connect` never panics or hangs, refuses with a typed error, and shows no password.
#[test]
fn arbitrary_urls_connect_or_are_refused_with_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<&str, usize>::new());
    let count = |kind: &'static str| *tally.lock().unwrap().entry(kind).or_default() += 1;
    for raw in corpus() {
        match runtime.block_on(connect_one(&raw)) {
            Ok(kind) => count(kind),
            Err(failure) => panic!("corpus case {raw:?}: {failure}"),
        }
    }
    let cases = base_cases() / 2;
    let result = runner(cases).run(&connectable_url(), |url| {
        runtime
            .block_on(connect_one(&url))
            .map(count)
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "fuzz connect: {} corpus strings and {cases} generated URLs in {:.1?}, schemes {:?}, \
         outcomes {:?}",
        corpus().len(),
        started.elapsed(),
        cache_url::SCHEMES,
        tally.lock().unwrap()
    );
}
