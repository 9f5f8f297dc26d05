//! The progress line of a run: once a second on standard error, rewritten in place, and
//! only where a person is watching: never with [`Settings::quiet`], and never when
//! standard error is not a terminal (a file, a pipe, a CI log), where a line a second
//! would only fill the log.

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use crate::{plan::Progress, report::group_digits, Settings};

/// What a run is doing, for the progress line.
pub(crate) struct Status {
    pub(crate) progress: Arc<Progress>,
    phase: Mutex<String>,
}

impl Status {
    pub(crate) fn new(progress: Arc<Progress>, phase: &str) -> Self {
        Self {
            progress,
            phase: Mutex::new(phase.to_owned()),
        }
    }

    pub(crate) fn set(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase.into();
    }

    fn phase(&self) -> String {
        self.phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The label of the progress line, when one is to be shown: `settings` ask for one, do
/// not ask for quiet, and `stderr_is_terminal`.
pub(crate) fn label_to_show(settings: &Settings, stderr_is_terminal: bool) -> Option<String> {
    let label = settings.progress_label.clone()?;
    (!settings.quiet && stderr_is_terminal).then_some(label)
}

/// One state of the line.
fn line(label: &str, elapsed: Duration, phase: &str, ops_per_sec: u64, errors: u64) -> String {
    format!(
        "{label}: {:>4}s  {phase:<24} {:>10} ops/s  {errors} errors",
        elapsed.as_secs(),
        group_digits(ops_per_sec as f64),
    )
}

/// The line, redrawn each second by a thread of its own until [`StatusLine::finish`]:
/// a task of the runtime would wait behind the load tasks, which keep every worker
/// busy, and then report several seconds at once.
pub(crate) struct StatusLine {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl StatusLine {
    /// Starts the line of a load run when `settings` want one and standard error is a
    /// terminal: phase, the rate measured over the time that really passed, errors.
    pub(crate) fn start(settings: &Settings, status: &Arc<Status>) -> Option<Self> {
        let status = Arc::clone(status);
        let (mut last_ops, mut last_at) = (0, Instant::now());
        Self::showing(settings, move |label, elapsed| {
            let now = Instant::now();
            let ops = status.progress.ops.load(Ordering::Relaxed);
            let errors = status.progress.errors.load(Ordering::Relaxed);
            let seconds = now.duration_since(last_at).as_secs_f64().max(1e-3);
            let rate = ((ops - last_ops) as f64 / seconds) as u64;
            (last_ops, last_at) = (ops, now);
            line(label, elapsed, &status.phase(), rate, errors)
        })
    }

    /// Starts a line whose text `text` makes from the label and the time since the
    /// start, when `settings` want one and standard error is a terminal.
    pub(crate) fn showing(
        settings: &Settings,
        text: impl FnMut(&str, Duration) -> String + Send + 'static,
    ) -> Option<Self> {
        let label = label_to_show(settings, std::io::stderr().is_terminal())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-status".to_owned())
            .spawn(move || redraw_until(&label, text, &stopped))
            .ok()?;
        Some(Self { stop, thread })
    }

    /// Stops the line and erases it, so that what follows starts on a clean line.
    pub(crate) fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}

/// Redraws the line once a second until `stop` is set.
fn redraw_until(label: &str, mut text: impl FnMut(&str, Duration) -> String, stop: &AtomicBool) {
    let started = Instant::now();
    loop {
        std::thread::park_timeout(Duration::from_secs(1));
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let shown = text(label, started.elapsed());
        // Carriage return and erase-line: the line is redrawn, not repeated.
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{shown}");
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_only_on_a_terminal_and_never_when_quiet() {
        let mut settings = Settings::new("memory://");
        assert_eq!(label_to_show(&settings, true), None, "no label asked for");
        settings.progress_label = Some("cachectl".to_owned());
        assert_eq!(label_to_show(&settings, true).as_deref(), Some("cachectl"));
        assert_eq!(label_to_show(&settings, false), None, "not a terminal");
        settings.quiet = true;
        assert_eq!(label_to_show(&settings, true), None, "quiet");
    }

    #[test]
    fn the_line_names_phase_rate_and_errors() {
        let text = line(
            "cachectl",
            Duration::from_millis(12_500),
            "adapter round 3/12",
            1_234_567,
            2,
        );
        assert!(
            text.starts_with("cachectl:   12s  adapter round 3/12"),
            "{text}"
        );
        assert!(text.contains("1,234,567 ops/s  2 errors"), "{text}");
    }
}
