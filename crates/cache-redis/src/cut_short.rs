//! What to do when a call is cut short: its future dropped before the answer, by a
//! layer's deadline or the application's own timeout, so that the cache's own timeout
//! never fires for it. A connection that stopped answering (a flow a middlebox forgot, a
//! host gone without a reset) would otherwise be kept for good by callers whose deadlines
//! all come before the cache's: each backend checks the connection such a call used.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

/// Runs its action when dropped before [`finish`](Self::finish).
pub(crate) struct OnCutShort<F: FnOnce()> {
    action: Option<F>,
}

impl<F: FnOnce()> OnCutShort<F> {
    pub(crate) fn new(action: F) -> Self {
        Self {
            action: Some(action),
        }
    }

    /// The call got its outcome: nothing to do.
    pub(crate) fn finish(mut self) {
        self.action = None;
    }
}

impl<F: FnOnce()> Drop for OnCutShort<F> {
    fn drop(&mut self) {
        if let Some(action) = self.action.take() {
            action();
        }
    }
}

/// Spawns the check `check` makes of `owner` on the current Tokio runtime, unless one
/// is running already (the flag `running` picks from `owner`, cleared when it ends).
/// Without a runtime (one shutting down) nothing is checked: the connections go with it.
pub(crate) fn spawn_check<T, F, C>(owner: &Arc<T>, running: fn(&T) -> &AtomicBool, check: F)
where
    T: Send + Sync + 'static,
    F: FnOnce(Arc<T>) -> C,
    C: Future<Output = ()> + Send + 'static,
{
    if running(owner).swap(true, Ordering::Relaxed) {
        return;
    }
    let check = check(Arc::clone(owner));
    let finished = Arc::clone(owner);
    let spawned = spawn_on_current(async move {
        check.await;
        running(&finished).store(false, Ordering::Relaxed);
    });
    if !spawned {
        running(owner).store(false, Ordering::Relaxed);
    }
}

/// Spawns `task` on the current Tokio runtime; false, and nothing runs, without one (a
/// runtime shutting down, a drop outside any runtime).
pub(crate) fn spawn_on_current(task: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn the_action_runs_only_when_not_finished() {
        let ran = Cell::new(0);
        OnCutShort::new(|| ran.set(ran.get() + 1)).finish();
        assert_eq!(ran.get(), 0);
        drop(OnCutShort::new(|| ran.set(ran.get() + 1)));
        assert_eq!(ran.get(), 1);
    }
}
