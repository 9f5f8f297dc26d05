//! One proxied connection: a client socket, its own upstream socket, and a pump per
//! direction that applies the fault in force to every chunk it forwards.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::timeout,
};

use super::{Counters, Fault, OpenConnection, GARBLED};

/// Bound on connecting to the upstream server: it is local, so this only stops a link from
/// lingering when the server is gone.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(2);

/// Bound on one write to a peer that stopped reading, so that no task outlives its use.
const WRITE_LIMIT: Duration = Duration::from_secs(10);

/// Bytes held per direction before the pump stops reading (the sender then waits on TCP's
/// own flow control), so a held link cannot grow without bound.
const MAX_HELD: usize = 1 << 20;

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;

/// Why a pump stopped, which decides how the link closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The peer closed or failed, a reply was cut, or the proxy was dropped: close.
    Close,
    /// [`Fault::Refuse`]: reset both sockets.
    Reset,
    /// The server closed a link [`Fault::SeverOpenConnections`] severed: the client's
    /// socket stays open, and silent, until the client closes it.
    Severed,
}

/// Proxies `client` to a new connection to `upstream` until either side ends, a fault
/// ends the link, or the proxy is dropped.
pub(super) async fn run(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: watch::Receiver<Option<Fault>>,
    counters: Arc<Counters>,
) {
    let _open = OpenConnection::new(counters);
    // A connection opened while the open ones are severed is not one of them (until the
    // fault is lifted and injected again).
    let spared = *faults.borrow() == Some(Fault::SeverOpenConnections);
    let Ok(Ok(mut server)) = timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)).await else {
        return;
    };
    // Small request/reply exchanges: no batching delay of the proxy's own.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let requests = pump(client_read, server_write, true, spared, faults.clone());
        let replies = pump(server_read, client_write, false, spared, faults.clone());
        // The first direction to end ends the link: cache clients never half-close.
        tokio::select! {
            end = requests => end,
            end = replies => end,
        }
    };
    match end {
        End::Reset => {
            reset(&client);
            reset(&server);
        }
        End::Severed => {
            drop(server);
            hold(&mut client, faults).await;
        }
        End::Close => {}
    }
}

/// Reads and drops what `client` sends until it closes or the proxy is dropped.
async fn hold(client: &mut TcpStream, mut faults: watch::Receiver<Option<Fault>>) {
    let mut buffer = vec![0_u8; CHUNK];
    loop {
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            read = client.read(&mut buffer) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}

/// Makes the socket's close send `RST` instead of `FIN`.
fn reset(stream: &TcpStream) {
    // A zero linger never blocks the close (the deprecation warns about a positive one),
    // and `set_zero_linger` needs a newer Tokio than the workspace requires.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// A chunk read from one side, with the time it arrived (latency counts from there).
struct Chunk {
    arrived: Instant,
    bytes: Vec<u8>,
}

/// One direction of a link: what was read and not yet forwarded, and whether a stall holds it.
struct Direction {
    to_server: bool,
    queue: VecDeque<Chunk>,
    held: usize,
    /// A reply was cut by [`Fault::HalfReplyThenStall`]: hold until the fault is lifted.
    stalled: bool,
    /// [`Fault::SeverOpenConnections`] met this link: nothing goes through, for good.
    severed: bool,
    reading: bool,
}

impl Direction {
    fn push(&mut self, bytes: &[u8]) {
        if self.severed {
            // Read and dropped, as by a network that lost the flow: the sender's writes
            // go out, and nothing arrives.
            return;
        }
        self.held += bytes.len();
        self.queue.push_back(Chunk {
            arrived: Instant::now(),
            bytes: bytes.to_vec(),
        });
    }

    /// When the head chunk may go, or `None` while held (or nothing waits).
    fn due(&self, active: Option<Fault>) -> Option<Instant> {
        let holding = self.stalled || active == Some(Fault::Blackhole);
        if holding {
            return None;
        }
        let head = self.queue.front()?;
        Some(head.arrived + Fault::latency(active, self.to_server))
    }
}

/// Forwards `from` to `to`, applying the fault in force, until `from` ends, a write fails,
/// a fault ends the link or the fault channel closes.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    to_server: bool,
    mut spared: bool,
    mut faults: watch::Receiver<Option<Fault>>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut direction = Direction {
        to_server,
        queue: VecDeque::new(),
        held: 0,
        stalled: false,
        severed: false,
        reading: true,
    };
    let mut buffer = vec![0_u8; CHUNK];
    loop {
        let active = *faults.borrow_and_update();
        if active == Some(Fault::Refuse) {
            return End::Reset;
        }
        if active != Some(Fault::HalfReplyThenStall) {
            direction.stalled = false;
        }
        if active != Some(Fault::SeverOpenConnections) {
            // The next injection severs this link too.
            spared = false;
        } else if !spared && !direction.severed {
            direction.severed = true;
            direction.queue.clear();
            direction.held = 0;
        }
        if direction.severed && !direction.reading {
            // The client closed its severed connection: nothing more to do. The server
            // closed its side: the client must not learn it (`End::Severed`).
            return if to_server { End::Close } else { End::Severed };
        }
        let due = direction.due(active);
        if !direction.reading && due.is_none() {
            // The sender is gone and nothing more can be delivered now.
            return End::Close;
        }
        let can_read = direction.reading && direction.held < MAX_HELD;
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return End::Close;
                }
            }
            read = from.read(&mut buffer), if can_read => match read {
                Ok(0) | Err(_) => direction.reading = false,
                Ok(read) => direction.push(&buffer[..read]),
            },
            () = sleep_until(due), if due.is_some() => {
                if !forward(&mut direction, &mut to, active).await {
                    return End::Close;
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Writes the head chunk, or the part of it the fault lets through. Returns `false` when
/// the link must end (a reply was cut on purpose, or the write failed).
async fn forward<W: AsyncWrite + Unpin>(
    direction: &mut Direction,
    to: &mut W,
    active: Option<Fault>,
) -> bool {
    let Some(mut chunk) = direction.queue.pop_front() else {
        return true;
    };
    direction.held -= chunk.bytes.len();
    let replies = !direction.to_server;
    match active {
        Some(Fault::DropMidResponse) if replies => {
            let half = chunk.bytes.len() / 2;
            let _ = write(to, &chunk.bytes[..half]).await;
            false
        }
        Some(Fault::HalfReplyThenStall) if replies => {
            let half = chunk.bytes.len() / 2;
            let sent = write(to, &chunk.bytes[..half]).await;
            let rest = chunk.bytes.split_off(half);
            direction.held += rest.len();
            direction.queue.push_front(Chunk {
                arrived: chunk.arrived,
                bytes: rest,
            });
            direction.stalled = true;
            sent
        }
        Some(Fault::GarbledReplies) if replies => write(to, GARBLED).await,
        _ => write(to, &chunk.bytes).await,
    }
}

/// Writes everything, within [`WRITE_LIMIT`]; `false` when the peer is gone or stuck.
async fn write<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    matches!(timeout(WRITE_LIMIT, to.write_all(bytes)).await, Ok(Ok(())))
}
