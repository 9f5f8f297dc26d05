//! A ring of three memcached processes of each test's own, one of them killed
//! (`SIGKILL`) or frozen (`SIGSTOP`): only the keys it holds fail, within the timeout,
//! every other key keeps working, and once it is back the same cache object uses it
//! again. The generation counter of a key prefix lives on one node: losing that node
//! keeps the other nodes' keys working. Timings are measured and written to stderr.

mod common;

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::LocalServer, MemcachedCache, MemcachedCacheBuilder};
use common::{addresses, generation_home, holders, local_ring};

const NODES: usize = 3;
/// Keys written before a node is lost.
const KEYS: usize = 600;
const TIMEOUT: Duration = Duration::from_millis(300);
/// Room for a loaded two-core machine on top of the timeout.
const MARGIN: Duration = Duration::from_millis(700);
/// How long the test waits for a restarted node to serve its keys again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// How soon the first call on a restarted node's key must succeed: "a few milliseconds"
/// in the README (1 to 3 ms measured), with room for a loaded two-core machine.
const BACK_WITHIN: Duration = Duration::from_millis(250);

/// Writes to stderr directly: the harness does not capture it, so a passing run shows
/// the measures too.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "ring node loss: {line}");
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key:{i}")).collect()
}

fn value(key: &str, phase: &str) -> Bytes {
    Bytes::from(format!("{phase} {key}"))
}

/// Latencies of one kind of operation, summarised as `n=… p50=… p99=… max=…`.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn record(&mut self, elapsed: Duration) {
        self.0.push(elapsed);
    }

    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    fn summary(&self) -> String {
        let mut sorted = self.0.clone();
        sorted.sort();
        let at = |fraction: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * fraction).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        format!(
            "n={} p50={:.2?} p99={:.2?} max={:.2?}",
            sorted.len(),
            at(0.5),
            at(0.99),
            self.max()
        )
    }
}

/// Runs `operation`, timing it.
async fn timed<T>(
    operation: impl std::future::Future<Output = Result<T, CacheError>>,
) -> (Result<T, CacheError>, Duration) {
    let started = Instant::now();
    let result = operation.await;
    (result, started.elapsed())
}

/// How a lost node fails the operations on its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// Killed: it refuses connections, and the operation fails with `Unreachable` at
    /// once, well before the timeout.
    Killed,
    /// Frozen: it does not answer, and the operation fails with `Timeout` once the
    /// timeout has run out.
    Frozen,
}

/// Checks that an operation on a lost node's key failed with the error kind of `lost`,
/// in the time that kind takes.
fn failed_in_time<T: std::fmt::Debug>(
    what: &str,
    lost: Lost,
    result: Result<T, CacheError>,
    elapsed: Duration,
) {
    match (lost, &result) {
        (Lost::Killed, Err(CacheError::Unreachable { .. })) => assert!(
            elapsed < TIMEOUT,
            "{what} on the killed node took {elapsed:?}: a refused connection must not wait \
             for the {TIMEOUT:?} timeout"
        ),
        (Lost::Frozen, Err(CacheError::Timeout { after, .. })) => {
            assert_eq!(*after, TIMEOUT, "{what} on the frozen node: {result:?}");
            assert!(
                elapsed >= TIMEOUT && elapsed < TIMEOUT + MARGIN,
                "{what} on the frozen node took {elapsed:?} with a {TIMEOUT:?} timeout"
            );
        }
        (Lost::Killed, _) => {
            panic!("{what} on the killed node: expected Err(Unreachable), got {result:?}")
        }
        (Lost::Frozen, _) => {
            panic!("{what} on the frozen node: expected Err(Timeout), got {result:?}")
        }
    }
}

/// A cache under `prefix` on a ring of the test's own, `KEYS` keys written through it,
/// and for each key the node that holds it.
struct Placed {
    url: String,
    prefix: &'static str,
    cache: MemcachedCache,
    keys: Vec<String>,
    holder: Vec<usize>,
    /// The node of the prefix's generation counter.
    home: usize,
}

