//! Concurrent use: many writers interleaved in one task, and writers on several threads
//! at once; afterwards the final state of every key is read back.

use std::{any::Any, time::Duration};

use super::multi_thread_runtime;
use cache_api::{Bytes, Cache};
use futures::future::join_all;

use super::{delete, describe, expect, expect_many, get, set, KEEP};
use crate::failure::{CheckResult, Failure, OrFail};

/// Many tasks using one cache at once each read back exactly what they wrote;
/// afterwards every key holds the last value written to it (none once deleted), and the
/// key they all raced on holds one of the values written.
pub async fn test_concurrent_use_from_many_tasks(cache: &dyn Cache) -> CheckResult {
    const TASKS: usize = 64;
    const ROUNDS: usize = 20;
    const SLOTS: usize = 5;
    let value = |t: usize, round: usize| format!("task {t} round {round}");
    let task = |t: usize| async move {
        for round in 0..ROUNDS {
            let key = format!("tck:conc-{t}-{}", round % SLOTS);
            let value = value(t, round);
            set(cache, &key, value.as_bytes(), KEEP).await?;
            expect(
                cache,
                &key,
                Some(value.as_bytes()),
                "by the task that wrote it",
            )
            .await?;
            set(cache, "tck:conc-shared", value.as_bytes(), KEEP).await?;
        }
        delete(
            cache,
            &format!("tck:conc-{t}-0"),
            true,
            "by the task that wrote it",
        )
        .await
    };
    for result in join_all((0..TASKS).map(task)).await {
        result?;
    }
    for t in 0..TASKS {
        for slot in 0..SLOTS {
            let last = value(t, ROUNDS - SLOTS + slot);
            let want = (slot != 0).then_some(last.as_bytes());
            let context = format!("after {TASKS} tasks wrote {ROUNDS} rounds each");
            expect(cache, &format!("tck:conc-{t}-{slot}"), want, &context).await?;
        }
    }
    let shared = get(cache, "tck:conc-shared", "after concurrent writers").await?;
    let written = (0..TASKS)
        .any(|t| (0..ROUNDS).any(|round| shared.as_deref() == Some(value(t, round).as_bytes())));
    if !written {
        return Err(Failure::new(
            format!("get(\"tck:conc-shared\") after {TASKS} tasks wrote it"),
            "one of the written values",
            describe(&shared),
        ));
    }
    let mut keys: Vec<String> = (0..TASKS)
        .flat_map(|t| (0..SLOTS).map(move |slot| format!("tck:conc-{t}-{slot}")))
        .collect();
    keys.push("tck:conc-shared".to_owned());
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    cleared_after(
        cache,
        &refs,
        &format!("{TASKS} tasks wrote {ROUNDS} rounds each"),
    )
    .await
}

/// Threads the parallel check runs writers on.
const THREADS: usize = 4;
/// Writers per thread, interleaved in one task on that thread.
const WRITERS_PER_THREAD: usize = 16;
/// Rounds each writer runs.
const PARALLEL_ROUNDS: usize = 12;
/// The longest the writers may take: a backend that hangs fails the check instead of
/// hanging it (the check's own timeout cannot fire while this task waits for threads).
const PARALLEL_DEADLINE: Duration = Duration::from_secs(60);

fn parallel_value(writer: usize, round: usize) -> String {
    format!("writer {writer} round {round}")
}

