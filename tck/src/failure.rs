//! What a failed check reports, and the small helpers that build those reports.

use std::fmt;

use cache_api::{Bytes, CacheError};

/// Why a check failed: what was done, what was expected, and what came back.
///
/// ```
/// use cache_tck::Failure;
///
/// let failure = Failure::new("get(\"k\") after set", "Some(\"v\")", "None (a miss)");
/// assert_eq!(
///     failure.to_string(),
///     "get(\"k\") after set: expected Some(\"v\"), got None (a miss)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step of the check that went wrong, e.g. `get("k") after set("k", v, 1s) and 1.1s`.
    pub step: String,
    /// What the contract asks for at that step.
    pub expected: String,
    /// What the cache did instead.
    pub actual: String,
}

impl Failure {
    /// A failure at `step`: `expected` was asked for, `actual` came back.
    pub fn new(
        step: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Self {
            step: step.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.step, self.expected, self.actual
        )
    }
}

impl std::error::Error for Failure {}

/// What a check returns.
pub type CheckResult = Result<(), Failure>;

/// Describes a `get` answer for a failure message: short values are shown, long ones
/// are summarised by length and their first bytes.
pub(crate) fn describe(value: &Option<Bytes>) -> String {
    match value {
        None => "None (a miss)".to_owned(),
        Some(bytes) => format!("Some({})", describe_bytes(bytes)),
    }
}

/// Shows bytes exactly: as a quoted string when they are UTF-8, else as a byte string
/// with every byte outside printable ASCII escaped (`b"\xff\xfe"`), so that two values
/// that differ are never shown alike; past 32 bytes, the length and the first 32.
pub(crate) fn describe_bytes(bytes: &[u8]) -> String {
    const SHOWN: usize = 32;
    let shown = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", bytes.escape_ascii()),
    };
    if bytes.len() <= SHOWN {
        shown(bytes)
    } else {
        // The first 32 bytes may end inside a character: shown as bytes then.
        format!("{} bytes starting {}", bytes.len(), shown(&bytes[..SHOWN]))
    }
}

/// Shortens a key for a failure message (keys in checks go up to several KiB).
pub(crate) fn describe_key(key: &str) -> String {
    const SHOWN: usize = 40;
    if key.len() <= SHOWN {
        format!("{key:?}")
    } else {
        let mut end = SHOWN;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &key[..end], key.len())
    }
}

/// Turns an unexpected error into a failure of `step`.
pub(crate) trait OrFail<T> {
    fn or_fail(self, step: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, CacheError> {
    fn or_fail(self, step: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|err| Failure::new(step(), "Ok", format!("Err({err}) [{err:?}]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_exactly() {
        assert_eq!(describe_bytes(b"hello"), "\"hello\"");
        assert_eq!(describe_bytes("héllo".as_bytes()), "\"héllo\"");
        assert_eq!(describe_bytes(&[0xff, 0xfe]), "b\"\\xff\\xfe\"");
        assert_ne!(describe_bytes(&[0xff, 0xfe]), describe_bytes(&[0xfe, 0xff]));
        assert_eq!(
            describe_bytes(&[b'a'; 40]),
            format!("40 bytes starting \"{}\"", "a".repeat(32))
        );
        let mut long = vec![0u8; 40];
        long[0] = 0x80;
        assert!(describe_bytes(&long).starts_with("40 bytes starting b\"\\x80\\x00"));
    }
}
