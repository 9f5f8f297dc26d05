//! `--alternate A,B,...`: in-process engines measured in one process, in alternating
//! rounds (A B C, C B A, A B C, ...), so that drift of a shared machine falls on all of
//! them alike; the figure to read is the median of the per-round ratios to the first.
//!
//! `memory-adapter` is the in-memory backend as applications hold it (`Arc<dyn Cache>`),
//! so that the backend and the peers it is compared with share the rounds.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use cache_api::Cache;
use cache_bench::{Bound, BoxError, Measurement, Plan, Progress, SideReport, Target, Workload};
use cached::stores::ShardedLruCache;
use serde::Serialize;

use crate::memory::{CachedMemory, MokaFuture, MokaSync, QuickCache};

/// One in-process engine, whichever it is.
enum Engine {
    Adapter(Arc<dyn Cache>),
    Cached(CachedMemory),
    Quick(QuickCache),
    MokaSync(MokaSync),
    MokaFuture(MokaFuture),
}

impl Engine {
    fn named(name: &str, keys: usize) -> Result<Self, BoxError> {
        Ok(match name {
            "memory-adapter" => Engine::Adapter(Arc::new(cache_memory::MemoryCache::new())),
            "cached-memory" => Engine::Cached(CachedMemory(ShardedLruCache::new(keys.max(1) * 2))),
            "quick-cache" => Engine::Quick(QuickCache::new(keys)),
            "moka-sync" => Engine::MokaSync(MokaSync::new()),
            "moka-future" => Engine::MokaFuture(MokaFuture::new()),
            other => {
                return Err(format!(
                    "{other:?} cannot alternate: memory-adapter, cached-memory, quick-cache, \
                     moka-sync or moka-future"
                )
                .into())
            }
        })
    }
}

impl Target for Engine {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BoxError> {
        match self {
            Engine::Adapter(cache) => Ok(cache.get(key).await?),
            Engine::Cached(peer) => peer.get(key).await,
            Engine::Quick(peer) => peer.get(key).await,
            Engine::MokaSync(peer) => peer.get(key).await,
            Engine::MokaFuture(peer) => peer.get(key).await,
        }
    }
    async fn set(&self, key: &str, value: Bytes) -> Result<(), BoxError> {
        match self {
            Engine::Adapter(cache) => Ok(cache.set(key, value, None).await?),
            Engine::Cached(peer) => peer.set(key, value).await,
            Engine::Quick(peer) => peer.set(key, value).await,
            Engine::MokaSync(peer) => peer.set(key, value).await,
            Engine::MokaFuture(peer) => peer.set(key, value).await,
        }
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BoxError> {
        match self {
            Engine::Adapter(cache) => Ok(cache.get_many(keys).await?),
            Engine::Cached(peer) => peer.get_many(keys).await,
            Engine::Quick(peer) => peer.get_many(keys).await,
            Engine::MokaSync(peer) => peer.get_many(keys).await,
            Engine::MokaFuture(peer) => peer.get_many(keys).await,
        }
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<(), BoxError> {
        match self {
            Engine::Adapter(cache) => cache.delete_many(keys).await.map(drop).map_err(Into::into),
            Engine::Cached(peer) => peer.delete_many(keys).await,
            Engine::Quick(peer) => peer.delete_many(keys).await,
            Engine::MokaSync(peer) => peer.delete_many(keys).await,
            Engine::MokaFuture(peer) => peer.delete_many(keys).await,
        }
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

/// Measures `names` in `rounds` alternating rounds of `duration / rounds` each.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn alternate(
    names: &[String],
    workload: Workload,
    value_size: usize,
    keys: usize,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    rounds: u32,
) -> Result<Alternation, BoxError> {
    let progress = Arc::new(Progress::default());
    let mut engines = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let engine = Arc::new(Engine::named(name, keys)?);
        let prefix = format!("alternate:{i}:");
        let plan = Arc::new(Plan::new(
            workload,
            100,
            &prefix,
            keys,
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
            let mut ratios: Vec<f64> = rates[0].iter().zip(&rates[i]).map(|(a, b)| a / b).collect();
            Side {
                name: name.clone(),
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
        keys,
        concurrency,
        rounds,
        sides,
    })
}
