//! What the backends' chaos tests measure through a [`ChaosProxy`], on any [`Cache`]:
//!
//! - [`fault_cell`]: one fault, one cache: the error a call returns and how long it took,
//!   then how long after the fault is lifted the same cache object answers again;
//! - [`mixed_load`]: many tasks reading and writing while faults come and go, every value
//!   naming its key, so that a reply matched to the wrong request is seen;
//! - [`assert_recovers_from_severed_connections`]: a cache whose open connections went
//!   dead for good must answer again on new ones.
//!
//! Values are `<key>=<n>`: a get that returns anything else for its key (another key's
//! value, an empty value, a miss of a key that exists) is a mismatch.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use tokio::task::JoinSet;

use super::{ChaosProxy, Fault};

/// How many keys a cell or a load task writes before the faults start.
const KEYS_PER_TASK: usize = 8;

/// Pause between attempts while waiting for a healed cache.
const HEAL_POLL: Duration = Duration::from_millis(10);

/// Calls that must succeed in a row once the cache answered again.
const HEALED_STREAK: usize = 20;

/// The name of an error's kind, for reports: `timeout`, `unreachable`, `backend`...
#[must_use]
pub fn kind(error: &CacheError) -> &'static str {
    match error {
        CacheError::Timeout { .. } => "timeout",
        CacheError::Unreachable { .. } => "unreachable",
        CacheError::Backend { .. } => "backend",
        CacheError::Auth { .. } => "auth",
        CacheError::PermissionDenied { .. } => "permission denied",
        error if error.is_caller_error() => "caller error",
        _ => "other",
    }
}

/// The value stored under `key` at step `n`: it names its key.
#[must_use]
pub fn value_for(key: &str, n: u64) -> Bytes {
    Bytes::from(format!("{key}={n}"))
}

/// Why a value read for `key` cannot be its own, or `None` when it names `key`.
#[must_use]
pub fn mismatch(key: &str, value: Option<&[u8]>) -> Option<String> {
    match value {
        None => Some(format!(
            "{key}: a miss, but the key was written and never deleted"
        )),
        Some(value) => {
            let named = value.strip_prefix(key.as_bytes());
            let own = named.is_some_and(|rest| {
                rest.first() == Some(&b'=')
                    && rest.len() > 1
                    && rest[1..].iter().all(u8::is_ascii_digit)
            });
            (!own).then(|| format!("{key}: read {:?}", String::from_utf8_lossy(value)))
        }
    }
}

/// What one fault did to one cache.
#[derive(Debug)]
pub struct CellReport {
    /// The fault injected.
    pub fault: Fault,
    /// The first call's error under the fault (a call that succeeded is a test failure).
    pub error: CacheError,
    /// How long that call took to fail.
    pub time_to_error: Duration,
    /// The kind of a second call's error, under the same fault.
    pub second_error: &'static str,
    /// From lifting the fault to the first correct answer.
    pub time_to_heal: Duration,
}

impl fmt::Display for CellReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:<12} error in {:>7.1} ms, healed in {:>7.1} ms",
            self.fault.name(),
            kind(&self.error),
            self.time_to_error.as_secs_f64() * 1e3,
            self.time_to_heal.as_secs_f64() * 1e3,
        )
    }
}

/// Writes eight keys under `stem`, each with a value naming it, and returns them.
///
/// # Errors
///
/// The first write that fails.
pub async fn populate(cache: &dyn Cache, stem: &str) -> Result<Vec<String>, CacheError> {
    let keys: Vec<String> = (0..KEYS_PER_TASK).map(|n| format!("{stem}:k{n}")).collect();
    for key in &keys {
        cache.set(key, value_for(key, 0), None).await?;
    }
    Ok(keys)
}

