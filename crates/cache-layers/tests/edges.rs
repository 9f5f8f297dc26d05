//! The layers at their edges: answers a retry would falsify, the bounds of the waits,
//! a deadline awaited late or made outside a runtime, a subscriber that tracks no
//! current span, recorders of size zero, and calls dropped before they end. No global
//! recorder or subscriber is installed here: each test sets its own for its thread.

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use cache_api::{async_trait, Bytes, Cache, CacheError, Capabilities, Layer};
use cache_layers::{MetricsLayer, RetryLayer, TimeoutLayer, TracingLayer};
use common::{unreachable, Hanging};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder};
use metrics_util::debugging::DebuggingRecorder;

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

/// A memory cache whose first `lost` writes are applied and then answered with a
/// timeout, as when the server's answer is lost on its way back.
struct LostAnswers {
    inner: cache_memory::MemoryCache,
    lost: AtomicUsize,
    calls: AtomicUsize,
}

impl LostAnswers {
    fn new(lost: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: cache_memory::MemoryCache::new(),
            lost: AtomicUsize::new(lost),
            calls: AtomicUsize::new(0),
        })
    }

    fn answer<T>(&self, answer: Result<T, CacheError>) -> Result<T, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let lost = self
            .lost
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err(CacheError::Timeout {
                backend: "lossy",
                operation: "write",
                phase: "response",
                after: Duration::from_millis(10),
            });
        }
        answer
    }
}

#[async_trait]
impl Cache for LostAnswers {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let answer = self.inner.delete(key).await;
        self.answer(answer)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        let answer = self.inner.delete_many(keys).await;
        self.answer(answer)
    }
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let answer = self.inner.add(key, value, ttl).await;
        self.answer(answer)
    }
    fn limits(&self) -> Capabilities {
        self.inner.limits()
    }
}

/// A delete whose answer was lost has removed its entry: a retry would answer `false`
/// (or count nothing), so the layer hands the error on instead, as for `add`.
#[test]
fn retry_never_falsifies_what_a_delete_or_an_add_answers() {
    block_on(async {
        let lossy = LostAnswers::new(usize::MAX);
        let cache = RetryLayer::new().max_retries(3).layer(lossy.clone());
        for key in ["a", "b", "c"] {
            cache.set(key, Bytes::from("v"), None).await.unwrap();
        }
        let timed_out =
            |result: Result<_, CacheError>| matches!(result, Err(CacheError::Timeout { .. }));
        assert!(timed_out(cache.delete("a").await.map(drop)));
        assert!(timed_out(cache.delete_many(&["b", "c"]).await.map(drop)));
        assert!(timed_out(
            cache.add("d", Bytes::from("v"), None).await.map(drop)
        ));
        assert_eq!(lossy.calls.load(Ordering::SeqCst), 3, "one attempt each");
        // Each attempt did its work: the entries are gone, the add stored.
        assert_eq!(
            cache.get_many(&["a", "b", "c", "d"]).await.unwrap(),
            [None, None, None, Some(Bytes::from("v"))]
        );
    });
}

/// A cache that is always down and notes when each attempt came, on Tokio's clock.
#[derive(Default)]
struct Down {
    attempts: Mutex<Vec<tokio::time::Instant>>,
}

#[async_trait]
impl Cache for Down {
    async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
        self.attempts
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        Err(unreachable())
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<(), CacheError> {
        Err(unreachable())
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Err(unreachable())
    }
}

/// The waits between attempts, with `retry`, on a paused clock.
fn waits(retry: RetryLayer) -> Vec<Duration> {
    block_on(async {
        let down = Arc::new(Down::default());
        retry.layer(down.clone()).get("k").await.unwrap_err();
        let attempts = down.attempts.lock().unwrap();
        attempts
            .windows(2)
            .map(|pair| pair[1].duration_since(pair[0]))
            .collect()
    })
}

/// Each wait lies between half its nominal value (which doubles from the first, up to
/// the maximum) and the nominal value itself: jitter never takes it past the maximum.
#[test]
fn retry_waits_stay_within_their_bounds() {
    let first = Duration::from_millis(10);
    let max = Duration::from_millis(200);
    let waits = waits(RetryLayer::new().max_retries(40));
    assert_eq!(waits.len(), 40);
    for (retry, wait) in waits.iter().enumerate() {
        let nominal = first.saturating_mul(1 << retry.min(20)).min(max);
        assert!(
            *wait >= nominal / 2 && *wait <= nominal,
            "wait {retry} of {wait:?}, nominal {nominal:?}: {waits:?}"
        );
    }
    let flat = Duration::from_millis(100);
    let waits = self::waits(RetryLayer::new().max_retries(20).delays(flat, flat));
    assert!(
        waits.iter().all(|wait| *wait >= flat / 2 && *wait <= flat),
        "{waits:?}"
    );
}

