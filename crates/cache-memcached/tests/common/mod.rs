//! What the backend's tests share: the servers, raw clients that look at the server from
//! outside the cache, and unique names.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use cache_memcached::testing::{shared_server, unique_prefix, LocalServer, MEMCACHED};
use memcache::exp::{Get, Meta, MetaClient};

/// The URL of the process's shared test server (found or started on first use).
pub async fn shared_url() -> String {
    shared_server(&MEMCACHED).await.url().to_owned()
}

/// A memcached process of the test's own, for tests that stop, kill or flush it.
///
/// # Panics
///
/// When memcached cannot be started (the message says why and how to install it).
pub async fn local_server(extra_args: &[&str]) -> LocalServer {
    LocalServer::start(&MEMCACHED, extra_args)
        .await
        .unwrap_or_else(|error| panic!("these tests need a memcached binary of their own: {error}"))
}

/// A native key (no spaces, short) that no other test uses.
pub fn unique_key(name: &str) -> String {
    format!("{}{name}", unique_prefix())
}

/// `host:port` of a single-server `memcache://` URL.
pub fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// The classic client of the `memcache` crate over the text protocol: what another
/// application reading the same server would use.
pub fn plain_client(url: &str) -> memcache::Client {
    memcache::Client::builder()
        .add_server(format!("memcache://{}?protocol=ascii", address(url)))
        .and_then(|builder| {
            builder
                .with_connection_timeout(Duration::from_secs(2))
                .with_read_timeout(Duration::from_secs(2))
                .with_write_timeout(Duration::from_secs(2))
                .build()
        })
        .unwrap_or_else(|error| panic!("cannot connect a plain client to {url}: {error}"))
}

/// A blocking meta protocol client on one server, to read item metadata the cache hides.
pub fn meta_client(url: &str) -> MetaClient {
    MetaClient::connect(address(url))
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"))
}

/// The remaining TTL memcached reports for a raw key: `None` on a miss, `Some(-1)` for
/// "never expires".
pub fn remaining_ttl(url: &str, raw_key: &[u8]) -> Option<i64> {
    let result = meta_client(url)
        .run(Get::new(raw_key).meta(Meta::NONE.ttl()))
        .unwrap_or_else(|error| panic!("mg of a raw key failed: {error}"));
    result
        .hit()
        .then(|| result.item.ttl.expect("memcached sends the ttl when asked"))
}

/// The raw value of a key on one server, `None` on a miss.
pub fn raw_get(url: &str, raw_key: &[u8]) -> Option<Vec<u8>> {
    let result = meta_client(url)
        .run(Get::new(raw_key))
        .unwrap_or_else(|error| panic!("mg of a raw key failed: {error}"));
    result.hit().then(|| result.value.unwrap_or_default())
}

/// Deletes raw keys from a server when dropped, so that a test that fails half-way on a
/// server the fixture did not start leaves nothing behind.
pub struct Cleanup {
    url: String,
    keys: Vec<Vec<u8>>,
}

impl Cleanup {
    pub fn new<K: AsRef<[u8]>>(url: &str, keys: impl IntoIterator<Item = K>) -> Self {
        Self {
            url: url.to_owned(),
            keys: keys.into_iter().map(|key| key.as_ref().to_vec()).collect(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(client) = MetaClient::connect(address(&self.url)) {
            let _ = client.run_many(self.keys.iter().map(memcache::exp::Delete::new));
        }
    }
}

/// Pauses `server` and waits until every thread of it is stopped: SIGSTOP is delivered
/// asynchronously, and a request sent in between would still be answered.
///
/// # Panics
///
/// When the server does not stop within 5 s.
pub fn pause_and_wait(server: &LocalServer) {
    let pid = server.pid().expect("a running server");
    server.pause();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !all_threads_stopped(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "memcached (pid {pid}) did not stop after SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether every thread of `pid` is in state `T` (stopped), from `/proc`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name, which may hold spaces.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}
