//! One run of `cachectl bench`: connect the adapter (and the raw client), write the
//! keys, warm up, measure in alternating rounds, remove every key written, report.

use std::{
    future::Future,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cache_api::{Cache, CacheError, Capabilities};
use cache_redis::ConnectionModel;

use crate::{
    backend::{redis_model, Backend, NO_RAW_BASELINE, RAW_MEMCACHED_POOL_SIZE},
    cleanup::{
        clear_namespace, delete_keys, in_nested_prefix, nested_prefix, patience_from_now, Cleanup,
    },
    engine::{self, BoxError},
    measurement::{Measurement, SideReport},
    plan::{Bound, Plan, Progress, Workload},
    probe::{self, ConnectionCounter, Sample},
    report::{chain, median, scrub, Ratio, Report},
    room,
    status_line::{Status, StatusLine},
    targets::{Adapter, Raw, UnderPrefix},
    BenchError, Settings,
};

/// How long a server is given to say how much memory it has, without `--timeout`.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a wait that cannot see the stop switch itself (connecting, asking a server)
/// looks at it.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Why `pooled` and `connections` are refused for a cluster URL.
const NOT_FOR_A_CLUSTER: &str = "--pooled and --connections do not apply to a redis cluster: \
    the cluster client keeps one multiplexed connection per node";

/// Runs the benchmark `settings` describe and removes every key it wrote, also when
/// stopped early through `progress.stop` (then the report says it was interrupted).
/// The switch also ends the writing of the keys before the run, and a connection
/// attempt, within a fraction of a second. A progress line goes to standard error when
/// `settings.progress_label` is set, `settings.quiet` is not, and standard error is a
/// terminal.
///
/// # Errors
///
/// Settings no run can be made of, a backend that cannot be reached, keys that cannot be
/// written; [`BenchError::Interrupted`] when stopped before any key was written. Errors
/// of single operations during the run are counted in the report.
///
/// # Panics
///
/// When called outside a Tokio runtime, or when a task of the load loop panics.
pub async fn run(settings: &Settings, progress: Arc<Progress>) -> Result<Report, BenchError> {
    settings.check()?;
    let backend = Backend::of(&settings.url, settings.timeout)
        .map_err(|err| BenchError::Settings(err.to_string()))?;
    if (settings.pooled.is_some() || settings.connections.is_some()) && !backend.single_redis() {
        // A Redis backend that is not one server is a cluster.
        let message = if backend.name() == "redis" {
            NOT_FOR_A_CLUSTER
        } else {
            "--pooled and --connections apply to rediss://, redis+unix://, redis+sentinel:// and redis:// only"
        };
        return Err(BenchError::Settings(message.to_owned()));
    }
    if settings.raw_baseline && matches!(backend, Backend::AdapterOnly { .. }) {
        return Err(BenchError::Settings(NO_RAW_BASELINE.to_owned()));
    }
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    let own = format!("cachectl-bench:{}-{unique}:", std::process::id());
    // Under a URL's prefix (an application's namespace), the run works in a namespace
    // of its own nested in it, cleared at the end: whatever a backend keeps there for
    // itself goes too, and nothing of the application's is touched; the raw client's
    // keys go under that namespace too. Without one, the adapter stores keys as given,
    // like the raw client, and only deletes them: the keys carry the run's own prefix.
    let namespace = cache_url::url_key_prefix(&settings.url)
        .filter(|url_prefix| !url_prefix.is_empty())
        .map(|_| nested_prefix(&settings.url, &own));
    let prefix = if namespace.is_some() {
        ""
    } else {
        own.as_str()
    };
    let sides = unless_stopped(
        &progress,
        Sides::connect(settings, &backend, namespace.as_deref(), &own),
    )
    .await?;
    // Before the value is made: a size no backend takes may be more than this machine
    // can allocate.
    check_value_size(settings.value_size, &sides.adapter.0.limits())?;
    // A run of misses writes nothing.
    if !settings.allow_eviction && settings.workload != Workload::GetMiss {
        // The longest key: the namespace, the run's prefix, `k` and the last index.
        let key_len = namespace.as_deref().map_or(0, str::len)
            + prefix.len()
            + 1
            + settings.keys.to_string().len();
        let sides_writing = 1 + usize::from(settings.raw_baseline);
        let bytes = room::written(settings.keys, key_len, settings.value_size, sides_writing);
        let timeout = settings.timeout.unwrap_or(ASK_TIMEOUT);
        unless_stopped(&progress, room::check(&backend, bytes, timeout)).await?;
    }
    let plan = Arc::new(Plan::new(
        settings.workload,
        settings.batch,
        prefix,
        settings.keys,
        settings.value_size,
        settings.concurrency,
    ));
    let status = Arc::new(Status::new(progress, "connecting"));
    let status_line = StatusLine::start(settings, &status);
    let mut written = Written::every_key(&plan);
    let outcome = sides.measure(settings, &plan, &status, &mut written).await;
    status.set("removing keys");
    let cleanup = sides
        .remove_written(settings, &plan, written, namespace, &own)
        .await;
    if let Some(status_line) = status_line {
        status_line.finish();
    }
    let interrupted = status.progress.stop.load(Ordering::Relaxed);
    Ok(report(settings, &backend, outcome?, cleanup, interrupted))
}

/// Runs `step` unless the run is stopped first: a connection attempt to a server that
/// does not answer would otherwise hold a Ctrl-C until its timeout. A step that is
/// ready at once (an in-memory backend) runs even when the switch is already set.
async fn unless_stopped<T>(
    progress: &Progress,
    step: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    let stopped = async {
        while !progress.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(STOP_POLL).await;
        }
    };
    tokio::select! {
        biased;
        result = step => result,
        () = stopped => Err(BenchError::Interrupted),
    }
}

