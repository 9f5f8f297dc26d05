#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::{fmt, sync::Arc, time::Duration};

use cache_api::{
    async_trait, validate_entries, validate_key, validate_keys, validate_value, Bytes, Cache,
    CacheError, Limits,
};

mod builder;
mod table;

pub use builder::MemoryCacheBuilder;
use table::{EntryWeighter, Table, TooHeavy, ENTRY_OVERHEAD};

/// An in-process cache over [quick_cache](https://docs.rs/quick_cache)'s sharded,
/// weighted table.
///
/// - Per-entry TTL with the precision of the clock (the declared granularity is 1 ms):
///   the deadline is stored beside the value and checked on every read; an overwrite
///   replaces value and TTL; a zero TTL removes the entry.
/// - Bounded by a byte budget: keys, values and a fixed per-entry overhead are weighed,
///   and a write that takes a shard over its share evicts before it inserts (entries
///   read since they were written are kept longer than those that were not). Expired
///   entries count against the budget until a read, a `delete`, an `add` or eviction
///   removes them, so memory stays within the budget whatever the TTLs.
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
    table: Arc<Table>,
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

    /// The number of live entries, once the expired ones have been removed: walks the
    /// whole table, shard by shard, so it costs time in proportion to the entries.
    pub async fn entry_count(&self) -> u64 {
        self.table.sweep();
        self.table.len()
    }

    /// The bytes charged against the budget, once the expired entries have been
    /// removed (a walk of the whole table, as [`Self::entry_count`]).
    pub async fn weighted_size(&self) -> u64 {
        self.table.sweep();
        self.table.weight()
    }

    /// The byte budget this cache was built with.
    #[must_use]
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    fn check_value(&self, value: &Bytes) -> Result<(), CacheError> {
        validate_value(value, self.limits.max_value_size)
    }

    /// The error for an entry whose key makes it heavier than a shard holds: the value
    /// is what does not fit beside that key.
    fn too_heavy(&self, key: &str, value_len: usize) -> CacheError {
        let limit = self
            .table
            .room
            .saturating_sub(EntryWeighter::weight_of(key.len(), 0));
        CacheError::ValueTooLarge {
            size: value_len,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
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
            .field("entries", &self.table.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        validate_key(key)?;
        Ok(self.table.get(key))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        validate_key(key)?;
        self.check_value(&value)?;
        // The length, not a clone of the value, for the error: a clone is a reference count
        // that every writer of a shared value would contend on.
        let len = value.len();
        self.table
            .set(key, value, ttl)
            .map_err(|TooHeavy| self.too_heavy(key, len))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key)?;
        Ok(self.table.remove(key))
    }

    /// Reads each key from the table in turn: no round trip to save, so the gain over
    /// calling `get` per key is the boxed future each of those calls costs.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        validate_keys(keys.iter().copied())?;
        Ok(keys.iter().map(|key| self.table.get(key)).collect())
    }

    /// Every entry is checked, for its key, value size and weight, before any is
    /// written.
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        validate_entries(entries, self.limits.max_value_size)?;
        if let Some((key, value)) = entries
            .iter()
            .find(|(key, value)| EntryWeighter::weight_of(key.len(), value.len()) > self.table.room)
        {
            return Err(self.too_heavy(key, value.len()));
        }
        for (key, value) in entries {
            self.table
                .set(key, value.clone(), ttl)
                .map_err(|TooHeavy| self.too_heavy(key, value.len()))?;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        validate_keys(keys.iter().copied())?;
        Ok(keys.iter().filter(|key| self.table.remove(key)).count())
    }

    /// One decision under the lock of the key's shard: atomic against other `add`s and
    /// `delete`s of the key; a `set` of the key that lands between the decision and
    /// the insert wins, and the `add` returns false. Value limit and TTL as `set`; a
    /// zero TTL stores nothing and returns false.
    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        validate_key(key)?;
        self.check_value(&value)?;
        let len = value.len();
        self.table
            .add(key, value, ttl)
            .await
            .map_err(|TooHeavy| self.too_heavy(key, len))
    }

    /// Removes every entry of this cache (and of its clones).
    async fn clear(&self) -> Result<(), CacheError> {
        self.table.clear();
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

/// Bytes charged to every entry on top of its key and value.
pub const PER_ENTRY_OVERHEAD_BYTES: u64 = ENTRY_OVERHEAD;
