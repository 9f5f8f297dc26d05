//! [`MemoryCacheBuilder`]: the budget, the largest value, and the shards they allow.

use std::{num::NonZeroUsize, time::Duration};

use cache_api::{CacheError, Limits};
use quick_cache::{sync::Cache as QuickCache, DefaultHashBuilder, OptionsBuilder};

use crate::{
    table::{EntryWeighter, Table},
    MemoryCache,
};

/// Share of each shard's budget that quick_cache admits a single entry into (its
/// "hot" share, its default): a heavier entry is refused, so the shards are sized to
/// hold the largest value.
const HOT_ALLOCATION: f64 = 0.97;

/// Key bytes the shard sizing leaves room for beside a value of the largest size:
/// keys up to this long always fit with any accepted value.
const KEY_ALLOWANCE: usize = 64 << 10;

/// Average entry the table's bookkeeping is sized for (its ghost list of recently
/// evicted keys); an estimate within an order of magnitude is what quick_cache asks.
const TYPICAL_ENTRY_BYTES: u64 = 256;

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
    /// value cannot evict most of the cache. At most the budget.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = Some(bytes);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] when the budget is zero, or the largest value is zero,
    /// larger than the budget, or too large to be stored in it with its key and the
    /// per-entry overhead.
    pub fn build(self) -> Result<MemoryCache, CacheError> {
        let capacity = self.capacity.unwrap_or(MemoryCache::DEFAULT_CAPACITY_BYTES);
        if capacity == 0 {
            return Err(CacheError::config("max_capacity_bytes must be positive"));
        }
        let max_value_size = self
            .max_value_size
            .unwrap_or_else(|| usize::try_from(capacity / 16).unwrap_or(usize::MAX));
        if max_value_size == 0 {
            return Err(CacheError::config(match self.max_value_size {
                Some(_) => "max_value_size must be positive".to_owned(),
                // Not set: a 16th of the budget, which is then under a byte.
                None => format!(
                    "max_capacity_bytes ({capacity} bytes) is too small: the largest value is \
                     a 16th of it unless max_value_size is set, and each entry costs {} \
                     bytes besides its key and value",
                    crate::table::ENTRY_OVERHEAD
                ),
            }));
        }
        if max_value_size as u64 > capacity {
            return Err(CacheError::config(format!(
                "max_value_size ({max_value_size} bytes) exceeds max_capacity_bytes ({capacity} bytes)"
            )));
        }
        let (shards, room) = shard_layout(capacity, max_value_size);
        if EntryWeighter::weight_of(1, max_value_size) > room {
            return Err(CacheError::config(match self.max_value_size {
                Some(_) => format!(
                    "max_value_size ({max_value_size} bytes) leaves no room for a key and the \
                     entry overhead in max_capacity_bytes ({capacity} bytes)"
                ),
                // Not set: the user named only the budget.
                None => format!(
                    "max_capacity_bytes ({capacity} bytes) is too small: each entry costs {} \
                     bytes besides its key and value, and the largest value is a 16th of the \
                     budget unless max_value_size is set",
                    crate::table::ENTRY_OVERHEAD
                ),
            }));
        }
        let options = OptionsBuilder::new()
            .weight_capacity(capacity)
            .shards(shards)
            .hot_allocation(HOT_ALLOCATION)
            // Enough items per shard that quick_cache keeps the shard count asked for.
            .estimated_items_capacity(
                usize::try_from(capacity / TYPICAL_ENTRY_BYTES)
                    .unwrap_or(usize::MAX)
                    .max(64 * shards),
            )
            .build()
            .map_err(|err| CacheError::config(format!("memory table: {err}")))?;
        // quick_cache's own hasher (foldhash), keyed at random per cache: fast on short
        // keys, and keys chosen to collide cannot be computed from outside.
        let entries = QuickCache::with_options(
            options,
            EntryWeighter,
            DefaultHashBuilder::default(),
            Default::default(),
        );
        Ok(MemoryCache {
            table: std::sync::Arc::new(Table::new(entries, room)),
            limits: Limits::new(Duration::from_millis(1), max_value_size)
                .with_clear()
                .with_atomic_add(),
            capacity,
        })
    }
}

/// The most shards (up to four per core, quick_cache's default) whose budget still
/// admits the largest value with a key of [`KEY_ALLOWANCE`] bytes, and the heaviest
/// entry one of them admits. Fewer shards mean more contention between threads, so
/// only a large largest value (against the budget) costs any.
fn shard_layout(capacity: u64, max_value_size: usize) -> (usize, u64) {
    let wanted = EntryWeighter::weight_of(KEY_ALLOWANCE, max_value_size);
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut shards = (cores * 4).next_power_of_two();
    loop {
        let room = room_of(capacity, shards);
        if room >= wanted || shards == 1 {
            return (shards, room);
        }
        shards /= 2;
    }
}

/// The heaviest entry a shard of `capacity / shards` admits, computed as quick_cache
/// does.
fn room_of(capacity: u64, shards: usize) -> u64 {
    let per_shard = capacity.div_ceil(shards as u64);
    ((per_shard as f64 * HOT_ALLOCATION) as u64).clamp(per_shard.min(1), per_shard)
}

#[cfg(test)]
mod tests {
    use cache_api::Cache;

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
        let err = MemoryCache::builder()
            .max_capacity_bytes(1000)
            .max_value_size(1000)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("leaves no room"), "{err}");
        // A budget too small for any value names the budget, not a setting left unset.
        let err = MemoryCache::builder()
            .max_capacity_bytes(1)
            .build()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("max_capacity_bytes (1 bytes) is too small"),
            "{err}"
        );
        for capacity in [16, 60, 100] {
            let err = MemoryCache::builder()
                .max_capacity_bytes(capacity)
                .build()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "max_capacity_bytes ({capacity} bytes) is too small"
                )) && !err.contains("max_value_size ("),
                "{err}"
            );
        }
        let cache = MemoryCache::new();
        assert_eq!(cache.limits().max_value_size, 16 << 20);
        assert_eq!(cache.capacity_bytes(), 256 << 20);
    }

    #[test]
    fn shards_hold_the_largest_value_with_a_long_key() {
        for (capacity, max_value_size) in [(256 << 20, 16 << 20), (4096, 100), (1 << 30, 1 << 30)] {
            let (shards, room) = shard_layout(capacity, max_value_size);
            assert!(shards.is_power_of_two(), "{shards}");
            if shards > 1 {
                assert!(
                    room >= EntryWeighter::weight_of(KEY_ALLOWANCE, max_value_size),
                    "{capacity} / {max_value_size}: {shards} shards of room {room}"
                );
            }
        }
        // A small largest value leaves every core its shards.
        let (shards, _) = shard_layout(256 << 20, 1024);
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(shards, (cores * 4).next_power_of_two());
    }

    #[tokio::test]
    async fn a_value_of_the_largest_size_is_stored_with_a_long_key() {
        let cache = MemoryCache::builder()
            .max_capacity_bytes(8 << 20)
            .max_value_size(1 << 20)
            .build()
            .unwrap();
        let key = "k".repeat(KEY_ALLOWANCE);
        let value = cache_api::Bytes::from(vec![7; 1 << 20]);
        cache.set(&key, value.clone(), None).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap(), Some(value));
    }
}
