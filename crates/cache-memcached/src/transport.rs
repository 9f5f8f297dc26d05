//! How a server is reached: plain TCP (`memcache://`), TLS over TCP (`memcaches://`:
//! rustls with the ring provider, the system's roots unless `tls_ca` names a CA file, an
//! optional client certificate for mutual TLS) or a unix socket (`memcache+unix://`).
//!
//! Every connection of the crate is dialled here, the multiplexed ones and the text
//! protocol ones alike, so none of them can bypass TLS.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use cache_api::CacheError;
use cache_tls::Certificates;
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        Resumption,
    },
    crypto::{ring, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

/// A byte stream to a server, whatever carries it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connected stream.
pub(crate) type Stream = Box<dyn Io>;

/// The most plaintext bytes rustls puts in one TLS record.
const TLS_RECORD: usize = 16 * 1024;

/// The TLS settings of a `memcaches://` URL, with the meanings of the Redis backend's.
pub(crate) use cache_tls::TlsSettings;

/// How the servers of a cache are reached, as the URL said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `host:port` over TCP.
    #[default]
    Tcp,
    /// `host:port` over TLS.
    Tls(TlsSettings),
    /// The server address is a unix socket path.
    Unix,
}

impl crate::MemcachedCacheBuilder {
    /// The CA certificates (a PEM file) to trust instead of the system's roots, for a
    /// `memcaches://` URL. URL: `tls_ca=/path`. On any other scheme `build` fails with
    /// [`CacheError::Config`]: a TLS setting is never silently ignored.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cache_api::CacheError> {
    /// let cache = cache_memcached::MemcachedCache::builder("memcaches://cache.internal:11211")
    ///     .tls_ca_file("/etc/memcached/ca.pem")
    ///     .tls_client_cert("/etc/app/client.pem", "/etc/app/client.key")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_ca_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.with_tls("tls_ca_file", |tls| tls.ca_file = Some(path))
    }

    /// A client certificate (chain) and its private key, PEM files, for servers that
    /// verify clients (memcached `ssl_verify_mode=2` or `3`). URL: `tls_cert=/path&tls_key=/path`.
    pub fn tls_client_cert(self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        let (cert, key) = (cert.into(), key.into());
        self.with_tls("tls_client_cert", |tls| {
            tls.cert_file = Some(cert);
            tls.key_file = Some(key);
        })
    }

    /// Accepts any certificate from the server, from anyone: for throw-away test servers
    /// only. URL: `tls_insecure_skip_verify=true`.
    pub fn tls_insecure_skip_verify(self, skip: bool) -> Self {
        self.with_tls("tls_insecure_skip_verify", |tls| {
            tls.insecure_skip_verify = skip;
        })
    }

    /// Applies `change` to the TLS settings of a `memcaches://` URL; on any other scheme,
    /// `build` fails naming `method`.
    pub(crate) fn with_tls(mut self, method: &str, change: impl FnOnce(&mut TlsSettings)) -> Self {
        match &mut self.scheme {
            Scheme::Tls(settings) => change(settings),
            // Reported by `build`, as a bad URL is; an earlier error stays.
            _ if self.servers.is_ok() => {
                self.servers = Err(format!("{method} applies to memcaches:// urls only"));
            }
            _ => {}
        }
        self
    }
}

/// A [`Scheme`] made ready to dial: the TLS configuration built once, its files read.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls(TlsConnector),
    /// A unix socket.
    Unix,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Tls(_) => "tls",
            Transport::Unix => "unix",
        })
    }
}

impl Transport {
    /// Reads the files the scheme names and builds its TLS configuration.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for contradictory settings, a file that cannot be read, or
    /// a certificate or key that cannot be used.
    pub(crate) fn new(scheme: &Scheme) -> Result<Self, CacheError> {
        Ok(match scheme {
            Scheme::Tcp => Transport::Tcp,
            Scheme::Unix => Transport::Unix,
            Scheme::Tls(settings) => {
                Transport::Tls(TlsConnector::from(Arc::new(client_config(settings)?)))
            }
        })
    }

    /// The most bytes one write may hold without a request crossing into the next TLS
    /// record with another request behind it; `None` without TLS.
    ///
    /// memcached (1.6.18 at least) leaves a request unanswered when it arrives in the
    /// same TLS record as the end of a request that began in an earlier record: it
    /// answers once more bytes come, which a client waiting for that answer never
    /// sends. Writes of whole requests that fit in one record (16 KiB of plaintext, as
    /// rustls cuts them), and a longer request alone in its write, never put one
    /// request behind the end of another in a record.
    pub(crate) fn record_limit(&self) -> Option<usize> {
        matches!(self, Transport::Tls(_)).then_some(TLS_RECORD)
    }

