//! From the client library's errors to the contract's [`CacheError`].

use std::{fmt, io, time::Duration};

use cache_api::CacheError;
use memcache::exp::Error;

/// The backend's name in every error.
pub(crate) const BACKEND: &str = "memcached";

/// What an error is mapped with: which operation ran, under which timeout, and, for a
/// write, the size of the value and the configured limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    pub(crate) operation: &'static str,
    pub(crate) timeout: Duration,
    pub(crate) value: Option<(usize, usize)>,
}

impl Context {
    /// The timeout of a whole exchange (every call is bounded by one timer, sending
    /// and answer together): the `response` phase, or `connect` for the connection
    /// probe.
    pub(crate) fn timeout(&self) -> CacheError {
        let phase = match self.operation {
            "connect" => "connect",
            _ => "response",
        };
        self.timeout_in(phase)
    }

    /// The timeout of `phase` of this context's operation.
    pub(crate) fn timeout_in(&self, phase: &'static str) -> CacheError {
        CacheError::Timeout {
            backend: BACKEND,
            operation: self.operation,
            phase,
            after: self.timeout,
        }
    }

    /// Maps an error of `memcache::exp`, keeping it as the source.
    ///
    /// A request that was written but not answered (`Ambiguous`) is classified by what
    /// went wrong, a timed-out write as a timed-out read: whether a repeat is safe is
    /// the caller's to decide ([`CacheError::is_retryable`]).
    pub(crate) fn map(&self, error: Error) -> CacheError {
        if let Some(auth) = refused(&error) {
            return auth;
        }
        if is_too_large(&error) {
            match self.value {
                Some((size, limit)) if size > limit => {
                    return CacheError::ValueTooLarge { size, limit };
                }
                // A server whose item size is smaller than the one found at build (lowered
                // since, or behind a proxy): the value is over its limit all the same, which
                // is below this value's size. The cache asks the servers again and names
                // the limit it finds (`MemcachedCache::write_failed`).
                Some((size, _)) => {
                    return CacheError::ValueTooLarge {
                        size,
                        limit: size.saturating_sub(1),
                    };
                }
                None => {}
            }
        }
        match kind(&error) {
            Kind::Timeout => self.timeout(),
            Kind::Unreachable => CacheError::Unreachable {
                backend: BACKEND,
                source: Box::new(error),
            },
            Kind::Backend => CacheError::Backend {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}

/// A certificate refused on either side of a TLS handshake, as [`CacheError::Auth`].
fn refused(error: &Error) -> Option<CacheError> {
    match error {
        Error::Io(io) => crate::transport::auth_error(io),
        Error::Ambiguous { source, .. } => refused(source),
        _ => None,
    }
}

enum Kind {
    Timeout,
    Unreachable,
    Backend,
}

fn kind(error: &Error) -> Kind {
    match error {
        Error::Timeout { .. } => Kind::Timeout,
        Error::Io(io) if io.kind() == io::ErrorKind::TimedOut => Kind::Timeout,
        Error::Io(_) => Kind::Unreachable,
        Error::Ambiguous { source, .. } => kind(source),
        _ => Kind::Backend,
    }
}

/// memcached answers `SERVER_ERROR object too large for cache` to a value over its item
/// size (`-I`), after reading the value off the wire, so the connection stays usable.
fn is_too_large(error: &Error) -> bool {
    match error {
        Error::Server(message) => message.contains("too large"),
        Error::Ambiguous { source, .. } => is_too_large(source),
        _ => false,
    }
}

/// An answer of the server that the contract cannot accept, kept as the source of a
/// [`CacheError::Backend`].
#[derive(Debug)]
pub(crate) struct Unexpected(pub(crate) String);

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unexpected {}

/// A [`CacheError::Backend`] for an answer the server should not have given.
pub(crate) fn unexpected(message: impl Into<String>) -> CacheError {
    CacheError::Backend {
        backend: BACKEND,
        source: Box::new(Unexpected(message.into())),
    }
}

/// The reason in a line memcached sends in place of any answer when it refuses a
/// connection (`ERROR Too many open connections`, past `-c`), before closing it: an
/// `ERROR` with words after it, which no command is answered with (an unknown command
/// gets a bare `ERROR`). The connection is lost, not the command refused: worth a retry
/// once the server has room.
pub(crate) fn connection_refusal(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let reason = line.strip_prefix(b"ERROR ")?.trim_ascii();
    (!reason.is_empty()).then(|| String::from_utf8_lossy(reason).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(value: Option<(usize, usize)>) -> Context {
        Context {
            operation: "set",
            timeout: Duration::from_millis(250),
            value,
        }
    }

    #[test]
    fn a_refused_connection_is_told_from_a_refused_command() {
        assert_eq!(
            connection_refusal(b"ERROR Too many open connections\r\n").as_deref(),
            Some("Too many open connections")
        );
        assert_eq!(
            connection_refusal(b"ERROR out of room").as_deref(),
            Some("out of room")
        );
        for command_refused in [
            &b"ERROR\r\n"[..],
            b"ERROR",
            b"ERROR \r\n",
            b"CLIENT_ERROR bad",
            b"EN",
        ] {
            assert_eq!(
                connection_refusal(command_refused),
                None,
                "{command_refused:?}"
            );
        }
    }

    #[test]
    fn transport_errors_are_told_apart() {
        let refused = Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            context(None).map(refused),
            CacheError::Unreachable { .. }
        ));
        let timed_out = Error::Timeout { key: b"k".to_vec() };
        let mapped = context(None).map(timed_out);
        assert_eq!(
            mapped.to_string(),
            "memcached set timed out after 250ms (response)"
        );
        let written = Error::Ambiguous {
            key: b"k".to_vec(),
            source: Box::new(Error::Timeout { key: b"k".to_vec() }),
        };
        assert!(context(None).map(written).is_timeout());
        let reset = Error::Ambiguous {
            key: b"k".to_vec(),
            source: Box::new(Error::Io(io::Error::from(io::ErrorKind::ConnectionReset))),
        };
        assert!(matches!(
            context(None).map(reset),
            CacheError::Unreachable { .. }
        ));
        let other = Error::Protocol("garbled".into());
        let mapped = context(None).map(other);
        assert!(matches!(mapped, CacheError::Backend { .. }));
        assert!(std::error::Error::source(&mapped).is_some());
    }

    #[test]
    fn object_too_large_is_value_too_large() {
        let answer = || Error::Ambiguous {
            key: b"k".to_vec(),
            source: Box::new(Error::Server("object too large for cache".into())),
        };
        let mapped = context(Some((2 << 20, 1 << 20))).map(answer());
        assert!(
            matches!(mapped, CacheError::ValueTooLarge { size, limit } if size == 2 << 20 && limit == 1 << 20)
        );
        // Without a value (a read), the same answer is only a backend error.
        assert!(matches!(
            context(None).map(answer()),
            CacheError::Backend { .. }
        ));
        // A value within the limit refused all the same (a server whose item size was
        // lowered since the build): too large all the same, for a limit below its size.
        let within = context(Some((1000, 1 << 20))).map(answer());
        assert!(
            matches!(
                within,
                CacheError::ValueTooLarge {
                    size: 1000,
                    limit: 999
                }
            ),
            "{within:?}"
        );
    }
}
