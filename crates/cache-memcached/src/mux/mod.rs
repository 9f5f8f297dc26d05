//! The client on the hot path: a few multiplexed connections per server, each carrying
//! the requests of every task at once (see [`connection`]), in place of a pool that
//! lends a connection to one request at a time.
//!
//! Requests ([`request`]) are the crate's meta commands (`MetaCommand`), framed and
//! parsed by the crate itself; every command carries an opaque token (`O<n>`) that its
//! answer must echo, so that an answer can never be handed to another request.

mod connection;
mod reader;
pub(crate) mod request;
mod server;

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use memcache::exp::{build_noop, Error, Router};
use tokio::time::Instant;

use crate::router::StableRendezvous;
use connection::{Answers, Expect, Failure, Payload};
use request::Request;
use server::Server;

use crate::transport::Transport;

/// Bytes of a command line besides its key and value: the command, flags, opaque token
/// and line ends.
const COMMAND_ROOM: usize = 48;

/// The instant `timeout` from now. A timeout too long for the clock to add
/// (`Duration::MAX`, a URL's `584542046090y`) is no bound: the deadline is then a
/// century away, where adding it would panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// The deadline of a timeout the clock cannot add: about a hundred years.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Multiplexed connections to every server of a cache.
pub(crate) struct Client {
    names: Vec<String>,
    servers: Vec<Server>,
    /// The next opaque token: unique among the requests in flight on any connection,
    /// since it wraps only after four billion commands.
    tokens: AtomicU32,
}

impl Client {
    /// `connections` per server (at least one), dialled when first used.
    pub(crate) fn new(servers: &[String], connections: usize, transport: &Transport) -> Self {
        Self {
            names: servers.to_vec(),
            servers: servers
                .iter()
                .map(|address| Server::new(address.clone(), connections, transport.clone()))
                .collect(),
            tokens: AtomicU32::new(0),
        }
    }

    fn server_of(&self, key: &[u8]) -> usize {
        StableRendezvous
            .route(key, &self.names)
            .min(self.servers.len() - 1)
    }

    /// `count` consecutive opaque tokens.
    fn tokens(&self, count: usize) -> u32 {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.tokens.fetch_add(count, Ordering::Relaxed)
    }

    /// Runs one request on its key's server, within `timeout` from now (connecting
    /// included).
    ///
    /// # Errors
    ///
    /// `Usage` for a command that cannot be encoded (nothing is sent); `Timeout` when no
    /// answer came in time; `Io` when the connection failed; `Protocol` when the answers
    /// got out of step; the server's refusal (`Server`, `Rejected`) as it answered.
    pub(crate) async fn run<R: Request>(
        &self,
        mut request: R,
        timeout: Duration,
    ) -> Result<R::Output, Error> {
        let deadline = deadline_after(timeout);
        let server = &self.servers[self.server_of(request.key())];
        let first = self.tokens(1);
        // Room for the whole request: encoding it then needs no second allocation.
        let mut payload = Vec::with_capacity(COMMAND_ROOM + request.size());
        request.encode_into(first, &mut payload)?;
        let expect = Expect::Commands { first, count: 1 };
        let answers = server
            .exchange(payload.into(), expect, deadline)
            .await
            .map_err(|failure| failure.error())?;
        let answer = answers
            .into_first()
            .ok_or_else(|| Error::Protocol("no answer to a command".to_owned()))?;
        request.parse(answer?)
    }

    /// Runs a batch: one pipelined request per server holding any of its keys, the
    /// servers at once, all within `timeout` from now. One result per request, in
    /// order; a server that fails fails the requests sent to it.
    ///
    /// # Errors
    ///
    /// `Usage` when a command cannot be encoded, before anything is sent.
    pub(crate) async fn run_many<R: Request>(
        &self,
        requests: impl IntoIterator<Item = R>,
        timeout: Duration,
    ) -> Result<Vec<Result<R::Output, Error>>, Error> {
        let deadline = deadline_after(timeout);
        let mut requests: Vec<R> = requests.into_iter().collect();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.servers.len()];
        for (position, request) in requests.iter().enumerate() {
            groups[self.server_of(request.key())].push(position);
        }
        // Everything encoded before anything is sent: a bad command sends nothing.
        let mut payloads = Vec::new();
        for (server, positions) in groups.iter().enumerate() {
            if positions.is_empty() {
                continue;
            }
            let first = self.tokens(positions.len());
            let mut payload = Payload {
                bytes: Vec::new(),
                ends: Vec::with_capacity(positions.len()),
            };
            for (offset, &position) in (0u32..).zip(positions) {
                requests[position].encode_into(first.wrapping_add(offset), &mut payload.bytes)?;
                payload.ends.push(payload.bytes.len());
            }
            let expect = Expect::Commands {
                first,
                count: positions.len(),
            };
            payloads.push((server, positions, payload, expect));
        }
        let exchanges =
            payloads
                .into_iter()
                .map(|(server, positions, payload, expect)| async move {
                    let answers = self.servers[server]
                        .exchange(payload, expect, deadline)
                        .await;
                    (positions, answers)
                });
        let mut results: Vec<Option<Result<R::Output, Error>>> = std::iter::repeat_with(|| None)
            .take(requests.len())
            .collect();
        for (positions, answers) in futures::future::join_all(exchanges).await {
            fill(&mut results, &requests, positions, answers);
        }
        Ok(results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(Error::Protocol("no answer to a command".into())))
            })
            .collect())
    }

    /// One `mn` to every server at once, each within `timeout`: dials every server, and
    /// finds one that does not answer.
    ///
    /// # Errors
    ///
    /// The first server's failure, as for [`run`](Self::run).
    pub(crate) async fn noop(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = deadline_after(timeout);
        let probes = self.servers.iter().map(|server| async move {
            let mut payload = Vec::new();
            build_noop().encode_into(&mut payload)?;
            server
                .exchange(payload.into(), Expect::Noop, deadline)
                .await
                .map(drop)
                .map_err(|failure| failure.error())
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    }
}

/// Puts each answer of one server's part of a batch at its request's position.
fn fill<R: Request>(
    results: &mut [Option<Result<R::Output, Error>>],
    requests: &[R],
    positions: &[usize],
    answers: Result<Answers, Failure>,
) {
    match answers {
        Ok(answers) => {
            for (&position, answer) in positions.iter().zip(answers.into_vec()) {
                let request = &requests[position];
                results[position] = Some(answer.and_then(|wire| request.parse(wire)));
            }
        }
        Err(failure) => {
            for &position in positions {
                results[position] = Some(Err(failure.error()));
            }
        }
    }
}
