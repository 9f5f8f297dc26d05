//! TLS (`rediss://`): the whole contract over TLS on a `redis-server --tls-port` of this
//! test process, with a CA, server and client certificates made at test time in a
//! temporary directory; the core contract on the pooled model; a certificate from an
//! unknown CA refused with an error naming the verification failure, by default (the
//! system's roots) and with another CA; the insecure mode; mutual TLS. Then the same
//! over `rediss+cluster://`, on a cluster of this process whose nodes speak TLS.

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

/// Asserts that a client trusting another CA than the one of `url`'s server is refused
/// with an `Auth` error that names the verification failure.
async fn assert_another_ca_is_refused(url: &str) {
    let result = RedisCache::builder(url)
        .tls_ca_file(&shared().await.certs.other_ca)
        .timeout(Duration::from_secs(2))
        .build()
        .await;
    let message = auth_message(result);
    assert!(
        message.contains("UnknownIssuer") && message.contains("verification"),
        "{message}"
    );
}

/// A server certificate from a CA the client does not trust is refused, naming why.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_naming_the_failure() {
    assert_another_ca_is_refused(&shared().await.server.url()).await;
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

/// A key that is not the client certificate's is refused when the cache is built, before
/// any connection (no server listens on the port named), naming the key's file; on one
/// node and on a cluster alike.
#[tokio::test]
async fn a_key_of_another_certificate_is_refused_at_build() {
    let certs = &shared().await.certs;
    for scheme in ["rediss", "rediss+cluster"] {
        let url = format!(
            "{scheme}://127.0.0.1:1?tls_ca={}&tls_cert={}&tls_key={}",
            certs.ca.display(),
            certs.client_cert.display(),
            certs.server_key.display()
        );
        match RedisCache::connect(&url).await {
            Err(CacheError::Config { message }) => assert!(
                message.contains("tls_key")
                    && message.contains(&certs.server_key.display().to_string())
                    && message.contains("another key"),
                "{scheme}: {message}"
            ),
            other => panic!("{scheme}: expected a config error, got {other:?}"),
        }
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

/// Asserts that building a cache of `url`, whose scheme does not match the port it names,
/// fails at once with a configuration error that says what the port speaks (`answers`)
/// and names the scheme of the URL for it.
async fn assert_wrong_port_is_named(url: &str, answers: &str, right_scheme: &str) {
    let started = std::time::Instant::now();
    let mut builder = RedisCache::builder(url).connect_timeout(Duration::from_millis(500));
    if url.starts_with("rediss") {
        builder = builder.tls_ca_file(&shared().await.certs.ca);
    }
    let error = builder
        .build()
        .await
        .expect_err("a client cannot talk to a port in another language");
    let CacheError::Config { message } = &error else {
        panic!("expected a configuration error naming the port, got {error:?}");
    };
    assert!(
        message.contains(answers)
            && message.contains(&format!("{right_scheme}:// is the url for this one")),
        "{message}"
    );
    // The connect timeout, then one question in the other language: not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_tls_url_at_the_plain_port_names_it() {
    let plain_port = shared().await.server.server().port();
    let url = format!("rediss://127.0.0.1:{plain_port}");
    assert_wrong_port_is_named(&url, "answers redis in plain text", "redis").await;
}

/// A `rediss://` URL at a port that speaks neither TLS nor Redis (a web server) says so
/// and what to check, not only the TLS library's "corrupt message".
#[tokio::test]
async fn a_tls_url_at_a_port_of_another_protocol_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 512];
                let _ = stream.read(&mut request).await;
                let _ = stream
                    .write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let error = RedisCache::builder(&format!("rediss://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect_err("a web server is no redis");
    let CacheError::Config { message } = &error else {
        panic!("expected a configuration error naming the port, got {error:?}");
    };
    assert!(
        message.contains(&format!(
            "127.0.0.1:{port} did not answer the tls handshake"
        )) && message.contains("tls-port"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plain_url_at_the_tls_port_names_it() {
    let url = shared()
        .await
        .server
        .url()
        .replacen("rediss://", "redis://", 1);
    assert_wrong_port_is_named(&url, "answers over tls", "rediss").await;
}

/// `rediss+cluster://`: a cluster whose nodes take clients (and each other) over TLS,
/// three masters without replicas, started by this process with the certificates above.
mod cluster {
    use std::time::Duration;

    use cache_api::{Bytes, Cache};
    use cache_redis::RedisCache;
    use cache_testserver::{
        redis_cluster::{ClusterSpec, RedisCluster},
        tls::auth_message,
    };
    use tokio::sync::OnceCell;

    async fn tls_cluster() -> &'static RedisCluster {
        static CLUSTER: OnceCell<RedisCluster> = OnceCell::const_new();
        CLUSTER
            .get_or_init(|| async {
                let spec = ClusterSpec::new()
                    .replicas_per_master(0)
                    .tls(&super::shared().await.certs);
                RedisCluster::start_with(&spec).await.unwrap_or_else(|err| {
                    panic!(
                        "cannot start a redis cluster over tls (redis-server and redis-cli 7.0 \
                         or later, built with tls, on PATH): {err}"
                    )
                })
            })
            .await
    }

    async fn factory() -> RedisCache {
        let url = tls_cluster().await.url();
        assert!(url.starts_with("rediss+cluster://"), "{url}");
        RedisCache::builder(&url)
            .tls_ca_file(&super::shared().await.certs.ca)
            .key_prefix(cache_redis::testing::unique_prefix())
            .response_timeout(cache_redis::testing::FIXTURE_RESPONSE_TIMEOUT)
            .build()
            .await
            .unwrap_or_else(|err| panic!("cannot connect to the cluster over tls: {err}"))
    }

    cache_tck::contract_tests!(factory);

    #[tokio::test]
    async fn a_tls_url_at_the_plain_ports_names_them() {
        let plain: Vec<String> = tls_cluster()
            .await
            .nodes()
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let url = format!("rediss+cluster://{}", plain.join(","));
        super::assert_wrong_port_is_named(&url, "answers redis in plain text", "redis+cluster")
            .await;
    }

    #[tokio::test]
    async fn a_plain_url_at_the_tls_ports_names_them() {
        let url = tls_cluster()
            .await
            .url()
            .replacen("rediss+cluster://", "redis+cluster://", 1);
        super::assert_wrong_port_is_named(&url, "answers over tls", "rediss+cluster").await;
    }

    /// Keys of every slot range reach their masters over TLS: the nodes tell a TLS client
    /// their TLS ports, and a write to each master is read back.
    #[tokio::test]
    async fn keys_on_every_master_round_trip() {
        let cache = factory().await;
        let entries: Vec<(String, Bytes)> = (0..64)
            .map(|i| (format!("spread-{i}"), Bytes::from(format!("value-{i}"))))
            .collect();
        for (key, value) in &entries {
            cache.set(key, value.clone(), None).await.unwrap();
        }
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        let found = cache.get_many(&keys).await.unwrap();
        let expected: Vec<Option<Bytes>> = entries.iter().map(|(_, v)| Some(v.clone())).collect();
        assert_eq!(found, expected);
        cache.clear().await.unwrap();
        assert_eq!(cache.get("spread-0").await.unwrap(), None);
    }

    /// A cluster whose nodes ask for a client certificate takes the client's, on the
    /// seeds and on every node found from them, and refuses a client without one with
    /// an `Auth` error.
    #[tokio::test]
    async fn mutual_tls_reaches_every_node() {
        let certs = &super::shared().await.certs;
        let cluster =
            RedisCluster::start_with(&ClusterSpec::new().replicas_per_master(0).mutual_tls(certs))
                .await
                .unwrap_or_else(|err| panic!("cannot start a mutual-tls redis cluster: {err}"));
        // One seed only: the other masters are reached from what it tells.
        let url = cluster.url();
        let seed = url.split(',').next().unwrap_or(&url);
        let cache = RedisCache::builder(seed)
            .tls_ca_file(&certs.ca)
            .tls_client_cert(&certs.client_cert, &certs.client_key)
            .key_prefix("mtls-cluster:")
            .build()
            .await
            .expect("mutual tls with the client certificate");
        let keys: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
        for key in &keys {
            cache
                .set(key, Bytes::from(key.clone()), None)
                .await
                .unwrap();
        }
        for key in &keys {
            assert_eq!(
                cache.get(key).await.unwrap(),
                Some(Bytes::from(key.clone()))
            );
        }
        let refused = RedisCache::builder(seed)
            .tls_ca_file(&certs.ca)
            .timeout(Duration::from_secs(2))
            .build()
            .await;
        let message = auth_message(refused);
        assert!(message.contains("client certificate"), "{message}");
    }

    /// A cluster whose certificate comes from a CA the client does not trust is refused
    /// with an `Auth` error that names the verification failure, as a single server is,
    /// though the cluster client keeps only the text of a seed's error.
    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused_naming_the_failure() {
        super::assert_another_ca_is_refused(&tls_cluster().await.url()).await;
    }
}
