//! A decoded value with its envelope's times, and the clock they are read against.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A value as stored: what the envelope says about it, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Stored<V> {
    pub(crate) value: V,
    pub(crate) written_at_ms: u64,
    pub(crate) logical_expiry_ms: Option<u64>,
}

impl<V> Stored<V> {
    /// A value written now, stale after `ttl`, rounded up to the envelope's whole
    /// milliseconds (a TTL under a millisecond is one, not zero).
    pub(crate) fn new(value: V, ttl: Duration) -> Self {
        let now = now_ms();
        let ttl_ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Self {
            value,
            written_at_ms: now,
            logical_expiry_ms: Some(now.saturating_add(ttl_ms).max(1)),
        }
    }

    pub(crate) fn is_fresh(&self, now_ms: u64) -> bool {
        self.logical_expiry_ms.is_none_or(|expiry| now_ms < expiry)
    }

    /// Whether fail-safe may serve this value at `now_ms` in place of a fresh one: its
    /// TTL ended less than `max_duration` ago.
    pub(crate) fn within_fail_safe(&self, now_ms: u64, max_duration: Duration) -> bool {
        let max_ms = u64::try_from(max_duration.as_millis()).unwrap_or(u64::MAX);
        self.logical_expiry_ms
            .is_none_or(|expiry| now_ms < expiry.saturating_add(max_ms))
    }

    /// Whether a read at `now_ms` is past `fraction` of the value's lifetime.
    pub(crate) fn past_fraction(&self, fraction: f64, now_ms: u64) -> bool {
        let Some(expiry) = self.logical_expiry_ms else {
            return false;
        };
        let lifetime = expiry.saturating_sub(self.written_at_ms) as f64;
        let age = now_ms.saturating_sub(self.written_at_ms) as f64;
        age >= lifetime * fraction
    }

    /// Whether this was written after the write seen as `seen` (any value is newer than
    /// none).
    pub(crate) fn newer_than(&self, seen: Option<u64>) -> bool {
        seen.is_none_or(|seen| self.written_at_ms > seen)
    }
}

/// Unix time in milliseconds, the clock of every envelope (shared by processes, where
/// `Instant` is not). A clock before 1970 reads as 0.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

pub(crate) fn to_system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
