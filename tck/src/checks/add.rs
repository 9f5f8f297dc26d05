//! `add` (set only if absent): it stores only where no live entry is, changes nothing
//! otherwise, has exactly one winner among concurrent adds, and refuses what `set`
//! refuses.

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use super::values::{largest_value, timed_limits};
use super::{concurrency::joined, multi_thread_runtime};
use cache_api::{Bytes, Cache, CacheError, Limits};
use futures::future::join_all;

use super::{
    add_absent, certainly_alive_for, delete, expect, expect_alive, expect_too_large, remove, set,
    short_ttl, sleep_past, too_loaded, ttl_text, Alive, ATTEMPTS, KEEP, LONG_TTL,
};
use crate::failure::{describe_bytes, describe_key, CheckResult, Failure, OrFail};

/// Calls `add`; `Unsupported` fails with what the contract asks of such a backend.
async fn add(
    cache: &dyn Cache,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) -> Result<bool, Failure> {
    let step = || {
        format!(
            "add({}, {}, {})",
            describe_key(key),
            describe_bytes(value),
            ttl_text(ttl)
        )
    };
    match cache.add(key, Bytes::copy_from_slice(value), ttl).await {
        Ok(added) => Ok(added),
        Err(err @ CacheError::Unsupported { .. }) => Err(Failure::new(
            step(),
            "Ok (a backend must implement add natively, or declare that it has no atomic add)",
            format!("Err({err}) [{err:?}]"),
        )),
        Err(err) => Err(Failure::new(step(), "Ok", format!("Err({err}) [{err:?}]"))),
    }
}

/// Calls `add` and fails unless it answers `want`.
async fn expect_added(
    cache: &dyn Cache,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    want: bool,
    context: &str,
) -> CheckResult {
    let added = add(cache, key, value, ttl).await?;
    if added == want {
        Ok(())
    } else {
        Err(Failure::new(
            format!(
                "add({}, {}, {}) {context}",
                describe_key(key),
                describe_bytes(value),
                ttl_text(ttl)
            ),
            format!("Ok({want})"),
            format!("Ok({added})"),
        ))
    }
}

/// `add` of a key that holds nothing stores the value and returns true, with the TTL it
/// was given: readable at once (empty values too, without TTL and with 31 days too),
/// gone once a short TTL has passed.
pub async fn test_add_of_an_absent_key_stores_it_and_returns_true(
    cache: &dyn Cache,
) -> CheckResult {
    let limits = timed_limits(cache)?;
    let short = short_ttl(&limits);
    expect_added(
        cache,
        "tck:add-short",
        b"short",
        Some(short),
        true,
        "of a key never set",
    )
    .await?;
    let added: [(&str, &[u8], Option<Duration>); 4] = [
        ("tck:add-new", b"added", KEEP),
        ("tck:add-empty", b"", KEEP),
        ("tck:add-no-ttl", b"no ttl", None),
        (
            "tck:add-31-days",
            b"long-lived",
            Some(Duration::from_secs(31 * 24 * 3600)),
        ),
    ];
    for (key, value, ttl) in added {
        expect_added(cache, key, value, ttl, true, "of a key never set").await?;
        expect(
            cache,
            key,
            Some(value),
            &format!("after add of a key never set with a {} ttl", ttl_text(ttl)),
        )
        .await?;
    }
    remove(cache, &["tck:add-no-ttl", "tck:add-31-days"]).await;
    let wait = sleep_past(short, &limits).await;
    expect(
        cache,
        "tck:add-short",
        None,
        &format!("{wait:?} after add with a {short:?} ttl"),
    )
    .await
}

