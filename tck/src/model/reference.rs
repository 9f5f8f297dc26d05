//! The reference model: a plain map from key to value and expiry window, and the rules
//! that say which answers of a backend it accepts.
//!
//! Time is never read as a point: every operation is bracketed by the instant before it
//! was sent and the instant after its answer came back, and an entry written with a TTL
//! gets a window instead of a deadline. Inside the window the entry may be there or not
//! (the backend's clock granularity, and when exactly the server ran the command, are
//! unknown); before it the entry must be there, after it the entry must be gone. An
//! answer seen inside the window is remembered: a miss makes the entry gone for good,
//! a hit proves it was alive at least until the read was sent.

use std::{collections::HashMap, time::Duration, time::Instant};

use cache_api::Bytes;

use super::program::Key;

/// When a backend may expire an entry: from `earliest` on it may be gone, after `latest`
/// it must be.
#[derive(Debug, Clone, Copy)]
struct Window {
    earliest: Instant,
    latest: Instant,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    expiry: Option<Window>,
}

/// What the model knows of one key when an operation ran, bracketed by `sent` and
/// `answered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Known {
    /// Surely no live entry.
    Absent,
    /// Surely this value.
    Present(Bytes),
    /// This value, or nothing if it expired: the operation ran inside the entry's window.
    MaybeExpired(Bytes),
}

/// The time bracket of one operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bracket {
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
}

/// The reference: what a cache that keeps the contract holds after the operations so
/// far, up to the expiry windows.
#[derive(Debug)]
pub(crate) struct Reference {
    granularity: Duration,
    entries: HashMap<Key, Entry>,
}

