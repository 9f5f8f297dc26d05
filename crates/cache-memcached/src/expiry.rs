//! From a TTL to memcached's expiry: whole seconds rounded up, an absolute Unix time past
//! 30 days (memcached reads a larger number as one), and 2038-01-19 for every TTL that
//! ends later (the last second memcached's 32-bit expiry holds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_api::CacheError;

/// Longest TTL memcached takes as a number of seconds; above it, a number is a Unix time.
const MAX_RELATIVE_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// memcached parses an expiry as a signed 32-bit number: its last second is 2038-01-19.
const MAX_EXPIRY: u64 = i32::MAX as u64;

/// When an entry expires, in memcached's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No `T` flag: never (an earlier TTL is dropped).
    Never,
    /// The `T` value: seconds from now up to 30 days, a Unix time beyond.
    At(u32),
    /// A zero TTL: the entry is removed, nothing is stored.
    Expired,
}

pub(crate) fn expiry(ttl: Option<Duration>) -> Result<Expiry, CacheError> {
    let Some(ttl) = ttl else {
        return Ok(Expiry::Never);
    };
    if ttl.is_zero() {
        return Ok(Expiry::Expired);
    }
    // Rounded up: 300 ms is 1 s, never 0, which memcached reads as "never expires".
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if seconds <= MAX_RELATIVE_TTL_SECS {
        return Ok(Expiry::At(u32::try_from(seconds).unwrap_or(u32::MAX)));
    }
    // memcached reads more than 30 days as a Unix time, so long TTLs are sent as one. One
    // that ends after memcached's last second ends on it: sooner than asked, as an
    // eviction may make any entry, never later. A refusal instead would break every TTL
    // of ten years from 2028 on.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CacheError::InvalidTtl {
            ttl,
            reason: "the system clock is before 1970",
        })?
        .as_secs();
    if now >= MAX_EXPIRY {
        return Err(CacheError::InvalidTtl {
            ttl,
            reason: "the system clock is past 2038-01-19, the last expiry memcached keeps",
        });
    }
    let at = now.saturating_add(seconds).min(MAX_EXPIRY);
    Ok(Expiry::At(u32::try_from(at).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(expiry(None).unwrap(), Expiry::Never);
        assert_eq!(expiry(Some(Duration::ZERO)).unwrap(), Expiry::Expired);
        assert_eq!(
            expiry(Some(Duration::from_nanos(1))).unwrap(),
            Expiry::At(1)
        );
        assert_eq!(
            expiry(Some(Duration::from_millis(300))).unwrap(),
            Expiry::At(1)
        );
        assert_eq!(
            expiry(Some(Duration::from_millis(1001))).unwrap(),
            Expiry::At(2)
        );
        let thirty_days = Duration::from_secs(MAX_RELATIVE_TTL_SECS);
        assert_eq!(expiry(Some(thirty_days)).unwrap(), Expiry::At(2_592_000));
    }

    #[test]
    fn ttls_over_30_days_become_unix_times() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let thirty_one_days = 31 * 24 * 60 * 60;
        let Expiry::At(at) = expiry(Some(Duration::from_secs(thirty_one_days))).unwrap() else {
            panic!("31 days must expire");
        };
        let at = u64::from(at);
        assert!(
            at >= now + thirty_one_days && at <= now + thirty_one_days + 2,
            "{at}"
        );
        // 30 days and a fraction of a second round up into the absolute range.
        let just_over = Duration::from_secs(MAX_RELATIVE_TTL_SECS) + Duration::from_millis(1);
        assert!(matches!(expiry(Some(just_over)).unwrap(), Expiry::At(at) if u64::from(at) > now));
    }

    #[test]
    fn ttls_ending_after_2038_end_on_its_last_second() {
        for ttl in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(100 * 365 * 24 * 3600),
            Duration::from_secs(MAX_EXPIRY),
        ] {
            assert_eq!(
                expiry(Some(ttl)).unwrap(),
                Expiry::At(i32::MAX as u32),
                "{ttl:?}"
            );
        }
    }
}