/// Writers on 4 threads at once, 16 interleaved in one task on each, lose no write:
/// afterwards every key holds the last value written to it (none once deleted), by
/// `get` and by `get_many`, and the key they all raced on holds one of the values
/// written. Needs a multi-thread Tokio runtime, which the macros and `cachectl` build.
pub async fn test_parallel_writers_on_many_threads_lose_no_write(cache: &dyn Cache) -> CheckResult {
    let handle = multi_thread_runtime("writers")?;
    // The writers run on threads of their own, each driving its futures on this runtime
    // (its I/O and timers, and any task a backend spawns), so that they really run at
    // the same time. The threads borrow the cache, so this task waits for them in place.
    let outcomes = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let handle = &handle;
                    scope.spawn(move || handle.block_on(run_writers(cache, thread)))
                })
                .collect();
            threads
                .into_iter()
                .enumerate()
                .map(|(thread, handle)| {
                    joined(handle, || {
                        format!("{WRITERS_PER_THREAD} writers on thread {thread}")
                    })
                })
                .collect::<Vec<_>>()
        })
    });
    outcomes.into_iter().collect::<CheckResult>()?;

    let writers = THREADS * WRITERS_PER_THREAD;
    let context = format!("after {writers} writers on {THREADS} threads");
    let mut keys = Vec::new();
    let mut wanted = Vec::new();
    for writer in 0..writers {
        for round in 0..PARALLEL_ROUNDS {
            let value = parallel_value(writer, round);
            let deleted = round % 4 == 2;
            keys.push(format!("tck:par-{writer}-{round}"));
            wanted.push((!deleted).then(|| value.clone()));
            if round % 4 == 3 {
                keys.push(format!("tck:par-{writer}-batch-{round}"));
                wanted.push(Some(value));
            }
        }
        keys.push(format!("tck:par-{writer}-hot"));
        wanted.push(Some(parallel_value(writer, PARALLEL_ROUNDS - 1)));
    }
    for (key, want) in keys.iter().zip(&wanted) {
        expect(cache, key, want.as_deref().map(str::as_bytes), &context).await?;
    }
    let shared = get(cache, "tck:par-shared", &context).await?;
    let written = (0..writers).any(|writer| {
        (0..PARALLEL_ROUNDS)
            .any(|round| shared.as_deref() == Some(parallel_value(writer, round).as_bytes()))
    });
    if !written {
        return Err(Failure::new(
            format!("get(\"tck:par-shared\") {context} all wrote it"),
            "one of the written values",
            describe(&shared),
        ));
    }
    let mut refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let wanted: Vec<Option<&[u8]>> = wanted
        .iter()
        .map(|want| want.as_deref().map(str::as_bytes))
        .collect();
    expect_many(cache, &refs, &wanted, &context).await?;
    refs.push("tck:par-shared");
    cleared_after(cache, &refs, &context).await
}

/// Where `clear` is declared: clears, then reads `keys` back as misses (a backend that
/// lists its keys for `clear` must not lose the ones written concurrently).
async fn cleared_after(cache: &dyn Cache, keys: &[&str], context: &str) -> CheckResult {
    if !cache.limits().clear {
        return Ok(());
    }
    cache.clear().await.or_fail(|| format!("clear {context}"))?;
    let context = format!("after clear, {context}");
    expect_many(cache, keys, &vec![None; keys.len()], &context).await
}

/// The writers of one thread, interleaved in one task, bounded by [`PARALLEL_DEADLINE`].
async fn run_writers(cache: &dyn Cache, thread: usize) -> CheckResult {
    let writers =
        (0..WRITERS_PER_THREAD).map(|i| write_rounds(cache, thread * WRITERS_PER_THREAD + i));
    match tokio::time::timeout(PARALLEL_DEADLINE, join_all(writers)).await {
        Ok(results) => results.into_iter().collect(),
        Err(_) => Err(Failure::new(
            format!("{WRITERS_PER_THREAD} writers on thread {thread}"),
            format!("to finish within {PARALLEL_DEADLINE:?}"),
            "no answer (the backend hung)",
        )),
    }
}

/// One writer: each round writes a key of its own, its hot key (overwritten every
/// round) and the shared key; every fourth round deletes the key of the round before
/// and writes a batch.
async fn write_rounds(cache: &dyn Cache, writer: usize) -> CheckResult {
    for round in 0..PARALLEL_ROUNDS {
        let value = parallel_value(writer, round);
        set(
            cache,
            &format!("tck:par-{writer}-{round}"),
            value.as_bytes(),
            KEEP,
        )
        .await?;
        set(
            cache,
            &format!("tck:par-{writer}-hot"),
            value.as_bytes(),
            KEEP,
        )
        .await?;
        set(cache, "tck:par-shared", value.as_bytes(), KEEP).await?;
        if round % 4 == 3 {
            let previous = format!("tck:par-{writer}-{}", round - 1);
            delete(cache, &previous, true, "by the writer that wrote it").await?;
            let batch = format!("tck:par-{writer}-batch-{round}");
            cache
                .set_many(&[(batch.as_str(), Bytes::from(value))], KEEP)
                .await
                .or_fail(|| format!("set_many([({batch:?}, ..)], 1h)"))?;
        }
    }
    Ok(())
}

