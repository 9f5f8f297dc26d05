//! A small text protocol connection of our own to one server, for the commands the meta
//! client has no API for: `stats settings` (is it memcached, and its item size) and
//! `lru_crawler metadump all` (the keys it holds, so a prefixed `clear` can remove them).
//!
//! Every read waits at most the cache's timeout, and no line may exceed [`MAX_LINE`]:
//! a server that stops answering or sends garbage ends the exchange with an error, never
//! a hang or an unbounded buffer.

use std::{io, time::Duration};

use cache_api::CacheError;
use percent_encoding::percent_decode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{
    error::{unexpected, Context, BACKEND},
    transport::{self, Stream, Transport},
};

/// Longest line accepted: a metadump line holds a key of at most 250 bytes, percent-encoded
/// (750), and a few numeric fields.
const MAX_LINE: usize = 4096;

/// Most lines `stats settings` may answer (memcached 1.6 sends about 80).
const MAX_SETTINGS_LINES: usize = 1000;

/// Deletions sent in one pipelined write before their answers are read.
const DELETE_BATCH: usize = 256;

/// What a server answered to `lru_crawler metadump all`.
pub(crate) enum Dump {
    /// The keys that matched, percent-decoded.
    Keys(Vec<Vec<u8>>),
    /// The server does not list keys (`-o no_lru_crawler`, a memcached before 1.4.31, a
    /// proxy): its answer, for the log.
    Refused(String),
}

/// One connection to one server.
pub(crate) struct Admin {
    reader: BufReader<Stream>,
    server: String,
    context: Context,
}

impl Admin {
    /// Connects to `server` (`host:port`, or a socket path) over `transport` within the
    /// context's timeout, a TLS handshake included.
    pub(crate) async fn connect(
        transport: &Transport,
        server: &str,
        context: Context,
    ) -> Result<Self, CacheError> {
        let stream = match tokio::time::timeout(context.timeout, transport.dial(server)).await {
            Err(_) => return Err(context.timeout_in("connect")),
            Ok(Err(error)) => return Err(io_error(error)),
            Ok(Ok(stream)) => stream,
        };
        Ok(Self {
            reader: BufReader::new(stream),
            server: server.to_owned(),
            context,
        })
    }

