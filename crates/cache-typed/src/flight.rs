//! Single-flight per key within the process: one factory run per missing key, however
//! many callers; the others wait for its result.
//!
//! The run is a spawned task, so that a caller that goes away (its future dropped)
//! cancels nothing for the others, and a panic in the factory is caught there and
//! handed to every waiter as an error. The task removes its own entry from the map
//! when it ends, whatever way it ends (a guard's `Drop`), so no key is left waiting on
//! a run that is gone. Compare moka's `future/value_initializer.rs`, which runs the
//! factory in the first caller's task and lets waiters retry when it panics or is
//! dropped: spawning trades a `'static` factory for never running it twice.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use futures::{
    channel::oneshot,
    future::{BoxFuture, Shared},
    FutureExt,
};

use crate::{
    error::FlightError,
    stored::{now_ms, Stored},
};

/// The longest a run that has its value stays in the map for the value's write: past
/// it (a backend whose write hangs), later callers start a run of their own, as they
/// do once the value's TTL is over, whichever comes first. The write goes on meanwhile.
pub(crate) const LONGEST_LANDING: Duration = Duration::from_secs(1);

pub(crate) type Outcome<V> = Result<Arc<Stored<V>>, FlightError>;

/// What a run hands back: its outcome, which reaches the waiters at once, and the work
/// left to do after it (the value's write, the lock's release), during which the run
/// stays in the map, so that callers arriving meanwhile get its value rather than a miss.
pub(crate) type Landed<V> = (Outcome<V>, Option<BoxFuture<'static, ()>>);

/// A run as its waiters see it: its outcome, then the end of the work after it.
#[derive(Clone)]
pub(crate) struct Flight<V> {
    pub(crate) outcome: Shared<BoxFuture<'static, Outcome<V>>>,
    pub(crate) landed: Shared<BoxFuture<'static, ()>>,
    /// Tells this run from the key's next one.
    pub(crate) id: u64,
    /// Set when the key was written or deleted while the run was under way.
    superseded: Superseded,
}

/// Set once the key a run computes was written or deleted by the application while the
/// run was under way: the run's value still reaches the callers that waited for it,
/// but is neither written over the newer state nor kept for fail-safe.
#[derive(Clone, Default)]
pub(crate) struct Superseded(Arc<AtomicBool>);

impl Superseded {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Each key's run in progress.
type Running<V> = Arc<Mutex<HashMap<String, Flight<V>>>>;

/// The runs in progress, by key.
pub(crate) struct Flights<V> {
    running: Running<V>,
    next_id: AtomicU64,
    /// Which run waits for which: one `(waiter, awaited)` pair per factory waiting for
    /// another key's run, so that a cycle through other keys is found, not waited out.
    waits: Arc<Mutex<Vec<(String, String)>>>,
}

/// A factory's wait for another key's run, in [`Flights::waits`] until dropped.
pub(crate) struct Waiting {
    waits: Arc<Mutex<Vec<(String, String)>>>,
    edge: (String, String),
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = waits.iter().position(|edge| *edge == self.edge) {
            waits.swap_remove(at);
        }
    }
}

/// Removes a run's entry when the run ends, unless another run has replaced it.
struct Landing<V> {
    running: Running<V>,
    key: String,
    id: u64,
}

impl<V> Drop for Landing<V> {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running
            .get(&self.key)
            .is_some_and(|flight| flight.id == self.id)
        {
            running.remove(&self.key);
        }
    }
}

tokio::task_local! {
    /// The run the current task is: its map (by address) and its key.
    static RUNNING_FOR: (usize, String);
}

