//! What a backend declares about itself.

use std::time::Duration;

/// The facts a backend declares, so that tests and applications can read them
/// instead of special-casing backends.
///
/// ```
/// use std::time::Duration;
/// use cache_api::Limits;
///
/// let memcached_like = Limits::new(Duration::from_secs(1), 1 << 20).with_max_native_key_len(250);
/// assert_eq!(memcached_like.round_up_ttl(Duration::from_millis(300)), Duration::from_secs(1));
/// assert_eq!(memcached_like.max_native_key_len, Some(250));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The backend's clock granularity: TTLs are rounded up to a multiple of it, and an
    /// entry may outlive its TTL by at most this much (Redis: 1 ms; memcached: 1 s).
    pub ttl_granularity: Duration,
    /// The largest value, in bytes, that `set` accepts; one byte more is
    /// [`CacheError::ValueTooLarge`](crate::CacheError::ValueTooLarge).
    pub max_value_size: usize,
    /// The longest key, in bytes, that the backend stores as-is, readable by other
    /// clients of the same server; longer keys are encoded. `None`: no such limit.
    pub max_native_key_len: Option<usize>,
}

impl Limits {
    /// The value limit of [`Limits::default`]: 1 MiB, memcached's default item size.
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;

    /// Limits with the given TTL granularity and largest value, and no native key limit.
    ///
    /// # Panics
    ///
    /// When `ttl_granularity` is zero: every clock has some granularity.
    #[must_use]
    pub const fn new(ttl_granularity: Duration, max_value_size: usize) -> Self {
        assert!(
            !ttl_granularity.is_zero(),
            "ttl granularity must be positive"
        );
        Self {
            ttl_granularity,
            max_value_size,
            max_native_key_len: None,
        }
    }

    /// The same limits, declaring that keys longer than `len` bytes are encoded.
    #[must_use]
    pub const fn with_max_native_key_len(mut self, len: usize) -> Self {
        self.max_native_key_len = Some(len);
        self
    }

    /// Rounds `ttl` up to a whole multiple of the granularity (never down, so a
    /// positive TTL never becomes zero). Saturates at `Duration::MAX`.
    #[must_use]
    pub fn round_up_ttl(&self, ttl: Duration) -> Duration {
        let step = self.ttl_granularity.as_nanos();
        let nanos = ttl.as_nanos();
        let rounded = nanos.div_ceil(step).saturating_mul(step);
        let secs = u64::try_from(rounded / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder is below 10^9, so it always fits.
        let subsec = (rounded % 1_000_000_000) as u32;
        if secs == u64::MAX {
            Duration::MAX
        } else {
            Duration::new(secs, subsec)
        }
    }
}

impl Default for Limits {
    /// 1 ms granularity, values up to [`Limits::DEFAULT_MAX_VALUE_SIZE`], no native key limit.
    fn default() -> Self {
        Self::new(Duration::from_millis(1), Self::DEFAULT_MAX_VALUE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_never_down() {
        let ms = Limits::default();
        assert_eq!(
            ms.round_up_ttl(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            ms.round_up_ttl(Duration::from_millis(5)),
            Duration::from_millis(5)
        );
        assert_eq!(ms.round_up_ttl(Duration::ZERO), Duration::ZERO);
        let s = Limits::new(Duration::from_secs(1), 10);
        assert_eq!(
            s.round_up_ttl(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
        assert_eq!(s.round_up_ttl(Duration::MAX), Duration::MAX);
    }
}
