//! Node loss: one master of a cluster of the test's own (3 masters, 3 replicas) is
//! killed with SIGKILL under load. Operations on its slots fail with `Unreachable` or
//! `Timeout`, each within the timeouts, until its replica is promoted; then they succeed
//! again on the same `RedisCache`. None fails on the other masters, and no acknowledged
//! write there is lost. The promotion and the window of failures are measured, printed
//! on stderr, and held to the bounds the README states.

mod common;

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{
    testing::{key_slot, ClusterMaster, ClusterSpec},
    RedisCache,
};
use common::{local_cluster, masters, plain};

const PREFIX: &str = "failover:";
/// Keys written (and acknowledged) before the kill.
const KEYS: usize = 3000;
/// Tasks of the load, each with keys of its own to write.
const TASKS: usize = 8;
/// Keys each task writes to, over and over.
const KEYS_PER_TASK: usize = 200;
/// Load before the kill.
const WARM_UP: Duration = Duration::from_secs(2);
/// Load after the promotion, to see the slots served again.
const AFTER_PROMOTION: Duration = Duration::from_secs(4);
/// The load stops by itself after this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(20);
/// How long the test waits for the replica to be promoted.
const PROMOTION_LIMIT: Duration = Duration::from_secs(15);
/// The promotion the README states (1.9 to 2.8 s after the kill, eleven runs), asserted
/// with room for a loaded two-core machine: never before the node timeout (1 s), at the
/// latest 6 s after the kill.
const PROMOTION_ASSERTED: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(6);
/// The window of failures the README states (1.3 to 2.1 s), asserted with room.
const WINDOW_ASSERTED: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// What one operation may take: the cache's deadline (connect plus response timeout,
/// 1 s) and 750 ms of slack for a loaded machine.
const LONGEST_OPERATION: Duration = Duration::from_millis(1_750);

/// One operation of the load.
struct Operation {
    /// When it started, since the load started.
    started: Duration,
    took: Duration,
    /// Whether its key is in a slot of the killed master.
    on_victim: bool,
    /// For a write: the key and the value.
    write: Option<(String, String)>,
    /// `None` when it succeeded, else the error.
    error: Option<CacheError>,
}

fn full_key(key: &str) -> String {
    format!("{PREFIX}{key}")
}

fn initial_key(i: usize) -> String {
    format!("initial-{i}")
}

fn initial_value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i}"))
}

