//! TLS for `rediss://` and `rediss+cluster://`: rustls with the ring provider, the
//! system's roots (read by rustls-native-certs) unless a CA file is named, an optional
//! client certificate for mutual TLS, and an insecure mode for test servers that has to
//! be asked for by its full name.
//!
//! No OpenSSL is involved. The ring provider is installed as the process default the
//! first time a TLS connection is configured, unless the application installed one
//! already (rustls needs one, and cannot pick one by itself when several are compiled in).

use std::{
    error::Error as _,
    path::{Path, PathBuf},
};

use cache_api::CacheError;
use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

/// The TLS settings of a builder; applied only with a TLS scheme.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// PEM file of the certificates to trust instead of the system's roots.
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain), for mutual TLS.
    pub(crate) cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub(crate) key_file: Option<PathBuf>,
    /// Accept any certificate from the server: for test servers only.
    pub(crate) insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Whether any TLS setting was given.
    pub(crate) fn any(&self) -> bool {
        *self != Self::default()
    }

    /// Checks the settings against each other and reads the files they name: `None`
    /// when no file is named (the system's roots, no client certificate).
    pub(crate) fn certificates(&self) -> Result<Option<TlsCertificates>, CacheError> {
        if self.insecure_skip_verify && self.ca_file.is_some() {
            return Err(CacheError::config(
                "tls_insecure_skip_verify=true verifies nothing, so tls_ca would be ignored: \
                 give one or the other",
            ));
        }
        let client_tls = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read_pem(cert, "tls_cert")?,
                client_key: read_pem(key, "tls_key")?,
            }),
            _ => {
                return Err(CacheError::config(
                    "mutual tls needs both tls_cert (the client certificate) and tls_key (its private key)",
                ))
            }
        };
        let root_cert = self
            .ca_file
            .as_deref()
            .map(|ca| read_pem(ca, "tls_ca"))
            .transpose()?;
        if client_tls.is_none() && root_cert.is_none() {
            return Ok(None);
        }
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

fn read_pem(path: &Path, name: &str) -> Result<Vec<u8>, CacheError> {
    std::fs::read(path).map_err(|err| {
        CacheError::config(format!(
            "cannot read the {name} file {}: {err}",
            path.display()
        ))
    })
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

    fn config_message(result: Result<Option<TlsCertificates>, CacheError>) -> String {
        match result {
            Err(CacheError::Config { message }) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn contradictory_or_missing_files_are_config_errors() {
        let both = TlsSettings {
            ca_file: Some("/ca.pem".into()),
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        assert!(config_message(both.certificates()).contains("tls_insecure_skip_verify"));
        let half = TlsSettings {
            cert_file: Some("/client.pem".into()),
            ..TlsSettings::default()
        };
        assert!(config_message(half.certificates()).contains("tls_key"));
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let message = config_message(missing.certificates());
        assert!(
            message.contains("tls_ca") && message.contains("/nonexistent/ca.pem"),
            "{message}"
        );
        assert!(TlsSettings::default().certificates().unwrap().is_none());
        assert!(!TlsSettings::default().any());
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