/// Whether the caller started the run or joined one.
pub(crate) enum Role {
    Started,
    Joined,
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    pub(crate) fn new() -> Self {
        Self {
            running: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
            waits: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The run in progress for `key`, or a new one: `run` spawned as a task on the
    /// caller's Tokio runtime, given the flag that tells it the key was written or
    /// deleted meanwhile. The map's lock is held only to look up or insert, never
    /// across an `await` nor around the spawn: a spawn that drops the run at once (on a
    /// runtime shutting down) drops its `Landing`, which takes the lock.
    pub(crate) fn join_or_start<F>(
        &self,
        key: &str,
        run: F,
    ) -> Result<(Flight<V>, Role), FlightError>
    where
        F: FnOnce(Superseded) -> BoxFuture<'static, Landed<V>>,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FlightError::NoRuntime)?;
        let (flight, landing, answer, done) = {
            let mut running = self.lock();
            if let Some(flight) = running.get(key) {
                return Ok((flight.clone(), Role::Joined));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (answer, outcome) = oneshot::channel();
            let (done, landed) = oneshot::channel::<()>();
            let flight = Flight {
                outcome: outcome
                    .map(|outcome| outcome.unwrap_or(Err(FlightError::Cancelled)))
                    .boxed()
                    .shared(),
                landed: landed.map(drop).boxed().shared(),
                id,
                superseded: Superseded::default(),
            };
            running.insert(key.to_owned(), flight.clone());
            let landing = Landing {
                running: Arc::clone(&self.running),
                key: key.to_owned(),
                id,
            };
            (flight, landing, answer, done)
        };
        let run = AssertUnwindSafe(run(flight.superseded.clone())).catch_unwind();
        let running_for = (self.address(), key.to_owned());
        runtime.spawn(RUNNING_FOR.scope(running_for, async move {
            // A panic outside the factory's own catch (the lock) reaches every waiter
            // too; a task dropped unfinished drops `answer` unsent, which waiters read
            // as cancelled.
            let (outcome, after) = run.await.unwrap_or_else(|panic| {
                let message = panic_message(panic.as_ref());
                (
                    Err(FlightError::Panicked(Arc::from(message.as_str()))),
                    None,
                )
            });
            // How long the run stays for its write: a value is there for callers
            // arriving before it is written, while it is fresh; a failure is not
            // handed to them (they try again), its lock's release goes on alone.
            let stay = match &outcome {
                Ok(stored) => stored.logical_expiry_ms.map_or(LONGEST_LANDING, |expiry| {
                    Duration::from_millis(expiry.saturating_sub(now_ms())).min(LONGEST_LANDING)
                }),
                Err(_) => Duration::ZERO,
            };
            // A failure leaves the map before it reaches the waiters: a caller that
            // got it and calls again (a retry) starts a run of its own, instead of
            // joining this one and being handed the same failure.
            let mut landing = Some(landing);
            if outcome.is_err() {
                drop(landing.take());
            }
            // Nobody may be waiting any more (an eager refresh, callers gone).
            let _ = answer.send(outcome);
            if let Some(after) = after {
                // A panic in the write (a backend's) is the write's failure alone: the
                // value has been handed out already.
                let after = AssertUnwindSafe(after).catch_unwind();
                tokio::pin!(after);
                if tokio::time::timeout(stay, after.as_mut()).await.is_err() {
                    drop(landing);
                    drop(done);
                    let _ = after.await;
                    return;
                }
            }
            drop(landing);
            drop(done);
        }));
        Ok((flight, Role::Started))
    }

    /// Takes the run `id` out of the map, if it is still the run of `key`: the next
    /// caller starts a run of its own. The run goes on, and stores its value when it
    /// ends. For a caller that waited past its timeout: a run that never ends (a
    /// factory that hangs) holds the key for no longer than one caller's timeout.
    pub(crate) fn abandon(&self, key: &str, id: u64) {
        let mut running = self.lock();
        if running.get(key).is_some_and(|flight| flight.id == id) {
            running.remove(key);
        }
    }

    /// After the application wrote or deleted `key`: the run under way for it, if
    /// any, leaves the map and is told, so that it neither writes its value over the
    /// newer state nor keeps it for fail-safe (its waiters still get it).
    pub(crate) fn supersede(&self, key: &str) {
        if let Some(flight) = self.lock().remove(key) {
            flight.superseded.0.store(true, Ordering::Release);
        }
    }

    /// Records that the calling task, when it is one of this map's runs (a factory),
    /// is about to wait for the run of `key`; `Err(())` when that would close a cycle
    /// (the factory of `key` asks for `key` itself, or waits, through the runs of other
    /// keys, for the run of this one), which would wait for good. `Ok(None)` for a
    /// caller that is not a run.
    pub(crate) fn wait_for(&self, key: &str) -> Result<Option<Waiting>, ()> {
        let Some(waiter) = RUNNING_FOR
            .try_with(|(map, running)| (*map == self.address()).then(|| running.clone()))
            .ok()
            .flatten()
        else {
            return Ok(None);
        };
        let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        // Every run `key` waits for, directly or through others: a cycle when the
        // waiter is among them.
        let mut reached = vec![key];
        let mut next = 0;
        while let Some(&at) = reached.get(next) {
            if at == waiter {
                return Err(());
            }
            for (from, to) in waits.iter() {
                if from == at && !reached.contains(&to.as_str()) {
                    reached.push(to);
                }
            }
            next += 1;
        }
        let edge = (waiter, key.to_owned());
        waits.push(edge.clone());
        Ok(Some(Waiting {
            waits: Arc::clone(&self.waits),
            edge,
        }))
    }

    fn address(&self) -> usize {
        Arc::as_ptr(&self.running) as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight<V>>> {
        // A panic while the lock was held cannot leave the map half-updated (each
        // critical section is one insert or remove), so poisoning is ignored.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The message of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}
