//! One multiplexed connection: callers hand encoded requests to a writer task, which
//! writes whatever is queued back to back, one write per batch; a reader task reads the
//! answers in order and hands each request its own.
//!
//! The writer registers each request with the reader *before* its bytes go out, so the
//! reader always knows what the next answer on the wire belongs to.

use std::{
    io,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use memcache::exp::{Error, MetaCommandResult, ReturnCode};
use tokio::{
    io::{AsyncWriteExt, BufReader, WriteHalf},
    sync::{mpsc, oneshot},
    task::AbortHandle,
};

use super::reader;
use crate::transport::{self, CertificateRefused, Stream};

/// Bytes the writer gathers into one write before it stops draining the queue: enough
/// for hundreds of small requests, small enough not to hold a large buffer for long.
const MAX_WRITE_BATCH: usize = 128 * 1024;

/// Capacity of the reader's buffer: one read takes in the answers of many requests.
const READ_BUFFER: usize = 64 * 1024;

/// A write buffer that grew past this (a large value) is given back after its write.
const KEEP_WRITE_BUFFER: usize = 1024 * 1024;

/// Why a connection stopped, or why a request got no answer on it. Handed to every
/// request the connection still owed an answer, each turned into its own error.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// A request passed its deadline.
    Timeout,
    /// The socket failed, or the server closed it.
    Io(io::ErrorKind, String),
    /// An answer that cannot be paired with its request: the connection is out of step.
    Protocol(String),
    /// A certificate refused on either side of a TLS handshake: not worth a retry.
    Refused(String),
}

impl Failure {
    pub(crate) fn io(error: &io::Error) -> Self {
        // With mutual TLS, a server that refuses the client's certificate says so in an
        // alert read after the handshake, on the connection's first read.
        if let Some(refusal) = transport::refusal(error) {
            return Failure::Refused(refusal);
        }
        Failure::Io(error.kind(), error.to_string())
    }

    fn closed() -> Self {
        Failure::Io(
            io::ErrorKind::ConnectionAborted,
            "the connection to memcached was closed".to_owned(),
        )
    }

    /// The error of a request that got no answer. (A timeout's key is not kept: the
    /// cache's error names the operation, never the key.)
    pub(crate) fn error(&self) -> Error {
        match self {
            Failure::Timeout => Error::Timeout { key: Vec::new() },
            Failure::Io(kind, message) => Error::Io(io::Error::new(*kind, message.clone())),
            Failure::Protocol(message) => Error::Protocol(message.clone()),
            Failure::Refused(message) => Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                CertificateRefused(message.clone()),
            )),
        }
    }
}

/// What the answers to one request look like.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// `count` meta commands whose opaque tokens run from `first` up (wrapping).
    Commands { first: u32, count: usize },
    /// One `mn`, answered by `MN`.
    Noop,
}

/// What the cache reads of a command's reply: its return code, the opaque token it
/// echoed (read as the number the request sent; `None` when absent or not a number) and
/// its data block. The crate's [`MetaCommandResult`] has a field for every flag
/// of the protocol (near 200 bytes); read into this where the reply is parsed, what is
/// handed from the reader to the caller, and moved at every step on the way, is a quarter
/// of that.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) rc: ReturnCode,
    pub(crate) opaque: Option<u32>,
    pub(crate) value: Option<Vec<u8>>,
}

impl From<MetaCommandResult> for Reply {
    fn from(result: MetaCommandResult) -> Self {
        Self {
            rc: result.rc,
            opaque: result
                .opaque
                .as_deref()
                .and_then(|token| std::str::from_utf8(token).ok())
                .and_then(|token| token.parse().ok()),
            value: result.value,
        }
    }
}

/// The answer to one command: the server's reply, or its refusal of that command
/// (`SERVER_ERROR`, `CLIENT_ERROR`).
pub(crate) type Answer = Result<Reply, Error>;

/// The answers to one request, in the order of its commands: a request of one command
/// (every call but a batch) gets its answer without a vector around it.
#[derive(Debug)]
pub(crate) enum Answers {
    One(Answer),
    Many(Vec<Answer>),
}

impl Answers {
    /// The first answer, if any.
    pub(crate) fn into_first(self) -> Option<Answer> {
        match self {
            Answers::One(answer) => Some(answer),
            Answers::Many(answers) => answers.into_iter().next(),
        }
    }

    /// Every answer, in order.
    pub(crate) fn into_vec(self) -> Vec<Answer> {
        match self {
            Answers::One(answer) => vec![answer],
            Answers::Many(answers) => answers,
        }
    }
}

/// A request waiting for its answers, in the reader's queue.
pub(crate) struct Exchange {
    pub(crate) expect: Expect,
    pub(crate) reply: oneshot::Sender<Answers>,
}

/// A request on its way to the writer.
struct Message {
    payload: Payload,
    exchange: Exchange,
}

