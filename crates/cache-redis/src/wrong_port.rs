//! A URL whose scheme does not match the port it names. A plain-text Redis reads a TLS
//! client's hello as the start of a command and waits for its line end, so a `rediss://`
//! connect only times out; a TLS port resets a plain-text client's connection, so a
//! `redis://` connect fails with "connection reset". Asked in the other language, the same
//! port answers at once: the error then says what is wrong and which URL fits the port.
//!
//! A server that refuses a new connection (past its `maxclients`, or in protected mode)
//! says why in a line it sends unasked before closing it; the client, busy writing its
//! hello, sees only "broken pipe" or "connection reset". Asked again, the server gives
//! the line: the error then carries the server's reason.

use std::time::Duration;

use cache_api::CacheError;
use redis::ConnectionAddr;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::endpoint::Nodes;

/// The longest the question in the other language waits for its answer: a server answers
/// within a round trip, and a host that does not answer at all (where the connect timed
/// out for that reason) should not hold the error back for long.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// The first node of a URL for one server or a cluster, asked in the other language when
/// connecting to it failed.
pub(crate) struct Seed {
    host: String,
    port: u16,
    cluster: bool,
    tls: bool,
}

impl Seed {
    /// The seed of `nodes`; `None` when they are reached over a unix socket, or are found
    /// through Sentinel.
    pub(crate) fn of(nodes: &Nodes) -> Option<Self> {
        let (first, cluster) = match nodes {
            Nodes::Single(info) => (info, false),
            Nodes::Cluster(seeds) => (seeds.first()?, true),
            Nodes::Sentinel(_) => return None,
        };
        let (host, port, tls) = match first.addr() {
            ConnectionAddr::TcpTls { host, port, .. } => (host, port, true),
            ConnectionAddr::Tcp(host, port) => (host, port, false),
            _ => return None,
        };
        Some(Self {
            host: host.clone(),
            port: *port,
            cluster,
            tls,
        })
    }

    /// Replaces `error`, met while connecting, by a configuration error when the seed
    /// answers in the language its scheme does not speak: Redis in plain text for a TLS
    /// URL, a TLS handshake for a plain one. Any other error, or a seed that gives no such
    /// answer within `within` (at most [`PROBE_WAIT`]), leaves `error` as it is.
    ///
    /// A plain-text connect that timed out is left as it is at once: a TLS port refuses
    /// a plain client's first bytes, it does not leave it waiting, so asking would only
    /// hold a silent host's error back past the connect timeout.
    pub(crate) async fn explain(&self, error: CacheError, within: Duration) -> CacheError {
        let connect_failed = match error {
            CacheError::Timeout {
                phase: "connect", ..
            } => self.tls,
            CacheError::Unreachable { .. } => true,
            _ => false,
        };
        if !connect_failed {
            return error;
        }
        let wait = within.min(PROBE_WAIT);
        let (tls, plain) = if self.cluster {
            ("rediss+cluster", "redis+cluster")
        } else {
            ("rediss", "redis")
        };
        let address = display_address(&self.host, self.port);
        if self.tls {
            if !answers_plain_text(&self.host, self.port, wait).await {
                // Neither TLS nor Redis (a web server, memcached): rustls's word for it
                // alone ("corrupt message") does not say what to check.
                let not_tls = matches!(error, CacheError::Unreachable { .. })
                    && error.to_string().contains("received corrupt message");
                if not_tls {
                    return CacheError::config(format!(
                        "{address} did not answer the tls handshake in tls, nor redis in plain \
                         text: is the url pointing at the server's tls port (its tls-port \
                         setting)?"
                    ));
                }
                return error;
            }
            return CacheError::config(format!(
                "{address} answers redis in plain text, not over tls: {tls}:// needs the \
                 server's TLS port (its tls-port setting), and {plain}:// is the url for this one"
            ));
        }
        if matches!(error, CacheError::Unreachable { .. }) {
            if let Some(reason) = refusal(&self.host, self.port, wait).await {
                return crate::error::refused(error, &reason);
            }
        }
        if !cache_tls::answers_tls(&self.host, self.port, wait).await {
            return error;
        }
        CacheError::config(cache_tls::tls_port_message(&address, plain, tls, "port"))
    }
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

/// The reason `host:port` gives for refusing a new connection, in its own words
/// (`ERR max number of clients reached`, `DENIED Redis is running in protected mode...`):
/// the error line it sends first, before any answer to a `PING`. `None` when it answers,
/// asks for credentials (the connection is taken), or says nothing within `wait`.
async fn refusal(host: &str, port: u16, wait: Duration) -> Option<String> {
    let ask = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        // The refusal may come, and the connection close, before this is written.
        let _ = stream.write_all(b"PING\r\n").await;
        let mut line = Vec::new();
        let mut chunk = [0u8; 256];
        while !line.contains(&b'\n') && line.len() < 1024 {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                break;
            }
            line.extend_from_slice(&chunk[..read]);
        }
        refusal_reason(&line)
    };
    tokio::time::timeout(wait, ask).await.ok().flatten()
}

