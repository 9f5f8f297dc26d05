//! `cachectl bench`: a load generator for any backend URL, like `redis-benchmark` or
//! memtier, that can run the identical workload straight through the client under the
//! backend (`--baseline raw`) and print what the adapter costs.

mod engine;
mod probe;
mod targets;

use std::{
    process::ExitCode,
    sync::{atomic::Ordering, Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use cache_api::{Cache, CacheError};
use serde::Serialize;

use crate::cleanup::{clear_namespace, delete_keys, nested_prefix};
use crate::report::Header;
use crate::{options, say, Connection, EXIT_FAILED, EXIT_UNUSABLE};
pub(crate) use engine::runtime;
use engine::{Bound, Measurement, Plan, Progress, Workload};
use probe::{ConnectionCounter, Sample};
use targets::{Adapter, Raw};

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Backend URL: memory://, redis://host:port, redis+cluster://h1:p1,h2:p2,
    /// memcache://host:port.
    #[arg(default_value = "memory://")]
    url: String,
    /// What each operation does: get (of stored keys), get-miss, set, mix (90 % get,
    /// 10 % set) or get-many (of --batch stored keys).
    #[arg(long, default_value = "get", value_parser = parse_workload)]
    workload: Workload,
    /// Keys per get_many of the get-many workload.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Number of distinct keys; written before the run for get, mix and get-many.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    keys: u32,
    /// Tasks issuing operations at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// How long to measure (per side with --baseline), e.g. 10s or 500ms; 10s when
    /// neither this nor --ops is given.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many operations (per side with --baseline).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,
    /// Unmeasured run before measuring (per side), e.g. 1s or 0s.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Also run the identical workload straight through the backend's client, alternating
    /// rounds with the adapter, and print the ratio adapter/raw.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Rounds per side: measuring alternates adapter and raw this many times each (in
    /// ABBA order), splitting --duration or --ops between them.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// redis: send every operation through a pool of at most N connections (the
    /// backend's pooled mode; the raw baseline is then a deadpool-redis pool). Not for
    /// a cluster.
    #[arg(long, conflicts_with = "connections", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pooled: Option<u32>,
    /// redis: spread operations over N multiplexed connections (default 1). Not for a
    /// cluster.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    connections: Option<u32>,
    /// Every so often during the run, record the process's resident memory and, for
    /// network backends other than a redis cluster, the server's connection count,
    /// e.g. 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    sample_every: Option<Duration>,
    /// memory:// only: instead of a load run, store N entries of --value-size bytes and
    /// report the resident memory each one costs (with --baseline raw, against moka).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    footprint: Option<u64>,
    /// Which side a footprint child process measures (set by --footprint itself).
    #[arg(long, hide = true, value_enum)]
    footprint_side: Option<Side>,
    /// Threads of the async runtime that runs the load and the client: 1 runs
    /// everything on one thread (as redis-benchmark does); by default one per core.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    threads: Option<u32>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

impl BenchArgs {
    /// The runtime threads asked for, if any.
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads.map(|threads| threads as usize)
    }
}

fn parse_workload(text: &str) -> Result<Workload, String> {
    text.parse()
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Baseline {
    /// The client library under the backend, used directly.
    Raw,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Side {
    Adapter,
    Raw,
}

/// Which backend a URL names, with what the raw baseline needs to know about it.
enum Backend {
    Memory {
        capacity_bytes: u64,
    },
    Redis,
    /// A Redis Cluster, reached through the `redis://` URL of each seed.
    RedisCluster {
        seeds: Vec<String>,
    },
    Memcached {
        servers: Vec<String>,
        pool_size: usize,
        timeout: Duration,
    },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Memory { .. } => "memory",
            Backend::Redis | Backend::RedisCluster { .. } => "redis",
            Backend::Memcached { .. } => "memcached",
        }
    }
}

fn backend_of(url: &str, connection: &Connection) -> Result<Backend, CacheError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        CacheError::config(format!("{:?} is not a cache URL", cache_url::redact(url)))
    })?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    };
    match scheme {
        "memory" => {
            let capacity_bytes = match param("max_capacity_bytes") {
                Some(value) => value.parse().map_err(|_| {
                    CacheError::config(format!("max_capacity_bytes needs a number, got {value:?}"))
                })?,
                None => cache_memory::MemoryCache::DEFAULT_CAPACITY_BYTES,
            };
            Ok(Backend::Memory { capacity_bytes })
        }
        "redis" => Ok(Backend::Redis),
        "redis+cluster" => Ok(Backend::RedisCluster {
            seeds: cluster_seeds(url)?,
        }),
        "memcache" | "memcached" => {
            let servers = authority
                .trim_end_matches('/')
                .split(',')
                .map(|server| {
                    let has_port = match server.rfind(']') {
                        Some(end) => server[end..].contains(':'),
                        None => server.contains(':'),
                    };
                    if has_port {
                        server.to_owned()
                    } else {
                        format!("{server}:11211")
                    }
                })
                .collect();
            let pool_size = match param("pool_size") {
                Some(value) => value.parse().map_err(|_| {
                    CacheError::config(format!("pool_size needs a number, got {value:?}"))
                })?,
                None => cache_memcached::DEFAULT_POOL_SIZE,
            };
            let timeout = match (connection.timeout, param("timeout")) {
                (Some(timeout), _) => timeout,
                (None, Some(value)) => humantime::parse_duration(value)
                    .ok()
                    .or_else(|| {
                        value
                            .parse::<f64>()
                            .ok()
                            .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    })
                    .ok_or_else(|| {
                        CacheError::config(format!("timeout needs a duration, got {value:?}"))
                    })?,
                (None, None) => cache_memcached::DEFAULT_TIMEOUT,
            };
            Ok(Backend::Memcached {
                servers,
                pool_size,
                timeout,
            })
        }
        other => Err(CacheError::config(format!(
            "cachectl bench knows memory://, redis://, redis+cluster:// and memcache:// URLs, not {other}://"
        ))),
    }
}

