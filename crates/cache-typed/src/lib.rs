#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod codec;
mod distributed;
pub mod envelope;
mod error;
mod fallback;
mod flight;
mod get_or_set;
mod jitter;
mod options;
mod stored;
pub mod telemetry;
mod typed;

#[cfg(feature = "json")]
pub use codec::JsonCodec;
#[cfg(feature = "postcard")]
pub use codec::PostcardCodec;
pub use codec::{Codec, Compression};
pub use distributed::LOCK_SUFFIX;
pub use error::{CodecError, Error, FactoryError};
pub use options::{DistributedLock, EntryOptions, ReadErrors};
pub use typed::{DecodeError, Entry, TypedCache, TypedCacheBuilder, Value};
