//! Running checks: one at a time with a timing (for `cachectl` and custom harnesses),
//! or as a `#[test]` body (for the macros).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use cache_api::Cache;

use crate::{check_named, Check, Failure};

/// The longest a single check may run before it counts as failed: a backend that
/// hangs must fail the check, never hang the suite.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// The result of one check: its name, how long it took and whether it passed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check that ran.
    pub check: &'static Check,
    /// Wall-clock time of the check, waits for expiry included.
    pub elapsed: Duration,
    /// `Ok(())` when the check passed.
    pub result: Result<(), Failure>,
}

impl Outcome {
    /// True when the check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Runs `check` on `cache` inside the caller's Tokio runtime, bounded by
/// [`CHECK_TIMEOUT`].
///
/// ```
/// # async fn demo(cache: &dyn cache_api::Cache) {
/// for check in cache_tck::CHECKS {
///     let outcome = cache_tck::run_check(check, cache).await;
///     println!("{} {}", check.name, if outcome.passed() { "ok" } else { "FAILED" });
/// }
/// # }
/// ```
pub async fn run_check(check: &'static Check, cache: &dyn Cache) -> Outcome {
    let started = Instant::now();
    let result = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)(cache)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            check.name,
            format!("the check to finish within {CHECK_TIMEOUT:?}"),
            "no answer (the backend hung)",
        )),
    };
    Outcome {
        check,
        elapsed: started.elapsed(),
        result,
    }
}

/// The body of every generated `#[test]`: builds a runtime, asks the factory for a
/// fresh cache, runs the named check, and panics with the failure.
///
/// # Panics
///
/// When the check fails (that is the test failing), or when no check has that name.
pub fn run_test<F, Fut, C>(name: &str, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = C>,
    C: Cache + 'static,
{
    let check = check_named(name).unwrap_or_else(|| panic!("cache-tck has no check named {name}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cache-tck could not build a tokio runtime for the test");
    let outcome = runtime.block_on(async {
        let cache = factory().await;
        let outcome = run_check(check, &cache).await;
        // Dropped inside the runtime: a cache may need it to close its connections.
        drop(cache);
        outcome
    });
    if let Err(failure) = outcome.result {
        panic!("{name} failed after {:?}\n  {failure}", outcome.elapsed);
    }
}

/// The first doc line of the check called `name`, read from the checks' own source so
/// that the documentation is the single statement of what each check expects.
pub(crate) fn doc_line(name: &str) -> &'static str {
    let signature = format!("pub async fn {name}(");
    let Some((source, at)) = crate::checks::SOURCES
        .iter()
        .find_map(|source| source.find(&signature).map(|at| (*source, at)))
    else {
        return "";
    };
    let mut first = "";
    for line in source[..at].lines().rev() {
        match line.trim_start().strip_prefix("///") {
            Some(doc) => first = doc.trim(),
            None => break,
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CHECKS;

    #[test]
    fn every_check_states_what_it_expects() {
        for check in CHECKS {
            assert!(
                !check.expects().is_empty(),
                "{} has no doc line",
                check.name
            );
        }
        assert_eq!(
            check_named("test_get_non_existent_key_is_a_cache_miss")
                .unwrap()
                .expects(),
            "`get` of a key that was never set is `Ok(None)`, not an error and not an empty value."
        );
    }

    #[test]
    fn check_names_are_unique_and_core_has_the_five() {
        let mut names: Vec<_> = CHECKS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        assert_eq!(crate::checks_in(crate::Group::Core).count(), 5);
    }
}
