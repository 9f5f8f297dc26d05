//! The soak: mixed load on Redis and on memcached at once, each through a chaos proxy that
//! injects a fault every few seconds, for a bounded time (`CACHE_SOAK_SECS`, 120 s unless
//! set; the scheduled CI job runs 1800).
//!
//! What must hold at the end:
//! - every acknowledged write of a long-lived key (each written once, with a one-day TTL)
//!   reads back with its value: 0 lost acknowledged writes;
//! - no read ever returned another key's value;
//! - after a warm-up, the process's resident memory (`VmRSS`), its open sockets and each
//!   server's client connections stay flat (bounded growth, not one per fault).
//!
//! It prints the operations, the error rate and the samples; `BENCHMARKS.md` ("Soak") has a
//! run's figures and the command.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cache_api::{Bytes, Cache, CacheError};
use cache_memcached::MemcachedCache;
use cache_redis::RedisCache;
use cache_testserver::{
    chaos::{probe, ChaosProxy},
    LocalServer, MEMCACHED, REDIS,
};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream, task::JoinSet};

mod soak_support;
use soak_support::{socket_count, vm_rss_kib, Sample, SoakReport};

/// The run's length in seconds; 120 unless set.
const DURATION_ENV: &str = "CACHE_SOAK_SECS";
/// Load tasks per backend.
const TASKS: usize = 8;
/// The caches' timeout.
const TIMEOUT: Duration = Duration::from_millis(300);
/// A fault starts every this often, and lasts [`FAULT_FOR`].
const FAULT_EVERY: Duration = Duration::from_secs(4);
const FAULT_FOR: Duration = Duration::from_secs(1);
/// Memory and connections are sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Growth allowed after the warm-up: resident memory, sockets of the process, clients of
/// a server. A connection leaked per fault (one every 4 s) goes past these within 90 s.
const RSS_GROWTH_KIB: u64 = 32 * 1024;
const SOCKET_GROWTH: u64 = 16;
const CLIENT_GROWTH: u64 = 8;
/// How long each phase after the load may take: stopping the injectors, the load tasks
/// (every call is bounded by [`TIMEOUT`]) and the sampler; reading back gets a quarter of
/// the run's length when that is more. A phase that overruns fails the soak with its name
/// instead of hanging until the CI job's limit.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the soak with `phase` named if it takes over `limit`.
async fn within<T>(
    phase: impl std::fmt::Display,
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("the soak hung: {phase} took over {limit:?}"))
}

fn soak_duration() -> Duration {
    match std::env::var(DURATION_ENV) {
        Err(_) => Duration::from_secs(120),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds >= 10 => Duration::from_secs(seconds),
            _ => panic!("{DURATION_ENV}={text:?}: expected a whole number of seconds, at least 10"),
        },
    }
}

/// One backend under soak: its server, the proxy in front, the cache through it.
struct Target {
    name: &'static str,
    server: LocalServer,
    proxy: ChaosProxy,
    cache: Arc<dyn Cache>,
}

async fn start(name: &'static str) -> Target {
    let (kind, args): (_, &[&str]) = match name {
        "redis" => (&REDIS, &[]),
        // Room for a 30-minute run's long-lived keys: nothing may be evicted.
        _ => (&MEMCACHED, &["-m", "512"]),
    };
    let server = LocalServer::start(kind, args)
        .await
        .unwrap_or_else(|error| panic!("the soak needs a {name} binary: {error}"));
    let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
        .await
        .unwrap_or_else(|error| panic!("cannot start the chaos proxy: {error}"));
    let cache: Arc<dyn Cache> = match name {
        "redis" => Arc::new(
            RedisCache::builder(&format!("redis://{}", proxy.address()))
                .timeout(TIMEOUT)
                .build()
                .await
                .unwrap_or_else(|error| panic!("redis through the proxy: {error}")),
        ),
        _ => Arc::new(
            MemcachedCache::builder(&format!("memcache://{}", proxy.address()))
                .timeout(TIMEOUT)
                .build()
                .await
                .unwrap_or_else(|error| panic!("memcached through the proxy: {error}")),
        ),
    };
    Target {
        name,
        server,
        proxy,
        cache,
    }
}

