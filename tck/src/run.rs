//! Running checks: one at a time with a timing (for `cachectl` and custom harnesses),
//! or as a `#[test]` body (for the macros).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use cache_api::{Cache, Capabilities};

use crate::{check_named, Check, Failure};

/// The longest a single check may run before it counts as failed: a backend that
/// hangs must fail the check, never hang the suite.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// What a check needs the backend to declare before it means anything: the checks of
/// an optional operation run only on a backend that declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// [`Capabilities::clear`]: the `test_clear_*` checks.
    Clear,
    /// [`Capabilities::atomic_add`]: the `test_add_*` checks and the concurrent ones
    /// named `*_adds_*`.
    AtomicAdd,
}

impl Requirement {
    /// What `check` needs, read from its name: the checks of an optional operation
    /// are named after it.
    #[must_use]
    pub fn of(check: &Check) -> Option<Self> {
        let name = check.name;
        if name.starts_with("test_clear_") {
            Some(Self::Clear)
        } else if name.starts_with("test_add_") || name.contains("_adds_") {
            Some(Self::AtomicAdd)
        } else {
            None
        }
    }

    /// Whether `declared` meets it.
    #[must_use]
    pub fn is_met_by(self, declared: &Capabilities) -> bool {
        match self {
            Self::Clear => declared.clear,
            Self::AtomicAdd => declared.atomic_add,
        }
    }

    /// Why a check needing it does not apply to a backend that does not declare it.
    #[must_use]
    pub fn unmet(self) -> &'static str {
        match self {
            Self::Clear => "the backend declares no clear",
            Self::AtomicAdd => "the backend declares no atomic add",
        }
    }
}

/// How a check that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The check ran and everything it expects held.
    Passed,
    /// The check did not run: it is about an operation the backend does not declare
    /// (the reason says which). Never a pass.
    NotApplicable(&'static str),
}

/// The result of one check: its name, how long it took and how it ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check that ran.
    pub check: &'static Check,
    /// Wall-clock time of the check, waits for expiry included.
    pub elapsed: Duration,
    /// `Ok(Verdict::Passed)` when the check passed, `Ok(Verdict::NotApplicable(_))`
    /// when it did not run, `Err` with what went wrong when it failed.
    pub result: Result<Verdict, Failure>,
}

impl Outcome {
    /// True when the check ran and passed (a check that did not apply did not pass).
    #[must_use]
    pub fn passed(&self) -> bool {
        matches!(self.result, Ok(Verdict::Passed))
    }

    /// Why the check did not apply to the backend, when it did not.
    #[must_use]
    pub fn not_applicable(&self) -> Option<&'static str> {
        match self.result {
            Ok(Verdict::NotApplicable(reason)) => Some(reason),
            _ => None,
        }
    }
}

