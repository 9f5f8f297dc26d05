//! What the backend's tests share: the servers, raw clients that look at the server from
//! outside the cache, and unique names.

#![allow(dead_code, unreachable_pub)]

use std::{collections::HashMap, time::Duration};

use cache_memcached::testing::{shared_server, unique_prefix, LocalServer, MEMCACHED};
use cache_testserver::{memcached_exchange, memcached_items};
use memcache::exp::{Get, Meta, MetaClient};
use percent_encoding::percent_decode;

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
    let url = cache_url_core::CacheUrl::parse(url).expect("a memcache:// url");
    url.hosts()[0].address(11211)
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

/// `count` memcached processes of the test's own, and the URL of the ring they form.
///
/// # Panics
///
/// When memcached cannot be started.
pub async fn local_ring(count: usize) -> (Vec<LocalServer>, String) {
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        servers.push(local_server(&[]).await);
    }
    let url = ring_url(&servers);
    (servers, url)
}

/// `memcache://host:port,host:port,...` of these servers, in their order.
pub fn ring_url(servers: &[LocalServer]) -> String {
    format!("memcache://{}", addresses(servers).join(","))
}

/// `host:port` of each server, in their order.
pub fn addresses(servers: &[LocalServer]) -> Vec<String> {
    servers
        .iter()
        .map(|server| address(&server.url()))
        .collect()
}

/// memcached's `stats` of one server (`host:port`): the numeric counters by name.
pub fn server_stats(address: &str) -> HashMap<String, u64> {
    memcached_exchange(address, "stats", &["END"])
        .iter()
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let mut words = line.strip_prefix("STAT ")?.split(' ');
            let name = words.next()?;
            let value = words.next()?.parse().ok()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// One counter of `stats`.
///
/// # Panics
///
/// When the server does not report it.
pub fn stat(stats: &HashMap<String, u64>, name: &str) -> u64 {
    *stats
        .get(name)
        .unwrap_or_else(|| panic!("memcached reports no {name} in stats"))
}

/// Every key a server (`host:port`) holds, from `lru_crawler metadump hash` (the keys
/// percent-decoded). memcached runs one crawler at a time: a busy one is asked again, for
/// up to 10 s.
pub fn metadump(address: &str) -> Vec<Vec<u8>> {
    memcached_items(address)
        .iter()
        .filter_map(|line| {
            let encoded = line.strip_prefix(b"key=")?;
            let end = encoded
                .iter()
                .position(|&byte| byte == b' ')
                .unwrap_or(encoded.len());
            Some(percent_decode(&encoded[..end]).collect())
        })
        .collect()
}

/// For each raw key, the index of the one server of `addresses` that holds it, read with
/// one multi-get per server.
///
/// # Panics
///
/// When a key is on no server or on several.
pub fn holders(addresses: &[String], raw_keys: &[Vec<u8>]) -> Vec<usize> {
    let mut holder: Vec<Option<usize>> = vec![None; raw_keys.len()];
    for (index, address) in addresses.iter().enumerate() {
        let client = MetaClient::connect(address.as_str())
            .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
        let results = client
            .run_many(raw_keys.iter().map(Get::new))
            .unwrap_or_else(|error| panic!("multi-get on {address}: {error}"));
        for (position, result) in results.into_iter().enumerate() {
            let result = result.unwrap_or_else(|error| panic!("multi-get on {address}: {error}"));
            if result.hit() {
                if let Some(other) = holder[position].replace(index) {
                    panic!(
                        "{:?} is on servers {other} and {index}",
                        String::from_utf8_lossy(&raw_keys[position])
                    );
                }
            }
        }
    }
    holder
        .into_iter()
        .zip(raw_keys)
        .map(|(holder, key)| {
            holder.unwrap_or_else(|| panic!("{:?} is on no server", String::from_utf8_lossy(key)))
        })
        .collect()
}

/// Which of `addresses` holds the generation counter of `prefix`, and its value.
///
/// # Panics
///
/// When no server or several hold it.
pub fn generation_home(addresses: &[String], prefix: &str) -> (usize, u64) {
    let counter = format!("{prefix}{{gen}}");
    let found: Vec<(usize, Vec<u8>)> = addresses
        .iter()
        .enumerate()
        .filter_map(|(index, address)| {
            raw_get(&format!("memcache://{address}"), counter.as_bytes())
                .map(|value| (index, value))
        })
        .collect();
    match found.as_slice() {
        [(index, value)] => {
            let generation = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or_else(|| panic!("{counter} holds {value:?}, not a number"));
            (*index, generation)
        }
        other => panic!(
            "{counter} is on servers {:?}, expected exactly one",
            other.iter().map(|(index, _)| index).collect::<Vec<_>>()
        ),
    }
}
