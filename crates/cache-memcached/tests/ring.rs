//! The contract on a ring of memcached servers (`cache_memcached::testing::ring`: three
//! processes, or `MEMCACHED_RING_URL`), and what a ring adds: keys spread fairly over the
//! nodes, a `get_many` costs one pipelined exchange per node, and the batch writes reach
//! every node. This is a test binary of its own, so the contract's test names do not
//! clash with those of `tests/contract.rs`.

mod common;

use std::{
    collections::{HashMap, HashSet},
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use cache_api::{Bytes, Cache};
use cache_memcached::{
    testing::{fresh_ring_cache, fresh_ring_cache_with, ring, MemcachedTestCache},
    MemcachedCache,
};
use common::{addresses, local_ring, metadump, server_stats, stat};

async fn factory() -> MemcachedTestCache {
    fresh_ring_cache().await
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

/// With `get_many_fail_open`, `get_many` takes a path of its own (one batch per node,
/// each under its own timeout): the contract's checks that read with `get_many` pass on it
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_fail_open_keeps_the_contract() {
    for name in [
        "test_get_many_keeps_order_and_reports_misses",
        "test_get_many_answers_duplicate_keys_at_each_position",
        "test_bulk_operations_accept_empty_lists",
        "test_empty_key_is_invalid_on_every_operation",
    ] {
        let check = cache_tck::check_named(name)
            .unwrap_or_else(|| panic!("cache-tck has no check named {name}"));
        let cache = fresh_ring_cache_with(|builder| builder.get_many_fail_open(true)).await;
        if let Err(failure) = cache_tck::run_check(check, &cache).await.result {
            panic!("{name} with get_many_fail_open failed:\n  {failure}");
        }
    }
}

/// How many keys the spread and batch tests write.
const SPREAD_KEYS: usize = 3000;

/// Writes `SPREAD_KEYS` keys through `cache`, each with its own value, in one
/// `set_many`, and returns them.
async fn write_spread_keys(cache: &impl Cache) -> Vec<String> {
    let keys: Vec<String> = (0..SPREAD_KEYS).map(|i| format!("spread:{i}")).collect();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|key| (key.as_str(), value_of(key)))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    keys
}

fn value_of(key: &str) -> Bytes {
    Bytes::from(format!("value of {key}"))
}

/// Writes to stderr directly: the harness does not capture it, so a passing run shows
/// the measures too.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "ring: {line}");
}

/// For each node of the fixture's ring, the keys of `cache` it holds (the cache's
/// `<prefix>{<generation>}` taken off), read from the nodes with `lru_crawler metadump`.
///
/// # Panics
///
/// When a key is on two nodes.
fn keys_per_node(cache: &MemcachedTestCache, servers: &[String]) -> Vec<HashSet<String>> {
    let prefix = cache
        .key_prefix()
        .expect("the fixture sets a prefix")
        .as_bytes();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_node = vec![HashSet::new(); servers.len()];
    for (node, server) in servers.iter().enumerate() {
        for raw in metadump(server) {
            let Some(rest) = raw.strip_prefix(prefix) else {
                continue;
            };
            if rest == b"{gen}" {
                continue;
            }
            // A data key is `{<generation>}<key>` after the prefix.
            let close = rest
                .iter()
                .position(|&byte| byte == b'}')
                .unwrap_or_else(|| {
                    panic!("{:?}: no generation tag", String::from_utf8_lossy(&raw))
                });
            let key = String::from_utf8_lossy(&rest[close + 1..]).into_owned();
            if let Some(other) = seen.insert(key.clone(), node) {
                panic!("{key} is on nodes {other} and {node}");
            }
            per_node[node].insert(key);
        }
    }
    per_node
}