    /// Connects to `address` (`host:port`, or a socket path); with TLS, the handshake
    /// too, the server's name being the address's host.
    ///
    /// # Errors
    ///
    /// The socket's error; a certificate refused on either side is an error that
    /// [`refusal`] describes.
    pub(crate) async fn dial(&self, address: &str) -> io::Result<Stream> {
        match self {
            #[cfg(unix)]
            Transport::Unix => Ok(Box::new(tokio::net::UnixStream::connect(address).await?)),
            #[cfg(not(unix))]
            Transport::Unix => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{address}: unix sockets exist on unix systems only"),
            )),
            Transport::Tcp => Ok(Box::new(tcp(address).await?)),
            Transport::Tls(connector) => {
                let name = ServerName::try_from(host_of(address).to_owned()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{address} has no host name tls can verify"),
                    )
                })?;
                let stream = tcp(address).await?;
                let mut stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|error| not_tls(address, error))?;
                // Every write taken whole, so that its records end where it ends (see
                // `record_limit`); the writer bounds what it writes at once itself.
                stream.get_mut().1.set_buffer_limit(None);
                Ok(Box::new(stream))
            }
        }
    }
}

async fn tcp(address: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    // Requests are written as soon as they are ready; Nagle would hold small ones.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A handshake answered with bytes that are not TLS (a plain memcached answers the
/// client's hello with `ERROR`) says so, rather than only rustls's word for it.
fn not_tls(address: &str, error: io::Error) -> io::Error {
    let plain = error
        .get_ref()
        .and_then(|payload| payload.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidMessage(_)));
    if !plain {
        return error;
    }
    io::Error::new(
        error.kind(),
        format!(
            "{address} did not answer the tls handshake ({error}): is it a plain \
             memcached port? memcache:// is the url for one"
        ),
    )
}

/// The longest a plain-text connection's failure waits for the TLS question asked of its
/// server: a TLS server answers a hello within a round trip.
const TLS_PROBE_WAIT: Duration = Duration::from_millis(500);

impl Transport {
    /// Replaces `error`, met in the first exchange with `address` over plain TCP, by a
    /// configuration error when that port answers a TLS hello: a TLS port resets a
    /// plain-text client, which alone says only "connection reset". Any other error
    /// (a timeout among them: a TLS port refuses a plain client's first bytes, it does
    /// not leave it waiting, and asking would hold a silent server's error back past the
    /// timeout), any other transport, or a port that gives no TLS answer within `within`
    /// (at most half a second) leaves `error` as it is.
    pub(crate) async fn explain(
        &self,
        address: &str,
        error: CacheError,
        within: Duration,
    ) -> CacheError {
        let connect_failed = matches!(error, CacheError::Unreachable { .. });
        let Some(port) = address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
        else {
            return error;
        };
        if !matches!(self, Transport::Tcp)
            || !connect_failed
            || !cache_tls::answers_tls(host_of(address), port, within.min(TLS_PROBE_WAIT)).await
        {
            return error;
        }
        CacheError::config(cache_tls::tls_port_message(
            address,
            "memcache",
            "memcaches",
            "-p",
        ))
    }
}

/// The host of `host:port` or `[v6]:port`, without brackets.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