async fn run_task(
    task: usize,
    cache: RedisCache,
    victim: ClusterMaster,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Operation> {
    let mut done = Vec::new();
    let mut i = 0_usize;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < LOAD_LIMIT {
        let began = Instant::now();
        let (key, write, result) = if i.is_multiple_of(2) {
            let n = (task * 7919 + i * 31) % KEYS;
            let key = initial_key(n);
            let result = match cache.get(&key).await {
                Ok(Some(value)) if value == initial_value(n) => Ok(()),
                Ok(other) => Err(CacheError::Backend {
                    backend: "test",
                    source: format!("read {other:?} for {key}, which was written before").into(),
                }),
                Err(err) => Err(err),
            };
            (key, None, result)
        } else {
            let key = format!("load-{task}-{}", (i / 2) % KEYS_PER_TASK);
            let value = format!("{task}:{i}");
            let result = cache.set(&key, Bytes::from(value.clone()), None).await;
            (key.clone(), Some((key, value)), result)
        };
        done.push(Operation {
            started: began - start,
            took: began.elapsed(),
            on_victim: victim.serves(key_slot(full_key(&key).as_bytes())),
            write,
            error: result.err(),
        });
        i += 1;
        // Paced, so that eight tasks do not take a shared machine's every cycle.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    done
}

async fn is_master(port: u16) -> bool {
    let url = format!("redis://127.0.0.1:{port}");
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(Ok(mut connection)) = tokio::time::timeout(
        Duration::from_millis(500),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    let role: Result<Vec<redis::Value>, _> = redis::cmd("ROLE").query_async(&mut connection).await;
    matches!(role.as_deref(), Ok([redis::Value::BulkString(role), ..]) if role == b"master")
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// Kills a master under load; see the module documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_a_master_fails_its_slots_until_its_replica_takes_over() {
    let mut cluster = local_cluster(&ClusterSpec::new()).await;
    let url = cluster.url();
    let ports: Vec<u16> = cluster.nodes().iter().map(|node| node.port()).collect();
    let masters = masters(&url);
    assert_eq!(masters.len(), 3, "{masters:?}");
    let victim = masters[0].clone();

    let cache = RedisCache::builder(&url)
        .key_prefix(PREFIX)
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .await
        .unwrap();
    let initial: Vec<(String, Bytes)> = (0..KEYS)
        .map(|i| (initial_key(i), initial_value(i)))
        .collect();
    for chunk in initial.chunks(500) {
        let chunk: Vec<(&str, Bytes)> =
            chunk.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        cache.set_many(&chunk, None).await.unwrap();
    }
    // The replica has caught up with the victim before the kill, so that a lost write
    // can only be one of the load's.
    let mut victim_client = plain(&victim.url).await;
    let replicated: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut victim_client)
        .await
        .unwrap();
    assert_eq!(replicated, 1, "the replica of the victim did not catch up");
    drop(victim_client);
    // CLUSTER SLOTS lists a replica once it has replicated something, so only now.
    let replica_port = common::masters(&url)
        .into_iter()
        .find(|master| master.port == victim.port)
        .and_then(|master| master.replicas.first().map(|replica| replica.1))
        .unwrap_or_else(|| panic!("the victim {victim:?} lists no replica"));

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(run_task(
                task,
                cache.clone(),
                victim.clone(),
                start,
                Arc::clone(&stop),
            ))
        })
        .collect();

    tokio::time::sleep(WARM_UP).await;
    let killed_at = start.elapsed();
    tokio::task::block_in_place(|| {
        cluster
            .node_mut(victim.port)
            .expect("the victim is a node of the cluster")
            .kill();
    });
    let mut promoted_at = None;
    while start.elapsed() < killed_at + PROMOTION_LIMIT {
        if is_master(replica_port).await {
            promoted_at = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let promoted_at = promoted_at.unwrap_or_else(|| {
        stop.store(true, Ordering::Relaxed);
        panic!("the replica on port {replica_port} was not promoted within {PROMOTION_LIMIT:?}")
    });
    while start.elapsed() < (promoted_at + AFTER_PROMOTION).min(LOAD_LIMIT) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut operations = Vec::new();
    for task in tasks {
        operations.extend(task.await.expect("a load task panicked"));
    }
    let load_took = start.elapsed();

    // Every operation ended within the timeouts, and every failure is backend trouble.
    let slowest = operations
        .iter()
        .map(|op| op.took)
        .max()
        .unwrap_or_default();
    assert!(
        slowest <= LONGEST_OPERATION,
        "an operation took {slowest:?}, past the timeouts"
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for op in operations.iter() {
        if let Some(err) = &op.error {
            // Exactly the kinds the README names: the dead node cannot be reached, or
            // did not answer in time.
            let kind = match err {
                CacheError::Unreachable {
                    backend: "redis", ..
                } => {
                    // Only the victim's keys fail: the error names it, where the
                    // cluster client's own message names no node.
                    let shown = err.to_string();
                    assert!(
                        shown.contains(&format!(":{}", victim.port)),
                        "the error does not name the dead master: {shown}"
                    );
                    "unreachable".to_owned()
                }
                CacheError::Timeout {
                    backend: "redis",
                    phase,
                    ..
                } => format!("timeout ({phase})"),
                other => panic!("expected Unreachable or Timeout, got {other:?}"),
            };
            *kinds.entry(kind).or_default() += 1;
            assert!(
                op.started + op.took >= killed_at,
                "an operation failed before the kill: {err}"
            );
        }
    }

    let victim_failures: Vec<&Operation> = operations
        .iter()
        .filter(|op| op.on_victim && op.error.is_some())
        .collect();
    let other_failures = operations
        .iter()
        .filter(|op| !op.on_victim && op.error.is_some())
        .count();
    assert_eq!(
        other_failures, 0,
        "operations on the other masters' slots failed"
    );
    let promotion = promoted_at - killed_at;
    assert!(
        PROMOTION_ASSERTED.contains(&promotion),
        "the replica was promoted {promotion:?} after the kill, outside {PROMOTION_ASSERTED:?}"
    );
    assert!(
        !victim_failures.is_empty(),
        "no operation on the killed master's slots failed: the kill was not seen"
    );
    let first_failure = victim_failures
        .iter()
        .map(|op| op.started + op.took)
        .min()
        .unwrap();
    let last_failure = victim_failures
        .iter()
        .map(|op| op.started + op.took)
        .max()
        .unwrap();
    let served_again = operations
        .iter()
        .filter(|op| op.on_victim && op.error.is_none() && op.started > last_failure)
        .count();
    assert!(
        served_again > 0,
        "no operation on the killed master's slots succeeded after the last failure"
    );
    assert!(
        last_failure - first_failure <= WINDOW_ASSERTED,
        "operations on the killed master's slots failed during {:?}, past {WINDOW_ASSERTED:?}",
        last_failure - first_failure
    );
    assert!(
        last_failure < promoted_at + Duration::from_secs(3),
        "operations kept failing {:?} after the promotion",
        last_failure.saturating_sub(promoted_at)
    );

    // The same cache, not rebuilt: every key of the other masters reads back as
    // acknowledged; on the killed master's slots, reads succeed again.
    let mut last_acked: BTreeMap<String, String> = BTreeMap::new();
    let mut unacked_after: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut writes: Vec<&Operation> = operations.iter().filter(|op| op.write.is_some()).collect();
    writes.sort_by_key(|op| op.started);
    for op in writes {
        let (key, value) = op.write.clone().unwrap();
        if op.error.is_none() {
            last_acked.insert(key.clone(), value);
            unacked_after.remove(&key);
        } else {
            unacked_after.entry(key).or_default().push(value);
        }
    }
    let mut lost_on_victim = 0;
    let mut checked_on_others = 0;
    let keys: Vec<String> = initial.iter().map(|(key, _)| key.clone()).collect();
    for chunk in keys.chunks(500) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let got = cache
            .get_many(&chunk)
            .await
            .expect("get_many after the failover");
        for (key, value) in chunk.iter().zip(got) {
            let n: usize = key.trim_start_matches("initial-").parse().unwrap();
            if victim.serves(key_slot(full_key(key).as_bytes())) {
                if value != Some(initial_value(n)) {
                    lost_on_victim += 1;
                }
            } else {
                assert_eq!(value, Some(initial_value(n)), "{key} was lost");
                checked_on_others += 1;
            }
        }
    }
    for (key, acked) in &last_acked {
        let value = cache.get(key).await.expect("get after the failover");
        let value = value.map(|value| String::from_utf8_lossy(&value).into_owned());
        if victim.serves(key_slot(full_key(key).as_bytes())) {
            if value.as_deref() != Some(acked.as_str()) {
                lost_on_victim += 1;
            }
        } else {
            let later = unacked_after.get(key).cloned().unwrap_or_default();
            assert!(
                value.as_deref() == Some(acked.as_str())
                    || value.as_ref().is_some_and(|value| later.contains(value)),
                "{key}: acknowledged {acked:?}, read {value:?}"
            );
            checked_on_others += 1;
        }
    }

    let ops_on_victim = operations.iter().filter(|op| op.on_victim).count();
    let report = format!(
        "cluster failover: killed master 127.0.0.1:{victim_port} (slots {slots:?}) at +{kill} ms; \
         its replica 127.0.0.1:{replica_port} was seen promoted {promotion} ms after the kill\n\
         cluster failover: {failed} of {ops_on_victim} operations on its slots failed, the first \
         ending {first} ms and the last {last} ms after the kill: a window of {window} ms; \
         errors {kinds:?}\n\
         cluster failover: {other_failures} of {ops_on_others} operations on the other masters failed; \
         slowest operation {slowest} ms; {total} operations in {load} ms by {TASKS} tasks\n\
         cluster failover: afterwards {checked_on_others} acknowledged keys on the other masters \
         all read back; {lost_on_victim} acknowledged writes on the killed master's slots were lost\n",
        victim_port = victim.port,
        slots = victim.slots,
        kill = millis(killed_at),
        promotion = millis(promoted_at - killed_at),
        failed = victim_failures.len(),
        first = millis(first_failure.saturating_sub(killed_at)),
        last = millis(last_failure.saturating_sub(killed_at)),
        window = millis(last_failure - first_failure),
        ops_on_others = operations.len() - ops_on_victim,
        slowest = millis(slowest),
        total = operations.len(),
        load = millis(load_took),
    );
    let _ = std::io::stderr().write_all(report.as_bytes());

    // No process left behind: every node's port is closed once the cluster is dropped.
    drop(cache);
    drop(cluster);
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "a node still listens on port {port} after the cluster was dropped"
        );
    }
}
