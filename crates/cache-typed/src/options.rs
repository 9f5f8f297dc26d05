//! What a `get_or_set` does around the factory: TTL, jitter, fail-safe, timeouts, eager
//! refresh, distributed single-flight and the read-error policy.

use std::time::Duration;

/// What a backend error on the read path of `get_or_set` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadErrors {
    /// The default: the error is logged and treated as a miss, so the value is computed
    /// (one factory run per key in the process, whatever the number of callers). A
    /// cache that is down slows the application to its database's pace but does not
    /// fail it.
    #[default]
    FailOpen,
    /// The error is returned to the caller (after fail-safe, when a stale value can be
    /// served instead).
    Propagate,
}

/// Single-flight across processes: before running the factory, a process takes a lock
/// entry (`<key>` + [`LOCK_SUFFIX`](crate::LOCK_SUFFIX)) with
/// [`Cache::add`](cache_api::Cache::add); the others poll for the value, with backoff,
/// and compute themselves when the lock's holder disappears (its entry expires) or
/// after `wait`.
///
/// ```
/// use std::time::Duration;
/// use cache_typed::DistributedLock;
///
/// let lock = DistributedLock::new(Duration::from_secs(5)).wait(Duration::from_secs(2));
/// assert_eq!(lock.ttl(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct DistributedLock {
    ttl: Duration,
    wait: Duration,
}

impl DistributedLock {
    /// A lock entry that expires after `ttl` (give it more than the factory's usual
    /// run time); losers wait up to `ttl` for the value. A zero `ttl` is taken as 1 ms
    /// (rounded up to the backend's TTL granularity when the lock is taken): an entry
    /// of no time would never be stored, and every miss would wait out `wait` for a
    /// lock nobody can hold.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_typed::DistributedLock;
    ///
    /// let lock = DistributedLock::new(Duration::from_secs(5)).wait(Duration::from_secs(2));
    /// assert_eq!((lock.ttl(), lock.max_wait()), (Duration::from_secs(5), Duration::from_secs(2)));
    /// assert_eq!(DistributedLock::new(Duration::ZERO).ttl(), Duration::from_millis(1));
    /// ```
    pub fn new(ttl: Duration) -> Self {
        let ttl = ttl.max(Duration::from_millis(1));
        Self { ttl, wait: ttl }
    }

    /// How long the processes that did not get the lock poll for the value before
    /// computing it themselves.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The lock entry's TTL.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The longest wait for another process's value.
    #[must_use]
    pub fn max_wait(&self) -> Duration {
        self.wait
    }
}

/// Options of one entry: the defaults of a [`TypedCache`](crate::TypedCache), changed
/// per call with the builder methods.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`ttl`](Self::ttl) | 5 min | logical lifetime: after it the value is stale |
/// | [`jitter`](Self::jitter) | none | up to this much is added to each TTL at random |
/// | [`fail_safe`](Self::fail_safe) | off, 1 day, 30 s | keep values that long past their TTL, serve them when the factory or the backend fails, retry the factory after the throttle |
/// | [`soft_timeout`](Self::soft_timeout) | none | past it, a stale value is returned and the factory finishes in the background |
/// | [`hard_timeout`](Self::hard_timeout) | none | past it, the caller gets [`Error::Timeout`](crate::Error::Timeout) |
/// | [`eager_refresh`](Self::eager_refresh) | none | a hit past this fraction of the TTL refreshes the value in the background |
/// | [`distributed_lock`](Self::distributed_lock) | none | single-flight across processes |
/// | [`read_errors`](Self::read_errors) | [`ReadErrors::FailOpen`] | what a backend error on read does |
///
/// ```
/// use std::time::Duration;
/// use cache_typed::EntryOptions;
///
/// let options = EntryOptions::default()
///     .ttl(Duration::from_secs(60))
///     .jitter(Duration::from_secs(5))
///     .fail_safe(Duration::from_secs(3600), Duration::from_secs(10))
///     .soft_timeout(Duration::from_millis(100))
///     .hard_timeout(Duration::from_secs(2))
///     .eager_refresh(0.8);
/// assert_eq!(options.ttl_value(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct EntryOptions {
    pub(crate) ttl: Duration,
    pub(crate) jitter: Duration,
    pub(crate) fail_safe: bool,
    pub(crate) fail_safe_max_duration: Duration,
    pub(crate) fail_safe_throttle: Duration,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) eager_refresh: Option<f64>,
    pub(crate) distributed_lock: Option<DistributedLock>,
    pub(crate) read_errors: ReadErrors,
}