/// 3000 keys land on every node of the ring, each on exactly one, and each node holds a
/// fair share: between 60 % and 140 % of an even share (20 % to 47 % on three nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_fairly_over_every_node() {
    let ring = ring().await;
    let cache = fresh_ring_cache().await;
    let keys = write_spread_keys(&cache).await;

    let per_node = keys_per_node(&cache, ring.servers());
    let found: usize = per_node.iter().map(HashSet::len).sum();
    assert_eq!(found, SPREAD_KEYS, "keys found on the nodes, by metadump");
    for key in &keys {
        assert!(
            per_node.iter().any(|node| node.contains(key)),
            "{key} is on no node"
        );
    }
    let nodes = per_node.len();
    let counts: Vec<usize> = per_node.iter().map(HashSet::len).collect();
    report(&format!(
        "{SPREAD_KEYS} keys over {nodes} nodes: {counts:?} ({})",
        counts
            .iter()
            .map(|count| format!("{:.1} %", 100.0 * *count as f64 / SPREAD_KEYS as f64))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (low, high) = (
        SPREAD_KEYS * 6 / (10 * nodes),
        SPREAD_KEYS * 14 / (10 * nodes),
    );
    for (node, count) in counts.iter().enumerate() {
        assert!(
            (low..=high).contains(count),
            "node {node} ({}) holds {count} of {SPREAD_KEYS} keys, outside {low}..={high}: {counts:?}",
            ring.servers()[node]
        );
    }
}

/// `set_many` stores every entry on the node its key belongs to (each readable with a
/// single-key `get`, which routes on its own), `delete_many` removes exactly the keys
/// named and counts them across the nodes, and `get_many` agrees with both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_reach_every_node() {
    let ring = ring().await;
    let cache = fresh_ring_cache().await;
    let keys: Vec<String> = (0..300).map(|i| format!("batch:{i}")).collect();
    let mut entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|key| (key.as_str(), Bytes::from("first")))
        .collect();
    // The same key named twice in a batch: the last value wins, on whichever node.
    entries.extend(keys.iter().map(|key| (key.as_str(), value_of(key))));
    cache.set_many(&entries, None).await.unwrap();

    let per_node = keys_per_node(&cache, ring.servers());
    for (node, held) in per_node.iter().enumerate() {
        assert!(!held.is_empty(), "set_many left node {node} empty");
    }
    for key in &keys {
        assert_eq!(cache.get(key).await.unwrap(), Some(value_of(key)), "{key}");
    }

    let (gone, kept) = keys.split_at(150);
    let mut doomed: Vec<&str> = gone.iter().map(String::as_str).collect();
    doomed.extend(["batch:missing:1", "batch:missing:2"]);
    assert_eq!(cache.delete_many(&doomed).await.unwrap(), gone.len());
    let per_node = keys_per_node(&cache, ring.servers());
    let left: HashSet<&String> = per_node.iter().flatten().collect();
    assert_eq!(left, kept.iter().collect(), "keys left on the nodes");

    let all: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = cache.get_many(&all).await.unwrap();
    for (key, value) in all.iter().zip(values) {
        let expected = kept.iter().any(|kept| kept == key).then(|| value_of(key));
        assert_eq!(value, expected, "{key}");
    }
}

/// A `get_many` over keys on every node is one pipelined exchange per node, the nodes in
/// parallel: every node receives all of its keys' requests, on one connection, before
/// any node may answer, and reads each key once.
///
/// The ring is the test's own, each node behind a proxy that forwards requests at once
/// but holds every answer back until all the batch's requests (over every node) have
/// arrived. A client that waited for an answer before sending the next request would
/// never get there, and its `get_many` would time out. memcached's counters back it up:
/// `cmd_get` and `get_hits` grow on each node by exactly the keys it holds, and
/// `conn_yields` (requests found queued behind others on one connection: memcached
/// yields every 20, so only pipelined requests cause it) grows too, where as many single
/// `get`s leave it untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_is_one_pipelined_exchange_per_node() {
    let (nodes, _) = local_ring(3).await;
    let direct = addresses(&nodes);
    let gate = Arc::new(Gate::default());
    let proxies: Vec<GatedProxy> = direct
        .iter()
        .enumerate()
        .map(|(node, address)| GatedProxy::start(node, address, Arc::clone(&gate)))
        .collect();
    // Routing hashes the server names, so the keys are placed by the proxies' addresses.
    let url = format!(
        "memcache://{}",
        proxies
            .iter()
            .map(|proxy| format!("127.0.0.1:{}", proxy.port))
            .collect::<Vec<_>>()
            .join(",")
    );
    let cache = MemcachedCache::builder(&url)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let keys = write_spread_keys(&cache).await;
    let held: Vec<usize> = direct
        .iter()
        .map(|address| {
            metadump(address)
                .iter()
                .filter(|key| key.starts_with(b"spread:"))
                .count()
        })
        .collect();
    assert_eq!(
        held.iter().sum::<usize>(),
        SPREAD_KEYS,
        "keys on the nodes: {held:?}"
    );

    // Single gets, one after the other: no request ever waits behind another.
    let before_singles: Vec<_> = direct.iter().map(|address| server_stats(address)).collect();
    for key in keys.iter().take(300) {
        assert_eq!(cache.get(key).await.unwrap(), Some(value_of(key)));
    }
    let before = direct
        .iter()
        .map(|address| server_stats(address))
        .collect::<Vec<_>>();
    for (node, (earlier, later)) in before_singles.iter().zip(&before).enumerate() {
        assert_eq!(
            stat(later, "conn_yields"),
            stat(earlier, "conn_yields"),
            "node {node}: 300 single gets made memcached yield"
        );
    }

    gate.arm(SPREAD_KEYS, direct.len());
    let wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = cache.get_many(&wanted).await;
    let armed = gate.disarm();
    let values = values.unwrap_or_else(|error| {
        panic!(
            "get_many did not send every request before reading answers ({} of {SPREAD_KEYS} \
             requests arrived while answers were held): {error}",
            armed.gets_seen
        )
    });
    for (key, value) in wanted.iter().zip(values) {
        assert_eq!(value, Some(value_of(key)), "{key}");
    }
    let after: Vec<_> = direct.iter().map(|address| server_stats(address)).collect();

    let mut yields = Vec::new();
    for node in 0..direct.len() {
        let connections = armed.connections.iter().filter(|(n, _)| *n == node).count();
        assert_eq!(
            connections, 1,
            "node {node}: requests came on {connections} connections"
        );
        assert_eq!(
            armed.gets_per_node[node], held[node],
            "node {node}: requests"
        );
        let grew = |name| stat(&after[node], name) - stat(&before[node], name);
        assert_eq!(grew("cmd_get"), held[node] as u64, "node {node}: cmd_get");
        assert_eq!(grew("get_hits"), held[node] as u64, "node {node}: get_hits");
        // The one new connection is the one that asked for the second `stats`: the
        // batch went over a pooled connection.
        assert_eq!(
            grew("total_connections"),
            1,
            "node {node}: connections opened"
        );
        assert!(
            grew("conn_yields") > 0,
            "node {node}: {} requests on one connection never queued up",
            held[node]
        );
        yields.push(grew("conn_yields"));
    }
    report(&format!(
        "get_many of {SPREAD_KEYS} keys: requests per node {:?}, each on 1 connection, all \
         sent before any answer; cmd_get per node {held:?}; conn_yields per node {yields:?} \
         (0 for 300 single gets)",
        armed.gets_per_node
    ));
    drop(proxies);
}

