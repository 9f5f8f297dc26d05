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

use backon::{ExponentialBuilder, Retryable};
use cache_api::{Cache, CacheError};
use serde::Serialize;

/// How long clean-up keeps trying while the backend answers with a retryable error.
const PATIENCE: Duration = Duration::from_secs(20);

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

/// A configuration error met in a namespace nested under the URL's prefix, said as
/// such: a prefix within what the backend takes may leave no room for the `own` part
/// a run puts after it (memcached takes 128 bytes), and the error then names a length
/// the user never wrote. Any other error is returned as it is.
#[must_use]
pub fn in_nested_prefix(err: CacheError, url: &str, own: &str) -> CacheError {
    match err {
        CacheError::Config { message }
            if cache_url::url_key_prefix(url).is_some_and(|prefix| !prefix.is_empty()) =>
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
/// [`PATIENCE`] has gone by.
async fn patiently<T, F, Fut>(step: F) -> Result<T, CacheError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CacheError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_total_delay(Some(PATIENCE))
        .without_max_times();
    step.retry(backoff).when(CacheError::is_retryable).await
}

/// Deletes `keys` in batches, each batch retried while the backend is away, and counts
/// the keys it asked to delete (on failure: those before the failed batch). Invalid keys
/// (the empty key, which checks write on purpose) stored nothing and are skipped.
///
/// # Errors
///
/// The error that ended the clean-up, with the count of keys deleted before it.
pub async fn delete_keys(cache: &dyn Cache, keys: &[String]) -> Result<usize, (usize, CacheError)> {
    let keys: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|key| !key.is_empty())
        .collect();
    let mut deleted = 0;
    for batch in keys.chunks(BATCH) {
        patiently(|| cache.delete_many(batch))
            .await
            .map_err(|err| (deleted, err))?;
        deleted += batch.len();
    }
    Ok(deleted)
}

/// Clears the run's own namespace; a backend without `clear` has nothing of its own
/// to leave there beyond the keys already deleted.
///
/// # Errors
///
/// The backend's error, once retrying cannot help or has taken too long.
pub async fn clear_namespace(cache: &dyn Cache) -> Result<(), CacheError> {
    match patiently(|| cache.clear()).await {
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
        let result = patiently(|| async {
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
        let result: Result<(), _> = patiently(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CacheError::config("no"))
        })
        .await;
        assert!(matches!(result, Err(CacheError::Config { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out() {
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = patiently(|| async { Err(away()) }).await;
        assert!(matches!(result, Err(CacheError::Unreachable { .. })));
        let waited = started.elapsed();
        assert!(waited <= PATIENCE + Duration::from_secs(2), "{waited:?}");
        assert!(waited >= PATIENCE / 2, "{waited:?}");
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
