//! The generation number of a prefixed cache, as this instance knows it.
//!
//! Every key of a prefixed cache carries the prefix's *generation*
//! (`<prefix>{<generation>}<key>`), a number stored on the server under `<prefix>{gen}`.
//! While that counter is absent the namespace holds nothing reachable: reads are misses
//! and nothing is written to find that out. The first write creates it (memcached `add`,
//! so racing instances agree on one number) from the clock in microseconds, above every
//! number this instance knew. `clear` deletes it (the instant, logical part), then removes
//! the entries themselves where the server can list them.
//!
//! Each instance keeps the number in memory and checks it again when it is older than the
//! refresh interval; the check runs alongside the operation that triggered it, and the
//! operation is repeated in the new generation when the number moved (or vanished).

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
    /// `None` while the counter is absent (as last seen).
    generation: Option<u64>,
    /// The highest generation this instance ever knew: a counter it creates starts above.
    highest: u64,
    /// Bumped at every change, so that a check that began before a change cannot undo it.
    version: u64,
}

/// A generation as read at some moment, to hand back to [`Namespace::adopt`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) generation: Option<u64>,
    pub(crate) highest: u64,
    version: u64,
}

impl Namespace {
    pub(crate) fn new(key: Vec<u8>, generation: Option<u64>, refresh: Duration) -> Self {
        Self {
            key,
            state: Mutex::new(State {
                generation,
                highest: generation.unwrap_or_default(),
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
            highest: state.highest,
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
    pub(crate) fn adopt(&self, seen: Snapshot, generation: Option<u64>) -> Option<u64> {
        let mut state = self.lock();
        if state.version == seen.version && state.generation != generation {
            state.generation = generation;
            state.highest = state.highest.max(generation.unwrap_or_default());
            state.version += 1;
        }
        state.generation
    }

    /// Sets the generation this instance just created, read or deleted on the server;
    /// `highest` is raised to at least `seen_up_to`.
    pub(crate) fn set(&self, generation: Option<u64>, seen_up_to: u64) {
        let mut state = self.lock();
        state.generation = generation;
        state.highest = state
            .highest
            .max(seen_up_to)
            .max(generation.unwrap_or_default());
        state.version += 1;
    }
}

/// A generation for a counter created anew: the clock in microseconds, and above `known`.
pub(crate) fn fresh_generation(known: u64) -> u64 {
    now_micros().max(known.saturating_add(1))
}

/// The clock in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