/// The bytes of one or more requests sent as one, and where each request ends in them
/// (empty for one request: it ends at the end).
pub(crate) struct Payload {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<usize>,
}

impl From<Vec<u8>> for Payload {
    /// One request.
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            ends: Vec::new(),
        }
    }
}

impl Payload {
    /// Where each request ends, `at` bytes into a write; the last ends at the end, so
    /// that writes cut at these ends cover every byte.
    fn ends_from(&self, at: usize) -> impl Iterator<Item = usize> + '_ {
        let last = (self.ends.last() != Some(&self.bytes.len())).then_some(self.bytes.len());
        self.ends
            .iter()
            .copied()
            .chain(last)
            .map(move |end| at + end)
    }
}

/// What the caller side and both tasks share.
#[derive(Default)]
pub(crate) struct Shared {
    failure: OnceLock<Failure>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    /// Marks the connection failed (the first reason stays) and stops both tasks, which
    /// drops every request still queued: each caller then reads the reason here.
    pub(crate) fn fail(&self, failure: Failure) {
        let _ = self.failure.set(failure);
        self.stop();
    }

    fn stop(&self) {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.iter() {
            task.abort();
        }
    }

    fn reason(&self) -> Failure {
        self.failure.get().cloned().unwrap_or_else(Failure::closed)
    }
}

/// A connection to one server that carries any number of requests at once.
pub(crate) struct Connection {
    messages: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
}

impl Connection {
    /// Starts the writer and reader tasks on `stream`; `record_limit`, for TLS, bounds
    /// the bytes of one write of several requests (`Transport::record_limit`).
    pub(crate) fn start(stream: Stream, record_limit: Option<usize>) -> Self {
        // The dial set TCP_NODELAY: requests are written as soon as they are queued.
        let (read, written) = tokio::io::split(stream);
        let (messages, queued) = mpsc::unbounded_channel();
        let (exchanges, expected) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(reader::run(
            BufReader::with_capacity(READ_BUFFER, read),
            expected,
            Arc::clone(&shared),
        ));
        let writer = tokio::spawn(write(
            written,
            queued,
            exchanges,
            Arc::clone(&shared),
            record_limit,
        ));
        shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([reader.abort_handle(), writer.abort_handle()]);
        // Either task may have failed before its handle was stored: stop the other too.
        if shared.failure.get().is_some() {
            shared.stop();
        }
        Self { messages, shared }
    }

    /// Whether new requests may be sent here: not failed, and its tasks still running
    /// (they end with the runtime that spawned them).
    pub(crate) fn is_usable(&self) -> bool {
        self.shared.failure.get().is_none() && !self.messages.is_closed()
    }

    /// Fails the connection: every request on it gets `failure`.
    pub(crate) fn fail(&self, failure: Failure) {
        self.shared.fail(failure);
    }

    /// Queues `payload` for the writer; its answers come on the receiver returned.
    pub(crate) fn send(
        &self,
        payload: Payload,
        expect: Expect,
    ) -> Result<oneshot::Receiver<Answers>, Failure> {
        if let Some(failure) = self.shared.failure.get() {
            return Err(failure.clone());
        }
        let (reply, answers) = oneshot::channel();
        let exchange = Exchange { expect, reply };
        if self.messages.send(Message { payload, exchange }).is_err() {
            return Err(self.failed());
        }
        Ok(answers)
    }

    /// The reason a request was dropped unanswered; the connection is failed with it,
    /// so that it is not used again.
    pub(crate) fn failed(&self) -> Failure {
        let failure = self.shared.reason();
        self.shared.fail(failure.clone());
        failure
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A reader waiting for a frozen server's answer would otherwise wait forever.
        self.shared.stop();
    }
}

