//! `cachectl check` and `cachectl bench` leave a memcached server exactly as they found
//! it: every item's line of `lru_crawler metadump` (key, expiry, last access, cas,
//! size...) compared before and after runs with and without a key prefix, passing and
//! failing. The server is one the test starts, so that a full dump sees nothing but what
//! the test put there.

mod common;

use std::collections::BTreeSet;

use cache_testserver::{memcached_exchange, memcached_items, MEMCACHED};
use common::{
    assert_refused_as_evicting, check_with_a_frozen_server, run_ok, start_server, start_server_with,
};

/// Every item the server holds, one metadump line each.
fn dump(port: u16) -> BTreeSet<String> {
    memcached_items(&format!("127.0.0.1:{port}"))
        .iter()
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

/// Items of "other applications": with and without TTL, under the prefix the runs use
/// and beside it, and ones that look like a check's or a namespace's own keys.
fn seed(port: u16) {
    for (key, ttl) in [
        ("app:user:1", 0),
        ("app:session:9", 3600),
        ("appx:other", 0),
        ("app:{gen", 0),
        ("other:key", 600),
        ("cachectl-check:not-mine:0:k", 0),
        ("cachectl-check:not-mine:0:{gen}", 0),
    ] {
        let value = format!("value of {key}");
        let answer = memcached_exchange(
            &format!("127.0.0.1:{port}"),
            &format!("set {key} 0 {ttl} {}\r\n{value}", value.len()),
            &["STORED"],
        );
        assert_eq!(answer, [b"STORED"], "seeding {key}");
    }
}

fn assert_unchanged(before: &BTreeSet<String>, port: u16, run: &str) {
    let after = dump(port);
    let added: Vec<&String> = after.difference(before).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "{run} changed the server: {} items added (first: {:?}), {} removed or changed (first: {:?})",
        added.len(),
        added.first(),
        removed.len(),
        removed.first(),
    );
}

/// Passing runs of `check` (with and without a prefix) and `bench` leave every item as it
/// was, down to its expiry, size and last access time.
#[test]
fn passing_runs_leave_every_item_as_it_was() {
    let (_runtime, server) = start_server(&MEMCACHED);
    let url = server.url();
    let port = server.port();
    seed(port);
    let before = dump(port);
    assert_eq!(before.len(), 7, "{before:#?}");

    for target in [url.clone(), format!("{url}?prefix=app%3A")] {
        let output = run_ok(&["check", &target]);
        assert!(output.contains("0 failed"), "{output}");
        assert_unchanged(&before, port, &format!("cachectl check {target}"));
    }
    run_ok(&["bench", &url, "--duration", "2s"]);
    assert_unchanged(&before, port, "cachectl bench --duration 2s");
    let prefixed = format!("{url}?prefix=app%3A");
    for workload in ["set", "get-many"] {
        run_ok(&[
            "bench",
            &prefixed,
            "--workload",
            workload,
            "--ops",
            "3000",
            "--warmup",
            "0s",
            "--baseline",
            "raw",
            "--rounds",
            "2",
        ]);
        assert_unchanged(
            &before,
            port,
            &format!("cachectl bench {prefixed} --workload {workload}"),
        );
    }
}

/// A server frozen in the middle of a prefixed run fails the checks that were
/// talking to it; their clean-up waits for it and removes everything once it answers.
#[test]
fn a_server_frozen_mid_run_is_cleaned_once_it_answers() {
    let (_runtime, server) = start_server(&MEMCACHED);
    let url = server.url();
    let port = server.port();
    seed(port);
    let before = dump(port);
    check_with_a_frozen_server(&server, &url);
    check_with_a_frozen_server(&server, &format!("{url}?prefix=app:"));
    assert_unchanged(
        &before,
        port,
        "a cachectl check interrupted by a frozen server",
    );
}

/// A bench whose keys would take more than half of what the server has free is refused
/// before it writes anything (a full memcached evicts other applications' items to make
/// room), saying how much it writes and how much is free; `--allow-eviction` runs it.
#[test]
fn a_run_that_would_make_the_server_evict_is_refused_unless_allowed() {
    let (_runtime, server) = start_server_with(&MEMCACHED, &["-m", "8"]);
    let url = server.url();
    let port = server.port();
    seed(port);
    let before = dump(port);
    // 2,000 values of 8 KiB: about 20 MiB, where 8 MiB is all the server has.
    let too_much = [
        "bench",
        &url,
        "--workload",
        "set",
        "--value-size",
        "8192",
        "--keys",
        "2000",
        "--ops",
        "10",
        "--warmup",
        "0s",
    ];
    assert_refused_as_evicting(&too_much, "8.0 MiB");
    assert_unchanged(&before, port, "a refused bench");
    let allowed = run_ok(&[&too_much[..], &["--allow-eviction"]].concat());
    assert!(
        allowed.contains("cleanup: removed every key written"),
        "{allowed}"
    );
}
