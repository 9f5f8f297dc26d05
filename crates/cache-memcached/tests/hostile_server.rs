//! What a server (or something posing as one) can make the client hold: a `VA` header
//! announces the length of the value that follows, up to 1 GiB, and the client must not
//! take that much memory on the header's word. A fake server here announces a value of
//! almost a gigabyte and sends ten bytes of it; the bytes the process holds are counted
//! by its global allocator while the call waits for the rest.

use std::{sync::Arc, time::Duration};

use cache_api::CacheError;
use cache_memcached::MemcachedCache;
use cache_testserver::hostile;
use cap::Cap;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::Notify,
};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// The length the fake server announces for the key `huge`: just under memcached's
/// limit of 1 GiB, which the header parser accepts.
const ANNOUNCED: usize = 1_000_000_000;
const TIMEOUT: Duration = Duration::from_millis(1500);

/// How the fake server goes on after announcing the huge value.
#[derive(Clone, Copy)]
enum Then {
    /// Keeps the connection open and sends nothing more.
    Stall,
    /// Closes the connection a little later (while the client is still waiting).
    Close,
}

/// A fake memcached: `stats settings` and `mn` answered properly, `mg` of the key `huge`
/// with a `VA` header of [`ANNOUNCED`] bytes, ten of them, then what `then` says
/// (`announced` is notified once the bytes are out); every other `mg` with a miss.
async fn announcing_server(then: Then, announced: Arc<Notify>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let announced = Arc::clone(&announced);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let opaque = line
                        .split(' ')
                        .find(|token| token.starts_with('O'))
                        .unwrap_or("O0");
                    let answer = if line == "stats settings" {
                        "STAT item_size_max 1048576\r\nEND\r\n".to_owned()
                    } else if line == "mn" {
                        "MN\r\n".to_owned()
                    } else if line.starts_with("mg huge ") {
                        format!("VA {ANNOUNCED} {opaque}\r\n0123456789")
                    } else {
                        format!("EN {opaque}\r\n")
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if line.starts_with("mg huge ") {
                        announced.notify_one();
                        match then {
                            // Holds the connection until the client drops it.
                            Then::Stall => while let Ok(Some(_)) = lines.next_line().await {},
                            Then::Close => tokio::time::sleep(Duration::from_millis(500)).await,
                        }
                        return;
                    }
                }
            });
        }
    });
    format!("memcache://{address}")
}

/// One test for both shapes, one after the other: the count of bytes held is the whole
/// process's, which a test running beside it would add to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_gigabyte_is_not_allocated_before_it_comes() {
    for (then, label) in [(Then::Stall, "stalled"), (Then::Close, "cut short")] {
        let announced = Arc::new(Notify::new());
        let url = announcing_server(then, Arc::clone(&announced)).await;
        let cache = MemcachedCache::builder(&url)
            .timeout(TIMEOUT)
            .build()
            .await
            .unwrap();
        let expected: fn(&CacheError) -> bool = match then {
            Then::Stall => |error| matches!(error, CacheError::Timeout { .. }),
            Then::Close => |error| matches!(error, CacheError::Unreachable { .. }),
        };
        hostile::assert_announcement_costs_little(
            Arc::new(cache),
            ("huge", "small"),
            &announced,
            || ALLOCATOR.allocated(),
            expected,
            label,
        )
        .await;
    }
}
