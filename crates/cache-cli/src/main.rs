//! `cachectl`: runs the cache contract against any backend URL, and reads or writes
//! single entries by hand.

#![forbid(unsafe_code)]

mod bench;
mod check;
mod output;
mod report;

use std::{ffi::OsString, process::ExitCode, sync::Arc, time::Duration};

use cache_api::{Bytes, Cache, CacheError};
use clap::{Parser, Subcommand};
use output::{say, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Exit code for a failed check, a miss or a refused operation.
const EXIT_FAILED: u8 = 1;
/// Exit code when the backend cannot be used at all (bad URL, unreachable).
const EXIT_UNUSABLE: u8 = 2;

/// A duration option, in the grammar of cache URLs' durations: `250ms`, `2s`, `1m 30s`
/// or plain seconds such as `0.5`.
fn duration_arg(value: &str) -> Result<Duration, String> {
    cache_url::parse_duration(value)
        .ok_or_else(|| "expected a duration such as 250ms, 2s or 0.5".to_owned())
}

#[derive(Parser)]
#[command(
    name = "cachectl",
    version,
    about = "Check a cache backend against the contract, or use it by hand",
    after_help = schemes_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Connection {
    /// Connect and response timeout of network backends, e.g. 500ms or 2s.
    #[arg(long, value_parser = crate::duration_arg)]
    timeout: Option<Duration>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the contract's checks and print one line per check.
    ///
    /// Against a server it did not start, every check works under a key prefix of its
    /// own and removes exactly the keys it wrote: no other data is touched.
    #[command(after_help = schemes_help())]
    Check(check::CheckArgs),
    /// Load-test a backend: throughput and latency percentiles of a workload, optionally
    /// beside the same workload sent straight through the backend's client.
    ///
    /// Measure with a release build (`cargo install --locked --path crates/cache-cli`, or
    /// `cargo run --release`): a debug build runs several times slower, and says so.
    #[command(after_help = schemes_help())]
    Bench(bench::BenchArgs),
    /// Print the raw bytes stored under KEY (exit 1 on a miss).
    #[command(after_help = schemes_help())]
    Get {
        /// Backend URL: memory://, redis://host:port, redis+cluster://h1:p1,h2:p2, memcache://host:port[,host:port...].
        url: String,
        /// The key.
        key: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Store VALUE (or standard input, when VALUE is left out) under KEY.
    #[command(after_help = schemes_help())]
    Set {
        /// Backend URL (schemes below).
        url: String,
        /// The key.
        key: String,
        /// The value; read from standard input when left out, so binary and large
        /// values can be piped in.
        value: Option<String>,
        /// Time to live, e.g. 10s, 5m, 31days; none by default. A TTL of 0 stores
        /// nothing and removes what KEY held, as the cache contract's `set` does.
        #[arg(long, value_parser = crate::duration_arg, allow_negative_numbers = true)]
        ttl: Option<Duration>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete KEY; prints whether a live entry was removed.
    #[command(after_help = schemes_help())]
    Del {
        /// Backend URL (schemes below).
        url: String,
        /// The key.
        key: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// The URL schemes this build of cachectl understands, for the end of every help text.
fn schemes_help() -> String {
    format!(
        "URL schemes: {} (each one's parameters: the README of cache-rs, \"Picking a backend \
         per deployment\" and \"Connectivity\")",
        cache_url::SCHEMES.join(", ")
    )
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    output::hide_passwords_of(&args);
    // clap's own printing would quote a misplaced URL as written, password included.
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return output::command_line_error(&err),
    };
    let threads = match &cli.command {
        Command::Bench(args) => args.threads(),
        _ => None,
    };
    let runtime = bench::runtime(threads);
    let code = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => {
            warn(&format!("cachectl: cannot start the async runtime: {err}"));
            ExitCode::from(EXIT_UNUSABLE)
        }
    };
    // A report that did not reach standard output is no success, whatever it said.
    if output::lost() && code == ExitCode::SUCCESS {
        return ExitCode::from(EXIT_FAILED);
    }
    code
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Check(args) => return check::run(args).await,
        Command::Bench(args) => return bench::run(args).await,
        Command::Get {
            url,
            key,
            connection,
        } => get(&url, &key, &connection).await,
        Command::Set {
            url,
            key,
            value,
            ttl,
            connection,
        } => set(&url, &key, value, ttl, &connection).await,
        Command::Del {
            url,
            key,
            connection,
        } => del(&url, &key, &connection).await,
    };
    result.unwrap_or_else(|err| report(&err))
}

fn options(connection: &Connection) -> cache_url::Options {
    let options = cache_url::Options::default();
    match connection.timeout {
        Some(timeout) => options.timeout(timeout),
        None => options,
    }
}

/// Prints an error with its chain of causes, and picks the exit code.
fn report(err: &CacheError) -> ExitCode {
    let mut message = format!("cachectl: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        // CacheError's message already ends with its source's; print only what is new.
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(&format!("\n  caused by: {cause_text}"));
        }
        source = cause.source();
    }
    warn(&message);
    match err {
        CacheError::Config { .. } | CacheError::Unreachable { .. } | CacheError::Auth { .. } => {
            ExitCode::from(EXIT_UNUSABLE)
        }
        _ => ExitCode::from(EXIT_FAILED),
    }
}

/// Connects to `url`; a backend that cannot be connected to cannot be used at all,
/// whatever the error (a timeout included): exit code 2, the error said.
async fn open(url: &str, connection: &Connection) -> Result<Arc<dyn Cache>, ExitCode> {
    let cache = cache_url::connect_with(url, &options(connection))
        .await
        .map_err(|err| {
            let _ = report(&err);
            ExitCode::from(EXIT_UNUSABLE)
        })?;
    if in_this_process_only(url) {
        warn(
            "cachectl: note: a memory:// cache lives only as long as this command: what \
             one command stores, the next one does not see (use a server's URL to keep it)",
        );
    }
    Ok(cache)
}

/// Whether `url` names the in-memory backend, whose entries die with the process.
fn in_this_process_only(url: &str) -> bool {
    url.trim()
        .get(.."memory://".len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("memory://"))
}

async fn get(url: &str, key: &str, connection: &Connection) -> Result<ExitCode, CacheError> {
    let cache = match open(url, connection).await {
        Ok(cache) => cache,
        Err(code) => return Ok(code),
    };
    match cache.get(key).await? {
        Some(value) => {
            let mut stdout = tokio::io::stdout();
            let written = async {
                stdout.write_all(&value).await?;
                stdout.flush().await
            };
            output::written(written.await);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            warn(&format!("cachectl: miss: no entry under {key:?}"));
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

async fn set(
    url: &str,
    key: &str,
    value: Option<String>,
    ttl: Option<Duration>,
    connection: &Connection,
) -> Result<ExitCode, CacheError> {
    // The cache first: a bad URL or a server that cannot be reached is said at once,
    // not once all of standard input is read (which may never end).
    let cache = match open(url, connection).await {
        Ok(cache) => cache,
        Err(code) => return Ok(code),
    };
    let value = match value {
        Some(value) => Bytes::from(value),
        None => {
            let limit = cache.limits().max_value_size;
            // One byte past the largest value the backend takes tells a value too
            // large, without holding the rest of it.
            let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            let mut buffer = Vec::new();
            let read = tokio::io::stdin().take(most).read_to_end(&mut buffer).await;
            if let Err(err) = read {
                warn(&format!(
                    "cachectl: cannot read the value from standard input: {err}"
                ));
                return Ok(ExitCode::from(EXIT_FAILED));
            }
            if buffer.len() > limit {
                // As the backend's own `ValueTooLarge` says it, with the size known
                // only as a lower bound.
                warn(&format!(
                    "cachectl: value of more than {limit} bytes on standard input exceeds \
                     the limit of {limit} bytes"
                ));
                return Ok(ExitCode::from(EXIT_FAILED));
            }
            Bytes::from(buffer)
        }
    };
    cache.set(key, value, ttl).await?;
    Ok(ExitCode::SUCCESS)
}

async fn del(url: &str, key: &str, connection: &Connection) -> Result<ExitCode, CacheError> {
    let cache = match open(url, connection).await {
        Ok(cache) => cache,
        Err(code) => return Ok(code),
    };
    let removed = cache.delete(key).await?;
    say(if removed { "deleted" } else { "not found" });
    Ok(ExitCode::SUCCESS)
}