/// Injects `fault`, makes a `get` and a `set` that must both fail, lifts the fault and
/// waits (up to `heal_within`) until the same cache reads every key as its own again,
/// then asks for 20 correct calls in a row.
///
/// # Errors
///
/// A message when a call succeeds under the fault, when a value read does not name its
/// key, or when the cache does not heal in time.
pub async fn fault_cell(
    cache: &dyn Cache,
    proxy: &ChaosProxy,
    fault: Fault,
    heal_within: Duration,
) -> Result<CellReport, String> {
    let stem = format!("cell-{}", fault.name().replace([' ', ','], "-"));
    let keys = populate(cache, &stem)
        .await
        .map_err(|error| format!("{fault}: writing before the fault: {error}"))?;
    proxy.inject(fault);
    let started = Instant::now();
    let first = cache.get(&keys[0]).await;
    let time_to_error = started.elapsed();
    let second = cache.set(&keys[1], value_for(&keys[1], 1), None).await;
    proxy.heal();
    let error = match first {
        Err(error) => error,
        Ok(value) => return Err(format!("{fault}: get succeeded under the fault: {value:?}")),
    };
    let second_error = match second {
        Err(error) => kind(&error),
        Ok(()) => return Err(format!("{fault}: set succeeded under the fault")),
    };
    let time_to_heal = healed(cache, &keys, heal_within, true)
        .await
        .map_err(|message| format!("{fault}: {message}"))?;
    Ok(CellReport {
        fault,
        error,
        time_to_error,
        second_error,
        time_to_heal,
    })
}

/// Polls `keys` in turn until one reads back as its own, then checks a streak of reads
/// and writes. Returns the time to the first correct read.
async fn healed(
    cache: &dyn Cache,
    keys: &[String],
    within: Duration,
    lifted: bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut turn = 0;
    let time_to_heal = loop {
        let key = &keys[turn % keys.len()];
        turn += 1;
        match cache.get(key).await {
            Ok(value) => match mismatch(key, value.as_deref()) {
                None => break started.elapsed(),
                Some(wrong) => return Err(format!("after healing, {wrong}")),
            },
            Err(error) if started.elapsed() > within => {
                return Err(format!(
                    "still failing {within:?} after the fault was {}: {error}",
                    if lifted { "lifted" } else { "met" }
                ));
            }
            Err(_) => {}
        }
        tokio::time::sleep(HEAL_POLL).await;
    };
    for step in 0..HEALED_STREAK {
        let key = &keys[(turn + step) % keys.len()];
        cache
            .set(key, value_for(key, 2 + step as u64), None)
            .await
            .map_err(|error| format!("write {step} after healing: {error}"))?;
        let other = &keys[(turn + step + 1) % keys.len()];
        let value = cache
            .get(other)
            .await
            .map_err(|error| format!("read {step} after healing: {error}"))?;
        if let Some(wrong) = mismatch(other, value.as_deref()) {
            return Err(format!("after healing, {wrong}"));
        }
    }
    Ok(time_to_heal)
}

/// What [`mixed_load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Reads that returned their own key's value.
    pub good_reads: u64,
    /// Writes acknowledged.
    pub good_writes: u64,
    /// Failed calls by error kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Reads whose value was not their key's (the first few, described).
    pub mismatches: Vec<String>,
    /// How many reads were mismatched in all.
    pub mismatched: u64,
}

impl LoadReport {
    fn merge(&mut self, other: Self) {
        self.good_reads += other.good_reads;
        self.good_writes += other.good_writes;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.mismatched += other.mismatched;
        self.mismatches.extend(other.mismatches);
        self.mismatches.truncate(10);
    }