/// How many of the plan's first keys each side may have written: every key, unless the
/// run was stopped before it could have written them all.
struct Written {
    adapter: usize,
    raw: usize,
}

impl Written {
    fn every_key(plan: &Plan) -> Self {
        Self {
            adapter: plan.keys.len(),
            raw: plan.keys.len(),
        }
    }
}

/// Refuses a value size over the largest value the backend declares it takes.
pub(crate) fn check_value_size(value_size: usize, limits: &Capabilities) -> Result<(), BenchError> {
    if value_size > limits.max_value_size {
        return Err(BenchError::Settings(format!(
            "a value of {value_size} bytes is over the largest the backend takes ({} bytes)",
            limits.max_value_size
        )));
    }
    Ok(())
}

/// The adapter, and the raw client with a baseline, with the probe of the server.
struct Sides {
    adapter: Arc<Adapter>,
    raw: Option<Arc<UnderPrefix<Raw>>>,
    counter: ConnectionCounter,
}

/// Both sides' totals, the adapter/raw throughput ratio of each round, the samples.
struct Outcome {
    adapter: Measurement,
    raw: Option<Measurement>,
    round_ratios: Vec<f64>,
    samples: Vec<Sample>,
}

impl Sides {
    async fn connect(
        settings: &Settings,
        backend: &Backend,
        namespace: Option<&str>,
        own: &str,
    ) -> Result<Self, BenchError> {
        let adapter = connect_adapter(settings, namespace).await.map_err(|err| {
            BenchError::Connect(chain(&in_nested_prefix(err, &settings.url, own)))
        })?;
        let raw = if settings.raw_baseline {
            let inner = connect_raw(settings, backend).await.map_err(|err| {
                BenchError::Connect(format!(
                    "cannot connect the raw client to {}: {}",
                    cache_url::redact(&settings.url),
                    scrub(&err.to_string(), &settings.url)
                ))
            })?;
            let prefix = namespace.unwrap_or_default().to_owned();
            Some(Arc::new(UnderPrefix { inner, prefix }))
        } else {
            None
        };
        let counter = match settings.sample_every {
            // A cluster's connections spread over its nodes, which one count cannot show;
            // the counter's own connection speaks no TLS, unix socket or Sentinel.
            Some(_)
                if matches!(
                    backend,
                    Backend::RedisCluster { .. } | Backend::AdapterOnly { .. }
                ) =>
            {
                ConnectionCounter::None
            }
            Some(_) => ConnectionCounter::connect(backend).await.map_err(|err| {
                BenchError::Connect(format!(
                    "cannot open the connection that counts server connections: {}",
                    scrub(&err, &settings.url)
                ))
            })?,
            None => ConnectionCounter::None,
        };
        Ok(Self {
            adapter: Arc::new(Adapter(adapter)),
            raw,
            counter,
        })
    }

