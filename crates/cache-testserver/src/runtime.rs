//! A small Tokio runtime owned by this crate, where every start and wait runs.
//!
//! Each `#[test]` builds its own runtime and drops it at its end, but a shared server (and the
//! Docker client that started its container) outlives the test that started it. Doing that work
//! on a runtime that lives as long as the process keeps it independent of whichever test's
//! runtime happened to be first, and lets callers use any executor, with or without timers.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

/// The process-wide background runtime, built on first use and never dropped.
fn background() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cache-testserver")
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("cannot build the cache-testserver runtime: {err}"))
    })
}

/// Runs `future` on the background runtime and waits for its output from the caller's executor.
///
/// A panic inside `future` is resumed in the caller, so assertions keep their message.
pub(crate) async fn on_background<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match background().spawn(future).await {
        Ok(output) => output,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("cache-testserver background task failed: {err}"),
    }
}
