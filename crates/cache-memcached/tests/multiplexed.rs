//! The multiplexed connections under load: many tasks' requests share `pool_size`
//! connections, and every answer reaches the request it belongs to, also while the server is frozen
//! (`SIGSTOP`) and resumed mid-run. A frozen server fails the calls in flight with
//! `Timeout` within the deadline, and the same cache works again once it resumes. A
//! server whose answers get out of step (a fake one, here) gives errors, never a value
//! of another key.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::LocalServer, MemcachedCache};
use common::{address, local_server, server_stats, stat};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

const TASKS: usize = 64;
const OPS_PER_TASK: usize = 200;
/// Keys each task owns (no other task writes them).
const KEYS_PER_TASK: usize = 8;
const TIMEOUT: Duration = Duration::from_millis(300);
/// Room for a loaded two-core machine on top of the timeout.
const MARGIN: Duration = Duration::from_millis(700);

/// Sends `SIGCONT` when dropped, so that a failing test never leaves its server frozen.
struct Resume<'a>(&'a LocalServer);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}

fn key(task: usize, slot: usize) -> String {
    format!("mux:{task}:{slot}")
}

/// A value that names its key, so that an answer handed to the wrong request shows.
fn value(key: &str, version: usize) -> Bytes {
    Bytes::from(format!("{key}={version}"))
}

fn names_its_key(key: &str, value: &[u8]) -> bool {
    value.starts_with(format!("{key}=").as_bytes())
}

/// What a load run saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    timeouts: AtomicUsize,
    unreachable: AtomicUsize,
}

/// One task's share of the load: sets, gets, batch reads and deletes of its own keys,
/// checking every value read against the key it was read for. While nothing fails, it
/// also checks the exact value: the last one it wrote.
async fn task_load(cache: MemcachedCache, task: usize, tally: Arc<Tally>) {
    let mut expected: Vec<Option<usize>> = vec![None; KEYS_PER_TASK];
    let mut trusted = true;
    for op in 0..OPS_PER_TASK {
        let slot = op % KEYS_PER_TASK;
        let key = key(task, slot);
        let outcome: Result<(), CacheError> = match op % 4 {
            0 | 2 => cache
                .set(&key, value(&key, op), None)
                .await
                .map(|()| expected[slot] = Some(op)),
            1 => cache.get(&key).await.map(|read| {
                if let Some(read) = &read {
                    assert!(names_its_key(&key, read), "get {key} returned {read:?}");
                }
                if trusted {
                    let want = expected[slot].map(|version| value(&key, version));
                    assert_eq!(read, want, "get {key}");
                }
            }),
            _ => {
                let keys: Vec<String> = (0..KEYS_PER_TASK).map(|s| self::key(task, s)).collect();
                let names: Vec<&str> = keys.iter().map(String::as_str).collect();
                cache.get_many(&names).await.map(|values| {
                    assert_eq!(values.len(), names.len());
                    for (name, read) in names.iter().zip(&values) {
                        if let Some(read) = read {
                            assert!(names_its_key(name, read), "get_many {name}: {read:?}");
                        }
                    }
                })
            }
        };
        match outcome {
            Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
            // A write that failed may still land later: exact values are no longer known.
            Err(CacheError::Timeout { .. }) => {
                trusted = false;
                tally.timeouts.fetch_add(1, Ordering::Relaxed)
            }
            Err(CacheError::Unreachable { .. }) => {
                trusted = false;
                tally.unreachable.fetch_add(1, Ordering::Relaxed)
            }
            Err(other) => panic!("task {task} op {op} on {key}: {other:?}"),
        };
    }
}

async fn run_load(cache: &MemcachedCache, tally: &Arc<Tally>) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(task_load(cache.clone(), task, Arc::clone(tally))))
        .collect();
    for task in tasks {
        task.await.expect("a load task panicked");
    }
}

async fn cache_on(server: &LocalServer, pool_size: usize) -> MemcachedCache {
    MemcachedCache::builder(&server.url())
        .timeout(TIMEOUT)
        .pool_size(pool_size)
        .build()
        .await
        .unwrap()
}

/// 64 tasks x 200 operations on one and on two connections: every answer is the one of
/// its own request, values exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_reaches_its_own_request_under_concurrency() {
    let server = local_server(&[]).await;
    for pool_size in [1, 2] {
        let cache = cache_on(&server, pool_size).await;
        let tally = Arc::new(Tally::default());
        run_load(&cache, &tally).await;
        assert_eq!(
            tally.ok.load(Ordering::Relaxed),
            TASKS * OPS_PER_TASK,
            "pool_size {pool_size}: every operation succeeds on a healthy server"
        );
    }
}

