#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::{
    fmt,
    time::{Duration, Instant},
};

use ahash::RandomState;
use cache_api::{
    async_trait, validate_entries, validate_key, validate_keys, validate_value, Bytes, Cache,
    CacheError, Limits,
};
use moka::{
    future::Cache as Moka,
    ops::compute::{CompResult, Op},
    policy::EvictionPolicy,
    Expiry,
};

/// Bytes charged to every entry on top of its key and value: moka's node, the
/// entry's own fields and the hash table slot, measured roughly.
const ENTRY_OVERHEAD: usize = 96;

/// TTLs longer than this are kept as "no expiry": no process lives a century, and the
/// timer wheel saturates far beyond it.
const LONGEST_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Option<Duration>,
    /// When the entry dies, for `delete`'s answer: moka may hand back an expired entry
    /// that housekeeping has not removed yet.
    deadline: Option<Instant>,
}

impl Entry {
    fn is_live(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| Instant::now() < deadline)
    }
}

/// Every write sets the entry's own TTL, on insert and on overwrite alike (moka's
/// default for an overwrite keeps the old deadline, which the contract forbids).
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _at: std::time::Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

/// An in-process cache over [moka](https://docs.rs/moka)'s async cache.
///
/// - Per-entry TTL with the precision of the clock (the declared granularity is 1 ms);
///   an overwrite replaces value and TTL; a zero TTL removes the entry.
/// - Bounded by a byte budget: keys, values and a fixed per-entry overhead are weighed,
///   and least recently used entries are evicted when the budget is exceeded. Eviction
///   runs in moka's housekeeping, so the budget can be exceeded briefly.
/// - Cloning is cheap and shares the entries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_api::CacheError> {
/// use std::time::Duration;
/// use cache_api::{Bytes, Cache};
/// use cache_memory::MemoryCache;
///
/// let cache = MemoryCache::builder().max_capacity_bytes(64 << 20).build()?;
/// cache.set("answer", Bytes::from("42"), Some(Duration::from_secs(5))).await?;
/// assert_eq!(cache.get("answer").await?, Some(Bytes::from("42")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryCache {
    entries: Moka<String, Entry, RandomState>,
    limits: Limits,
    capacity: u64,
}

impl MemoryCache {
    /// The default byte budget: 256 MiB.
    pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;

    /// A cache with the default budget ([`Self::DEFAULT_CAPACITY_BYTES`]) and the
    /// default largest value (a sixteenth of the budget, 16 MiB).
    #[must_use]
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default settings are consistent")
    }

    /// A builder for a cache with other limits.
    pub fn builder() -> MemoryCacheBuilder {
        MemoryCacheBuilder::default()
    }

    /// The number of live entries, after pending housekeeping (evictions and
    /// removals of expired entries) has run.
    pub async fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }

    /// The bytes charged against the budget, after pending housekeeping has run.
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }

    /// The byte budget this cache was built with.
    #[must_use]
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    fn check_value(&self, value: &Bytes) -> Result<(), CacheError> {
        validate_value(value, self.limits.max_value_size)
    }

    /// Writes a checked entry: value and TTL replace the old ones; a zero TTL removes it.
    async fn store(&self, key: &str, value: Bytes, ttl: Option<Duration>) {
        let ttl = ttl.filter(|ttl| *ttl <= LONGEST_TTL);
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            self.entries.invalidate(key).await;
            return;
        }
        let entry = Entry {
            value,
            ttl,
            deadline: ttl.and_then(|ttl| Instant::now().checked_add(ttl)),
        };
        self.entries.insert(key.to_owned(), entry).await;
    }

    /// Stores a checked entry only if no live one is there; true when it stored.
    ///
    /// Through moka's compute API, which runs one computation per key at a time: of
    /// racing adds exactly one sees the key absent. A plain `set` does not wait for it,
    /// so a `set` racing with an `add` of the same key may be overwritten by it.
    async fn insert_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> bool {
        let ttl = ttl.filter(|ttl| *ttl <= LONGEST_TTL);
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return false;
        }
        let outcome = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| {
                // moka hides expired entries from the computation as it does from `get`;
                // the entry's own deadline is checked too, as `delete` does.
                let op = match current {
                    Some(entry) if entry.value().is_live() => Op::Nop,
                    _ => Op::Put(Entry {
                        value,
                        ttl,
                        deadline: ttl.and_then(|ttl| Instant::now().checked_add(ttl)),
                    }),
                };
                std::future::ready(op)
            })
            .await;
        matches!(
            outcome,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// Removes `key`; true when the entry removed was still live.
    ///
    /// Through moka's compute API rather than `remove`: `remove` hands back an entry that
    /// `clear` (`invalidate_all`) already made unreadable, which would count as live;
    /// the compute API sees the entry as `get` does, and decides atomically per key.
    async fn remove(&self, key: &str) -> bool {
        let outcome = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(_) => Op::Remove,
                    None => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        matches!(outcome, CompResult::Removed(entry) if entry.value().is_live())
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("capacity_bytes", &self.capacity)
            .field("max_value_size", &self.limits.max_value_size)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        validate_key(key)?;
        Ok(self.entries.get(key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        validate_key(key)?;
        self.check_value(&value)?;
        self.store(key, value, ttl).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        Ok(self.remove(key).await)
    }

    /// Reads each key from moka in turn: no round trip to save, so the gain over
    /// calling `get` per key is the boxed future each of those calls costs.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        validate_keys(keys.iter().copied())?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.entries.get(*key).await.map(|entry| entry.value));
        }
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        validate_entries(entries, self.limits.max_value_size)?;
        for (key, value) in entries {
            self.store(key, value.clone(), ttl).await;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        validate_keys(keys.iter().copied())?;
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.remove(key).await);
        }
        Ok(removed)
    }

    /// One computation on the key's entry: atomic against other `add`s and `delete`s
    /// of the key (a concurrent `set` may be overwritten, see the crate documentation).
    /// Value limit and TTL as `set`; a zero TTL stores nothing and returns false.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.check_value(&value)?;
        Ok(self.insert_if_absent(key, value, ttl).await)
    }

    /// Invalidates every entry of this cache (and of its clones); memory is given back
    /// as housekeeping runs.
    async fn clear(&self) -> Result<(), CacheError> {
        self.entries.invalidate_all();
        Ok(())
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    /// `memory`.
    fn describe(&self) -> cache_api::BackendInfo {
        cache_api::BackendInfo::new("memory")
    }
}

