//! The load generator behind `cachectl bench`: tasks that run one workload against a
//! [`Target`] until a time or an operation budget is spent, recording the latency of
//! every operation in a per-task HDR histogram that is merged at the end.
//!
//! It depends only on `tokio`, `bytes` and `hdrhistogram`, so that the peer benchmarks
//! (`benches/peers`, a crate outside the workspace) compile this very file and measure
//! other libraries with the identical loop.

use std::{
    future::Future,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;

/// Any error of a target, kept only for its message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Highest latency the histograms tell apart; slower operations are recorded as this.
const HIGHEST_NANOS: u64 = 60_000_000_000;

/// Operations a task counts locally before adding them to the shared progress counter:
/// one shared atomic per operation would cost the fastest backends a measurable share.
const PROGRESS_EVERY: u64 = 64;

/// Latencies a task buffers before adding them to the run's histogram. One histogram per
/// task would be simpler, but each is some 200 KiB: at 128 tasks they crowd out of the
/// CPU caches what the client under test needs, and the load generator shows in the
/// figures.
const LATENCY_BATCH: usize = 256;

/// The runtime a benchmark runs on: with `threads` of 1, everything (load, client, the
/// connections' own tasks) on the current thread, as in the one event loop of
/// redis-benchmark; otherwise a multi-thread runtime of that many workers, one per core
/// by default.
///
/// # Errors
///
/// When the operating system refuses the threads or the I/O driver.
pub(crate) fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(threads) = threads.filter(|threads| *threads > 1) {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}

/// What a benchmark drives: the adapter behind `dyn Cache`, a raw client, or a peer
/// library. The futures are `Send` so that tasks can run on any worker thread.
pub(crate) trait Target: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, BoxError>> + Send;
    /// Writes one key without a TTL.
    fn set(&self, key: &str, value: Bytes) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Reads several keys, answers in the same order.
    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, BoxError>> + Send;
    /// Removes several keys.
    fn delete_many(&self, keys: &[&str]) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// What each operation of a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `get` of a key that is stored (the keys are written before the run).
    Get,
    /// `get` of a key that was never written.
    GetMiss,
    /// `set` of a stored key, without TTL.
    Set,
    /// 90 % `get`, 10 % `set`, on stored keys.
    Mix,
    /// `get_many` of a batch of stored keys.
    GetMany,
}

impl Workload {
    /// Every workload, in the order reports list them.
    pub(crate) const ALL: [Workload; 5] = [
        Workload::Get,
        Workload::GetMiss,
        Workload::Set,
        Workload::Mix,
        Workload::GetMany,
    ];

    /// The name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::GetMiss => "get-miss",
            Workload::Set => "set",
            Workload::Mix => "mix",
            Workload::GetMany => "get-many",
        }
    }

    /// Whether the keys must be stored before the run.
    pub(crate) fn needs_data(self) -> bool {
        matches!(self, Workload::Get | Workload::Mix | Workload::GetMany)
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL
                    .iter()
                    .map(|workload| workload.name())
                    .collect();
                format!(
                    "unknown workload {text:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Everything that stays the same across the runs of one benchmark.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) workload: Workload,
    /// Keys per `get_many`.
    pub(crate) batch: usize,
    /// The stored keys, built once so that formatting them is not measured.
    pub(crate) keys: Vec<String>,
    /// Keys that are never written, for `get-miss`.
    pub(crate) miss_keys: Vec<String>,
    /// The value every `set` writes (cloning a `Bytes` copies no data).
    pub(crate) value: Bytes,
    /// Tasks running operations at once.
    pub(crate) concurrency: usize,
}

impl Plan {
    /// A plan whose keys are `{prefix}k{i}` (stored) and `{prefix}m{i}` (never stored).
    pub(crate) fn new(
        workload: Workload,
        batch: usize,
        prefix: &str,
        key_count: usize,
        value_size: usize,
        concurrency: usize,
    ) -> Self {
        let keys = (0..key_count).map(|i| format!("{prefix}k{i}")).collect();
        let miss_keys = (0..key_count).map(|i| format!("{prefix}m{i}")).collect();
        // Not all one byte, so that no layer can get away with run-length tricks.
        let value: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        Self {
            workload,
            batch,
            keys,
            miss_keys,
            value: Bytes::from(value),
            concurrency,
        }
    }
}

/// When a run stops: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub(crate) duration: Option<Duration>,
    pub(crate) ops: Option<u64>,
}

