//! The last values read or computed, kept in the process for fail-safe: they are what
//! is served while the backend itself cannot be read.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::stored::Stored;

/// The longest throttle kept as given; longer ones are this long (a century, far
/// from any `Instant` overflow).
const LONGEST_THROTTLE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct Remembered<V> {
    stored: Arc<Stored<V>>,
    /// Until when the value may be served (its fail-safe lifetime).
    usable_until_ms: u64,
    /// After a failure, until when it is served without trying backend or factory.
    throttled_until: Option<Instant>,
}

/// A bounded map of key to last value. moka's bound keeps the most useful entries
/// when the application reads more keys than the capacity.
pub(crate) struct Fallback<V> {
    entries: Option<moka::sync::Cache<String, Arc<Remembered<V>>>>,
}

impl<V: Send + Sync + 'static> Fallback<V> {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: (capacity > 0).then(|| moka::sync::Cache::new(capacity)),
        }
    }

    /// Whether the write of `written_at_ms` is what is kept for `key` (not throttled).
    pub(crate) fn holds(&self, key: &str, written_at_ms: u64) -> bool {
        self.entries.as_ref().is_none_or(|entries| {
            entries.get(key).is_some_and(|kept| {
                kept.stored.written_at_ms == written_at_ms && kept.throttled_until.is_none()
            })
        })
    }

    /// Keeps `stored` as the value of `key` for `max_duration` past its TTL, unless the
    /// same write is already kept.
    pub(crate) fn remember(&self, key: &str, stored: &Arc<Stored<V>>, max_duration: Duration) {
        let Some(entries) = &self.entries else { return };
        if let Some(kept) = entries.get(key) {
            if kept.stored.written_at_ms == stored.written_at_ms && kept.throttled_until.is_none() {
                return;
            }
        }
        let usable_until_ms = stored
            .logical_expiry_ms
            .unwrap_or(u64::MAX)
            .saturating_add(u64::try_from(max_duration.as_millis()).unwrap_or(u64::MAX));
        entries.insert(
            key.to_owned(),
            Arc::new(Remembered {
                stored: Arc::clone(stored),
                usable_until_ms,
                throttled_until: None,
            }),
        );
    }

    /// The value kept for `key`, if still within its fail-safe lifetime, and whether it
    /// is throttled (to be served without trying anything else).
    pub(crate) fn get(&self, key: &str, now_ms: u64) -> Option<(Arc<Stored<V>>, bool)> {
        let kept = self.entries.as_ref()?.get(key)?;
        if now_ms >= kept.usable_until_ms {
            return None;
        }
        let throttled = kept.throttled_until.is_some_and(|t| Instant::now() < t);
        Some((Arc::clone(&kept.stored), throttled))
    }

    /// Keeps `stored` for `key` and serves it alone, without backend or factory, for
    /// `throttle`.
    pub(crate) fn throttle(
        &self,
        key: &str,
        stored: &Arc<Stored<V>>,
        max_duration: Duration,
        throttle: Duration,
    ) {
        let Some(entries) = &self.entries else { return };
        let usable_until_ms = stored
            .logical_expiry_ms
            .unwrap_or(u64::MAX)
            .saturating_add(u64::try_from(max_duration.as_millis()).unwrap_or(u64::MAX));
        entries.insert(
            key.to_owned(),
            Arc::new(Remembered {
                stored: Arc::clone(stored),
                usable_until_ms,
                // A throttle too long for the clock holds as long as the clock can.
                throttled_until: Some(Instant::now() + throttle.min(LONGEST_THROTTLE)),
            }),
        );
    }

    /// Forgets `key` (after a delete through the typed cache).
    pub(crate) fn forget(&self, key: &str) {
        if let Some(entries) = &self.entries {
            entries.invalidate(key);
        }
    }
}
