//! A small text protocol connection of our own to one server, for the commands the meta
//! client has no API for: `stats settings` (is it memcached, and its item size) and
//! `lru_crawler metadump` (the keys it holds, so a prefixed `clear` can remove them).
//!
//! Every line must arrive whole within the cache's timeout (however its bytes are
//! spread), `stats settings` must be answered whole within it, and no line may exceed
//! [`MAX_LINE`]: a server that stops answering, drips its answer a byte at a time or
//! sends garbage ends the exchange with an error, never a hang or an unbounded buffer.

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

/// The listing asked for first: the crawler walks the hash table, where an item stays put
/// while other clients read and write. A walk of the LRUs (`all`) misses an item that the
/// LRU maintainer moves from a list not yet walked to one already walked, as it does with
/// fresh items. A server that knows no `hash` (an older release) gets `all`.
const DUMP_BY_HASH: &[u8] = b"lru_crawler metadump hash\r\n";

/// The listing of servers that refuse [`DUMP_BY_HASH`].
const DUMP_BY_LRU: &[u8] = b"lru_crawler metadump all\r\n";

/// What a server answered to `lru_crawler metadump`.
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
    /// [`DUMP_BY_HASH`] until the server refuses it.
    dump: &'static [u8],
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
            Ok(Err(error)) => return Err(dial_error(server, error)),
            Ok(Ok(stream)) => stream,
        };
        Ok(Self {
            reader: BufReader::new(stream),
            server: server.to_owned(),
            context,
            dump: DUMP_BY_HASH,
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

    /// One line without its `\r\n`, which must arrive whole within the timeout.
    async fn line(&mut self) -> Result<Vec<u8>, CacheError> {
        let deadline = crate::mux::deadline_after(self.context.timeout);
        let mut line = Vec::new();
        loop {
            let available = match tokio::time::timeout_at(deadline, self.reader.fill_buf()).await {
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
        let timeout = self.context.timeout;
        match tokio::time::timeout(timeout, self.read_settings()).await {
            Err(_) => Err(self.context.timeout()),
            Ok(answer) => answer,
        }
    }

    /// `stats settings` and its answer, unbounded in time: see [`item_size_max`](Self::item_size_max).
    async fn read_settings(&mut self) -> Result<Option<usize>, CacheError> {
        self.send(b"stats settings\r\n").await?;
        let mut item_size_max = None;
        for _ in 0..MAX_SETTINGS_LINES {
            let line = self.line().await?;
            if line == b"END" {
                return Ok(item_size_max);
            }
            if let Some(reason) = crate::error::connection_refusal(&line) {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("{} refused the connection: {reason}", self.server),
                )));
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
    /// hash` (`all` on a server that refuses it). memcached runs one crawler at a time and
    /// answers `BUSY` meanwhile: asked again until `busy_for` has passed, then
    /// [`CacheError::Timeout`].
    ///
    /// Must be the first command on the connection: memcached refuses a metadump that
    /// follows other pipelined commands.
    pub(crate) async fn metadump(
        &mut self,
        wanted: impl Fn(&[u8]) -> bool,
        busy_for: Duration,
    ) -> Result<Dump, CacheError> {
        let deadline = crate::mux::deadline_after(busy_for);
        let mut pause = Duration::from_millis(5);
        'ask: loop {
            self.send(self.dump).await?;
            let mut keys = Vec::new();
            let mut first = true;
            loop {
                let line = self.line().await?;
                if line == b"END" {
                    return Ok(Dump::Keys(keys));
                }
                if line.starts_with(b"BUSY") {
                    if deadline.saturating_duration_since(tokio::time::Instant::now()) < pause {
                        return Err(self.context.timeout());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                    continue 'ask;
                }
                let Some(fields) = line.strip_prefix(b"key=") else {
                    // Only the first line can be a refusal; a dump cut short is garbage.
                    if first && (is_error(&line) || line.starts_with(b"BADCLASS")) {
                        if self.dump == DUMP_BY_HASH {
                            self.dump = DUMP_BY_LRU;
                            continue 'ask;
                        }
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
                first = false;
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

/// A dial's error, naming the server when the error does not already (with several
/// servers, which one is down); its kind is kept.
fn dial_error(server: &str, error: io::Error) -> CacheError {
    if transport::auth_error(&error).is_some() || error.to_string().contains(server) {
        return io_error(error);
    }
    io_error(io::Error::new(
        error.kind(),
        transport::dial_message(server, &error),
    ))
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
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each command line it reads, in turn, with the next of
    /// `answers`, and hands back the commands it read.
    async fn scripted(
        answers: &'static [&'static str],
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            let mut commands = Vec::new();
            for answer in answers {
                let mut command = String::new();
                socket.read_line(&mut command).await.unwrap();
                commands.push(command.trim_end().to_owned());
                socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
            }
            commands
        });
        (address, server)
    }

    async fn admin(address: &str) -> Admin {
        let context = Context {
            operation: "clear",
            timeout: Duration::from_secs(5),
            value: None,
        };
        Admin::connect(&Transport::Tcp, address, context)
            .await
            .unwrap()
    }

    fn listed(dump: Dump) -> Vec<String> {
        match dump {
            Dump::Keys(keys) => keys
                .into_iter()
                .map(|key| String::from_utf8(key).unwrap())
                .collect(),
            Dump::Refused(answer) => panic!("refused: {answer}"),
        }
    }

    #[tokio::test]
    async fn the_hash_table_is_listed_and_each_key_decoded() {
        let (address, server) = scripted(&[
            "key=a%20b exp=-1 la=1 cas=1 fetch=no cls=1 size=61\nkey=skip exp=-1 la=1 cas=2 fetch=no cls=1 size=61\nEND\r\n",
        ])
        .await;
        let dump = admin(&address)
            .await
            .metadump(|key| key != b"skip", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(listed(dump), ["a b"]);
        assert_eq!(server.await.unwrap(), ["lru_crawler metadump hash"]);
    }

    #[tokio::test]
    async fn a_server_that_knows_no_hash_walk_lists_its_lrus_from_then_on() {
        let (address, server) = scripted(&[
            "BADCLASS invalid class id\r\n",
            "key=k exp=-1 la=1 cas=1 fetch=no cls=1 size=61\nEND\r\n",
            "END\r\n",
        ])
        .await;
        let mut admin = admin(&address).await;
        let first = admin
            .metadump(|_| true, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(listed(first), ["k"]);
        let second = admin
            .metadump(|_| true, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(listed(second).is_empty());
        assert_eq!(
            server.await.unwrap(),
            [
                "lru_crawler metadump hash",
                "lru_crawler metadump all",
                "lru_crawler metadump all"
            ]
        );
    }

    #[tokio::test]
    async fn a_server_that_refuses_both_listings_is_reported_as_refusing() {
        let (address, server) = scripted(&[
            "CLIENT_ERROR lru crawler disabled\r\n",
            "CLIENT_ERROR lru crawler disabled\r\n",
        ])
        .await;
        let dump = admin(&address)
            .await
            .metadump(|_| true, Duration::from_secs(5))
            .await
            .unwrap();
        match dump {
            Dump::Refused(answer) => assert_eq!(answer, "CLIENT_ERROR lru crawler disabled"),
            Dump::Keys(keys) => panic!("listed {keys:?}"),
        }
        assert_eq!(server.await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_after_listed_keys_is_garbage() {
        let (address, _server) = scripted(&[
            "key=k exp=-1 la=1 cas=1 fetch=no cls=1 size=61\nBADCLASS invalid class id\r\n",
        ])
        .await;
        let error = admin(&address)
            .await
            .metadump(|_| false, Duration::from_secs(5))
            .await
            .err()
            .expect("a listing cut short by a refusal");
        assert!(matches!(error, CacheError::Backend { .. }), "{error:?}");
    }

    /// A server that answers the first command it reads with `answer`, one byte every
    /// 20 ms: each read brings something, the answer never ends in time.
    async fn dripping(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            let mut command = String::new();
            socket.read_line(&mut command).await.unwrap();
            for byte in answer.as_bytes() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if socket.get_mut().write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        });
        address
    }

    #[tokio::test]
    async fn an_answer_dripped_a_byte_at_a_time_times_out_on_time() {
        let timeout = Duration::from_millis(300);
        let context = |operation| Context {
            operation,
            timeout,
            value: None,
        };
        // Settings: every line is short, the whole answer must come within the timeout.
        let settings =
            "STAT maxbytes 67108864\r\nSTAT maxconns 1024\r\nSTAT item_size_max 1048576\r\nEND\r\n";
        // A listing: one line of a key never ends in time.
        let listing = "key=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa exp=-1 la=1 cas=1 fetch=no cls=1 size=61\nEND\r\n";
        for (operation, answer) in [("connect", settings), ("clear", listing)] {
            let address = dripping(answer).await;
            let mut admin = Admin::connect(&Transport::Tcp, &address, context(operation))
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let error = if operation == "connect" {
                admin.item_size_max().await.err()
            } else {
                admin.metadump(|_| true, Duration::from_secs(5)).await.err()
            }
            .expect("an answer that never ends in time");
            let took = started.elapsed();
            assert!(
                matches!(error, CacheError::Timeout { .. }),
                "{operation}: {error:?}"
            );
            assert!(took < timeout * 3, "{operation}: took {took:?}");
        }
    }

    #[test]
    fn refusals_are_recognised() {
        assert!(is_error(b"ERROR"));
        assert!(is_error(b"CLIENT_ERROR lru crawler disabled"));
        assert!(is_error(b"SERVER_ERROR out of memory"));
        assert!(!is_error(b"ERRORS"));
        assert!(!is_error(b"-ERR unknown command 'stats'"));
    }
}
