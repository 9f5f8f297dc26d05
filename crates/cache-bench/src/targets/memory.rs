//! The table under the in-memory backend, used directly: quick_cache's sync cache of
//! `CompactString` (keys of up to 24 bytes inline, as the backend keeps them) to a value
//! and its deadline, with the backend's byte budget, weigher and hasher, and the deadline
//! checked on every read as the backend does.

use std::time::Instant;

use bytes::Bytes;
use compact_str::CompactString;

/// Bytes the in-memory backend charges each entry on top of key and value.
const OVERHEAD: u64 = cache_memory::PER_ENTRY_OVERHEAD_BYTES;

/// What a quick_cache user who needs a TTL per entry stores: the value and when it
/// dies (quick_cache has no clock of its own). Every write of the benchmarks has no TTL,
/// and every read checks the deadline, as the backend's do.
#[derive(Clone)]
pub(crate) struct Timed {
    value: Bytes,
    deadline: Option<Instant>,
}

impl Timed {
    /// An entry without TTL, as every write of the benchmarks is.
    pub(crate) fn new(value: Bytes) -> Self {
        Self {
            value,
            deadline: None,
        }
    }

    fn live(self) -> Option<Bytes> {
        self.deadline
            .is_none_or(|deadline| Instant::now() < deadline)
            .then_some(self.value)
    }
}

/// Key, value and the backend's per-entry overhead.
#[derive(Clone, Copy)]
pub(crate) struct Weigh;

impl quick_cache::Weighter<CompactString, Timed> for Weigh {
    fn weight(&self, key: &CompactString, entry: &Timed) -> u64 {
        key.len() as u64 + entry.value.len() as u64 + OVERHEAD
    }
}

/// The table: quick_cache's default shard count (four per core), which is the backend's
/// too with its default largest value.
pub(crate) struct Table(
    quick_cache::sync::Cache<CompactString, Timed, Weigh, quick_cache::DefaultHashBuilder>,
);

impl Table {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        Self(quick_cache::sync::Cache::with(
            usize::try_from(capacity_bytes / 256).unwrap_or(usize::MAX),
            capacity_bytes,
            Weigh,
            quick_cache::DefaultHashBuilder::default(),
            Default::default(),
        ))
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.0.get(key).and_then(Timed::live)
    }

    pub(crate) fn insert(&self, key: &str, value: Bytes) {
        self.0.insert(CompactString::new(key), Timed::new(value));
    }

    pub(crate) fn remove(&self, key: &str) {
        self.0.remove(key);
    }

    /// Entries in the table.
    pub(crate) fn len(&self) -> u64 {
        self.0.len() as u64
    }
}
