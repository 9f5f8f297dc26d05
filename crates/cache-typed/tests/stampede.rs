//! 1,000 concurrent `get_or_set` of one missing key run the factory once, on every
//! backend; with the distributed lock, two caches on two connections to one Redis
//! ("two processes") run it once in total.

mod common;

use std::{sync::Arc, time::Duration};

use cache_api::Cache;
use cache_typed::{DistributedLock, EntryOptions};
use common::{user, users, Runs};
use futures::future::join_all;

const CALLERS: usize = 1_000;

/// Every caller gets the factory's value, the factory ran once, and the value is stored.
async fn one_factory_run_for_a_thousand_callers(cache: Arc<dyn Cache>) {
    let typed = users(cache);
    let runs = Runs::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let options = typed.options().ttl(Duration::from_secs(60));
    let callers = (0..CALLERS).map(|_| {
        let (typed, runs, barrier) = (typed.clone(), runs.clone(), Arc::clone(&barrier));
        tokio::spawn(async move {
            barrier.wait().await;
            let factory = runs.factory(Duration::from_millis(100), user(42, "ada"));
            typed.get_or_set("user:42", options, factory).await
        })
    });
    let answers = join_all(callers).await;
    for answer in answers {
        assert_eq!(
            answer.expect("caller task").expect("get_or_set"),
            user(42, "ada")
        );
    }
    assert_eq!(
        runs.count(),
        1,
        "the factory ran {} times for {CALLERS} callers",
        runs.count()
    );
    assert_eq!(typed.get("user:42").await.unwrap(), Some(user(42, "ada")));
}

/// Memory: 1,000 concurrent callers of a missing key, one factory run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_runs_the_factory_once_for_a_thousand_callers() {
    one_factory_run_for_a_thousand_callers(common::memory()).await;
}

/// Redis: 1,000 concurrent callers of a missing key, one factory run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_runs_the_factory_once_for_a_thousand_callers() {
    let cache = cache_redis::testing::fresh_cache().await;
    one_factory_run_for_a_thousand_callers(Arc::new(cache)).await;
}

/// memcached: 1,000 concurrent callers of a missing key, one factory run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_runs_the_factory_once_for_a_thousand_callers() {
    let cache = cache_memcached::testing::fresh_cache().await;
    one_factory_run_for_a_thousand_callers(Arc::new(cache)).await;
}

const TRIALS: usize = 100;
const CALLERS_PER_PROCESS: usize = 8;

/// Two caches with separate connections to one Redis, sharing a key prefix, stand for
/// two processes. In each trial both miss one new key at once (8 callers each); with
/// the distributed lock the factory runs once in total in at least 95 of 100 trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_lock_runs_the_factory_once_across_two_processes() {
    let first = cache_redis::testing::fresh_cache().await;
    let prefix = first.prefix().to_owned();
    let server = cache_redis::testing::shared_server(&cache_redis::testing::REDIS).await;
    let second =
        cache_redis::testing::fresh_cache_on_with(server.url(), |b| b.key_prefix(prefix)).await;
    let processes = [users(Arc::new(first)), users(Arc::new(second))];
    let plain = EntryOptions::default().ttl(Duration::from_secs(60));
    let locked = plain.distributed_lock(DistributedLock::new(Duration::from_secs(2)));

    // Without the lock, each process computes: the trials do race.
    let (once, _) = trials(&processes, plain, "unlocked", 20).await;
    println!("without the distributed lock: the factory ran once in {once} of 20 trials");
    assert!(
        once < 10,
        "without a lock the processes should both compute, yet {once} of 20 trials ran once"
    );

    let (once, worst) = trials(&processes, locked, "locked", TRIALS).await;
    println!("distributed single-flight: the factory ran once in {once} of {TRIALS} trials (at most {worst} runs in a trial)");
    assert!(
        once >= 95,
        "the factory ran once in only {once} of {TRIALS} trials"
    );
}

/// Runs `count` trials; returns in how many the factory ran once, and the most runs.
async fn trials(
    processes: &[cache_typed::TypedCache<common::User, cache_typed::JsonCodec>],
    options: EntryOptions,
    name: &str,
    count: usize,
) -> (usize, usize) {
    let mut once = 0;
    let mut worst = 0;
    for trial in 0..count {
        let key = format!("{name}:{trial}");
        let runs = Runs::default();
        let barrier = Arc::new(tokio::sync::Barrier::new(2 * CALLERS_PER_PROCESS));
        let callers = processes.iter().flat_map(|typed| {
            (0..CALLERS_PER_PROCESS).map(|_| {
                let (typed, runs, barrier, key) = (
                    typed.clone(),
                    runs.clone(),
                    Arc::clone(&barrier),
                    key.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    let factory = runs.factory(Duration::from_millis(20), user(7, "grace"));
                    typed.get_or_set(&key, options, factory).await
                })
            })
        });
        for answer in join_all(callers.collect::<Vec<_>>()).await {
            assert_eq!(answer.unwrap().unwrap(), user(7, "grace"));
        }
        once += usize::from(runs.count() == 1);
        worst = worst.max(runs.count());
    }
    (once, worst)
}
