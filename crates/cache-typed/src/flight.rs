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
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use futures::{
    channel::oneshot,
    future::{BoxFuture, Shared},
    FutureExt,
};

use crate::{error::FlightError, stored::Stored};

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
}

/// Each key's run in progress, with the id that tells one run from the next.
type Running<V> = Arc<Mutex<HashMap<String, (u64, Flight<V>)>>>;

/// The runs in progress, by key.
pub(crate) struct Flights<V> {
    running: Running<V>,
    next_id: AtomicU64,
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
        if running.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
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
        }
    }

    /// The run in progress for `key`, or a new one: `run` spawned as a task on the
    /// caller's Tokio runtime. The map's lock is held only to look up or insert, never
    /// across an `await` nor around the spawn: a spawn that drops the run at once (on a
    /// runtime shutting down) drops its `Landing`, which takes the lock.
    pub(crate) fn join_or_start<F>(
        &self,
        key: &str,
        run: F,
    ) -> Result<(Flight<V>, Role), FlightError>
    where
        F: FnOnce() -> BoxFuture<'static, Landed<V>>,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FlightError::NoRuntime)?;
        let (flight, landing, answer, done) = {
            let mut running = self.lock();
            if let Some((_, flight)) = running.get(key) {
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
            };
            running.insert(key.to_owned(), (id, flight.clone()));
            let landing = Landing {
                running: Arc::clone(&self.running),
                key: key.to_owned(),
                id,
            };
            (flight, landing, answer, done)
        };
        let run = AssertUnwindSafe(run()).catch_unwind();
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
            // Nobody may be waiting any more (an eager refresh, callers gone).
            let _ = answer.send(outcome);
            if let Some(after) = after {
                // A panic in the write (a backend's) is the write's failure alone: the
                // value has been handed out already.
                let _ = AssertUnwindSafe(after).catch_unwind().await;
            }
            drop(landing);
            drop(done);
        }));
        Ok((flight, Role::Started))
    }

    /// Whether the calling task is this map's run for `key`: a factory asking for its
    /// own key, which would wait for itself.
    pub(crate) fn is_running_in_caller(&self, key: &str) -> bool {
        RUNNING_FOR
            .try_with(|(map, running)| *map == self.address() && running == key)
            .unwrap_or(false)
    }

    fn address(&self) -> usize {
        Arc::as_ptr(&self.running) as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Flight<V>)>> {
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
