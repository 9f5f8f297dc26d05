//! Each layer does its job: retries only what may pass, the deadline fires on time,
//! spans carry their fields and no key unless asked, metrics count exactly.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError, Layer};
use cache_layers::{MetricsLayer, RetryLayer, TimeoutLayer, TracingLayer};
use common::{unreachable, Flaky, Hanging};

/// A retryable failure is retried, and the call succeeds.
#[tokio::test]
async fn retry_succeeds_after_one_retryable_failure() {
    let flaky = Flaky::new(1, unreachable);
    let cache = RetryLayer::new().layer(flaky.clone());
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(flaky.calls(), 2, "one failed attempt, one retry");
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    assert_eq!(flaky.calls(), 3);
}

/// A caller mistake is never retried, nor is a backend's refusal.
#[tokio::test]
async fn retry_never_retries_a_caller_error_or_a_refusal() {
    let flaky = Flaky::new(0, unreachable);
    let cache = RetryLayer::new().max_retries(5).layer(flaky.clone());
    let err = cache.get("").await.unwrap_err();
    assert!(matches!(err, CacheError::InvalidKey { .. }), "{err:?}");
    assert_eq!(flaky.calls(), 1);

    let refusing = Flaky::new(usize::MAX, || CacheError::Auth {
        backend: "flaky",
        source: "wrong password".into(),
    });
    let cache = RetryLayer::new().max_retries(5).layer(refusing.clone());
    assert!(matches!(cache.get("k").await, Err(CacheError::Auth { .. })));
    assert_eq!(refusing.calls(), 1);
}

/// Retries stop after the configured number, with the last error; `add` is never
/// retried (a lost answer may hide a stored entry).
#[tokio::test]
async fn retry_gives_up_after_its_budget_and_leaves_add_alone() {
    let down = Flaky::new(usize::MAX, unreachable);
    let cache = RetryLayer::new()
        .max_retries(3)
        .delays(Duration::from_millis(1), Duration::from_millis(2))
        .layer(down.clone());
    assert!(matches!(
        cache.get("k").await,
        Err(CacheError::Unreachable { .. })
    ));
    assert_eq!(down.calls(), 4);
    let flaky = Flaky::new(1, unreachable);
    let cache = RetryLayer::new().layer(flaky.clone());
    assert!(cache.add("k", Bytes::from("v"), None).await.is_err());
    assert_eq!(flaky.calls(), 1);
}

/// The deadline fires within 10 % of itself and names the operation and the phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_fires_within_ten_percent_of_its_deadline() {
    let deadline = Duration::from_millis(500);
    let cache = TimeoutLayer::new(deadline).layer(Arc::new(Hanging));
    let started = Instant::now();
    let err = cache.get("k").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= deadline && took <= deadline + deadline / 10,
        "fired after {took:?}"
    );
    match err {
        CacheError::Timeout {
            backend,
            operation,
            phase,
            after,
        } => assert_eq!(
            (backend, operation, phase, after),
            ("custom", "get", "deadline", deadline)
        ),
        other => panic!("expected a deadline Timeout, got {other:?}"),
    }
    // A call that answers in time is untouched.
    cache.set("k", Bytes::from("v"), None).await.unwrap();
}

type Fields = BTreeMap<String, String>;

/// Collects the fields of every span, as text.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<HashMap<u64, (String, Fields)>>>);

struct Visitor<'a>(&'a mut Fields);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Visitor(fields));
        }
    }
}

impl Spans {
    fn all(&self) -> Vec<Fields> {
        let spans = self.0.lock().unwrap();
        let mut ids: Vec<_> = spans.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| &spans[id])
            .filter(|(name, _)| name == "cache")
            .map(|(_, fields)| fields.clone())
            .collect()
    }
}

