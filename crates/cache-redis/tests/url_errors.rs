//! What `build` says of a URL that cannot work: a password holding reserved characters,
//! or missing its `@host`, never shows in the error, whatever the scheme; a database the
//! server refuses is named as the URL names it, through sentinels too; a group the
//! sentinels do not know is named; and a server asking for credentials is `Auth`,
//! whatever command met its refusal.

mod common;

use std::time::Duration;

use cache_api::CacheError;
use cache_redis::{
    testing::{free_port, LocalServer},
    RedisCache, RedisCacheBuilder,
};
use cache_testserver::{
    sentinel::{SentinelGroup, REDIS_SENTINEL},
    TestDir,
};
use common::{everything_shown, local_server};

/// The longest one `build` may take here: every server is local, or absent.
const BUILD_LIMIT: Duration = Duration::from_secs(10);

/// Builds within [`BUILD_LIMIT`], with short timeouts of the cache's own.
async fn build(builder: RedisCacheBuilder) -> Result<RedisCache, CacheError> {
    tokio::time::timeout(
        BUILD_LIMIT,
        builder.timeout(Duration::from_millis(500)).build(),
    )
    .await
    .unwrap_or_else(|_| panic!("build still running after {BUILD_LIMIT:?}"))
}

/// Passwords holding `?`, `#`, `@` and `/` unencoded, each as its pieces and the
/// characters between them. Every piece but a number is distinctive enough to be looked
/// for in a message.
const PASSWORDS: &[&[&str]] = &[
    &["Qx7hunter", "?", "Zk9secretpart", "&", "Wm3x"],
    &["Qx7abc", "?", "Zk9def", "=", "Wm3ghi"],
    &["6379", "?", "Zk9secretpart", "&", "Wm3x"],
    &["Qx7pa", "#", "Zk9ss"],
    &["Qx7pa", "/", "Zk9ss"],
    &["Qx7pa", "@", "Zk9ss"],
    &["Qx7pa", "/", "Zk9ss", "?", "Wm3tail", "=", "1"],
    &["Qx7p", "@", "Zk9ss", "?", "Wm3tail", "&", "x"],
    &["1", "/", "Zk9ss", "?", "Wm3tail", "&", "x"],
];

/// Fails when `shown` holds four characters in a row of a piece of `pieces` (the
/// reserved characters and numbers left out).
#[track_caller]
fn assert_no_part(pieces: &[&str], what: &str, shown: &str) {
    for piece in pieces {
        if piece.len() < 4 || piece.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        for start in 0..=piece.len() - 4 {
            let part = &piece[start..start + 4];
            assert!(
                !shown.contains(part),
                "{what} shows {part:?}, part of the password: {shown}"
            );
        }
    }
}

/// A password with unencoded reserved characters shows nowhere in the error of `build`
/// (its text, its `Debug`, its sources) nor in the builder's `Debug`, on every Redis
/// scheme; when it cuts the URL short (`?`, `#`), the error is `Config`.
#[tokio::test]
async fn a_password_with_reserved_characters_never_shows_in_a_build_error() {
    let (down, other) = (free_port(), free_port());
    let templates = [
        format!("redis://u:{{pw}}@127.0.0.1:{down}/0"),
        format!("redis://:{{pw}}@127.0.0.1:{down}?prefix=app:"),
        format!("rediss://u:{{pw}}@127.0.0.1:{down}"),
        format!("redis+cluster://u:{{pw}}@127.0.0.1:{down},127.0.0.1:{other}"),
        format!("rediss+cluster://:{{pw}}@127.0.0.1:{down}?prefix=app:"),
        format!("redis+sentinel://u:{{pw}}@127.0.0.1:{down}/mymaster"),
        format!("redis+sentinel://:{{pw}}@127.0.0.1:{down}/mymaster/2?prefix=app:"),
        "redis+unix://u:{pw}@/nonexistent/redis.sock".to_owned(),
        "redis+unix://:{pw}@/nonexistent/redis.sock?db=1".to_owned(),
    ];
    for template in &templates {
        for pieces in PASSWORDS {
            let password = pieces.concat();
            let url = template.replace("{pw}", &password);
            let builder = RedisCache::builder(&url);
            assert_no_part(pieces, "the builder's Debug", &format!("{builder:?}"));
            let err = match build(builder).await {
                Ok(_) => panic!("{url}: built, with nothing listening"),
                Err(err) => err,
            };
            assert_no_part(
                pieces,
                &format!("the error of {url}"),
                &everything_shown(&err),
            );
            if password.contains(['?', '#']) {
                assert!(
                    matches!(err, CacheError::Config { .. }),
                    "{url}: expected Config, got {err:?}"
                );
            }
        }
    }
}

