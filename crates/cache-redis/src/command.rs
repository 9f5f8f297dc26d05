//! What the operations turn into on the wire, shared by the single-server and the
//! cluster paths: the TTL as Redis reads it, and the `SCAN` of a prefix `clear`.

use std::time::Duration;

use cache_api::CacheError;
use redis::Cmd;

/// The longest TTL sent to Redis, in milliseconds: half of `i64::MAX`. Redis adds the
/// TTL to its clock and refuses the command when the sum overflows an `i64`; with half
/// the range left, no server clock of this era (or the next 140 million years) can
/// make it overflow.
const MAX_TTL_MILLIS: u64 = (i64::MAX / 2) as u64;

/// Keys asked for per `SCAN` round trip of a prefix `clear`.
const SCAN_COUNT: usize = 500;

/// What a TTL becomes in Redis.
#[derive(Debug)]
pub(crate) enum Expiry {
    /// Plain `SET`: no TTL, and any previous one is removed.
    Never,
    /// A zero TTL: the entry is already gone, so the key is removed.
    Now,
    /// `SET .. PX`.
    Millis(u64),
}

/// The TTL as Redis reads it: rounded up to whole milliseconds, never 0.
pub(crate) fn expiry(ttl: Option<Duration>) -> Result<Expiry, CacheError> {
    let Some(ttl) = ttl else {
        return Ok(Expiry::Never);
    };
    if ttl.is_zero() {
        return Ok(Expiry::Now);
    }
    // Rounded up, so that 1 ns is 1 ms and never 0 (which Redis refuses).
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    match u64::try_from(millis) {
        Ok(millis) if millis <= MAX_TTL_MILLIS => Ok(Expiry::Millis(millis)),
        _ => Err(CacheError::InvalidTtl {
            ttl,
            reason: "longer than redis can represent (at most i64::MAX / 2 milliseconds, about 146 million years)",
        }),
    }
}

/// `SCAN cursor MATCH pattern COUNT 500`: one round of walking the keys under a prefix.
pub(crate) fn scan_command(cursor: u64, pattern: &str) -> Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    scan
}

/// Escapes the glob characters of `SCAN MATCH` so that a prefix matches only itself.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_milliseconds() {
        assert!(matches!(expiry(None), Ok(Expiry::Never)));
        assert!(matches!(expiry(Some(Duration::ZERO)), Ok(Expiry::Now)));
        assert!(matches!(
            expiry(Some(Duration::from_nanos(1))),
            Ok(Expiry::Millis(1))
        ));
        assert!(matches!(
            expiry(Some(Duration::from_micros(1_500))),
            Ok(Expiry::Millis(2))
        ));
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        assert!(matches!(expiry(Some(ten_years)), Ok(Expiry::Millis(ms)) if ms == 315_360_000_000));
        assert!(matches!(
            expiry(Some(Duration::from_millis(MAX_TTL_MILLIS))),
            Ok(Expiry::Millis(MAX_TTL_MILLIS))
        ));
        for too_long in [Duration::from_millis(MAX_TTL_MILLIS + 1), Duration::MAX] {
            assert!(matches!(
                expiry(Some(too_long)),
                Err(CacheError::InvalidTtl { .. })
            ));
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?c[d]e\\f:"), "a\\*b\\?c\\[d\\]e\\\\f:");
        assert_eq!(escape_glob("plain:"), "plain:");
    }
}
