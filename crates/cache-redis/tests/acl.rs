//! Least privilege: an ACL user with only the commands the library sends, on the keys
//! of one prefix (`~app:*`), runs the whole contract on a cache under that prefix. A
//! right taken away shows as `PermissionDenied` naming the refused command, and a key
//! outside the pattern as `PermissionDenied` too. The rights are the ones the README
//! lists, in [`MINIMAL_RIGHTS`].

mod common;

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{
    testing::{LocalServer, REDIS},
    RedisCache,
};
use tokio::sync::OnceCell;

/// The commands a prefixed cache sends (README, "Least privilege"): the operations, the
/// `SCAN` + `UNLINK` of `clear` under a prefix, and the `PING` of connecting and of
/// recycling pooled connections. `AUTH` and `HELLO` need no right.
const MINIMAL_RIGHTS: &[&str] = &[
    "+get", "+set", "+mget", "+mset", "+unlink", "+exists", "+scan", "+ping",
];
const USER: &str = "cache-app";
const PASSWORD: &str = "app-s3cret";

struct Shared {
    server: LocalServer,
}

async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let server = LocalServer::start(&REDIS, &[]).await.unwrap_or_else(|err| {
                panic!("cannot start a redis-server (apt-get install redis-server): {err}")
            });
            set_user(server.port(), USER, MINIMAL_RIGHTS).await;
            Shared { server }
        })
        .await
}

/// Creates (or resets) `user` with `rights` on the keys `app:*`, as the default user.
async fn set_user(port: u16, user: &str, rights: &[&str]) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    common::set_acl_user(&mut admin, user, PASSWORD, "~app:*", rights).await;
}

fn url(port: u16, user: &str, prefix: &str) -> String {
    format!("redis://{user}:{PASSWORD}@127.0.0.1:{port}?prefix={prefix}")
}

async fn factory() -> RedisCache {
    let port = shared().await.server.port();
    let prefix = format!("app:{}", cache_redis::testing::unique_prefix());
    RedisCache::builder(&url(port, USER, &prefix))
        .response_timeout(cache_redis::testing::FIXTURE_RESPONSE_TIMEOUT)
        .build()
        .await
        .unwrap_or_else(|err| panic!("the least-privileged user cannot connect: {err}"))
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

mod pooled {
    async fn factory() -> cache_redis::RedisCache {
        let port = super::shared().await.server.port();
        let prefix = format!("app:{}", cache_redis::testing::unique_prefix());
        cache_redis::RedisCache::builder(&super::url(port, super::USER, &prefix))
            .connection_model(cache_redis::ConnectionModel::Pooled { max_size: 4 })
            .build()
            .await
            .unwrap_or_else(|err| panic!("the least-privileged user cannot connect: {err}"))
    }

    cache_tck::contract_tests!(factory);
}

/// The message of a `PermissionDenied`, or a panic saying what came instead.
fn denied<T: std::fmt::Debug>(result: Result<T, CacheError>) -> String {
    match result {
        Err(err @ CacheError::PermissionDenied { .. }) => err.to_string(),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

/// Without `+scan`, `clear` is refused with `PermissionDenied` naming `scan`; the other
/// operations still work.
#[tokio::test]
async fn a_missing_right_is_permission_denied_naming_the_command() {
    let port = shared().await.server.port();
    let without_scan: Vec<&str> = MINIMAL_RIGHTS
        .iter()
        .copied()
        .filter(|right| *right != "+scan")
        .collect();
    set_user(port, "cache-no-scan", &without_scan).await;
    let cache = RedisCache::connect(&url(port, "cache-no-scan", "app:no-scan:"))
        .await
        .unwrap();
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    let message = denied(cache.clear().await);
    assert!(message.contains("scan"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(cache.delete("k").await.unwrap());
}

/// A prefix outside the user's key pattern is refused, not silently empty.
#[tokio::test]
async fn keys_outside_the_pattern_are_permission_denied() {
    let port = shared().await.server.port();
    let cache = RedisCache::connect(&url(port, USER, "other:"))
        .await
        .unwrap();
    let message = denied(cache.set("k", Bytes::from("v"), None).await);
    assert!(message.contains("key"), "{message}");
}

/// A database the user may not `SELECT` is refused at connecting with
/// `PermissionDenied` naming `select`, though the redis crate wraps Redis's refusal.
#[tokio::test]
async fn a_database_the_user_may_not_select_is_permission_denied() {
    let port = shared().await.server.port();
    set_user(port, "cache-no-select", MINIMAL_RIGHTS).await;
    let url = format!("redis://cache-no-select:{PASSWORD}@127.0.0.1:{port}/3?prefix=app:db:");
    let message = denied(RedisCache::connect(&url).await);
    assert!(message.contains("select"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}