/// What the proxies saw while the gate was armed.
#[derive(Debug, Default, Clone)]
struct Armed {
    /// How many `mg` requests must arrive, over every proxy, before answers flow.
    waiting_for: Option<usize>,
    gets_seen: usize,
    gets_per_node: Vec<usize>,
    /// (node, connection) pairs that carried `mg` requests.
    connections: HashSet<(usize, u64)>,
}

/// Shared by the proxies of one ring: shut, it holds every answer back until the
/// expected number of requests has arrived.
#[derive(Default)]
struct Gate {
    state: Mutex<Armed>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arm(&self, gets: usize, nodes: usize) {
        *self.lock() = Armed {
            waiting_for: Some(gets),
            gets_per_node: vec![0; nodes],
            ..Armed::default()
        };
    }

    fn disarm(&self) -> Armed {
        std::mem::take(&mut *self.lock())
    }

    fn saw_gets(&self, node: usize, connection: u64, gets: usize) {
        let mut state = self.lock();
        if state.waiting_for.is_some() && gets > 0 {
            state.gets_seen += gets;
            state.gets_per_node[node] += gets;
            state.connections.insert((node, connection));
        }
    }

    fn is_open(&self) -> bool {
        let state = self.lock();
        state
            .waiting_for
            .is_none_or(|wanted| state.gets_seen >= wanted)
    }
}

/// Counts the lines of a request stream that start with `mg `, across reads.
#[derive(Default)]
struct GetCounter {
    head: Vec<u8>,
}

impl GetCounter {
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut gets = 0;
        for &byte in bytes {
            if byte == b'\n' {
                gets += usize::from(self.head == b"mg ");
                self.head.clear();
            } else if self.head.len() < 3 {
                self.head.push(byte);
            }
        }
        gets
    }
}

/// A TCP proxy on a free loopback port in front of one node.
struct GatedProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl GatedProxy {
    fn start(node: usize, upstream: &str, gate: Arc<Gate>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            let connections = AtomicU64::new(0);
            for client in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let connection = connections.fetch_add(1, Ordering::Relaxed);
                forward(node, connection, client, server, &gate, &stopping);
            }
        });
        Self { port, stop }
    }
}

impl Drop for GatedProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Requests go through as they come; answers are read at once but written back only
/// while the gate is open.
fn forward(
    node: usize,
    connection: u64,
    client: TcpStream,
    server: TcpStream,
    gate: &Arc<Gate>,
    stop: &Arc<AtomicBool>,
) {
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let requests_gate = Arc::clone(gate);
    std::thread::spawn(move || {
        let mut counter = GetCounter::default();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match client_in.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    requests_gate.saw_gets(node, connection, counter.feed(&buffer[..read]));
                    if server_out.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (answers_gate, stop) = (Arc::clone(gate), Arc::clone(stop));
    let (mut server_in, mut client_out) = (server, client);
    std::thread::spawn(move || {
        // A short read timeout lets the loop notice the gate opening while the node is
        // silent; answers are never dropped, only held.
        let _ = server_in.set_read_timeout(Some(Duration::from_millis(5)));
        let mut held = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let closed = match server_in.read(&mut buffer) {
                Ok(0) => true,
                Ok(read) => {
                    held.extend_from_slice(&buffer[..read]);
                    false
                }
                Err(error) => !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            };
            if !held.is_empty() && answers_gate.is_open() {
                if client_out.write_all(&held).is_err() {
                    break;
                }
                held.clear();
            }
            if closed || stop.load(Ordering::Acquire) {
                break;
            }
        }
        let _ = client_out.shutdown(Shutdown::Both);
    });
}
