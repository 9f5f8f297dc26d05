//! The table under [`MemoryCache`](crate::MemoryCache): a weighted, sharded
//! [quick_cache](https://docs.rs/quick_cache) whose entries carry their own deadline.
//!
//! quick_cache has no notion of time, so every read checks the deadline stored beside
//! the value: an expired entry is never returned, and is removed when a read, a `delete`
//! or an `add` finds it, when the byte budget evicts it, or by a sweep. Until then it
//! counts against the budget like any other entry, which keeps memory bounded whatever
//! the TTLs.
//!
//! quick_cache's eviction knows nothing of deadlines either: left alone, entries that
//! expired unread would hold their share of the budget while new live entries evict each
//! other. So a write that finds the earliest deadline of the table passed sweeps the
//! expired entries out first, at most once per eighth of the table's entries written
//! (at least [`SWEEP_EVERY`]): the sweep's walk of the table is spread over those
//! writes.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use cache_api::Bytes;
use compact_str::CompactString;
use quick_cache::{
    sync::{Cache as QuickCache, EntryAction, EntryResult},
    DefaultHashBuilder, Weighter,
};

/// Bytes charged to every entry on top of its key and value: the table's slot, the
/// entry's own fields and the allocations' headers. `cachectl bench memory://
/// --footprint 1000000` measured 112 bytes of resident memory per entry of an 18-byte
/// key (kept inline) and a 100-byte value, and 144 when keys were `String`s: charging 96
/// keeps the budget an upper bound on memory for entries of that size and larger, keys
/// of any length, with room for the allocator's rounding. Entries of a few bytes take
/// more than they are charged (the README says how much).
pub(crate) const ENTRY_OVERHEAD: u64 = 96;

/// TTLs longer than this are kept as "no expiry": no process lives a century, and
/// `Instant` arithmetic stays far from overflowing.
const LONGEST_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A key as the table keeps it: up to 24 bytes inline, in the table's own entry, so a
/// lookup compares the key where it finds the entry (a `String` would send it to an
/// allocation of its own for every compare); longer keys on the heap as a `String`'s.
/// It hashes and compares as the `str` it holds, which is what lookups pass.
pub(crate) type Key = CompactString;

/// A value and the moment it dies.
#[derive(Clone)]
pub(crate) struct Entry {
    value: Bytes,
    deadline: Option<Instant>,
}

impl Entry {
    /// `None` for a zero TTL: such an entry is already dead and is never stored.
    fn new(value: Bytes, ttl: Option<Duration>) -> Option<Self> {
        let deadline = match ttl.filter(|ttl| *ttl <= LONGEST_TTL) {
            Some(ttl) if ttl.is_zero() => return None,
            Some(ttl) => Instant::now().checked_add(ttl),
            None => None,
        };
        Some(Self { value, deadline })
    }

    /// Entries without a TTL, the common case, are live without reading the clock.
    fn is_live(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| Instant::now() < deadline)
    }
}

/// Weighs an entry in bytes: key, value and [`ENTRY_OVERHEAD`].
#[derive(Clone, Copy)]
pub(crate) struct EntryWeighter;

impl EntryWeighter {
    pub(crate) fn weight_of(key_len: usize, value_len: usize) -> u64 {
        (key_len as u64)
            .saturating_add(value_len as u64)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

impl Weighter<Key, Entry> for EntryWeighter {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        Self::weight_of(key.len(), entry.value.len())
    }
}

/// The fewest writes between two sweeps.
const SWEEP_EVERY: u64 = 64;

/// The sharded table and what one of its shards can hold.
pub(crate) struct Table {
    entries: QuickCache<Key, Entry, EntryWeighter, DefaultHashBuilder>,
    /// The heaviest entry a shard admits: quick_cache refuses heavier ones silently,
    /// so a write checks against it first.
    pub(crate) room: u64,
    /// What the deadlines are counted from.
    epoch: Instant,
    /// The earliest deadline of an entry written since the last sweep, or found by it,
    /// in nanoseconds from `epoch`; `u64::MAX` when none is known.
    earliest: AtomicU64,
    /// Writes since the last sweep while a deadline was known, and the entries the
    /// sweep left.
    written: AtomicU64,
    left: AtomicU64,
    sweeping: AtomicBool,
}

/// A write not stored: key, value and overhead weigh more than one shard holds.
pub(crate) struct TooHeavy;

impl Table {
    pub(crate) fn new(
        entries: QuickCache<Key, Entry, EntryWeighter, DefaultHashBuilder>,
        room: u64,
    ) -> Self {
        Self {
            entries,
            room,
            epoch: Instant::now(),
            earliest: AtomicU64::new(u64::MAX),
            written: AtomicU64::new(0),
            left: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
        }
    }

