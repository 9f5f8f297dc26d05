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
use tokio::sync::Notify;

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const TIMEOUT: Duration = Duration::from_millis(1500);

/// A fake Redis: `PING` answered `PONG`, a `GET` of the key `huge` with `announcement`
/// (then nothing more, the connection held open; `announced` is notified once it is
/// written), every other `GET` with a miss and every other command with `OK`.
async fn announcing_server(announcement: &'static str, announced: Arc<Notify>) -> String {
    hostile::fake_redis(
        move |name, request| match name {
            "PING" => "+PONG\r\n",
            "GET" if request.contains("\r\nhuge\r\n") => announcement,
            "GET" => "$-1\r\n",
            _ => "+OK\r\n",
        },
        move |answers| {
            if answers.contains(announcement) {
                announced.notify_one();
            }
        },
    )
    .await
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
