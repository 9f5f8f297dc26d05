//! A TLS URL aimed at a port that serves Redis in plain text. Such a server reads the
//! client's TLS hello as the start of a command and waits for its line end, so the
//! connect only times out (or fails on the server's plain-text complaint, if a byte of
//! the hello happened to end a line). Asked `PING` in plain text, the same port answers
//! at once: the error then says what is wrong instead of only "timed out".

use std::time::Duration;

use cache_api::CacheError;
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The longest the plain-text question waits for its answer: a plain Redis answers a
/// `PING` within a round trip, and a host that does not answer at all (where the connect
/// timed out for that reason) should not hold the error back for long.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// Replaces `error`, met while connecting to the TLS addresses of `nodes`, by a
/// configuration error when the first of them answers Redis in plain text. Any other
/// error, or an address that is not TLS or gives no such answer, leaves `error` as it is.
pub(crate) async fn explain(
    error: CacheError,
    nodes: &[ConnectionInfo],
    cluster: bool,
    within: Duration,
) -> CacheError {
    let connect_failed = matches!(
        error,
        CacheError::Timeout {
            phase: "connect",
            ..
        } | CacheError::Unreachable { .. }
    );
    let Some(ConnectionAddr::TcpTls { host, port, .. }) = nodes.first().map(ConnectionInfo::addr)
    else {
        return error;
    };
    if !connect_failed || !answers_plain_text(host, *port, within.min(PROBE_WAIT)).await {
        return error;
    }
    let (tls, plain) = if cluster {
        ("rediss+cluster", "redis+cluster")
    } else {
        ("rediss", "redis")
    };
    CacheError::config(format!(
        "{} answers redis in plain text, not over tls: {tls}:// needs the server's TLS \
         port (its tls-port setting), and {plain}:// is the url for this one",
        display_address(host, *port)
    ))
}

/// Whether `host:port` answers a plain-text `PING` as Redis does (`+PONG`, or an error
/// such as `-NOAUTH` from a server that wants a password first).
async fn answers_plain_text(host: &str, port: u16, wait: Duration) -> bool {
    let ask = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut first = [0u8; 1];
        let read = stream.read(&mut first).await.ok()?;
        Some(read == 1 && matches!(first[0], b'+' | b'-'))
    };
    matches!(tokio::time::timeout(wait, ask).await, Ok(Some(true)))
}

fn display_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers its first line with `answer`.
    async fn answering(answer: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut line = [0u8; 64];
                let _ = stream.read(&mut line).await;
                let _ = stream.write_all(answer).await;
            }
        });
        port
    }

    fn node(scheme: &str, port: u16) -> ConnectionInfo {
        format!("{scheme}://127.0.0.1:{port}")
            .parse::<ConnectionInfo>()
            .unwrap()
    }

    /// What a connect timeout to `scheme://127.0.0.1:port` becomes.
    async fn timeout_explained(scheme: &str, port: u16) -> CacheError {
        let timed_out = CacheError::Timeout {
            backend: "redis",
            operation: "command",
            phase: "connect",
            after: Duration::from_secs(2),
        };
        let nodes = [node(scheme, port)];
        explain(timed_out, &nodes, false, Duration::from_secs(2)).await
    }

    #[tokio::test]
    async fn a_port_that_answers_in_plain_text_is_named_with_the_url_for_it() {
        for answer in [&b"+PONG\r\n"[..], b"-NOAUTH Authentication required.\r\n"] {
            let port = answering(answer).await;
            let error = timeout_explained("rediss", port).await;
            let CacheError::Config { message } = error else {
                panic!("{error:?}");
            };
            assert!(
                message.contains(&format!("127.0.0.1:{port} answers redis in plain text"))
                    && message.contains("rediss:// needs the server's TLS port")
                    && message.contains("redis:// is the url"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn other_failures_stay_as_they_are() {
        // A TLS server answers plain text with an alert, not with Redis.
        let port = answering(b"\x15\x03\x03\x00\x02\x02\x32").await;
        let error = timeout_explained("rediss", port).await;
        assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = timeout_explained("rediss", port).await;
        assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
        // A plain-text port named by a plain URL: nothing to explain.
        let port = answering(b"+PONG\r\n").await;
        let error = timeout_explained("redis", port).await;
        assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
        // An error that is not about reaching the server.
        let port = answering(b"+PONG\r\n").await;
        let refused = CacheError::Auth {
            backend: "redis",
            source: "WRONGPASS".into(),
        };
        let error = explain(
            refused,
            &[node("rediss", port)],
            false,
            Duration::from_secs(2),
        )
        .await;
        assert!(matches!(error, CacheError::Auth { .. }), "{error:?}");
    }
}
