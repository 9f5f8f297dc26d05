//! The layers a URL asks for are really there: a deadline shorter than the backend's own
//! timeout ends a call to a frozen server at the deadline, and the parameters never reach
//! the backend (which would refuse them as unknown).

#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use cache_api::CacheError;
use cache_testserver::{LocalServer, REDIS};

#[tokio::test]
async fn a_url_deadline_bounds_each_call_before_the_backend_timeout() {
    let server = LocalServer::start(&REDIS, &[]).await.unwrap_or_else(|err| {
        panic!("cannot start redis-server (scripts/install-servers installs it): {err}")
    });
    let url = format!(
        "{}?timeout=5s&retry=2&deadline=300ms&trace=true&metrics=true&prefix=app:",
        server.url()
    );
    let cache = cache_url::connect(&url).await.unwrap();
    cache.set("k", "v".into(), None).await.unwrap();
    server.pause();
    let started = Instant::now();
    let result = cache.get("k").await;
    let took = started.elapsed();
    server.resume();
    match result {
        Err(CacheError::Timeout {
            operation: "get",
            phase: "deadline",
            after,
            ..
        }) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("expected the deadline to end the get, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "the deadline of 300ms took {took:?}"
    );
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    cache.clear().await.unwrap();
}

/// Layer settings are checked before anything is dialled: port 1 of the loopback has no
/// server, and the answer is the settings' error, not a connection error.
#[tokio::test]
async fn layer_settings_are_refused_before_the_server_is_dialled() {
    for (url, options, named) in [
        (
            "redis://127.0.0.1:1?retry=1000",
            cache_url::Options::default(),
            "retry=1000",
        ),
        (
            "redis://127.0.0.1:1",
            cache_url::Options::default().retry(101),
            "retry=101",
        ),
        (
            "redis://127.0.0.1:1",
            cache_url::Options::default().deadline(Duration::ZERO),
            "deadline",
        ),
    ] {
        match cache_url::connect_with(url, &options).await {
            Err(CacheError::Config { message }) => {
                assert!(message.contains(named), "{url}: {message}");
            }
            Err(other) => panic!("{url}: expected a config error, got {other:?}"),
            Ok(_) => panic!("{url}: connected with settings that should be refused"),
        }
    }
}