/// A first wait of a nanosecond still doubles up to the maximum; a first wait of zero
/// retries at once, every time.
#[test]
fn retry_waits_from_a_nanosecond_grow() {
    let waits = waits(
        RetryLayer::new()
            .max_retries(40)
            .delays(Duration::from_nanos(1), Duration::from_secs(1)),
    );
    assert_eq!(waits.len(), 40);
    // The nominal wait reaches the second after 30 doublings; each is at least half.
    assert!(
        waits[31..]
            .iter()
            .all(|wait| *wait >= Duration::from_millis(500)),
        "{waits:?}"
    );
    let waits = self::waits(
        RetryLayer::new()
            .max_retries(5)
            .delays(Duration::ZERO, Duration::from_secs(1)),
    );
    assert_eq!(waits, [Duration::ZERO; 5]);
}

/// Polled outside any Tokio runtime (by another executor), a failed call is answered
/// with its error after one attempt, as no timer can wait for a retry there.
#[test]
fn outside_a_runtime_a_failure_is_answered_without_retry() {
    use std::task::{Context, Poll, Waker};
    let flaky = common::Flaky::new(1, unreachable);
    let cache = RetryLayer::new().layer(flaky.clone());
    let mut call = cache.get("k");
    let polled = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(
        matches!(polled, Poll::Ready(Err(CacheError::Unreachable { .. }))),
        "{polled:?}"
    );
    assert_eq!(flaky.calls(), 1);
}

/// A call whose future is made outside any runtime runs in the one that awaits it.
#[test]
fn a_deadline_is_made_where_the_call_is_awaited() {
    let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
    let cache = TimeoutLayer::new(Duration::from_millis(500)).layer(backend);
    let call = cache.get("k");
    assert_eq!(block_on(call).unwrap(), None);
}

/// Under a deadline, a retry starts no wait that would end past it: the caller gets the
/// error of the last attempt, not the deadline's timeout that would hide it; waits
/// that end in time are still taken, and of nested deadlines the earliest counts.
#[test]
fn a_retry_starts_no_wait_that_ends_past_the_deadline() {
    block_on(async {
        // Every wait (1 to 2 s) ends past the 300 ms deadline: one attempt, its error.
        let down = common::Flaky::new(usize::MAX, unreachable);
        let retry = RetryLayer::new()
            .max_retries(3)
            .delays(Duration::from_secs(2), Duration::from_secs(5));
        let cache = TimeoutLayer::new(Duration::from_millis(300)).layer(retry.layer(down.clone()));
        let started = tokio::time::Instant::now();
        let error = cache.get("k").await.unwrap_err();
        assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
        assert_eq!(down.calls(), 1);
        assert!(started.elapsed() < Duration::from_millis(300));

        // Waits of 5 to 40 ms fit in a second: two failures, then the answer.
        let flaky = common::Flaky::new(2, unreachable);
        let retry = RetryLayer::new()
            .max_retries(3)
            .delays(Duration::from_millis(10), Duration::from_millis(40));
        let cache = TimeoutLayer::new(Duration::from_secs(1)).layer(retry.layer(flaky.clone()));
        assert_eq!(cache.get("k").await.unwrap(), None);
        assert_eq!(flaky.calls(), 3);

        // A longer deadline outside a shorter one: the shorter one counts.
        let down = common::Flaky::new(usize::MAX, unreachable);
        let retry = RetryLayer::new()
            .max_retries(3)
            .delays(Duration::from_millis(400), Duration::from_millis(800));
        let inner = TimeoutLayer::new(Duration::from_millis(100)).layer(retry.layer(down.clone()));
        let cache = TimeoutLayer::new(Duration::from_secs(60)).layer(inner);
        let error = cache.get("k").await.unwrap_err();
        assert!(matches!(error, CacheError::Unreachable { .. }), "{error:?}");
        assert_eq!(down.calls(), 1);

        // Without a deadline, the waits are taken.
        let down = common::Flaky::new(usize::MAX, unreachable);
        let cache = RetryLayer::new()
            .max_retries(2)
            .delays(Duration::from_secs(2), Duration::from_secs(5))
            .layer(down.clone());
        assert!(cache.get("k").await.is_err());
        assert_eq!(down.calls(), 3);
    });
}

