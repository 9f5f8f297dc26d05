//! `cachectl check` and `cachectl bench` leave a Redis server exactly as they found it:
//! every key of every database, its value and whether it has a TTL, compared before and
//! after runs with and without a key prefix, passing and failing. The server is one the
//! test starts, so that a full dump sees nothing but what the test put there.

mod common;

use std::collections::BTreeMap;

use cache_testserver::REDIS;
use common::{
    assert_refused_as_evicting, cachectl, check_with_a_frozen_server, run_ok, start_server,
    start_server_with, text,
};

/// Every key of every database: `(db, key) -> (value, has a TTL)`.
type Dump = BTreeMap<(i64, Vec<u8>), (Vec<u8>, bool)>;

fn connection(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|err| panic!("cannot connect to the test server {url}: {err}"))
}

fn dump(url: &str) -> Dump {
    let mut connection = connection(url);
    let mut all = Dump::new();
    for db in 0..16_i64 {
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(&mut connection)
            .unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        for key in keys {
            let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
            all.insert((db, key), (value, ttl >= 0));
        }
    }
    all
}

/// Keys of "other applications" in databases 0 and 3: with and without TTL, under the
/// prefix the runs use and beside it, and one that looks like a check's own key.
fn seed(url: &str) {
    let mut connection = connection(url);
    for db in [0_i64, 3] {
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(&mut connection)
            .unwrap();
        for (key, ttl) in [
            ("app:user:1", None),
            ("app:session:9", Some(3600)),
            ("appx:other", None),
            ("other:key", Some(600)),
            ("cachectl-check:not-mine:0:k", None),
        ] {
            let mut command = redis::cmd("SET");
            command.arg(key).arg(format!("value of {key} in {db}"));
            if let Some(seconds) = ttl {
                command.arg("EX").arg(seconds);
            }
            command.query::<()>(&mut connection).unwrap();
        }
    }
}

/// `CONFIG SET name value`.
fn config_set(connection: &mut redis::Connection, name: &str, value: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query::<()>(connection)
        .unwrap_or_else(|err| panic!("CONFIG SET {name} {value}: {err}"));
}

fn assert_unchanged(before: &Dump, url: &str, run: &str) {
    let after = dump(url);
    let added: Vec<_> = after
        .keys()
        .filter(|key| !before.contains_key(*key))
        .collect();
    let removed: Vec<_> = before
        .keys()
        .filter(|key| !after.contains_key(*key))
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && &after == before,
        "{run} changed the server: {} keys added (first: {:?}), {} removed (first: {:?})",
        added.len(),
        added
            .first()
            .map(|(db, key)| (db, String::from_utf8_lossy(key))),
        removed.len(),
        removed
            .first()
            .map(|(db, key)| (db, String::from_utf8_lossy(key))),
    );
}

/// A short `cachectl bench` of `workload` on `target` with a raw baseline, which must pass.
fn bench_with_a_raw_baseline(target: &str, workload: &str, ops: &str) {
    run_ok(&[
        "bench",
        target,
        "--workload",
        workload,
        "--ops",
        ops,
        "--warmup",
        "0s",
        "--concurrency",
        "4",
        "--baseline",
        "raw",
        "--rounds",
        "2",
    ]);
}

/// Passing runs of `check` and `bench`, with and without a prefix, in database 0 and 3.
#[test]
fn passing_runs_leave_every_key_as_it_was() {
    let (_runtime, server) = start_server(&REDIS);
    let url = server.url();
    seed(&url);
    let before = dump(&url);
    assert_eq!(before.len(), 10);

    for target in [
        url.clone(),
        format!("{url}?prefix=app%3A"),
        format!("{url}/3?prefix=app:"),
    ] {
        let output = run_ok(&["check", &target]);
        assert!(output.contains("0 failed"), "{output}");
        assert_unchanged(&before, &url, &format!("cachectl check {target}"));
    }
    for target in [url.clone(), format!("{url}?prefix=app:")] {
        for workload in ["set", "mix", "get-many"] {
            bench_with_a_raw_baseline(&target, workload, "3000");
            assert_unchanged(
                &before,
                &url,
                &format!("cachectl bench {target} {workload}"),
            );
        }
    }
}

/// A bench on a URL with a prefix writes nothing outside it, on its raw side either: a
/// user the server allows keys under `app:` only runs it, with a raw baseline, to the
/// end, and every key is as it was.
#[test]
fn a_bench_under_a_prefix_writes_only_there_on_both_sides() {
    let (_runtime, server) = start_server(&REDIS);
    let url = server.url();
    seed(&url);
    let before = dump(&url);
    let mut admin = connection(&url);
    redis::cmd("ACL")
        .arg(&["SETUSER", "app-only", "on", ">app-pw", "~app:*", "+@all"])
        .query::<()>(&mut admin)
        .unwrap();
    let limited = url.replacen("redis://", "redis://app-only:app-pw@", 1);
    for workload in ["set", "get-many"] {
        bench_with_a_raw_baseline(&format!("{limited}?prefix=app:"), workload, "2000");
        assert_unchanged(
            &before,
            &url,
            &format!("cachectl bench {workload} as a user of app:* only"),
        );
    }
}