/// The 64 tasks share the configured number of connections: the server sees no more
/// connections opened than that, however many calls are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_pool_size_connections() {
    let server = local_server(&[]).await;
    let pool_size = 2;
    let cache = cache_on(&server, pool_size).await;
    let address = address(&server.url());
    let before = server_stats(&address);
    let tally = Arc::new(Tally::default());
    run_load(&cache, &tally).await;
    let after = server_stats(&address);
    assert_eq!(tally.ok.load(Ordering::Relaxed), TASKS * OPS_PER_TASK);
    let grew = |name| stat(&after, name) - stat(&before, name);
    // The second stats connection counts itself; `build` dialled the first connection.
    let opened = grew("total_connections") - 1;
    assert!(
        opened < u64::try_from(pool_size).unwrap(),
        "{opened} connections opened by the load after build, with pool_size {pool_size}"
    );
    // Every task's reads and batches went over them.
    let reads = TASKS * (OPS_PER_TASK / 4) * (1 + KEYS_PER_TASK);
    assert_eq!(
        grew("cmd_get"),
        u64::try_from(reads).unwrap(),
        "reads the server saw"
    );
}

/// The same load with the server frozen for a while mid-run: calls fail only with
/// `Timeout` or `Unreachable`, no answer goes to another request, and calls succeed again
/// after `SIGCONT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_goes_astray_while_the_server_is_frozen_and_resumed() {
    let server = local_server(&[]).await;
    let cache = cache_on(&server, 2).await;
    let tally = Arc::new(Tally::default());
    let load = tokio::spawn({
        let cache = cache.clone();
        let tally = Arc::clone(&tally);
        async move { run_load(&cache, &tally).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ok_before = tally.ok.load(Ordering::Relaxed);
    {
        let _resume = Resume(&server);
        server.pause();
        tokio::time::sleep(TIMEOUT * 2).await;
    }
    let ok_at_resume = tally.ok.load(Ordering::Relaxed);
    load.await.expect("the load panicked");
    let ok = tally.ok.load(Ordering::Relaxed);
    let timeouts = tally.timeouts.load(Ordering::Relaxed);
    let unreachable = tally.unreachable.load(Ordering::Relaxed);
    eprintln!(
        "frozen mid-run: {ok} ok ({ok_before} before the freeze, {} after the resume), \
         {timeouts} timeouts, {unreachable} unreachable",
        ok - ok_at_resume
    );
    assert!(ok_before > 0, "the load had started before the freeze");
    assert!(timeouts > 0, "the freeze was seen");
    assert!(ok > ok_at_resume, "calls succeeded again after the resume");
    // Healed: a write and a read on every connection.
    for i in 0..4 {
        let key = format!("after:{i}");
        cache.set(&key, value(&key, i), None).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap(), Some(value(&key, i)));
    }
}

/// Calls in flight on a frozen server, many at once on one connection, each fail with
/// `Timeout` within the deadline; after `SIGCONT` the same cache answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_calls_in_flight_with_timeout_in_time() {
    let server = local_server(&[]).await;
    let cache = cache_on(&server, 1).await;
    cache.set("k", value("k", 1), None).await.unwrap();
    {
        let _resume = Resume(&server);
        server.pause();
        let calls: Vec<_> = (0..32)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = if i % 2 == 0 {
                        cache.get("k").await.map(drop)
                    } else {
                        cache.set(&format!("k{i}"), value("k", i), None).await
                    };
                    (result, started.elapsed())
                })
            })
            .collect();
        for call in calls {
            let (result, elapsed) = call.await.unwrap();
            assert!(
                matches!(result, Err(CacheError::Timeout { after, .. }) if after == TIMEOUT),
                "a call on a frozen server: {result:?}"
            );
            assert!(elapsed < TIMEOUT + MARGIN, "took {elapsed:?}");
        }
    }
    let healed = Instant::now();
    loop {
        match cache.get("k").await {
            Ok(read) => {
                assert_eq!(read, Some(value("k", 1)));
                break;
            }
            Err(error) if error.is_retryable() && healed.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("still failing after the resume: {error:?}"),
        }
    }
}

/// A fake memcached that answers `stats settings` and `mn` properly, then answers each
/// meta command with the value of another key and a wrong opaque token.
async fn out_of_step_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer: &[u8] = if line == "stats settings" {
                        b"STAT item_size_max 1048576\r\nEND\r\n"
                    } else if line == "mn" {
                        b"MN\r\n"
                    } else if line.starts_with("mg ") {
                        b"VA 13 f0 O4000000000\r\nmux:other=666\r\n"
                    } else {
                        b"HD O4000000000\r\n"
                    };
                    if write.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("memcache://{address}")
}

/// Answers out of step are errors, never a value of another key: the opaque token each
/// command carries must come back with its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_out_of_step_are_errors_never_values() {
    let url = out_of_step_server().await;
    let cache = MemcachedCache::builder(&url)
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        let read = cache.get("mux:mine").await;
        assert!(
            matches!(read, Err(CacheError::Backend { .. })),
            "an answer with another request's token: {read:?}"
        );
        let batch = cache.get_many(&["mux:a", "mux:b"]).await;
        assert!(
            matches!(batch, Err(CacheError::Backend { .. })),
            "a batch answered out of step: {batch:?}"
        );
        let write = cache.set("mux:mine", value("mux:mine", 1), None).await;
        assert!(
            matches!(write, Err(CacheError::Backend { .. })),
            "{write:?}"
        );
    }
}