impl Placed {
    /// The keys that `node` holds, in order.
    fn keys_on(&self, node: usize) -> Vec<&str> {
        self.keys_where(|holder| holder == node)
    }

    /// The keys that the other nodes hold, in order.
    fn keys_off(&self, node: usize) -> Vec<&str> {
        self.keys_where(|holder| holder != node)
    }

    fn all_keys(&self) -> Vec<&str> {
        self.keys_where(|_| true)
    }

    fn keys_where(&self, held_by: impl Fn(usize) -> bool) -> Vec<&str> {
        self.keys
            .iter()
            .zip(&self.holder)
            .filter(|(_, holder)| held_by(**holder))
            .map(|(key, _)| key.as_str())
            .collect()
    }
}

/// A cache on the ring at `url` with the tests' timeout, under `prefix` if any, adjusted
/// by `configure`.
async fn cache_on(
    url: &str,
    prefix: Option<&str>,
    configure: impl FnOnce(MemcachedCacheBuilder) -> MemcachedCacheBuilder,
) -> MemcachedCache {
    let builder = MemcachedCache::builder(url).timeout(TIMEOUT);
    let builder = match prefix {
        Some(prefix) => builder.key_prefix(prefix),
        None => builder,
    };
    configure(builder).build().await.unwrap()
}

/// Asserts that a `get_many` of `keys` finds every one of them.
async fn assert_get_many_finds_all(cache: &MemcachedCache, keys: &[&str], what: &str) {
    let found = cache.get_many(keys).await.unwrap();
    let hits = found.iter().filter(|value| value.is_some()).count();
    assert_eq!(
        hits,
        keys.len(),
        "{what}: get_many found {hits} of the keys"
    );
}

/// The ring's nodes, and what was written on it.
async fn setup(
    prefix: &'static str,
    configure: fn(MemcachedCacheBuilder) -> MemcachedCacheBuilder,
) -> (Vec<LocalServer>, Placed) {
    let (nodes, url) = local_ring(NODES).await;
    let cache = cache_on(&url, Some(prefix), configure).await;
    let keys = keys();
    for key in &keys {
        cache.set(key, value(key, "before"), None).await.unwrap();
    }
    let (home, generation) = generation_home(&addresses(&nodes), prefix);
    let raw: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| format!("{prefix}{{{generation}}}{key}").into_bytes())
        .collect();
    let holder = holders(&addresses(&nodes), &raw);
    for node in 0..NODES {
        assert!(holder.contains(&node), "no key on node {node}");
    }
    let placed = Placed {
        url,
        prefix,
        cache,
        keys,
        holder,
        home,
    };
    (nodes, placed)
}

