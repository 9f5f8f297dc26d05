//! Unix sockets (`redis+unix:///path/to/redis.sock`): the whole contract on a
//! `redis-server --unixsocket` of this test process, whose socket lives in a temporary
//! directory of its own; the database named by `db`.

use cache_api::{Bytes, Cache, CacheError};
use cache_redis::{
    testing::{LocalServer, REDIS},
    RedisCache,
};
use cache_testserver::TestDir;
use tokio::sync::OnceCell;

struct Shared {
    socket: String,
    _server: LocalServer,
    _dir: TestDir,
}

/// A redis-server of this process listening on `redis.sock` in `dir` (with `extra`
/// arguments), once the socket takes connections; and the socket's path.
async fn on_a_socket(dir: &TestDir, extra: &[&str]) -> (LocalServer, String) {
    let socket = dir.join("redis.sock").display().to_string();
    let mut args = vec!["--unixsocket", &socket, "--unixsocketperm", "700"];
    args.extend_from_slice(extra);
    let server = LocalServer::start(&REDIS, &args)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot start redis-server with --unixsocket (apt-get install redis-server): {err}"
            )
        });
    // The server is ready once its TCP port answers; it binds the socket, then listens
    // on it, a moment apart: wait until the socket takes connections.
    let listening = async {
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), listening)
        .await
        .unwrap_or_else(|_| panic!("redis-server never listened on {socket}"));
    (server, socket)
}

async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let dir = TestDir::new("redis-unix").expect("a temporary directory");
            let (server, socket) = on_a_socket(&dir, &[]).await;
            Shared {
                socket,
                _server: server,
                _dir: dir,
            }
        })
        .await
}

/// A cache on the socket, under a prefix of its own; the server is this process's own.
async fn factory() -> RedisCache {
    let url = format!("redis+unix://{}", shared().await.socket);
    RedisCache::builder(&url)
        .key_prefix(cache_redis::testing::unique_prefix())
        .response_timeout(cache_redis::testing::FIXTURE_RESPONSE_TIMEOUT)
        .build()
        .await
        .unwrap_or_else(|err| panic!("cannot connect on the unix socket: {err}"))
}

cache_tck::contract_tests!(factory);
cache_tck::extended_tests!(factory);

/// `?db=N` selects the database, as the path does on `redis://`.
#[tokio::test]
async fn the_database_is_a_parameter() {
    let socket = &shared().await.socket;
    let cache = RedisCache::connect(&format!("redis+unix://{socket}?db=3&prefix=unix-db:"))
        .await
        .expect("the socket with a database");
    assert_eq!(cache.database(), 3);
    cache.set("k", Bytes::from("v"), None).await.unwrap();
    let other = RedisCache::connect(&format!("redis+unix://{socket}?prefix=unix-db:"))
        .await
        .unwrap();
    assert_eq!(
        other.get("k").await.unwrap(),
        None,
        "database 0 is another one"
    );
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    cache.clear().await.unwrap();
}

/// A socket that is not there is `Unreachable`.
#[tokio::test]
async fn a_missing_socket_is_unreachable() {
    let dir = TestDir::new("redis-unix-missing").unwrap();
    let url = format!("redis+unix://{}", dir.join("none.sock").display());
    let result = RedisCache::connect(&url).await;
    assert!(
        matches!(result, Err(CacheError::Unreachable { .. })),
        "{result:?}"
    );
}

/// A server that asks for a password takes it from the URL's user info on a socket as
/// on TCP; without it, or with a wrong one, the build fails as `Auth`, and the password
/// shows in no error or `Debug` output.
#[tokio::test]
async fn a_password_in_the_url_authenticates_on_the_socket() {
    const PASSWORD: &str = "S0cketS3cret";
    let dir = TestDir::new("redis-unix-auth").expect("a temporary directory");
    let (_server, socket) = on_a_socket(&dir, &["--requirepass", PASSWORD]).await;

    let cache = RedisCache::connect(&format!("redis+unix://:{PASSWORD}@{socket}"))
        .await
        .unwrap_or_else(|err| panic!("the password was not taken: {err}"));
    cache
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(!format!("{cache:?}").contains(PASSWORD), "{cache:?}");

    for url in [
        format!("redis+unix://{socket}"),
        format!("redis+unix://:not-{PASSWORD}@{socket}"),
    ] {
        let err = RedisCache::connect(&url).await.unwrap_err();
        assert!(matches!(err, CacheError::Auth { .. }), "{url}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}
