//! Redis Sentinel (`redis+sentinel://`): a group of this test's own (one master, one
//! replica, three sentinels, `down-after-milliseconds 1000`). The cache finds the master
//! through the sentinels; the master is killed with SIGKILL under load; operations fail
//! with `Unreachable` or `Timeout`, each within the timeouts, until the replica is
//! promoted, then the same `RedisCache` writes to the promoted replica. The promotion and
//! the window of failures are measured, printed on stderr and held to the bounds the
//! README states.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::RedisCache;
use cache_testserver::sentinel::SentinelGroup;

const PREFIX: &str = "sentinel:";
const TASKS: usize = 4;
const WARM_UP: Duration = Duration::from_millis(1500);
/// Load after the promotion, to see the new master serve every call.
const AFTER_PROMOTION: Duration = Duration::from_secs(3);
/// The load stops by itself after this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(25);
const PROMOTION_LIMIT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// The connect plus the response timeout, and 750 ms of slack for a loaded machine.
const LONGEST_OPERATION: Duration = Duration::from_millis(1_750);
/// The promotion, asserted with room: never before `down-after-milliseconds`, at the
/// latest 8 s after the kill.
const PROMOTION_ASSERTED: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(8);
/// The window of failures, and how long after the promotion it may go on.
const WINDOW_ASSERTED: Duration = Duration::from_secs(8);
const AFTER_PROMOTION_ASSERTED: Duration = Duration::from_secs(2);

struct Operation {
    started: Duration,
    took: Duration,
    error: Option<CacheError>,
}

async fn load(
    cache: RedisCache,
    task: usize,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Operation> {
    let mut done = Vec::new();
    let mut n = 0_usize;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < LOAD_LIMIT {
        let key = format!("load-{task}-{}", n % 50);
        let value = Bytes::from(format!("{task}-{n}"));
        let began = Instant::now();
        let result = if n.is_multiple_of(2) {
            cache.set(&key, value, None).await
        } else {
            cache.get(&key).await.map(|_| ())
        };
        done.push(Operation {
            started: began - start,
            took: began.elapsed(),
            error: result.err(),
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done
}

async fn plain_get(port: u16, key: &str) -> Option<Vec<u8>> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// After the master is killed, the same cache object writes to the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_the_master_across_a_failover() {
    let mut group = SentinelGroup::start().await.unwrap_or_else(|err| {
        panic!("cannot start a sentinel group (apt-get install redis-server redis-tools): {err}")
    });
    let master_port = group.master_mut().port();
    let replica_port = group.replica().port();
    let cache = RedisCache::builder(&format!("{}?prefix={PREFIX}", group.url()))
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .await
        .expect("the cache finds the master through the sentinels");
    cache.set("before", Bytes::from("1"), None).await.unwrap();
    assert_eq!(
        plain_get(master_port, "sentinel:before").await.as_deref(),
        Some(&b"1"[..]),
        "the cache writes to the master the sentinels name"
    );

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(load(cache.clone(), task, start, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(WARM_UP).await;
    let killed_at = start.elapsed();
    group.master_mut().kill();
    let promoted_at = loop {
        if group.current_master_port() == Some(replica_port) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() - killed_at < PROMOTION_LIMIT,
            "the sentinels did not promote the replica within {PROMOTION_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(AFTER_PROMOTION).await;
    stop.store(true, Ordering::Relaxed);
    let mut operations = Vec::new();
    for task in tasks {
        operations.extend(task.await.unwrap());
    }

    cache.set("after", Bytes::from("2"), None).await.unwrap();
    assert_eq!(
        plain_get(replica_port, "sentinel:after").await.as_deref(),
        Some(&b"2"[..]),
        "the same cache object writes to the promoted replica"
    );
    judge(&operations, killed_at, promoted_at);
}

fn judge(operations: &[Operation], killed_at: Duration, promoted_at: Duration) {
    let failures: Vec<&Operation> = operations.iter().filter(|op| op.error.is_some()).collect();
    for op in &failures {
        assert!(
            matches!(
                op.error,
                Some(CacheError::Unreachable { .. } | CacheError::Timeout { .. })
            ),
            "only Unreachable or Timeout while the master is away, got {:?}",
            op.error
        );
        assert!(
            op.started + op.took >= killed_at,
            "a failure before the kill: {:?}",
            op.error
        );
    }
    let longest = operations
        .iter()
        .map(|op| op.took)
        .max()
        .unwrap_or_default();
    assert!(
        longest <= LONGEST_OPERATION,
        "an operation took {longest:?}, more than the timeouts allow"
    );
    let promotion = promoted_at - killed_at;
    let window = match (
        failures.first(),
        failures.iter().map(|op| op.started + op.took).max(),
    ) {
        (Some(first), Some(last)) => (first.started, last),
        _ => (killed_at, killed_at),
    };
    let after_kill = operations
        .iter()
        .filter(|op| op.started > killed_at)
        .count();
    eprintln!(
        "sentinel failover: {} operations ({after_kill} after the kill), {} failed; promotion {:.2} s after the kill; \
         failures from {:.2} s to {:.2} s after the kill (window {:.2} s), the last {:.2} s after the promotion",
        operations.len(),
        failures.len(),
        promotion.as_secs_f64(),
        window.0.saturating_sub(killed_at).as_secs_f64(),
        window.1.saturating_sub(killed_at).as_secs_f64(),
        (window.1.saturating_sub(window.0)).as_secs_f64(),
        window.1.as_secs_f64() - promoted_at.as_secs_f64(),
    );
    assert!(
        PROMOTION_ASSERTED.contains(&promotion),
        "promotion {promotion:?} after the kill"
    );
    assert!(
        window.1.saturating_sub(window.0) <= WINDOW_ASSERTED,
        "failures during {:?}",
        window.1 - window.0
    );
    assert!(
        window.1 <= promoted_at + AFTER_PROMOTION_ASSERTED,
        "failures went on {:?} after the promotion",
        window.1.saturating_sub(promoted_at)
    );
    let served_after = operations
        .iter()
        .filter(|op| op.started > promoted_at + AFTER_PROMOTION_ASSERTED)
        .count();
    assert!(served_after > 0, "no operation ran after the failover");
}

/// A `redis+sentinel://` URL naming a plain Redis, not a sentinel, is a setting to
/// correct (`Config`), said so; one naming a server that accepts connections and never
/// answers waits the cache's own timeouts, not shorter ones of the redis crate, and the
/// error names the bound that ran out.
#[tokio::test]
async fn a_sentinel_address_that_is_no_sentinel_or_never_answers_is_said_so() {
    use cache_redis::testing::{LocalServer, REDIS};

    let plain = LocalServer::start(&REDIS, &[]).await.unwrap_or_else(|err| {
        panic!("cannot start a redis-server (apt-get install redis-server): {err}")
    });
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", plain.port());
    let message = cache_tck::config_message(RedisCache::connect(&url).await.map(drop));
    assert!(message.contains("not a sentinel"), "{message}");

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let err = RedisCache::builder(&format!("redis+sentinel://{address}/mymaster"))
        .timeout(timeout)
        .build()
        .await
        .map(drop)
        .expect_err("a sentinel that never answers");
    let took = started.elapsed();
    held.abort();
    match &err {
        CacheError::Timeout { after, .. } => assert_eq!(*after, timeout, "{err}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The redis crate's own bounds are 1 s to connect and 500 ms for an answer.
    assert!(
        took >= timeout,
        "gave up after {took:?}, before the timeout"
    );
    assert!(took < timeout * 3, "took {took:?}");
}
