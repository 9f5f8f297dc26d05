//! How a cache key becomes a memcached key.
//!
//! memcached takes keys of at most 250 bytes without spaces or control characters. A key
//! that fits those rules after the namespace is sent as-is, so other clients of the server
//! read it under the same name. Any other key is *encoded*: a marker, a readable head of
//! the key with the forbidden bytes replaced, and the SHA-256 of the whole key. Keys that
//! start with the marker are always encoded, so an encoded key never equals a native one,
//! and two encoded keys are equal only when their SHA-256 are.
//!
//! Every key produced here is made of bytes memcached accepts as they are, so the client
//! library never switches to its own base64 form (`b` flag) for them.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// memcached's longest key, in bytes.
pub(crate) const MAX_KEY_LEN: usize = 250;

/// Starts the body of every encoded key. Native keys that start with it are encoded too.
pub(crate) const ENCODED_MARKER: &str = "~#";

/// Separates the readable head of an encoded key from its hash.
const HASH_SEPARATOR: char = '#';

/// Length of a SHA-256 in unpadded base64url.
const HASH_LEN: usize = 43;

/// Opens the generation tag that follows a key prefix (`{123}`); a prefix cannot contain it,
/// so where the prefix ends is never in doubt.
pub(crate) const GENERATION_OPEN: char = '{';

/// Closes the generation tag.
const GENERATION_CLOSE: char = '}';

/// Room taken by the longest generation tag: the braces and the 20 digits of a `u64`.
pub(crate) const GENERATION_TAG_MAX: usize = 22;

/// Longest key prefix accepted, in bytes; leaves at least 100 bytes for the key itself.
pub(crate) const MAX_PREFIX_LEN: usize = 128;

/// The name of the generation counter under a prefix: `<prefix>{gen}`. Data keys carry
/// digits between the braces, so no data key can ever be this one.
const GENERATION_KEY_SUFFIX: &str = "{gen}";

/// Whether memcached takes this byte in a key as it is (no whitespace, no control bytes).
pub(crate) fn is_native_byte(byte: u8) -> bool {
    byte > b' ' && byte != 0x7f
}

/// Whether memcached takes every byte of `bytes` as it is. The loop has no early exit,
/// which lets the compiler check sixteen bytes or more per step: every call's key is
/// checked, and is nearly always native, so reading it to the end costs nothing, and a
/// byte at a time cost several instructions per byte.
pub(crate) fn all_native(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |native, &byte| native & is_native_byte(byte))
}

/// The keys of one cache: its prefix, and the room left for the key itself.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: Option<String>,
    /// Longest key stored as-is.
    native_len: usize,
}

impl KeySpace {
    /// The key space of a cache with this prefix (already validated).
    pub(crate) fn new(prefix: Option<&str>) -> Self {
        let native_len = match prefix {
            None => MAX_KEY_LEN,
            Some(prefix) => MAX_KEY_LEN - prefix.len() - GENERATION_TAG_MAX,
        };
        Self {
            prefix: prefix.map(str::to_owned),
            native_len,
        }
    }

    /// Longest key, in bytes, stored under its own name (after the prefix).
    pub(crate) fn max_native_key_len(&self) -> usize {
        self.native_len
    }

    /// Where the generation counter of a prefixed cache lives; `None` without a prefix.
    pub(crate) fn generation_key(&self) -> Option<Vec<u8>> {
        self.prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{GENERATION_KEY_SUFFIX}").into_bytes())
    }

    /// The memcached key for `key` in `generation` (`Some` exactly when there is a prefix).
    /// One allocation, of the key's own length.
    pub(crate) fn server_key(&self, generation: Option<u64>, key: &str) -> Vec<u8> {
        let native = self.is_native(key);
        let body = if native { key.len() } else { self.native_len };
        let head = self
            .prefix
            .as_ref()
            .map_or(0, |prefix| prefix.len() + GENERATION_TAG_MAX);
        let mut out = Vec::with_capacity(head + body);
        if let Some(prefix) = &self.prefix {
            out.extend_from_slice(prefix.as_bytes());
            out.push(GENERATION_OPEN as u8);
            out.extend_from_slice(
                itoa::Buffer::new()
                    .format(generation.unwrap_or_default())
                    .as_bytes(),
            );
            out.push(GENERATION_CLOSE as u8);
        }
        if native {
            out.extend_from_slice(key.as_bytes());
        } else {
            encode_into(key, self.native_len, &mut out);
        }
        out
    }

    fn is_native(&self, key: &str) -> bool {
        key.len() <= self.native_len
            && all_native(key.as_bytes())
            && !key.starts_with(ENCODED_MARKER)
    }
}

