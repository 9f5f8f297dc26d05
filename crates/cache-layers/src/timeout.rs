//! One deadline for a whole call.

use std::{sync::Arc, time::Duration};

use cache_api::{Cache, CacheError, CacheFuture, Layer};
use tokio::time::Instant;

use crate::around::{Answer, Around, Keys, Layered, Op};

/// Bounds each call, whatever happens inside (retries, reconnects, a hung server), by
/// one deadline. A call that runs past it is dropped and fails with
/// [`CacheError::Timeout`] naming the operation and the phase `deadline`. The deadline
/// counts from the call's first poll (its first `.await`), not from the moment its
/// future was made; as any Tokio timer, it needs a Tokio runtime with time enabled
/// where the call is awaited.
///
/// A backend's own timeouts (connect, response) still apply inside; this is the
/// promise to the caller. A `set` cut short may or may not have been applied. A
/// [`RetryLayer`](crate::RetryLayer) inside it knows the deadline: it starts no wait
/// that would end past it, and answers with the error of its last attempt instead.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TimeoutLayer {
    deadline: Duration,
}

impl TimeoutLayer {
    /// Every call within `deadline`.
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }
}

impl Layer for TimeoutLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        let backend = inner.describe().label;
        Layered::wrap(
            inner,
            Deadline {
                after: self.deadline,
                backend,
            },
        )
    }
}

tokio::task_local! {
    /// The earliest deadline of the `TimeoutLayer`s the call under way runs inside.
    static DEADLINE: Instant;
}

/// The earliest deadline of the `TimeoutLayer`s around the call under way, if any.
pub(crate) fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

struct Deadline {
    after: Duration,
    backend: &'static str,
}

impl Around for Deadline {
    fn around<'f, T, F>(&'f self, op: Op, _: Keys<'f>, call: F) -> CacheFuture<'f, T>
    where
        T: Answer + Send + 'f,
        F: Fn() -> CacheFuture<'f, T> + Send + Sync + 'f,
    {
        // The timer is made on the first poll, inside the runtime that polls it: made
        // here, it would start the deadline early and panic outside a runtime.
        Box::pin(async move {
            // Known to the layers inside (a retry's waits), nested deadlines the
            // earliest; one too far off to count (`Duration::MAX`) is no deadline.
            let call = call();
            let deadline = Instant::now()
                .checked_add(self.after)
                .map(|own| current_deadline().map_or(own, |outer| outer.min(own)))
                .or_else(current_deadline);
            let call = async move {
                match deadline {
                    Some(deadline) => DEADLINE.scope(deadline, call).await,
                    None => call.await,
                }
            };
            tokio::time::timeout(self.after, call)
                .await
                .unwrap_or_else(|_| {
                    Err(CacheError::Timeout {
                        backend: self.backend,
                        operation: op.name(),
                        phase: "deadline",
                        after: self.after,
                    })
                })
        })
    }
}
