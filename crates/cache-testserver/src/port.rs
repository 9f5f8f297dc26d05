//! Loopback ports: picking a free one and waiting until something listens on one.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A port of `127.0.0.1` that answers every connection with `answer` once the client has
/// sent something, then closes it: a stand-in for a server that speaks another protocol
/// than the client (a TLS port answering a plain-text client with an alert, a Redis port
/// answering a TLS hello with `-ERR`). It listens until the process ends.
///
/// Works from any async runtime: the listener runs on this crate's own background runtime.
///
/// # Panics
///
/// Panics when no socket can be bound on `127.0.0.1`.
pub async fn answering_port(answer: &'static [u8]) -> u16 {
    on_background(async move {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|err| panic!("cannot bind a socket on 127.0.0.1: {err}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("cannot read the port of a bound socket: {err}"))
            .port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut first = [0u8; 1024];
                    if matches!(stream.read(&mut first).await, Ok(read) if read > 0) {
                        let _ = stream.write_all(answer).await;
                    }
                });
            }
        });
        port
    })
    .await
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

/// Waits until the server on `127.0.0.1:port` answers `request` with a reply starting with
/// `reply_prefix`, trying again until `deadline` has passed.
///
/// A connection alone proves nothing for a container: Docker's port proxy accepts it before
/// the server inside listens, then closes it.
pub(crate) async fn wait_for_reply(
    port: u16,
    request: &'static str,
    reply_prefix: &'static str,
    deadline: Duration,
) -> Result<(), String> {
    on_background(async move {
        let start = Instant::now();
        loop {
            let last = match exchange(port, request.as_bytes(), reply_prefix.len()).await {
                Ok(reply) if reply.starts_with(reply_prefix.as_bytes()) => return Ok(()),
                Ok(reply) => format!("the reply was {:?}", String::from_utf8_lossy(&reply)),
                Err(err) => err,
            };
            if start.elapsed() >= deadline {
                return Err(format!(
                    "127.0.0.1:{port} did not answer {:?} with {reply_prefix:?} within \
                     {deadline:?} ({last})",
                    request.trim_end()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// Sends `request` on a fresh connection to `127.0.0.1:port` and returns the first bytes of
/// the reply: at least `wanted` of them unless the server closes the connection first, each
/// step bounded by a short timeout.
async fn exchange(port: u16, request: &[u8], wanted: usize) -> Result<Vec<u8>, String> {
    let step = Duration::from_secs(1);
    let connect = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port));
    let mut stream = match tokio::time::timeout(step, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(format!("connecting failed: {err}")),
        Err(_) => return Err("connecting timed out".to_owned()),
    };
    match tokio::time::timeout(step, stream.write_all(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(format!("sending failed: {err}")),
        Err(_) => return Err("sending timed out".to_owned()),
    }
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 256];
    while reply.len() < wanted.max(1) {
        match tokio::time::timeout(step, stream.read(&mut buffer)).await {
            Ok(Ok(0)) if reply.is_empty() => return Err("closed without a reply".to_owned()),
            Ok(Ok(0)) => break,
            Ok(Ok(read)) => reply.extend_from_slice(&buffer[..read]),
            Ok(Err(err)) => return Err(format!("reading failed: {err}")),
            Err(_) => return Err("no reply within 1s".to_owned()),
        }
    }
    Ok(reply)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::wait_for_reply;

    /// A listener on a free loopback port that reads one request per connection and answers
    /// `reply`.
    async fn listener(reply: Option<&'static str>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0_u8; 64];
                let _ = stream.read(&mut request).await;
                // `None` stands for Docker's port proxy before the server listens: accept, close.
                if let Some(reply) = reply {
                    let _ = stream.write_all(reply.as_bytes()).await;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn a_server_giving_the_expected_reply_is_ready() {
        let port = listener(Some("VERSION 1.6.18\r\n")).await;
        wait_for_reply(port, "version\r\n", "VERSION ", Duration::from_secs(5))
            .await
            .expect("ready");
    }

    #[tokio::test]
    async fn a_port_that_accepts_and_closes_is_not_ready() {
        let port = listener(None).await;
        let err = wait_for_reply(port, "version\r\n", "VERSION ", Duration::from_millis(300))
            .await
            .expect_err("never ready");
        assert!(err.contains("closed without a reply"), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn a_wrong_reply_is_not_ready_and_is_shown() {
        let port = listener(Some("-ERR unknown command\r\n")).await;
        let err = wait_for_reply(port, "PING\r\n", "+PONG", Duration::from_millis(300))
            .await
            .expect_err("never ready");
        assert!(err.contains("-ERR unknown command"), "{err}");
    }
}
