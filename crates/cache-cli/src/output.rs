//! Writing to standard output and standard error without a panic, and without a lost
//! report passing for a success.
//!
//! `println!` and `eprintln!` panic when the stream cannot be written (a full disk, a
//! closed terminal). Here a report that cannot be written to standard output is said on
//! standard error and makes the command exit with [`EXIT_FAILED`](crate::EXIT_FAILED),
//! whatever the command found; a closed pipe (`cachectl check | head`) is the reader's
//! choice and is not an error. Standard error that cannot be written is given up on
//! silently: there is nowhere left to say it.

use std::{
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
};

/// Set once a line could not be written to standard output.
static LOST: AtomicBool = AtomicBool::new(false);

/// Prints a line to standard output.
pub(crate) fn say(line: &str) {
    written(writeln!(io::stdout().lock(), "{line}").and_then(|()| io::stdout().flush()));
}

/// Notes the outcome of a write to standard output: an error other than a closed pipe
/// is said once, and fails the command.
pub(crate) fn written(outcome: io::Result<()>) {
    if let Err(err) = outcome {
        if err.kind() != io::ErrorKind::BrokenPipe && !LOST.swap(true, Ordering::Relaxed) {
            warn(&format!("cachectl: cannot write to standard output: {err}"));
        }
    }
}

/// Whether a line was lost: the command then fails.
pub(crate) fn lost() -> bool {
    LOST.load(Ordering::Relaxed)
}

/// Prints a line to standard error, if it can be written.
pub(crate) fn warn(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_no_loss_and_another_error_is() {
        written(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(!lost());
        written(Ok(()));
        assert!(!lost());
        written(Err(io::Error::other("no space left on device")));
        assert!(lost());
    }
}
