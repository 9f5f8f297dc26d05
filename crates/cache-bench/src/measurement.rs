//! What a run measured: counts and an HDR histogram of latencies, and the figures a
//! report prints of them.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms tell apart; slower operations are recorded as this.
pub(crate) const HIGHEST_NANOS: u64 = 60_000_000_000;

/// Latencies a task buffers before adding them to the run's histogram. One histogram per
/// task would be simpler, but each is some 200 KiB: at 128 tasks they crowd out of the
/// CPU caches what the client under test needs, and the load generator shows in the
/// figures.
const LATENCY_BATCH: usize = 256;

/// The outcome of one run, or of several merged.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Operations done.
    pub ops: u64,
    /// Keys read or written: `ops` times the batch for `get_many`.
    pub keys: u64,
    /// Keys read that were found.
    pub hits: u64,
    /// Keys read that were not found.
    pub misses: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The message of the first failure.
    pub first_error: Option<String>,
    /// Wall time of the runs, summed.
    pub elapsed: Duration,
    /// Latency of every operation, in nanoseconds.
    pub histogram: Histogram<u64>,
}

impl Default for Measurement {
    fn default() -> Self {
        Self::new()
    }
}

impl Measurement {
    /// An empty measurement, ready to merge others into.
    pub fn new() -> Self {
        Self::with_histogram(
            Histogram::new_with_bounds(1, HIGHEST_NANOS, 3).expect("valid histogram bounds"),
        )
    }

    /// A measurement of a task that only counts: its latencies go to the run's shared
    /// histogram, so its own starts empty and tiny, and stays so.
    pub(crate) fn counting() -> Self {
        Self::with_histogram(Histogram::new(3).expect("valid histogram precision"))
    }

    fn with_histogram(histogram: Histogram<u64>) -> Self {
        Self {
            ops: 0,
            keys: 0,
            hits: 0,
            misses: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            histogram,
        }
    }

    /// Adds the counts and latencies of `other`; wall times add up too, so merged
    /// rounds give the throughput over all of them.
    pub fn merge(&mut self, other: &Measurement) {
        self.ops += other.ops;
        self.keys += other.keys;
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.elapsed += other.elapsed;
        self.histogram
            .add(&other.histogram)
            .expect("histograms of the same bounds merge");
    }

    /// Operations per second of wall time.
    pub fn ops_per_sec(&self) -> f64 {
        per_second(self.ops, self.elapsed)
    }

    /// Keys per second of wall time.
    pub fn keys_per_sec(&self) -> f64 {
        per_second(self.keys, self.elapsed)
    }

    /// Latency at quantile `q` (0.5 for the median), in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1_000.0
    }

    /// Highest latency recorded, in microseconds.
    pub fn max_us(&self) -> f64 {
        self.histogram.max() as f64 / 1_000.0
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The figures of one side of a run, as reports print them.
#[derive(Debug, Clone, Serialize)]
pub struct SideReport {
    /// Operations done.
    pub ops: u64,
    /// Keys read or written.
    pub keys: u64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Keys per second.
    pub keys_per_sec: f64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, in microseconds.
    pub p999_us: f64,
    /// Highest latency, in microseconds.
    pub max_us: f64,
    /// Keys read that were found.
    pub hits: u64,
    /// Keys read that were not found.
    pub misses: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The message of the first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl From<&Measurement> for SideReport {
    fn from(m: &Measurement) -> Self {
        Self {
            ops: m.ops,
            keys: m.keys,
            seconds: m.elapsed.as_secs_f64(),
            ops_per_sec: m.ops_per_sec(),
            keys_per_sec: m.keys_per_sec(),
            p50_us: m.latency_us(0.5),
            p99_us: m.latency_us(0.99),
            p999_us: m.latency_us(0.999),
            max_us: m.max_us(),
            hits: m.hits,
            misses: m.misses,
            errors: m.errors,
            first_error: m.first_error.clone(),
        }
    }
}

/// A task's latencies on their way to the run's one histogram, in batches.
pub(crate) struct Latencies {
    shared: Arc<Mutex<Histogram<u64>>>,
    batch: Vec<u64>,
}

impl Latencies {
    pub(crate) fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Self {
        Self {
            shared,
            batch: Vec::with_capacity(LATENCY_BATCH),
        }
    }

    pub(crate) fn record(&mut self, nanos: u64) {
        self.batch.push(nanos.clamp(1, HIGHEST_NANOS));
        if self.batch.len() == LATENCY_BATCH {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        // A task that panicked while holding the lock left whole counts behind.
        let mut histogram = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        for &nanos in &self.batch {
            histogram.saturating_record(nanos);
        }
        self.batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rounds_add_up_and_keep_the_first_error() {
        let mut first = Measurement::new();
        first.ops = 10;
        first.elapsed = Duration::from_secs(1);
        first.histogram.record(1_000).unwrap();
        let mut second = Measurement::new();
        second.ops = 30;
        second.errors = 1;
        second.first_error = Some("boom".to_owned());
        second.elapsed = Duration::from_secs(1);
        second.histogram.record(2_000).unwrap();
        let mut total = Measurement::new();
        total.merge(&first);
        total.merge(&second);
        assert_eq!(total.ops, 40);
        assert_eq!(total.ops_per_sec(), 20.0);
        assert_eq!(total.first_error.as_deref(), Some("boom"));
        let side = SideReport::from(&total);
        // Below 2,048 ns a 3-digit histogram records every nanosecond exactly.
        assert_eq!(side.max_us, 2.0);
        assert_eq!(side.p50_us, 1.0);
    }

    #[test]
    fn no_time_is_no_rate() {
        assert_eq!(Measurement::new().ops_per_sec(), 0.0);
    }
}
