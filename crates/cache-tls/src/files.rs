//! The TLS settings both backends take, and the PEM files they name: read and checked when
//! a cache is built, so that a wrong file is an error that names it, not a handshake that
//! fails on every connection later.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use cache_api::CacheError;
use rustls::{
    crypto::ring,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    sign::CertifiedKey,
    InconsistentKeys,
};

/// The TLS settings of a `rediss://` or `memcaches://` URL (its `tls_ca`, `tls_cert`,
/// `tls_key` and `tls_insecure_skip_verify` parameters) or of a backend's builder.
///
/// ```
/// let settings = cache_tls::TlsSettings {
///     ca_file: Some("/no/such/ca.pem".into()),
///     ..Default::default()
/// };
/// let error = settings.load().unwrap_err().to_string();
/// assert!(error.contains("tls_ca") && error.contains("/no/such/ca.pem"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the certificates to trust instead of the system's roots (`tls_ca`).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain), for mutual TLS (`tls_cert`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (`tls_key`).
    pub key_file: Option<PathBuf>,
    /// Accept any certificate from the server: for test servers only
    /// (`tls_insecure_skip_verify`).
    pub insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Whether any TLS setting was given.
    #[must_use]
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// Reads the files the settings name, checked against each other.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`], naming the setting and its file, when the settings
    /// contradict each other (`tls_ca` with `tls_insecure_skip_verify`, a certificate
    /// without its key or a key without its certificate), when a file cannot be read or
    /// holds nothing of what it should, or when the key is not the certificate's.
    pub fn load(&self) -> Result<TlsFiles, CacheError> {
        if self.insecure_skip_verify && self.ca_file.is_some() {
            return Err(CacheError::config(
                "tls_insecure_skip_verify=true verifies nothing, so tls_ca would be ignored: \
                 give one or the other",
            ));
        }
        let identity = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Identity::read(cert, key)?),
            _ => {
                return Err(CacheError::config(
                    "mutual tls needs both tls_cert (the client certificate) and tls_key (its private key)",
                ))
            }
        };
        let roots = self
            .ca_file
            .as_deref()
            .map(|path| Certificates::read(path, "tls_ca"))
            .transpose()?;
        Ok(TlsFiles { roots, identity })
    }
}

/// What the files of [`TlsSettings`] hold.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificates to trust, from `tls_ca`; `None` when no file was named.
    pub roots: Option<Certificates>,
    /// The client's certificate and key, from `tls_cert` and `tls_key`; `None` without them.
    pub identity: Option<Identity>,
}

/// The certificates of one PEM file, at least one.
#[derive(Clone, Debug)]
pub struct Certificates {
    /// The file as read (for clients that parse PEM themselves).
    pub pem: Vec<u8>,
    /// Its certificates, in order.
    pub certificates: Vec<CertificateDer<'static>>,
}

impl Certificates {
    /// The certificates of the PEM file `path`, the value of the setting `setting` (which
    /// errors name).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when the file cannot be read, is not PEM or holds no
    /// certificate.
    pub fn read(path: &Path, setting: &str) -> Result<Self, CacheError> {
        let pem = read_file(path, setting)?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| file_error(setting, path, err))?;
        if certificates.is_empty() {
            return Err(file_error(setting, path, "it holds no certificate"));
        }
        Ok(Self { pem, certificates })
    }
}

/// A client certificate (chain) and its private key, checked to belong together.
pub struct Identity {
    /// The certificate file as read.
    pub cert_pem: Vec<u8>,
    /// The key file as read.
    pub key_pem: Vec<u8>,
    /// The certificate chain, the client's own certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The certificate chain of `cert` (`tls_cert`) and the private key of `key`
    /// (`tls_key`).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when a file cannot be read or holds nothing of what it
    /// should, when the key is of a kind rustls cannot sign with, or when it is not the
    /// key of the certificate.
    pub fn read(cert: &Path, key: &Path) -> Result<Self, CacheError> {
        let certificates = Certificates::read(cert, "tls_cert")?;
        let key_pem = read_file(key, "tls_key")?;
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                file_error("tls_key", key, "it holds no private key")
            }
            other => file_error("tls_key", key, other),
        })?;
        let provider = ring::default_provider();
        match CertifiedKey::from_der(
            certificates.certificates.clone(),
            private_key.clone_key(),
            &provider,
        ) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                return Err(CacheError::config(format!(
                    "the tls_key file {} holds another key than the one of the certificate \
                     in the tls_cert file {}: give the key of that certificate",
                    key.display(),
                    cert.display()
                )))
            }
            Err(err) => return Err(file_error("tls_key", key, err)),
        }
        Ok(Self {
            cert_pem: certificates.pem,
            key_pem,
            chain: certificates.certificates,
            key: private_key,
        })
    }

    /// The private key.
    #[must_use]
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Identity")
            .field("chain", &self.chain.len())
            .field("key", &"<private>")
            .finish()
    }
}

