//! What a server (or something posing as one) can make the client hold: a RESP reply
//! announces the length of a bulk string (`$<n>`) or the count of an array's elements
//! (`*<n>`) before sending them, and the client must not take that much memory on the
//! announcement's word. A fake server here announces a bulk string of a gigabyte, or an
//! array of a hundred million elements, and sends a few bytes of it; the bytes the
//! process holds are counted by its global allocator while the call waits for the rest.

use std::{sync::Arc, time::Duration};

use cache_api::CacheError;
use cache_redis::RedisCache;
use cache_testserver::hostile;
use cap::Cap;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Notify,
};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const TIMEOUT: Duration = Duration::from_millis(1500);

/// A fake Redis speaking RESP2: `PING` answered `PONG`, a `GET` of the key `huge` with
/// `announcement` (then nothing more, the connection held open; `announced` is notified),
/// every other `GET` with a miss and every other command with `OK`. Requests are told
/// apart by their command name within what one read brings.
async fn announcing_server(announcement: &'static str, announced: Arc<Notify>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let announced = Arc::clone(&announced);
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let read = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => read,
                    };
                    let requests = String::from_utf8_lossy(&buffer[..read]).into_owned();
                    let mut answers = String::new();
                    // Each request is an array of bulk strings: `*<n>\r\n$<len>\r\nNAME\r\n...`.
                    for request in requests.split('*').filter(|part| !part.is_empty()) {
                        let name = request.split("\r\n").nth(2).unwrap_or_default();
                        answers.push_str(match name.to_ascii_uppercase().as_str() {
                            "PING" => "+PONG\r\n",
                            "GET" if request.contains("\r\nhuge\r\n") => announcement,
                            "GET" => "$-1\r\n",
                            _ => "+OK\r\n",
                        });
                    }
                    if stream.write_all(answers.as_bytes()).await.is_err() {
                        return;
                    }
                    if answers.contains(announcement) {
                        announced.notify_one();
                    }
                }
            });
        }
    });
    format!("redis://{address}")
}

/// One test for every shape, one after the other: the count of bytes held is the whole
/// process's, which a test running beside it would add to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_size_is_not_allocated_before_it_comes() {
    for announcement in ["$1000000000\r\n0123456789", "*100000000\r\n$1\r\na\r\n"] {
        let announced = Arc::new(Notify::new());
        let url = announcing_server(announcement, Arc::clone(&announced)).await;
        let cache = RedisCache::builder(&url)
            .timeout(TIMEOUT)
            .build()
            .await
            .unwrap();
        hostile::assert_announcement_costs_little(
            Arc::new(cache),
            ("huge", "small"),
            &announced,
            || ALLOCATOR.allocated(),
            |error| matches!(error, CacheError::Timeout { .. }),
            announcement,
        )
        .await;
    }
}