/// The `redis://` URL of each host of `redis+cluster://[user:password@]h1:p1,h2:p2[/0]`,
/// each with the same user info and path: the seeds the redis backend reads from it.
fn cluster_seeds(url: &str) -> Result<Vec<String>, CacheError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host list holds no '@': the last one ends the user info, even when a password
    // holds an unencoded '@'.
    let (user_info, hosts) = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => (format!("{user_info}@"), hosts),
        None => (String::new(), authority),
    };
    hosts
        .split(',')
        .map(|host| {
            if host.trim().is_empty() {
                return Err(CacheError::config(format!(
                    "the redis cluster URL {} has an empty entry in its host list",
                    cache_url::redact(url)
                )));
            }
            Ok(format!("redis://{user_info}{host}{tail}"))
        })
        .collect()
}

/// What is printed about one side of a run.
#[derive(Serialize)]
struct SideReport {
    ops: u64,
    keys: u64,
    seconds: f64,
    ops_per_sec: f64,
    keys_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    hits: u64,
    misses: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

impl From<&Measurement> for SideReport {
    fn from(m: &Measurement) -> Self {
        Self {
            ops: m.ops,
            keys: m.keys,
            seconds: m.elapsed.as_secs_f64(),
            ops_per_sec: m.ops_per_sec(),
            keys_per_sec: m.keys_per_sec(),
            p50_us: m.latency_us(0.5),
            p99_us: m.latency_us(0.99),
            p999_us: m.latency_us(0.999),
            max_us: m.max_us(),
            hits: m.hits,
            misses: m.misses,
            errors: m.errors,
            first_error: m.first_error.clone(),
        }
    }
}

#[derive(Serialize)]
struct Ratio {
    /// Adapter throughput over raw throughput, all rounds together: 1.0 means no cost.
    throughput: f64,
    /// Adapter throughput over raw throughput in each round (the two sides of a round
    /// run back to back).
    throughput_rounds: Vec<f64>,
    /// The median of `throughput_rounds`: a burst of other work on the machine that
    /// hits one round moves it less than the overall ratio.
    throughput_median: f64,
    /// Adapter p99 over raw p99, all rounds together: 1.0 means no cost.
    p99: f64,
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    header: Header,
    url: String,
    backend: &'static str,
    mode: String,
    workload: &'static str,
    /// Keys per operation: only for the get-many workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<usize>,
    value_size: usize,
    keys: usize,
    concurrency: usize,
    /// Threads of the async runtime.
    threads: usize,
    rounds: u32,
    warmup_s: f64,
    adapter: SideReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<SideReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<Ratio>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    samples: Vec<Sample>,
    cleanup: Cleanup,
    /// Stopped by Ctrl-C: the figures cover only part of the planned run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupted: bool,
}

/// What removing the run's keys achieved.
#[derive(Serialize)]
struct Cleanup {
    /// Keys deleted after the run: every key the run may have written, unless removal failed.
    removed_keys: usize,
    /// `None` once every key is removed; otherwise the prefix of the keys left behind.
    left_prefix: Option<String>,
    /// Why removal failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Cleanup {
    fn describe(&self) -> String {
        match (&self.left_prefix, &self.error) {
            (None, _) => format!("removed every key written ({} keys)", self.removed_keys),
            (Some(prefix), error) => format!(
                "failed after removing {} keys: {}; keys may be left under {prefix:?}",
                self.removed_keys,
                error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

/// Warns on standard error when this cachectl was built without optimisations: its figures
/// would be several times lower than a release build's, with nothing else to tell.
fn warn_if_debug_build() {
    if cfg!(debug_assertions) {
        eprintln!(
            "cachectl bench: warning: this is a debug build (no optimisations), figures run \
             2-3x lower; use a release build: cargo install --path crates/cache-cli, or \
             cargo run --release -p cache-cli -- bench ..."
        );
    }
}

/// The phase shown by the progress line.
struct Status {
    progress: Arc<Progress>,
    phase: Mutex<String>,
}

impl Status {
    fn set(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase.into();
    }
}

/// Prints the progress line on standard error once per second until aborted.
fn spawn_progress(status: Arc<Status>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0;
        loop {
            tick.tick().await;
            let ops = status.progress.ops.load(Ordering::Relaxed);
            let errors = status.progress.errors.load(Ordering::Relaxed);
            let phase = status
                .phase
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            eprintln!(
                "cachectl bench: {:>4}s  {phase:<24} {:>10} ops/s  {errors} errors",
                started.elapsed().as_secs(),
                group_digits((ops - last) as f64),
            );
            last = ops;
        }
    })
}

pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    match run_checked(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("cachectl bench: {message}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

async fn run_checked(args: BenchArgs) -> Result<ExitCode, String> {
    let header = Header::now("bench");
    let backend = backend_of(&args.url, &args.connection).map_err(|err| err.to_string())?;
    // A footprint child process measures memory, not speed, and its parent has warned.
    if args.footprint_side.is_none() {
        warn_if_debug_build();
    }
    if args.footprint.is_some() || args.footprint_side.is_some() {
        return footprint(&args, &backend).await;
    }
    if args.pooled.is_some() || args.connections.is_some() {
        match backend {
            Backend::Redis => {}
            Backend::RedisCluster { .. } => return Err(NOT_FOR_A_CLUSTER.to_owned()),
            _ => return Err("--pooled and --connections apply to redis:// only".to_owned()),
        }
    }
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    let prefix = format!("cachectl-bench:{}-{unique}:", std::process::id());
    // Under a URL's prefix (an application's namespace), the run works in a namespace
    // of its own nested in it, cleared at the end: whatever a backend keeps there for
    // itself goes too, and nothing of the application's is touched. Without one, the
    // adapter stores keys as given, like the raw client, and only deletes them.
    let namespace = cache_url::url_key_prefix(&args.url)
        .filter(|url_prefix| !url_prefix.is_empty())
        .map(|_| nested_prefix(&args.url, &prefix));
    let plan = Arc::new(Plan::new(
        args.workload,
        args.batch as usize,
        &prefix,
        args.keys as usize,
        args.value_size,
        args.concurrency as usize,
    ));

    let adapter = Arc::new(Adapter(
        connect_adapter(&args, namespace.as_deref())
            .await
            .map_err(|err| chain(&err))?,
    ));
    let raw = match args.baseline {
        Some(Baseline::Raw) => Some(Arc::new(connect_raw(&args, &backend).await.map_err(
            |err| {
                format!(
                    "cannot connect the raw client to {}: {}",
                    cache_url::redact(&args.url),
                    scrub(&err.to_string(), &args.url)
                )
            },
        )?)),
        None => None,
    };
    let counter = match args.sample_every {
        // A cluster's connections spread over its nodes, which one count cannot show.
        Some(_) if matches!(backend, Backend::RedisCluster { .. }) => ConnectionCounter::None,
        Some(_) => ConnectionCounter::connect(&args.url, &backend_servers(&backend))
            .await
            .map_err(|err| {
                format!("cannot open the connection that counts server connections: {err}")
            })?,
        None => ConnectionCounter::None,
    };

    let status = Arc::new(Status {
        progress: Arc::new(Progress::default()),
        phase: Mutex::new("connecting".to_owned()),
    });
    let printer = spawn_progress(Arc::clone(&status));
    let watcher = spawn_interrupt_watcher(Arc::clone(&status.progress));
    let outcome = measure_both(&args, &plan, &adapter, raw.as_ref(), &status, &counter).await;
    status.set("removing keys");
    let removed = match delete_keys(adapter.0.as_ref(), &plan.keys).await {
        Ok(removed_keys) => match &namespace {
            Some(namespace) => clear_namespace(adapter.0.as_ref())
                .await
                .map(|()| removed_keys)
                .map_err(|err| (removed_keys, err, namespace.clone())),
            None => Ok(removed_keys),
        },
        Err((removed_keys, err)) => Err((
            removed_keys,
            err,
            namespace.clone().unwrap_or_else(|| prefix.clone()),
        )),
    };
    let mut cleanup = match removed {
        Ok(removed_keys) => Cleanup {
            removed_keys,
            left_prefix: None,
            error: None,
        },
        Err((removed_keys, err, left)) => Cleanup {
            removed_keys,
            left_prefix: Some(left),
            error: Some(scrub(&err.to_string(), &args.url)),
        },
    };
    if let Some(raw) = &raw {
        if let Err((_, err)) = engine::remove_keys(&**raw, &plan).await {
            cleanup.left_prefix = Some(prefix.clone());
            cleanup.error = Some(format!(
                "through the raw client: {}",
                scrub(&err.to_string(), &args.url)
            ));
        }
    }
    printer.abort();
    watcher.abort();
    let interrupted = status.progress.stop.load(Ordering::Relaxed);
    let (adapter_m, raw_m, round_ratios, samples) = outcome?;

    let report = Report {
        header,
        url: cache_url::redact(&args.url),
        backend: backend.name(),
        mode: mode_name(&args, &backend),
        workload: args.workload.name(),
        batch: (args.workload == Workload::GetMany).then_some(args.batch as usize),
        value_size: args.value_size,
        keys: args.keys as usize,
        concurrency: args.concurrency as usize,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        rounds: if raw.is_some() { args.rounds } else { 1 },
        warmup_s: args.warmup.as_secs_f64(),
        ratio: raw_m.as_ref().map(|raw| Ratio {
            throughput: adapter_m.ops_per_sec() / raw.ops_per_sec(),
            throughput_median: median(&round_ratios),
            throughput_rounds: round_ratios.clone(),
            p99: adapter_m.latency_us(0.99) / raw.latency_us(0.99),
        }),
        adapter: SideReport::from(&adapter_m),
        raw: raw_m.as_ref().map(SideReport::from),
        samples,
        cleanup,
        interrupted,
    };
    if args.json {
        say(&serde_json::to_string_pretty(&report).expect("a report serializes"));
    } else {
        print_report(&report);
    }
    let failed = report.adapter.errors > 0
        || report.raw.as_ref().is_some_and(|raw| raw.errors > 0)
        || report.cleanup.left_prefix.is_some();
    if interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why `--pooled` and `--connections` are refused for a cluster URL.
const NOT_FOR_A_CLUSTER: &str = "--pooled and --connections do not apply to a redis cluster: \
    the cluster client keeps one multiplexed connection per node";

/// Exit code of a run stopped by Ctrl-C, as shells report a SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// On the first Ctrl-C, stops the runs so that the keys written can still be removed;
/// on the second, exits at once.
fn spawn_interrupt_watcher(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        progress.stop.store(true, Ordering::Relaxed);
        eprintln!("cachectl bench: interrupted: stopping and removing the keys written (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    })
}

/// Both sides' totals, the adapter/raw throughput ratio of each round, the samples.
type Outcome = (Measurement, Option<Measurement>, Vec<f64>, Vec<Sample>);

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Populates, warms up and measures the adapter and, when given, the raw client in
/// alternating rounds (ABBA: adapter first in even rounds, raw first in odd ones), so
/// that drift on a shared machine weighs on both alike.
async fn measure_both(
    args: &BenchArgs,
    plan: &Arc<Plan>,
    adapter: &Arc<Adapter>,
    raw: Option<&Arc<Raw>>,
    status: &Arc<Status>,
    counter: &ConnectionCounter,
) -> Result<Outcome, String> {
    let failed = |what: &str, err: engine::BoxError| {
        format!("{what} failed: {}", scrub(&err.to_string(), &args.url))
    };
    if plan.workload.needs_data() {
        status.set("writing keys (adapter)");
        engine::populate(adapter, plan)
            .await
            .map_err(|err| failed("writing the keys", err))?;
        if let Some(raw) = raw {
            status.set("writing keys (raw)");
            engine::populate(raw, plan)
                .await
                .map_err(|err| failed("writing the keys", err))?;
        }
    }
    if !args.warmup.is_zero() {
        let warmup = Bound {
            duration: Some(args.warmup),
            ops: None,
        };
        status.set("warmup (adapter)");
        engine::measure(adapter, plan, warmup, &status.progress).await;
        if let Some(raw) = raw {
            status.set("warmup (raw)");
            engine::measure(raw, plan, warmup, &status.progress).await;
        }
    }

    let rounds = if raw.is_some() { args.rounds } else { 1 };
    let duration = match (args.duration, args.ops) {
        (None, None) => Some(Duration::from_secs(10)),
        (duration, _) => duration,
    };
    let bound = Bound {
        duration: duration.map(|duration| duration / rounds),
        ops: args.ops.map(|ops| ops.div_ceil(u64::from(rounds))),
    };

    let started = Instant::now();
    let sampler = args
        .sample_every
        .map(|every| probe::spawn_sampler(every, counter.clone(), started));
    let mut adapter_total = Measurement::new();
    let mut raw_total = Measurement::new();
    let mut round_ratios = Vec::new();
    for round in 0..rounds {
        let label = |side: &str| format!("{side} round {}/{rounds}", round + 1);
        let adapter_first = round % 2 == 0;
        let (mut adapter_rate, mut raw_rate) = (0.0, None);
        for side in [adapter_first, !adapter_first] {
            if side {
                status.set(label("adapter"));
                let measured = engine::measure(adapter, plan, bound, &status.progress).await;
                adapter_rate = measured.ops_per_sec();
                adapter_total.merge(&measured);
            } else if let Some(raw) = raw {
                status.set(label("raw"));
                let measured = engine::measure(raw, plan, bound, &status.progress).await;
                raw_rate = Some(measured.ops_per_sec());
                raw_total.merge(&measured);
            }
        }
        if let Some(raw_rate) = raw_rate {
            round_ratios.push(adapter_rate / raw_rate);
        }
    }
    let samples = match sampler {
        Some(sampler) => sampler.finish().await,
        None => Vec::new(),
    };
    Ok((adapter_total, raw.map(|_| raw_total), round_ratios, samples))
}

async fn connect_adapter(
    args: &BenchArgs,
    namespace: Option<&str>,
) -> Result<Arc<dyn Cache>, CacheError> {
    if args.pooled.is_none() && args.connections.is_none() {
        let mut options = options(&args.connection);
        if let Some(namespace) = namespace {
            options = options.key_prefix(namespace);
        }
        return cache_url::connect_with(&args.url, &options).await;
    }
    let mut builder = cache_redis::RedisCache::builder(&args.url);
    if let Some(namespace) = namespace {
        builder = builder.key_prefix(namespace);
    }
    if let Some(timeout) = args.connection.timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(max_size) = args.pooled {
        builder = builder.pooled(max_size as usize);
    }
    if let Some(connections) = args.connections {
        builder = builder.connections(connections as usize);
    }
    Ok(Arc::new(builder.build().await?))
}

async fn connect_raw(args: &BenchArgs, backend: &Backend) -> Result<Raw, engine::BoxError> {
    match backend {
        Backend::Memory { capacity_bytes } => Ok(Raw::moka(*capacity_bytes)),
        Backend::Redis => {
            let timeout = args.connection.timeout;
            let connect = timeout.unwrap_or(cache_redis::DEFAULT_CONNECT_TIMEOUT);
            let response = timeout.unwrap_or(cache_redis::DEFAULT_RESPONSE_TIMEOUT);
            let wait = timeout.unwrap_or(cache_redis::DEFAULT_POOL_WAIT_TIMEOUT);
            match args.pooled {
                Some(max_size) => {
                    Raw::redis_pool(&args.url, max_size as usize, connect, response, wait)
                }
                None => {
                    Raw::redis(
                        &args.url,
                        args.connections.unwrap_or(1) as usize,
                        connect,
                        response,
                    )
                    .await
                }
            }
        }
        Backend::RedisCluster { seeds } => {
            let timeout = args.connection.timeout;
            Raw::redis_cluster(
                seeds,
                timeout.unwrap_or(cache_redis::DEFAULT_CONNECT_TIMEOUT),
                timeout.unwrap_or(cache_redis::DEFAULT_RESPONSE_TIMEOUT),
            )
            .await
        }
        Backend::Memcached {
            servers,
            pool_size,
            timeout,
        } => Raw::memcached(servers, *pool_size, *timeout).await,
    }
}

fn backend_servers(backend: &Backend) -> Vec<String> {
    match backend {
        Backend::Memcached { servers, .. } => servers.clone(),
        _ => Vec::new(),
    }
}

fn mode_name(args: &BenchArgs, backend: &Backend) -> String {
    match (backend, args.pooled) {
        (Backend::Redis, Some(max_size)) => format!("pooled({max_size})"),
        (Backend::Redis, None) => format!("multiplexed({})", args.connections.unwrap_or(1)),
        (Backend::RedisCluster { seeds }, _) => format!("cluster({} seeds)", seeds.len()),
        (Backend::Memcached { pool_size, .. }, _) => format!("pool({pool_size} per server)"),
        (Backend::Memory { capacity_bytes }, _) => format!("capacity {capacity_bytes} bytes"),
    }
}

/// An error with its causes, on one line.
fn chain(err: &CacheError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        // A message may already end with its source's: add only what is new.
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    message
}

/// Removes the URL's password from a client's error message, should it ever carry one.
fn scrub(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message.to_owned(),
    }
}

/// 1234567.8 as "1,234,568".
fn group_digits(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_report(report: &Report) {
    say(&format!(
        "cachectl bench {} ({}, {})",
        report.url, report.backend, report.mode
    ));
    let batch = report
        .batch
        .map_or_else(String::new, |batch| format!(" of {batch} keys"));
    say(&format!(
        "workload {}{batch}, {}-byte values, {} keys, concurrency {}, {} runtime thread(s), {} round(s) per side, warmup {}s",
        report.workload,
        report.value_size,
        report.keys,
        report.concurrency,
        report.threads,
        report.rounds,
        report.warmup_s
    ));
    say(&format!(
        "{:<12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "", "ops/s", "keys/s", "p50 us", "p99 us", "p99.9 us", "max us", "errors", "hit %"
    ));
    let row = |name: &str, side: &SideReport| {
        let reads = side.hits + side.misses;
        let hit = if reads == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", side.hits as f64 * 100.0 / reads as f64)
        };
        say(&format!(
            "{name:<12} {:>12} {:>12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>7}",
            group_digits(side.ops_per_sec),
            group_digits(side.keys_per_sec),
            side.p50_us,
            side.p99_us,
            side.p999_us,
            side.max_us,
            side.errors,
            hit
        ));
        if let Some(error) = &side.first_error {
            say(&format!("{:<12} first error: {error}", ""));
        }
    };
    row("adapter", &report.adapter);
    if let Some(raw) = &report.raw {
        row("raw", raw);
    }
    if let Some(ratio) = &report.ratio {
        say(&format!(
            "{:<12} {:>12.3} {:>12} {:>9} {:>9.3}",
            "adapter/raw", ratio.throughput, "", "", ratio.p99
        ));
        let rounds: Vec<String> = ratio
            .throughput_rounds
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect();
        say(&format!(
            "{:<12} throughput ratio per round: {} (median {:.3})",
            "",
            rounds.join(", "),
            ratio.throughput_median
        ));
    }
    if !report.samples.is_empty() {
        say("samples:");
        say(&format!(
            "{:>8} {:>12} {:>20}",
            "at s", "rss KiB", "server connections"
        ));
        for sample in &report.samples {
            say(&format!(
                "{:>8.1} {:>12} {:>20}",
                sample.at_s,
                sample.rss_kib,
                sample
                    .server_connections
                    .map_or_else(|| "-".to_owned(), |count| count.to_string())
            ));
        }
    }
    say(&format!("cleanup: {}", report.cleanup.describe()));
    if report.interrupted {
        say("interrupted: the figures cover only part of the planned run");
    }
}

/// What one footprint child reports.
#[derive(Serialize, serde::Deserialize)]
struct FootprintSide {
    side: String,
    entries: u64,
    live_entries: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    bytes_per_entry: f64,
}

#[derive(Serialize)]
struct FootprintReport {
    #[serde(flatten)]
    header: Header,
    url: String,
    value_size: usize,
    key_len: usize,
    entries: u64,
    adapter: FootprintSide,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<FootprintSide>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
}

/// The key of footprint entry `i`: 18 bytes.
fn footprint_key(i: u64) -> String {
    format!("footprint:{i:08}")
}

/// Each side is measured in a process of its own: memory freed by one side would
/// otherwise be reused by the other, and its growth would not show.
async fn footprint(args: &BenchArgs, backend: &Backend) -> Result<ExitCode, String> {
    let Backend::Memory { capacity_bytes } = backend else {
        return Err("--footprint measures the in-memory backend: use a memory:// URL".to_owned());
    };
    let entries = args.footprint.ok_or("--footprint-side needs --footprint")?;
    if let Some(side) = args.footprint_side {
        let measured = footprint_side(side, entries, args.value_size, *capacity_bytes).await?;
        say(&serde_json::to_string(&measured).expect("a footprint serializes"));
        return Ok(ExitCode::SUCCESS);
    }
    let child = |side: &str| -> Result<FootprintSide, String> {
        let exe = std::env::current_exe()
            .map_err(|err| format!("cannot find the cachectl binary: {err}"))?;
        let output = std::process::Command::new(exe)
            .args(["bench", &args.url, "--footprint", &entries.to_string()])
            .args([
                "--value-size",
                &args.value_size.to_string(),
                "--footprint-side",
                side,
            ])
            .output()
            .map_err(|err| format!("cannot run the {side} footprint process: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "the {side} footprint process failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|err| format!("unreadable {side} footprint: {err}"))
    };
    let adapter = child("adapter")?;
    let raw = match args.baseline {
        Some(Baseline::Raw) => Some(child("raw")?),
        None => None,
    };
    let report = FootprintReport {
        header: Header::now("bench"),
        url: cache_url::redact(&args.url),
        value_size: args.value_size,
        key_len: footprint_key(0).len(),
        entries,
        ratio: raw
            .as_ref()
            .map(|raw| adapter.bytes_per_entry / raw.bytes_per_entry),
        adapter,
        raw,
    };
    if args.json {
        say(&serde_json::to_string_pretty(&report).expect("a report serializes"));
    } else {
        say(&format!(
            "cachectl bench {} --footprint {}: {}-byte keys, {}-byte values",
            report.url, report.entries, report.key_len, report.value_size
        ));
        say(&format!(
            "{:<12} {:>12} {:>14} {:>14} {:>16}",
            "", "live", "rss before KiB", "rss after KiB", "bytes per entry"
        ));
        for side in std::iter::once(&report.adapter).chain(report.raw.as_ref()) {
            say(&format!(
                "{:<12} {:>12} {:>14} {:>14} {:>16.1}",
                side.side,
                side.live_entries,
                side.rss_before_kib,
                side.rss_after_kib,
                side.bytes_per_entry
            ));
        }
        if let Some(ratio) = report.ratio {
            say(&format!("{:<12} {ratio:>12.3}", "adapter/raw"));
        }
    }
    let complete = std::iter::once(&report.adapter)
        .chain(report.raw.as_ref())
        .all(|side| side.live_entries == entries);
    if !complete {
        eprintln!("cachectl bench: some entries were evicted: raise max_capacity_bytes in the URL");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

async fn footprint_side(
    side: Side,
    entries: u64,
    value_size: usize,
    capacity: u64,
) -> Result<FootprintSide, String> {
    let value = |i: u64| Bytes::from(vec![(i % 251) as u8; value_size]);
    let (before, after, live) = match side {
        Side::Adapter => {
            let cache = cache_memory::MemoryCache::builder()
                .max_capacity_bytes(capacity)
                .build()
                .map_err(|err| err.to_string())?;
            let before = probe::rss_kib().map_err(|err| err.to_string())?;
            for i in 0..entries {
                cache
                    .set(&footprint_key(i), value(i), None)
                    .await
                    .map_err(|err| err.to_string())?;
            }
            let live = cache.entry_count().await;
            (
                before,
                probe::rss_kib().map_err(|err| err.to_string())?,
                live,
            )
        }
        Side::Raw => {
            let Raw::Moka(cache) = Raw::moka(capacity) else {
                unreachable!("Raw::moka builds moka");
            };
            let before = probe::rss_kib().map_err(|err| err.to_string())?;
            for i in 0..entries {
                cache
                    .insert(footprint_key(i), targets::MokaEntry::new(value(i)))
                    .await;
            }
            cache.run_pending_tasks().await;
            let live = cache.entry_count();
            (
                before,
                probe::rss_kib().map_err(|err| err.to_string())?,
                live,
            )
        }
    };
    Ok(FootprintSide {
        side: format!("{side:?}").to_lowercase(),
        entries,
        live_entries: live,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_entry: after.saturating_sub(before) as f64 * 1024.0 / entries as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0.4), "0");
        assert_eq!(group_digits(999.0), "999");
        assert_eq!(group_digits(1000.0), "1,000");
        assert_eq!(group_digits(1_234_567.8), "1,234,568");
    }

    #[test]
    fn passwords_are_scrubbed_from_client_errors() {
        let url = "redis://user:hunter2@127.0.0.1:7000/0";
        assert_eq!(scrub("auth hunter2 refused", url), "auth *** refused");
        assert_eq!(
            scrub("no secret here", "redis://127.0.0.1"),
            "no secret here"
        );
    }

    #[test]
    fn memcached_urls_give_the_raw_client_its_servers() {
        let connection = Connection { timeout: None };
        let Backend::Memcached {
            servers,
            pool_size,
            timeout,
        } = backend_of(
            "memcache://127.0.0.1,[::1]:7001,[::1]/?pool_size=4&timeout=250ms",
            &connection,
        )
        .unwrap()
        else {
            panic!("a memcached backend");
        };
        assert_eq!(servers, ["127.0.0.1:11211", "[::1]:7001", "[::1]:11211"]);
        assert_eq!(pool_size, 4);
        assert_eq!(timeout, Duration::from_millis(250));
        let Backend::Memory { capacity_bytes } =
            backend_of("memory://?max_capacity_bytes=4096", &connection).unwrap()
        else {
            panic!("a memory backend");
        };
        assert_eq!(capacity_bytes, 4096);
        assert!(backend_of("ftp://host", &connection).is_err());
    }

    #[test]
    fn cluster_urls_give_the_raw_client_a_seed_per_host() {
        let connection = Connection { timeout: None };
        let seeds = |url: &str| match backend_of(url, &connection) {
            Ok(Backend::RedisCluster { seeds }) => seeds,
            _ => panic!("a cluster backend for {url}"),
        };
        assert_eq!(
            seeds("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            seeds("redis+cluster://u:p@ss@h1:7000,h2/0"),
            ["redis://u:p@ss@h1:7000/0", "redis://u:p@ss@h2/0"]
        );
        let Err(err) = backend_of("redis+cluster://:s3cret@h1,,h2", &connection) else {
            panic!("an empty host is refused");
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