fn read_file(path: &Path, setting: &str) -> Result<Vec<u8>, CacheError> {
    std::fs::read(path).map_err(|err| file_error(setting, path, err))
}

fn file_error(setting: &str, path: &Path, reason: impl fmt::Display) -> CacheError {
    CacheError::config(format!(
        "cannot use the {setting} file {}: {reason}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use cache_testserver::tls::TestCertificates;

    use super::*;

    fn message(settings: &TlsSettings) -> String {
        cache_tck::config_message(settings.load())
    }

    fn certificates() -> TestCertificates {
        TestCertificates::generate().expect("test certificates")
    }

    #[test]
    fn nothing_named_reads_nothing() {
        let files = TlsSettings::default().load().unwrap();
        assert!(files.roots.is_none() && files.identity.is_none());
        assert!(!TlsSettings::default().any());
    }

    #[test]
    fn contradictions_are_refused_before_any_file_is_read() {
        let insecure_with_ca = TlsSettings {
            ca_file: Some("/no/such/ca.pem".into()),
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        assert!(message(&insecure_with_ca).contains("give one or the other"));
        for half in [
            TlsSettings {
                cert_file: Some("/c.pem".into()),
                ..TlsSettings::default()
            },
            TlsSettings {
                key_file: Some("/k.pem".into()),
                ..TlsSettings::default()
            },
        ] {
            assert!(message(&half).contains("needs both tls_cert"), "{half:?}");
        }
    }

    #[test]
    fn the_files_of_a_test_ca_and_client_are_read() {
        let certs = certificates();
        let files = TlsSettings {
            ca_file: Some(certs.ca.clone()),
            cert_file: Some(certs.client_cert.clone()),
            key_file: Some(certs.client_key.clone()),
            insecure_skip_verify: false,
        }
        .load()
        .unwrap();
        let roots = files.roots.expect("the CA's certificates");
        assert_eq!(roots.certificates.len(), 1);
        assert_eq!(roots.pem, std::fs::read(&certs.ca).unwrap());
        let identity = files.identity.expect("the client's identity");
        assert_eq!(
            identity.cert_pem,
            std::fs::read(&certs.client_cert).unwrap()
        );
        assert_eq!(identity.key_pem, std::fs::read(&certs.client_key).unwrap());
        assert!(!identity.chain.is_empty());
        assert!(!format!("{identity:?}").contains("BEGIN"));
    }

    #[test]
    fn a_missing_empty_or_wrong_file_is_named() {
        let certs = certificates();
        let empty = certs.dir().path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = certs.dir().path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let cases = [
            (
                Some(Path::new("/no/such/ca.pem")),
                None,
                "tls_ca file /no/such/ca.pem",
            ),
            (Some(empty.as_path()), None, "holds no certificate"),
            (Some(garbage.as_path()), None, "tls_ca file"),
            // A key where the CAs should be.
            (
                Some(certs.client_key.as_path()),
                None,
                "holds no certificate",
            ),
            (
                None,
                Some((empty.as_path(), certs.client_key.as_path())),
                "tls_cert file",
            ),
            (
                None,
                Some((certs.client_cert.as_path(), empty.as_path())),
                "holds no private key",
            ),
            // A certificate where the key should be.
            (
                None,
                Some((certs.client_cert.as_path(), certs.client_cert.as_path())),
                "holds no private key",
            ),
        ];
        for (ca, identity, expected) in cases {
            let settings = TlsSettings {
                ca_file: ca.map(Path::to_path_buf),
                cert_file: identity.map(|(cert, _)| cert.to_path_buf()),
                key_file: identity.map(|(_, key)| key.to_path_buf()),
                insecure_skip_verify: false,
            };
            let message = message(&settings);
            assert!(message.contains(expected), "{settings:?}: {message}");
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let certs = certificates();
        let settings = TlsSettings {
            cert_file: Some(certs.client_cert.clone()),
            key_file: Some(certs.server_key.clone()),
            ..TlsSettings::default()
        };
        let message = message(&settings);
        assert!(
            message.contains("holds another key than the one of the certificate"),
            "{message}"
        );
    }
}
