//! TLS for `rediss://` and `rediss+cluster://`: rustls with the ring provider, the
//! system's roots (read by rustls-native-certs) unless a CA file is named, an optional
//! client certificate for mutual TLS, and an insecure mode for test servers that has to
//! be asked for by its full name.
//!
//! No OpenSSL is involved. The ring provider is installed as the process default the
//! first time a TLS connection is configured, unless the application installed one
//! already (rustls needs one, and cannot pick one by itself when several are compiled in).

use std::error::Error as _;

use cache_api::CacheError;
use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

pub(crate) use cache_tls::TlsSettings;

/// The files `settings` name, read and checked (a missing file, one without a certificate
/// or key, or a key of another certificate is a configuration error here), as redis takes
/// them: `None` when no file is named (the system's roots, no client certificate).
pub(crate) fn certificates(settings: &TlsSettings) -> Result<Option<TlsCertificates>, CacheError> {
    let files = settings.load()?;
    if files.roots.is_none() && files.identity.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls: files.identity.map(|identity| ClientTlsConfig {
            client_cert: identity.cert_pem,
            client_key: identity.key_pem,
        }),
        root_cert: files.roots.map(|roots| roots.pem),
    }))
}

/// The address of `host:port` over TLS, verified unless `insecure`.
pub(crate) fn tls_address(host: String, port: u16, insecure: bool) -> ConnectionAddr {
    ConnectionAddr::TcpTls {
        host,
        port,
        insecure,
        tls_params: None,
    }
}

/// `info` set up with `settings`: the insecure flag and the certificates on a TLS
/// address; on any other address, TLS settings are refused rather than ignored.
pub(crate) fn configure(
    info: ConnectionInfo,
    settings: &TlsSettings,
    certificates: Option<&TlsCertificates>,
) -> Result<ConnectionInfo, CacheError> {
    let ConnectionAddr::TcpTls { host, port, .. } = info.addr() else {
        if settings.any() {
            return Err(CacheError::config(
                "tls_ca, tls_cert, tls_key and tls_insecure_skip_verify apply to rediss:// \
                 (and rediss+cluster://) only",
            ));
        }
        return Ok(info);
    };
    let address = tls_address(host.clone(), *port, settings.insecure_skip_verify);
    with_certificates(info.set_addr(address), certificates)
}

/// Installs the ring provider as rustls's process default, unless one is installed.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: a provider is then in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `info` with the certificates attached (parsed here, so that a malformed PEM file is a
/// configuration error at build time rather than a failure of every connection).
pub(crate) fn with_certificates(
    info: ConnectionInfo,
    certificates: Option<&TlsCertificates>,
) -> Result<ConnectionInfo, CacheError> {
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        return Ok(info);
    }
    ensure_crypto_provider();
    let Some(certificates) = certificates else {
        return Ok(info);
    };
    let client = redis::Client::build_with_tls(info, certificates.clone())
        .map_err(|err| CacheError::config(format!("invalid tls certificate or key file: {err}")))?;
    client
        .get_connection_info()
        .clone()
        .into_connection_info()
        .map_err(|err| CacheError::config(format!("invalid tls settings: {err}")))
}

/// Why the TLS handshake failed on a certificate, if that is what `err` says: the
/// server's certificate was refused here (wrong CA, wrong name, expired), or the server
/// refused ours (mutual TLS without a certificate, or with one it does not trust).
pub(crate) fn certificate_failure(err: &redis::RedisError) -> Option<String> {
    let mut source = err.source();
    while let Some(current) = source {
        if let Some(tls) = rustls_error(current) {
            return cache_tls::describe(tls);
        }
        source = current.source();
    }
    // The cluster client keeps only the text of a seed's connection error.
    described_in_text(&err.to_string())
}

/// The failures [`cache_tls::describe`] covers, found in an error's text by rustls's own wording
/// of them (`invalid peer certificate: ...`, `received fatal alert: ...`).
fn described_in_text(text: &str) -> Option<String> {
    if let Some((_, reason)) = text.split_once("invalid peer certificate: ") {
        return Some(cache_tls::server_certificate_refused(reason.trim()));
    }
    let (_, alert) = text.split_once("received fatal alert: ")?;
    let alert = alert.split_whitespace().next()?;
    cache_tls::CLIENT_CERTIFICATE_ALERTS
        .iter()
        .find(|known| format!("{known:?}") == alert)
        .map(|known| cache_tls::client_certificate_refused(*known))
}

/// The rustls error inside `err`: redis keeps an I/O error in an `Arc`, and the I/O
/// error of tokio-rustls holds the rustls error as its payload (which `source` skips).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let inner: &(dyn std::error::Error + 'static) = match err.downcast_ref::<Shared>() {
        Some(shared) => shared.as_ref(),
        None => err,
    };
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    inner
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .and_then(|payload| payload.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_tck::config_message;

    /// The files are read and checked here (cache_tls's own tests go through every wrong
    /// file and contradiction), and handed to redis as they were read.
    #[test]
    fn tls_files_are_read_and_handed_on_as_read() {
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let message = config_message(certificates(&missing));
        assert!(
            message.contains("tls_ca") && message.contains("/nonexistent/ca.pem"),
            "{message}"
        );
        assert!(certificates(&TlsSettings::default()).unwrap().is_none());

        let certs = cache_testserver::tls::TestCertificates::generate().expect("test certificates");
        let read = certificates(&TlsSettings {
            ca_file: Some(certs.ca.clone()),
            cert_file: Some(certs.client_cert.clone()),
            key_file: Some(certs.client_key.clone()),
            insecure_skip_verify: false,
        })
        .unwrap()
        .expect("the files' certificates");
        assert_eq!(read.root_cert, Some(std::fs::read(&certs.ca).unwrap()));
        let client = read.client_tls.expect("the client's certificate");
        assert_eq!(
            client.client_cert,
            std::fs::read(&certs.client_cert).unwrap()
        );
        assert_eq!(client.client_key, std::fs::read(&certs.client_key).unwrap());
    }

    #[test]
    fn verification_failures_are_described() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            unknown,
        ));
        let described = certificate_failure(&err).expect("a certificate failure");
        assert!(described.contains("UnknownIssuer"), "{described}");
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(certificate_failure(&refused), None);
    }

    /// The cluster client keeps a seed's error as text only: rustls's wording of each
    /// failure is recognised there, so a rustls that words them otherwise fails here.
    #[test]
    fn failures_kept_as_text_are_described_too() {
        let as_cluster_error = |tls: rustls::Error| {
            let seed =
                redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "Failed to create initial connections",
                seed.to_string(),
            ))
        };
        let unknown = as_cluster_error(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let described = certificate_failure(&unknown).expect("a certificate failure");
        assert!(
            described.contains("UnknownIssuer") && described.contains("verification"),
            "{described}"
        );
        for alert in cache_tls::CLIENT_CERTIFICATE_ALERTS {
            let refused = as_cluster_error(rustls::Error::AlertReceived(*alert));
            let described = certificate_failure(&refused).expect("a refused client certificate");
            assert!(
                described.contains("client certificate")
                    && described.contains(&format!("{alert:?}")),
                "{described}"
            );
        }
        let other = as_cluster_error(rustls::Error::AlertReceived(
            rustls::AlertDescription::DecodeError,
        ));
        assert_eq!(certificate_failure(&other), None);
    }
}
