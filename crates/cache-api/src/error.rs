//! The one error type of the contract.

use std::time::Duration;

/// A boxed error kept as the source of a backend failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a cache operation can fail with.
///
/// The variants fall in two families, told apart by [`CacheError::is_caller_error`]:
///
/// - **caller mistakes** ([`InvalidKey`](Self::InvalidKey),
///   [`ValueTooLarge`](Self::ValueTooLarge), [`InvalidTtl`](Self::InvalidTtl),
///   [`Unsupported`](Self::Unsupported), [`Config`](Self::Config)): retrying the same
///   call cannot help, and nothing was written;
/// - **backend trouble** ([`Unreachable`](Self::Unreachable), [`Timeout`](Self::Timeout),
///   [`Auth`](Self::Auth), [`PermissionDenied`](Self::PermissionDenied),
///   [`Backend`](Self::Backend)): the server could not be reached, did not answer in
///   time, refused the credentials or the command, or answered with an error.
///   [`CacheError::is_retryable`] says which of these are worth another try.
///
/// Messages are meant for logs: they never contain a password from a connection URL,
/// and they name the limit that was broken.
///
/// ```
/// use cache_api::CacheError;
///
/// let err = CacheError::ValueTooLarge { size: 2 << 20, limit: 1 << 20 };
/// assert!(err.is_caller_error());
/// assert!(!err.is_retryable());
/// assert_eq!(err.to_string(), "value of 2097152 bytes exceeds the limit of 1048576 bytes");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key cannot be used (the empty key, on every backend).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was refused.
        reason: &'static str,
    },

    /// The value is larger than the backend accepts; nothing was written.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the refused value in bytes.
        size: usize,
        /// Largest value the backend accepts, in bytes.
        limit: usize,
    },

    /// The TTL cannot be represented by the backend; nothing was written.
    #[error("invalid ttl of {ttl:?}: {reason}")]
    InvalidTtl {
        /// The refused TTL.
        ttl: Duration,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The backend does not offer this operation.
    #[error("{operation} is not supported by this backend")]
    Unsupported {
        /// The operation that was asked for.
        operation: &'static str,
    },

    /// The cache was configured with contradictory or malformed settings
    /// (a bad URL, an unknown scheme, a zero pool size).
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong, without any secret from the configuration.
        message: String,
    },

    /// The server could not be reached: connection refused, reset or closed.
    #[error("{backend} unreachable: {source}")]
    Unreachable {
        /// Which backend ("redis", "memcached", ...).
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The server did not answer within the configured timeout, or the call ran past
    /// its deadline.
    #[error("{backend} {operation} timed out after {after:?} ({phase})")]
    Timeout {
        /// Which backend.
        backend: &'static str,
        /// The cache operation that timed out: `get`, `set_many`, `clear`...
        operation: &'static str,
        /// What was waited for when the time ran out: `connect`, `response`,
        /// `pool checkout`, or `deadline` (a whole-call deadline around the backend).
        phase: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },

    /// The server refused the credentials.
    #[error("{backend} authentication failed: {source}")]
    Auth {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The server knows who is asking but refuses the command to that user (a Redis ACL
    /// without the right, `NOPERM`); the message names the command. Retrying cannot
    /// help: the account needs the right, or the application another setting.
    #[error("{backend} permission denied: {source}")]
    PermissionDenied {
        /// Which backend.
        backend: &'static str,
        /// The underlying error, naming the refused command.
        #[source]
        source: BoxError,
    },

    /// The server answered with an error, or with something the client could not parse.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl CacheError {
    /// Builds a [`CacheError::Config`] from anything printable.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// True for mistakes of the caller (bad key, value, TTL, configuration or an
    /// unsupported operation): the same call will fail again, and nothing was written.
    #[must_use]
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidKey { .. }
                | Self::ValueTooLarge { .. }
                | Self::InvalidTtl { .. }
                | Self::Unsupported { .. }
                | Self::Config { .. }
        )
    }

    /// True when the same call may succeed if tried again: the server was
    /// unreachable or did not answer in time.
    ///
    /// A timed-out write may or may not have been applied. Repeating a read, a `set`,
    /// a `set_many` or a `clear` is safe: they end in the same state. The answers of
    /// `add`, `delete` and `delete_many` are not: after a lost answer, a repeat says
    /// `false` (or a smaller count) for what the first attempt did.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }

    /// The same error, naming `operation` as the cache operation that timed out when
    /// it is a [`CacheError::Timeout`]; any other error is returned as it is. For the
    /// call site of a backend, which knows the operation where the code that met the
    /// timeout knows only the phase.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_api::CacheError;
    ///
    /// let met = CacheError::Timeout {
    ///     backend: "redis",
    ///     operation: "",
    ///     phase: "response",
    ///     after: Duration::from_millis(500),
    /// };
    /// let named = met.in_operation("get_many");
    /// assert_eq!(named.to_string(), "redis get_many timed out after 500ms (response)");
    /// ```
    #[must_use]
    pub fn in_operation(self, operation: &'static str) -> Self {
        match self {
            Self::Timeout {
                backend,
                phase,
                after,
                ..
            } => Self::Timeout {
                backend,
                operation,
                phase,
                after,
            },
            other => other,
        }
    }

    /// True when the error is a [`CacheError::Timeout`].
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}
