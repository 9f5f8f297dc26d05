//! The generation number of a prefixed cache, as this instance knows it.
//!
//! memcached cannot list keys, so a prefix cannot be cleared key by key. Instead every key
//! of a prefixed cache carries the prefix's *generation* (`<prefix>{<generation>}<key>`),
//! a number stored on the server under `<prefix>{gen}`. `clear` increments it: the old
//! entries become unreachable at once and age out of memory by their TTL or the LRU.
//!
//! Each instance keeps the number in memory and checks it again when it is older than the
//! refresh interval; the check runs alongside the operation that triggered it, and the
//! operation is repeated in the new generation when the number moved. A lost counter
//! (evicted, server restarted) is created again from the clock, above every number issued
//! before, so a lost counter can only hide entries, never bring back cleared ones.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// The generation this instance uses, and when it last looked at the server's.
#[derive(Debug)]
pub(crate) struct Namespace {
    /// Where the counter lives on the server.
    pub(crate) key: Vec<u8>,
    state: Mutex<State>,
    refresh: Duration,
    started: Instant,
    /// Milliseconds since `started` of the last check that was begun; zero stands for the
    /// read made when the instance was built.
    checked_at: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct State {
    generation: u64,
    /// Bumped at every change, so that a check that began before a change cannot undo it.
    version: u64,
}

/// A generation as read at some moment, to hand back to [`Namespace::adopt`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    version: u64,
}

impl Namespace {
    pub(crate) fn new(key: Vec<u8>, generation: u64, refresh: Duration) -> Self {
        Self {
            key,
            state: Mutex::new(State {
                generation,
                version: 0,
            }),
            refresh,
            started: Instant::now(),
            checked_at: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two integers written together: a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = *self.lock();
        Snapshot {
            generation: state.generation,
            version: state.version,
        }
    }

    /// True when the caller should check the server's generation now: the last check is
    /// older than the refresh interval, and no other caller claimed this one.
    pub(crate) fn claim_check(&self) -> bool {
        if self.refresh.is_zero() {
            return true;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.checked_at.load(Ordering::Acquire);
        let interval = u64::try_from(self.refresh.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
            && self
                .checked_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Takes `generation`, read from the server after `seen` was taken, unless the
    /// generation changed here in between (a `clear` of this instance). Returns the
    /// generation in use afterwards.
    pub(crate) fn adopt(&self, seen: Snapshot, generation: u64) -> u64 {
        let mut state = self.lock();
        if state.version == seen.version && state.generation != generation {
            state.generation = generation;
            state.version += 1;
        }
        state.generation
    }

    /// Sets the generation this instance just wrote to the server.
    pub(crate) fn set(&self, generation: u64) {
        let mut state = self.lock();
        state.generation = generation;
        state.version += 1;
    }
}

/// A generation for a counter created anew: the clock in microseconds, and above `known`.
pub(crate) fn fresh_generation(known: u64) -> u64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    micros.max(known.saturating_add(1))
}