/// `user:password` or `:password` missing its `@host` reads as a host whose port is the
/// password: `build` refuses it with `Config`, and neither its error nor the builder's
/// `Debug` shows the password, on every Redis scheme. So for user info without a `:`,
/// which may be a password too.
#[tokio::test]
async fn a_password_missing_its_host_never_shows() {
    for url in [
        "redis://default:S3cretPw",
        "redis://:S3cretPw",
        "redis://[::1]:S3cretPw",
        "redis://default:S3cr/etPw",
        "redis://default:S3cr?etPw&x",
        "rediss://default:S3cretPw",
        "rediss://:S3cretPw/0?prefix=app:",
        "redis+cluster://default:S3cretPw,127.0.0.1:7000",
        "rediss+cluster://127.0.0.1:7000,:S3cretPw",
        "redis+sentinel://default:S3cretPw/mymaster",
        "redis+unix://default:S3cretPw/run/redis.sock",
        "redis://S3cretPw@127.0.0.1:1",
        "redis+cluster://S3cretPw@127.0.0.1:1,127.0.0.1:2",
    ] {
        let builder = RedisCache::builder(url);
        assert_no_part(
            &["S3cretPw", "S3cr", "etPw"],
            "the builder's Debug",
            &format!("{builder:?}"),
        );
        match build(builder).await {
            Err(err @ CacheError::Config { .. }) => {
                assert_no_part(&["S3cretPw", "S3cr", "etPw"], url, &everything_shown(&err));
            }
            other => panic!("{url}: expected Config, got {other:?}"),
        }
    }
}

/// A database the server refuses is `Config` naming it: past its `databases` setting,
/// and past what Redis can number (2^31 - 1), from the path, from `db=`, from
/// `database(n)` or from `RedisConfig`, in both connection models.
#[tokio::test]
async fn a_database_the_server_refuses_is_config_naming_it() {
    let server = local_server(&[]).await;
    let base = format!("redis://127.0.0.1:{}", server.port());
    #[cfg_attr(not(feature = "serde"), allow(unused_mut))]
    let mut builders = vec![
        (RedisCache::builder(&format!("{base}/4294967295")), u32::MAX),
        (
            RedisCache::builder(&format!("{base}?db=4294967295")),
            u32::MAX,
        ),
        (RedisCache::builder(&base).database(u32::MAX), u32::MAX),
        (
            RedisCache::builder(&format!("{base}/4294967295?mode=pooled")),
            u32::MAX,
        ),
        (RedisCache::builder(&format!("{base}/2147483648")), 1 << 31),
        (
            RedisCache::builder(&format!("{base}?pool_size=2")).database(99),
            99,
        ),
    ];
    #[cfg(feature = "serde")]
    builders.push((
        cache_redis::RedisConfig {
            database: Some(u32::MAX),
            ..cache_redis::RedisConfig::from_url(&base)
        }
        .builder(),
        u32::MAX,
    ));
    for (builder, database) in builders {
        let shown = format!("{builder:?}");
        match build(builder).await {
            Err(CacheError::Config { message }) => assert!(
                message.contains(&format!("database {database} does not exist")),
                "{shown}: {message}"
            ),
            other => panic!("{shown}: expected Config naming database {database}, got {other:?}"),
        }
    }
}