/// Settings of a [`MemoryCache`], checked by [`build`](MemoryCacheBuilder::build).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MemoryCacheBuilder {
    capacity: Option<u64>,
    max_value_size: Option<usize>,
}

impl MemoryCacheBuilder {
    /// The byte budget: keys, values and a per-entry overhead of about 100 bytes count
    /// against it. Default 256 MiB.
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// The largest value `set` accepts; larger ones are
    /// [`CacheError::ValueTooLarge`]. Default: a sixteenth of the budget, so that one
    /// value cannot evict most of the cache. At most the budget, and at most 4 GiB
    /// minus the entry overhead (moka weighs entries in `u32`).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = Some(bytes);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when the budget is zero, or the largest value is zero or
    /// larger than the budget or than a `u32` weight can express.
    pub fn build(self) -> Result<MemoryCache, CacheError> {
        let capacity = self.capacity.unwrap_or(MemoryCache::DEFAULT_CAPACITY_BYTES);
        if capacity == 0 {
            return Err(CacheError::config("max_capacity_bytes must be positive"));
        }
        let max_value_size = self.max_value_size.unwrap_or_else(|| {
            usize::try_from(capacity / 16)
                .unwrap_or(usize::MAX)
                .min(u32::MAX as usize / 2)
        });
        if max_value_size == 0 {
            return Err(CacheError::config("max_value_size must be positive"));
        }
        if max_value_size as u64 > capacity {
            return Err(CacheError::config(format!(
                "max_value_size ({max_value_size} bytes) exceeds max_capacity_bytes ({capacity} bytes)"
            )));
        }
        if max_value_size > u32::MAX as usize - ENTRY_OVERHEAD {
            return Err(CacheError::config(format!(
                "max_value_size ({max_value_size} bytes) exceeds what one entry can weigh ({} bytes)",
                u32::MAX as usize - ENTRY_OVERHEAD
            )));
        }
        let entries = Moka::builder()
            .max_capacity(capacity)
            // LRU instead of the default TinyLFU: TinyLFU may refuse to admit a new
            // entry into a full cache, and a `get` right after `set` would then miss.
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|key: &String, entry: &Entry| {
                // Values are bounded by max_value_size, checked against u32 above;
                // a key can still be huge, so saturate.
                u32::try_from(key.len() + entry.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            // aHash instead of the default SipHash: a quarter of the cost of a lookup
            // went to hashing the key. Still keyed at random per cache, so keys chosen
            // to collide cannot be computed from outside.
            .build_with_hasher(RandomState::new());
        Ok(MemoryCache {
            entries,
            limits: Limits::new(Duration::from_millis(1), max_value_size)
                .with_clear()
                .with_atomic_add(),
            capacity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_contradictions() {
        assert!(MemoryCache::builder()
            .max_capacity_bytes(0)
            .build()
            .is_err());
        assert!(MemoryCache::builder().max_value_size(0).build().is_err());
        let err = MemoryCache::builder()
            .max_capacity_bytes(1000)
            .max_value_size(2000)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: max_value_size (2000 bytes) exceeds max_capacity_bytes (1000 bytes)"
        );
        let cache = MemoryCache::new();
        assert_eq!(cache.limits().max_value_size, 16 << 20);
        assert_eq!(cache.capacity_bytes(), 256 << 20);
    }
}