/// `add` of a key holding a live entry returns false and changes neither its value nor
/// its TTL: an empty value counts as present, so does the very value the add brings, an
/// entry written by `set_many`, and one whose short TTL a `set` without TTL lifted (past
/// that first TTL); an entry with a short TTL still goes at its end after a refused add with a 1 h TTL,
/// and a 60 s entry outlives the short TTL of a refused add.
pub async fn test_add_of_a_present_key_returns_false_and_changes_nothing(
    cache: &dyn Cache,
) -> CheckResult {
    let limits = timed_limits(cache)?;
    let short = short_ttl(&limits);
    set(cache, "tck:add-present-empty", b"", KEEP).await?;
    expect_added(
        cache,
        "tck:add-present-empty",
        b"intruder",
        KEEP,
        false,
        "of a key holding an empty value",
    )
    .await?;
    expect(
        cache,
        "tck:add-present-empty",
        Some(b""),
        "after a refused add over an empty value",
    )
    .await?;
    // An entry written by `set_many` is as present as one written by `set`.
    cache
        .set_many(
            &[("tck:add-present-batch", Bytes::from_static(b"batch"))],
            KEEP,
        )
        .await
        .or_fail(|| "set_many([(\"tck:add-present-batch\", \"batch\")], 1h)".to_owned())?;
    expect_added(
        cache,
        "tck:add-present-batch",
        b"intruder",
        KEEP,
        false,
        "of a key written by set_many",
    )
    .await?;
    expect(
        cache,
        "tck:add-present-batch",
        Some(b"batch"),
        "after a refused add over an entry written by set_many",
    )
    .await?;
    set(cache, "tck:add-present-same", b"same", KEEP).await?;
    expect_added(
        cache,
        "tck:add-present-same",
        b"same",
        KEEP,
        false,
        "of a key holding the same value",
    )
    .await?;
    set(cache, "tck:add-present-long", b"original", Some(LONG_TTL)).await?;
    expect_added(
        cache,
        "tck:add-present-long",
        b"intruder",
        Some(short),
        false,
        "of a key holding a live entry",
    )
    .await?;
    expect(
        cache,
        "tck:add-present-long",
        Some(b"original"),
        "after a refused add",
    )
    .await?;

    // Refused with a TTL, then without one: neither may touch the entry's own TTL.
    refused_add_keeps_a_short_ttl(cache, short, &limits, KEEP).await?;
    refused_add_keeps_a_short_ttl(cache, short, &limits, None).await?;
    // An entry whose short TTL was lifted by a `set` without one is present past that
    // first TTL: a backend whose `add` reads a leftover deadline takes it for expired.
    set(cache, "tck:add-present-lifted", b"first", Some(short)).await?;
    set(cache, "tck:add-present-lifted", b"lifted", None).await?;
    let wait = sleep_past(short, &limits).await;
    let context = format!("of a key set with a {short:?} ttl, then without one, {wait:?} later");
    expect_added(
        cache,
        "tck:add-present-lifted",
        b"intruder",
        KEEP,
        false,
        &context,
    )
    .await?;
    let outcome = expect(
        cache,
        "tck:add-present-lifted",
        Some(b"lifted"),
        &format!("after a refused add {context}"),
    )
    .await;
    remove(cache, &["tck:add-present-lifted"]).await;
    outcome
}

/// A refused `add` with a 1 h TTL leaves a short-lived entry to go at its own end, and a
/// refused `add` with a short TTL leaves the 60 s entry `tck:add-present-long` alive.
async fn refused_add_keeps_a_short_ttl(
    cache: &dyn Cache,
    short: Duration,
    limits: &Limits,
    add_ttl: Option<Duration>,
) -> CheckResult {
    // Long enough to be certainly alive when the add arrives, on a 1 s clock too.
    let ttl = short + limits.ttl_granularity;
    for attempt in 0..ATTEMPTS {
        let key = format!("tck:add-present-short-{attempt}");
        let started = Instant::now();
        set(cache, &key, b"original", Some(ttl)).await?;
        let added = add(cache, &key, b"intruder", add_ttl).await?;
        if added {
            if started.elapsed() >= certainly_alive_for(ttl, limits) {
                continue;
            }
            return Err(Failure::new(
                format!(
                    "add({}, \"intruder\", {}) of a key holding a live entry, {:.3?} after \
                     its set with a {ttl:?} ttl",
                    describe_key(&key),
                    ttl_text(add_ttl),
                    started.elapsed()
                ),
                "Ok(false)",
                "Ok(true)",
            ));
        }
        let context = "after a refused add";
        if expect_alive(cache, &key, b"original", ttl, started, context).await? == Alive::TooLate {
            continue;
        }
        let wait = sleep_past(ttl, limits).await;
        expect(
            cache,
            &key,
            None,
            &format!(
                "{wait:?} after set with a {ttl:?} ttl, then a refused add with {}",
                if add_ttl.is_some() {
                    "a 1h ttl"
                } else {
                    "no ttl"
                }
            ),
        )
        .await?;
        return expect(
            cache,
            "tck:add-present-long",
            Some(b"original"),
            &format!(
                "after set with a 60s ttl, then a refused add with a {short:?} ttl, and {wait:?}"
            ),
        )
        .await;
    }
    Err(too_loaded(
        "add of a key holding an entry with a short ttl",
        certainly_alive_for(ttl, limits),
    ))
}