    /// `deadline` in nanoseconds from the table's epoch.
    fn since_epoch(&self, deadline: Instant) -> u64 {
        u64::try_from(deadline.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Notes a write of `entry`, and sweeps first when an entry of the table has
    /// expired and enough writes came since the last sweep.
    fn before_write(&self, entry: &Entry) {
        if let Some(deadline) = entry.deadline {
            self.earliest
                .fetch_min(self.since_epoch(deadline), Ordering::Relaxed);
        }
        // A table without deadlines (no TTLs) has nothing to sweep, and its writes do
        // not touch the shared counter.
        let earliest = self.earliest.load(Ordering::Relaxed);
        if earliest == u64::MAX {
            return;
        }
        let written = self.written.fetch_add(1, Ordering::Relaxed) + 1;
        if written < (self.left.load(Ordering::Relaxed) / 8).max(SWEEP_EVERY)
            || self.since_epoch(Instant::now()) < earliest
        {
            return;
        }
        if self
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep();
            self.sweeping.store(false, Ordering::Release);
        }
    }

    fn check_weight(&self, key: &str, value: &Bytes) -> Result<(), TooHeavy> {
        if EntryWeighter::weight_of(key.len(), value.len()) > self.room {
            return Err(TooHeavy);
        }
        Ok(())
    }

    /// A clone of the live value (a reference count, no copy); an expired entry found
    /// is removed, unless a write replaced it meanwhile.
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let entry = self.entries.get(key)?;
        if entry.is_live() {
            return Some(entry.value);
        }
        self.entries.remove_if(key, |entry| !entry.is_live());
        None
    }

    /// Replaces value and TTL; a zero TTL removes the entry.
    pub(crate) fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), TooHeavy> {
        self.check_weight(key, &value)?;
        match Entry::new(value, ttl) {
            Some(entry) => {
                self.before_write(&entry);
                self.entries.insert(Key::new(key), entry);
            }
            None => {
                self.entries.remove(key);
            }
        }
        Ok(())
    }

    /// Stores the entry only if no live one is there; true when it stored.
    ///
    /// One `entry` call on the key: the shard's lock decides between racing adds, and a
    /// placeholder holds the key from the decision to the insert, so that exactly one
    /// of them stores. A plain `set` of the key in that window wins over the `add`,
    /// which then answers false.
    pub(crate) async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, TooHeavy> {
        self.check_weight(key, &value)?;
        let Some(entry) = Entry::new(value, ttl) else {
            return Ok(false);
        };
        self.before_write(&entry);
        let found = self
            .entries
            .entry_async(&Key::new(key), |_, current| {
                if current.is_live() {
                    EntryAction::Retain(())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await;
        Ok(match found {
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                guard.insert(entry).is_ok()
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => false,
        })
    }

    /// Removes `key`; true when the entry removed was still live.
    pub(crate) fn remove(&self, key: &str) -> bool {
        self.entries
            .remove(key)
            .is_some_and(|(_, entry)| entry.is_live())
    }

    /// Removes every entry.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// Removes the expired entries, walking every shard under its write lock in turn,
    /// and notes the earliest deadline of those left.
    pub(crate) fn sweep(&self) {
        self.written.store(0, Ordering::Relaxed);
        self.earliest.store(u64::MAX, Ordering::Relaxed);
        let now = Instant::now();
        let earliest = AtomicU64::new(u64::MAX);
        self.entries.retain(|_, entry| match entry.deadline {
            Some(deadline) if deadline <= now => false,
            Some(deadline) => {
                earliest.fetch_min(self.since_epoch(deadline), Ordering::Relaxed);
                true
            }
            None => true,
        });
        self.earliest
            .fetch_min(earliest.into_inner(), Ordering::Relaxed);
        self.left.store(self.len(), Ordering::Relaxed);
    }

    /// Entries in the table, expired ones not yet removed included.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes charged against the budget.
    pub(crate) fn weight(&self) -> u64 {
        self.entries.weight()
    }
}