/// Appends the encoded form of `key`, at most `room` bytes: marker, readable head,
/// separator, hash.
fn encode_into(key: &str, room: usize, out: &mut Vec<u8>) {
    let head_room = room - ENCODED_MARKER.len() - HASH_SEPARATOR.len_utf8() - HASH_LEN;
    out.extend_from_slice(ENCODED_MARKER.as_bytes());
    let mut head_len = 0;
    for c in key.chars() {
        let len = c.len_utf8();
        if head_len + len > head_room {
            break;
        }
        head_len += len;
        if c.is_ascii() && !is_native_byte(c as u8) {
            out.push(b'_');
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out.push(HASH_SEPARATOR as u8);
    let digest = Sha256::digest(key.as_bytes());
    out.extend_from_slice(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(digest)
            .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn text(key: &[u8]) -> String {
        String::from_utf8(key.to_vec()).unwrap()
    }

    #[test]
    fn all_native_agrees_with_the_byte_test_wherever_the_byte_is() {
        let native = b"user:42-abcdefghijklmnopqrstuvwxyz0123456789";
        assert!(all_native(native));
        assert!(all_native(b""));
        for byte in 0..=u8::MAX {
            for position in [0, 1, 15, 16, 17, 31, 32, native.len() - 1] {
                let mut key = native.to_vec();
                key[position] = byte;
                assert_eq!(
                    all_native(&key),
                    is_native_byte(byte),
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }

    #[test]
    fn short_plain_keys_are_stored_as_they_are() {
        let keys = KeySpace::new(None);
        assert_eq!(keys.server_key(None, "user:42"), b"user:42");
        assert_eq!(keys.server_key(None, "ünïcödé"), "ünïcödé".as_bytes());
        assert_eq!(
            keys.server_key(None, &"k".repeat(250)),
            "k".repeat(250).as_bytes()
        );
        let prefixed = KeySpace::new(Some("app:"));
        assert_eq!(prefixed.server_key(Some(7), "user:42"), b"app:{7}user:42");
        assert_eq!(prefixed.max_native_key_len(), 250 - 4 - GENERATION_TAG_MAX);
    }

    #[test]
    fn other_keys_are_encoded_within_250_native_bytes() {
        let spaces = format!("{} {}", "with spaces".repeat(200), "end");
        let samples = [
            "k".repeat(251),
            "a".repeat(4096),
            "é".repeat(2048),
            spaces,
            "x\r\nflush_all".to_owned(),
            "nul\0byte".to_owned(),
            "del\x7f".to_owned(),
            "~#looks encoded".to_owned(),
        ];
        for prefix in [None, Some("p".repeat(MAX_PREFIX_LEN))] {
            let keys = KeySpace::new(prefix.as_deref());
            let generation = prefix.as_ref().map(|_| u64::MAX);
            for key in &samples {
                let server_key = keys.server_key(generation, key);
                assert!(
                    server_key.len() <= MAX_KEY_LEN,
                    "{} bytes for {key:?}",
                    server_key.len()
                );
                assert!(
                    server_key.iter().copied().all(is_native_byte),
                    "{:?}",
                    text(&server_key)
                );
                assert!(
                    text(&server_key).contains(ENCODED_MARKER),
                    "{key:?} not encoded"
                );
            }
        }
    }

    #[test]
    fn encoded_keys_keep_a_readable_head() {
        let keys = KeySpace::new(None);
        let encoded = text(&keys.server_key(None, "x\r\nflush_all"));
        assert!(encoded.starts_with("~#x__flush_all#"), "{encoded}");
        assert_eq!(encoded.len(), 2 + 12 + 1 + HASH_LEN);
    }

    #[test]
    fn alike_keys_never_share_a_server_key() {
        let long = "x".repeat(4095);
        let keys: Vec<String> = vec![
            "key".into(),
            "key ".into(),
            "key_".into(),
            "key\0".into(),
            "a b".into(),
            "a_b".into(),
            "~#a_b".into(),
            format!("{long}a"),
            format!("{long}b"),
            "k".repeat(250),
            "k".repeat(251),
            format!("{}_", "k".repeat(250)),
        ];
        for space in [KeySpace::new(None), KeySpace::new(Some("ns:"))] {
            let mut seen = HashSet::new();
            for key in &keys {
                assert!(
                    seen.insert(space.server_key(Some(1), key)),
                    "{key:?} collided"
                );
            }
            // The encoded form of one key, used as a key itself, is encoded again.
            let encoded = text(&space.server_key(None, "a b"));
            let body = encoded.trim_start_matches("ns:{0}").to_owned();
            assert_ne!(space.server_key(None, &body), space.server_key(None, "a b"));
        }
    }

    #[test]
    fn the_generation_key_is_no_data_key() {
        let space = KeySpace::new(Some("ns:"));
        assert_eq!(space.generation_key().unwrap(), b"ns:{gen}");
        for generation in [0, 1, u64::MAX] {
            for key in ["gen", "{gen}", "gen}"] {
                assert_ne!(space.server_key(Some(generation), key), b"ns:{gen}");
            }
        }
        assert_eq!(KeySpace::new(None).generation_key(), None);
    }
}