/// Operations done so far, across runs, for the progress line; and the switch that
/// stops every run early (an interrupted benchmark still removes its keys).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) ops: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) stop: AtomicBool,
}

/// The outcome of one run, or of several merged.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    pub(crate) ops: u64,
    /// Keys read or written: `ops` times the batch for `get_many`.
    pub(crate) keys: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Wall time of the runs, summed.
    pub(crate) elapsed: Duration,
    /// Latency of every operation, in nanoseconds.
    pub(crate) histogram: Histogram<u64>,
}

impl Measurement {
    pub(crate) fn new() -> Self {
        Self::with_histogram(
            Histogram::new_with_bounds(1, HIGHEST_NANOS, 3).expect("valid histogram bounds"),
        )
    }

    /// A measurement of a task that only counts: its latencies go to the run's shared
    /// histogram, so its own starts empty and tiny, and stays so.
    fn counting() -> Self {
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
    pub(crate) fn merge(&mut self, other: &Measurement) {
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
    pub(crate) fn ops_per_sec(&self) -> f64 {
        per_second(self.ops, self.elapsed)
    }

    /// Keys per second of wall time.
    pub(crate) fn keys_per_sec(&self) -> f64 {
        per_second(self.keys, self.elapsed)
    }

    /// Latency at quantile `q` (0.5 for the median), in microseconds.
    pub(crate) fn latency_us(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1_000.0
    }

    /// Highest latency recorded, in microseconds.
    pub(crate) fn max_us(&self) -> f64 {
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

/// xorshift64*: enough to spread keys, and free of any dependency or lock.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        // Never zero, which xorshift cannot leave.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound as u64) as usize
    }
}

/// What one operation found: hits, misses, keys touched.
type Found = (u64, u64, u64);

/// Counts hits and misses of a read; a hit whose length is not the value's is an error,
/// so that a target cannot look fast by returning the wrong thing.
fn tally<'a>(
    values: impl IntoIterator<Item = &'a Option<Bytes>>,
    expected_len: usize,
) -> Result<Found, BoxError> {
    let (mut hits, mut misses) = (0, 0);
    for value in values {
        match value {
            Some(value) if value.len() == expected_len => hits += 1,
            Some(value) => {
                return Err(format!(
                    "read a value of {} bytes where {expected_len} were written",
                    value.len()
                )
                .into())
            }
            None => misses += 1,
        }
    }
    Ok((hits, misses, hits + misses))
}

/// A task's latencies on their way to the run's one histogram, in batches.
struct Latencies {
    shared: Arc<Mutex<Histogram<u64>>>,
    batch: Vec<u64>,
}

impl Latencies {
    fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Self {
        Self {
            shared,
            batch: Vec::with_capacity(LATENCY_BATCH),
        }
    }

    fn record(&mut self, nanos: u64) {
        self.batch.push(nanos.clamp(1, HIGHEST_NANOS));
        if self.batch.len() == LATENCY_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        // A task that panicked while holding the lock left whole counts behind.
        let mut histogram = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        for &nanos in &self.batch {
            histogram.saturating_record(nanos);
        }
        self.batch.clear();
    }
}

/// Runs the plan's workload on `target` with `plan.concurrency` tasks until `bound`.
///
/// # Panics
///
/// When a task panics (a bug of the target, not a measurement).
pub(crate) async fn measure<T: Target>(
    target: &Arc<T>,
    plan: &Arc<Plan>,
    bound: Bound,
    progress: &Arc<Progress>,
) -> Measurement {
    let shared = Arc::new(Mutex::new(Measurement::new().histogram));
    let started = Instant::now();
    let deadline = bound.duration.map(|duration| started + duration);
    let budget = bound
        .ops
        .map(|ops| Arc::new(AtomicI64::new(i64::try_from(ops).unwrap_or(i64::MAX))));
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|task| {
            tokio::spawn(worker(
                Arc::clone(target),
                Arc::clone(plan),
                task as u64 + 1,
                deadline,
                budget.clone(),
                Arc::clone(progress),
                Latencies::new(Arc::clone(&shared)),
            ))
        })
        .collect();
    let mut counted = Vec::with_capacity(tasks.len());
    for task in tasks {
        counted.push(task.await.expect("a benchmark task panicked"));
    }
    // The run ends with its last operation; adding up what the tasks counted is not part
    // of it.
    let elapsed = started.elapsed();
    let mut total = Measurement::counting();
    for task in &counted {
        total.merge(task);
    }
    total.elapsed = elapsed;
    total.histogram = Arc::try_unwrap(shared)
        .map(|histogram| {
            histogram
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
        })
        .unwrap_or_else(|shared| {
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        });
    total
}

