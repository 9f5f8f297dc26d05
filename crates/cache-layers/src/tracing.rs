//! A span per call.

use std::sync::Arc;

use cache_api::{Cache, CacheFuture, Layer};
use tracing::{field::Empty, Instrument};

use crate::around::{error_kind, Answer, Around, Keys, Layered, Op};

/// Opens a `tracing` span named `cache` (level INFO) around each call, with the fields
/// `backend` (the backend's label), `operation`, `keys` (how many), `outcome` (`ok`,
/// `error`, or `cancelled` for a call dropped before it ended: its caller gave up, a
/// deadline outside this layer fired, or it panicked), `error` (the error's kind), and
/// for reads `hits` and `misses`.
///
/// Keys are not recorded: they can be personal data (a user's e-mail address in a
/// session key). [`record_keys`](Self::record_keys) opts in, adding the field `key`.
///
/// The result fields are recorded on the call's own span, whatever the subscriber
/// tracks as the current span.
///
/// With no subscriber interested in the span, a call costs a check of a cached flag
/// and nothing else.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct TracingLayer {
    record_keys: bool,
}

impl TracingLayer {
    /// Spans without keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the keys of each call in the span's `key` field, as a list of quoted,
    /// escaped strings (`["user:1", "a, b"]`), so that no key can be read as two. Only
    /// where keys are known not to be personal data.
    pub fn record_keys(mut self, record: bool) -> Self {
        self.record_keys = record;
        self
    }
}

impl Layer for TracingLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        let backend = inner.describe().label;
        Layered::wrap(
            inner,
            Spans {
                backend,
                record_keys: self.record_keys,
            },
        )
    }
}

struct Spans {
    backend: &'static str,
    record_keys: bool,
}

impl Around for Spans {
    fn around<'f, T, F>(&'f self, op: Op, keys: Keys<'f>, call: F) -> CacheFuture<'f, T>
    where
        T: Answer + Send + 'f,
        F: Fn() -> CacheFuture<'f, T> + Send + Sync + 'f,
    {
        let span = tracing::info_span!(
            "cache",
            backend = self.backend,
            operation = op.name(),
            keys = keys.count(),
            outcome = Empty,
            error = Empty,
            hits = Empty,
            misses = Empty,
            key = Empty,
        );
        if span.is_disabled() {
            return call();
        }
        if self.record_keys {
            span.record(
                "key",
                tracing::field::debug(keys.iter().collect::<Vec<_>>()),
            );
        }
        let call = call();
        let own = span.clone();
        Box::pin(
            async move {
                let unfinished = Unfinished(Some(own));
                let result = call.await;
                let span = unfinished.ended();
                match &result {
                    Ok(answer) => {
                        span.record("outcome", "ok");
                        if op.reads() {
                            let (hits, misses) = answer.found();
                            span.record("hits", hits);
                            span.record("misses", misses);
                        }
                    }
                    Err(error) => {
                        span.record("outcome", "error");
                        span.record("error", error_kind(error));
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

/// The span of a call under way: dropped before [`ended`](Self::ended) (the call's
/// future dropped unfinished), it records the outcome `cancelled`.
struct Unfinished(Option<tracing::Span>);

impl Unfinished {
    /// The span of a call that ended, failed or not, for its result.
    fn ended(mut self) -> tracing::Span {
        self.0.take().unwrap_or_else(tracing::Span::none)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(span) = &self.0 {
            span.record("outcome", "cancelled");
        }
    }
}