/// Runs `check` on `cache` inside the caller's Tokio runtime, bounded by
/// [`CHECK_TIMEOUT`]. A check about an operation the cache does not declare in its
/// [capabilities](Cache::limits) does not run ([`Verdict::NotApplicable`]); one it
/// declares runs, and fails when the cache does not keep it.
///
/// ```
/// # async fn demo(cache: &dyn cache_api::Cache) {
/// for check in cache_tck::CHECKS {
///     let outcome = cache_tck::run_check(check, cache).await;
///     let status = match (outcome.passed(), outcome.not_applicable()) {
///         (true, _) => "ok",
///         (false, Some(_)) => "not applicable",
///         (false, None) => "FAILED",
///     };
///     println!("{} {status}", check.name);
/// }
/// # }
/// ```
pub async fn run_check(check: &'static Check, cache: &dyn Cache) -> Outcome {
    let started = Instant::now();
    if let Some(requirement) = Requirement::of(check) {
        if !requirement.is_met_by(&cache.limits()) {
            return Outcome {
                check,
                elapsed: started.elapsed(),
                result: Ok(Verdict::NotApplicable(requirement.unmet())),
            };
        }
    }
    let result = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)(cache)).await {
        Ok(result) => result.map(|()| Verdict::Passed),
        Err(_) => Err(hung(check)),
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
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = C>,
    C: Cache + 'static,
{
    let check = check_named(name).unwrap_or_else(|| panic!("cache-tck has no check named {name}"));
    let (elapsed, result) = watched(check, move || {
        let outcome = test_runtime().block_on(async {
            let cache = factory().await;
            let outcome = run_check(check, &cache).await;
            // Dropped inside the runtime: a cache may need it to close its connections.
            drop(cache);
            outcome
        });
        (outcome.elapsed, outcome.result)
    });
    report(name, elapsed, result);
}

/// How long past [`CHECK_TIMEOUT`] a test waits for the thread that runs its check.
const WATCH_GRACE: Duration = Duration::from_secs(15);

/// Runs `body` (a check on its own runtime) on a thread of its own, and waits for it
/// no longer than [`CHECK_TIMEOUT`] and [`WATCH_GRACE`]: a backend that blocks the
/// thread it is called on (a blocking call without a timeout of its own) stops the
/// check's timer with it, and would hang the test for ever. A panic in the check is
/// its failure, named.
fn watched(
    check: &'static Check,
    body: impl FnOnce() -> (Duration, Result<Verdict, Failure>) + Send + 'static,
) -> (Duration, Result<Verdict, Failure>) {
    watched_for(check, CHECK_TIMEOUT + WATCH_GRACE, body)
}

/// [`watched`], waiting at most `limit`.
fn watched_for(
    check: &'static Check,
    limit: Duration,
    body: impl FnOnce() -> (Duration, Result<Verdict, Failure>) + Send + 'static,
) -> (Duration, Result<Verdict, Failure>) {
    let started = Instant::now();
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(check.name.to_owned())
        .spawn(move || {
            let _ = done.send(body());
        });
    let thread = match spawned {
        Ok(thread) => thread,
        Err(err) => {
            let failure = Failure::new(check.name, "a thread to run the check on", err.to_string());
            return (started.elapsed(), Err(failure));
        }
    };
    match finished.recv_timeout(limit) {
        Ok(outcome) => outcome,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (
            started.elapsed(),
            Err(Failure::new(
                check.name,
                format!("the check to finish within {limit:?}"),
                "no answer, and its own timeout did not fire either: the backend blocked \
                 the thread it was called on (a blocking call without a timeout?)",
            )),
        ),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let panic = thread.join().err();
            let message = panic
                .as_deref()
                .map_or("(no message)", |payload| {
                    payload
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("(not a string)")
                })
                .to_owned();
            (
                started.elapsed(),
                Err(Failure::new(
                    check.name,
                    "the check to end with an answer",
                    format!("a panic: {message}"),
                )),
            )
        }
    }
}

/// Runs the one check that needs two caches of a backend,
/// [`test_clear_leaves_other_caches_alone`](crate::checks::test_clear_leaves_other_caches_alone)
/// ([`PAIR`](crate::PAIR)), on `cache` and `other` (two caches from the same factory: two
/// namespaces on one server, or two instances), inside the caller's Tokio runtime and
/// bounded by [`CHECK_TIMEOUT`]. Not applicable when `cache` declares no `clear`. It is
/// not in [`CHECKS`](crate::CHECKS), whose checks take one cache;
/// [`extended_tests!`](crate::extended_tests) stamps it out beside them.
pub async fn run_pair_check(cache: &dyn Cache, other: &dyn Cache) -> Outcome {
    let check = &crate::PAIR;
    let started = Instant::now();
    let result = if Requirement::Clear.is_met_by(&cache.limits()) {
        let run = crate::__with_pair_check!(__pair_check_fn!())(cache, other);
        match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            Ok(result) => result.map(|()| Verdict::Passed),
            Err(_) => Err(hung(check)),
        }
    } else {
        Ok(Verdict::NotApplicable(Requirement::Clear.unmet()))
    };
    Outcome {
        check,
        elapsed: started.elapsed(),
        result,
    }
}

/// Runs the check of two caches ([`run_pair_check`]) on caches from `factory`, as
/// [`extended_tests!`](crate::extended_tests) does, after steps that need the factory
/// itself: a cache that wrote a key and was dropped leaves nothing to the next cache the
/// factory makes (no namespace handed out again uncleaned), and making a cache leaves
/// the entries of a cache made before it alone (no wipe of the store when a cache is
/// made). The factory is called three times; the whole is bounded by [`CHECK_TIMEOUT`].
pub async fn run_pair_check_from<F, Fut, C>(factory: F) -> Outcome
where
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    let started = Instant::now();
    let lifecycle = async {
        crate::checks::write_then_drop(factory().await).await?;
        let cache = factory().await;
        crate::checks::clean_after_a_dropped_one(&cache).await?;
        let other = factory().await;
        crate::checks::kept_when_another_is_made(&cache).await?;
        Ok((cache, other))
    };
    let (cache, other) = match tokio::time::timeout(CHECK_TIMEOUT, lifecycle).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(failure)) => {
            return Outcome {
                check: &crate::PAIR,
                elapsed: started.elapsed(),
                result: Err(failure),
            }
        }
        Err(_) => {
            return Outcome {
                check: &crate::PAIR,
                elapsed: started.elapsed(),
                result: Err(hung(&crate::PAIR)),
            }
        }
    };
    let outcome = run_pair_check(&cache, &other).await;
    drop((cache, other));
    Outcome {
        elapsed: started.elapsed(),
        ..outcome
    }
}

