//! A chaos proxy for fault tests: a TCP proxy on `127.0.0.1` between a client and its server,
//! driven by the test through a [`ChaosProxy`] handle.
//!
//! The test points its client at [`ChaosProxy::address`] instead of the server, then injects
//! one [`Fault`] at a time (latency per direction, a connection dropped mid-response, half a
//! reply and a stall, a blackhole, refused connections, garbled replies, open connections
//! severed for good) and lifts it with [`ChaosProxy::heal`]. The proxy never changes a byte: it delays, holds, cuts or closes.
//! Healing delivers what was held, in order, as TCP does once a partition ends, so a client
//! that gave up on a request still receives its late reply and must not match it to another.
//!
//! Everything runs on this crate's background runtime, so a test on any executor (even one
//! that blocks its own thread in a synchronous clean-up) cannot starve the proxy. Every task
//! stops when the handle is dropped.
//!
//! [`probe`] holds the measurements the backends' chaos tests share: time to error, time to
//! heal, and a concurrent load that checks every reply against the key it was for.

mod link;
mod listen;
pub mod probe;

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};

use crate::runtime::on_background;

/// One fault the proxy applies to every connection, present and future, until the next
/// [`ChaosProxy::inject`] or [`ChaosProxy::heal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Every chunk is forwarded this long after it arrived, per direction: `to_server` for
    /// requests, `to_client` for replies. Order is kept.
    Latency {
        /// Added to every request chunk.
        to_server: Duration,
        /// Added to every reply chunk.
        to_client: Duration,
    },
    /// On each connection, the next reply chunk is cut: its first half is delivered, then
    /// the connection is closed (`FIN`) on both sides. New connections meet the same fate.
    DropMidResponse,
    /// On each connection, the first half of the next reply chunk is delivered and the rest
    /// held, with every later reply, until the fault is lifted. Requests still reach the
    /// server.
    HalfReplyThenStall,
    /// Connections are accepted, existing and new, but nothing is forwarded either way
    /// until the fault is lifted.
    Blackhole,
    /// The listener is closed (new connections are refused) and every open connection is
    /// reset (`RST`), as when the server goes down. Healing opens the same port again.
    Refuse,
    /// Every reply chunk is replaced by [`GARBLED`], a line no Redis or memcached reply
    /// starts with, as from a broken server or middlebox; the connections stay open and
    /// requests still reach the server. A client that keeps reading such a connection
    /// after what it could not parse would pair later replies with the wrong requests.
    GarbledReplies,
    /// Every connection open when the fault is injected goes dead for good: nothing is
    /// forwarded either way, now or after the fault is lifted, and no close or reset
    /// reaches either side; connections opened later work. As when a NAT, firewall or load
    /// balancer forgets an established flow, or the server's host vanished: the client's
    /// socket stays open and answers nothing, and only a new connection gets through.
    /// A connection opened under the fault is severed by the next injection of it, once
    /// this one was lifted.
    SeverOpenConnections,
}

/// What [`Fault::GarbledReplies`] sends instead of each reply chunk: a NUL byte, then text
/// and a line end.
pub const GARBLED: &[u8] = b"\0garbled by the chaos proxy\r\n";

impl Fault {
    /// A short name, for reports and tables.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::DropMidResponse => "drop mid-response",
            Self::HalfReplyThenStall => "half reply, then stall",
            Self::Blackhole => "blackhole",
            Self::Refuse => "refuse connections",
            Self::GarbledReplies => "garbled replies",
            Self::SeverOpenConnections => "open connections severed",
        }
    }

    /// The delay this fault adds to chunks going `to_server` (requests) or not (replies).
    pub(crate) fn latency(active: Option<Self>, to_server: bool) -> Duration {
        match active {
            Some(Self::Latency {
                to_server: requests,
                to_client: replies,
            }) => {
                if to_server {
                    requests
                } else {
                    replies
                }
            }
            _ => Duration::ZERO,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latency {
                to_server,
                to_client,
            } => write!(
                f,
                "latency ({to_server:?} to the server, {to_client:?} to the client)"
            ),
            other => f.write_str(other.name()),
        }
    }
}

/// What the proxy's tasks count, read through the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) open: AtomicUsize,
}

/// Counts one connection as open while it lives.
pub(crate) struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP proxy on a free `127.0.0.1` port in front of `upstream`, with faults injected on
/// demand. Dropping it stops the listener and closes every connection through it.
///
/// ```no_run
/// # async fn demo(server_port: u16) -> std::io::Result<()> {
/// use std::time::Duration;
/// use cache_testserver::chaos::{ChaosProxy, Fault};
///
/// let proxy = ChaosProxy::start(([127, 0, 0, 1], server_port).into()).await?;
/// let url = format!("redis://{}", proxy.address()); // the client goes through the proxy
/// proxy.inject(Fault::Latency {
///     to_server: Duration::ZERO,
///     to_client: Duration::from_secs(1),
/// });
/// // ... calls through `url` now time out
/// proxy.heal();
/// # Ok(())
/// # }
/// ```
pub struct ChaosProxy {
    address: SocketAddr,
    upstream: SocketAddr,
    faults: watch::Sender<Option<Fault>>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl ChaosProxy {
    /// Starts a proxy on a free `127.0.0.1` port that forwards every connection to
    /// `upstream`, with no fault. Works from any async runtime.
    ///
    /// # Errors
    ///
    /// When no port can be bound on `127.0.0.1`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let counters = Arc::new(Counters::default());
        let (faults, watching) = watch::channel(None);
        let loop_counters = Arc::clone(&counters);
        let (address, accept) = on_background(async move {
            let listener = listen::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let address = listener.local_addr()?;
            let accept = tokio::spawn(listen::accept_loop(
                listener,
                upstream,
                watching,
                loop_counters,
            ));
            Ok::<_, io::Error>((address, accept))
        })
        .await?;
        Ok(Self {
            address,
            upstream,
            faults,
            counters,
            accept,
        })
    }

    /// Where clients connect: `127.0.0.1` and the proxy's port (kept across [`Fault::Refuse`]).
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server the proxy forwards to.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Applies `fault` to every connection from now on, replacing the previous fault.
    pub fn inject(&self, fault: Fault) {
        self.faults.send_replace(Some(fault));
    }

    /// Lifts the current fault: held bytes are delivered in order, latency ends, a closed
    /// listener opens again on the same port.
    pub fn heal(&self) {
        self.faults.send_replace(None);
    }

    /// The fault in force, if any.
    #[must_use]
    pub fn fault(&self) -> Option<Fault> {
        *self.faults.borrow()
    }

    /// Connections accepted since the start.
    #[must_use]
    pub fn accepted_connections(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Client connections open through the proxy right now.
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.counters.open.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("address", &self.address)
            .field("upstream", &self.upstream)
            .field("fault", &self.fault())
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // The connections watch the sender, dropped with `self`; the listener goes now.
        self.accept.abort();
    }
}
