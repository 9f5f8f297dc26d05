//! `--alternate A,B,...`: engines measured in one process, in alternating rounds (A B C,
//! C B A, A B C, ...), so that drift of a shared machine falls on all of them alike; the
//! figure to read is the median of the per-round ratios to the first.
//!
//! `memory-adapter` is the in-memory backend as applications hold it (`Arc<dyn Cache>`),
//! so that the backend and the peers it is compared with share the rounds; `adapter` is
//! the backend of the URL (`redis://`, `memcache://`, ...) as `cache_url::connect` gives
//! it, for the network peers on the same server; `adapter@URL` is the backend of another
//! URL, so that two backends (memcached's and Redis's) share the rounds. Each engine works
//! on keys of its own.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use cache_api::Cache;
use cache_bench::{Bound, BoxError, Measurement, Plan, Progress, SideReport, Target, Workload};
use cached::stores::ShardedLruCache;
use serde::Serialize;

use crate::{
    memcached::AsyncMemcached,
    memory::{CachedMemory, MokaFuture, MokaSync, QuickCache},
    open_dal::OpenDal,
    redis::{CachedRedis, Fred},
};

/// The engines `--alternate` takes.
const ENGINES: &str =
    "memory-adapter, cached-memory, quick-cache, moka-sync, moka-future (memory://), \
    or adapter (adapter@URL: another URL's backend) with the peers of the URL's server: cached-redis, fred, opendal-redis (redis://), \
    async-memcached, opendal-memcached (memcache://)";

/// What the engines are made from: the URL of the server under test, the keys of a run
/// (the size of the in-memory peers) and the connections of the pooled peers.
#[derive(Clone, Copy)]
pub(crate) struct Setup<'a> {
    pub(crate) url: &'a str,
    pub(crate) keys: usize,
    pub(crate) connections: usize,
}

/// One engine, whichever it is.
enum Engine {
    Adapter(Arc<dyn Cache>),
    Cached(CachedMemory),
    Quick(QuickCache),
    MokaSync(MokaSync),
    MokaFuture(MokaFuture),
    CachedRedis(CachedRedis),
    Fred(Fred),
    OpenDal(OpenDal),
    AsyncMemcached(AsyncMemcached),
}

impl Engine {
    async fn named(name: &str, setup: Setup<'_>) -> Result<Self, BoxError> {
        let Setup {
            url,
            keys,
            connections,
        } = setup;
        if let Some(other) = name.strip_prefix("adapter@") {
            return Ok(Engine::Adapter(cache_url::connect(other).await?));
        }
        Ok(match name {
            "memory-adapter" => Engine::Adapter(Arc::new(cache_memory::MemoryCache::new())),
            "adapter" => Engine::Adapter(cache_url::connect(url).await?),
            "cached-memory" => Engine::Cached(CachedMemory(ShardedLruCache::new(keys.max(1) * 2))),
            "quick-cache" => Engine::Quick(QuickCache::new(keys)),
            "moka-sync" => Engine::MokaSync(MokaSync::new()),
            "moka-future" => Engine::MokaFuture(MokaFuture::new()),
            "cached-redis" => Engine::CachedRedis(CachedRedis::connect(url).await?),
            "fred" => Engine::Fred(Fred::connect(url).await?),
            "opendal-redis" => Engine::OpenDal(OpenDal::redis(url, connections)?),
            "opendal-memcached" => Engine::OpenDal(OpenDal::memcached(url, connections)?),
            "async-memcached" => {
                Engine::AsyncMemcached(AsyncMemcached::connect(url, connections).await?)
            }
            other => return Err(format!("{other:?} cannot alternate: {ENGINES}").into()),
        })
    }
}

