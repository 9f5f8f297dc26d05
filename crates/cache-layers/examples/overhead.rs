//! What Tracing + Metrics cost when no subscriber and no recorder are installed: `get`
//! on the memory backend from 16 tasks, bare and layered in alternating rounds.
//!
//! `cargo run --release -p cache-layers --example overhead`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheStack};
use cache_layers::{MetricsLayer, TracingLayer};

const TASKS: usize = 16;
const GETS_PER_TASK: usize = 100_000;
const KEYS: usize = 10_000;
const ROUNDS: usize = 12;

async fn round(cache: &Arc<dyn Cache>, keys: &Arc<Vec<String>>) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (cache, keys) = (cache.clone(), keys.clone());
            tokio::spawn(async move {
                for i in 0..GETS_PER_TASK {
                    let key = &keys[(i * 7 + task * 131) % KEYS];
                    std::hint::black_box(cache.get(key).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (TASKS * GETS_PER_TASK) as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    (values[mid - 1] + values[mid]) / 2.0
}

#[tokio::main]
async fn main() {
    let backend = cache_memory::MemoryCache::new();
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("key:{i}")).collect());
    for key in keys.iter() {
        backend
            .set(key, Bytes::from(vec![7; 100]), None)
            .await
            .unwrap();
    }
    let bare: Arc<dyn Cache> = Arc::new(backend);
    let layered = CacheStack::new(bare.clone())
        .layer(TracingLayer::new())
        .layer(MetricsLayer::new())
        .build();
    // Warm-up, then alternate so that drift in the machine's load hits both alike.
    round(&bare, &keys).await;
    round(&layered, &keys).await;
    let (mut bare_rates, mut layered_rates, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let b = round(&bare, &keys).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l = round(&layered, &keys).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        println!(
            "bare {b:>12.0} gets/s   layered {l:>12.0} gets/s   ratio {:.3}",
            l / b
        );
        bare_rates.push(b);
        layered_rates.push(l);
        ratios.push(l / b);
    }
    let ratio = median(&mut ratios);
    println!(
        "median of {ROUNDS} rounds: bare {:.0} gets/s, layered {:.0} gets/s, layered/bare {ratio:.3} ({:+.1} %)",
        median(&mut bare_rates),
        median(&mut layered_rates),
        (ratio - 1.0) * 100.0
    );
}
