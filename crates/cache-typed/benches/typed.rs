//! What the typed layer costs, on the in-memory backend, and what single-flight saves.
//!
//! `cargo bench -p cache-typed --all-features --bench typed` (a release build) prints
//! Markdown tables for BENCHMARKS.md:
//!
//! 1. typed `get` hit (JSON, postcard) against a raw bytes `get` of the same encoded
//!    size, at 100 B, 1 KiB and 16 KiB: the codec's cost per value size;
//! 2. `get_or_set` hit against a typed `get`, same key, same codec: what single-flight's
//!    bookkeeping costs on the hit path (target: at most 10 %);
//! 3. factory (database) calls when 1,000 tasks miss one key at once: `get_or_set`
//!    against a naive get-then-set.
//!
//! Each comparison runs in 400 alternating rounds (A, B, B, A, ...), each round about a
//! millisecond of calls from one task; the reported ratio is the median of the
//! per-round ratios, which a burst of other work on the machine moves less than the
//! totals, and the middle half of the rounds shows the spread.

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache};
use cache_typed::{Codec, JsonCodec, PostcardCodec, TypedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<u32>,
    body: String,
}

/// A record whose JSON encoding is about `size` bytes.
fn record(size: usize) -> Record {
    let mut record = Record {
        id: 42,
        name: "Ada Lovelace".to_owned(),
        tags: vec!["admin".to_owned(), "beta".to_owned()],
        score: Some(97),
        body: String::new(),
    };
    let base = serde_json::to_vec(&record).unwrap().len();
    record.body = "x".repeat(size.saturating_sub(base));
    record
}

/// Rounds per comparison (each side runs this many times, alternating).
const ROUNDS: usize = 400;