    /// Writes `bytes` and flushes them: a TLS session whose socket would block keeps the
    /// last bytes it took until a flush.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), CacheError> {
        let socket = self.reader.get_mut();
        let written = async {
            socket.write_all(bytes).await?;
            socket.flush().await
        };
        match tokio::time::timeout(self.context.timeout, written).await {
            Err(_) => Err(self.context.timeout()),
            Ok(Err(error)) => Err(io_error(error)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// One line without its `\r\n`; each read waits at most the timeout.
    async fn line(&mut self) -> Result<Vec<u8>, CacheError> {
        let mut line = Vec::new();
        loop {
            let available =
                match tokio::time::timeout(self.context.timeout, self.reader.fill_buf()).await {
                    Err(_) => return Err(self.context.timeout()),
                    Ok(Err(error)) => return Err(io_error(error)),
                    Ok(Ok(available)) => available,
                };
            if available.is_empty() {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} closed the connection", self.server),
                )));
            }
            let (taken, done) = match available.iter().position(|&byte| byte == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            line.extend_from_slice(&available[..taken]);
            self.reader.consume(taken);
            if line.len() > MAX_LINE {
                return Err(unexpected(format!(
                    "{} sent a line longer than {MAX_LINE} bytes",
                    self.server
                )));
            }
            if done {
                while line
                    .last()
                    .is_some_and(|&byte| byte == b'\n' || byte == b'\r')
                {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    /// The server's item size (`item_size_max` of `stats settings`), `None` when it does
    /// not say (a proxy that refuses `stats`).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when the answer is not memcached's (another service on that
    /// port, such as Redis); `Unreachable` or `Timeout` as for any call.
    pub(crate) async fn item_size_max(&mut self) -> Result<Option<usize>, CacheError> {
        self.send(b"stats settings\r\n").await?;
        let mut item_size_max = None;
        for _ in 0..MAX_SETTINGS_LINES {
            let line = self.line().await?;
            if line == b"END" {
                return Ok(item_size_max);
            }
            if is_error(&line) {
                return Ok(None);
            }
            let Some(stat) = line.strip_prefix(b"STAT ") else {
                return Err(self.not_memcached());
            };
            if let Some(value) = stat.strip_prefix(b"item_size_max ") {
                item_size_max = std::str::from_utf8(value)
                    .ok()
                    .and_then(|value| value.trim().parse().ok());
            }
        }
        Err(unexpected(format!(
            "{} sent more than {MAX_SETTINGS_LINES} lines of settings",
            self.server
        )))
    }

    fn not_memcached(&self) -> CacheError {
        CacheError::config(format!(
            "{} does not answer as a memcached server",
            self.server
        ))
    }

    /// The keys the server holds for which `wanted` is true, from `lru_crawler metadump
    /// all`. memcached runs one crawler at a time and answers `BUSY` meanwhile: asked
    /// again until `busy_for` has passed, then [`CacheError::Timeout`].
    ///
    /// Must be the first command on the connection: memcached refuses a metadump that
    /// follows other pipelined commands.
    pub(crate) async fn metadump(
        &mut self,
        wanted: impl Fn(&[u8]) -> bool,
        busy_for: Duration,
    ) -> Result<Dump, CacheError> {
        let deadline = tokio::time::Instant::now() + busy_for;
        let mut pause = Duration::from_millis(5);
        'ask: loop {
            self.send(b"lru_crawler metadump all\r\n").await?;
            let mut keys = Vec::new();
            loop {
                let line = self.line().await?;
                if line == b"END" {
                    return Ok(Dump::Keys(keys));
                }
                if line.starts_with(b"BUSY") {
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(self.context.timeout());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                    continue 'ask;
                }
                let Some(fields) = line.strip_prefix(b"key=") else {
                    // Only the first line can be a refusal; a dump cut short is garbage.
                    if keys.is_empty() && is_error(&line) {
                        return Ok(Dump::Refused(String::from_utf8_lossy(&line).into_owned()));
                    }
                    return Err(unexpected(format!(
                        "{} answered a metadump with {:?}",
                        self.server,
                        String::from_utf8_lossy(&line)
                    )));
                };
                let encoded = fields
                    .split(|&byte| byte == b' ')
                    .next()
                    .unwrap_or_default();
                let key: Vec<u8> = percent_decode(encoded).collect();
                if wanted(&key) {
                    keys.push(key);
                }
            }
        }
    }

    /// `flush_all`: the server drops every item (the meta protocol has no flush).
    pub(crate) async fn flush_all(&mut self) -> Result<(), CacheError> {
        self.send(b"flush_all\r\n").await?;
        let line = self.line().await?;
        if line == b"OK" {
            return Ok(());
        }
        Err(unexpected(format!(
            "{} answered flush_all with {:?}",
            self.server,
            String::from_utf8_lossy(&line)
        )))
    }

    /// Deletes `keys` (made of bytes the text protocol takes as they are), in pipelined
    /// batches of quiet `md`, each closed by an `mn`.
    pub(crate) async fn delete(&mut self, keys: &[Vec<u8>]) -> Result<(), CacheError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let mut request = Vec::with_capacity(batch.iter().map(|key| key.len() + 8).sum());
            for key in batch {
                request.extend_from_slice(b"md ");
                request.extend_from_slice(key);
                request.extend_from_slice(b" q\r\n");
            }
            request.extend_from_slice(b"mn\r\n");
            self.send(&request).await?;
            // Quiet mode leaves out `HD`; memcached 1.6 still sends `NF`. At most one
            // line per key, then `MN`.
            let mut closed = false;
            for _ in 0..=batch.len() {
                let line = self.line().await?;
                match line.as_slice() {
                    b"MN" => {
                        closed = true;
                        break;
                    }
                    b"HD" | b"NF" => {}
                    other => {
                        return Err(unexpected(format!(
                            "{} answered a delete with {:?}",
                            self.server,
                            String::from_utf8_lossy(other)
                        )))
                    }
                }
            }
            if !closed {
                return Err(unexpected(format!(
                    "{} sent more answers than deletes",
                    self.server
                )));
            }
        }
        Ok(())
    }
}

/// `ERROR`, `CLIENT_ERROR ...` or `SERVER_ERROR ...`: memcached (or a proxy) refusing a
/// command.
fn is_error(line: &[u8]) -> bool {
    line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR")
}

fn io_error(error: io::Error) -> CacheError {
    if let Some(auth) = transport::auth_error(&error) {
        return auth;
    }
    CacheError::Unreachable {
        backend: BACKEND,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_recognised() {
        assert!(is_error(b"ERROR"));
        assert!(is_error(b"CLIENT_ERROR lru crawler disabled"));
        assert!(is_error(b"SERVER_ERROR out of memory"));
        assert!(!is_error(b"ERRORS"));
        assert!(!is_error(b"-ERR unknown command 'stats'"));
    }
}
