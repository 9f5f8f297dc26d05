//! The load loop: tasks that run one workload against a [`Target`] until a time or an
//! operation budget is spent, recording the latency of every operation in one HDR
//! histogram per run.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Instant,
};

use bytes::Bytes;

use crate::measurement::{Latencies, Measurement};
use crate::plan::{Bound, Plan, Progress, Workload};

/// Any error of a target, kept only for its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Operations a task counts locally before adding them to the shared progress counter:
/// one shared atomic per operation would cost the fastest backends a measurable share.
const PROGRESS_EVERY: u64 = 64;

/// The runtime a benchmark runs on: with `threads` of 1, everything (load, client, the
/// connections' own tasks) on the current thread, as in the one event loop of
/// redis-benchmark; otherwise a multi-thread runtime of that many workers, one per core
/// by default.
///
/// # Errors
///
/// When the operating system refuses the threads or the I/O driver.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
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
pub trait Target: Send + Sync + 'static {
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

/// Runs the plan's workload on `target` with `plan.concurrency` tasks until `bound`.
///
/// # Panics
///
/// When a task panics (a bug of the target, not a measurement).
pub async fn measure<T: Target>(
    target: &Arc<T>,
    plan: &Arc<Plan>,
    bound: Bound,
    progress: &Arc<Progress>,
) -> Measurement {
    let shared = Arc::new(Mutex::new(Measurement::new().histogram));
    let started = Instant::now();
    // A duration too long for the clock to add leaves the run bounded by its count only.
    let deadline = bound
        .duration
        .and_then(|duration| started.checked_add(duration));
    let budget = bound
        .ops
        .map(|ops| Arc::new(AtomicI64::new(i64::try_from(ops).unwrap_or(i64::MAX))));
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|task| {
            let limits = Limits {
                deadline,
                budget: budget.clone(),
                progress: Arc::clone(progress),
            };
            tokio::spawn(worker(
                Arc::clone(target),
                Arc::clone(plan),
                task as u64 + 1,
                limits,
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

/// When a task stops, and where it reports what it did.
struct Limits {
    deadline: Option<Instant>,
    budget: Option<Arc<AtomicI64>>,
    progress: Arc<Progress>,
}

impl Limits {
    /// Takes one operation from the budget; `false` once it is spent.
    fn take_one(&self) -> bool {
        self.budget
            .as_ref()
            .is_none_or(|budget| budget.fetch_sub(1, Ordering::Relaxed) > 0)
    }

    /// Whether the run is over once an operation ended at `end`.
    fn over(&self, end: Instant) -> bool {
        self.deadline.is_some_and(|deadline| end >= deadline)
            || self.progress.stop.load(Ordering::Relaxed)
    }
}

async fn worker<T: Target>(
    target: Arc<T>,
    plan: Arc<Plan>,
    seed: u64,
    limits: Limits,
    mut latencies: Latencies,
) -> Measurement {
    let mut measurement = Measurement::counting();
    let mut random = Random::new(seed);
    let mut batch: Vec<&str> = Vec::with_capacity(plan.batch);
    let mut unreported = 0;
    while limits.take_one() {
        let start = Instant::now();
        let found = operation(&*target, &plan, &mut random, &mut batch).await;
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
                limits.progress.errors.fetch_add(1, Ordering::Relaxed);
                if measurement.first_error.is_none() {
                    measurement.first_error = Some(err.to_string());
                }
            }
        }
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            limits.progress.ops.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
        if limits.over(end) {
            break;
        }
    }
    limits.progress.ops.fetch_add(unreported, Ordering::Relaxed);
    latencies.flush();
    measurement
}

/// One operation of the plan's workload, on keys `random` picks; `batch` is the task's
/// buffer of keys for `get_many`.
async fn operation<'p, T: Target>(
    target: &T,
    plan: &'p Plan,
    random: &mut Random,
    batch: &mut Vec<&'p str>,
) -> Result<Found, BoxError> {
    let keys = &plan.keys;
    let expected_len = plan.value.len();
    let workload = match plan.workload {
        Workload::Mix if random.below(10) == 0 => Workload::Set,
        Workload::Mix => Workload::Get,
        other => other,
    };
    match workload {
        Workload::Get => {
            let value = target.get(&keys[random.below(keys.len())]).await?;
            tally([&value], expected_len)
        }
        Workload::GetMiss => {
            let key = &plan.miss_keys[random.below(plan.miss_keys.len())];
            let value = target.get(key).await?;
            tally([&value], expected_len)
        }
        Workload::Set | Workload::Mix => {
            let key = &keys[random.below(keys.len())];
            target.set(key, plan.value.clone()).await?;
            Ok((0, 0, 1))
        }
        Workload::GetMany => {
            batch.clear();
            let first = random.below(keys.len());
            batch.extend((0..plan.batch).map(|i| keys[(first + i) % keys.len()].as_str()));
            let values = target.get_many(batch).await?;
            if values.len() != batch.len() {
                return Err(format!(
                    "asked for {} keys, got {} answers",
                    batch.len(),
                    values.len()
                )
                .into());
            }
            tally(&values, expected_len)
        }
    }
}

/// Writes every stored key of the plan through `target`, from 32 tasks whatever the
/// run's concurrency: populating is not measured, only waited for.
///
/// # Errors
///
/// The first error of a `set`.
pub async fn populate<T: Target>(target: &Arc<T>, plan: &Arc<Plan>) -> Result<(), BoxError> {
    populate_until_stopped(target, plan, &Arc::new(Progress::default()))
        .await
        .map(drop)
}

/// Writes the stored keys of the plan as [`populate`] does, and stops before the next
/// `set` once `progress.stop` is set. Returns how many of the plan's first keys take in
/// every key written: all of them unless stopped, so that clean-up after an early stop
/// deletes what was written, not every key the plan names.
///
/// # Errors
///
/// The first error of a `set`.
pub(crate) async fn populate_until_stopped<T: Target>(
    target: &Arc<T>,
    plan: &Arc<Plan>,
    progress: &Arc<Progress>,
) -> Result<usize, BoxError> {
    let tasks = plan.keys.len().clamp(1, 32);
    // The tasks take the keys in order, so those written are always the first ones,
    // however far each task got.
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let target = Arc::clone(target);
            let plan = Arc::clone(plan);
            let progress = Arc::clone(progress);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                while !progress.stop.load(Ordering::Relaxed) {
                    let Some(key) = plan.keys.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
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
    // Each task may have taken one index past the last key.
    result.map(|()| next.load(Ordering::Relaxed).min(plan.keys.len()))
}

/// Removes every stored key of the plan through `target`, 100 per call: the only keys
/// any workload writes. Returns how many keys were deleted.
///
/// # Errors
///
/// The first error of a `delete_many`, with the number of keys deleted before it.
pub async fn remove_keys<T: Target>(target: &T, plan: &Plan) -> Result<usize, (usize, BoxError)> {
    remove_these_keys(target, &plan.keys).await
}

/// Removes `keys` through `target`, 100 per call, and counts them.
///
/// # Errors
///
/// The first error of a `delete_many`, with the number of keys deleted before it.
pub(crate) async fn remove_these_keys<T: Target>(
    target: &T,
    keys: &[String],
) -> Result<usize, (usize, BoxError)> {
    let mut removed = 0;
    for chunk in keys.chunks(100) {
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
    use std::{collections::HashMap, sync::Mutex, time::Duration};

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

    /// The stop switch ends a run long before its time bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stop_switch_ends_the_run() {
        let target = Arc::new(MapTarget::default());
        let plan = plan(Workload::GetMiss);
        let progress = Arc::new(Progress::default());
        let switch = Arc::clone(&progress);
        // A thread of its own: the run's tasks never yield to the runtime's timers.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            switch.stop.store(true, Ordering::Relaxed);
        });
        let bound = Bound {
            duration: Some(Duration::from_secs(60)),
            ops: None,
        };
        let m = measure(&target, &plan, bound, &progress).await;
        assert!(m.ops > 0);
        assert!(m.elapsed < Duration::from_secs(30), "{:?}", m.elapsed);
    }

    /// Writing the keys stops soon after the stop switch is set, and the count it
    /// returns takes in every key written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stop_switch_ends_the_writing_of_the_keys() {
        /// Sets the switch after its 1,000th write.
        struct Stopping {
            map: MapTarget,
            writes: std::sync::atomic::AtomicUsize,
            progress: Arc<Progress>,
        }
        impl Target for Stopping {
            async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
                self.map.get(key).await
            }
            async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
                if self.writes.fetch_add(1, Ordering::Relaxed) == 999 {
                    self.progress.stop.store(true, Ordering::Relaxed);
                }
                self.map.set(key, value).await
            }
            async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
                self.map.get_many(keys).await
            }
            async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
                self.map.delete_many(keys).await
            }
        }
        let progress = Arc::new(Progress::default());
        let target = Arc::new(Stopping {
            map: MapTarget::default(),
            writes: Default::default(),
            progress: Arc::clone(&progress),
        });
        let plan = Arc::new(Plan::new(Workload::Get, 1, "t:", 100_000, 8, 1));
        let reached = populate_until_stopped(&target, &plan, &progress)
            .await
            .unwrap();
        let written = target.map.0.lock().unwrap().len();
        // Each of the 32 tasks sends at most the one `set` it had begun.
        assert!((1_000..=1_032).contains(&written), "{written} keys written");
        // The keys written are the first ones.
        assert_eq!(reached, written);
        let index = |key: &str| key["t:k".len()..].parse::<usize>().unwrap();
        assert!(
            target
                .map
                .0
                .lock()
                .unwrap()
                .keys()
                .all(|key| index(key) < reached),
            "a key past {reached} was written"
        );
        remove_these_keys(&*target, &plan.keys[..reached])
            .await
            .unwrap();
        assert!(target.map.0.lock().unwrap().is_empty());
        // Unstopped, every key is written and taken in.
        let reached = populate_until_stopped(&target, &plan, &Arc::new(Progress::default()))
            .await
            .unwrap();
        assert_eq!(reached, plan.keys.len());
        assert_eq!(target.map.0.lock().unwrap().len(), plan.keys.len());
    }

    /// A read that returns a value of the wrong length counts as an error.
    #[test]
    fn wrong_values_are_errors() {
        let right = Some(Bytes::from_static(b"abcd"));
        let wrong = Some(Bytes::from_static(b"ab"));
        assert_eq!(tally([&right, &None], 4).unwrap(), (1, 1, 2));
        assert!(tally([&wrong], 4).is_err());
    }
}
