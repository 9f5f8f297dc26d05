//! A server out of connections (`-c`) answers a new one with `ERROR Too many open
//! connections` and closes it: that is `Unreachable` naming the reason (worth a retry
//! once the server has room), at build and on calls alike, never a configuration error
//! nor a refused command; and the same cache is served once the server has room.

mod common;

use std::{
    error::Error as _,
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::MemcachedCache;
use common::local_server;

const REASON: &str = "Too many open connections";

/// Opens connections until the server refuses one; the ones it took, held open.
fn fill(port: u16) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..256 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"version\r\n").unwrap();
        let mut line = String::new();
        // A refused connection may be closed before the line is read.
        let _ = BufReader::new(&stream).read_line(&mut line);
        if line.starts_with("VERSION") {
            held.push(stream);
        } else {
            assert!(line.contains(REASON) || line.is_empty(), "{line:?}");
            return held;
        }
    }
    panic!("the server took 256 connections: is -c honoured?");
}

/// The error and every source under it.
fn chain(err: &CacheError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[track_caller]
fn assert_refused(result: Result<impl std::fmt::Debug, CacheError>, what: &str) {
    match result {
        Err(err @ CacheError::Unreachable { .. }) => {
            assert!(err.is_retryable(), "{what}: {err:?}");
            assert!(chain(&err).contains(REASON), "{what}: {}", chain(&err));
        }
        other => panic!("{what}: expected Unreachable naming {REASON:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_connections_is_unreachable_naming_why_until_it_has_room() {
    let server = local_server(&["-t", "1", "-c", "17"]).await;
    let url = server.url();
    let builder = || {
        MemcachedCache::builder(&url)
            .timeout(Duration::from_secs(2))
            .pool_size(3)
    };

    // At build.
    let held = fill(server.port());
    assert!(held.len() >= 3, "room for {} connections only", held.len());
    assert_refused(builder().build().await, "build");
    drop(held);
    let started = Instant::now();
    let cache = loop {
        match builder().build().await {
            Ok(cache) => break cache,
            Err(err) if started.elapsed() > Duration::from_secs(5) => {
                panic!("not served once the connections were closed: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    cache.set("k", Bytes::from("v"), None).await.unwrap();

    // On calls: the cache holds two of its three connections (the build's no-op and
    // the set dialled them, in turn); the server has room for no more. Each call on a connection not dialled yet is refused, none otherwise.
    let held = fill(server.port());
    let mut refused = 0;
    for _ in 0..8 {
        match cache.get("k").await {
            Ok(value) => assert_eq!(value, Some(Bytes::from("v"))),
            result => {
                assert_refused(result, "get");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the cache had all its connections already");
    drop(held);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let answers = futures::future::join_all((0..8).map(|_| cache.get("k"))).await;
        if answers.iter().all(Result::is_ok) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not served again once the server had room");
}
