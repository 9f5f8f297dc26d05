//! `bench-peers PEER URL`: the workloads of `cachectl bench`, run on a peer library that
//! an application could pick instead of this project, with the identical load loop.
//!
//! Peers, each used the way its documentation shows:
//! - `cached-memory`: `cached::stores::ShardedLruCache<String, Bytes>` through its
//!   async trait (`memory://`);
//! - `cached-redis`: `cached::AsyncRedisCache<String, ByteBuf>` (`redis://`), which
//!   stores values as MessagePack and answers `set` with the previous value;
//! - `async-memcached`: Shopify's `async-memcached` client (`memcache://`), one
//!   connection per concurrent caller, handed out by a small queue.

#![forbid(unsafe_code)]

use std::{process::ExitCode, sync::Arc, time::Duration};

use bytes::Bytes;
use cache_bench::{Bound, BoxError, Measurement, Plan, Progress, SideReport, Target, Workload};
use cached::{stores::ShardedLruCache, AsyncRedisCache, ConcurrentCachedAsync};
use clap::Parser;
use serde::Serialize;
use serde_bytes::ByteBuf;

#[derive(Parser)]
#[command(
    name = "bench-peers",
    about = "cachectl bench's workloads on peer libraries"
)]
struct Args {
    /// cached-memory, cached-redis or async-memcached.
    peer: String,
    /// memory://, redis://host:port or memcache://host:port, matching the peer.
    url: String,
    #[arg(long, default_value = "get")]
    workload: String,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Connections of the async-memcached peer (the memcached backend's default pool).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Threads of the async runtime: 1 runs everything on one thread; by default one
    /// per core (as `cachectl bench --threads`).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

/// `cached`'s sharded LRU: sync locks inside, an async trait outside.
struct CachedMemory(ShardedLruCache<String, Bytes>);

impl Target for CachedMemory {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        // The trait takes `&K`: a `String` per lookup is the price of its API.
        Ok(self.0.async_cache_get(&key.to_owned()).await?)
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let _previous = self.0.async_cache_set(key.to_owned(), value).await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            let _previous = self.0.async_cache_remove(&(*key).to_owned()).await?;
        }
        Ok(())
    }
}

/// `cached`'s async Redis store: one multiplexed connection, MessagePack values.
struct CachedRedis(AsyncRedisCache<String, ByteBuf>);

impl Target for CachedRedis {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        let value = self.0.async_cache_get(&key.to_owned()).await?;
        Ok(value.map(|value| Bytes::from(value.into_vec())))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        let _previous = self
            .0
            .async_cache_set(key.to_owned(), ByteBuf::from(value.to_vec()))
            .await?;
        Ok(())
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        // No bulk read in its API: one round trip per key.
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        for key in keys {
            let _previous = self.0.async_cache_remove(&(*key).to_owned()).await?;
        }
        Ok(())
    }
}

/// Shopify's client takes `&mut self`: each call borrows a connection from a queue.
struct AsyncMemcached {
    idle: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<async_memcached::Client>>,
    give_back: tokio::sync::mpsc::Sender<async_memcached::Client>,
}

impl AsyncMemcached {
    async fn connect(url: &str, connections: usize) -> Result<Self, BoxError> {
        let address = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/');
        let (give_back, idle) = tokio::sync::mpsc::channel(connections);
        for _ in 0..connections {
            let client = async_memcached::Client::new(format!("tcp://{address}")).await?;
            give_back.send(client).await?;
        }
        Ok(Self {
            idle: tokio::sync::Mutex::new(idle),
            give_back,
        })
    }

    async fn with<T>(
        &self,
        run: impl AsyncFnOnce(&mut async_memcached::Client) -> Result<T, async_memcached::Error>,
    ) -> Result<T, BoxError> {
        let mut client = self
            .idle
            .lock()
            .await
            .recv()
            .await
            .ok_or("the connection queue closed")?;
        let result = run(&mut client).await;
        self.give_back.send(client).await?;
        Ok(result?)
    }
}

