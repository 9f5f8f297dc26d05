//! Retrying the calls that failed for a reason that may pass.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use cache_api::{Cache, CacheError, CacheFuture, Layer};

use crate::around::{Answer, Around, Keys, Layered, Op};

/// Retries a call that failed with an error that says it is temporary
/// ([`CacheError::is_retryable`]: unreachable, timed out), with exponential backoff and
/// jitter; never a caller mistake or a server's refusal.
///
/// Reads, [`set`](Cache::set), [`set_many`](Cache::set_many) and
/// [`clear`](Cache::clear) are retried: repeating them ends in the same state.
/// [`add`](Cache::add), [`delete`](Cache::delete) and
/// [`delete_many`](Cache::delete_many) are never retried, as their answers would be
/// wrong: an attempt whose answer was lost may have stored or removed, and the retry
/// would then say `false` (or count fewer entries). Their errors reach the caller, who
/// knows whether the answer matters.
///
/// Put a [`TimeoutLayer`](crate::TimeoutLayer) outside it to bound the whole call,
/// retries and waits included. Under such a deadline, a wait that would end past it is
/// not started: the caller gets the error of the last attempt at once, rather than a
/// timeout of the deadline that hides it.
///
/// The waits are Tokio's timers: a retry needs a Tokio runtime with time enabled, as
/// the network backends do. Outside any Tokio runtime (a cache polled by another
/// executor), a failed call is not retried: its error reaches the caller.
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
    /// Up to 2 retries, waiting 5 to 10 ms before the first and doubling, at most
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

    /// The wait before the first retry; each next wait doubles, up to `max`. Each wait
    /// is drawn between half of that and all of it (jitter, so that callers failed by
    /// one outage do not retry in step), and never exceeds `max`. A first wait of zero
    /// retries at once, every time.
    pub fn delays(mut self, first: Duration, max: Duration) -> Self {
        self.first_delay = first;
        self.max_delay = max.max(first);
        self
    }
}

impl Layer for RetryLayer {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        // backon's jitter adds up to the wait itself on top of it: halving both bounds
        // draws each wait between half the nominal one and all of it, `max` included.
        // Half a nanosecond is none: the least first wait that still doubles is 1 ns.
        let first = match self.first_delay {
            Duration::ZERO => Duration::ZERO,
            first => (first / 2).max(Duration::from_nanos(1)),
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(self.max_delay / 2)
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
        if matches!(op, Op::Add | Op::Delete | Op::DeleteMany)
            || tokio::runtime::Handle::try_current().is_err()
        {
            return call();
        }
        Box::pin(
            call.retry(self.backoff)
                .sleep(tokio::time::sleep)
                .when(CacheError::is_retryable)
                .adjust(|_, wait| wait.filter(|wait| ends_in_time(*wait))),
        )
    }
}

/// Whether a wait of `wait` from now ends before the deadline of the `TimeoutLayer`s
/// around the call, if any: past it, no attempt could follow the wait.
fn ends_in_time(wait: Duration) -> bool {
    crate::timeout::current_deadline().is_none_or(|deadline| {
        tokio::time::Instant::now()
            .checked_add(wait)
            .is_some_and(|end| end < deadline)
    })
}
