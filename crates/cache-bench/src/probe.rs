//! Readings taken while a benchmark runs, to see leaks: the process's resident memory
//! and the number of connections the server has open.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::{oneshot, Mutex},
};

use crate::backend::Backend;

/// One reading.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since measuring began.
    pub at_s: f64,
    /// Resident memory of this process, in KiB.
    pub rss_kib: u64,
    /// Connections the server counts, this probe's own included; `None` for the
    /// in-memory backend and a redis cluster.
    pub server_connections: Option<u64>,
}

/// Resident memory of this process, from `/proc/self/status` (Linux only).
///
/// # Errors
///
/// When the file cannot be read or has no `VmRSS` line.
pub(crate) fn rss_kib() -> std::io::Result<u64> {
    rss_kib_of("self")
}

/// The resident memory of process `pid` (`self` for this one), in KiB.
pub(crate) fn rss_kib_of(pid: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS line in /proc/{pid}/status")))
}

/// A connection of its own to the server, that asks how many clients it has.
#[derive(Clone)]
pub(crate) enum ConnectionCounter {
    /// No server (the in-memory backend).
    None,
    /// `INFO clients`, `connected_clients`.
    Redis(redis::aio::MultiplexedConnection),
    /// `stats`, `curr_connections` of the first server.
    Memcached(Arc<Mutex<BufReader<TcpStream>>>),
}

impl ConnectionCounter {
    /// Opens the counting connection for the server of `backend`: one Redis server, or
    /// the first memcached server; none otherwise.
    pub(crate) async fn connect(backend: &Backend) -> Result<Self, String> {
        if let Backend::Redis { node, .. } = backend {
            let client = redis::Client::open(node.clone()).map_err(|err| err.to_string())?;
            let connection = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|err| err.to_string())?;
            return Ok(ConnectionCounter::Redis(connection));
        }
        if let Some(server) = backend.servers().first() {
            let stream = TcpStream::connect(server.as_str())
                .await
                .map_err(|err| format!("{server}: {err}"))?;
            return Ok(ConnectionCounter::Memcached(Arc::new(Mutex::new(
                BufReader::new(stream),
            ))));
        }
        Ok(ConnectionCounter::None)
    }

    /// The server's connection count now; `None` without a server or when it cannot tell.
    pub(crate) async fn count(&self) -> Option<u64> {
        match self {
            ConnectionCounter::None => None,
            ConnectionCounter::Redis(connection) => {
                let info: String = redis::cmd("INFO")
                    .arg("clients")
                    .query_async(&mut connection.clone())
                    .await
                    .ok()?;
                stat(&info, "connected_clients:")
            }
            ConnectionCounter::Memcached(stream) => {
                let mut stream = stream.lock().await;
                stream.get_mut().write_all(b"stats\r\n").await.ok()?;
                let mut found = None;
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.ok()? == 0 {
                        return None;
                    }
                    if line.trim_end() == "END" {
                        return found;
                    }
                    found = found.or_else(|| stat(&line, "STAT curr_connections "));
                }
            }
        }
    }
}

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
}

/// A sampler running beside the benchmark; [`Sampler::finish`] takes the last reading.
pub(crate) struct Sampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

/// Takes a reading now and then every `every`, until finished.
pub(crate) fn spawn_sampler(
    every: Duration,
    counter: ConnectionCounter,
    started: Instant,
) -> Sampler {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push(reading(&counter, started).await),
                _ = &mut stopped => {
                    samples.push(reading(&counter, started).await);
                    return samples;
                }
            }
        }
    });
    Sampler { stop, task }
}

async fn reading(counter: &ConnectionCounter, started: Instant) -> Sample {
    Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_kib: rss_kib().unwrap_or_default(),
        server_connections: counter.count().await,
    }
}

impl Sampler {
    /// Takes the last reading and returns them all.
    pub(crate) async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory() {
        assert!(rss_kib().unwrap() > 0);
    }

    #[test]
    fn stats_are_read_by_name() {
        let info = "# Clients\r\nconnected_clients:7\r\nblocked_clients:0\r\n";
        assert_eq!(stat(info, "connected_clients:"), Some(7));
        assert_eq!(
            stat("STAT curr_connections 12\r\n", "STAT curr_connections "),
            Some(12)
        );
        assert_eq!(stat("STAT pid 1\r\n", "STAT curr_connections "), None);
    }
}
