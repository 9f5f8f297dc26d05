//! Retrying the calls that failed for a reason that may pass.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use cache_api::{Cache, CacheError, CacheFuture, Layer};

use crate::around::{Answer, Around, Keys, Layered, Op};

/// Retries a call that failed with an error that says it is temporary
/// ([`CacheError::is_retryable`]: unreachable, timed out), with exponential backoff and
/// jitter; never a caller mistake or a server's refusal. Every operation of the
/// contract is idempotent, except [`add`](Cache::add), which is never retried: an `add`
/// whose answer was lost may have stored, and its retry would say `false`.
///
/// Put a [`TimeoutLayer`](crate::TimeoutLayer) outside it to bound the whole call,
/// retries and waits included.
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryLayer {
    max_retries: usize,
    first_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// Up to 2 retries, waiting about 10 ms before the first and doubling, at most
    /// 200 ms.
    pub fn new() -> Self {
        Self {
            max_retries: 2,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
        }
    }

    /// How many times a call is tried again after its first attempt (0: never).
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait before the first retry; each next wait doubles, up to `max`.
    pub fn delays(mut self, first: Duration, max: Duration) -> Self {
        self.first_delay = first;
        self.max_delay = max.max(first);
        self
    }
}

impl Layer for RetryLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter();
        Layered::wrap(inner, Retry { backoff })
    }
}

struct Retry {
    backoff: ExponentialBuilder,
}

impl Around for Retry {
    fn around<'f, T, F>(&'f self, op: Op, _: Keys<'f>, call: F) -> CacheFuture<'f, T>
    where
        T: Answer + Send + 'f,
        F: Fn() -> CacheFuture<'f, T> + Send + Sync + 'f,
    {
        if op == Op::Add {
            return call();
        }
        Box::pin(
            call.retry(self.backoff)
                .sleep(tokio::time::sleep)
                .when(CacheError::is_retryable),
        )
    }
}