/// Checks that fail part-way (the server refuses writes once its memory is full) still
/// remove what they wrote.
#[test]
fn checks_failing_part_way_leave_every_key_as_it_was() {
    let (_runtime, server) = start_server(&REDIS);
    let url = server.url();
    seed(&url);
    let before = dump(&url);
    let mut admin = connection(&url);
    let used: String = redis::cmd("INFO").arg("memory").query(&mut admin).unwrap();
    let used: u64 = used
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse().ok())
        .expect("INFO memory has used_memory");
    // Room for the small values of most checks, not for the largest-value checks.
    config_set(&mut admin, "maxmemory", &(used + (4 << 20)).to_string());
    config_set(&mut admin, "maxmemory-policy", "noeviction");

    let out = cachectl(&["check", &url]);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "the checks were meant to fail:\n{shown}"
    );
    assert!(shown.contains("FAIL"), "{shown}");
    assert!(!shown.contains("clean-up failed"), "{shown}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query::<()>(&mut admin)
        .unwrap();
    assert_unchanged(&before, &url, "a failing cachectl check");
}

/// A server frozen in the middle of a prefixed run fails the checks that were talking to
/// it; their clean-up waits for it and removes everything once it answers again.
#[test]
fn a_server_frozen_mid_run_is_cleaned_once_it_answers() {
    let (_runtime, server) = start_server(&REDIS);
    let url = server.url();
    seed(&url);
    let before = dump(&url);
    check_with_a_frozen_server(&server, &format!("{url}?prefix=app:"));
    assert_unchanged(
        &before,
        &url,
        "a cachectl check interrupted by a frozen server",
    );
}

/// The parameters of a Redis URL reach the server: `prefix` namespaces every key and
/// limits `clear` to them, `db` picks the database, for `cache_url::connect` and for
/// `cachectl set` alike.
#[test]
fn url_parameters_reach_the_server() {
    let (runtime, server) = start_server(&REDIS);
    let url = server.url();
    seed(&url);
    let before = dump(&url);

    runtime.block_on(async {
        let cache = cache_url::connect(&format!("{url}/3?prefix=mine%3A"))
            .await
            .unwrap();
        cache.set("k", "v".into(), None).await.unwrap();
        cache.clear().await.unwrap();
    });
    assert_unchanged(&before, &url, "clear() through a prefixed URL");

    run_ok(&["set", &format!("{url}?prefix=p:&db=3"), "k", "v"]);
    let mut connection = connection(&format!("{url}/3"));
    let stored: Option<String> = redis::cmd("GET").arg("p:k").query(&mut connection).unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("v"),
        "cachectl set did not write p:k in db 3"
    );
    let shown = run_ok(&["get", &format!("{url}/3?key_prefix=p%3A"), "k"]);
    assert_eq!(shown, "v");
    let upper = url.replacen("redis://", "REDIS://", 1);
    assert_eq!(run_ok(&["get", &format!("{upper}/3?prefix=p:"), "k"]), "v");
    run_ok(&["del", &format!("{url}?db=3&prefix=p:"), "k"]);
    assert_unchanged(
        &before,
        &url,
        "cachectl set, get and del with a prefix and a db",
    );

    for bad in [
        "?pool_size=0",
        "?timeout=abc",
        "?colour=red",
        "?prefix=nodelim",
    ] {
        let out = cachectl(&["set", &format!("{url}{bad}"), "k", "v"]);
        let shown = text(&out.stderr);
        assert!(
            !out.status.success() && shown.contains("invalid configuration"),
            "{bad}: {shown}"
        );
    }
    assert_unchanged(&before, &url, "refused URLs");
}

/// A bench whose keys would take more than half of what a server with `maxmemory` and
/// an evicting policy has free is refused before it writes anything; under
/// `noeviction` (writes refused, nothing lost) it runs.
#[test]
fn a_run_that_would_make_the_server_evict_is_refused() {
    let (_runtime, server) = start_server_with(
        &REDIS,
        &["--maxmemory", "16mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let url = server.url();
    seed(&url);
    let before = dump(&url);
    let too_much = [
        "bench",
        &url,
        "--workload",
        "set",
        "--value-size",
        "4096",
        "--keys",
        "4000",
        "--ops",
        "10",
        "--warmup",
        "0s",
    ];
    assert_refused_as_evicting(&too_much, "16.0 MiB");
    assert_unchanged(&before, &url, "a refused bench");

    config_set(&mut connection(&url), "maxmemory-policy", "noeviction");
    let small = [
        "bench",
        &url,
        "--workload",
        "set",
        "--value-size",
        "100",
        "--keys",
        "100",
        "--ops",
        "10",
        "--warmup",
        "0s",
    ];
    let ran = run_ok(&small);
    assert!(ran.contains("cleanup: removed every key written"), "{ran}");
    assert_unchanged(&before, &url, "a bench under noeviction");
}