/// Nanoseconds per call of `op`, over `calls` calls.
async fn per_call<F, Fut>(calls: usize, mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for _ in 0..calls {
        op().await;
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

/// Alternating rounds of `a` and `b`; returns the median ns of a and of b, and the
/// median, first and third quartiles of the per-round ratios b / a.
async fn compare<FA, FutA, FB, FutB>(calls: usize, mut a: FA, mut b: FB) -> (f64, f64, Ratio)
where
    FA: FnMut() -> FutA,
    FutA: std::future::Future<Output = ()>,
    FB: FnMut() -> FutB,
    FutB: std::future::Future<Output = ()>,
{
    per_call(calls * 20, &mut a).await; // warm-up
    per_call(calls * 20, &mut b).await;
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = per_call(calls, &mut a).await;
            (x, per_call(calls, &mut b).await)
        } else {
            let y = per_call(calls, &mut b).await;
            (per_call(calls, &mut a).await, y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    (median(ta), median(tb), Ratio::of(ratios))
}

/// The spread of per-round ratios.
struct Ratio {
    median: f64,
    q1: f64,
    q3: f64,
}

impl Ratio {
    fn of(mut ratios: Vec<f64>) -> Self {
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        Self {
            median: median(ratios.clone()),
            q1: at(0.25),
            q3: at(0.75),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Calls per round: about a millisecond of work, so that a time slice lost to another
/// process spoils a round or two (outliers the median ignores), not a comparison.
fn calls_for(size: usize) -> usize {
    if size >= 16 * 1024 {
        200
    } else {
        1_000
    }
}

async fn codec_costs() {
    println!("### Typed get against a raw bytes get (memory, one task)\n");
    println!("| value | codec | encoded | raw get ns | typed get ns | typed / raw |");
    println!("|---:|---|---:|---:|---:|---:|");
    for size in [100, 1024, 16 * 1024] {
        codec_row::<JsonCodec>(size, JsonCodec).await;
        codec_row::<PostcardCodec>(size, PostcardCodec).await;
    }
    println!();
}

async fn codec_row<C: Codec>(size: usize, codec: C) {
    let backend: Arc<dyn Cache> = Arc::new(cache_memory::MemoryCache::new());
    let typed: TypedCache<Record, C> = TypedCache::new(Arc::clone(&backend), codec);
    typed.set("typed", &record(size)).await.unwrap();
    let stored = backend.get("typed").await.unwrap().unwrap();
    backend
        .set("raw", Bytes::from(vec![b'x'; stored.len()]), None)
        .await
        .unwrap();
    let (raw, typed_ns, ratio) = compare(
        calls_for(size),
        || async {
            black_box(backend.get("raw").await.unwrap());
        },
        || async {
            black_box(typed.get("typed").await.unwrap());
        },
    )
    .await;
    println!(
        "| {size} B | {} | {} B | {raw:.0} | {typed_ns:.0} | {:.2} |",
        C::NAME,
        stored.len(),
        ratio.median
    );
}

async fn get_or_set_overhead() {
    println!("### get_or_set hit against a typed get (memory, JSON, one task)\n");
    println!(
        "| value | typed get ns | get_or_set hit ns | overhead (median of per-round ratios) | middle half of the rounds |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for size in [100, 1024, 16 * 1024] {
        let typed: TypedCache<Record, JsonCodec> =
            TypedCache::new(Arc::new(cache_memory::MemoryCache::new()), JsonCodec);
        let options = typed.options();
        typed.set("k", &record(size)).await.unwrap();
        let (get, hit, ratio) = compare(
            calls_for(size),
            || async {
                black_box(typed.get("k").await.unwrap());
            },
            || async {
                let value = typed
                    .get_or_set("k", options, || async { unreachable!("a hit") })
                    .await
                    .unwrap();
                black_box(value);
            },
        )
        .await;
        let pct = |r: f64| (r - 1.0) * 100.0;
        println!(
            "| {size} B | {get:.0} | {hit:.0} | {:+.1} % | {:+.1} to {:+.1} % |",
            pct(ratio.median),
            pct(ratio.q1),
            pct(ratio.q3)
        );
    }
    println!();
}

const STAMPEDE: usize = 1_000;

async fn stampede() {
    println!(
        "### Factory calls when {STAMPEDE} tasks miss one key at once (memory, factory 10 ms)\n"
    );
    println!("| approach | factory calls | wall time ms |");
    println!("|---|---:|---:|");
    for naive in [true, false] {
        let typed: TypedCache<Record, JsonCodec> =
            TypedCache::new(Arc::new(cache_memory::MemoryCache::new()), JsonCodec);
        let calls = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(STAMPEDE));
        let started = Instant::now();
        let tasks: Vec<_> = (0..STAMPEDE)
            .map(|_| {
                let (typed, calls, barrier) =
                    (typed.clone(), Arc::clone(&calls), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let load = move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        record(100)
                    };
                    if naive {
                        if typed.get("k").await.unwrap().is_none() {
                            let value = load().await;
                            typed.set("k", &value).await.unwrap();
                        }
                    } else {
                        typed.get_or_set("k", typed.options(), load).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let name = if naive {
            "get, then load and set on a miss"
        } else {
            "get_or_set"
        };
        println!(
            "| {name} | {} | {} |",
            calls.load(Ordering::SeqCst),
            started.elapsed().as_millis()
        );
    }
    println!();
}

fn main() {
    // `cargo bench ... -- overhead` runs only the sections named (codec, overhead,
    // stampede); cargo's own `--bench` argument is not a section.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |section: &str| named.is_empty() || named.iter().any(|n| n == section);
    let (codec, overhead, herd) = (wanted("codec"), wanted("overhead"), wanted("stampede"));
    // One thread: the measured task never migrates, and the 1,000 stampede tasks
    // interleave on it as they would on a busy worker.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The measured calls run in a spawned task, as an application's would.
        tokio::spawn(async move {
            if codec {
                codec_costs().await;
            }
            if overhead {
                get_or_set_overhead().await;
            }
        })
        .await
        .unwrap();
        if herd {
            stampede().await;
        }
    });
}