    /// Failed calls, all kinds together.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs `tasks` tasks on `cache` (each writing its own keys and reading everyone's, one
/// `get_many` in four calls) for `phase`, then while `faults` are injected in turn, each
/// for `phase` and then lifted for `phase`. Returns once the last healed phase is over.
///
/// # Errors
///
/// When the keys cannot be written before the faults start.
pub async fn mixed_load(
    cache: Arc<dyn Cache>,
    proxy: &ChaosProxy,
    faults: &[Fault],
    tasks: usize,
    phase: Duration,
) -> Result<LoadReport, CacheError> {
    let mut all_keys = Vec::with_capacity(tasks * KEYS_PER_TASK);
    for task in 0..tasks {
        all_keys.extend(populate(cache.as_ref(), &format!("load-{task}")).await?);
    }
    let all_keys = Arc::new(all_keys);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for task in 0..tasks {
        let (cache, keys, stop) = (Arc::clone(&cache), Arc::clone(&all_keys), Arc::clone(&stop));
        workers.spawn(async move { load_task(cache.as_ref(), &keys, task, &stop).await });
    }
    // A phase without a fault first: the load is running before the first fault.
    tokio::time::sleep(phase).await;
    for fault in faults {
        proxy.inject(*fault);
        tokio::time::sleep(phase).await;
        proxy.heal();
        tokio::time::sleep(phase).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut report = LoadReport::default();
    while let Some(done) = workers.join_next().await {
        report.merge(done.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic())));
    }
    Ok(report)
}

/// One task of [`mixed_load`]: writes its own keys, reads anyone's, until `stop`.
async fn load_task(
    cache: &dyn Cache,
    keys: &[String],
    task: usize,
    stop: &AtomicBool,
) -> LoadReport {
    let mut report = LoadReport::default();
    let own = &keys[task * KEYS_PER_TASK..(task + 1) * KEYS_PER_TASK];
    let mut step: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        // A cheap spread over the keys that differs per task (no RNG needed).
        let pick = (step as usize)
            .wrapping_mul(7919)
            .wrapping_add(task * 104_729);
        let outcome = match step % 4 {
            0 => {
                let key = &own[pick % own.len()];
                cache.set(key, value_for(key, step), None).await.map(|()| {
                    report.good_writes += 1;
                })
            }
            1 => {
                let batch: Vec<&str> = (0..4)
                    .map(|n| keys[(pick + n * 31) % keys.len()].as_str())
                    .collect();
                cache.get_many(&batch).await.map(|values| {
                    for (key, value) in batch.iter().zip(values) {
                        report.check(key, value.as_deref());
                    }
                })
            }
            _ => {
                let key = &keys[pick % keys.len()];
                cache
                    .get(key)
                    .await
                    .map(|value| report.check(key, value.as_deref()))
            }
        };
        if let Err(error) = outcome {
            *report.errors.entry(kind(&error)).or_default() += 1;
            // A refused connection fails at once: no busy loop on two shared cores.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A cache that answers without waiting would otherwise hold its worker forever.
        tokio::task::yield_now().await;
    }
    report
}

impl LoadReport {
    fn check(&mut self, key: &str, value: Option<&[u8]>) {
        match mismatch(key, value) {
            None => self.good_reads += 1,
            Some(wrong) => {
                self.mismatched += 1;
                if self.mismatches.len() < 10 {
                    self.mismatches.push(wrong);
                }
            }
        }
    }
}

/// Every fault once, in a fixed order; `late` is the reply latency (past the timeout).
#[must_use]
pub fn every_fault(late: Duration) -> Vec<Fault> {
    vec![
        Fault::Latency {
            to_server: Duration::ZERO,
            to_client: late,
        },
        Fault::DropMidResponse,
        Fault::HalfReplyThenStall,
        Fault::Blackhole,
        Fault::Refuse,
        Fault::GarbledReplies,
        // Last: a cache that never replaces its severed connections does not work after
        // the faults.
        Fault::SeverOpenConnections,
    ]
}

/// Fails unless the load saw no mismatch, made progress, and felt the faults.
///
/// # Panics
///
/// When a read returned another key's value (the first ones are listed), when fewer than
/// 100 reads succeeded, or when no call failed (the faults did not reach the cache).
pub fn assert_sound(report: &LoadReport, backend: &str) {
    assert_eq!(
        report.mismatched, 0,
        "{backend}: replies matched to the wrong request: {:?}",
        report.mismatches
    );
    assert!(
        report.good_reads >= 100,
        "{backend}: only {} good reads under the load",
        report.good_reads
    );
    assert!(
        report.failed() > 0,
        "{backend}: no call failed, the faults did not reach the cache"
    );
}

