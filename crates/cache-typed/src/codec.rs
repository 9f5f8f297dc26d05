//! How a value becomes bytes: the [`Codec`] trait and the codecs of this crate, and the
//! optional compression of large payloads.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::CodecError;

/// Turns values into bytes and back. Each codec has an id, stored in every envelope, so
/// that a value written with one codec is never decoded with another (it reads as a
/// miss instead).
///
/// Ids `0x01..=0x7F` belong to this crate (`0x01` JSON, `0x02` postcard, `0x03`
/// reserved); an application codec takes an id in `0x80..=0xFF`.
///
/// ```
/// use cache_typed::{Codec, CodecError};
///
/// /// Plain UTF-8 strings, for values other clients read too.
/// struct Utf8;
///
/// impl Codec for Utf8 {
///     const ID: u8 = 0x80;
///     const NAME: &'static str = "utf8";
///
///     fn encode<V: serde::Serialize + ?Sized>(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         let text = serde_json::to_value(value).map_err(|e| CodecError::new(Self::NAME, e))?;
///         let text = text.as_str().ok_or_else(|| CodecError::new(Self::NAME, "not a string"))?;
///         out.extend_from_slice(text.as_bytes());
///         Ok(())
///     }
///
///     fn decode<V: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, CodecError> {
///         let text = std::str::from_utf8(bytes).map_err(|e| CodecError::new(Self::NAME, e))?;
///         serde_json::from_value(text.into()).map_err(|e| CodecError::new(Self::NAME, e))
///     }
/// }
///
/// let mut out = Vec::new();
/// Utf8.encode("hello", &mut out).unwrap();
/// assert_eq!(Utf8.decode::<String>(&out).unwrap(), "hello");
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The id stored in the envelope.
    const ID: u8;
    /// A short name for messages and logs.
    const NAME: &'static str;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] when the value cannot be encoded (a map with non-string keys in
    /// JSON, a failing `Serialize` impl).
    fn encode<V: Serialize + ?Sized>(&self, value: &V, out: &mut Vec<u8>)
        -> Result<(), CodecError>;

    /// Reads a value from `bytes`.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] when the bytes are not an encoding of a `V`.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// JSON through `serde_json` (feature `json`, default): readable by any client, the
/// largest and slowest of the codecs (see the crate's figures).
///
/// ```
/// use cache_typed::{Codec, JsonCodec};
///
/// let mut out = Vec::new();
/// JsonCodec.encode(&vec![1, 2], &mut out).unwrap();
/// assert_eq!(out, b"[1,2]");
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

#[cfg(feature = "json")]
impl Codec for JsonCodec {
    const ID: u8 = 0x01;
    const NAME: &'static str = "json";

    fn encode<V: Serialize + ?Sized>(
        &self,
        value: &V,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(|err| CodecError::new(Self::NAME, err))
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, CodecError> {
        serde_json::from_slice(bytes).map_err(|err| CodecError::new(Self::NAME, err))
    }
}

/// The compact binary codec, `postcard` (feature `postcard`): chosen over `rmp-serde`
/// by measurement (smaller and faster to encode on a realistic struct; see the crate's
/// figures). Its wire format is stable across postcard 1.x. Not self-describing: a
/// value read as another type may decode to garbage rather than fail, so give each
/// type its own keys. A value that leaves bytes unread (one written with more fields)
/// is refused.
///
/// ```
/// use cache_typed::{Codec, PostcardCodec};
///
/// let mut out = Vec::new();
/// PostcardCodec.encode(&(7_u8, "hi"), &mut out).unwrap();
/// assert_eq!(out, [7, 2, b'h', b'i']);
/// // Read as a lone `u8`, three bytes are left over: not a `u8`.
/// assert!(PostcardCodec.decode::<u8>(&out).is_err());
/// ```
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy, Default)]
pub struct PostcardCodec;

#[cfg(feature = "postcard")]
impl Codec for PostcardCodec {
    const ID: u8 = 0x02;
    const NAME: &'static str = "postcard";

    fn encode<V: Serialize + ?Sized>(
        &self,
        value: &V,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // `to_extend` takes the vector by value and hands it back with the bytes added.
        *out = postcard::to_extend(value, std::mem::take(out))
            .map_err(|err| CodecError::new(Self::NAME, err))?;
        Ok(())
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, CodecError> {
        let (value, rest) =
            postcard::take_from_bytes(bytes).map_err(|err| CodecError::new(Self::NAME, err))?;
        // Bytes left over: the value was written as another type (a field added or
        // removed since), which postcard alone would read in part without a word.
        if !rest.is_empty() {
            return Err(CodecError::new(
                Self::NAME,
                format!(
                    "{} bytes left after the value: it was written as another type",
                    rest.len()
                ),
            ));
        }
        Ok(value)
    }
}

/// Compression of payloads of at least a threshold size, with LZ4 (`lz4_flex`, feature
/// `lz4`): chosen over zstd by measurement (5 to 10 times faster both ways, pure Rust;
/// zstd compresses about twice as well). A payload is stored compressed only when that
/// makes it smaller.
///
/// ```
/// use cache_typed::Compression;
///
/// assert_eq!(Compression::default(), Compression::none());
/// # #[cfg(feature = "lz4")]
/// let large_values = Compression::lz4(1024); // payloads of 1 KiB or more
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compression {
    min_size: Option<usize>,
}

/// The largest uncompressed payload accepted, whatever a header claims: LZ4 cannot
/// expand more than 255 times, and no cache value is larger than this.
const MAX_DECOMPRESSED: usize = 512 << 20;

impl Compression {
    /// No compression.
    #[must_use]
    pub const fn none() -> Self {
        Self { min_size: None }
    }

    /// LZ4 for payloads of `min_size` bytes or more.
    #[cfg(feature = "lz4")]
    #[must_use]
    pub const fn lz4(min_size: usize) -> Self {
        Self {
            min_size: Some(min_size),
        }
    }

    /// The compressed form of `payload` when compression applies and pays off.
    pub(crate) fn compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let min_size = self.min_size?;
        if payload.len() < min_size {
            return None;
        }
        compress(payload).filter(|compressed| compressed.len() < payload.len())
    }
}

#[cfg(feature = "lz4")]
fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    Some(lz4_flex::block::compress_prepend_size(payload))
}

#[cfg(not(feature = "lz4"))]
fn compress(_payload: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Reverses [`Compression::compress`], refusing sizes no real payload has before
/// allocating anything.
#[cfg(feature = "lz4")]
pub(crate) fn decompress(stored: &[u8]) -> Result<Vec<u8>, crate::envelope::EnvelopeError> {
    use crate::envelope::EnvelopeError;
    let (size, block) = lz4_flex::block::uncompressed_size(stored)
        .map_err(|err| EnvelopeError::Decompress(err.to_string()))?;
    if size > MAX_DECOMPRESSED || size > block.len().saturating_mul(255).saturating_add(16) {
        return Err(EnvelopeError::Decompress(format!(
            "claims {size} bytes from {} compressed bytes",
            block.len()
        )));
    }
    let out = lz4_flex::block::decompress(block, size)
        .map_err(|err| EnvelopeError::Decompress(err.to_string()))?;
    if out.len() != size {
        return Err(EnvelopeError::Decompress(format!(
            "{} bytes decompressed, {size} announced",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(not(feature = "lz4"))]
pub(crate) fn decompress(_stored: &[u8]) -> Result<Vec<u8>, crate::envelope::EnvelopeError> {
    let _ = MAX_DECOMPRESSED;
    Err(crate::envelope::EnvelopeError::CompressionUnavailable)
}
