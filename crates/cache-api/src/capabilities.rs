//! What a backend declares about itself: its name, its limits and what it does natively.

use std::time::Duration;

/// The facts a backend declares, so that tests, layers and applications can read them
/// instead of special-casing backends: its limits (TTL granularity, largest value, longest
/// key kept as-is) and what it does natively (`clear`, bulk operations, atomic `add`).
///
/// A flag left `false` is a promise not made: the TCK skips the checks of an operation a
/// backend does not declare (reporting them as not applicable), and fails a backend that
/// declares an operation but does not keep it.
///
/// ```
/// use std::time::Duration;
/// use cache_api::Capabilities;
///
/// let memcached_like = Capabilities::new(Duration::from_secs(1), 1 << 20)
///     .with_max_native_key_len(250)
///     .with_clear()
///     .with_atomic_add();
/// assert_eq!(memcached_like.round_up_ttl(Duration::from_millis(300)), Duration::from_secs(1));
/// assert!(memcached_like.clear && memcached_like.atomic_add && !memcached_like.native_bulk);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend's clock granularity: TTLs are rounded up to a multiple of it, and an
    /// entry may outlive its TTL by at most this much (Redis: 1 ms; memcached: 1 s). A
    /// clock that ticks in such steps may also end an entry up to one step before its
    /// TTL (memcached's entry of n seconds lives n - 1 to n of them): to keep a value
    /// for a whole duration, give it one step more.
    pub ttl_granularity: Duration,
    /// The largest value, in bytes, that `set` accepts; one byte more is
    /// [`CacheError::ValueTooLarge`](crate::CacheError::ValueTooLarge).
    pub max_value_size: usize,
    /// The longest key, in bytes, that the backend stores as-is, readable by other
    /// clients of the same server; longer keys are encoded. `None`: no such limit.
    pub max_native_key_len: Option<usize>,
    /// [`Cache::clear`](crate::Cache::clear) removes every entry this cache object owns.
    pub clear: bool,
    /// `get_many`, `set_many` and `delete_many` are native batches (one exchange per
    /// server), not one round trip per key.
    pub native_bulk: bool,
    /// [`Cache::add`](crate::Cache::add) is atomic: of many concurrent adds of one key,
    /// exactly one stores.
    pub atomic_add: bool,
}

/// The name [`Capabilities`] had when it held only limits; kept so that code written
/// against it compiles.
pub type Limits = Capabilities;

impl Capabilities {
    /// The value limit of [`Capabilities::default`]: 1 MiB, memcached's default item size.
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;

    /// Capabilities with the given TTL granularity and largest value, no native key
    /// limit, and nothing declared native (no `clear`, no native bulk, no atomic `add`).
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
            clear: false,
            native_bulk: false,
            atomic_add: false,
        }
    }

    /// The same, declaring that keys longer than `len` bytes are encoded.
    #[must_use]
    pub const fn with_max_native_key_len(mut self, len: usize) -> Self {
        self.max_native_key_len = Some(len);
        self
    }

    /// The same, declaring that [`Cache::clear`](crate::Cache::clear) works.
    #[must_use]
    pub const fn with_clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// The same, declaring native bulk operations.
    #[must_use]
    pub const fn with_native_bulk(mut self) -> Self {
        self.native_bulk = true;
        self
    }

    /// The same, declaring an atomic [`Cache::add`](crate::Cache::add).
    #[must_use]
    pub const fn with_atomic_add(mut self) -> Self {
        self.atomic_add = true;
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

impl Default for Capabilities {
    /// 1 ms granularity, values up to [`Capabilities::DEFAULT_MAX_VALUE_SIZE`], no native
    /// key limit, nothing declared native.
    fn default() -> Self {
        Self::new(Duration::from_millis(1), Self::DEFAULT_MAX_VALUE_SIZE)
    }
}

/// How a backend names itself, for logs, spans and metric labels. Costs nothing to
/// ask for (no round trip).
///
/// ```
/// let info = cache_api::BackendInfo::new("redis").with_label("redis-cluster");
/// assert_eq!((info.scheme, info.label), ("redis", "redis-cluster"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The backend's kind, as its URL scheme spells it: `memory`, `redis`, `memcached`.
    pub scheme: &'static str,
    /// A label for metrics and spans: the scheme, or a finer kind of the same backend
    /// (`redis-cluster`). Never includes a host, key prefix or secret, so that it stays
    /// a small set of values.
    pub label: &'static str,
}

impl BackendInfo {
    /// The name of a backend whose caches are not told apart any further: the label is
    /// the scheme.
    #[must_use]
    pub const fn new(scheme: &'static str) -> Self {
        Self {
            scheme,
            label: scheme,
        }
    }

    /// The same, with a finer label.
    #[must_use]
    pub const fn with_label(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }
}

impl Default for BackendInfo {
    /// `custom`: a cache that does not name itself.
    fn default() -> Self {
        Self::new("custom")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_never_down() {
        let ms = Capabilities::default();
        assert_eq!(
            ms.round_up_ttl(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            ms.round_up_ttl(Duration::from_millis(5)),
            Duration::from_millis(5)
        );
        assert_eq!(ms.round_up_ttl(Duration::ZERO), Duration::ZERO);
        let s = Capabilities::new(Duration::from_secs(1), 10);
        assert_eq!(
            s.round_up_ttl(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
        assert_eq!(s.round_up_ttl(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn nothing_is_declared_native_by_default() {
        let declared = Capabilities::default();
        assert!(!declared.clear && !declared.native_bulk && !declared.atomic_add);
        let all = declared.with_clear().with_native_bulk().with_atomic_add();
        assert!(all.clear && all.native_bulk && all.atomic_add);
    }
}