/// The writer task: takes every request queued, registers each with the reader, writes
/// them in one go (in writes of at most `record_limit` bytes, each ending with a whole
/// request, when it is set).
async fn write(
    mut socket: WriteHalf<Stream>,
    mut queued: mpsc::UnboundedReceiver<Message>,
    exchanges: mpsc::UnboundedSender<Exchange>,
    shared: Arc<Shared>,
    record_limit: Option<usize>,
) {
    let mut batch = Vec::with_capacity(16 * 1024);
    // Where each request of `batch` ends, when writes are bounded.
    let mut ends = Vec::new();
    let failure = loop {
        let Some(first) = queued.recv().await else {
            // Every handle dropped: the connection closes with nothing in flight.
            return;
        };
        let mut next = Some(first);
        let mut single = None;
        batch.clear();
        ends.clear();
        while let Some(message) = next.take() {
            if exchanges.send(message.exchange).is_err() {
                // The reader stopped, having failed the connection.
                return;
            }
            if batch.is_empty() && single.is_none() {
                single = Some(message.payload);
            } else {
                for payload in single.take().iter().chain([&message.payload]) {
                    if record_limit.is_some() {
                        ends.extend(payload.ends_from(batch.len()));
                    }
                    batch.extend_from_slice(&payload.bytes);
                }
            }
            let gathered = batch.len() + single.as_ref().map_or(0, |alone| alone.bytes.len());
            if gathered < MAX_WRITE_BATCH {
                next = queued.try_recv().ok();
            }
        }
        // A request alone is written from its own buffer, without a copy. The flush
        // matters under TLS: a session whose socket would block takes the last bytes
        // and keeps them until the next write or a flush, and the next write may only
        // come after this request's answer.
        let written = async {
            match (&single, record_limit) {
                (Some(alone), None) => socket.write_all(&alone.bytes).await?,
                (None, None) => socket.write_all(&batch).await?,
                (Some(alone), Some(limit)) => {
                    let ends: Vec<usize> = alone.ends_from(0).collect();
                    for part in bounded_writes(&alone.bytes, &ends, limit) {
                        socket.write_all(part).await?;
                    }
                }
                (None, Some(limit)) => {
                    for part in bounded_writes(&batch, &ends, limit) {
                        socket.write_all(part).await?;
                    }
                }
            }
            socket.flush().await
        };
        if let Err(error) = written.await {
            break Failure::io(&error);
        }
        if batch.capacity() > KEEP_WRITE_BUFFER {
            batch = Vec::with_capacity(16 * 1024);
        }
    };
    shared.fail(failure);
}

/// `batch` cut at request ends (`ends`, increasing) into writes of at most `limit`
/// bytes; a request longer than `limit` is a write of its own.
fn bounded_writes<'b>(
    batch: &'b [u8],
    ends: &'b [usize],
    limit: usize,
) -> impl Iterator<Item = &'b [u8]> + 'b {
    let mut start = 0;
    let mut at = 0;
    std::iter::from_fn(move || {
        let first = *ends.get(at)?;
        let mut end = first;
        at += 1;
        while let Some(&next) = ends.get(at) {
            if next - start > limit || first - start > limit {
                break;
            }
            end = next;
            at += 1;
        }
        let part = &batch[start..end];
        start = end;
        Some(part)
    })
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{ready, Context, Poll},
        time::Duration,
    };

    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

    use super::*;

    /// A stream that, like a TLS session whose socket would block, takes every write
    /// and passes the bytes on only when flushed.
    struct HeldUntilFlushed {
        inner: DuplexStream,
        held: Vec<u8>,
    }

    impl AsyncRead for HeldUntilFlushed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for HeldUntilFlushed {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.held.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = &mut *self;
            while !this.held.is_empty() {
                let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
                this.held.drain(..written);
            }
            Pin::new(&mut this.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            ready!(self.as_mut().poll_flush(cx))?;
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Answers every command line it reads with `HD` and the line's opaque token.
    async fn answer_every_line(server: DuplexStream) {
        let (read, mut write) = tokio::io::split(server);
        let mut lines = tokio::io::BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let token = line.split(' ').find(|token| token.starts_with('O'));
            let answer = format!("HD {}\r\n", token.unwrap_or_default());
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn bytes_a_stream_holds_back_are_flushed_out() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(answer_every_line(server));
        let connection = Connection::start(
            Box::new(HeldUntilFlushed {
                inner: client,
                held: Vec::new(),
            }),
            None,
        );
        for token in 7..10 {
            let payload = format!("md key{token} O{token}\r\n").into_bytes();
            let expect = Expect::Commands {
                first: token,
                count: 1,
            };
            let answers = tokio::time::timeout(
                Duration::from_secs(5),
                connection.send(payload.into(), expect).unwrap(),
            )
            .await
            .expect("the request never reached the server: it was not flushed")
            .unwrap();
            let answer = answers.into_first().unwrap().unwrap();
            assert_eq!(answer.opaque, Some(token));
        }
    }

    /// Writes bounded for TLS end with whole requests, hold at most the limit unless
    /// one request is longer, and cover the batch in order.
    #[test]
    fn bounded_writes_end_with_whole_requests() {
        let sizes = [10, 20, 16_389, 3, 3, 16_384, 1];
        let mut batch = Vec::new();
        let mut ends = Vec::new();
        for (fill, size) in (b'a'..).zip(sizes) {
            batch.extend(std::iter::repeat_n(fill, size));
            ends.push(batch.len());
        }
        let writes: Vec<usize> = super::bounded_writes(&batch, &ends, 16_384)
            .map(<[u8]>::len)
            .collect();
        assert_eq!(writes, [30, 16_389, 6, 16_384, 1]);
        let small: Vec<usize> = (1..=700).map(|i| i * 29).collect();
        let batch = vec![b'x'; 700 * 29];
        let writes: Vec<usize> = super::bounded_writes(&batch, &small, 16_384)
            .map(<[u8]>::len)
            .collect();
        assert_eq!(writes.iter().sum::<usize>(), batch.len());
        assert!(
            writes.iter().all(|len| *len <= 16_384 && len % 29 == 0),
            "{writes:?}"
        );
    }
}