/// With a node killed, its keys fail get, set, delete and exists with `Unreachable` or
/// `Timeout` within the timeout, and every other key keeps working; a `get_many`,
/// `set_many` or `delete_many` over the live nodes' keys works, one that includes a key
/// of the dead node fails as a whole. Restarted on its port, the node serves its keys
/// again through the same cache object within a few seconds (empty: memcached keeps
/// nothing across a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_fails_only_its_keys_until_it_is_restarted() {
    let (mut nodes, ring) = setup("loss:", |builder| builder).await;
    let cache = &ring.cache;
    // Not the counter's node: this test is about the data keys alone.
    let victim = (ring.home + 1) % NODES;
    let dead_keys = ring.keys_on(victim);
    let live_keys = ring.keys_off(victim);

    let killed_at = Instant::now();
    nodes[victim].kill();
    let kill_took = killed_at.elapsed();
    let (mut dead, mut live) = (Latencies::default(), Latencies::default());
    let mut first_failure = None;
    for key in &dead_keys {
        let (result, elapsed) = timed(cache.get(key)).await;
        failed_in_time(&format!("get {key}"), Lost::Killed, result, elapsed);
        first_failure.get_or_insert_with(|| killed_at.elapsed());
        dead.record(elapsed);
        let (result, elapsed) = timed(cache.set(key, value(key, "during"), None)).await;
        failed_in_time(&format!("set {key}"), Lost::Killed, result, elapsed);
        dead.record(elapsed);
        let (result, elapsed) = timed(cache.delete(key)).await;
        failed_in_time(&format!("delete {key}"), Lost::Killed, result, elapsed);
        dead.record(elapsed);
        let (result, elapsed) = timed(cache.exists(key)).await;
        failed_in_time(&format!("exists {key}"), Lost::Killed, result, elapsed);
        dead.record(elapsed);
    }
    for key in &live_keys {
        let (result, elapsed) = timed(cache.get(key)).await;
        assert_eq!(result.unwrap(), Some(value(key, "before")), "get {key}");
        live.record(elapsed);
        let (result, elapsed) = timed(cache.delete(key)).await;
        assert!(result.unwrap(), "delete {key}");
        live.record(elapsed);
        let (result, elapsed) = timed(cache.set(key, value(key, "during"), None)).await;
        result.unwrap();
        live.record(elapsed);
        assert!(cache.exists(key).await.unwrap(), "exists {key}");
    }
    let pass_took = killed_at.elapsed();

    // Batches over the live nodes' keys only.
    let values = cache.get_many(&live_keys).await.unwrap();
    for (key, value_read) in live_keys.iter().zip(values) {
        assert_eq!(value_read, Some(value(key, "during")), "get_many {key}");
    }
    let entries: Vec<(&str, Bytes)> = live_keys
        .iter()
        .map(|key| (*key, value(key, "batch")))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    assert_eq!(cache.delete_many(&live_keys[..10]).await.unwrap(), 10);
    // Batches that include a key of the dead node fail as a whole, in time.
    let mixed: Vec<&str> = live_keys[10..20]
        .iter()
        .chain(&dead_keys[..5])
        .copied()
        .collect();
    let (result, elapsed) = timed(cache.get_many(&mixed)).await;
    failed_in_time(
        "get_many with keys of the dead node",
        Lost::Killed,
        result,
        elapsed,
    );
    let mixed_entries: Vec<(&str, Bytes)> = mixed
        .iter()
        .map(|key| (*key, value(key, "mixed")))
        .collect();
    let (result, elapsed) = timed(cache.set_many(&mixed_entries, None)).await;
    failed_in_time(
        "set_many with keys of the dead node",
        Lost::Killed,
        result,
        elapsed,
    );
    let (result, elapsed) = timed(cache.delete_many(&mixed)).await;
    failed_in_time(
        "delete_many with keys of the dead node",
        Lost::Killed,
        result,
        elapsed,
    );
    // The live nodes' part of those batches was applied all the same: a failed batch
    // may leave some writes done (the set_many, then the delete_many).
    assert_eq!(
        cache.get(live_keys[10]).await.unwrap(),
        None,
        "{}",
        live_keys[10]
    );

    let down_for = killed_at.elapsed();
    let restarted = Instant::now();
    nodes[victim].restart().await.unwrap();
    let restart_took = restarted.elapsed();
    let back_at = Instant::now();
    let probe = dead_keys[0];
    let mut failures_after_restart = 0;
    loop {
        match cache.set(probe, value(probe, "after"), None).await {
            Ok(()) => break,
            Err(error) if error.is_retryable() => {
                failures_after_restart += 1;
                assert!(
                    back_at.elapsed() < RECOVERY_LIMIT,
                    "{probe} still fails {RECOVERY_LIMIT:?} after the restart: {error}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("set {probe} after the restart: {error:?}"),
        }
    }
    let recovered_after = back_at.elapsed();
    let window = killed_at.elapsed();
    // The figure the README states: the same cache uses the node again a few
    // milliseconds after it is back (1 to 3 ms measured), with no failed call between.
    assert_eq!(
        failures_after_restart, 0,
        "{probe} failed {failures_after_restart} times after the node was back"
    );
    assert!(
        recovered_after < BACK_WITHIN,
        "{probe} was served again {recovered_after:?} after the restart, past {BACK_WITHIN:?}"
    );

    assert_eq!(cache.get(probe).await.unwrap(), Some(value(probe, "after")));
    for key in &dead_keys[1..] {
        assert_eq!(
            cache.get(key).await.unwrap(),
            None,
            "{key}: a restarted memcached is empty"
        );
        cache.set(key, value(key, "after"), None).await.unwrap();
        assert_eq!(
            cache.get(key).await.unwrap(),
            Some(value(key, "after")),
            "{key}"
        );
    }
    assert_eq!(cache.get_many(&ring.all_keys()).await.unwrap().len(), KEYS);

    report(&format!(
        "killed node {victim} of {NODES} ({} of {KEYS} keys on it), timeout {TIMEOUT:?}",
        dead_keys.len()
    ));
    report(&format!(
        "  ops on its keys while dead (all failed): {}",
        dead.summary()
    ));
    report(&format!(
        "  ops on the other keys while it was dead (all worked): {}",
        live.summary()
    ));
    report(&format!(
        "  its keys failed from the first op after the kill ({:.2?} after SIGKILL; the kill, \
         waiting for the port to close, took {kill_took:.2?})",
        first_failure.unwrap_or_default()
    ));
    report(&format!(
        "  failure window of its keys: {window:.2?} from the kill to the first success (down \
         {down_for:.2?} by the test's choice, restart took {restart_took:.2?}, first success \
         {recovered_after:.2?} after the restart returned, {failures_after_restart} failed \
         attempts after it); the pass over every key took {pass_took:.2?}"
    ));
}

/// With the node that holds the generation counter killed, every key on the other nodes
/// keeps working, even for a cache that checks the counter on every operation: the check
/// fails at once and the known generation stays in use. `clear` needs that node and
/// fails. Once it is restarted, the counter is gone: it is created again with a new
/// generation, so the namespace starts empty on every node, and works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_counters_node_keeps_the_other_nodes_keys_working() {
    let (mut nodes, ring) =
        setup("home:", |builder| builder.namespace_refresh(Duration::ZERO)).await;
    let (cache, home) = (&ring.cache, ring.home);
    let on_home = ring.keys_on(home);
    let elsewhere = ring.keys_off(home);

    nodes[home].kill();
    let mut latencies = Latencies::default();
    for key in &elsewhere {
        let (result, elapsed) = timed(cache.get(key)).await;
        assert_eq!(result.unwrap(), Some(value(key, "before")), "get {key}");
        latencies.record(elapsed);
        let (result, elapsed) = timed(cache.set(key, value(key, "during"), None)).await;
        result.unwrap();
        latencies.record(elapsed);
        let (result, elapsed) = timed(cache.delete(key)).await;
        assert!(result.unwrap(), "delete {key}");
        latencies.record(elapsed);
        cache.set(key, value(key, "during"), None).await.unwrap();
    }
    assert!(
        latencies.max() < TIMEOUT + MARGIN,
        "an operation took {:?}",
        latencies.max()
    );
    let values = cache.get_many(&elsewhere).await.unwrap();
    assert!(values
        .iter()
        .zip(&elsewhere)
        .all(|(read, key)| read == &Some(value(key, "during"))));
    for key in on_home.iter().take(20) {
        let (result, elapsed) = timed(cache.get(key)).await;
        failed_in_time(&format!("get {key}"), Lost::Killed, result, elapsed);
    }
    let (result, elapsed) = timed(cache.clear()).await;
    failed_in_time("clear", Lost::Killed, result, elapsed);
    report(&format!(
        "killed the counter's node {home}: {} ops on the other nodes' keys, each checking \
         the dead counter, all worked: {}",
        latencies.0.len(),
        latencies.summary()
    ));

    nodes[home].restart().await.unwrap();
    let back_at = Instant::now();
    let probe = elsewhere[0];
    loop {
        match cache.get(probe).await {
            Ok(read) => {
                // The counter came back as a new generation: the namespace is empty.
                assert_eq!(read, None, "{probe} after the counter was recreated");
                break;
            }
            Err(error) if error.is_retryable() && back_at.elapsed() < RECOVERY_LIMIT => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("get {probe} after the restart: {error:?}"),
        }
    }
    let recovered_after = back_at.elapsed();
    let all = ring.all_keys();
    assert!(cache
        .get_many(&all)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
    let entries: Vec<(&str, Bytes)> = all.iter().map(|key| (*key, value(key, "after"))).collect();
    cache.set_many(&entries, None).await.unwrap();
    for key in &all {
        assert_eq!(
            cache.get(key).await.unwrap(),
            Some(value(key, "after")),
            "{key}"
        );
    }
    cache.clear().await.unwrap();
    assert_eq!(cache.get(all[0]).await.unwrap(), None);
    report(&format!(
        "  restarted: served again {recovered_after:.2?} after the restart returned, the \
         namespace empty (the counter was recreated with a new generation)"
    ));
}

/// With the counter's node frozen, an operation on another node's key still works, but
/// one that checks the counter waits for that check up to the timeout: with
/// `namespace_refresh` zero that is every operation, with a refresh interval only the
/// first operation of each interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_counters_node_delays_only_the_operations_that_check_it() {
    const REFRESH: Duration = Duration::from_millis(500);
    const RUN: Duration = Duration::from_millis(1600);
    let (nodes, ring) = setup("frozen:", |builder| {
        builder.namespace_refresh(Duration::ZERO)
    })
    .await;
    let (cache, home) = (&ring.cache, ring.home);
    let elsewhere = ring.keys_off(home);
    // The same prefix, checked once per interval.
    let interval_cache = cache_on(&ring.url, Some(ring.prefix), |builder| {
        builder.namespace_refresh(REFRESH)
    })
    .await;

    nodes[home].pause();
    let mut every_op = Latencies::default();
    for key in elsewhere.iter().take(8) {
        let (result, elapsed) = timed(cache.get(key)).await;
        assert_eq!(result.unwrap(), Some(value(key, "before")), "get {key}");
        every_op.record(elapsed);
    }
    let (result, elapsed) =
        timed(cache.set(elsewhere[0], value(elsewhere[0], "during"), None)).await;
    result.unwrap();
    every_op.record(elapsed);
    assert!(
        every_op.max() < TIMEOUT + MARGIN,
        "an operation took {:?}",
        every_op.max()
    );

    let mut interval = Latencies::default();
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < RUN {
        // Round the keys still holding their first value (the first one was overwritten).
        let key = elsewhere[1 + index % (elsewhere.len() - 1)];
        index += 1;
        let (result, elapsed) = timed(interval_cache.get(key)).await;
        assert_eq!(result.unwrap(), Some(value(key, "before")), "get {key}");
        interval.record(elapsed);
    }
    let slow = interval
        .0
        .iter()
        .filter(|elapsed| **elapsed >= TIMEOUT / 2)
        .count();
    let intervals = (started.elapsed().as_millis() / REFRESH.as_millis()) as usize + 1;
    nodes[home].resume();
    assert!(
        every_op.0.iter().all(|elapsed| *elapsed >= TIMEOUT / 2),
        "with a check on every operation, each waits for the frozen counter: {}",
        every_op.summary()
    );
    // One check per interval; one more slow operation is left to a loaded machine.
    assert!(
        (1..=intervals + 1).contains(&slow),
        "{slow} of {} operations waited for the frozen counter over {intervals} refresh intervals",
        interval.0.len()
    );
    report(&format!(
        "froze the counter's node {home}: with namespace_refresh 0 every op waits for the \
         check: {}; with namespace_refresh {REFRESH:?}, {slow} of {} ops over {:.2?} waited \
         (>= {:?}): {}",
        every_op.summary(),
        interval.0.len(),
        started.elapsed(),
        TIMEOUT / 2,
        interval.summary()
    ));
    // Resumed: the counter is still there, so nothing was lost.
    assert_eq!(
        cache.get(elsewhere[1]).await.unwrap(),
        Some(value(elsewhere[1], "before"))
    );
}

