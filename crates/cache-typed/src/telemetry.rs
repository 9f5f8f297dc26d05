//! `tracing` events and `metrics` counters, in one place so their names stay documented.
//!
//! Every counter carries the label `backend` (the cache's label, as `MetricsLayer`
//! labels its metrics); some add a second label, named below.

use std::fmt::Display;

/// Factory runs, label `outcome`: `ok`, `error`, `panic`.
pub const FACTORY_RUNS: &str = "cache_typed_factory_runs_total";
/// Callers that waited for a factory run another caller started, instead of starting one.
pub const JOINS: &str = "cache_typed_joins_total";
/// Stale values served, label `reason`: `factory_error`, `backend_error`,
/// `soft_timeout`, `hard_timeout`, `throttled`.
pub const STALE_SERVED: &str = "cache_typed_stale_served_total";
/// Background refreshes started by a hit past the eager-refresh threshold.
pub const EAGER_REFRESHES: &str = "cache_typed_eager_refreshes_total";
/// Stored values that did not decode (read as misses).
pub const DECODE_FAILURES: &str = "cache_typed_decode_failures_total";
/// Values computed but not stored (the backend failed, or the value did not encode).
pub const WRITE_FAILURES: &str = "cache_typed_write_failures_total";
/// Distributed lock attempts, label `outcome`: `acquired`, `found_value` (another
/// process computed it), `unavailable` (the backend could not take the lock),
/// `wait_expired` (computed after waiting the longest wait).
pub const LOCKS: &str = "cache_typed_locks_total";

pub(crate) fn factory_run(backend: &'static str, outcome: &'static str) {
    tracing::debug!(backend, outcome, "cache-typed factory ran");
    metrics::counter!(FACTORY_RUNS, "backend" => backend, "outcome" => outcome).increment(1);
}

pub(crate) fn joined(backend: &'static str) {
    tracing::trace!(backend, "cache-typed joined a running factory");
    metrics::counter!(JOINS, "backend" => backend).increment(1);
}

pub(crate) fn stale_served(backend: &'static str, reason: &'static str) {
    tracing::info!(backend, reason, "cache-typed served a stale value");
    metrics::counter!(STALE_SERVED, "backend" => backend, "reason" => reason).increment(1);
}

pub(crate) fn eager_refresh(backend: &'static str) {
    tracing::debug!(backend, "cache-typed eager refresh started");
    metrics::counter!(EAGER_REFRESHES, "backend" => backend).increment(1);
}

pub(crate) fn decode_failed(backend: &'static str, error: &dyn Display) {
    tracing::warn!(backend, %error, "cache-typed read a value it cannot decode: treated as a miss");
    metrics::counter!(DECODE_FAILURES, "backend" => backend).increment(1);
}

pub(crate) fn write_failed(backend: &'static str, error: &dyn Display) {
    tracing::warn!(backend, %error, "cache-typed computed a value but could not store it");
    metrics::counter!(WRITE_FAILURES, "backend" => backend).increment(1);
}

pub(crate) fn read_failed(backend: &'static str, error: &dyn Display) {
    tracing::warn!(backend, %error, "cache-typed read failed: treated as a miss");
}

pub(crate) fn lock(backend: &'static str, outcome: &'static str) {
    tracing::debug!(backend, outcome, "cache-typed distributed lock");
    metrics::counter!(LOCKS, "backend" => backend, "outcome" => outcome).increment(1);
}