/// The outcome of a check's thread, a panic in it a failure of `what` (which did not
/// finish).
pub(super) fn joined<T>(
    thread: std::thread::ScopedJoinHandle<'_, Result<T, Failure>>,
    what: impl FnOnce() -> String,
) -> Result<T, Failure> {
    thread.join().unwrap_or_else(|panic| {
        Err(Failure::new(
            what(),
            "to finish",
            format!("a panic: {}", panic_text(panic.as_ref())),
        ))
    })
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// A write on one thread is seen by a read on another thread that read the key before:
/// after a `set` there, the new value; after a `delete` there, a miss (a backend that
/// keeps a copy per thread or per connection and does not hear of other writes fails
/// here). Needs a multi-thread Tokio runtime, which the macros and `cachectl` build.
pub async fn test_writes_on_one_thread_are_seen_by_reads_on_another(
    cache: &dyn Cache,
) -> CheckResult {
    use std::sync::mpsc::channel;

    const KEY: &str = "tck:cross-thread";
    let handle = multi_thread_runtime("a reader and a writer")?;
    set(cache, KEY, b"first", KEEP).await?;
    let (to_writer, writer_turn) = channel::<()>();
    let (to_reader, reader_turn) = channel::<()>();
    let reader = async move {
        let context = "on the reader's thread, before the writer's";
        expect(cache, KEY, Some(b"first"), context).await?;
        // Moved in: once this ends, however, the writer's channel closes and it stops
        // waiting.
        async move {
            let _ = to_writer.send(());
            reader_turn.recv().map_err(|_| gone("set"))?;
            let context = "on the reader's thread, after a set on the writer's";
            expect(cache, KEY, Some(b"second"), context).await?;
            let _ = to_writer.send(());
            reader_turn.recv().map_err(|_| gone("delete"))?;
            let context = "on the reader's thread, after a delete on the writer's";
            expect(cache, KEY, None, context).await
        }
        .await
    };
    let writer = async move {
        if writer_turn.recv().is_err() {
            return Ok(());
        }
        set(cache, KEY, b"second", KEEP).await?;
        let _ = to_reader.send(());
        if writer_turn.recv().is_err() {
            return Ok(());
        }
        delete(cache, KEY, true, "on the writer's thread").await?;
        let _ = to_reader.send(());
        Ok(())
    };
    let outcomes = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handle = &handle;
            let reader = scope.spawn(move || handle.block_on(reader));
            let writer = scope.spawn(move || handle.block_on(writer));
            [("reader", reader), ("writer", writer)]
                .map(|(name, thread)| joined(thread, || format!("the {name} thread")))
        })
    });
    let result = outcomes.into_iter().collect::<CheckResult>();
    super::remove(cache, &[KEY]).await;
    result
}

/// How many times [`test_reads_during_overwrites_end_on_the_last_write`] overwrites its
/// key while the readers read it.
const OVERWRITES: usize = 200;

/// Reads on other threads while one key (without TTL) is overwritten again and again
/// end on the last write: once the writer is done, each reader's thread reads the
/// writer's last value (a backend that keeps copies of what it read and misses an
/// invalidation while reads are under way serves an older value for good). Needs a
/// multi-thread Tokio runtime, as the check above.
pub async fn test_reads_during_overwrites_end_on_the_last_write(cache: &dyn Cache) -> CheckResult {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const KEY: &str = "tck:overwritten";
    const READERS: usize = 3;
    let handle = multi_thread_runtime("readers beside a writer")?;
    set(cache, KEY, b"written 0", None).await?;
    let last = format!("written {OVERWRITES}");
    let (done, reading) = (AtomicBool::new(false), AtomicUsize::new(0));
    let writer = async {
        // The writes start once every reader reads (5 s at most: a reader that fails
        // says so itself).
        let waiting = std::time::Instant::now();
        while reading.load(Ordering::SeqCst) < READERS && waiting.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut written = Ok(());
        for i in 1..=OVERWRITES {
            written = set(cache, KEY, format!("written {i}").as_bytes(), None).await;
            if written.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        done.store(true, Ordering::SeqCst);
        written
    };
    let reader = || async {
        let _ = cache.get(KEY).await;
        reading.fetch_add(1, Ordering::SeqCst);
        while !done.load(Ordering::SeqCst) {
            let _ = cache.get(KEY).await;
        }
        let context = format!("on a reader's thread, after {OVERWRITES} overwrites on another");
        expect(cache, KEY, Some(last.as_bytes()), &context).await
    };
    let outcomes = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handle = &handle;
            let mut threads = vec![("writer", scope.spawn(move || handle.block_on(writer)))];
            for _ in 0..READERS {
                let reading = reader();
                threads.push(("reader", scope.spawn(move || handle.block_on(reading))));
            }
            threads
                .into_iter()
                .map(|(name, thread)| joined(thread, || format!("the {name} thread")))
                .collect::<Vec<_>>()
        })
    });
    let result = outcomes.into_iter().collect::<CheckResult>();
    super::remove(cache, &[KEY]).await;
    result
}

/// The failure of a reader whose writer stopped before its `step`.
fn gone(step: &str) -> Failure {
    Failure::new(
        format!("the writer's {step}"),
        "to happen",
        "the writer's thread ended first",
    )
}
