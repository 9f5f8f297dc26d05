#![doc = include_str!("../README.md")]

use std::{sync::Arc, time::Duration};

mod files;

pub use files::{Certificates, Identity, TlsFiles, TlsSettings};

use rustls::{pki_types::ServerName, AlertDescription};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The alerts of a server that refused the client's certificate, or wanted one.
pub const CLIENT_CERTIFICATE_ALERTS: &[AlertDescription] = &[
    AlertDescription::CertificateRequired,
    AlertDescription::BadCertificate,
    AlertDescription::UnknownCA,
    AlertDescription::CertificateUnknown,
    AlertDescription::AccessDenied,
    AlertDescription::HandshakeFailure,
];

/// What a refused certificate means, when `err` is one: the server's certificate failed
/// verification here (wrong CA, wrong host name, expired), or the server refused this
/// client's certificate (mutual TLS without one, or with one it does not trust). `None`
/// for any other TLS error.
///
/// ```
/// use rustls::{AlertDescription, Error};
///
/// let theirs = cache_tls::describe(&Error::AlertReceived(AlertDescription::CertificateRequired));
/// assert!(theirs.unwrap().contains("tls_cert"));
/// assert!(cache_tls::describe(&Error::DecryptError).is_none());
/// ```
#[must_use]
pub fn describe(err: &rustls::Error) -> Option<String> {
    match err {
        rustls::Error::InvalidCertificate(reason) => {
            Some(server_certificate_refused(format!("{reason:?}")))
        }
        rustls::Error::AlertReceived(alert) if CLIENT_CERTIFICATE_ALERTS.contains(alert) => {
            Some(client_certificate_refused(*alert))
        }
        _ => None,
    }
}

/// The message of a server certificate that failed verification for `reason`.
#[must_use]
pub fn server_certificate_refused(reason: impl std::fmt::Display) -> String {
    format!(
        "tls: the server's certificate failed verification ({reason}): \
         check tls_ca (or the system's roots) and the host name"
    )
}

/// The message of a client certificate the server refused with `alert`.
#[must_use]
pub fn client_certificate_refused(alert: AlertDescription) -> String {
    format!(
        "tls: the server refused the client certificate (alert {alert:?}): \
         check tls_cert and tls_key"
    )
}

/// The message of a plain-text URL aimed at a TLS port: `address` answered a TLS hello, so
/// `plain://` cannot talk to it and `tls://` is the URL for it; `port_setting` names the
/// server's setting of its plain-text port.
///
/// ```
/// let message = cache_tls::tls_port_message("127.0.0.1:6380", "redis", "rediss", "port");
/// assert!(message.contains("127.0.0.1:6380 answers over tls"));
/// assert!(message.contains("rediss:// is the url for this one"));
/// ```
#[must_use]
pub fn tls_port_message(address: &str, plain: &str, tls: &str, port_setting: &str) -> String {
    format!(
        "{address} answers over tls, not in plain text: {plain}:// needs the server's \
         plain-text port (its {port_setting} setting), and {tls}:// is the url for this one"
    )
}

/// Whether `host:port` answers a TLS client hello as a TLS server does, within `wait`:
/// with a handshake record (its own hello) or an alert (a refusal of ours), which no
/// plain-text Redis or memcached sends. Nothing is verified, as no session follows: only
/// the first bytes of the answer are read, and the connection is then dropped.
///
/// ```no_run
/// # async fn example() {
/// use std::time::Duration;
///
/// if cache_tls::answers_tls("127.0.0.1", 6380, Duration::from_millis(500)).await {
///     println!("127.0.0.1:6380 wants rediss://");
/// }
/// # }
/// ```
pub async fn answers_tls(host: &str, port: u16, wait: Duration) -> bool {
    let Some(hello) = client_hello(host) else {
        return false;
    };
    let ask = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(&hello).await.ok()?;
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).await.ok()?;
        // Content type 22 (handshake) or 21 (alert), then the major version 3.
        Some(matches!(header, [0x15 | 0x16, 0x03]))
    };
    matches!(tokio::time::timeout(wait, ask).await, Ok(Some(true)))
}

/// The first bytes a TLS client sends to `host`: its hello.
fn client_hello(host: &str) -> Option<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).ok()?;
    Some(hello)
}

#[cfg(test)]
mod tests {
    use cache_testserver::answering_port as answering;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn the_hello_is_a_tls_handshake_record_for_names_and_addresses() {
        for host in ["localhost", "cache.example", "127.0.0.1", "::1"] {
            let hello = client_hello(host).expect("a client hello");
            assert_eq!(&hello[..2], [0x16, 0x03], "{host}");
        }
    }

    #[tokio::test]
    async fn a_tls_hello_or_alert_is_tls_and_anything_else_is_not() {
        let wait = Duration::from_secs(2);
        for tls in [
            &b"\x16\x03\x03\x00\x7a\x02"[..],
            b"\x15\x03\x03\x00\x02\x02\x28",
        ] {
            assert!(answers_tls("127.0.0.1", answering(tls).await, wait).await);
        }
        for plain in [
            &b"-ERR unknown command\r\n"[..],
            b"+PONG\r\n",
            b"ERROR\r\n",
            b"\x16",
            b"",
        ] {
            let port = answering(plain).await;
            assert!(!answers_tls("127.0.0.1", port, wait).await, "{plain:?}");
        }
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(
            !answers_tls("127.0.0.1", port, wait).await,
            "nothing listening"
        );
    }

    #[tokio::test]
    async fn a_silent_port_is_given_up_on_after_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        assert!(!answers_tls("127.0.0.1", port, Duration::from_millis(200)).await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(listener);
    }

    #[test]
    fn refused_certificates_are_described_and_other_errors_are_not() {
        let ours = describe(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
        .unwrap();
        assert!(
            ours.contains("UnknownIssuer") && ours.contains("tls_ca"),
            "{ours}"
        );
        for alert in CLIENT_CERTIFICATE_ALERTS {
            let theirs = describe(&rustls::Error::AlertReceived(*alert)).unwrap();
            assert!(theirs.contains(&format!("{alert:?}")) && theirs.contains("tls_key"));
        }
        assert!(describe(&rustls::Error::AlertReceived(AlertDescription::DecodeError)).is_none());
        assert!(describe(&rustls::Error::DecryptError).is_none());
    }
}