/// Injects the faults in turn, one every [`FAULT_EVERY`] for [`FAULT_FOR`], until `stop`.
async fn inject_faults(proxy: &ChaosProxy, stop: &AtomicBool) -> usize {
    let faults = probe::every_fault(Duration::from_secs(1));
    let mut injected = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(FAULT_EVERY - FAULT_FOR).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        proxy.inject(faults[injected % faults.len()]);
        injected += 1;
        tokio::time::sleep(FAULT_FOR).await;
        proxy.heal();
    }
    injected
}

/// One load task: long-lived writes (recorded when acknowledged), short-lived writes,
/// reads, batches and deletes, with a pause between operations.
async fn load(
    cache: Arc<dyn Cache>,
    backend: &str,
    task: usize,
    stop: Arc<AtomicBool>,
) -> SoakReport {
    let mut report = SoakReport::new(task);
    let scratch = |n: u64| format!("soak:{backend}:s:{task}:{}", n % 64);
    let mut step: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        let outcome = match step % 6 {
            0 => durable_write(cache.as_ref(), backend, &mut report).await,
            1 => {
                let key = scratch(step.wrapping_mul(7));
                let ttl = Some(Duration::from_secs(60));
                cache.set(&key, probe::value_for(&key, step), ttl).await
            }
            2 => durable_read(cache.as_ref(), backend, step, &mut report).await,
            3 => {
                let keys: Vec<String> = (0..4).map(|n| scratch(step + n * 13)).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                cache.get_many(&keys).await.map(|values| {
                    for (key, value) in keys.iter().zip(values) {
                        report.check_scratch(key, value.as_deref());
                    }
                })
            }
            4 => cache
                .delete(&scratch(step.wrapping_mul(11)))
                .await
                .map(drop),
            _ => {
                let key = scratch(step.wrapping_mul(5));
                cache
                    .get(&key)
                    .await
                    .map(|value| report.check_scratch(&key, value.as_deref()))
            }
        };
        report.count(outcome.err().as_ref());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    report
}

fn durable_key(backend: &str, task: usize, sequence: u64) -> String {
    format!("soak:{backend}:d:{task}:{sequence}")
}

/// Writes the task's next long-lived key once; records it when acknowledged.
async fn durable_write(
    cache: &dyn Cache,
    backend: &str,
    report: &mut SoakReport,
) -> Result<(), CacheError> {
    let sequence = report.acked.next();
    let key = durable_key(backend, report.task, sequence);
    let ttl = Some(Duration::from_secs(24 * 3600));
    cache
        .set(&key, probe::value_for(&key, sequence), ttl)
        .await?;
    report.acked.record(sequence);
    Ok(())
}

/// Reads back one of the task's acknowledged long-lived keys: it must be there, exact.
async fn durable_read(
    cache: &dyn Cache,
    backend: &str,
    step: u64,
    report: &mut SoakReport,
) -> Result<(), CacheError> {
    let Some(sequence) = report.acked.pick(step) else {
        return Ok(());
    };
    let key = durable_key(backend, report.task, sequence);
    let value = cache.get(&key).await?;
    report.check_durable(&key, sequence, value.as_deref());
    Ok(())
}

/// After the run, with the fault lifted: every acknowledged long-lived write, read back in
/// batches. Returns how many were read and the keys that were lost or wrong.
async fn verify(cache: &dyn Cache, backend: &str, reports: &[SoakReport]) -> (u64, Vec<String>) {
    let mut lost = Vec::new();
    let mut checked = 0;
    for report in reports {
        let keys: Vec<(String, u64)> = report
            .acked
            .iter()
            .map(|sequence| (durable_key(backend, report.task, sequence), sequence))
            .collect();
        for batch in keys.chunks(200) {
            let names: Vec<&str> = batch.iter().map(|(key, _)| key.as_str()).collect();
            let values = read_batch(cache, &names).await;
            for ((key, sequence), value) in batch.iter().zip(values) {
                checked += 1;
                if value.as_deref() != Some(probe::value_for(key, *sequence).as_ref()) {
                    lost.push(format!("{key}: {value:?}"));
                }
            }
        }
    }
    (checked, lost)
}