/// With `get_many_fail_open`, a `get_many` whose keys include a dead or frozen node's
/// reads those keys as misses and returns the others, within the timeout; the default
/// cache fails the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_fail_open_reads_a_lost_nodes_keys_as_misses() {
    let (mut nodes, ring) = setup("open:", |builder| builder).await;
    let (cache, keys, holder) = (&ring.cache, &ring.keys, &ring.holder);
    let open = cache_on(&ring.url, Some(ring.prefix), |builder| {
        builder.get_many_fail_open(true)
    })
    .await;
    let victim = (ring.home + 1) % NODES;
    let all = ring.all_keys();
    let check = |values: Vec<Option<Bytes>>, what: &str| {
        for (index, read) in values.into_iter().enumerate() {
            let expected = (holder[index] != victim).then(|| value(&keys[index], "before"));
            assert_eq!(read, expected, "{what}: {}", keys[index]);
        }
    };

    nodes[victim].kill();
    let (result, elapsed) = timed(cache.get_many(&all)).await;
    failed_in_time("get_many without fail-open", Lost::Killed, result, elapsed);
    let (result, killed) = timed(open.get_many(&all)).await;
    check(result.unwrap(), "fail-open get_many, node killed");
    assert!(
        killed < TIMEOUT + MARGIN,
        "fail-open get_many took {killed:?}"
    );

    nodes[victim].restart().await.unwrap();
    let on_victim: Vec<(&str, Bytes)> = ring
        .keys_on(victim)
        .into_iter()
        .map(|key| (key, value(key, "before")))
        .collect();
    cache.set_many(&on_victim, None).await.unwrap();
    assert_get_many_finds_all(&open, &all, "the node restarted and refilled").await;

    nodes[victim].pause();
    let (result, elapsed) = timed(cache.get_many(&all)).await;
    failed_in_time("get_many without fail-open", Lost::Frozen, result, elapsed);
    let (result, frozen) = timed(open.get_many(&all)).await;
    nodes[victim].resume();
    check(result.unwrap(), "fail-open get_many, node frozen");
    assert!(
        frozen < TIMEOUT + MARGIN,
        "fail-open get_many took {frozen:?}"
    );
    report(&format!(
        "get_many_fail_open over {KEYS} keys, node {victim} lost: {killed:.2?} with it \
         killed, {frozen:.2?} with it frozen (timeout {TIMEOUT:?})"
    ));
    // Resumed: every key reads again.
    assert_get_many_finds_all(&open, &all, "the node resumed").await;
}

/// While a node other than the counter's is dead, a prefixed cache's `clear` works (it
/// needs only the counter's node), and a cache without a prefix cannot clear (its
/// `flush_all` needs every node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_with_a_dead_node() {
    let (mut nodes, ring) = setup("clear:", |builder| builder).await;
    let (cache, holder) = (&ring.cache, &ring.holder);
    let unprefixed = cache_on(&ring.url, None, |builder| builder).await;
    let victim = (ring.home + 1) % NODES;
    nodes[victim].kill();
    cache.clear().await.unwrap();
    // A new generation places every key anew: some on the dead node, which fail; the
    // others read as misses.
    let mut misses = 0;
    for (index, key) in ring.keys.iter().enumerate() {
        match cache.get(key).await {
            Ok(None) => misses += 1,
            Ok(Some(found)) => panic!("{key} (on node {}) after clear: {found:?}", holder[index]),
            Err(CacheError::Unreachable { .. }) => {}
            Err(error) => panic!("{key} after clear: expected Unreachable, got {error:?}"),
        }
    }
    assert!(misses > 0, "no key read as a miss after clear");
    let (result, elapsed) = timed(unprefixed.clear()).await;
    failed_in_time("clear without a prefix", Lost::Killed, result, elapsed);
}