impl Target for AsyncMemcached {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        use async_memcached::AsciiProtocol;
        let value = self.with(async |client| client.get(key).await).await?;
        Ok(value.map(|value| Bytes::from(value.data.unwrap_or_default())))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        use async_memcached::AsciiProtocol;
        self.with(async |client| client.set(key, value.as_ref(), None, None).await)
            .await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        use async_memcached::AsciiProtocol;
        let found = self
            .with(async |client| client.get_multi(keys).await)
            .await?;
        // Only hits come back, each with its key: put them in the order asked.
        let mut by_key: std::collections::HashMap<Vec<u8>, Bytes> = found
            .into_iter()
            .map(|value| (value.key, Bytes::from(value.data.unwrap_or_default())))
            .collect();
        Ok(keys
            .iter()
            .map(|key| by_key.remove(key.as_bytes()))
            .collect())
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        use async_memcached::AsciiProtocol;
        for key in keys {
            match self.with(async |client| client.delete(key).await).await {
                Ok(()) => {}
                // Deleting a missing key is an error to this client.
                Err(err) if err.to_string().to_lowercase().contains("not found") => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Report {
    peer: String,
    workload: String,
    batch: usize,
    value_size: usize,
    keys: usize,
    concurrency: usize,
    peer_side: SideReport,
}

async fn run<T: Target>(
    target: T,
    args: &Args,
    workload: Workload,
) -> Result<Measurement, BoxError> {
    let target = Arc::new(target);
    let prefix = format!("bench-peers:{}:", std::process::id());
    let plan = Arc::new(Plan::new(
        workload,
        args.batch,
        &prefix,
        args.keys,
        args.value_size,
        args.concurrency,
    ));
    let progress = Arc::new(Progress::default());
    if workload.needs_data() {
        cache_bench::populate(&target, &plan).await?;
    }
    if !args.warmup.is_zero() {
        let warmup = Bound {
            duration: Some(args.warmup),
            ops: None,
        };
        cache_bench::measure(&target, &plan, warmup, &progress).await;
    }
    let bound = Bound {
        duration: Some(args.duration),
        ops: None,
    };
    let measured = cache_bench::measure(&target, &plan, bound, &progress).await;
    cache_bench::remove_keys(&*target, &plan)
        .await
        .map_err(|(_, err)| err)?;
    Ok(measured)
}

async fn run_peer(args: &Args) -> Result<Measurement, BoxError> {
    let workload: Workload = args.workload.parse()?;
    match args.peer.as_str() {
        "cached-memory" => {
            // Sized in entries: room for every key, as the byte budget of the others.
            let cache = ShardedLruCache::new(args.keys.max(1) * 2);
            run(CachedMemory(cache), args, workload).await
        }
        "cached-redis" => {
            let cache = AsyncRedisCache::builder(format!("bench-peers-{}", std::process::id()))
                .connection_string(&args.url)
                .build()
                .await?;
            run(CachedRedis(cache), args, workload).await
        }
        "async-memcached" => {
            run(
                AsyncMemcached::connect(&args.url, args.connections).await?,
                args,
                workload,
            )
            .await
        }
        other => Err(format!(
            "unknown peer {other:?}: expected cached-memory, cached-redis or async-memcached"
        )
        .into()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = cache_bench::runtime(args.threads);
    match runtime {
        Ok(runtime) => runtime.block_on(report(&args)),
        Err(err) => {
            eprintln!("bench-peers: cannot start the async runtime: {err}");
            ExitCode::from(2)
        }
    }
}

async fn report(args: &Args) -> ExitCode {
    match run_peer(args).await {
        Ok(m) => {
            let side = SideReport::from(&m);
            if args.json {
                let report = Report {
                    peer: args.peer.clone(),
                    workload: args.workload.clone(),
                    batch: args.batch,
                    value_size: args.value_size,
                    keys: args.keys,
                    concurrency: args.concurrency,
                    peer_side: side,
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serializes")
                );
            } else {
                println!(
                    "{} {}: {:.0} ops/s, {:.0} keys/s, p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, {} errors",
                    args.peer,
                    args.workload,
                    side.ops_per_sec,
                    side.keys_per_sec,
                    side.p50_us,
                    side.p99_us,
                    side.p999_us,
                    side.errors
                );
            }
            if m.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("bench-peers: {err}");
            ExitCode::from(2)
        }
    }
}
