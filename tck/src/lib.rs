#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod checks;
mod expect;
mod failure;
pub mod model;
mod recorder;
mod run;

use std::{fmt, future::Future, pin::Pin};

pub use cache_api::Cache;
pub use expect::config_message;
pub use failure::{CheckResult, Failure};
pub use recorder::KeyRecorder;
pub use run::{
    run_check, run_pair_check, run_pair_check_from, Outcome, Requirement, Verdict, CHECK_TIMEOUT,
};

/// A check's future, borrowed from the cache it runs on.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// The group a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// The five checks of the original contract, stamped out by [`contract_tests!`].
    Core,
    /// Every other rule of the contract, stamped out by [`extended_tests!`].
    Extended,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Group::Core => "core",
            Group::Extended => "extended",
        })
    }
}

/// One check of the contract: its name (also the name of the generated test), its
/// group, the expected result in one line, and the function that runs it.
#[derive(Clone, Copy)]
pub struct Check {
    /// The check's name, e.g. `test_key_expires_after_ttl`.
    pub name: &'static str,
    /// Core or extended.
    pub group: Group,
    /// Runs the check on a fresh, clean cache.
    pub run: for<'a> fn(&'a dyn Cache) -> CheckFuture<'a>,
}

impl Check {
    /// What must hold, in one line: the first paragraph of the check's documentation.
    #[must_use]
    pub fn expects(&self) -> String {
        run::doc_line(self.name)
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The single list of checks: [`CHECKS`], [`contract_tests!`] and [`extended_tests!`]
/// are all generated from it, so a check added here is run everywhere.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_checks {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)*
            Core [
                test_set_and_get_value_without_ttl,
                test_get_non_existent_key_is_a_cache_miss,
                test_key_expires_after_ttl,
                test_delete_removes_key_before_expiry,
                test_set_overwrites_existing_value_and_ttl,
            ]
            Extended [
                test_zero_ttl_stores_nothing_and_removes_previous_value,
                test_set_without_ttl_clears_previous_ttl,
                test_set_of_the_same_value_still_replaces_the_ttl,
                test_overwrite_with_a_longer_ttl_extends_the_entry,
                test_ttls_of_seconds_are_kept_to_the_granularity,
                test_ttl_below_granularity_is_rounded_up,
                test_entries_are_present_well_before_their_ttl,
                test_entries_without_ttl_outlive_every_ttl_of_the_run,
                test_long_ttls_are_readable_right_away,
                test_unrepresentable_ttl_is_kept_or_rejected,
                test_delete_reports_whether_a_live_entry_was_removed,
                test_delete_of_an_expired_entry_returns_false,
                test_empty_value_round_trips,
                test_empty_value_overwrites_non_empty_value,
                test_binary_values_round_trip,
                test_declared_limits_are_within_the_contract,
                test_values_of_every_size_up_to_the_limit_round_trip,
                test_largest_value_round_trips,
                test_value_over_limit_is_rejected_and_harms_nothing,
                test_empty_key_is_invalid_on_every_operation,
                test_long_keys_round_trip,
                test_very_long_keys_round_trip_and_stay_apart,
                test_keys_with_spaces_control_characters_and_non_ascii_round_trip,
                test_distinct_keys_never_collide,
                test_thousands_of_keys_stay_apart,
                test_keys_cannot_inject_protocol_commands,
                test_get_many_keeps_order_and_reports_misses,
                test_get_many_answers_duplicate_keys_at_each_position,
                test_get_many_agrees_with_get_after_overwrite_delete_and_expiry,
                test_bulk_operations_accept_empty_lists,
                test_set_many_stores_every_entry_with_the_ttl,
                test_set_many_without_ttl_clears_previous_ttl,
                test_set_many_with_an_unrepresentable_ttl_writes_all_or_nothing,
                test_delete_many_counts_removed_entries,
                test_delete_many_does_not_count_expired_entries,
                test_exists_agrees_with_get,
                test_add_of_an_absent_key_stores_it_and_returns_true,
                test_add_of_a_present_key_returns_false_and_changes_nothing,
                test_add_over_an_expired_entry_stores_and_returns_true,
                test_add_after_delete_stores_again,
                test_add_with_a_zero_ttl_stores_nothing_and_returns_false,
                test_add_refuses_caller_mistakes_and_writes_nothing,
                test_concurrent_adds_from_many_tasks_have_exactly_one_winner,
                test_parallel_adds_on_many_threads_have_exactly_one_winner,
                test_clear_removes_every_entry,
                test_clear_removes_entries_from_every_write_path,
                test_clear_on_an_empty_cache_succeeds,
                test_concurrent_use_from_many_tasks,
                test_parallel_writers_on_many_threads_lose_no_write,
                test_writes_on_one_thread_are_seen_by_reads_on_another,
                test_reads_during_overwrites_end_on_the_last_write,
            ]
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __check_list {
    ($($group:ident [$($name:ident,)*])*) => {
        &[$($(
            $crate::Check {
                name: stringify!($name),
                group: $crate::Group::$group,
                run: |cache| ::std::boxed::Box::pin($crate::checks::$name(cache)),
            },
        )*)*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __check_tests {
    ($factory:path, $wanted:ident, $($group:ident [$($name:ident,)*])*) => {
        $($crate::__check_tests!(@group $factory, $wanted, $group [$($name,)*]);)*
    };
    (@group $factory:path, Core, Core [$($name:ident,)*]) => {
        $crate::__check_tests!(@emit $factory, $($name,)*);
    };
    (@group $factory:path, Extended, Extended [$($name:ident,)*]) => {
        $crate::__check_tests!(@emit $factory, $($name,)*);
        $crate::__with_pair_check!(__pair_test!($factory,));
    };
    (@group $factory:path, $wanted:ident, $group:ident [$($name:ident,)*]) => {};
    (@emit $factory:path, $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::__private::run_test(stringify!($name), $factory);
            }
        )*
    };
}

/// The name of the check of two caches, handed to `$callback` as an identifier: the
/// function of [`checks`] that holds it, the test [`extended_tests!`] stamps out and
/// [`PAIR`]'s name all come from here.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_pair_check {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { $($args)* test_clear_leaves_other_caches_alone }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pair_test {
    ($factory:path, $name:ident) => {
        #[test]
        fn $name() {
            $crate::__private::run_pair_test($factory);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pair_check_name {
    ($name:ident) => {
        stringify!($name)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pair_check_fn {
    ($name:ident) => {
        $crate::checks::$name
    };
}

/// The check of two caches, [`run_pair_check`]'s, as a [`Check`] for lists and reports
/// beside [`CHECKS`] (`cachectl check` runs it after them). Its `run`, given one cache,
/// fails saying that it needs two.
pub const PAIR: Check = Check {
    name: __with_pair_check!(__pair_check_name!()),
    group: Group::Extended,
    run: one_cache_is_not_enough,
};

fn one_cache_is_not_enough(_: &dyn Cache) -> CheckFuture<'_> {
    Box::pin(async {
        Err(Failure::new(
            PAIR.name,
            "two caches of the backend (run_pair_check)",
            "one cache",
        ))
    })
}

/// Every check, core first, in the order of the contract.
pub const CHECKS: &[Check] = __with_checks!(__check_list!());

/// The checks of one group.
pub fn checks_in(group: Group) -> impl Iterator<Item = &'static Check> {
    CHECKS.iter().filter(move |check| check.group == group)
}

/// Looks a check up by name.
pub fn check_named(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|check| check.name == name)
}

/// Stamps out the five core checks as `#[test]` functions in the module where it is
/// invoked: `test_set_and_get_value_without_ttl`,
/// `test_get_non_existent_key_is_a_cache_miss`, `test_key_expires_after_ttl`,
/// `test_delete_removes_key_before_expiry` and
/// `test_set_overwrites_existing_value_and_ttl`.
///
/// `factory` is a path to an `async fn` returning any [`Cache`] (`Arc<dyn Cache>`
/// included); each test calls it once for a fresh, clean instance. The tests build
/// their own Tokio runtime, so the invoking crate needs no async runtime of its own.
///
/// ```
/// // In tests/contract.rs of a backend crate:
/// # use cache_api::{async_trait, Bytes, Cache, CacheError};
/// # struct MyCache;
/// # #[async_trait] impl Cache for MyCache {
/// #   async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> { Ok(None) }
/// #   async fn set(&self, _: &str, _: Bytes, _: Option<std::time::Duration>) -> Result<(), CacheError> { Ok(()) }
/// #   async fn delete(&self, _: &str) -> Result<bool, CacheError> { Ok(false) }
/// # }
/// async fn fresh_cache() -> MyCache {
///     MyCache
/// }
///
/// cache_tck::contract_tests!(fresh_cache);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! contract_tests {
    ($factory:path $(,)?) => {
        $crate::__with_checks!(__check_tests!($factory, Core,));
    };
}

/// Stamps out the extended checks (every rule of the contract beyond the five core
/// ones) as `#[test]` functions in the module where it is invoked. Same `factory` as
/// [`contract_tests!`], called once per test, except by
/// `test_clear_leaves_other_caches_alone` ([`run_pair_check`]), which asks it for two
/// caches: the factory must give each call a cache of its own (on a shared server, a
/// namespace of its own), as it must for tests that run side by side; and
/// `test_random_sequences_keep_the_model`, which runs [`model::run`] with the factory
/// (random sequences of every declared operation against the reference model, 16 at a
/// time, `CACHE_MODEL_CASES` and `CACHE_MODEL_SEED` read; a failure prints the shrunk
/// sequence).
#[macro_export]
macro_rules! extended_tests {
    ($factory:path $(,)?) => {
        $crate::__with_checks!(__check_tests!($factory, Extended,));

        /// Random sequences of every declared operation against the reference model
        /// (`cache_tck::model`).
        #[test]
        fn test_random_sequences_keep_the_model() {
            $crate::__private::run_model_test($factory);
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::run::{run_model_test, run_pair_test, run_test};
}