/// A row of the README's chaos matrix: backend, fault, error kind of the first call under
/// the fault and of the next when it differs, the range of the times to error and to heal
/// over the rounds, and 0 mismatched replies (a mismatch fails the cell before this is
/// printed).
#[must_use]
pub fn matrix_row(
    backend: &str,
    fault: Fault,
    (first, then): (&str, &str),
    errors: &[Duration],
    heals: &[Duration],
) -> String {
    let kind = if first == then {
        format!("`{first}`")
    } else {
        format!("`{first}`, then `{then}`")
    };
    format!(
        "| {backend} | {} | {kind} | {} | {} | 0 |",
        fault.name(),
        range_ms(errors),
        range_ms(heals)
    )
}

/// The bounds a backend's chaos cells hold its cache to.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The cache's timeout: a `timeout` error in under half of it is a failure too.
    pub timeout: Duration,
    /// The longest a failing call may take.
    pub deadline: Duration,
    /// How long the cache may take to answer again once the fault is lifted.
    pub heal_within: Duration,
    /// Each fault is injected and lifted this many times on the same cache.
    pub rounds: usize,
}

impl Bounds {
    /// The timeout to build the cache of a cell with, when the first call under its fault
    /// must fail with an error of kind `expected`: [`timeout`](Self::timeout) for
    /// `"timeout"`; for any other kind, twice the [`deadline`](Self::deadline). Then the
    /// error of such a cell is always the one its fault causes: with the short timeout, a
    /// pause of the test's own process (a loaded machine) as long as the timeout lets the
    /// timer fire before the reset or the bad reply is read, and the cell fails with a
    /// `Timeout` the cache did not earn. A call that hangs still fails the deadline.
    #[must_use]
    pub fn cache_timeout(&self, expected: &str) -> Duration {
        if expected == "timeout" {
            self.timeout
        } else {
            self.deadline.saturating_mul(2)
        }
    }
}

/// Runs `bounds.rounds` rounds of `fault` on one cache: the first call under the fault
/// fails with an error of kind `first` and the next with `then`, within the deadline,
/// and the cache heals within `heal_within`. Prints each round, then the row of the
/// README's chaos matrix labelled `label`.
///
/// # Panics
///
/// When a round breaks any of those rules, or [`fault_cell`] reports a failure.
pub async fn assert_cell(
    cache: &dyn Cache,
    proxy: &ChaosProxy,
    label: &str,
    fault: Fault,
    (first, then): (&str, &str),
    bounds: Bounds,
) {
    let (mut errors, mut heals) = (Vec::new(), Vec::new());
    for round in 0..bounds.rounds {
        let report = fault_cell(cache, proxy, fault, bounds.heal_within)
            .await
            .unwrap_or_else(|message| panic!("round {round}: {message}"));
        println!("{label} round {round}: {report}");
        assert_eq!(
            kind(&report.error),
            first,
            "{fault}, round {round}: the first call under the fault returned {:?}",
            report.error
        );
        assert_eq!(
            report.second_error, then,
            "{fault}, round {round}: the second call under the fault"
        );
        assert!(
            report.time_to_error < bounds.deadline,
            "{fault}, round {round}: the error took {:?}, past {:?}",
            report.time_to_error,
            bounds.deadline
        );
        if first == "timeout" {
            assert!(
                report.time_to_error >= bounds.timeout / 2,
                "{fault}, round {round}: a timeout before the timeout: {:?}",
                report.time_to_error
            );
        }
        errors.push(report.time_to_error);
        heals.push(report.time_to_heal);
    }
    println!(
        "{}",
        matrix_row(label, fault, (first, then), &errors, &heals)
    );
}

/// For each of `faults` in turn (each lifted, and the cache healed, before the next),
/// the first call under it fails with an error whose message names the proxy's address,
/// the server as the cache knows it: an application with several caches, or a ring of
/// servers, then reads which one failed.
///
/// # Panics
///
/// When [`fault_cell`] reports a failure or an error does not name the address.
pub async fn assert_errors_name_the_server(
    cache: &dyn Cache,
    proxy: &ChaosProxy,
    faults: &[Fault],
    heal_within: Duration,
) {
    let address = proxy.address().to_string();
    for &fault in faults {
        let report = fault_cell(cache, proxy, fault, heal_within)
            .await
            .unwrap_or_else(|message| panic!("{message}"));
        let message = report.error.to_string();
        assert!(
            message.contains(&address),
            "{fault}: the error does not name {address}: {message}"
        );
    }
}