/// One batch read, retried for a few seconds: the verification is not where faults go.
async fn read_batch(cache: &dyn Cache, keys: &[&str]) -> Vec<Option<Bytes>> {
    let started = Instant::now();
    loop {
        match cache.get_many(keys).await {
            Ok(values) => return values,
            Err(error) if started.elapsed() > Duration::from_secs(10) => {
                panic!("reading back the acknowledged writes: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The server's own count of client connections: Redis `connected_clients`, memcached
/// `curr_connections`, asked directly (not through the proxy).
async fn server_clients(name: &str, port: u16) -> u64 {
    let (request, field): (&[u8], &str) = match name {
        "redis" => (b"INFO clients\r\n", "connected_clients:"),
        _ => (b"stats\r\n", "STAT curr_connections "),
    };
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("{name} server on {port}: {error}"));
    stream.write_all(request).await.unwrap();
    let mut text = String::new();
    let mut buffer = vec![0_u8; 8192];
    while !text.contains(field) || !text[text.find(field).unwrap_or(0)..].contains('\n') {
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("{name} does not answer its stats"))
            .unwrap();
        assert!(read > 0, "{name} closed before its stats");
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let rest = &text[text.find(field).unwrap() + field.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} stats: {text}"))
}

/// Samples memory, sockets and both servers' clients until `stop`.
async fn sample(
    targets: Arc<Vec<(String, u16)>>,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut clients = Vec::new();
        for (name, port) in targets.iter() {
            clients.push(server_clients(name, *port).await);
        }
        samples.push(Sample {
            at: started.elapsed(),
            rss_kib: vm_rss_kib(),
            sockets: socket_count(),
            clients,
        });
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    samples
}

/// Mixed load on both backends through faults for `CACHE_SOAK_SECS`: no acknowledged
/// long-lived write lost, no read of another key's value, memory and connections flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_redis_and_memcached_through_faults() {
    let duration = soak_duration();
    let targets = [
        Arc::new(start("redis").await),
        Arc::new(start("memcached").await),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ports: Vec<(String, u16)> = targets
        .iter()
        .map(|target| (target.name.to_owned(), target.server.port()))
        .collect();
    let sampler = tokio::spawn(sample(Arc::new(ports), started, Arc::clone(&stop)));
    let mut workers = JoinSet::new();
    let mut injectors = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        for task in 0..TASKS {
            let (cache, stop) = (Arc::clone(&target.cache), Arc::clone(&stop));
            let name = target.name;
            workers.spawn(async move { (index, load(cache, name, task, stop).await) });
        }
        let (target, stop) = (Arc::clone(target), Arc::clone(&stop));
        injectors.push(tokio::spawn(async move {
            inject_faults(&target.proxy, &stop).await
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut injected = Vec::new();
    for (injector, target) in injectors.into_iter().zip(&targets) {
        let phase = format!("stopping the fault injector of {}", target.name);
        injected.push(within(phase, PHASE_LIMIT, injector).await.unwrap());
    }
    let mut reports: Vec<Vec<SoakReport>> = vec![Vec::new(), Vec::new()];
    let running = |reports: &[Vec<SoakReport>]| {
        let names = targets.iter().zip(reports);
        let left = names.map(|(target, done)| format!("{} {}", TASKS - done.len(), target.name));
        format!(
            "stopping the load tasks ({} still running)",
            left.collect::<Vec<_>>().join(", ")
        )
    };
    while !workers.is_empty() {
        let done = within(running(&reports), PHASE_LIMIT, workers.join_next()).await;
        let done = done.expect("the set is not empty");
        let (index, report) =
            done.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        reports[index].push(report);
    }
    let samples = within("stopping the sampler", PHASE_LIMIT, sampler)
        .await
        .unwrap();
    let ran = started.elapsed();
    let mut failures = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        target.proxy.heal();
        let phase = format!("reading back the acknowledged writes of {}", target.name);
        let (checked, lost) = within(
            phase,
            PHASE_LIMIT.max(duration / 4),
            verify(target.cache.as_ref(), target.name, &reports[index]),
        )
        .await;
        let summary = SoakReport::summary(target.name, &reports[index], ran, injected[index]);
        println!(
            "{summary}; {checked} acknowledged long-lived writes read back, {} lost",
            lost.len()
        );
        if !lost.is_empty() {
            failures.push(format!(
                "{}: {} acknowledged writes lost, e.g. {:?}",
                target.name,
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }
        failures.extend(SoakReport::problems(target.name, &reports[index], checked));
    }
    soak_support::print_samples(&samples, &["redis", "memcached"]);
    let growth = soak_support::Growth::after_warm_up(&samples, duration / 4);
    println!("after the warm-up: {growth:?}");
    failures.extend(growth.check(RSS_GROWTH_KIB, SOCKET_GROWTH, CLIENT_GROWTH));
    assert!(
        failures.is_empty(),
        "the soak failed:\n{}",
        failures.join("\n")
    );
}