/// An entry whose TTL has passed counts as absent: `add` over it stores the new value
/// and returns true.
pub async fn test_add_over_an_expired_entry_stores_and_returns_true(
    cache: &dyn Cache,
) -> CheckResult {
    let limits = timed_limits(cache)?;
    let short = short_ttl(&limits);
    set(cache, "tck:add-expired", b"expired", Some(short)).await?;
    let wait = sleep_past(short, &limits).await;
    let context = format!("{wait:?} after set with a {short:?} ttl");
    expect_added(cache, "tck:add-expired", b"fresh", KEEP, true, &context).await?;
    expect(
        cache,
        "tck:add-expired",
        Some(b"fresh"),
        "after add over an expired entry",
    )
    .await
}

/// After `delete`, `add` of the key stores again and returns true.
pub async fn test_add_after_delete_stores_again(cache: &dyn Cache) -> CheckResult {
    let key = "tck:add-deleted";
    expect_added(cache, key, b"first", KEEP, true, "of a key never set").await?;
    expect_added(cache, key, b"second", KEEP, false, "of a key added already").await?;
    delete(cache, key, true, "of an added entry").await?;
    expect_added(cache, key, b"third", KEEP, true, "after delete").await?;
    expect(cache, key, Some(b"third"), "after add, delete, then add").await
}

/// `add` with a zero TTL stores nothing and returns false; on a key holding a live entry
/// it leaves that entry as it was.
pub async fn test_add_with_a_zero_ttl_stores_nothing_and_returns_false(
    cache: &dyn Cache,
) -> CheckResult {
    let zero = Some(Duration::ZERO);
    expect_added(
        cache,
        "tck:add-zero",
        b"never",
        zero,
        false,
        "of a key never set",
    )
    .await?;
    expect(cache, "tck:add-zero", None, "after add with a zero ttl").await?;
    set(cache, "tck:add-zero-present", b"kept", KEEP).await?;
    expect_added(
        cache,
        "tck:add-zero-present",
        b"new",
        zero,
        false,
        "of a key holding a live entry",
    )
    .await?;
    expect(
        cache,
        "tck:add-zero-present",
        Some(b"kept"),
        "after add with a zero ttl over a live entry",
    )
    .await
}

/// `add` refuses what `set` refuses, with the same errors, and writes nothing: the
/// empty key is `InvalidKey` (with a zero TTL too), a value over the limit is
/// `ValueTooLarge` (on an absent and on a present key, with a zero TTL too, and a valid
/// add of that key then stores), and a TTL too large to represent is either stored or
/// refused with `InvalidTtl`.
pub async fn test_add_refuses_caller_mistakes_and_writes_nothing(cache: &dyn Cache) -> CheckResult {
    for ttl in [KEEP, Some(Duration::ZERO), None] {
        let result = cache.add("", Bytes::from_static(b"v"), ttl).await;
        if !matches!(result, Err(CacheError::InvalidKey { .. })) {
            return Err(Failure::new(
                format!("add(\"\", \"v\", {})", ttl_text(ttl)),
                "Err(InvalidKey)",
                format!("{result:?}"),
            ));
        }
    }
    refused_oversized_adds_write_nothing(cache).await?;
    add_with_the_largest_ttl_stores_or_refuses(cache).await
}

