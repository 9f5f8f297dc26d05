//! The crate's error type.

use std::{fmt, sync::Arc, time::Duration};

use cache_api::CacheError;

/// A codec could not encode or decode a value.
#[derive(Debug, thiserror::Error)]
#[error("{codec} codec: {source}")]
pub struct CodecError {
    codec: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CodecError {
    /// An error of the codec named `codec`, keeping `source`.
    pub fn new(
        codec: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            codec,
            source: source.into(),
        }
    }

    /// The name of the codec that failed.
    #[must_use]
    pub fn codec(&self) -> &'static str {
        self.codec
    }
}

/// What a factory failed with, shared by every caller that waited for it (so it is
/// reference counted). [`FactoryError::downcast_ref`] gives back the factory's own type.
#[derive(Clone)]
pub struct FactoryError(Arc<dyn std::error::Error + Send + Sync>);

impl FactoryError {
    pub(crate) fn new(source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self(Arc::from(source))
    }

    /// The factory's error as its own type, when it is an `E`.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Debug for FactoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for FactoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for FactoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Everything a typed cache call can fail with.
///
/// A value that does not decode is not an error: it is a miss (and a `tracing`
/// warning), so that a format change never fails requests or starts a stampede.
///
/// ```
/// use std::time::Duration;
/// use cache_typed::Error;
///
/// let err = Error::Timeout { after: Duration::from_millis(250) };
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "factory did not finish within 250ms");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend failed (or refused the call: an empty key, a value too large).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The value could not be encoded; nothing was written.
    #[error("cannot encode the value: {0}")]
    Encode(#[source] CodecError),
    /// The factory returned an error (and no stale value could stand in for it).
    #[error("factory failed: {0}")]
    Factory(#[source] FactoryError),
    /// The factory panicked; the panic was caught and every waiter released.
    #[error("factory panicked: {message}")]
    FactoryPanicked {
        /// The panic's message, when it was a string.
        message: String,
    },
    /// The factory did not finish within the hard timeout. It keeps running in the
    /// background and stores its value when it finishes.
    #[error("factory did not finish within {after:?}")]
    Timeout {
        /// The hard timeout that ran out.
        after: Duration,
    },
    /// The factory's run was dropped before it ended, with the Tokio runtime it ran
    /// on (shut down meanwhile); nothing was stored.
    #[error("the factory's run was cancelled: its runtime shut down")]
    Cancelled,
    /// `get_or_set` was called outside a Tokio runtime: its factory runs as a task,
    /// and needs one.
    #[error("get_or_set needs a Tokio runtime: its factory runs as a task of the runtime it is called in")]
    NoRuntime,
    /// A factory called `get_or_set` for the key it is computing, or for a key whose
    /// run waits (through the runs of other keys) for its own: it would wait for
    /// itself forever.
    #[error(
        "a factory asked for {key:?}, whose run waits for that factory: it would wait for itself"
    )]
    Recursive {
        /// The key.
        key: String,
    },
}

impl Error {
    /// True for [`Error::Timeout`].
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// The factory's own error, when the call failed with one of type `E`.
    #[must_use]
    pub fn factory_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Factory(source) => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// The outcome of a factory run, cloned to every waiter.
#[derive(Debug, Clone)]
pub(crate) enum FlightError {
    Factory(FactoryError),
    Panicked(Arc<str>),
    /// The run's task was dropped before it ended: its runtime shut down.
    Cancelled,
    /// No Tokio runtime to run the factory on.
    NoRuntime,
}

impl From<FlightError> for Error {
    fn from(err: FlightError) -> Self {
        match err {
            FlightError::Factory(source) => Error::Factory(source),
            FlightError::Panicked(message) => Error::FactoryPanicked {
                message: message.to_string(),
            },
            FlightError::Cancelled => Error::Cancelled,
            FlightError::NoRuntime => Error::NoRuntime,
        }
    }
}