/// Severs every connection the cache has open ([`Fault::SeverOpenConnections`]) and
/// leaves the fault in force, `bounds.rounds` times on the same cache: the first call
/// fails with `Timeout` within `bounds.deadline` (its connection answers nothing, and
/// says nothing either) or answers correctly (a cache that checks a connection before
/// using it), and the same cache object must then answer again, on connections of its
/// own making, within `bounds.heal_within` of that call, and go on answering (20 correct
/// calls in a row). A cache that keeps using a connection that answered nothing past its
/// timeout fails here: such a connection may stay silent for as long as TCP keeps
/// retransmitting (a quarter of an hour on Linux) before the kernel gives up on it.
/// The severed connections must then be closed: within a second, at most `max_open`
/// connections (what the cache keeps open at most) are open through the proxy. Prints
/// each round.
///
/// # Panics
///
/// When the keys cannot be written first, when the first call fails otherwise than with
/// a timeout in time or reads a wrong value, when the cache does not answer again in
/// time, or when more than `max_open` connections stay open.
pub async fn assert_recovers_from_severed_connections(
    cache: &dyn Cache,
    proxy: &ChaosProxy,
    label: &str,
    bounds: Bounds,
    max_open: usize,
) {
    for _ in 0..bounds.rounds {
        severed_round(cache, proxy, label, bounds, max_open).await;
    }
}

/// One round of [`assert_recovers_from_severed_connections`].
async fn severed_round(
    cache: &dyn Cache,
    proxy: &ChaosProxy,
    label: &str,
    bounds: Bounds,
    max_open: usize,
) {
    let fault = Fault::SeverOpenConnections;
    let keys = populate(cache, "severed")
        .await
        .unwrap_or_else(|error| panic!("{label}: writing before the fault: {error}"));
    proxy.inject(fault);
    let started = Instant::now();
    let first = cache.get(&keys[0]).await;
    let time_to_first = started.elapsed();
    let result = match &first {
        Err(CacheError::Timeout { .. }) if time_to_first < bounds.deadline => {
            healed(cache, &keys, bounds.heal_within, false).await
        }
        Err(error) => Err(format!(
            "the first call failed with {error:?} after {time_to_first:?}, where a timeout \
             within {:?} was due",
            bounds.deadline
        )),
        // A cache that checks a connection before it uses it (a pool's `PING` at
        // checkout) finds the severed one dead and answers on a new one.
        Ok(value) => match mismatch(&keys[0], value.as_deref()) {
            None => healed(cache, &keys, bounds.heal_within, false).await,
            Some(wrong) => Err(wrong),
        },
    };
    proxy.heal();
    let recovered = result.unwrap_or_else(|message| panic!("{label}, {fault}: {message}"));
    // The severed connections are closed by the cache, not kept beside the new ones.
    let closing = Instant::now();
    while proxy.open_connections() > max_open {
        assert!(
            closing.elapsed() < Duration::from_secs(1),
            "{label}, {fault}: {} connections still open, where the cache uses at most \
             {max_open}: the severed ones were kept",
            proxy.open_connections()
        );
        tokio::time::sleep(HEAL_POLL).await;
    }
    let ms = |duration: Duration| duration.as_millis();
    if first.is_ok() {
        println!(
            "{label}, {fault}: the first call answered, in {} ms (the fault in force)",
            ms(time_to_first)
        );
    } else {
        println!(
            "{label}, {fault}: timeout in {} ms, answering again {} ms later (the fault in \
             force)",
            ms(time_to_first),
            ms(recovered)
        );
    }
}