/// A value over the limit is `ValueTooLarge` for `add` on an absent and on a present key
/// (with a zero TTL too), and nothing is written.
async fn refused_oversized_adds_write_nothing(cache: &dyn Cache) -> CheckResult {
    let limit = largest_value(cache)?;
    let too_large = Bytes::from(vec![b'x'; limit + 1]);
    set(cache, "tck:add-too-large-present", b"old value", KEEP).await?;
    let attempts = [
        ("tck:add-too-large", KEEP, "an absent key"),
        ("tck:add-too-large", Some(Duration::ZERO), "an absent key"),
        (
            "tck:add-too-large-present",
            KEEP,
            "a key holding a live entry",
        ),
    ];
    for (key, ttl, what) in attempts {
        let result = cache.add(key, too_large.clone(), ttl).await;
        expect_too_large(&result, limit, || {
            format!(
                "add({}, {} bytes, {}) of {what} (limit {limit})",
                describe_key(key),
                limit + 1,
                ttl_text(ttl)
            )
        })?;
    }
    expect(
        cache,
        "tck:add-too-large",
        None,
        "after a refused oversized add",
    )
    .await?;
    expect(
        cache,
        "tck:add-too-large-present",
        Some(b"old value"),
        "after a refused oversized add",
    )
    .await?;
    // A refused add leaves no claim on its key behind: a valid add of it then stores.
    add_absent(cache, "tck:add-too-large", b"fits", KEEP).await?;
    expect(
        cache,
        "tck:add-too-large",
        Some(b"fits"),
        "after a refused oversized add, then a valid add",
    )
    .await
}

/// `add` with `Duration::MAX` either stores (and the entry reads back) or is
/// `InvalidTtl` (and nothing is stored).
async fn add_with_the_largest_ttl_stores_or_refuses(cache: &dyn Cache) -> CheckResult {
    let step = "add(\"tck:add-ttl-max\", \"v\", Duration::MAX)";
    let result = match cache
        .add(
            "tck:add-ttl-max",
            Bytes::from_static(b"v"),
            Some(Duration::MAX),
        )
        .await
    {
        Ok(true) => {
            expect(
                cache,
                "tck:add-ttl-max",
                Some(b"v"),
                "after add with Duration::MAX accepted",
            )
            .await
        }
        Err(CacheError::InvalidTtl { .. }) => {
            expect(
                cache,
                "tck:add-ttl-max",
                None,
                "after add with Duration::MAX refused",
            )
            .await
        }
        other => Err(Failure::new(
            format!("{step} of a key never set"),
            "Ok(true) or Err(InvalidTtl)",
            format!("{other:?}"),
        )),
    };
    remove(cache, &["tck:add-ttl-max"]).await;
    result
}

/// How many tasks, or adders on threads, race on each key.
const RACERS: usize = 32;
/// How many keys they race on, one after the other.
const RACES: usize = 8;
/// Threads the parallel add check runs its adders on.
const THREADS: usize = 4;
/// The longest the adders on threads may take: a backend that hangs fails the check
/// instead of hanging it (the check's own timeout cannot fire while this task waits).
const PARALLEL_DEADLINE: Duration = Duration::from_secs(60);

fn racer_value(racer: usize, race: usize) -> String {
    format!("racer {racer} race {race}")
}

/// Fails unless exactly one racer won `key`, and the key holds the winner's value.
async fn expect_one_winner(
    cache: &dyn Cache,
    key: &str,
    race: usize,
    answers: &[bool],
    context: &str,
) -> CheckResult {
    let winners: Vec<usize> = (0..answers.len()).filter(|&r| answers[r]).collect();
    let [winner] = winners[..] else {
        return Err(Failure::new(
            format!("{} adds of {} {context}", answers.len(), describe_key(key)),
            "exactly one Ok(true)",
            format!("{} returned Ok(true): racers {winners:?}", winners.len()),
        ));
    };
    let value = racer_value(winner, race);
    expect(
        cache,
        key,
        Some(value.as_bytes()),
        &format!(
            "after {} adds {context}, won by racer {winner}",
            answers.len()
        ),
    )
    .await
}

/// Of 32 tasks adding the same key at once, exactly one gets true, and the key holds
/// that task's value; on 8 keys in turn.
pub async fn test_concurrent_adds_from_many_tasks_have_exactly_one_winner(
    cache: &dyn Cache,
) -> CheckResult {
    for race in 0..RACES {
        let key = format!("tck:add-race-{race}");
        let adds = (0..RACERS).map(|racer| {
            let key = &key;
            async move { add(cache, key, racer_value(racer, race).as_bytes(), KEEP).await }
        });
        let answers = join_all(adds)
            .await
            .into_iter()
            .collect::<Result<Vec<bool>, Failure>>()?;
        expect_one_winner(cache, &key, race, &answers, "from concurrent tasks").await?;
    }
    Ok(())
}

