//! The counters on the `metrics` facade, under the documented names and labels, count
//! exactly what happened. One test: the recorder is global to this test binary.

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use cache_api::{Bytes, Cache};
use cache_typed::{telemetry, EntryOptions, JsonCodec, TypedCache};
use common::{user, Runs, User};
use futures::future::join_all;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// Runs, joins, stale values served and decode failures are counted once each, with
/// the `backend` label the cache was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_runs_joins_stale_values_and_decode_failures() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let backend = common::memory();
    let typed: TypedCache<User, JsonCodec> = TypedCache::builder(Arc::clone(&backend), JsonCodec)
        .label("users")
        .build();
    // Ten callers, one run, nine joins.
    let runs = Runs::default();
    let callers = (0..10).map(|_| {
        let factory = runs.factory(Duration::from_millis(50), user(1, "a"));
        typed.get_or_set("user:1", typed.options(), factory)
    });
    for answer in join_all(callers).await {
        answer.unwrap();
    }
    // A failing factory with a stale value under fail-safe: one stale value served.
    let options =
        EntryOptions::default().fail_safe(Duration::from_secs(60), Duration::from_secs(60));
    typed
        .set_with(
            "user:2",
            &user(2, "old"),
            &options.ttl(Duration::from_millis(10)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let entry = typed
        .try_get_or_set_entry("user:2", options, || async {
            Err::<User, _>(std::io::Error::other("down"))
        })
        .await
        .unwrap();
    assert!(entry.stale);
    // A value another writer stored: one decode failure.
    backend
        .set("user:3", Bytes::from_static(b"plain"), None)
        .await
        .unwrap();
    assert_eq!(typed.get("user:3").await.unwrap(), None);

    let mut counters = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        assert!(
            key.labels()
                .any(|l| l.key() == "backend" && l.value() == "users"),
            "{} lacks the backend label",
            key.name()
        );
        let mut labels: Vec<String> = key
            .labels()
            .filter(|l| l.key() != "backend")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        if let DebugValue::Counter(count) = value {
            counters.insert(format!("{}{{{}}}", key.name(), labels.join(",")), count);
        }
    }
    let expected = BTreeMap::from([
        (format!("{}{{outcome=ok}}", telemetry::FACTORY_RUNS), 1),
        (format!("{}{{outcome=error}}", telemetry::FACTORY_RUNS), 1),
        (format!("{}{{}}", telemetry::JOINS), 9),
        (
            format!("{}{{reason=factory_error}}", telemetry::STALE_SERVED),
            1,
        ),
        (format!("{}{{}}", telemetry::DECODE_FAILURES), 1),
    ]);
    assert_eq!(counters, expected);
    assert_eq!(telemetry::FACTORY_RUNS, "cache_typed_factory_runs_total");
}