fn traced(record_keys: bool, calls: impl FnOnce(Arc<dyn Cache>)) -> Vec<Fields> {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
        calls(TracingLayer::new().record_keys(record_keys).layer(backend));
    });
    spans.all()
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// One span per call with backend, operation, key count, outcome and hit/miss; no key.
#[test]
fn tracing_spans_carry_their_fields_and_no_key() {
    let spans = traced(false, |cache| {
        block_on(async {
            cache
                .set("user:alice@example.com", Bytes::from("v"), None)
                .await
                .unwrap();
            cache.get("user:alice@example.com").await.unwrap();
            cache
                .get_many(&["user:alice@example.com", "nobody"])
                .await
                .unwrap();
            cache.get("").await.unwrap_err();
        });
    });
    let shown: Vec<Vec<(&str, &str)>> = spans
        .iter()
        .map(|fields| {
            fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect()
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            vec![
                ("backend", "memory"),
                ("keys", "1"),
                ("operation", "set"),
                ("outcome", "ok")
            ],
            vec![
                ("backend", "memory"),
                ("hits", "1"),
                ("keys", "1"),
                ("misses", "0"),
                ("operation", "get"),
                ("outcome", "ok"),
            ],
            vec![
                ("backend", "memory"),
                ("hits", "1"),
                ("keys", "2"),
                ("misses", "1"),
                ("operation", "get_many"),
                ("outcome", "ok"),
            ],
            vec![
                ("backend", "memory"),
                ("error", "invalid_key"),
                ("keys", "1"),
                ("operation", "get"),
                ("outcome", "error"),
            ],
        ]
    );
    assert!(
        !format!("{spans:?}").contains("alice"),
        "a key was recorded: {spans:?}"
    );
}

/// Keys are recorded when the application opts in.
#[test]
fn tracing_records_keys_only_when_asked() {
    let spans = traced(true, |cache| {
        block_on(async {
            cache.delete_many(&["a", "b"]).await.unwrap();
        });
    });
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].get("key").map(String::as_str),
        Some(r#"["a", "b"]"#)
    );
}

/// The recorder sees exactly the hits, misses, sets, deletes and errors of a known
/// sequence of calls, and one latency sample per call.
#[test]
fn metrics_count_exactly() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
    let cache = MetricsLayer::new().label("metrics-test").layer(backend);
    block_on(async {
        cache.set("a", Bytes::from("1"), None).await.unwrap();
        cache
            .set_many(&[("b", Bytes::from("2")), ("c", Bytes::from("3"))], None)
            .await
            .unwrap();
        assert!(cache.get("a").await.unwrap().is_some());
        assert!(cache.get("zz").await.unwrap().is_none());
        cache.get_many(&["a", "b", "zz", "yy"]).await.unwrap();
        assert!(!cache.exists("zz").await.unwrap());
        assert!(cache.add("d", Bytes::from("4"), None).await.unwrap());
        assert!(!cache.add("d", Bytes::from("5"), None).await.unwrap());
        assert!(cache.delete("a").await.unwrap());
        assert_eq!(cache.delete_many(&["b", "c", "a"]).await.unwrap(), 2);
        cache.get("").await.unwrap_err();
        cache.set("", Bytes::new(), None).await.unwrap_err();
    });

    let recorded = common::Recorded::from(&snapshotter);
    assert_eq!(Vec::from_iter(recorded.backends), ["metrics-test"]);
    assert_eq!(recorded.gauges, 0, "no gauge expected");
    let (counters, samples) = (recorded.counters, recorded.samples);
    let expected: BTreeMap<String, u64> = [
        ("cache_sets_total{operation=set}", 1),
        ("cache_sets_total{operation=set_many}", 2),
        ("cache_sets_total{operation=add}", 1),
        ("cache_hits_total{operation=get}", 1),
        ("cache_misses_total{operation=get}", 1),
        ("cache_hits_total{operation=get_many}", 2),
        ("cache_misses_total{operation=get_many}", 2),
        ("cache_misses_total{operation=exists}", 1),
        ("cache_deletes_total{operation=delete}", 1),
        ("cache_deletes_total{operation=delete_many}", 2),
        ("cache_errors_total{kind=invalid_key,operation=get}", 1),
        ("cache_errors_total{kind=invalid_key,operation=set}", 1),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_owned(), count))
    .collect();
    assert_eq!(counters, expected);
    let calls: BTreeMap<String, usize> = [
        ("set", 2),
        ("set_many", 1),
        ("get", 3),
        ("get_many", 1),
        ("exists", 1),
        ("add", 2),
        ("delete", 1),
        ("delete_many", 1),
    ]
    .into_iter()
    .map(|(op, n)| {
        (
            format!("cache_operation_duration_seconds{{operation={op}}}"),
            n,
        )
    })
    .collect();
    assert_eq!(samples, calls);
}
