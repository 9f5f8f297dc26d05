//! `bench-peers PEER URL`: the workloads of `cachectl bench`, run on a peer library that
//! an application could pick instead of this project, with the identical load loop.
//!
//! Peers, each used the way its documentation shows:
//! - `cached-memory`: `cached::stores::ShardedLruCache<String, Bytes>` through its
//!   async trait (`memory://`);
//! - `quick-cache`: `quick_cache::sync::Cache<String, Bytes>` weighted in bytes, with
//!   the in-memory backend's default budget and no TTL (`memory://`);
//! - `moka-sync` and `moka-future`: moka's sync and future caches with that budget,
//!   LRU eviction and a TTL per entry (`memory://`): the in-memory backend's settings
//!   on either API (the future one was its engine before quick_cache);
//! - `cached-redis`: `cached::AsyncRedisCache<String, ByteBuf>` (`redis://`), which
//!   stores values as MessagePack and answers `set` with the previous value;
//! - `fred`: `fred`'s client, one pipelined connection (`redis://`);
//! - `opendal-redis` and `opendal-memcached`: Apache OpenDAL's operator over its redis
//!   and memcached services, pools of `--connections` (`redis://`, `memcache://`);
//! - `async-memcached`: Shopify's `async-memcached` client (`memcache://`), one
//!   connection per concurrent caller, handed out by a small queue.

#![forbid(unsafe_code)]

use std::{process::ExitCode, sync::Arc, time::Duration};

use cache_bench::{Bound, BoxError, Measurement, Plan, Progress, SideReport, Target, Workload};
use cached::stores::ShardedLruCache;
use clap::Parser;
use serde::Serialize;

mod memcached;
mod memory;
mod open_dal;
mod redis;
mod rounds;

/// Every peer, as named on the command line.
const PEERS: &str =
    "cached-memory, quick-cache, moka-sync, moka-future, cached-redis, fred, opendal-redis, \
    async-memcached or opendal-memcached";

#[derive(Parser)]
#[command(
    name = "bench-peers",
    about = "cachectl bench's workloads on peer libraries"
)]
struct Args {
    /// cached-memory, quick-cache, moka-sync, moka-future, cached-redis, fred, opendal-redis,
    /// async-memcached or opendal-memcached.
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
    /// Connections of the async-memcached and OpenDAL peers (the memcached backend's
    /// default pool).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Threads of the async runtime: 1 runs everything on one thread; by default one
    /// per core (as `cachectl bench --threads`).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
    /// Engines, comma-separated, measured in alternating rounds of one process instead
    /// of PEER alone (PEER is then ignored): memory-adapter and the in-memory peers, or
    /// `adapter` (this project's backend for URL) and the peers of URL's server;
    /// `adapter@URL2` is the backend of another URL (memcached's beside Redis's).
    #[arg(long, value_delimiter = ',')]
    alternate: Vec<String>,
    /// Rounds of --alternate, splitting --duration.
    #[arg(long, default_value_t = 12)]
    rounds: u32,
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
            run(memory::CachedMemory(cache), args, workload).await
        }
        "quick-cache" => run(memory::QuickCache::new(args.keys), args, workload).await,
        "moka-sync" => run(memory::MokaSync::new(), args, workload).await,
        "moka-future" => run(memory::MokaFuture::new(), args, workload).await,
        "cached-redis" => {
            let peer = redis::CachedRedis::connect(&args.url).await?;
            run(peer, args, workload).await
        }
        "fred" => run(redis::Fred::connect(&args.url).await?, args, workload).await,
        "opendal-redis" => {
            let peer = open_dal::OpenDal::redis(&args.url, args.connections)?;
            run(peer, args, workload).await
        }
        "opendal-memcached" => {
            let peer = open_dal::OpenDal::memcached(&args.url, args.connections)?;
            run(peer, args, workload).await
        }
        "async-memcached" => {
            let peer = memcached::AsyncMemcached::connect(&args.url, args.connections).await?;
            run(peer, args, workload).await
        }
        other => Err(format!("unknown peer {other:?}: expected {PEERS}").into()),
    }
}

/// Prints `text` and a newline. A reader that went away (`| head`) ends the output
/// quietly, where `println!` would panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{text}") {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("bench-peers: cannot write the report: {err}");
        }
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
    if !args.alternate.is_empty() {
        return alternation(args).await;
    }
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
                emit(&serde_json::to_string_pretty(&report).expect("a report serializes"));
            } else {
                emit(&format!(
                    "{} {}: {:.0} ops/s, {:.0} keys/s, p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, {} errors",
                    args.peer,
                    args.workload,
                    side.ops_per_sec,
                    side.keys_per_sec,
                    side.p50_us,
                    side.p99_us,
                    side.p999_us,
                    side.errors
                ));
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

async fn alternation(args: &Args) -> ExitCode {
    let outcome = match args.workload.parse::<Workload>() {
        Ok(workload) => {
            let setup = rounds::Setup {
                url: &args.url,
                keys: args.keys,
                connections: args.connections,
            };
            rounds::alternate(
                &args.alternate,
                setup,
                workload,
                args.value_size,
                args.concurrency,
                args.duration,
                args.warmup,
                args.rounds,
            )
            .await
        }
        Err(err) => Err(err.into()),
    };
    match outcome {
        Ok(alternation) => {
            emit(&serde_json::to_string_pretty(&alternation).expect("a report serializes"));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-peers: {err}");
            ExitCode::from(2)
        }
    }
}
