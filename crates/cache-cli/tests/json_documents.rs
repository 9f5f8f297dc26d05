//! The `--json` documents of `cachectl check` and `cachectl bench` carry what a reader needs
//! to interpret them later: schema, build profile, timestamp, and only the fields that apply.

mod common;

use common::{cachectl, text};
use serde_json::Value;

fn json(args: &[&str]) -> (Value, String) {
    let out = cachectl(args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", text(&out.stdout));
    let document = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", text(&out.stdout)));
    (document, stderr)
}

/// The fields every document begins with.
fn assert_header(document: &Value, command: &str) {
    assert_eq!(document["schema"], 1, "{document:#}");
    assert_eq!(document["command"], command, "{document:#}");
    assert_eq!(
        document["cachectl_version"],
        env!("CARGO_PKG_VERSION"),
        "{document:#}"
    );
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    assert_eq!(document["build_profile"], profile, "{document:#}");
    let timestamp = document["timestamp"].as_str().expect("a timestamp");
    assert!(
        humantime::parse_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
        "not RFC 3339 UTC: {timestamp}"
    );
}

#[test]
fn check_names_the_backend_and_its_declared_limits() {
    let (document, _) = json(&[
        "check",
        "memory://?max_value_size=2048",
        "--filter",
        "test_set_and_get_value_without_ttl",
        "--json",
    ]);
    assert_header(&document, "check");
    assert_eq!(document["backend"], "memory", "{document:#}");
    assert_eq!(document["url"], "memory://?max_value_size=2048");
    assert_eq!(
        document["limits"]["ttl_granularity_ms"], 1.0,
        "{document:#}"
    );
    assert_eq!(document["limits"]["max_value_size"], 2048, "{document:#}");
    assert!(
        document["limits"]["max_native_key_len"].is_null(),
        "{document:#}"
    );
    assert_eq!(document["passed"], 1, "{document:#}");
}

#[test]
fn check_text_report_starts_with_backend_url_and_limits() {
    let out = cachectl(&["check", "--filter", "test_get_non_existent_key"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let first = stdout.lines().next().unwrap_or_default();
    for expected in [
        "memory://",
        "(memory)",
        "ttl granularity 1ms",
        "largest value",
    ] {
        assert!(first.contains(expected), "{expected:?} not in {first:?}");
    }
}

#[test]
fn bench_reports_batch_only_for_get_many_and_a_structured_cleanup() {
    let common = ["--json", "--ops", "200", "--warmup", "0s", "--keys", "50"];
    let (get, stderr) = json(&[&["bench", "memory://", "--workload", "get"], &common[..]].concat());
    assert_header(&get, "bench");
    assert!(get.get("batch").is_none(), "{get:#}");
    assert_eq!(get["cleanup"]["removed_keys"], 50, "{get:#}");
    assert!(get["cleanup"]["left_prefix"].is_null(), "{get:#}");
    assert!(get["cleanup"].get("error").is_none(), "{get:#}");
    assert_eq!(
        stderr.contains("warning: this is a debug build"),
        cfg!(debug_assertions),
        "{stderr}"
    );

    let (many, _) = json(
        &[
            &[
                "bench",
                "memory://",
                "--workload",
                "get-many",
                "--batch",
                "7",
            ],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!(many["batch"], 7, "{many:#}");
}

#[test]
fn every_help_lists_the_url_schemes() {
    for command in [
        &["--help"][..],
        &["check", "--help"],
        &["bench", "--help"],
        &["get", "--help"],
        &["set", "--help"],
        &["del", "--help"],
    ] {
        let out = cachectl(command);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{command:?}: {}", text(&out.stderr));
        for scheme in ["memory://", "redis://", "redis+cluster://", "memcache://"] {
            assert!(
                stdout.contains(scheme),
                "{command:?} --help lacks {scheme}:\n{stdout}"
            );
        }
    }
}