/// Adders on 4 threads at once, 8 interleaved in one task on each, all adding the same
/// 200 keys in turn, the threads released together for each key (so that the adds
/// overlap even on a backend that never waits, an in-process one whose `add` is a
/// `get` then a `set`): each key has exactly one winner and holds its value. Needs a
/// multi-thread Tokio runtime, which the macros and `cachectl` build.
pub async fn test_parallel_adds_on_many_threads_have_exactly_one_winner(
    cache: &dyn Cache,
) -> CheckResult {
    let handle = multi_thread_runtime("adders")?;
    let per_thread = RACERS / THREADS;
    let line = StartLine::new(THREADS, PARALLEL_DEADLINE);
    // As in the parallel writers check: threads of their own, each driving its adders on
    // this runtime, waited for in place because they borrow the cache.
    let outcomes = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let handle = &handle;
                    let racers = thread * per_thread..(thread + 1) * per_thread;
                    let line = &line;
                    scope.spawn(move || handle.block_on(run_adders(cache, thread, racers, line)))
                })
                .collect();
            threads
                .into_iter()
                .enumerate()
                .map(|(thread, handle)| {
                    joined(handle, || format!("{per_thread} adders on thread {thread}"))
                })
                .collect::<Vec<_>>()
        })
    });
    // answers[race][racer]
    let mut answers: Vec<Vec<bool>> = vec![Vec::new(); PARALLEL_RACES];
    for outcome in outcomes {
        for racer in outcome? {
            for (race, added) in racer.into_iter().enumerate() {
                answers[race].push(added);
            }
        }
    }
    for (race, answers) in answers.iter().enumerate() {
        let key = format!("tck:add-par-{race}");
        let context = format!("on {THREADS} threads");
        expect_one_winner(cache, &key, race, answers, &context).await?;
    }
    Ok(())
}

/// How many keys the adders on threads race on, one after the other.
const PARALLEL_RACES: usize = 200;

/// Where the adders of every thread wait for each other before each race: a barrier
/// that gives up at a deadline, or as soon as a thread has failed, instead of waiting
/// for ever for a thread that will not come.
struct StartLine {
    arrived: AtomicUsize,
    abandoned: AtomicBool,
    threads: usize,
    deadline: Instant,
}

impl StartLine {
    fn new(threads: usize, within: Duration) -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
            threads,
            deadline: Instant::now() + within,
        }
    }

    /// Waits for every thread to reach `race`; false when that will not happen.
    fn wait(&self, race: usize) -> bool {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let everyone = self.threads * (race + 1);
        while self.arrived.load(Ordering::SeqCst) < everyone {
            if self.abandoned.load(Ordering::SeqCst) || Instant::now() > self.deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }
}

/// The adders of one thread, interleaved in one task, bounded by [`PARALLEL_DEADLINE`];
/// each adder's answers, race by race.
async fn run_adders(
    cache: &dyn Cache,
    thread: usize,
    racers: std::ops::Range<usize>,
    line: &StartLine,
) -> Result<Vec<Vec<bool>>, Failure> {
    let result = race_adders(cache, thread, racers, line).await;
    if result.is_err() {
        line.abandon();
    }
    result
}

async fn race_adders(
    cache: &dyn Cache,
    thread: usize,
    racers: std::ops::Range<usize>,
    line: &StartLine,
) -> Result<Vec<Vec<bool>>, Failure> {
    let count = racers.len();
    let mut answers = vec![Vec::with_capacity(PARALLEL_RACES); count];
    for race in 0..PARALLEL_RACES {
        if !line.wait(race) {
            return Err(Failure::new(
                format!("adders on {THREADS} threads, race {race}"),
                format!("every thread at the start within {PARALLEL_DEADLINE:?}"),
                "a thread that failed or hung",
            ));
        }
        let key = format!("tck:add-par-{race}");
        let adds = racers.clone().map(|racer| {
            let key = &key;
            async move { add(cache, key, racer_value(racer, race).as_bytes(), KEEP).await }
        });
        let left = line.deadline.saturating_duration_since(Instant::now());
        let Ok(results) = tokio::time::timeout(left, join_all(adds)).await else {
            return Err(Failure::new(
                format!("{count} adders on thread {thread}, race {race}"),
                format!("to finish within {PARALLEL_DEADLINE:?}"),
                "no answer (the backend hung)",
            ));
        };
        for (answers, added) in answers.iter_mut().zip(results) {
            answers.push(added?);
        }
    }
    Ok(answers)
}
