//! The versioned envelope around every stored value.
//!
//! Layout of format version 1 (integers big-endian):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 2 | magic `0xCA 0x7E` (never valid UTF-8, so no text written by another client matches) |
//! | 2 | 1 | format version, `0x01` |
//! | 3 | 1 | codec id: `0x01` JSON, `0x02` postcard, `0x03` reserved (MessagePack), `0x80..=0xFF` application codecs |
//! | 4 | 1 | flags: bit 0 = payload compressed (LZ4 block, see below); bits 1-7 are zero in version 1, and a reader refuses a set bit it does not know |
//! | 5 | 8 | written at: unix time in milliseconds |
//! | 13 | 8 | logical expiry: unix time in milliseconds after which the value is stale; `0` = none |
//! | 21 | 2 | tags length `T` |
//! | 23 | `T` | tags: reserved for tag-based invalidation; version 1 writes `T = 0` and readers skip whatever is there |
//! | 23 + `T` | rest | payload: the codec's bytes, or when compressed a 4-byte little-endian uncompressed length followed by an LZ4 block |
//!
//! The logical expiry is what `get_or_set` reads to tell a fresh value from a stale one;
//! the backend's TTL (the physical expiry) may be later, to keep the value for fail-safe.
//! The write time lets a reader tell the newer of two copies apart (tiers, backplanes).

use std::fmt;

/// The first two bytes of every envelope.
pub const MAGIC: [u8; 2] = [0xCA, 0x7E];
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the fixed part of a version 1 header, before the tags.
pub const HEADER_LEN: usize = 23;
/// Flag bit: the payload is LZ4-compressed, its uncompressed length first.
pub const FLAG_COMPRESSED: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED;

/// Why bytes read from the backend are not an envelope this version can read. The read
/// is then a miss (and a `tracing` warning), never a failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than a header, or than the header says.
    #[error("truncated envelope: {len} bytes, at least {needed} needed")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header calls for.
        needed: usize,
    },
    /// The value was not written by this crate (another client, or plain bytes).
    #[error("not an envelope: wrong magic bytes")]
    ForeignValue,
    /// Written by a format version this crate does not read.
    #[error("envelope format version {0} is not supported (this crate reads version 1)")]
    UnsupportedVersion(u8),
    /// A flag this version does not know is set.
    #[error("envelope flags {0:#04x} include flags this version does not know")]
    UnknownFlags(u8),
    /// Written with another codec than the reader's.
    #[error("value written with codec {found}, read with codec {expected}")]
    CodecMismatch {
        /// The reader's codec id.
        expected: u8,
        /// The codec id in the envelope.
        found: u8,
    },
    /// The compressed payload is corrupt or claims an impossible size.
    #[error("compressed payload cannot be read: {0}")]
    Decompress(String),
    /// Compressed, but this build has no decompressor (feature `lz4` off).
    #[error("compressed payload, but this build has no lz4 support")]
    CompressionUnavailable,
}

/// The header of an envelope: everything but the payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Codec id of the payload.
    pub codec: u8,
    /// Flag bits ([`FLAG_COMPRESSED`]).
    pub flags: u8,
    /// When the value was written, unix milliseconds.
    pub written_at_ms: u64,
    /// When the value turns stale, unix milliseconds; `None` for never.
    pub logical_expiry_ms: Option<u64>,
    /// The reserved tags section, as stored.
    pub tags: &'a [u8],
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("codec", &self.codec)
            .field("flags", &self.flags)
            .field("written_at_ms", &self.written_at_ms)
            .field("logical_expiry_ms", &self.logical_expiry_ms)
            .field("tags_len", &self.tags.len())
            .finish()
    }
}

impl Header<'_> {
    /// Whether the payload is compressed.
    #[must_use]
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// Appends the header to `out`; the payload goes after it.
    ///
    /// # Panics
    ///
    /// When the tags are longer than 65,535 bytes (the length is a `u16`).
    pub fn write(&self, out: &mut Vec<u8>) {
        let tags_len = u16::try_from(self.tags.len()).expect("tags fit 65535 bytes");
        out.reserve(HEADER_LEN + self.tags.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.codec);
        out.push(self.flags);
        out.extend_from_slice(&self.written_at_ms.to_be_bytes());
        out.extend_from_slice(&self.logical_expiry_ms.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&tags_len.to_be_bytes());
        out.extend_from_slice(self.tags);
    }
}

/// Splits stored bytes into header and payload (still compressed when the header says
/// so). Never panics, whatever the bytes.
///
/// ```
/// use cache_typed::envelope::{decode, Header};
///
/// let mut bytes = Vec::new();
/// Header { codec: 1, flags: 0, written_at_ms: 7, logical_expiry_ms: Some(9), tags: &[] }
///     .write(&mut bytes);
/// bytes.extend_from_slice(b"42");
/// let (header, payload) = decode(&bytes).unwrap();
/// assert_eq!((header.written_at_ms, header.logical_expiry_ms, payload), (7, Some(9), &b"42"[..]));
/// assert!(decode(b"42").is_err());
/// ```
///
/// # Errors
///
/// An [`EnvelopeError`] saying why the bytes are not a version 1 envelope.
pub fn decode(bytes: &[u8]) -> Result<(Header<'_>, &[u8]), EnvelopeError> {
    if bytes.len() >= 2 && bytes[..2] != MAGIC {
        return Err(EnvelopeError::ForeignValue);
    }
    if bytes.len() >= 3 && bytes[2] != FORMAT_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(bytes[2]));
    }
    let Some(fixed) = bytes.get(..HEADER_LEN) else {
        return Err(EnvelopeError::Truncated {
            len: bytes.len(),
            needed: HEADER_LEN,
        });
    };
    let flags = fixed[4];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(EnvelopeError::UnknownFlags(flags));
    }
    let u64_at = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&fixed[at..at + 8]);
        u64::from_be_bytes(word)
    };
    let tags_len = usize::from(u16::from_be_bytes([fixed[21], fixed[22]]));
    let needed = HEADER_LEN + tags_len;
    let Some(tags) = bytes.get(HEADER_LEN..needed) else {
        return Err(EnvelopeError::Truncated {
            len: bytes.len(),
            needed,
        });
    };
    let expiry = u64_at(13);
    let header = Header {
        codec: fixed[3],
        flags,
        written_at_ms: u64_at(5),
        logical_expiry_ms: (expiry != 0).then_some(expiry),
        tags,
    };
    Ok((header, &bytes[needed..]))
}
