//! Removing what a run wrote, so that a server it does not own holds exactly what it
//! held before; shared by `cachectl bench` and `cachectl check`.
//!
//! A run works in a namespace of its own, nested under the URL's prefix when the URL
//! names one (`app:` then `app:cachectl-check:…:`), so that clearing it can never reach
//! the application's keys. Clean-up deletes the keys the run wrote and then clears that
//! namespace, which also removes what a backend keeps for itself there (memcached's
//! generation counter) and entries an earlier `clear` of the run left unreachable. A
//! server that is briefly away (paused, restarting) is waited for, within a bound.

use std::{future::Future, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use cache_api::{Cache, CacheError};
use serde::Serialize;
use tokio::time::Instant;

/// How long one clean-up keeps trying while the backend answers with a retryable
/// error: the tries and the waits between them together, however many batches.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The moment a clean-up starting now gives up: [`PATIENCE`] from now.
#[must_use]
pub fn patience_from_now() -> Instant {
    Instant::now() + PATIENCE
}

/// Keys deleted per `delete_many`.
const BATCH: usize = 100;

/// What removing the run's keys achieved.
#[derive(Debug, Clone, Serialize)]
pub struct Cleanup {
    /// Keys deleted after the run: every key the run may have written, unless removal failed.
    pub removed_keys: usize,
    /// `None` once every key is removed; otherwise the prefix of the keys left behind.
    pub left_prefix: Option<String>,
    /// Why removal failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cleanup {
    /// The outcome in words, for the text report.
    pub fn describe(&self) -> String {
        match (&self.left_prefix, &self.error) {
            (None, _) => format!("removed every key written ({} keys)", self.removed_keys),
            (Some(prefix), error) => format!(
                "failed after removing {} keys: {}; keys may be left under {prefix:?}",
                self.removed_keys,
                error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

/// The namespace of one run: the URL's own prefix (if any) with `own` after it.
pub fn nested_prefix(url: &str, own: &str) -> String {
    format!(
        "{}{own}",
        cache_url::url_key_prefix(url).unwrap_or_default()
    )
}

/// A configuration error about the key prefix, met in a namespace nested under the
/// URL's prefix, said as such: a prefix within what the backend takes may leave no room
/// for the `own` part a run puts after it (memcached takes 128 bytes), and the error
/// then names a length the user never wrote. Any other error (an unknown parameter, a
/// database that does not exist) is returned as it is.
#[must_use]
pub fn in_nested_prefix(err: CacheError, url: &str, own: &str) -> CacheError {
    match err {
        CacheError::Config { message }
            if message.contains("prefix")
                && cache_url::url_key_prefix(url).is_some_and(|prefix| !prefix.is_empty()) =>
        {
            CacheError::config(format!(
                "{message} (this run works in a namespace of its own, {} bytes long, under \
                 the url's prefix: give the url a shorter prefix)",
                own.len()
            ))
        }
        other => other,
    }
}

/// Runs `step` until it succeeds, fails with an error that retrying cannot fix, or
/// `deadline` comes; a try still running then is given up. On giving up, the last
/// error the backend answered (or, when the one try never ended, a timeout).
async fn patiently<T, F, Fut>(
    deadline: Instant,
    operation: &'static str,
    mut step: F,
) -> Result<T, CacheError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CacheError>>,
{
    let mut waits = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .build();
    let mut last = None;
    loop {
        let err = match tokio::time::timeout_at(deadline, step()).await {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(err)) if err.is_retryable() => err,
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                return Err(last.unwrap_or(CacheError::Timeout {
                    backend: "clean-up",
                    operation,
                    phase: "deadline",
                    after: PATIENCE,
                }))
            }
        };
        let wait = waits.next().unwrap_or(Duration::from_secs(2));
        if Instant::now() + wait >= deadline {
            return Err(err);
        }
        last = Some(err);
        tokio::time::sleep(wait).await;
    }
}

/// Deletes `keys` in batches, each batch retried while the backend is away until
/// `deadline` (see [`patience_from_now`]), and counts the keys it asked to delete (on
/// failure: those before the failed batch). Invalid keys (the empty key, which checks
/// write on purpose) stored nothing and are skipped.
///
/// # Errors
///
/// The error that ended the clean-up, with the count of keys deleted before it.
pub async fn delete_keys(
    cache: &dyn Cache,
    keys: &[String],
    deadline: Instant,
) -> Result<usize, (usize, CacheError)> {
    let keys: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|key| !key.is_empty())
        .collect();
    let mut deleted = 0;
    for batch in keys.chunks(BATCH) {
        patiently(deadline, "delete_many", || cache.delete_many(batch))
            .await
            .map_err(|err| (deleted, err))?;
        deleted += batch.len();
    }
    Ok(deleted)
}

/// Clears the run's own namespace, retrying while the backend is away until `deadline`;
/// a backend without `clear` has nothing of its own to leave there beyond the keys
/// already deleted.
///
/// # Errors
///
/// The backend's error, once retrying cannot help or `deadline` has come.
pub async fn clear_namespace(cache: &dyn Cache, deadline: Instant) -> Result<(), CacheError> {
    match patiently(deadline, "clear", || cache.clear()).await {
        Err(CacheError::Unsupported { .. }) => Ok(()),
        other => other,
    }
}

/// What a failed clean-up leaves, in words: the error, and the prefix under which keys
/// may remain.
#[must_use]
pub fn left_behind(err: &CacheError, prefix: &str) -> String {
    format!("clean-up failed: {err}; keys may be left under the prefix {prefix:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn away() -> CacheError {
        CacheError::Unreachable {
            backend: "test",
            source: "down".into(),
        }
    }

    #[test]
    fn runs_nest_under_the_url_prefix() {
        assert_eq!(nested_prefix("redis://h?prefix=app%3A", "run:"), "app:run:");
        assert_eq!(nested_prefix("memory://", "run:"), "run:");
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_and_others_are_not() {
        let calls = AtomicUsize::new(0);
        let result = patiently(patience_from_now(), "get", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(away())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = patiently(patience_from_now(), "get", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CacheError::config("no"))
        })
        .await;
        assert!(matches!(result, Err(CacheError::Config { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out() {
        let started = Instant::now();
        let result: Result<(), _> =
            patiently(patience_from_now(), "get", || async { Err(away()) }).await;
        assert!(matches!(result, Err(CacheError::Unreachable { .. })));
        let waited = started.elapsed();
        assert!(waited <= PATIENCE, "{waited:?}");
        assert!(waited >= PATIENCE / 2, "{waited:?}");
    }

    /// Tries that each take a while before failing count against the patience too, and
    /// so do the batches after the first: one bound for the whole clean-up.
    #[tokio::test(start_paused = true)]
    async fn slow_tries_and_later_batches_share_one_bound() {
        let started = Instant::now();
        let deadline = patience_from_now();
        for _ in 0..3 {
            let result: Result<(), _> = patiently(deadline, "delete_many", || async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Err(CacheError::Timeout {
                    backend: "test",
                    operation: "delete_many",
                    phase: "response",
                    after: Duration::from_secs(3),
                })
            })
            .await;
            assert!(
                matches!(result, Err(CacheError::Timeout { .. })),
                "{result:?}"
            );
        }
        assert!(started.elapsed() <= PATIENCE, "{:?}", started.elapsed());
    }

    /// A try that never ends is given up at the deadline, as a timeout of the clean-up.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_try_is_given_up_at_the_deadline() {
        let started = Instant::now();
        let result: Result<(), _> =
            patiently(patience_from_now(), "clear", std::future::pending).await;
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "clean-up clear timed out after 20s (deadline)"
        );
        assert_eq!(started.elapsed(), PATIENCE);
    }

    #[test]
    fn only_errors_about_the_prefix_get_the_nesting_hint() {
        let url = "memcache://h?prefix=app%3A";
        let long = in_nested_prefix(
            CacheError::config("the key prefix is 140 bytes, more than 128"),
            url,
            "run:",
        );
        assert!(
            long.to_string().ends_with(
                "(this run works in a namespace of its own, 4 bytes long, under the url's \
                 prefix: give the url a shorter prefix)"
            ),
            "{long}"
        );
        let unrelated =
            in_nested_prefix(CacheError::config("unknown parameter \"foo\""), url, "run:");
        assert_eq!(
            unrelated.to_string(),
            "invalid configuration: unknown parameter \"foo\""
        );
        let without_prefix = in_nested_prefix(
            CacheError::config("the key prefix is 140 bytes, more than 128"),
            "memcache://h",
            "run:",
        );
        assert_eq!(
            without_prefix.to_string(),
            "invalid configuration: the key prefix is 140 bytes, more than 128"
        );
    }

    #[test]
    fn a_failed_cleanup_names_what_is_left() {
        let failed = Cleanup {
            removed_keys: 200,
            left_prefix: Some("run:".to_owned()),
            error: Some("timed out".to_owned()),
        };
        assert_eq!(
            failed.describe(),
            "failed after removing 200 keys: timed out; keys may be left under \"run:\""
        );
    }
}