/// The reason in the first line of `reply` when it is an error refusing the connection.
fn refusal_reason(reply: &[u8]) -> Option<String> {
    let line = reply.split(|byte| *byte == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let reason = String::from_utf8_lossy(line.strip_prefix(b"-")?);
    let refused = reason.starts_with("ERR max number of clients") || reason.starts_with("DENIED");
    refused.then(|| reason.trim().chars().take(200).collect())
}

pub(crate) fn display_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use cache_testserver::answering_port as answering;
    use tokio::net::TcpListener;

    use super::*;

    /// The seed of `scheme://127.0.0.1:port`, if it has one.
    fn seed(scheme: &str, port: u16) -> Option<Seed> {
        let info = format!("{scheme}://127.0.0.1:{port}")
            .parse::<redis::ConnectionInfo>()
            .unwrap();
        Seed::of(&Nodes::Single(info))
    }

    /// What a connect timeout to the TLS URL `rediss://127.0.0.1:port` becomes.
    async fn timeout_explained(port: u16) -> CacheError {
        let timed_out = CacheError::Timeout {
            backend: "redis",
            operation: "command",
            phase: "connect",
            after: Duration::from_secs(2),
        };
        let seed = seed("rediss", port).expect("a TLS URL has a seed");
        seed.explain(timed_out, Duration::from_secs(2)).await
    }

    /// What a connection reset by `redis://127.0.0.1:port` becomes.
    async fn reset_explained(port: u16) -> CacheError {
        let reset = CacheError::Unreachable {
            backend: "redis",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        let seed = seed("redis", port).expect("a TCP URL has a seed");
        seed.explain(reset, Duration::from_secs(2)).await
    }

    #[test]
    fn refusals_are_told_from_answers() {
        assert_eq!(
            refusal_reason(b"-ERR max number of clients reached\r\n").as_deref(),
            Some("ERR max number of clients reached")
        );
        assert_eq!(
            refusal_reason(b"-DENIED Redis is running in protected mode\r\n+PONG").as_deref(),
            Some("DENIED Redis is running in protected mode")
        );
        for answer in [
            &b"+PONG\r\n"[..],
            b"-NOAUTH Authentication required.\r\n",
            b"-ERR unknown command\r\n",
            b"",
        ] {
            assert_eq!(refusal_reason(answer), None, "{answer:?}");
        }
    }

    #[tokio::test]
    async fn a_port_that_answers_over_tls_is_named_with_the_url_for_it() {
        // A TLS server's hello, and the alert of one that refuses ours.
        for answer in [
            &b"\x16\x03\x03\x00\x7a\x02"[..],
            b"\x15\x03\x03\x00\x02\x02\x28",
        ] {
            let port = answering(answer).await;
            let error = reset_explained(port).await;
            let CacheError::Config { message } = error else {
                panic!("{error:?}");
            };
            assert!(
                message.contains(&format!("127.0.0.1:{port} answers over tls"))
                    && message.contains("redis:// needs the server's plain-text port")
                    && message.contains("rediss:// is the url"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_port_that_answers_in_plain_text_is_named_with_the_url_for_it() {
        for answer in [&b"+PONG\r\n"[..], b"-NOAUTH Authentication required.\r\n"] {
            let port = answering(answer).await;
            let error = timeout_explained(port).await;
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
        let error = timeout_explained(port).await;
        assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = timeout_explained(port).await;
        assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
        // A plain URL at a port that answers Redis: the error was not about the port.
        let reset = reset_explained(answering(b"+PONG\r\n").await).await;
        assert!(matches!(reset, CacheError::Unreachable { .. }), "{reset:?}");
        // A unix socket has no seed: nothing to explain.
        assert!(Seed::of(&Nodes::Single(
            "redis+unix:///tmp/redis.sock"
                .parse::<redis::ConnectionInfo>()
                .unwrap()
        ))
        .is_none());
        // An error that is not about reaching the server.
        let port = answering(b"+PONG\r\n").await;
        let refused = CacheError::Auth {
            backend: "redis",
            source: "WRONGPASS".into(),
        };
        let seed = seed("rediss", port).expect("a TLS URL has a seed");
        let error = seed.explain(refused, Duration::from_secs(2)).await;
        assert!(matches!(error, CacheError::Auth { .. }), "{error:?}");
    }
}
