//! What a server (or something posing as one) can make a client hold: both protocols
//! announce the length of what follows (memcached's `VA <n>`, RESP's `$<n>` and `*<n>`)
//! before sending it, and a client must not take that much memory on the announcement's
//! word. The backends' tests run a fake server that announces far more than it sends, and
//! [`assert_announcement_costs_little`] measures what the client holds meanwhile, through
//! the count of a global allocator the test binary installs.

use std::{sync::Arc, time::Duration};

use cache_api::{Cache, CacheError};
use tokio::sync::Notify;

/// What the client may hold beyond what it held before the call, while it waits.
pub const ALLOWED: usize = 64 << 20;

/// How long a cache that failed on the fake server may take to answer again.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);

/// Reads `key` from `cache`, whose fake server answers it with an announcement of far
/// more than it sends and notifies `announced` once those bytes are out; `allocated` is
/// the process's count of bytes held (`cap::Cap::allocated` of the test binary's global
/// allocator). While the call waits for the rest, the process must hold less than
/// [`ALLOWED`] bytes more than before it; the call must then fail as `expected` says,
/// and the same cache must answer `miss` (a key the fake server answers with a miss)
/// again, on a new connection, within 5 s.
///
/// # Panics
///
/// When the client held more, the call did not fail as expected, or the cache did not
/// answer again.
pub async fn assert_announcement_costs_little(
    cache: Arc<dyn Cache>,
    (key, miss): (&'static str, &str),
    announced: &Notify,
    allocated: fn() -> usize,
    expected: fn(&CacheError) -> bool,
    label: &str,
) {
    assert_eq!(cache.get(miss).await.unwrap(), None, "{label}: before");
    let before = allocated();
    let call = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move { cache.get(key).await }
    });
    announced.notified().await;
    // The client has the announcement by now, and waits for the rest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = allocated().saturating_sub(before);
    let read = call.await.expect("the call's task");
    assert!(
        held < ALLOWED,
        "{label}: the client held {held} bytes more while waiting for what was announced \
         (at most {ALLOWED} allowed)"
    );
    match &read {
        Err(error) if expected(error) => {}
        other => panic!("{label}: an answer announced and never sent: {other:?}"),
    }
    let started = tokio::time::Instant::now();
    loop {
        match cache.get(miss).await {
            Ok(found) => {
                assert_eq!(found, None, "{label}: after");
                return;
            }
            Err(error) if error.is_retryable() && started.elapsed() < RECOVER_WITHIN => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("{label}: the cache did not answer again: {error:?}"),
        }
    }
}

/// A fake Redis on 127.0.0.1, speaking just enough RESP for a client's requests: each
/// read is split into the requests it holds (arrays of bulk strings, told apart by the
/// `*` each starts with, so values holding a `*` are not for it), and each is answered
/// with what `answer` gives for its command name (upper case) and its whole text.
/// `written` is called with the answers of each read once they are written. Serves any
/// number of connections, for as long as the test runs; returns `redis://address`.
///
/// # Panics
///
/// When no port of 127.0.0.1 can be bound.
pub async fn fake_redis(
    answer: impl Fn(&str, &str) -> &'static str + Send + Sync + 'static,
    written: impl Fn(&str) + Send + Sync + 'static,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handlers = Arc::new((answer, written));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handlers = Arc::clone(&handlers);
            tokio::spawn(async move {
                let (answer, written) = &*handlers;
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let read = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => read,
                    };
                    let requests = String::from_utf8_lossy(&buffer[..read]).into_owned();
                    let mut answers = String::new();
                    // Each request: `*<n>\r\n$<len>\r\nNAME\r\n...`.
                    for request in requests.split('*').filter(|part| !part.is_empty()) {
                        let name = request.split("\r\n").nth(2).unwrap_or_default();
                        answers.push_str(answer(&name.to_ascii_uppercase(), request));
                    }
                    if stream.write_all(answers.as_bytes()).await.is_err() {
                        return;
                    }
                    written(&answers);
                }
            });
        }
    });
    format!("redis://{address}")
}

/// The address of a server that accepts every connection and never sends a byte (a
/// host whose service hangs, or a port of something else that waits for more input),
/// on 127.0.0.1; it runs as long as the runtime that started it.
///
/// # Panics
///
/// When no port of 127.0.0.1 can be bound.
pub async fn silent_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    address
}

/// How long a build against a [`silent_server`] may take beyond its timeout: room for a
/// loaded machine, less than the half second a question in another protocol would add.
pub const SILENT_MARGIN: Duration = Duration::from_millis(400);

/// Checks that `build`, against a [`silent_server`] with a connect timeout of `timeout`,
/// failed with `Timeout` within `timeout` and [`SILENT_MARGIN`].
///
/// # Panics
///
/// When it failed otherwise, or later.
pub async fn assert_gives_up_in_time<T: std::fmt::Debug>(
    build: impl std::future::Future<Output = Result<T, CacheError>>,
    timeout: Duration,
) {
    let started = std::time::Instant::now();
    let result = build.await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(CacheError::Timeout { .. })),
        "a build against a server that never answers: expected a timeout, got {result:?}"
    );
    assert!(
        elapsed < timeout + SILENT_MARGIN,
        "a build with a connect timeout of {timeout:?} against a server that never \
         answers took {elapsed:?}"
    );
}