async fn worker<T: Target>(
    target: Arc<T>,
    plan: Arc<Plan>,
    seed: u64,
    deadline: Option<Instant>,
    budget: Option<Arc<AtomicI64>>,
    progress: Arc<Progress>,
    mut latencies: Latencies,
) -> Measurement {
    let mut measurement = Measurement::counting();
    let mut random = Random::new(seed);
    let keys = &plan.keys;
    let expected_len = plan.value.len();
    let mut batch: Vec<&str> = Vec::with_capacity(plan.batch);
    let mut unreported = 0;
    loop {
        if let Some(budget) = &budget {
            if budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                break;
            }
        }
        let workload = match plan.workload {
            Workload::Mix if random.below(10) == 0 => Workload::Set,
            Workload::Mix => Workload::Get,
            other => other,
        };
        let start = Instant::now();
        let found: Result<Found, BoxError> = match workload {
            Workload::Get => {
                let key = &keys[random.below(keys.len())];
                match target.get(key).await {
                    Ok(value) => tally([&value], expected_len),
                    Err(err) => Err(err),
                }
            }
            Workload::GetMiss => {
                let key = &plan.miss_keys[random.below(plan.miss_keys.len())];
                match target.get(key).await {
                    Ok(value) => tally([&value], expected_len),
                    Err(err) => Err(err),
                }
            }
            Workload::Set | Workload::Mix => {
                let key = &keys[random.below(keys.len())];
                target
                    .set(key, plan.value.clone())
                    .await
                    .map(|()| (0, 0, 1))
            }
            Workload::GetMany => {
                batch.clear();
                let first = random.below(keys.len());
                batch.extend((0..plan.batch).map(|i| keys[(first + i) % keys.len()].as_str()));
                match target.get_many(&batch).await {
                    Ok(values) if values.len() == batch.len() => tally(&values, expected_len),
                    Ok(values) => Err(format!(
                        "asked for {} keys, got {} answers",
                        batch.len(),
                        values.len()
                    )
                    .into()),
                    Err(err) => Err(err),
                }
            }
        };
        let end = Instant::now();
        latencies.record(u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX));
        measurement.ops += 1;
        match found {
            Ok((hits, misses, keys)) => {
                measurement.hits += hits;
                measurement.misses += misses;
                measurement.keys += keys;
            }
            Err(err) => {
                measurement.errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if measurement.first_error.is_none() {
                    measurement.first_error = Some(err.to_string());
                }
            }
        }
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            progress.ops.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
        if deadline.is_some_and(|deadline| end >= deadline) || progress.stop.load(Ordering::Relaxed)
        {
            break;
        }
    }
    progress.ops.fetch_add(unreported, Ordering::Relaxed);
    latencies.flush();
    measurement
}

