//! TLS material and TLS servers for tests: a CA, a server certificate for `localhost`,
//! `127.0.0.1` and `::1`, a client certificate, and a second CA that signed nothing the
//! servers show (for "wrong CA" tests), all made with rcgen at test time in a
//! [`TestDir`] of their own; and Redis and memcached servers that serve TLS with them.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{free_port, LocalServer, TestDir, MEMCACHED, REDIS};

/// PEM files of a test PKI, in a directory removed on drop.
#[derive(Debug)]
pub struct TestCertificates {
    dir: TestDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing the servers show.
    pub other_ca: PathBuf,
    /// The server's certificate (SAN `localhost`, `127.0.0.1`, `::1`) and key.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
    /// A client certificate signed by [`ca`](Self::ca), for mutual TLS.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

impl TestCertificates {
    /// Generates the CA, the server and client certificates and a second CA.
    ///
    /// # Errors
    ///
    /// A message when a certificate cannot be made or a file cannot be written.
    pub fn generate() -> Result<Self, String> {
        let dir = TestDir::new("tls")?;
        let failed = |err: rcgen::Error| format!("cannot make a test certificate: {err}");
        let ca = certificate_authority("cache test ca").map_err(failed)?;
        let other_ca = certificate_authority("unrelated test ca").map_err(failed)?;
        let server = leaf(
            &ca,
            &["localhost", "127.0.0.1", "::1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .map_err(failed)?;
        let client =
            leaf(&ca, &["cache-client"], ExtendedKeyUsagePurpose::ClientAuth).map_err(failed)?;
        let write = |name: &str, pem: &str| -> Result<PathBuf, String> {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
            Ok(path)
        };
        Ok(Self {
            ca: write("ca.pem", &ca.pem())?,
            other_ca: write("other-ca.pem", &other_ca.pem())?,
            server_cert: write("server.pem", &server.0)?,
            server_key: write("server.key", &server.1)?,
            client_cert: write("client.pem", &client.0)?,
            client_key: write("client.key", &client.1)?,
            dir,
        })
    }

    /// The directory the files are in.
    #[must_use]
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }
}

fn certificate_authority(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A certificate for `names` signed by `ca`: its PEM and its key's PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), rcgen::Error> {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, ca)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// A `redis-server` that serves TLS on a port of its own (beside its plain port, which
/// only tells when it is ready), with the certificates of a [`TestCertificates`].
#[derive(Debug)]
pub struct TlsRedis {
    server: LocalServer,
    tls_port: u16,
}

impl TlsRedis {
    /// Starts it; with `mutual`, it asks every TLS client for a certificate signed by
    /// the CA (`--tls-auth-clients yes`).
    ///
    /// # Errors
    ///
    /// As [`LocalServer::start`]; redis-server must be built with TLS (Debian's is).
    pub async fn start(certs: &TestCertificates, mutual: bool) -> Result<Self, String> {
        let tls_port = free_port().to_string();
        let server = LocalServer::start(
            &REDIS,
            &[
                "--tls-port",
                &tls_port,
                "--tls-cert-file",
                &certs.server_cert.display().to_string(),
                "--tls-key-file",
                &certs.server_key.display().to_string(),
                "--tls-ca-cert-file",
                &certs.ca.display().to_string(),
                "--tls-auth-clients",
                if mutual { "yes" } else { "no" },
                "--dir",
                &certs.dir().path().display().to_string(),
            ],
        )
        .await?;
        let tls_port = tls_port.parse().expect("a port number");
        crate::wait_for_port(tls_port, std::time::Duration::from_secs(10)).await?;
        Ok(Self { server, tls_port })
    }

    /// `rediss://127.0.0.1:<tls port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The TLS port.
    #[must_use]
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The server process.
    #[must_use]
    pub fn server(&self) -> &LocalServer {
        &self.server
    }
}

/// A `memcached` that serves TLS (`-Z`) on its port, with the certificates of a
/// [`TestCertificates`].
#[derive(Debug)]
pub struct TlsMemcached {
    server: LocalServer,
}

impl TlsMemcached {
    /// Starts it; with `mutual`, it asks for a client certificate signed by the CA
    /// (`ssl_verify_mode=3`: required).
    ///
    /// # Errors
    ///
    /// As [`LocalServer::start`]; memcached must be built with TLS (Debian's is).
    pub async fn start(certs: &TestCertificates, mutual: bool) -> Result<Self, String> {
        let options = format!(
            "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_verify_mode={}",
            certs.server_cert.display(),
            certs.server_key.display(),
            certs.ca.display(),
            if mutual { 3 } else { 0 }
        );
        let server = LocalServer::start(&MEMCACHED, &["-Z", "-o", &options]).await?;
        Ok(Self { server })
    }

    /// `memcaches://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("memcaches://127.0.0.1:{}", self.server.port())
    }

    /// The server process.
    #[must_use]
    pub fn server(&self) -> &LocalServer {
        &self.server
    }
}

/// The test certificates and two TLS servers made with them: `server` takes any client,
/// `mutual` asks for a client certificate signed by the test CA. What a backend's TLS
/// tests share, started once per test process.
#[derive(Debug)]
pub struct TlsPair<S> {
    /// The certificates both servers show and trust.
    pub certs: TestCertificates,
    /// A server that takes clients without a certificate.
    pub server: S,
    /// A server that requires a client certificate (mutual TLS).
    pub mutual: S,
}

impl TlsPair<TlsRedis> {
    /// Makes the certificates and starts both `redis-server`s.
    ///
    /// # Panics
    ///
    /// When the certificates cannot be made or a server does not start, saying how to
    /// install a `redis-server` built with TLS.
    pub async fn redis() -> Self {
        let certs = TestCertificates::generate().expect("test certificates");
        let server = TlsRedis::start(&certs, false).await.unwrap_or_else(|err| {
            panic!("cannot start redis-server with --tls-port (apt-get install redis-server, 6.0 or later, built with tls): {err}")
        });
        let mutual = TlsRedis::start(&certs, true)
            .await
            .unwrap_or_else(|err| panic!("cannot start a mutual-tls redis-server: {err}"));
        Self {
            certs,
            server,
            mutual,
        }
    }
}

impl TlsPair<TlsMemcached> {
    /// Makes the certificates and starts both `memcached -Z`.
    ///
    /// # Panics
    ///
    /// When the certificates cannot be made or a server does not start, saying how to
    /// install a `memcached` built with TLS.
    pub async fn memcached() -> Self {
        let certs = TestCertificates::generate().expect("test certificates");
        let server = TlsMemcached::start(&certs, false).await.unwrap_or_else(|err| {
            panic!("cannot start memcached -Z (apt-get install memcached, 1.5.13 or later, built with tls): {err}")
        });
        let mutual = TlsMemcached::start(&certs, true)
            .await
            .unwrap_or_else(|err| panic!("cannot start a mutual-tls memcached: {err}"));
        Self {
            certs,
            server,
            mutual,
        }
    }
}

/// The message of an `Auth` error and of its source, for a test to look into.
///
/// # Panics
///
/// When `result` is anything but an `Auth` error, or when that error says it is worth a
/// retry (a refused certificate never is).
pub fn auth_message<T: std::fmt::Debug>(result: Result<T, cache_api::CacheError>) -> String {
    match result {
        Err(err @ cache_api::CacheError::Auth { .. }) => {
            assert!(!err.is_retryable(), "a refused certificate is not retried");
            let source = std::error::Error::source(&err).map(ToString::to_string);
            format!("{err} / {}", source.unwrap_or_default())
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}
