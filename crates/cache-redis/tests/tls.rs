//! TLS (`rediss://`): the whole contract over TLS on a `redis-server --tls-port` of this
//! test process, with a CA, server and client certificates made at test time in a
//! temporary directory; the core contract on the pooled model; a certificate from an
//! unknown CA refused with an error naming the verification failure, by default (the
//! system's roots) and with another CA; the insecure mode; mutual TLS.

mod common;

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{ConnectionModel, RedisCache, RedisCacheBuilder};
use cache_testserver::tls::{auth_message, TlsPair, TlsRedis};
use tokio::sync::OnceCell;

/// The certificates and the TLS servers the tests of this process share; `mutual` asks
/// clients for a certificate (`--tls-auth-clients yes`).
async fn shared() -> &'static TlsPair<TlsRedis> {
    static SHARED: OnceCell<TlsPair<TlsRedis>> = OnceCell::const_new();
    SHARED.get_or_init(TlsPair::redis).await
}

/// A cache over TLS, trusting the test CA, under a prefix of its own. The server is this
/// process's own and goes with it, so nothing is left on anyone's server.
async fn build(configure: impl FnOnce(RedisCacheBuilder) -> RedisCacheBuilder) -> RedisCache {
    let shared = shared().await;
    let builder = RedisCache::builder(&shared.server.url())
        .tls_ca_file(&shared.certs.ca)
        .key_prefix(cache_redis::testing::unique_prefix())
        .response_timeout(cache_redis::testing::FIXTURE_RESPONSE_TIMEOUT);
    configure(builder)
        .build()
        .await
        .unwrap_or_else(|err| panic!("cannot connect over tls: {err}"))
}

async fn factory() -> RedisCache {
    build(|builder| builder).await
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

mod pooled {
    async fn factory() -> cache_redis::RedisCache {
        super::build(|builder| {
            builder.connection_model(cache_redis::ConnectionModel::Pooled { max_size: 4 })
        })
        .await
    }

    cache_tck::contract_tests!(factory);
}

/// A server certificate from a CA the client does not trust is refused, naming why.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_naming_the_failure() {
    let shared = shared().await;
    let result = RedisCache::builder(&shared.server.url())
        .tls_ca_file(&shared.certs.other_ca)
        .timeout(Duration::from_secs(2))
        .build()
        .await;
    let message = auth_message(result);
    assert!(
        message.contains("UnknownIssuer") && message.contains("verification"),
        "{message}"
    );
}

/// Without a CA file the system's roots are used, which do not hold the test CA.
#[tokio::test]
async fn the_system_roots_are_the_default_and_refuse_a_private_ca() {
    let shared = shared().await;
    let result = RedisCache::builder(&shared.server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .await;
    assert!(auth_message(result).contains("UnknownIssuer"));
}

/// The CA file can come from the URL, percent-encoded or not.
#[tokio::test]
async fn the_ca_file_can_be_named_in_the_url() {
    let shared = shared().await;
    let url = format!(
        "{}?tls_ca={}&prefix=tls-url:",
        shared.server.url(),
        shared.certs.ca.display()
    );
    let cache = RedisCache::connect(&url)
        .await
        .expect("tls through the url");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
}

/// The insecure mode accepts the certificate of an unknown CA (test servers only).
#[tokio::test]
async fn the_insecure_mode_skips_verification() {
    let shared = shared().await;
    let url = format!(
        "{}?tls_insecure_skip_verify=true&prefix=tls-insecure:",
        shared.server.url()
    );
    let cache = RedisCache::connect(&url).await.expect("insecure tls");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
}

/// TLS settings on a URL without TLS are refused, not ignored.
#[tokio::test]
async fn tls_settings_without_tls_are_refused() {
    let shared = shared().await;
    let url = format!("redis://127.0.0.1:1?tls_ca={}", shared.certs.ca.display());
    match RedisCache::connect(&url).await {
        Err(CacheError::Config { message }) => assert!(message.contains("rediss://"), "{message}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A server that asks for a client certificate accepts ours and refuses a client
/// without one, with an `Auth` error.
#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let shared = shared().await;
    let cache = RedisCache::builder(&shared.mutual.url())
        .tls_ca_file(&shared.certs.ca)
        .tls_client_cert(&shared.certs.client_cert, &shared.certs.client_key)
        .key_prefix("mtls:")
        .build()
        .await
        .expect("mutual tls with the client certificate");
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();

    for model in [
        ConnectionModel::Multiplexed { connections: 1 },
        ConnectionModel::Pooled { max_size: 2 },
    ] {
        let refused = RedisCache::builder(&shared.mutual.url())
            .tls_ca_file(&shared.certs.ca)
            .connection_model(model)
            .timeout(Duration::from_secs(2))
            .build()
            .await;
        let message = auth_message(refused);
        assert!(
            message.contains("client certificate"),
            "{model:?}: {message}"
        );
    }
}