/// A master group the sentinels do not know is `Config` naming it, also when one of
/// the sentinels cannot be reached.
#[tokio::test]
async fn a_group_the_sentinels_do_not_know_is_config_naming_it() {
    let sentinel = LocalServer::start(&REDIS_SENTINEL, &[])
        .await
        .unwrap_or_else(|err| {
            panic!("cannot start a sentinel (apt-get install redis-server): {err}")
        });
    let (port, down) = (sentinel.port(), free_port());
    for url in [
        format!("redis+sentinel://127.0.0.1:{port}/othermaster"),
        format!("redis+sentinel://127.0.0.1:{down},127.0.0.1:{port}/othermaster/2"),
        format!("redis+sentinel://127.0.0.1:{port},127.0.0.1:{down}/othermaster?mode=pooled"),
    ] {
        match build(RedisCache::builder(&url)).await {
            Err(CacheError::Config { message }) => assert!(
                message.contains("the sentinels know no master named `othermaster`"),
                "{url}: {message}"
            ),
            other => panic!("{url}: expected Config naming the group, got {other:?}"),
        }
    }
}

/// Through sentinels, a database the master does not have is named, from the path or
/// from `db=`, as it is on `redis://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named_through_sentinels() {
    let group = tokio::time::timeout(Duration::from_secs(60), SentinelGroup::start())
        .await
        .expect("the sentinel group starts within 60 s")
        .unwrap_or_else(|err| {
            panic!("cannot start a sentinel group (apt-get install redis-server): {err}")
        });
    for url in [
        format!("{}/16", group.url()),
        format!("{}?db=16", group.url()),
    ] {
        match build(RedisCache::builder(&url)).await {
            Err(CacheError::Config { message }) => assert!(
                message.contains("database 16 does not exist"),
                "{url}: {message}"
            ),
            other => panic!("{url}: expected Config naming database 16, got {other:?}"),
        }
    }
    let direct = format!("redis://127.0.0.1:{}/16", group.replica().port());
    match build(RedisCache::builder(&direct)).await {
        Err(CacheError::Config { message }) => {
            assert!(message.contains("database 16"), "{direct}: {message}")
        }
        other => panic!("{direct}: expected Config naming database 16, got {other:?}"),
    }
}

const PASSWORD: &str = "Pw-of-the-url-test-4410";

/// A server with `requirepass`, asked for a database other than 0 without a password:
/// `Auth`, as without the database, on every connection model and over a socket.
#[tokio::test]
async fn a_server_asking_for_credentials_is_auth_whatever_the_database() {
    let dir = TestDir::new("redis-url-errors").expect("a temporary directory");
    let socket = dir.join("redis.sock").display().to_string();
    let server = local_server(&[
        "--requirepass",
        PASSWORD,
        "--unixsocket",
        &socket,
        "--unixsocketperm",
        "700",
    ])
    .await;
    let port = server.port();
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}/3"),
        format!("redis://127.0.0.1:{port}?db=3"),
        format!("redis://127.0.0.1:{port}/3?mode=pooled"),
        format!("redis://127.0.0.1:{port}/3?pool_size=2"),
        format!("redis+unix://{socket}?db=3"),
        format!("redis+unix://{socket}?db=3&mode=pooled"),
    ] {
        match build(RedisCache::builder(&url)).await {
            Err(err @ CacheError::Auth { .. }) => {
                assert!(!everything_shown(&err).contains(PASSWORD), "{url}: {err}");
            }
            other => panic!("{url}: expected Auth, got {other:?}"),
        }
    }
    // With the password, the same database is served.
    let cache = build(RedisCache::builder(&format!(
        "redis://:{PASSWORD}@127.0.0.1:{port}/3"
    )))
    .await
    .expect("the right password");
    assert_eq!(cache.database(), 3);
}
