//! `get_or_set` and its variants: the read, single-flight, fail-safe, timeouts and
//! eager refresh around a factory.

use std::{
    convert::Infallible, future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration,
};

use futures::FutureExt;

use crate::{
    codec::Codec,
    distributed::{self, Lock},
    error::{Error, FactoryError, FlightError},
    flight::{panic_message, Flight, Landed, Outcome, Role, Superseded},
    options::{EntryOptions, ReadErrors},
    stored::{now_ms, Stored},
    telemetry,
    typed::{Entry, Inner, TypedCache, Value},
};

/// The error type a fallible factory may return: anything that boxes into an error.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<V: Value, C: Codec> TypedCache<V, C> {
    /// The value under `key`, or the value of `factory()`, stored with `options`.
    ///
    /// However many callers miss `key` at once, the factory runs once in this process
    /// (and once across processes with a [`DistributedLock`](crate::DistributedLock));
    /// the others wait for its value. The factory runs in a task of its own on the
    /// Tokio runtime: a caller that goes away cancels nothing, a panic reaches every
    /// waiter as [`Error::FactoryPanicked`]. See [`EntryOptions`] for fail-safe,
    /// timeouts, eager refresh and jitter.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use cache_typed::{JsonCodec, TypedCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_typed::Error> {
    /// let cache: TypedCache<String, JsonCodec> =
    ///     TypedCache::new(Arc::new(cache_memory::MemoryCache::new()), JsonCodec);
    /// let options = cache.options().ttl(Duration::from_secs(60));
    /// let name = cache.get_or_set("user:42:name", options, || async { "ada".to_owned() }).await?;
    /// assert_eq!(name, "ada");
    /// // A hit: the factory does not run.
    /// let again = cache.get_or_set("user:42:name", options, || async { unreachable!() }).await?;
    /// assert_eq!(again, "ada");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::FactoryPanicked`], [`Error::Timeout`] past the hard timeout, and
    /// [`Error::Cache`] for an invalid key or, with [`ReadErrors::Propagate`], a
    /// backend error on read; never when fail-safe has a stale value to serve instead.
    /// On a miss, [`Error::NoRuntime`] when called outside a Tokio runtime,
    /// [`Error::Recursive`] when the factory of `key` asks for `key` again, or for a key
    /// whose run waits for this one's (it would wait for itself), and
    /// [`Error::Cancelled`] when the run's runtime shuts down before it ends.
    pub async fn get_or_set<F, Fut>(
        &self,
        key: &str,
        options: EntryOptions,
        factory: F,
    ) -> Result<V, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let factory = move || factory().map(Ok::<V, Infallible>);
        Ok(self
            .try_get_or_set_entry(key, options, factory)
            .await?
            .value)
    }

    /// As [`get_or_set`](Self::get_or_set), with the value's [`Entry`]: whether it is
    /// stale, when it was written and when it expires.
    ///
    /// # Errors
    ///
    /// As [`get_or_set`](Self::get_or_set).
    pub async fn get_or_set_entry<F, Fut>(
        &self,
        key: &str,
        options: EntryOptions,
        factory: F,
    ) -> Result<Entry<V>, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.try_get_or_set_entry(key, options, move || factory().map(Ok::<V, Infallible>))
            .await
    }

    /// As [`get_or_set`](Self::get_or_set), with a factory that may fail. Its error
    /// reaches every waiting caller as [`Error::Factory`] (the original with
    /// [`Error::factory_error`]), unless fail-safe serves a stale value instead.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use cache_typed::{JsonCodec, TypedCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache: TypedCache<u32, JsonCodec> =
    ///     TypedCache::new(Arc::new(cache_memory::MemoryCache::new()), JsonCodec);
    /// let failed = cache
    ///     .try_get_or_set("answer", cache.options(), || async {
    ///         Err::<u32, _>(std::io::Error::other("database down"))
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(failed.factory_error::<std::io::Error>().is_some());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get_or_set`](Self::get_or_set), and [`Error::Factory`].
    pub async fn try_get_or_set<F, Fut, E>(
        &self,
        key: &str,
        options: EntryOptions,
        factory: F,
    ) -> Result<V, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Ok(self
            .try_get_or_set_entry(key, options, factory)
            .await?
            .value)
    }

    /// As [`try_get_or_set`](Self::try_get_or_set), with the value's [`Entry`].
    ///
    /// # Errors
    ///
    /// As [`try_get_or_set`](Self::try_get_or_set).
    pub async fn try_get_or_set_entry<F, Fut, E>(
        &self,
        key: &str,
        options: EntryOptions,
        factory: F,
    ) -> Result<Entry<V>, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        cache_api::validate_key(key)?;
        let inner = &self.inner;
        let now = now_ms();
        // After a recent failure, fail-safe serves the kept value alone until the
        // throttle passes: neither the backend nor the factory is tried meanwhile.
        // Only values within this call's fail-safe duration stand in for fresh ones,
        // whatever the options they were kept or written with.
        let max = options.fail_safe_max_duration;
        let kept = if options.fail_safe {
            inner
                .fallback
                .get(key, now)
                .filter(|(stored, _)| stored.within_fail_safe(now, max))
        } else {
            None
        };
        if let Some((stored, true)) = &kept {
            telemetry::stale_served(inner.label, "throttled");
            return Ok(Entry::from_stored(stored, true));
        }
        let mut stale = kept.map(|(stored, _)| stored);
        let (mut seen, mut double_check) = (None, true);
        match inner.read(key).await {
            Ok(Some(stored)) if stored.is_fresh(now) => {
                return Ok(self.hit(key, stored, options, factory));
            }
            Ok(Some(stored)) => {
                seen = Some(stored.written_at_ms);
                if options.fail_safe && stored.within_fail_safe(now, max) {
                    stale = Some(Arc::new(stored));
                }
            }
            Ok(None) => {}
            Err(err) => {
                if let Some(entry) = stale
                    .as_ref()
                    .and_then(|stale| self.serve_stale(key, stale, &options, "backend_error"))
                {
                    return Ok(entry);
                }
                if options.read_errors == ReadErrors::Propagate {
                    return Err(err.into());
                }
                telemetry::read_failed(inner.label, &err);
                // The backend just failed: reading it again before the factory would
                // only wait for another failure.
                double_check = false;
            }
        }
        // Held while this call waits: a factory waiting for a run that waits for it.
        let _waiting = inner.flights.wait_for(key).map_err(|()| Error::Recursive {
            key: key.to_owned(),
        })?;
        let (flight, role) = inner.flights.join_or_start(key, |superseded| {
            let inner = Arc::clone(inner);
            let run = Run {
                key: key.to_owned(),
                options,
                seen,
                double_check,
                refreshing: None,
                superseded,
            };
            fly(inner, run, factory).boxed()
        })?;
        if matches!(role, Role::Joined) {
            telemetry::joined(inner.label);
        }
        // Boxed: the wait's state (timers, the shared run) is large, and would
        // otherwise make every call's future large, hits included.
        Box::pin(self.wait(key, flight, stale, &options)).await
    }

    /// A fresh hit: kept for fail-safe, and refreshed in the background when it is
    /// past the eager-refresh threshold and no refresh is running yet.
    fn hit<F, Fut, E>(
        &self,
        key: &str,
        stored: Stored<V>,
        options: EntryOptions,
        factory: F,
    ) -> Entry<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let due = options
            .eager_refresh
            .is_some_and(|fraction| stored.past_fraction(fraction, now_ms()));
        let seen = stored.written_at_ms;
        // Starts the refresh when one is due; `current` is the value it replaces.
        // Outside a runtime no refresh can run: the hit is served all the same.
        let refresh = |current: Option<Arc<Stored<V>>>| {
            if !due {
                return;
            }
            let started = self.inner.flights.join_or_start(key, |superseded| {
                let inner = Arc::clone(&self.inner);
                let run = Run {
                    key: key.to_owned(),
                    options,
                    seen: Some(seen),
                    double_check: true,
                    refreshing: current,
                    superseded,
                };
                fly(inner, run, factory).boxed()
            });
            if matches!(started, Ok((_, Role::Started))) {
                telemetry::eager_refresh(self.inner.label);
            }
        };
        // The value moves to the caller; it is copied only when fail-safe must keep a
        // write it does not hold yet, or a refresh must have it to fall back on.
        let holds = !options.fail_safe || self.inner.fallback.holds(key, seen);
        if holds && !(options.fail_safe && due) {
            refresh(None);
            return Entry::from_owned(stored, false);
        }
        let kept = Arc::new(stored);
        if !holds {
            self.inner
                .fallback
                .remember(key, &kept, options.fail_safe_max_duration);
        }
        refresh(Some(Arc::clone(&kept)));
        Entry::from_stored(&kept, false)
    }

    /// Waits for the run's outcome, no longer than the soft timeout when a stale value
    /// can stand in, nor than the hard timeout; then, for a value, for its write to the
    /// cache (so that what the caller got is what the next reader finds), within the
    /// same bound, and no longer than the run stays for it (`flight::LONGEST_LANDING`,
    /// or the value's TTL): past it, the caller gets the value and the write ends in the
    /// background. A write that hangs (a frozen server) never turns a computed value
    /// into a timeout.
    async fn wait(
        &self,
        key: &str,
        flight: Flight<V>,
        stale: Option<Arc<Stored<V>>>,
        options: &EntryOptions,
    ) -> Result<Entry<V>, Error> {
        // A soft timeout only where the stale value can still stand in when it fires.
        let now = now_ms();
        let soft = options.soft_timeout.filter(|soft| {
            let fires = now.saturating_add(u64::try_from(soft.as_millis()).unwrap_or(u64::MAX));
            stale
                .as_ref()
                .is_some_and(|stale| stale.within_fail_safe(fires, options.fail_safe_max_duration))
                && options.hard_timeout.is_none_or(|hard| *soft < hard)
        });
        let Some(limit) = soft.or(options.hard_timeout) else {
            let outcome = flight.outcome.await;
            if outcome.is_ok() {
                flight.landed.await;
            }
            return self.settle(key, outcome, stale.as_ref(), options);
        };
        let expiry = tokio::time::sleep(limit);
        tokio::pin!(expiry);
        let id = flight.id;
        let outcome = futures::future::select(flight.outcome, expiry.as_mut()).await;
        match outcome {
            futures::future::Either::Left((outcome, _)) => {
                if outcome.is_ok() {
                    futures::future::select(flight.landed, expiry).await;
                }
                self.settle(key, outcome, stale.as_ref(), options)
            }
            // The run goes on in its task, and stores its value when it ends; the key
            // is free for the next caller's run (a factory that hangs holds it no
            // longer than this wait), the stale value served alone for the throttle.
            futures::future::Either::Right(_) => {
                self.inner.flights.abandon(key, id);
                let reason = if soft.is_some() {
                    "soft_timeout"
                } else {
                    "hard_timeout"
                };
                stale
                    .as_ref()
                    .and_then(|stale| self.serve_stale(key, stale, options, reason))
                    .ok_or(Error::Timeout { after: limit })
            }
        }
    }

    /// The caller's answer from the run's outcome: its value, or on failure the stale
    /// value (fail-safe, throttled) while it is within the fail-safe duration, or the
    /// error.
    fn settle(
        &self,
        key: &str,
        outcome: Outcome<V>,
        stale: Option<&Arc<Stored<V>>>,
        options: &EntryOptions,
    ) -> Result<Entry<V>, Error> {
        match outcome {
            Ok(stored) => Ok(Entry::from_stored(&stored, false)),
            Err(err) => stale
                .and_then(|stale| self.serve_stale(key, stale, options, "factory_error"))
                .ok_or_else(|| err.into()),
        }
    }

    /// Serves `stale` after a failure, and keeps serving it alone for the throttle;
    /// `None` when it is past the fail-safe duration by now (a factory or a backend
    /// that took its time to fail outlived it).
    fn serve_stale(
        &self,
        key: &str,
        stale: &Arc<Stored<V>>,
        options: &EntryOptions,
        reason: &'static str,
    ) -> Option<Entry<V>> {
        let (max, throttle) = (options.fail_safe_max_duration, options.fail_safe_throttle);
        if !stale.within_fail_safe(now_ms(), max) {
            return None;
        }
        self.inner.fallback.throttle(key, stale, max, throttle);
        Some(self.stale_entry(stale, reason))
    }

    fn stale_entry(&self, stale: &Stored<V>, reason: &'static str) -> Entry<V> {
        telemetry::stale_served(self.inner.label, reason);
        Entry::from_stored(stale, true)
    }
}

/// What one factory run is for.
struct Run<V> {
    key: String,
    options: EntryOptions,
    /// The write the caller read (stale), if any: a newer one found by the last look
    /// is the run's value.
    seen: Option<u64>,
    /// Whether to read the backend once more before the factory.
    double_check: bool,
    /// The value an eager refresh replaces: when the refresh fails under fail-safe,
    /// that value is served alone for the throttle, as after any failure, instead of
    /// every hit starting another run.
    refreshing: Option<Arc<Stored<V>>>,
    /// Set when the application writes or deletes the key while the run is under way.
    superseded: Superseded,
}

/// One factory run, in its own task: a last look at the backend (another caller may
/// have stored the value since this one read), the distributed lock when asked for,
/// the factory with its panic caught; then, after its outcome has reached the waiters,
/// the write and the lock's release (see [`Landed`]). A run whose key the application
/// wrote or deleted meanwhile hands its value to its waiters and writes nothing.
async fn fly<V, C, F, Fut, E>(inner: Arc<Inner<V, C>>, run: Run<V>, factory: F) -> Landed<V>
where
    V: Value,
    C: Codec,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let Run {
        key,
        options,
        seen,
        double_check,
        refreshing,
        superseded,
    } = run;
    let lock = match options.distributed_lock {
        // Taking the lock reads the value again itself.
        Some(lock) => distributed::acquire(&inner, &key, lock, seen).await,
        None if double_check => match inner.read_newer(&key, seen).await {
            Some(stored) => Lock::Found(Arc::new(stored)),
            None => Lock::NotHeld,
        },
        None => Lock::NotHeld,
    };
    if let Lock::Found(stored) = lock {
        return (Ok(stored), None);
    }
    // The error is boxed at once, so nothing that is not `Send` lives across an await.
    // The encoding is in the catch too: a panicking `Serialize` must not skip the lock's
    // release below.
    let (preparing, prepare_options) = (&inner, &options);
    let run = AssertUnwindSafe(async move {
        let value = factory().await.map_err(Into::<BoxError>::into)?;
        Ok::<_, BoxError>(preparing.prepare(value, prepare_options))
    })
    .catch_unwind()
    .await;
    let (outcome, write) = match run {
        Ok(Ok((stored, bytes))) => {
            telemetry::factory_run(inner.label, "ok");
            (Ok(Arc::new(stored)), bytes)
        }
        Ok(Err(err)) => {
            telemetry::factory_run(inner.label, "error");
            (Err(FlightError::Factory(FactoryError::new(err))), None)
        }
        Err(panic) => {
            telemetry::factory_run(inner.label, "panic");
            let message = panic_message(&*panic);
            (
                Err(FlightError::Panicked(Arc::from(message.as_str()))),
                None,
            )
        }
    };
    match (&outcome, options.fail_safe, refreshing) {
        _ if superseded.is_set() => {}
        (Ok(stored), true, _) => {
            inner
                .fallback
                .remember(&key, stored, options.fail_safe_max_duration);
        }
        (Err(_), true, Some(current)) => {
            let (max, throttle) = (options.fail_safe_max_duration, options.fail_safe_throttle);
            inner.fallback.throttle(&key, &current, max, throttle);
        }
        _ => {}
    }
    if write.is_none() && matches!(lock, Lock::NotHeld) {
        return (outcome, None);
    }
    // The write before the release: another process waiting for the lock reads the
    // value once the lock is gone.
    let after = async move {
        if let Some((bytes, ttl)) = write.filter(|_| !superseded.is_set()) {
            if let Err(err) = inner.write(&key, bytes, ttl).await {
                telemetry::write_failed(inner.label, &err);
            }
        }
        distributed::release(&inner, lock).await;
    };
    (outcome, Some(after.boxed()))
}

impl<V: Value, C: Codec> Inner<V, C> {
    /// Writes an encoded value for `ttl`; a TTL the backend refuses as too long is
    /// written as no expiry, the envelope keeping the value's own expiry.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: cache_api::Bytes,
        ttl: Duration,
    ) -> Result<(), cache_api::CacheError> {
        match self.cache.set(key, bytes.clone(), Some(ttl)).await {
            Err(cache_api::CacheError::InvalidTtl { .. }) => self.cache.set(key, bytes, None).await,
            written => written,
        }
    }

    /// The backend TTL of a value whose logical TTL is `logical`
    /// ([`EntryOptions::physical_ttl`]).
    pub(crate) fn physical_ttl(&self, options: &EntryOptions, logical: Duration) -> Duration {
        options.physical_ttl(logical, self.cache.limits().ttl_granularity)
    }

    /// A computed value as it is kept, and the bytes to write for it with their TTL
    /// (`None` when it cannot be encoded: that failure is logged and counted, and the
    /// value is still returned: the caller gets what it asked for, the next read misses).
    pub(crate) fn prepare(
        &self,
        value: V,
        options: &EntryOptions,
    ) -> (Stored<V>, Option<(cache_api::Bytes, Duration)>) {
        let logical = crate::jitter::apply(options.ttl, options.jitter);
        match self.encode(&value, logical) {
            Ok((bytes, times)) => {
                let stored = Stored {
                    value,
                    written_at_ms: times.written_at_ms,
                    logical_expiry_ms: times.logical_expiry_ms,
                };
                (stored, Some((bytes, self.physical_ttl(options, logical))))
            }
            Err(err) => {
                telemetry::write_failed(self.label, &err);
                (Stored::new(value, logical), None)
            }
        }
    }
}