/// Rounds `ttl` up to a multiple of `step`, as [`cache_api::Capabilities::round_up_ttl`].
fn round_up(ttl: Duration, step: Duration) -> Duration {
    let steps = ttl.as_nanos().div_ceil(step.as_nanos().max(1));
    let nanos = steps.saturating_mul(step.as_nanos());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Reference {
    /// An empty cache whose clock has `granularity`.
    pub(crate) fn new(granularity: Duration) -> Self {
        Self {
            granularity,
            entries: HashMap::new(),
        }
    }

    /// What is known of `key` during `at`.
    pub(crate) fn known(&self, key: Key, at: Bracket) -> Known {
        let Some(entry) = self.entries.get(&key) else {
            return Known::Absent;
        };
        match entry.expiry {
            None => Known::Present(entry.value.clone()),
            Some(window) if at.answered < window.earliest => Known::Present(entry.value.clone()),
            Some(window) if at.sent > window.latest => Known::Absent,
            Some(_) => Known::MaybeExpired(entry.value.clone()),
        }
    }

    /// Records that `key` was seen live (`true`) or not during `at`; the caller has
    /// checked that the answer is one `known` allows.
    pub(crate) fn saw(&mut self, key: Key, live: bool, at: Bracket) {
        if !live {
            self.entries.remove(&key);
        } else if let Some(window) = self.entries.get_mut(&key).and_then(|e| e.expiry.as_mut()) {
            // Alive when the read reached the server, which was after it was sent.
            window.earliest = window.earliest.max(at.sent);
        }
    }

    /// Whether an answer about `key` that says `live` (and, when live, holds `value`)
    /// is one the contract allows during `at`; records it when it is.
    pub(crate) fn accept_read(&mut self, key: Key, seen: Option<&Bytes>, at: Bracket) -> bool {
        let allowed = match (self.known(key, at), seen) {
            (Known::Absent, None) => true,
            (Known::Present(value) | Known::MaybeExpired(value), Some(seen)) => value == seen,
            (Known::MaybeExpired(_), None) => true,
            _ => false,
        };
        if allowed {
            self.saw(key, seen.is_some(), at);
        }
        allowed
    }

    /// Whether `exists(key)` may answer `seen` during `at`; records it when it may.
    pub(crate) fn accept_exists(&mut self, key: Key, seen: bool, at: Bracket) -> bool {
        let allowed = match self.known(key, at) {
            Known::Absent => !seen,
            Known::Present(_) => seen,
            Known::MaybeExpired(_) => true,
        };
        if allowed {
            self.saw(key, seen, at);
        }
        allowed
    }

    /// A `set` of `value` under `key` with `ttl`, run during `at`.
    pub(crate) fn set(&mut self, key: Key, value: Bytes, ttl: Option<Duration>, at: Bracket) {
        let expiry = match ttl {
            None => None,
            Some(ttl) if ttl.is_zero() => {
                self.entries.remove(&key);
                return;
            }
            Some(ttl) => {
                // A TTL is rounded up to the granularity, and the backend's clock may
                // expire the entry up to one granularity early or late.
                let rounded = round_up(ttl, self.granularity);
                let earliest = (at.sent + rounded)
                    .checked_sub(self.granularity)
                    .unwrap_or(at.sent);
                Some(Window {
                    earliest,
                    latest: at.answered + rounded + self.granularity,
                })
            }
        };
        self.entries.insert(key, Entry { value, expiry });
    }

    /// The range of answers `delete_many(keys)` may give during `at` (each distinct key
    /// counted once), and forgets the keys.
    pub(crate) fn delete_many(&mut self, keys: &[Key], at: Bracket) -> (usize, usize) {
        let mut distinct = keys.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let (mut surely, mut maybe) = (0, 0);
        for key in distinct {
            match self.known(key, at) {
                Known::Absent => {}
                Known::Present(_) => surely += 1,
                Known::MaybeExpired(_) => maybe += 1,
            }
            self.entries.remove(&key);
        }
        (surely, surely + maybe)
    }

    /// `clear()`: nothing is left.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bracket(start: Instant, from_ms: u64, to_ms: u64) -> Bracket {
        Bracket {
            sent: start + Duration::from_millis(from_ms),
            answered: start + Duration::from_millis(to_ms),
        }
    }

    #[test]
    fn an_entry_is_surely_there_before_its_window_and_surely_gone_after() {
        let start = Instant::now();
        let key = Key::all().next().unwrap();
        let mut model = Reference::new(Duration::from_secs(1));
        model.set(
            key,
            Bytes::from("v"),
            Some(Duration::from_millis(1500)),
            bracket(start, 0, 10),
        );
        // Rounded up to 2 s; may go from 1 s on, must be gone after 3.01 s.
        assert_eq!(
            model.known(key, bracket(start, 900, 990)),
            Known::Present(Bytes::from("v"))
        );
        assert!(matches!(
            model.known(key, bracket(start, 1500, 1510)),
            Known::MaybeExpired(_)
        ));
        assert_eq!(model.known(key, bracket(start, 3020, 3030)), Known::Absent);
        assert!(!model.accept_read(key, None, bracket(start, 100, 110)));
        assert!(model.accept_read(key, Some(&Bytes::from("v")), bracket(start, 1500, 1510)));
        // Seen alive at 1.5 s: from then on a read before 1.5 s is sure again.
        assert!(model.accept_read(key, None, bracket(start, 2000, 2010)));
        assert_eq!(model.known(key, bracket(start, 2100, 2110)), Known::Absent);
    }

    #[test]
    fn delete_many_counts_each_key_once_with_a_range_for_expiring_ones() {
        let start = Instant::now();
        let keys: Vec<Key> = Key::all().take(3).collect();
        let mut model = Reference::new(Duration::from_millis(1));
        model.set(keys[0], Bytes::from("a"), None, bracket(start, 0, 1));
        model.set(
            keys[1],
            Bytes::from("b"),
            Some(Duration::from_millis(100)),
            bracket(start, 0, 1),
        );
        let range = model.delete_many(
            &[keys[0], keys[0], keys[1], keys[2]],
            bracket(start, 99, 120),
        );
        assert_eq!(range, (1, 2));
        assert_eq!(
            model.known(keys[0], bracket(start, 130, 131)),
            Known::Absent
        );
    }
}