impl Default for EntryOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            jitter: Duration::ZERO,
            fail_safe: false,
            fail_safe_max_duration: Duration::from_secs(24 * 3600),
            fail_safe_throttle: Duration::from_secs(30),
            soft_timeout: None,
            hard_timeout: None,
            eager_refresh: None,
            distributed_lock: None,
            read_errors: ReadErrors::FailOpen,
        }
    }
}

impl EntryOptions {
    /// The logical lifetime of a value: after it, the value is stale (a miss for
    /// [`get`](crate::TypedCache::get), a fallback for fail-safe).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds a random duration of up to `max` to every TTL written, so that entries
    /// written together do not all expire together.
    pub fn jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// Turns fail-safe on: values stay in the backend `max_duration` past their TTL;
    /// when the factory fails (or times out, or the backend does), the last value is
    /// served, flagged stale, and the factory is tried again only after `throttle`.
    /// The last values `get_or_set` read or computed, and those `set_with` wrote with
    /// these options, are also kept in the process (a bounded number, see
    /// [`TypedCacheBuilder::fail_safe_capacity`](crate::TypedCacheBuilder::fail_safe_capacity)),
    /// so they can be served while the backend itself is down.
    pub fn fail_safe(mut self, max_duration: Duration, throttle: Duration) -> Self {
        self.fail_safe = true;
        self.fail_safe_max_duration = max_duration;
        self.fail_safe_throttle = throttle;
        self
    }

    /// Turns fail-safe off.
    pub fn no_fail_safe(mut self) -> Self {
        self.fail_safe = false;
        self
    }

    /// When a stale value is at hand, the caller waits at most `timeout` for the
    /// factory, then gets the stale value, served alone for the fail-safe throttle
    /// until the factory's value lands; the factory keeps running in the background
    /// and stores its value when it finishes, and the next caller after the throttle
    /// starts a run of its own if it has not. A fresh value in time is the caller's,
    /// whether or not its write is done.
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// The caller waits at most `timeout` for the factory, then gets
    /// [`Error::Timeout`](crate::Error::Timeout); the factory keeps running in the
    /// background and stores its value when it finishes, and the next caller starts a
    /// run of its own (a factory that hangs holds the key no longer than this). The
    /// time counts from the
    /// moment the caller starts waiting for the run (for the caller that starts it, the
    /// run's start, whose last look at the backend before the factory and the
    /// distributed lock it includes; for a caller that joins a run under way, its
    /// joining); the first read of the call is bounded by the backend's own timeouts,
    /// not by this one. A value the factory returned in time is the caller's even when
    /// its write to the backend is not done by then (a frozen server): the write ends
    /// in the background.
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// A hit read after `fraction` of its TTL (0.8: in the last fifth) is returned at
    /// once and refreshed in the background, by one factory run per key in the process.
    /// A refresh that fails leaves the value as it is; under fail-safe, the value is
    /// then served alone for the throttle, as after any failure, so that a failing
    /// factory is not tried again by every hit. Values outside `(0, 1)` turn it off.
    pub fn eager_refresh(mut self, fraction: f64) -> Self {
        self.eager_refresh = (fraction > 0.0 && fraction < 1.0).then_some(fraction);
        self
    }

    /// Single-flight across processes that share the backend; see [`DistributedLock`].
    pub fn distributed_lock(mut self, lock: DistributedLock) -> Self {
        self.distributed_lock = Some(lock);
        self
    }

    /// What a backend error on the read path does; see [`ReadErrors`].
    pub fn read_errors(mut self, policy: ReadErrors) -> Self {
        self.read_errors = policy;
        self
    }

    /// The logical TTL set.
    #[must_use]
    pub fn ttl_value(&self) -> Duration {
        self.ttl
    }

    /// The TTL given to the backend: the logical one, plus the fail-safe duration, plus
    /// the backend's clock `granularity`: a backend whose clock ticks in whole seconds
    /// (memcached) drops an entry of n seconds after n - 1 to n of them, and the value
    /// must be there for its whole logical life (an eager refresh reads it near the
    /// end). Its envelope's own expiry keeps it from being served past that life.
    pub(crate) fn physical_ttl(&self, logical: Duration, granularity: Duration) -> Duration {
        let kept = if self.fail_safe {
            logical.saturating_add(self.fail_safe_max_duration)
        } else {
            logical
        };
        kept.saturating_add(granularity)
    }
}
