//! Whether a run fits in what the servers have free: a server that is full evicts
//! entries to store new ones, and those may be an application's. Before anything is
//! written, each server is asked how much memory it holds and may hold, and a run that
//! would take more than half of what is free is refused, unless the user allows it.
//!
//! A server that evicts nothing (Redis without `maxmemory` or with the `noeviction`
//! policy, memcached started with `-M`) refuses writes instead, which loses nothing.
//! A server that cannot be asked (a right missing, a proxy) is not held to it.

use std::{future::Future, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{backend::Backend, BenchError};

/// Bytes counted for an entry besides its key and value: the server's own record of it
/// and the rounding of its allocation (memcached's slab classes grow by 1.25).
const ENTRY_OVERHEAD: u64 = 80;

/// Most lines a `stats` answer may have before the server is given up on.
const MAX_STAT_LINES: usize = 1000;

/// The memory of one server, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Memory {
    pub(crate) used: u64,
    /// The most it holds before it evicts.
    pub(crate) limit: u64,
}

impl Memory {
    fn free(self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// What a run writes, in bytes: every key with its value, on every side that writes
/// keys of its own.
pub(crate) fn written(keys: usize, key_len: usize, value_size: usize, sides: usize) -> u64 {
    let entry = (key_len as u64)
        .saturating_add(value_size as u64)
        .saturating_mul(5)
        / 4
        + ENTRY_OVERHEAD;
    entry
        .saturating_mul(keys as u64)
        .saturating_mul(sides as u64)
}

/// Refuses a run that would write more than half the free memory of a server it
/// writes to (its share of the keys, on several servers).
///
/// # Errors
///
/// [`BenchError::Settings`] naming the server, what the run writes there and what it has
/// free.
pub(crate) async fn check(
    backend: &Backend,
    bytes: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    let servers = ask(backend, timeout).await;
    if servers.is_empty() {
        return Ok(());
    }
    let share = bytes / servers.len() as u64;
    for (server, memory) in &servers {
        let Some(memory) = memory else { continue };
        if share > memory.free() / 2 {
            return Err(BenchError::Settings(format!(
                "this run writes about {} to {server}, which has {} free of {}: to make room \
                 it would evict entries that are not this run's. Lower --keys or \
                 --value-size, or pass --allow-eviction where every entry may go",
                mib(share),
                mib(memory.free()),
                mib(memory.limit)
            )));
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Each server the run writes to, with its memory when it evicts and could be asked.
async fn ask(backend: &Backend, timeout: Duration) -> Vec<(String, Option<Memory>)> {
    match backend {
        Backend::Memcached { servers, .. } => {
            let mut found = Vec::new();
            for server in servers {
                found.push((server.clone(), within(timeout, memcached(server)).await));
            }
            found
        }
        Backend::Redis { node, .. } => {
            vec![(node.addr().to_string(), within(timeout, redis(node)).await)]
        }
        Backend::RedisCluster { seeds } => {
            let mut found = Vec::new();
            for seed in seeds {
                found.push((seed.addr().to_string(), within(timeout, redis(seed)).await));
            }
            found
        }
        Backend::Memory { .. } | Backend::AdapterOnly { .. } => Vec::new(),
    }
}

/// What `asking` found, if it found it within `timeout`.
async fn within(timeout: Duration, asking: impl Future<Output = Option<Memory>>) -> Option<Memory> {
    tokio::time::timeout(timeout, asking).await.ok().flatten()
}

/// `INFO memory`: `maxmemory` and `used_memory`; `None` without a limit or under
/// `noeviction`.
async fn redis(node: &redis::ConnectionInfo) -> Option<Memory> {
    let mut connection = redis::Client::open(node.clone())
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await
        .ok()?;
    redis_memory(&info)
}

fn redis_memory(info: &str) -> Option<Memory> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("maxmemory_policy") == Some("noeviction") {
        return None;
    }
    let limit = field("maxmemory")?
        .parse()
        .ok()
        .filter(|limit| *limit > 0)?;
    let used = field("used_memory")?.parse().ok()?;
    Some(Memory { used, limit })
}

/// `stats settings` (`evictions`) and `stats` (`limit_maxbytes`, `bytes`).
async fn memcached(server: &str) -> Option<Memory> {
    let mut stream = BufReader::new(TcpStream::connect(server).await.ok()?);
    let settings = stats(&mut stream, b"stats settings\r\n").await?;
    if memcached_stat(&settings, "evictions") == Some("off") {
        return None;
    }
    let stats = stats(&mut stream, b"stats\r\n").await?;
    Some(Memory {
        used: memcached_stat(&stats, "bytes")?.parse().ok()?,
        limit: memcached_stat(&stats, "limit_maxbytes")?.parse().ok()?,
    })
}

/// The `STAT` lines answering `command`, up to `END`.
async fn stats(stream: &mut BufReader<TcpStream>, command: &[u8]) -> Option<Vec<String>> {
    stream.get_mut().write_all(command).await.ok()?;
    let mut lines = Vec::new();
    for _ in 0..MAX_STAT_LINES {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line == "END" {
            return Some(lines);
        }
        lines.push(line.to_owned());
    }
    None
}

fn memcached_stat<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| {
        line.strip_prefix("STAT ")?
            .strip_prefix(name)?
            .strip_prefix(' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_evicts_only_with_a_limit_and_a_policy_that_evicts() {
        let info = |policy: &str, limit: u64| {
            format!(
                "# Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nmaxmemory:{limit}\r\n\
                 maxmemory_human:1K\r\nmaxmemory_policy:{policy}\r\n"
            )
        };
        assert_eq!(
            redis_memory(&info("allkeys-lru", 5000)),
            Some(Memory {
                used: 1000,
                limit: 5000
            })
        );
        assert_eq!(redis_memory(&info("noeviction", 5000)), None);
        assert_eq!(redis_memory(&info("allkeys-lru", 0)), None);
    }

    #[test]
    fn memcached_stats_are_read_by_whole_name() {
        let lines: Vec<String> = [
            "STAT bytes_read 7",
            "STAT bytes 42",
            "STAT limit_maxbytes 67108864",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(memcached_stat(&lines, "bytes"), Some("42"));
        assert_eq!(memcached_stat(&lines, "limit_maxbytes"), Some("67108864"));
        assert_eq!(memcached_stat(&lines, "evictions"), None);
    }

    #[test]
    fn what_a_run_writes_counts_every_side_and_the_overhead() {
        assert_eq!(written(1000, 20, 1000, 1), 1000 * (1275 + ENTRY_OVERHEAD));
        assert_eq!(written(1000, 20, 1000, 2), 2 * written(1000, 20, 1000, 1));
        assert_eq!(written(usize::MAX, 1, usize::MAX, 2), u64::MAX);
    }
}