/// 32 tasks read and write keys whose values name them while every fault comes and goes
/// (each for 600 ms, replies 1 s late under latency): no read returns another key's
/// value, calls succeed and fail, and the cache works afterwards.
///
/// # Panics
///
/// When the keys cannot be written first, when [`assert_sound`] fails, or when the cache
/// does not work once the faults are over.
pub async fn assert_no_mismatch(cache: Arc<dyn Cache>, proxy: &ChaosProxy, label: &str) {
    let report = mixed_load(
        Arc::clone(&cache),
        proxy,
        &every_fault(Duration::from_secs(1)),
        32,
        Duration::from_millis(600),
    )
    .await
    .unwrap_or_else(|error| panic!("cannot write the keys before the faults: {error}"));
    println!("{label} mixed load under faults: {report:?}");
    assert_sound(&report, label);
    populate(cache.as_ref(), "after")
        .await
        .unwrap_or_else(|error| panic!("the cache does not work after the faults: {error}"));
}

/// `min–max ms` of some durations.
fn range_ms(durations: &[Duration]) -> String {
    let ms = |duration: &Duration| duration.as_secs_f64() * 1e3;
    let min = durations.iter().map(ms).fold(f64::INFINITY, f64::min);
    let max = durations.iter().map(ms).fold(0.0, f64::max);
    format!("{min:.0}–{max:.0} ms")
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use cache_api::async_trait;

    use super::*;

    #[test]
    fn only_timeout_cells_run_with_the_short_timeout() {
        let bounds = Bounds {
            timeout: Duration::from_millis(300),
            deadline: Duration::from_millis(1300),
            heal_within: Duration::from_secs(3),
            rounds: 3,
        };
        assert_eq!(bounds.cache_timeout("timeout"), Duration::from_millis(300));
        for kind in ["unreachable", "backend"] {
            let timeout = bounds.cache_timeout(kind);
            assert!(timeout > bounds.deadline, "{kind}: {timeout:?}");
        }
    }

    #[test]
    fn a_value_must_name_its_own_key() {
        assert_eq!(mismatch("a:k1", Some(b"a:k1=12")), None);
        assert!(mismatch("a:k1", Some(b"a:k10=12")).is_some());
        assert!(mismatch("a:k1", Some(b"a:k2=12")).is_some());
        assert!(mismatch("a:k1", Some(b"")).is_some());
        assert!(mismatch("a:k1", Some(b"a:k1=")).is_some());
        assert!(mismatch("a:k1", None).is_some());
    }

    /// A map that, every `swap_every` reads, answers with the value of the key written
    /// before: what a client matching replies to the wrong requests would do.
    #[derive(Default)]
    struct Swapping {
        entries: Mutex<HashMap<String, Bytes>>,
        reads: Mutex<u64>,
        swap_every: u64,
    }

    #[async_trait]
    impl Cache for Swapping {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            let mut reads = self.reads.lock().unwrap();
            *reads += 1;
            let entries = self.entries.lock().unwrap();
            if self.swap_every > 0 && (*reads).is_multiple_of(self.swap_every) {
                return Ok(entries
                    .values()
                    .find(|value| !value.starts_with(key.as_bytes()))
                    .cloned());
            }
            Ok(entries.get(key).cloned())
        }

        async fn set(
            &self,
            key: &str,
            value: Bytes,
            _: Option<Duration>,
        ) -> Result<(), CacheError> {
            self.entries.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }

        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            Ok(self.entries.lock().unwrap().remove(key).is_some())
        }
    }

    async fn load_on(swap_every: u64) -> LoadReport {
        let proxy = ChaosProxy::start(([127, 0, 0, 1], 9).into()).await.unwrap();
        let cache = Arc::new(Swapping {
            swap_every,
            ..Swapping::default()
        });
        mixed_load(cache, &proxy, &[], 4, Duration::from_millis(50))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_load_sees_replies_matched_to_the_wrong_request() {
        let faithful = load_on(0).await;
        assert_eq!(faithful.mismatched, 0, "{faithful:?}");
        assert!(faithful.good_reads > 0);
        let swapping = load_on(50).await;
        assert!(swapping.mismatched > 0, "{swapping:?}");
        assert!(!swapping.mismatches.is_empty());
    }
}
