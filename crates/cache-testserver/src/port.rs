//! Loopback ports: picking a free one and waiting until something listens on one.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::runtime::on_background;

/// Pause between two connection attempts while polling a port.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Returns a TCP port of `127.0.0.1` that is free right now.
///
/// The port is found by binding `127.0.0.1:0` and reading the port the system chose; the listener
/// is closed before returning, so another process may take the port before the caller binds it.
/// [`crate::LocalServer::start`] retries with a new port when that happens.
///
/// # Panics
///
/// Panics when no socket can be bound on `127.0.0.1` (no loopback interface).
#[must_use]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|err| panic!("cannot bind a socket on 127.0.0.1 to pick a port: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the port of a socket bound on 127.0.0.1: {err}"))
        .port()
}

/// Waits until a TCP connection to `127.0.0.1:port` succeeds, polling until `deadline` has passed.
///
/// Works from any async runtime: the polling runs on this crate's own background runtime.
///
/// # Errors
///
/// Returns a message naming the port and the deadline when nothing accepted a connection in time.
pub async fn wait_for_port(port: u16, deadline: Duration) -> Result<(), String> {
    on_background(async move {
        let start = Instant::now();
        loop {
            if accepts_connections(port).await {
                return Ok(());
            }
            if start.elapsed() >= deadline {
                return Err(format!(
                    "nothing accepted connections on 127.0.0.1:{port} within {deadline:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await
}

/// True when a TCP connection to `127.0.0.1:port` succeeds within a short time.
pub(crate) async fn accepts_connections(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port));
    matches!(
        tokio::time::timeout(Duration::from_millis(500), connect).await,
        Ok(Ok(_))
    )
}

/// Blocks until `127.0.0.1:port` refuses connections, or `deadline` has passed.
///
/// Returns whether the port was seen closed. Blocking, because it serves `Drop` and other
/// synchronous paths where no runtime may be at hand.
pub(crate) fn wait_until_closed_blocking(port: u16, deadline: Duration) -> bool {
    let start = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