    /// Populates and warms up both sides, then measures them; stopped, skips what is
    /// left. Notes in `written` how far the writing of the keys went.
    async fn measure(
        &self,
        settings: &Settings,
        plan: &Arc<Plan>,
        status: &Arc<Status>,
        written: &mut Written,
    ) -> Result<Outcome, BenchError> {
        let failed = |what: &str, err: BoxError| {
            BenchError::Run(format!(
                "{what} failed: {}",
                scrub(&err.to_string(), &settings.url)
            ))
        };
        let progress = &status.progress;
        let stopped = || progress.stop.load(Ordering::Relaxed);
        if plan.workload.needs_data() {
            status.set("writing keys (adapter)");
            written.adapter = engine::populate_until_stopped(&self.adapter, plan, progress)
                .await
                .map_err(|err| failed("writing the keys", err))?;
            if let Some(raw) = &self.raw {
                status.set("writing keys (raw)");
                written.raw = engine::populate_until_stopped(raw, plan, progress)
                    .await
                    .map_err(|err| failed("writing the keys", err))?;
            }
        }
        let warm_up = !settings.warmup.is_zero() && !stopped();
        if warm_up {
            let warmup = Bound {
                duration: Some(settings.warmup),
                ops: None,
            };
            status.set("warmup (adapter)");
            engine::measure(&self.adapter, plan, warmup, &status.progress).await;
            if let Some(raw) = &self.raw {
                status.set("warmup (raw)");
                engine::measure(raw, plan, warmup, &status.progress).await;
            }
        }
        if stopped() {
            if !warm_up && !plan.workload.needs_data() {
                // Stopped before an operation of the workload, the only writer here.
                *written = Written { adapter: 0, raw: 0 };
            }
            return Ok(Outcome {
                adapter: Measurement::new(),
                raw: self.raw.as_ref().map(|_| Measurement::new()),
                round_ratios: Vec::new(),
                samples: Vec::new(),
            });
        }
        Ok(self.rounds(settings, plan, status).await)
    }

    /// Measures the adapter and, when given, the raw client in alternating rounds (ABBA:
    /// adapter first in even rounds, raw first in odd ones), so that drift on a shared
    /// machine weighs on both alike.
    async fn rounds(&self, settings: &Settings, plan: &Arc<Plan>, status: &Status) -> Outcome {
        let rounds = if self.raw.is_some() {
            settings.rounds
        } else {
            1
        };
        let duration = match (settings.duration, settings.ops) {
            (None, None) => Some(Duration::from_secs(10)),
            (duration, _) => duration,
        };
        // --ops split exactly: the first `ops % rounds` rounds take one more.
        let bound_of = |round: u32| Bound {
            duration: duration.map(|duration| duration / rounds),
            ops: settings.ops.map(|ops| {
                ops / u64::from(rounds) + u64::from(u64::from(round) < ops % u64::from(rounds))
            }),
        };
        let sampler = settings
            .sample_every
            .map(|every| probe::spawn_sampler(every, self.counter.clone(), Instant::now()));
        let mut outcome = Outcome {
            adapter: Measurement::new(),
            raw: self.raw.as_ref().map(|_| Measurement::new()),
            round_ratios: Vec::new(),
            samples: Vec::new(),
        };
        for round in 0..rounds {
            let bound = bound_of(round);
            let label = |side: &str| format!("{side} round {}/{rounds}", round + 1);
            let adapter_first = round % 2 == 0;
            let (mut adapter_rate, mut raw_rate) = (0.0, None);
            for adapter_turn in [adapter_first, !adapter_first] {
                if adapter_turn {
                    status.set(label("adapter"));
                    let measured =
                        engine::measure(&self.adapter, plan, bound, &status.progress).await;
                    adapter_rate = measured.ops_per_sec();
                    outcome.adapter.merge(&measured);
                } else if let (Some(raw), Some(total)) = (&self.raw, &mut outcome.raw) {
                    status.set(label("raw"));
                    let measured = engine::measure(raw, plan, bound, &status.progress).await;
                    raw_rate = Some(measured.ops_per_sec());
                    total.merge(&measured);
                }
            }
            if let Some(raw_rate) = raw_rate {
                outcome.round_ratios.push(adapter_rate / raw_rate);
            }
        }
        if let Some(sampler) = sampler {
            outcome.samples = sampler.finish().await;
        }
        outcome
    }

    /// Deletes every key the run wrote, through the adapter and the raw client, then
    /// clears the run's namespace when it has one.
    async fn remove_written(
        &self,
        settings: &Settings,
        plan: &Plan,
        written: Written,
        namespace: Option<String>,
        prefix: &str,
    ) -> Cleanup {
        let cache = self.adapter.0.as_ref();
        // Where keys may be left: the run's namespace, or its own prefix without one.
        let left = namespace.clone().unwrap_or_else(|| prefix.to_owned());
        let deadline = patience_from_now();
        let removed = match delete_keys(cache, &plan.keys[..written.adapter], deadline).await {
            Ok(removed_keys) => match &namespace {
                Some(namespace) => clear_namespace(cache, deadline)
                    .await
                    .map(|()| removed_keys)
                    .map_err(|err| (removed_keys, err, namespace.clone())),
                None => Ok(removed_keys),
            },
            Err((removed_keys, err)) => Err((removed_keys, err, left.clone())),
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
                error: Some(scrub(&err.to_string(), &settings.url)),
            },
        };
        if let Some(raw) = &self.raw {
            if let Err((_, err)) =
                engine::remove_these_keys(&**raw, &plan.keys[..written.raw]).await
            {
                cleanup.left_prefix = Some(left);
                cleanup.error = Some(format!(
                    "through the raw client: {}",
                    scrub(&err.to_string(), &settings.url)
                ));
            }
        }
        cleanup
    }
}