/// A cache whose `get_many` answers one value more than keys asked, or one fewer.
struct Miscounts {
    extra: bool,
}

#[async_trait]
impl Cache for Miscounts {
    async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(None)
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<(), CacheError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut answer = vec![Some(Bytes::from("v")); keys.len()];
        if self.extra {
            answer.push(Some(Bytes::from("stray")));
        } else {
            answer.pop();
        }
        Ok(answer)
    }
}

/// A `get_many` answer with more or fewer values than keys fails the call through
/// every layer, with a backend error naming both counts; no hit is counted for it.
#[test]
fn a_get_many_answer_of_the_wrong_length_fails_the_call() {
    let snapshotter = {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        block_on(async {
            for extra in [true, false] {
                let backend: Arc<dyn Cache> = Arc::new(Miscounts { extra });
                let layers: [Box<dyn Layer>; 4] = [
                    Box::new(RetryLayer::new()),
                    Box::new(TimeoutLayer::new(Duration::from_secs(1))),
                    Box::new(TracingLayer::new()),
                    Box::new(MetricsLayer::new()),
                ];
                for layer in layers {
                    let error = layer
                        .layer(backend.clone())
                        .get_many(&["a", "b"])
                        .await
                        .unwrap_err();
                    assert!(matches!(error, CacheError::Backend { .. }), "{error:?}");
                    let values = if extra { 3 } else { 1 };
                    assert!(
                        error
                            .to_string()
                            .contains(&format!("answered {values} values for 2 keys")),
                        "{error}"
                    );
                }
            }
        });
        snapshotter
    };
    let common::Recorded { counters, .. } = common::Recorded::from(&snapshotter);
    assert_eq!(
        counters,
        BTreeMap::from([(
            "cache_errors_total{kind=backend,operation=get_many}".to_owned(),
            2
        )])
    );
}

/// A cache whose reads take 200 ms.
struct Slow;

#[async_trait]
impl Cache for Slow {
    async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(None)
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<(), CacheError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
}

/// The deadline counts from the call's first poll, not from when its future was made.
#[test]
fn a_deadline_counts_from_the_first_poll() {
    block_on(async {
        let cache = TimeoutLayer::new(Duration::from_millis(500)).layer(Arc::new(Slow));
        let call = cache.get("k");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(call.await.unwrap(), None);
        let late = cache.get("k");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(late.await.unwrap(), None);
    });
}

type Fields = BTreeMap<String, String>;

/// A subscriber that keeps each span's fields and tracks no current span (the trait's
/// default), as a minimal subscriber may.
#[derive(Clone, Default)]
struct Minimal {
    spans: Arc<Mutex<Vec<Fields>>>,
}

struct Collect<'a>(&'a mut Fields);