/// The failure of a check that did not end within [`CHECK_TIMEOUT`].
fn hung(check: &Check) -> Failure {
    Failure::new(
        check.name,
        format!("the check to finish within {CHECK_TIMEOUT:?}"),
        "no answer (the backend hung)",
    )
}

/// The body of the generated `#[test]` of [`run_pair_check`]: runs
/// [`run_pair_check_from`] on the factory.
///
/// # Panics
///
/// When the check fails.
pub fn run_pair_test<F, Fut, C>(factory: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = C>,
    C: Cache + 'static,
{
    let (elapsed, result) = watched(&crate::PAIR, move || {
        let outcome = test_runtime().block_on(run_pair_check_from(factory));
        (outcome.elapsed, outcome.result)
    });
    report(crate::PAIR.name, elapsed, result);
}

/// The runtime of a generated `#[test]`.
/// The body of the model test [`extended_tests!`](crate::extended_tests) stamps out:
/// [`model::run`](crate::model::run) with the factory, 16 sequences at a time
/// (`CACHE_MODEL_CASES`, `CACHE_MODEL_SEED` read), on a runtime of its own; a
/// disagreement with the model fails the test with its shrunk sequence.
pub fn run_model_test<F, Fut, C>(factory: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
    C: Cache,
{
    let config = match crate::model::Config::from_env() {
        Ok(config) => config.with_parallel(16),
        Err(err) => panic!("{}: {err}", MODEL_TEST),
    };
    match test_runtime().block_on(crate::model::run(factory, &config)) {
        Ok(report) => {
            eprintln!("{MODEL_TEST}: {report}");
            assert!(report.cases > 0, "{MODEL_TEST}: no sequence ran: {report}");
        }
        Err(failure) => panic!("{MODEL_TEST}:\n{failure}"),
    }
}

/// The name of the model test of [`extended_tests!`](crate::extended_tests).
const MODEL_TEST: &str = "test_random_sequences_keep_the_model";

fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cache-tck could not build a tokio runtime for the test")
}

/// Ends a generated `#[test]` as its check ended.
fn report(name: &str, elapsed: Duration, result: Result<Verdict, Failure>) {
    match result {
        Ok(Verdict::Passed) => {}
        // A #[test] has no third state: it passes, and says on its output that it
        // checked nothing (`cargo test -- --nocapture` shows it).
        Ok(Verdict::NotApplicable(reason)) => println!("{name}: not applicable: {reason}"),
        Err(failure) => panic!("{name} failed after {elapsed:?}\n  {failure}"),
    }
}

/// The first doc line of the check called `name`, read from the checks' own source so
/// that the documentation is the single statement of what each check expects.
pub(crate) fn doc_line(name: &str) -> String {
    let signature = format!("pub async fn {name}(");
    let Some((source, at)) = crate::checks::SOURCES
        .iter()
        .find_map(|source| source.find(&signature).map(|at| (*source, at)))
    else {
        return String::new();
    };
    // The doc comment above the signature, read upwards; then its first paragraph.
    let mut doc: Vec<&str> = source[..at]
        .lines()
        .rev()
        .map_while(|line| line.trim_start().strip_prefix("///"))
        .map(str::trim)
        .collect();
    doc.reverse();
    doc.into_iter()
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CHECKS;
    use cache_api::{async_trait, Bytes, CacheError};

    /// A check whose thread is blocked (a backend's blocking call) fails once the
    /// watch gives up, saying so; a check that panics fails with the panic's message.
    #[test]
    fn blocked_and_panicking_checks_fail_and_say_why() {
        let check = &CHECKS[0];
        let (_, blocked) = watched_for(check, Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(2));
            (Duration::ZERO, Ok(Verdict::Passed))
        });
        let failure = blocked.expect_err("a blocked check passed");
        assert!(failure.actual.contains("blocked the thread"), "{failure}");
        let (_, panicked) = watched_for(check, Duration::from_secs(5), || panic!("boom"));
        let failure = panicked.expect_err("a panicking check passed");
        assert!(failure.actual.contains("a panic: boom"), "{failure}");
        let (_, passed) = watched_for(check, Duration::from_secs(5), || {
            (Duration::ZERO, Ok(Verdict::Passed))
        });
        assert!(matches!(passed, Ok(Verdict::Passed)));
    }

    #[test]
    fn every_check_states_what_it_expects() {
        for check in CHECKS.iter().chain([&crate::PAIR]) {
            let expects = check.expects();
            // A whole sentence, however many lines the documentation gives it.
            assert!(
                expects.ends_with('.') && !expects.contains("  "),
                "{} states no whole sentence: {expects:?}",
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

    /// Clears and adds on request; declares only what it is told to.
    struct Declaring(
        Capabilities,
        std::sync::Mutex<std::collections::HashMap<String, Bytes>>,
    );

    #[async_trait]
    impl Cache for Declaring {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            cache_api::validate_key(key)?;
            Ok(self.1.lock().unwrap().get(key).cloned())
        }
        async fn set(
            &self,
            key: &str,
            value: Bytes,
            _: Option<Duration>,
        ) -> Result<(), CacheError> {
            cache_api::validate_key(key)?;
            self.1.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            cache_api::validate_key(key)?;
            Ok(self.1.lock().unwrap().remove(key).is_some())
        }
        /// Claims success and removes nothing.
        async fn clear(&self) -> Result<(), CacheError> {
            Ok(())
        }
        fn limits(&self) -> Capabilities {
            self.0
        }
    }

    /// A clear check does not apply to a backend that declares no clear, and is not
    /// a pass there; the same check fails a backend that declares clear and does not
    /// keep it.
    #[tokio::test]
    async fn checks_of_an_undeclared_operation_do_not_apply_and_declared_ones_run() {
        let check = check_named("test_clear_removes_every_entry").unwrap();
        assert_eq!(Requirement::of(check), Some(Requirement::Clear));
        let silent = Declaring(Capabilities::default(), Default::default());
        let outcome = run_check(check, &silent).await;
        assert!(!outcome.passed(), "{outcome:?}");
        assert_eq!(
            outcome.not_applicable(),
            Some("the backend declares no clear")
        );

        let lying = Declaring(Capabilities::default().with_clear(), Default::default());
        let outcome = run_check(check, &lying).await;
        assert!(outcome.result.is_err(), "{outcome:?}");
        assert_eq!(outcome.not_applicable(), None);

        let basic = check_named("test_set_and_get_value_without_ttl").unwrap();
        assert_eq!(Requirement::of(basic), None);
        assert!(run_check(basic, &silent).await.passed());
    }

    #[test]
    fn check_names_are_unique_and_core_has_the_five() {
        let mut names: Vec<_> = CHECKS
            .iter()
            .chain([&crate::PAIR])
            .map(|c| c.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len() + 1);
        assert_eq!(crate::checks_in(crate::Group::Core).count(), 5);
    }

    /// The check of two caches states what it expects, runs only on a backend that
    /// declares clear, and fails one that claims to clear and does not; given one cache
    /// only, it fails saying it needs two.
    #[tokio::test]
    async fn the_check_of_two_caches_runs_only_as_such() {
        let pair = &crate::PAIR;
        assert_eq!(
            pair.expects(),
            "`clear`, `delete` and `delete_many` on one cache leave another cache of the same \
             factory untouched."
        );
        assert_eq!(Requirement::of(pair), Some(Requirement::Clear));
        let silent = || Declaring(Capabilities::default(), Default::default());
        let outcome = run_pair_check(&silent(), &silent()).await;
        assert_eq!(
            outcome.not_applicable(),
            Some("the backend declares no clear")
        );
        let lying = || Declaring(Capabilities::default().with_clear(), Default::default());
        let outcome = run_pair_check(&lying(), &lying()).await;
        let failure = outcome.result.expect_err("a clear that removes nothing");
        assert!(failure.to_string().contains("after clear"), "{failure}");
        let alone = run_check(pair, &lying()).await;
        let failure = alone.result.expect_err("one cache is not enough");
        assert!(failure.to_string().contains("two caches"), "{failure}");
    }
}