fn report(
    settings: &Settings,
    backend: &Backend,
    outcome: Outcome,
    cleanup: Cleanup,
    interrupted: bool,
) -> Report {
    let Outcome {
        adapter,
        raw,
        round_ratios,
        samples,
    } = outcome;
    Report {
        label: settings
            .progress_label
            .clone()
            .unwrap_or_else(|| "cache-bench".to_owned()),
        url: cache_url::redact(&settings.url),
        backend: backend.name(),
        mode: backend.mode(settings),
        workload: settings.workload.name(),
        batch: (settings.workload == Workload::GetMany).then_some(settings.batch),
        value_size: settings.value_size,
        keys: settings.keys,
        concurrency: settings.concurrency,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        rounds: if raw.is_some() { settings.rounds } else { 1 },
        warmup_s: settings.warmup.as_secs_f64(),
        ratio: raw.as_ref().map(|raw| Ratio {
            throughput: adapter.ops_per_sec() / raw.ops_per_sec(),
            throughput_median: median(&round_ratios),
            throughput_rounds: round_ratios,
            p99: adapter.latency_us(0.99) / raw.latency_us(0.99),
        }),
        adapter: SideReport::from(&adapter),
        raw: raw.as_ref().map(SideReport::from),
        samples,
        cleanup,
        interrupted,
    }
}

async fn connect_adapter(
    settings: &Settings,
    namespace: Option<&str>,
) -> Result<Arc<dyn Cache>, CacheError> {
    let mut options = cache_url::Options::default();
    if let Some(timeout) = settings.timeout {
        options = options.timeout(timeout);
    }
    if let Some(namespace) = namespace {
        options = options.key_prefix(namespace);
    }
    let url = match (settings.pooled, settings.connections) {
        (Some(_), Some(_)) => {
            return Err(CacheError::config(
                "--pooled and --connections exclude each other: pick multiplexed or pooled",
            ))
        }
        (Some(max_size), None) => {
            with_connection_model(&settings.url, &format!("mode=pooled&pool_size={max_size}"))
        }
        (None, Some(connections)) => with_connection_model(
            &settings.url,
            &format!("mode=multiplexed&pool_size={connections}"),
        ),
        (None, None) => settings.url.clone(),
    };
    cache_url::connect_with(&url, &options).await
}

/// `url` with `model` (the `mode` and `pool_size` parameters of a Redis URL) in place
/// of its own, so that `--pooled` and `--connections` win over the URL while the adapter
/// still reads the URL as `cache_url::connect` does: layer parameters included.
fn with_connection_model(url: &str, model: &str) -> String {
    let (rest, _) = cache_url_core::split_off_params(url.trim(), &["mode", "pool_size"]);
    let separator = if rest.contains('?') { '&' } else { '?' };
    format!("{rest}{separator}{model}")
}

async fn connect_raw(settings: &Settings, backend: &Backend) -> Result<Raw, BoxError> {
    let timeout = settings.timeout;
    let connect = timeout.unwrap_or(cache_redis::DEFAULT_CONNECT_TIMEOUT);
    let response = timeout.unwrap_or(cache_redis::DEFAULT_RESPONSE_TIMEOUT);
    match backend {
        Backend::Memory { capacity_bytes } => Ok(Raw::memory(*capacity_bytes)),
        Backend::Redis { node, model } => match redis_model(settings, *model) {
            ConnectionModel::Pooled { max_size } => {
                let wait = timeout.unwrap_or(cache_redis::DEFAULT_POOL_WAIT_TIMEOUT);
                Raw::redis_pool(node, max_size, connect, response, wait)
            }
            ConnectionModel::Multiplexed { connections } => {
                Raw::redis(node, connections, connect, response).await
            }
            other => Err(format!("no raw baseline for the connection model {other:?}").into()),
        },
        Backend::RedisCluster { seeds } => Raw::redis_cluster(seeds, connect, response).await,
        Backend::Memcached {
            servers, timeout, ..
        } => Raw::memcached(servers, RAW_MEMCACHED_POOL_SIZE, *timeout).await,
        Backend::AdapterOnly { .. } => Err(NO_RAW_BASELINE.into()),
    }
}