impl tracing::field::Visit for Collect<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Minimal {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields::new();
        span.record(&mut Collect(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Collect(&mut spans[index]));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The result fields land on the call's own span under any subscriber, and recorded
/// keys are quoted, so that a key holding a comma is not read as two.
#[test]
fn spans_get_their_results_and_unambiguous_keys_under_any_subscriber() {
    let subscriber = Minimal::default();
    tracing::subscriber::with_default(subscriber.clone(), || {
        block_on(async {
            let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
            let cache = TracingLayer::new().record_keys(true).layer(backend);
            cache.set("a, b", Bytes::from("v"), None).await.unwrap();
            cache.get_many(&["a", "b", "a, b"]).await.unwrap();
        });
    });
    let spans = subscriber.spans.lock().unwrap();
    let shown = |span: &Fields, name: &str| span.get(name).cloned().unwrap_or_default();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(shown(&spans[0], "key"), r#"["a, b"]"#);
    assert_eq!(shown(&spans[0], "outcome"), "ok");
    assert_eq!(shown(&spans[1], "key"), r#"["a", "b", "a, b"]"#);
    assert_eq!(
        (shown(&spans[1], "hits"), shown(&spans[1], "misses")),
        ("1".to_owned(), "2".to_owned())
    );
}

/// A call dropped before it ends (an outer deadline fired) closes its span with the
/// outcome `cancelled`, as the metrics layer counts it.
#[test]
fn spans_of_calls_dropped_unfinished_say_so() {
    let subscriber = Minimal::default();
    tracing::subscriber::with_default(subscriber.clone(), || {
        block_on(async {
            let traced = TracingLayer::new().layer(Arc::new(Hanging));
            let bounded = TimeoutLayer::new(Duration::from_millis(50)).layer(traced);
            assert!(matches!(
                bounded.get("k").await,
                Err(CacheError::Timeout { .. })
            ));
        });
    });
    let spans = subscriber.spans.lock().unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(
        spans[0].get("outcome").map(String::as_str),
        Some("cancelled")
    );
}

/// Only the series an operation can move are registered: hits and misses for the
/// reads, sets for the writes that store, deletes for the ones that remove; none that
/// would stay at zero for good.
#[test]
fn only_the_series_an_operation_can_move_are_registered() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _in_place = metrics::set_default_local_recorder(&recorder);
    let _layered = MetricsLayer::new().layer(Arc::new(cache_memory::MemoryCache::new()));
    let registered = common::Recorded::from(&snapshotter).registered;
    let series = |metric: &str, operations: &[&str]| {
        operations
            .iter()
            .map(move |operation| format!("{metric}{{operation={operation}}}"))
            .collect::<Vec<_>>()
    };
    let reads = ["exists", "get", "get_many"];
    let mut expected: Vec<String> = [
        series("cache_hits_total", &reads),
        series("cache_misses_total", &reads),
        series("cache_sets_total", &["add", "set", "set_many"]),
        series("cache_deletes_total", &["delete", "delete_many"]),
    ]
    .concat();
    expected.sort();
    assert_eq!(registered.into_iter().collect::<Vec<_>>(), expected);
}

/// With no recorder in place, the metrics layer is no layer at all: the inner cache is
/// handed back as it is.
#[test]
fn without_a_recorder_the_metrics_layer_costs_nothing() {
    let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
    let layered = MetricsLayer::new().layer(backend.clone());
    assert!(Arc::ptr_eq(&layered, &backend));
}

/// Hits counted by a recorder of size zero, which keeps its counts in a static.
static ZERO_SIZED_HITS: AtomicU64 = AtomicU64::new(0);

struct ZeroSized;

struct StaticCounter;

impl CounterFn for StaticCounter {
    fn increment(&self, value: u64) {
        ZERO_SIZED_HITS.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        ZERO_SIZED_HITS.store(value, Ordering::SeqCst);
    }
}

impl Recorder for ZeroSized {
    fn describe_counter(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == "cache_hits_total" && key.labels().any(|label| label.value() == "get") {
            Counter::from_arc(Arc::new(StaticCounter))
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// A recorder without state of its own cannot be told from the facade's no-op one:
/// the layer leaves it out unless told to record always.
#[test]
fn a_recorder_of_size_zero_is_recorded_to_when_asked() {
    assert_eq!(std::mem::size_of::<ZeroSized>(), 0);
    let _in_place = metrics::set_default_local_recorder(&ZeroSized);
    let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
    let left_out = MetricsLayer::new().layer(backend.clone());
    assert!(Arc::ptr_eq(&left_out, &backend));
    let cache = MetricsLayer::new()
        .always_record(true)
        .layer(backend.clone());
    assert!(!Arc::ptr_eq(&cache, &backend), "the layer was left out");
    block_on(async {
        cache.set("k", Bytes::from("v"), None).await.unwrap();
        cache.get("k").await.unwrap();
    });
    assert_eq!(ZERO_SIZED_HITS.load(Ordering::SeqCst), 1);
}

/// A call dropped before it ends (its caller gave up; a deadline outside the layer
/// fired) still has its time recorded, and is counted as `cancelled`.
#[test]
fn calls_dropped_unfinished_are_timed_and_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _in_place = metrics::set_default_local_recorder(&recorder);
    block_on(async {
        let measured = MetricsLayer::new().layer(Arc::new(Hanging));
        let gave_up = tokio::time::timeout(Duration::from_millis(50), measured.get("k")).await;
        assert!(gave_up.is_err(), "the call hangs");
        let bounded = TimeoutLayer::new(Duration::from_millis(50)).layer(measured.clone());
        assert!(matches!(
            bounded.get("k").await,
            Err(CacheError::Timeout { .. })
        ));
        measured.set("k", Bytes::from("v"), None).await.unwrap();
    });
    let common::Recorded {
        counters, samples, ..
    } = common::Recorded::from(&snapshotter);
    assert_eq!(
        counters,
        BTreeMap::from([
            (
                "cache_errors_total{kind=cancelled,operation=get}".to_owned(),
                2
            ),
            ("cache_sets_total{operation=set}".to_owned(), 1),
        ])
    );
    assert_eq!(
        samples,
        BTreeMap::from([
            (
                "cache_operation_duration_seconds{operation=get}".to_owned(),
                2
            ),
            (
                "cache_operation_duration_seconds{operation=set}".to_owned(),
                1
            ),
        ])
    );
}
