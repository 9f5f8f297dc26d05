//! `cachectl bench`: the command line of `cache-bench`, a load generator for any backend
//! URL, like `redis-benchmark` or memtier, that can run the identical workload straight
//! through the client under the backend (`--baseline raw`) and print what the adapter
//! costs.

use std::{
    io,
    pin::pin,
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
    task::Poll,
    thread,
    time::Duration,
};

use cache_bench::{footprint::Side, BenchError, Progress, Settings, Workload};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::report::Header;
use crate::{say, warn, Connection, EXIT_FAILED, EXIT_UNUSABLE};
pub(crate) use cache_bench::runtime;

/// What progress lines, warnings and the text report start with.
const LABEL: &str = "cachectl bench";

/// Exit code of a run stopped by Ctrl-C, as shells report a SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

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
    /// Number of distinct keys (at most 10,000,000); written before the run for get,
    /// mix and get-many.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    keys: u32,
    /// Tasks issuing operations at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// How long to measure (per side with --baseline), e.g. 10s or 500ms; 10s when
    /// neither this nor --ops is given. At most 30 days, as are --warmup and
    /// --sample-every.
    #[arg(long, value_parser = crate::duration_arg)]
    duration: Option<Duration>,
    /// Stop after this many operations (per side with --baseline).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,
    /// Unmeasured run before measuring (per side), e.g. 1s or 0s.
    #[arg(long, default_value = "1s", value_parser = crate::duration_arg)]
    warmup: Duration,
    /// Also run the identical workload straight through the backend's client, alternating
    /// rounds with the adapter, and print the ratio adapter/raw (redis://,
    /// redis+cluster://, memcache:// and memory:// only).
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Rounds per side: measuring alternates adapter and raw this many times each (in
    /// ABBA order), splitting --duration or --ops between them.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// redis: send every operation through a pool of at most N connections (the
    /// backend's pooled mode; the raw baseline is then a deadpool-redis pool). Not for
    /// a cluster. Wins over the URL's mode and pool_size, which otherwise set the
    /// connection model of both sides.
    #[arg(long, conflicts_with = "connections", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pooled: Option<u32>,
    /// redis: spread operations over N multiplexed connections (default: the URL's
    /// pool_size, else 1). Not for a cluster.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    connections: Option<u32>,
    /// Every so often during the run, record the process's resident memory and, for
    /// network backends other than a redis cluster, the server's connection count,
    /// e.g. 10s.
    #[arg(long, value_parser = crate::duration_arg)]
    sample_every: Option<Duration>,
    /// memory:// only: instead of a load run, store N entries of --value-size bytes and
    /// report the resident memory each one costs (with --baseline raw, against
    /// quick_cache, the table under the backend).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    footprint: Option<u64>,
    /// Which side a footprint child process measures (set by --footprint itself).
    #[arg(long, hide = true, value_enum)]
    footprint_side: Option<FootprintSide>,
    /// Threads of the async runtime that runs the load and the client: 1 runs
    /// everything on one thread (as redis-benchmark does); by default one per core.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    threads: Option<u32>,
    /// Run even when the keys written would take more than half the memory a server
    /// has free, so that it may evict entries that are not the run's to make room:
    /// only on a server whose entries may all go.
    #[arg(long)]
    allow_eviction: bool,
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

    fn settings(&self) -> Settings {
        let mut settings = Settings::new(&self.url);
        settings.workload = self.workload;
        settings.batch = self.batch as usize;
        settings.value_size = self.value_size;
        settings.keys = self.keys as usize;
        settings.concurrency = self.concurrency as usize;
        settings.duration = self.duration;
        settings.ops = self.ops;
        settings.warmup = self.warmup;
        settings.raw_baseline = self.baseline == Some(Baseline::Raw);
        settings.rounds = self.rounds;
        settings.pooled = self.pooled.map(|max_size| max_size as usize);
        settings.connections = self.connections.map(|count| count as usize);
        settings.sample_every = self.sample_every;
        settings.timeout = self.connection.timeout;
        settings.allow_eviction = self.allow_eviction;
        settings.progress_label = Some(LABEL.to_owned());
        // A program reads --json: no progress line then, even on a terminal.
        settings.quiet = self.json;
        settings
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FootprintSide {
    Adapter,
    Raw,
}

impl From<FootprintSide> for Side {
    fn from(side: FootprintSide) -> Self {
        match side {
            FootprintSide::Adapter => Side::Adapter,
            FootprintSide::Raw => Side::Raw,
        }
    }
}

/// A `--json` document: the header every document of cachectl starts with, then the
/// report's own fields.
#[derive(Serialize)]
struct Document<'a, R> {
    #[serde(flatten)]
    header: Header,
    #[serde(flatten)]
    report: &'a R,
}

pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    match run_checked(args).await {
        Ok(code) => code,
        Err(BenchError::Interrupted) => {
            warn(&format!(
                "{LABEL}: interrupted before any key was written: nothing to remove"
            ));
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(err) => {
            warn(&format!("{LABEL}: {err}"));
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

async fn run_checked(args: BenchArgs) -> Result<ExitCode, BenchError> {
    let header = Header::now("bench");
    let settings = args.settings();
    if let (Some(entries), Some(side)) = (args.footprint, args.footprint_side) {
        // A footprint child process: measures memory, not speed, and its parent has warned.
        let measured =
            cache_bench::footprint::measure_side(&settings, side.into(), entries).await?;
        say(&serde_json::to_string(&measured).expect("a footprint serializes"));
        return Ok(ExitCode::SUCCESS);
    }
    warn_if_debug_build();
    if let Some(entries) = args.footprint {
        return footprint(&args, settings, entries, header).await;
    }
    if args.footprint_side.is_some() {
        return Err(BenchError::Settings(
            "--footprint-side needs --footprint".to_owned(),
        ));
    }
    let progress = Arc::new(Progress::default());
    let watcher = InterruptWatcher::start(Arc::clone(&progress))
        .map_err(|err| BenchError::Run(format!("cannot watch for Ctrl-C: {err}")))?;
    let report = cache_bench::run(&settings, progress).await;
    drop(watcher);
    let report = report?;
    if args.json {
        let document = Document {
            header,
            report: &report,
        };
        say(&serde_json::to_string_pretty(&document).expect("a report serializes"));
    } else {
        say(&report.to_string());
    }
    Ok(if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Measures the in-memory footprint, each side in a child process of this very binary.
async fn footprint(
    args: &BenchArgs,
    settings: Settings,
    entries: u64,
    header: Header,
) -> Result<ExitCode, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|err| BenchError::Run(format!("cannot find the cachectl binary: {err}")))?;
    let (url, value_size) = (args.url.clone(), args.value_size.to_string());
    let child = move |side: Side| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["bench", &url, "--footprint", &entries.to_string()])
            .args(["--value-size", &value_size, "--footprint-side", side.name()]);
        command
    };
    // The children are waited for: off the runtime's own threads.
    let report = tokio::task::spawn_blocking(move || {
        cache_bench::footprint::footprint(&settings, entries, child)
    })
    .await
    .map_err(|err| BenchError::Run(format!("the footprint run failed: {err}")))??;
    if args.json {
        let document = Document {
            header,
            report: &report,
        };
        say(&serde_json::to_string_pretty(&document).expect("a report serializes"));
    } else {
        say(&report.to_string());
    }
    if !report.complete() {
        warn(&format!(
            "{LABEL}: some entries were evicted: raise max_capacity_bytes in the URL"
        ));
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Warns on standard error when this cachectl was built without optimisations: its figures
/// would be several times lower than a release build's, with nothing else to tell.
fn warn_if_debug_build() {
    if cfg!(debug_assertions) {
        warn(&format!(
            "{LABEL}: warning: this is a debug build (no optimisations), figures run \
             2-3x lower; use a release build: cargo install --locked --path crates/cache-cli, or \
             cargo run --release -p cache-cli -- bench ..."
        ));
    }
}

/// On the first Ctrl-C, stops the run so that the keys written can still be removed;
/// on the second, exits at once. Until dropped.
///
/// It watches from a thread of its own, with a runtime of its own: the run's tasks may
/// keep every worker of the main runtime busy without a pause (an in-memory backend
/// never makes them wait), and a watcher among them would see the signal only once the
/// run is over.
struct InterruptWatcher {
    /// Tells the thread that the run is over.
    finished: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl InterruptWatcher {
    /// Starts watching, and returns once Ctrl-C is listened for: a Ctrl-C that came
    /// before would end the process as if nothing were listening, without removing a key.
    fn start(progress: Arc<Progress>) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (finished, mut run_over) = oneshot::channel::<()>();
        let (caught, catching) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = thread::Builder::new()
            .name("cachectl-interrupt".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut first = pin!(tokio::signal::ctrl_c());
                    // The first poll installs the handler.
                    let interrupted = match futures::poll!(first.as_mut()) {
                        Poll::Ready(Err(err)) => {
                            let _ = caught.send(Err(err));
                            return;
                        }
                        Poll::Ready(Ok(())) => true,
                        Poll::Pending => false,
                    };
                    let _ = caught.send(Ok(()));
                    if !interrupted {
                        tokio::select! {
                            _ = &mut run_over => return,
                            signal = first => if signal.is_err() { return },
                        }
                    }
                    // Listening for the second before anything else, to miss none.
                    let mut second = pin!(tokio::signal::ctrl_c());
                    if let Poll::Ready(Ok(())) = futures::poll!(second.as_mut()) {
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    }
                    progress.stop.store(true, Ordering::Relaxed);
                    warn(&format!(
                        "{LABEL}: interrupted: stopping and removing the keys written \
                         (Ctrl-C again to quit at once)"
                    ));
                    tokio::select! {
                        _ = run_over => {}
                        signal = second => if signal.is_ok() {
                            std::process::exit(i32::from(EXIT_INTERRUPTED));
                        },
                    }
                });
            })?;
        let watcher = Self {
            finished: Some(finished),
            thread: Some(thread),
        };
        match catching.recv() {
            Ok(Ok(())) => Ok(watcher),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(io::Error::other("the thread watching for Ctrl-C ended")),
        }
    }
}

impl Drop for InterruptWatcher {
    fn drop(&mut self) {
        if let Some(finished) = self.finished.take() {
            let _ = finished.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
