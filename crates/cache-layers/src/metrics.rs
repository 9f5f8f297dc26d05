//! Counters and a latency histogram on the `metrics` facade.

use std::{sync::Arc, time::Instant};

use cache_api::{Cache, CacheFuture, Layer};
use metrics::{Counter, Histogram};

use crate::around::{error_kind, Answer, Around, Keys, Layered, Op};

/// Records, on the [`metrics`] facade, with the labels `backend` (the backend's label,
/// or [`label`](Self::label)) and `operation`:
///
/// | metric | kind | what |
/// |---|---|---|
/// | `cache_hits_total` | counter | keys found by `get`, `get_many`, `exists` |
/// | `cache_misses_total` | counter | keys not found by them |
/// | `cache_sets_total` | counter | writes that succeeded: one per `set` (one of zero TTL, which removes, included), one per entry of `set_many` (a key given twice counts twice), and `add` when it stored |
/// | `cache_deletes_total` | counter | entries removed by `delete`, `delete_many` |
/// | `cache_errors_total` | counter | failed calls, with a third label `kind` (`timeout`, `unreachable`, `invalid_key`...); `cancelled` for a call dropped before it ended (its caller gave up, a deadline outside this layer fired, or it panicked) |
/// | `cache_operation_duration_seconds` | histogram | the time of every call, failed and cancelled ones included (a cancelled one until it was dropped) |
///
/// The handles are registered when the layer is built, with the recorder installed at
/// that moment: install the exporter first. `cache_errors_total`, whose `kind` is
/// known only when a call fails, is looked up then, on the recorder of that moment.
/// When none is installed (the facade's own no-op recorder), the layer hands calls on
/// untouched, without reading the clock. The facade cannot tell its no-op recorder from
/// another recorder of size zero (a unit struct that keeps its counts in statics): for
/// such a recorder, call [`always_record`](Self::always_record).
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct MetricsLayer {
    label: Option<&'static str>,
    always: bool,
}

impl MetricsLayer {
    /// Labels the metrics with the backend's own label
    /// ([`BackendInfo::label`](cache_api::BackendInfo::label)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels the metrics with `backend` instead, to tell apart two caches of one kind
    /// (`sessions`, `pages`). Keep the set of labels small.
    pub fn label(mut self, backend: &'static str) -> Self {
        self.label = Some(backend);
        self
    }

    /// Records whatever recorder is in place, also one of size zero, which the layer
    /// would otherwise take for the facade's no-op recorder and leave out.
    pub fn always_record(mut self, always: bool) -> Self {
        self.always = always;
        self
    }
}

impl Layer for MetricsLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        if !self.always && !recorder_installed() {
            return inner;
        }
        let backend = self.label.unwrap_or_else(|| inner.describe().label);
        let per_op = Op::ALL.map(|op| Meters::register(backend, op));
        Layered::wrap(inner, Recording { backend, per_op })
    }
}

/// Whether a recorder other than the facade's no-op one is in place. The facade does not
/// say, and its no-op recorder has no state, so a recorder of size zero is taken for it
/// ([`MetricsLayer::always_record`] for an application's recorder of size zero).
fn recorder_installed() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

/// The handles of one operation: only the series it can move are registered, so that
/// an exporter shows no `cache_sets_total{operation="get"}` that stays at zero.
struct Meters {
    /// Hits and misses, for the reads.
    found: Option<(Counter, Counter)>,
    /// Sets or deletes, for the writes (not `clear`, which counts nothing).
    writes: Option<Counter>,
    latency: Histogram,
}

impl Meters {
    fn register(backend: &'static str, op: Op) -> Self {
        let operation = op.name();
        let found = op.reads().then(|| {
            (
                metrics::counter!("cache_hits_total", "backend" => backend, "operation" => operation),
                metrics::counter!("cache_misses_total", "backend" => backend, "operation" => operation),
            )
        });
        let written = match op {
            Op::Delete | Op::DeleteMany => Some("cache_deletes_total"),
            Op::Set | Op::SetMany | Op::Add => Some("cache_sets_total"),
            Op::Get | Op::GetMany | Op::Exists | Op::Clear => None,
        };
        Self {
            found,
            writes: written.map(
                |name| metrics::counter!(name, "backend" => backend, "operation" => operation),
            ),
            latency: metrics::histogram!(
                "cache_operation_duration_seconds",
                "backend" => backend,
                "operation" => operation
            ),
        }
    }
}

struct Recording {
    backend: &'static str,
    per_op: [Meters; Op::ALL.len()],
}

impl Around for Recording {
    fn around<'f, T, F>(&'f self, op: Op, keys: Keys<'f>, call: F) -> CacheFuture<'f, T>
    where
        T: Answer + Send + 'f,
        F: Fn() -> CacheFuture<'f, T> + Send + Sync + 'f,
    {
        let meters = &self.per_op[op.index()];
        let count = keys.count();
        let call = call();
        Box::pin(async move {
            let pending = Pending {
                backend: self.backend,
                op,
                latency: &meters.latency,
                started: Instant::now(),
            };
            let result = call.await;
            pending.ended();
            match &result {
                Ok(answer) => {
                    if let Some((hits, misses)) = &meters.found {
                        let (found, missed) = answer.found();
                        hits.increment(found as u64);
                        misses.increment(missed as u64);
                    }
                    if let Some(writes) = &meters.writes {
                        let written = match op {
                            Op::Set | Op::SetMany => count,
                            _ => answer.affected(),
                        };
                        writes.increment(written as u64);
                    }
                }
                Err(error) => metrics::counter!(
                    "cache_errors_total",
                    "backend" => self.backend,
                    "operation" => op.name(),
                    "kind" => error_kind(error)
                )
                .increment(1),
            }
            result
        })
    }
}

/// A call under way: dropped before [`ended`](Self::ended) (the call's future dropped
/// unfinished), it records the call's time until then and counts it as `cancelled`.
struct Pending<'a> {
    backend: &'static str,
    op: Op,
    latency: &'a Histogram,
    started: Instant,
}

impl Pending<'_> {
    /// Records the time of a call that ended, failed or not.
    fn ended(self) {
        self.latency.record(self.started.elapsed());
        std::mem::forget(self);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.latency.record(self.started.elapsed());
        metrics::counter!(
            "cache_errors_total",
            "backend" => self.backend,
            "operation" => self.op.name(),
            "kind" => "cancelled"
        )
        .increment(1);
    }
}