/// `$call` on the peer inside `$engine`, bound to `$peer`, whichever peer it is; the
/// adapter, whose calls differ, is the caller's.
macro_rules! on_peer {
    ($engine:expr, $peer:ident => $call:expr, $adapter:ident => $on_adapter:expr) => {
        match $engine {
            Engine::Adapter($adapter) => $on_adapter,
            Engine::Cached($peer) => $call,
            Engine::Quick($peer) => $call,
            Engine::MokaSync($peer) => $call,
            Engine::MokaFuture($peer) => $call,
            Engine::CachedRedis($peer) => $call,
            Engine::Fred($peer) => $call,
            Engine::OpenDal($peer) => $call,
            Engine::AsyncMemcached($peer) => $call,
        }
    };
}

impl Target for Engine {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        on_peer!(self, peer => peer.get(key).await, cache => Ok(cache.get(key).await?))
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        on_peer!(self, peer => peer.set(key, value).await,
            cache => Ok(cache.set(key, value, None).await?))
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        on_peer!(self, peer => peer.get_many(keys).await,
            cache => Ok(cache.get_many(keys).await?))
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        on_peer!(self, peer => peer.delete_many(keys).await,
            cache => cache.delete_many(keys).await.map(drop).map_err(Into::into))
    }
}

/// One engine's figures over all rounds.
#[derive(Serialize)]
pub(crate) struct Side {
    name: String,
    /// Median over the rounds of this engine's throughput.
    ops_per_sec_median: f64,
    /// Median over the rounds of the first engine's throughput over this one's.
    first_over_this_median: f64,
    /// Totals of all rounds.
    total: SideReport,
}

/// What `--alternate` prints with `--json`.
#[derive(Serialize)]
pub(crate) struct Alternation {
    workload: String,
    value_size: usize,
    keys: usize,
    concurrency: usize,
    rounds: u32,
    sides: Vec<Side>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Measures `names`, made from `setup`, in `rounds` alternating rounds of
/// `duration / rounds` each.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn alternate(
    names: &[String],
    setup: Setup<'_>,
    workload: Workload,
    value_size: usize,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    rounds: u32,
) -> Result<Alternation, BoxError> {
    let progress = Arc::new(Progress::default());
    let mut engines = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let engine = Arc::new(Engine::named(name, setup).await?);
        let prefix = format!("alternate:{}:{i}:", std::process::id());
        let plan = Arc::new(Plan::new(
            workload,
            100,
            &prefix,
            setup.keys,
            value_size,
            concurrency,
        ));
        if workload.needs_data() {
            cache_bench::populate(&engine, &plan).await?;
        }
        let warm = Bound {
            duration: Some(warmup),
            ops: None,
        };
        cache_bench::measure(&engine, &plan, warm, &progress).await;
        engines.push((engine, plan));
    }
    let bound = Bound {
        duration: Some(duration / rounds.max(1)),
        ops: None,
    };
    let mut rates = vec![Vec::new(); engines.len()];
    let mut totals: Vec<Measurement> = engines.iter().map(|_| Measurement::new()).collect();
    for round in 0..rounds.max(1) {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..engines.len()).collect()
        } else {
            (0..engines.len()).rev().collect()
        };
        for i in order {
            let (engine, plan) = &engines[i];
            let measured = cache_bench::measure(engine, plan, bound, &progress).await;
            rates[i].push(measured.ops_per_sec());
            totals[i].merge(&measured);
        }
    }
    let sides = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // `adapter@URL` is shown without the URL's password.
            let name = match name.strip_prefix("adapter@") {
                Some(url) => format!("adapter@{}", cache_url::redact(url)),
                None => name.clone(),
            };
            let mut ratios: Vec<f64> = rates[0].iter().zip(&rates[i]).map(|(a, b)| a / b).collect();
            Side {
                name,
                ops_per_sec_median: median(&mut rates[i].clone()),
                first_over_this_median: median(&mut ratios),
                total: SideReport::from(&totals[i]),
            }
        })
        .collect();
    for (engine, plan) in &engines {
        cache_bench::remove_keys(&**engine, plan)
            .await
            .map_err(|(_, err)| err)?;
    }
    Ok(Alternation {
        workload: workload.name().to_owned(),
        value_size,
        keys: setup.keys,
        concurrency,
        rounds,
        sides,
    })
}