/// Writes every stored key of the plan through `target`, from 32 tasks whatever the
/// run's concurrency: populating is not measured, only waited for.
///
/// # Errors
///
/// The first error of a `set`.
pub(crate) async fn populate<T: Target>(target: &Arc<T>, plan: &Arc<Plan>) -> Result<(), BoxError> {
    let tasks = plan.keys.len().clamp(1, 32);
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let target = Arc::clone(target);
            let plan = Arc::clone(plan);
            tokio::spawn(async move {
                for key in plan.keys.iter().skip(task).step_by(tasks) {
                    target.set(key, plan.value.clone()).await?;
                }
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    let mut result = Ok(());
    for handle in handles {
        let outcome = handle
            .await
            .map_err(|err| -> BoxError { Box::new(err) })
            .and_then(|r| r);
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// Removes every stored key of the plan through `target`, 100 per call: the only keys
/// any workload writes. Returns how many keys were deleted.
///
/// # Errors
///
/// The first error of a `delete_many`, with the number of keys deleted before it.
pub(crate) async fn remove_keys<T: Target>(
    target: &T,
    plan: &Plan,
) -> Result<usize, (usize, BoxError)> {
    let mut removed = 0;
    for chunk in plan.keys.chunks(100) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        target
            .delete_many(&keys)
            .await
            .map_err(|err| (removed, err))?;
        removed += keys.len();
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::HashMap, sync::Mutex};

    #[derive(Default)]
    struct MapTarget(Mutex<HashMap<String, Bytes>>);

    impl Target for MapTarget {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }
        async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
            let map = self.0.lock().unwrap();
            Ok(keys.iter().map(|key| map.get(*key).cloned()).collect())
        }
        async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
            let mut map = self.0.lock().unwrap();
            for key in keys {
                map.remove(*key);
            }
            Ok(())
        }
    }

    fn plan(workload: Workload) -> Arc<Plan> {
        Arc::new(Plan::new(workload, 10, "t:", 50, 8, 4))
    }

    /// An operation budget is spent exactly, and every hit workload hits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn op_budget_is_exact_and_reads_hit() {
        let target = Arc::new(MapTarget::default());
        let progress = Arc::new(Progress::default());
        for workload in Workload::ALL {
            let plan = plan(workload);
            populate(&target, &plan).await.unwrap();
            let bound = Bound {
                duration: None,
                ops: Some(1_000),
            };
            let m = measure(&target, &plan, bound, &progress).await;
            assert_eq!(m.ops, 1_000, "{workload:?}");
            assert_eq!(m.histogram.len(), 1_000, "{workload:?}");
            assert_eq!(m.errors, 0, "{workload:?}: {:?}", m.first_error);
            match workload {
                Workload::GetMiss => assert_eq!((m.hits, m.misses), (0, 1_000)),
                Workload::GetMany => assert_eq!((m.hits, m.keys), (10_000, 10_000)),
                Workload::Set => assert_eq!((m.hits, m.keys), (0, 1_000)),
                Workload::Get => assert_eq!(m.hits, 1_000),
                Workload::Mix => assert!(m.hits > 700 && m.hits < 1_000, "{}", m.hits),
            }
        }
        assert_eq!(progress.ops.load(Ordering::Relaxed), 5_000);
        remove_keys(&*target, &plan(Workload::Get)).await.unwrap();
        assert!(target.0.lock().unwrap().is_empty());
    }

    /// A time bound stops the run close to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duration_bound_stops_the_run() {
        let target = Arc::new(MapTarget::default());
        let plan = plan(Workload::GetMiss);
        let bound = Bound {
            duration: Some(Duration::from_millis(100)),
            ops: None,
        };
        let m = measure(&target, &plan, bound, &Arc::new(Progress::default())).await;
        assert!(m.ops > 0);
        assert!(
            m.elapsed >= Duration::from_millis(100) && m.elapsed < Duration::from_secs(5),
            "{:?}",
            m.elapsed
        );
    }

    /// A read that returns a value of the wrong length counts as an error.
    #[test]
    fn wrong_values_are_errors() {
        let right = Some(Bytes::from_static(b"abcd"));
        let wrong = Some(Bytes::from_static(b"ab"));
        assert_eq!(tally([&right, &None], 4).unwrap(), (1, 1, 2));
        assert!(tally([&wrong], 4).is_err());
    }

    #[test]
    fn workloads_parse_by_name() {
        for workload in Workload::ALL {
            assert_eq!(workload.name().parse::<Workload>().unwrap(), workload);
        }
        assert!("delete"
            .parse::<Workload>()
            .unwrap_err()
            .contains("get-many"));
    }
}