fn client_config(settings: &TlsSettings) -> Result<ClientConfig, CacheError> {
    let files = settings.load()?;
    // The provider is named here rather than taken from the process default, so that an
    // application that installed another one (or none) changes nothing.
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| CacheError::config(format!("invalid tls settings: {err}")))?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(
                provider.signature_verification_algorithms,
            )))
    } else {
        builder.with_root_certificates(roots(files.roots, settings.ca_file.as_deref())?)
    };
    let mut config = match files.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key())
            .map_err(|err| {
                CacheError::config(format!("invalid tls certificate or key file: {err}"))
            })?,
    };
    // memcached (OpenSSL, no session id context) answers a resumed session with a fatal
    // `internal_error` alert when it verifies clients; connections are few and long-lived,
    // so a full handshake each time costs nothing worth the risk.
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// The certificates to trust: those of the `tls_ca` file at `ca_file`, read as `ca`, else
/// the system's.
fn roots(ca: Option<Certificates>, ca_file: Option<&Path>) -> Result<RootCertStore, CacheError> {
    let mut roots = RootCertStore::empty();
    let certificates = match ca {
        Some(ca) => ca.certificates,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (_, ignored) = roots.add_parsable_certificates(certificates);
    if roots.is_empty() {
        return Err(CacheError::config(match ca_file {
            Some(path) => format!(
                "the tls_ca file {} holds no usable certificate",
                path.display()
            ),
            None => {
                "no usable certificate among the system's roots: name one with tls_ca".to_owned()
            }
        }));
    }
    if ignored > 0 {
        tracing::debug!(
            ignored,
            "memcached: tls roots that could not be parsed were left out"
        );
    }
    Ok(roots)
}

/// The message of a failed dial, naming the server (with several, which one is down):
/// `connecting to {server}: {error}`.
pub(crate) fn dial_message(server: &str, error: &io::Error) -> String {
    format!("connecting to {server}: {error}")
}

/// Why a connection failed on a certificate, if that is what `err` says: the server's
/// certificate was refused here (wrong CA, wrong name, expired), or the server refused
/// ours (mutual TLS without a certificate, or with one it does not trust).
pub(crate) fn refusal(err: &io::Error) -> Option<String> {
    let payload = err.get_ref()?;
    if let Some(refused) = payload.downcast_ref::<CertificateRefused>() {
        return Some(refused.0.clone());
    }
    cache_tls::describe(payload.downcast_ref::<rustls::Error>()?)
}

/// A certificate refused on either side: kept as the payload of an I/O error, which the
/// error mapping turns into [`CacheError::Auth`], never retried.
#[derive(Debug)]
pub(crate) struct CertificateRefused(pub(crate) String);

impl fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CertificateRefused {}

/// The refusal in `err`, as [`CacheError::Auth`].
pub(crate) fn auth_error(err: &io::Error) -> Option<CacheError> {
    refusal(err).map(|message| CacheError::Auth {
        backend: crate::error::BACKEND,
        source: Box::new(CertificateRefused(message)),
    })
}

/// `tls_insecure_skip_verify=true`: any certificate is accepted, its signatures still
/// checked so that the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port that answers whatever it is sent with a TLS alert, as a TLS server answers
    /// a hello it refuses.
    async fn tls_port() -> u16 {
        cache_testserver::answering_port(b"\x15\x03\x03\x00\x02\x02\x28").await
    }

    fn reset() -> CacheError {
        CacheError::Unreachable {
            backend: crate::error::BACKEND,
            source: Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
        }
    }

    #[tokio::test]
    async fn a_plain_connection_reset_by_a_tls_port_is_explained() {
        let address = format!("127.0.0.1:{}", tls_port().await);
        let within = Duration::from_secs(2);
        let error = Transport::Tcp.explain(&address, reset(), within).await;
        let CacheError::Config { message } = error else {
            panic!("{error:?}");
        };
        assert!(
            message.contains(&format!("{address} answers over tls"))
                && message.contains("memcaches://"),
            "{message}"
        );
        // Not over a unix socket, nor for an error that is not about reaching the server.
        let unix = Transport::Unix.explain(&address, reset(), within).await;
        assert!(matches!(unix, CacheError::Unreachable { .. }), "{unix:?}");
        let other = CacheError::config("no memcached");
        let other = Transport::Tcp.explain(&address, other, within).await;
        assert!(matches!(other, CacheError::Config { message } if message == "no memcached"));
        // A socket path has no port to ask.
        let path = Transport::Tcp
            .explain("/tmp/memcached.sock", reset(), within)
            .await;
        assert!(matches!(path, CacheError::Unreachable { .. }), "{path:?}");
    }

    fn config_message(settings: TlsSettings) -> String {
        cache_tck::config_message(Transport::new(&Scheme::Tls(settings)))
    }

    /// The files are read when the transport is made (cache_tls's own tests go through
    /// every wrong file and contradiction).
    #[test]
    fn tls_files_are_read_when_the_transport_is_made() {
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let message = config_message(missing);
        assert!(
            message.contains("tls_ca") && message.contains("/nonexistent/ca.pem"),
            "{message}"
        );
    }

    #[test]
    fn builder_methods_set_tls_only_on_a_tls_url() {
        let builder = crate::MemcachedCache::builder("memcaches://h?tls_ca=/url.pem")
            .tls_ca_file("/ca.pem")
            .tls_client_cert("/c.pem", "/c.key");
        let expected = TlsSettings {
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/c.pem".into()),
            key_file: Some("/c.key".into()),
            insecure_skip_verify: false,
        };
        assert_eq!(builder.scheme, Scheme::Tls(expected));
        let plain = crate::MemcachedCache::builder("memcache://h").tls_insecure_skip_verify(true);
        match plain.checked_servers() {
            Err(CacheError::Config { message }) => assert!(
                message.contains("tls_insecure_skip_verify") && message.contains("memcaches://"),
                "{message}"
            ),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("cache.example:11211"), "cache.example");
        assert_eq!(host_of("127.0.0.1:11211"), "127.0.0.1");
        assert_eq!(host_of("[::1]:11211"), "::1");
    }

    #[test]
    fn verification_failures_are_described() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = io::Error::new(io::ErrorKind::InvalidData, unknown);
        let described = refusal(&err).expect("a certificate failure");
        assert!(described.contains("UnknownIssuer"), "{described}");
        let mapped = auth_error(&err).expect("an auth error");
        assert!(matches!(mapped, CacheError::Auth { .. }));
        assert!(mapped.to_string().contains("UnknownIssuer"), "{mapped}");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(refusal(&refused), None);
    }
}
