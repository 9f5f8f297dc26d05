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
/// | `cache_sets_total` | counter | entries written by `set`, `set_many`, and `add` when it stored |
/// | `cache_deletes_total` | counter | entries removed by `delete`, `delete_many` |
/// | `cache_errors_total` | counter | failed calls, with a third label `kind` (`timeout`, `unreachable`, `invalid_key`...) |
/// | `cache_operation_duration_seconds` | histogram | the time of every call, failed ones included |
///
/// The handles are registered when the layer is built, with the recorder installed at
/// that moment: install the exporter first. When none is installed (the facade's no-op
/// recorder), the layer hands calls on untouched, without reading the clock.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct MetricsLayer {
    label: Option<&'static str>,
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
}

impl Layer for MetricsLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        if !recorder_installed() {
            return inner;
        }
        let backend = self.label.unwrap_or_else(|| inner.describe().label);
        let per_op = Op::ALL.map(|op| Meters::register(backend, op));
        Layered::wrap(inner, Recording { backend, per_op })
    }
}

/// Whether a recorder other than the facade's no-op one is in place. The facade does not
/// say; its no-op recorder is the only recorder without state, so a recorder of size
/// zero is taken for it.
fn recorder_installed() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

struct Meters {
    hits: Counter,
    misses: Counter,
    writes: Counter,
    latency: Histogram,
}

impl Meters {
    fn register(backend: &'static str, op: Op) -> Self {
        let operation = op.name();
        let written = match op {
            Op::Delete | Op::DeleteMany => "cache_deletes_total",
            _ => "cache_sets_total",
        };
        Self {
            hits: metrics::counter!("cache_hits_total", "backend" => backend, "operation" => operation),
            misses: metrics::counter!("cache_misses_total", "backend" => backend, "operation" => operation),
            writes: metrics::counter!(written, "backend" => backend, "operation" => operation),
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
            let started = Instant::now();
            let result = call.await;
            meters.latency.record(started.elapsed());
            match &result {
                Ok(answer) => match op {
                    Op::Get | Op::GetMany | Op::Exists => {
                        let (hits, misses) = answer.found();
                        meters.hits.increment(hits as u64);
                        meters.misses.increment(misses as u64);
                    }
                    Op::Set | Op::SetMany => meters.writes.increment(count as u64),
                    Op::Add | Op::Delete | Op::DeleteMany => {
                        meters.writes.increment(answer.affected() as u64);
                    }
                    Op::Clear => {}
                },
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
