//! TLS (`memcaches://`): the whole contract over TLS on a `memcached -Z` of this test
//! process, with a CA, server and client certificates made at test time in a temporary
//! directory; a certificate from an unknown CA refused with an `Auth` error naming the
//! verification failure, with another CA and with the system's roots; the insecure mode;
//! mutual TLS (`ssl_verify_mode=3`).

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::{testing::unique_prefix, MemcachedCache};
use cache_testserver::tls::{auth_message, TlsMemcached, TlsPair};
use tokio::sync::OnceCell;

/// The certificates and the TLS servers the tests of this process share.
async fn shared() -> &'static TlsPair<TlsMemcached> {
    static SHARED: OnceCell<TlsPair<TlsMemcached>> = OnceCell::const_new();
    SHARED.get_or_init(TlsPair::memcached).await
}

/// `url` with the test CA and `extra` parameters.
fn with_ca(url: &str, ca: &std::path::Path, extra: &str) -> String {
    format!("{url}?tls_ca={}{extra}", ca.display())
}

/// A cache over TLS, trusting the test CA, under a prefix of its own. The server is this
/// process's own and goes with it, so nothing is left on anyone's server.
async fn factory() -> MemcachedCache {
    let shared = shared().await;
    MemcachedCache::builder(&with_ca(&shared.server.url(), &shared.certs.ca, ""))
        .key_prefix(unique_prefix())
        .build()
        .await
        .unwrap_or_else(|err| panic!("cannot connect over tls: {err}"))
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

/// A server certificate from a CA the client does not trust is refused, naming why.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_naming_the_failure() {
    let shared = shared().await;
    let url = with_ca(&shared.server.url(), &shared.certs.other_ca, "&timeout=2s");
    let message = auth_message(MemcachedCache::connect(&url).await);
    assert!(
        message.contains("UnknownIssuer") && message.contains("verification"),
        "{message}"
    );
}

/// Without a CA file the system's roots are used, which do not hold the test CA.
#[tokio::test]
async fn the_system_roots_are_the_default_and_refuse_a_private_ca() {
    let shared = shared().await;
    let url = format!("{}?timeout=2s", shared.server.url());
    let message = auth_message(MemcachedCache::connect(&url).await);
    assert!(message.contains("UnknownIssuer"), "{message}");
}

/// The insecure mode accepts the certificate of an unknown CA (test servers only).
#[tokio::test]
async fn the_insecure_mode_skips_verification() {
    let shared = shared().await;
    let url = format!(
        "{}?tls_insecure_skip_verify=true&prefix={}",
        shared.server.url(),
        unique_prefix()
    );
    let cache = MemcachedCache::connect(&url).await.expect("insecure tls");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
}

/// TLS settings on a URL without TLS are refused, not ignored.
#[tokio::test]
async fn tls_settings_without_tls_are_refused() {
    let shared = shared().await;
    let url = format!(
        "memcache://127.0.0.1:1?tls_ca={}",
        shared.certs.ca.display()
    );
    match MemcachedCache::connect(&url).await {
        Err(CacheError::Config { message }) => {
            assert!(message.contains("memcaches://"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A key that is not the client certificate's is refused when the cache is built, before
/// any connection (no server listens on the port named), naming the key's file.
#[tokio::test]
async fn a_key_of_another_certificate_is_refused_at_build() {
    let certs = &shared().await.certs;
    let extra = format!(
        "&tls_cert={}&tls_key={}",
        certs.client_cert.display(),
        certs.server_key.display()
    );
    let url = with_ca("memcaches://127.0.0.1:1", &certs.ca, &extra);
    match MemcachedCache::connect(&url).await {
        Err(CacheError::Config { message }) => assert!(
            message.contains("tls_key")
                && message.contains(&certs.server_key.display().to_string())
                && message.contains("another key"),
            "{message}"
        ),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A plain client on a TLS port is told the port speaks TLS, and the URL for it, in time.
#[tokio::test]
async fn a_plain_client_on_a_tls_port_is_told_so() {
    let shared = shared().await;
    let port = shared.server.server().port();
    let started = std::time::Instant::now();
    let result =
        MemcachedCache::connect(&format!("memcache://127.0.0.1:{port}?timeout=500ms")).await;
    match result {
        Err(CacheError::Config { message }) => assert!(
            message.contains(&format!("127.0.0.1:{port} answers over tls"))
                && message.contains("memcaches:// is the url for this one"),
            "{message}"
        ),
        other => panic!("expected a config error naming the tls port, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A TLS client on a plain port is told the port does not speak TLS, in time.
#[tokio::test]
async fn a_tls_client_on_a_plain_port_is_told_so() {
    let certs = &shared().await.certs;
    let plain = cache_testserver::LocalServer::start(&cache_testserver::MEMCACHED, &[])
        .await
        .unwrap_or_else(|err| panic!("cannot start a plain memcached: {err}"));
    let url = format!(
        "memcaches://127.0.0.1:{}?tls_ca={}&timeout=2s",
        plain.port(),
        certs.ca.display()
    );
    match MemcachedCache::connect(&url).await {
        Err(err @ CacheError::Unreachable { .. }) => {
            let message = format!(
                "{err}: {}",
                std::error::Error::source(&err)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            assert!(
                message.contains("did not answer the tls handshake (")
                    && message.contains("memcache://"),
                "{message}"
            );
        }
        other => panic!("expected an unreachable error naming the plain port, got {other:?}"),
    }
}

/// A server that requires a client certificate accepts ours (for every path that
/// dials: the build's `stats settings`, the multiplexed operations, `clear`'s crawler
/// and the flush of a cache without prefix) and refuses a client without one, with an
/// `Auth` error.
#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let shared = shared().await;
    let certs = &shared.certs;
    let extra = format!(
        "&tls_cert={}&tls_key={}",
        certs.client_cert.display(),
        certs.client_key.display()
    );
    let url = with_ca(&shared.mutual.url(), &certs.ca, &extra);
    // The builder's methods, the URL's parameters below: both reach the handshake.
    let cache = MemcachedCache::builder(&shared.mutual.url())
        .tls_ca_file(&certs.ca)
        .tls_client_cert(&certs.client_cert, &certs.client_key)
        .key_prefix(unique_prefix())
        .build()
        .await
        .expect("mutual tls with the client certificate");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
    // No prefix: `clear` is `flush_all`, on a connection of its own. The server is this
    // test's own, so flushing it touches nobody else's entries.
    let unprefixed = MemcachedCache::connect(&url).await.expect("mutual tls");
    unprefixed.set("u", Bytes::from("v"), None).await.unwrap();
    unprefixed.clear().await.unwrap();
    assert_eq!(unprefixed.get("u").await.unwrap(), None);

    let refused = with_ca(&shared.mutual.url(), &certs.ca, "&timeout=2s");
    let message = auth_message(MemcachedCache::connect(&refused).await);
    assert!(message.contains("client certificate"), "{message}");
}
