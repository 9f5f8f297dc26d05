//! Writing to standard output and standard error without a panic, and without a lost
//! report passing for a success.
//!
//! `println!` and `eprintln!` panic when the stream cannot be written (a full disk, a
//! closed terminal). Here a report that cannot be written to standard output is said on
//! standard error and makes the command exit with [`EXIT_FAILED`](crate::EXIT_FAILED),
//! whatever the command found; a closed pipe (`cachectl check | head`) is the reader's
//! choice and is not an error. Standard error that cannot be written is given up on
//! silently: there is nowhere left to say it.
//!
//! Nothing printed here repeats the password of an argument that looks like a URL, even
//! one given where something else was expected (a URL after `--timeout`, as a key, one
//! argument too many): every such argument is shown redacted wherever it appears, in
//! clap's messages about the command line too.

use std::{
    ffi::OsString,
    io::{self, Write},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
};

/// Set once a line could not be written to standard output.
static LOST: AtomicBool = AtomicBool::new(false);

/// Each argument that carries a password, as written and as it may be quoted, with its
/// redacted form; longest first.
static HIDDEN: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Notes the arguments of this run, so that [`say`], [`warn`] and [`command_line_error`]
/// show each one that carries a password redacted. Called once, before anything is printed.
pub(crate) fn hide_passwords_of(args: &[OsString]) {
    let _ = HIDDEN.set(passwords_of(args));
}

/// What [`hide_passwords_of`] notes: for each argument that looks like a URL with a
/// password (also after `--flag=`, which clap names without the flag), the text as
/// written and as `{:?}` quotes it, with the redacted form of each.
fn passwords_of(args: &[OsString]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for arg in args {
        let arg = arg.to_string_lossy();
        let value = arg
            .strip_prefix('-')
            .and_then(|flag| flag.split_once('='))
            .map(|(_, value)| value);
        for written in std::iter::once(&*arg).chain(value) {
            let redacted = cache_url::redact(written);
            if !written.contains("://") || redacted == written {
                continue;
            }
            let quoted = |text: &str| {
                let debug = format!("{text:?}");
                debug[1..debug.len() - 1].to_owned()
            };
            for pair in [
                (written.to_owned(), redacted.clone()),
                (quoted(written), quoted(&redacted)),
            ] {
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
    }
    // An argument may hold another (`--timeout=URL` holds `URL`): the longer goes first.
    pairs.sort_by_key(|(written, _)| std::cmp::Reverse(written.len()));
    pairs
}

/// `text` with every argument that carries a password shown redacted.
fn hidden(text: &str) -> String {
    hide(text, HIDDEN.get().map_or(&[][..], Vec::as_slice))
}

/// `text` with each of `pairs` written as its redacted form.
fn hide(text: &str, pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .fold(text.to_owned(), |text, (written, redacted)| {
            text.replace(written.as_str(), redacted)
        })
}

/// Prints clap's message about a command line it refused (or the help or version asked
/// for) with every argument that carries a password redacted, and returns clap's exit
/// code: 2 for a usage error, 0 for `--help` and `--version`.
pub(crate) fn command_line_error(err: &clap::Error) -> ExitCode {
    let code = u8::try_from(err.exit_code()).unwrap_or(crate::EXIT_UNUSABLE);
    let plain = err.render().to_string();
    let shown = hidden(&plain);
    if shown == plain {
        // Nothing to hide: clap prints it, in colour where the stream takes it.
        let printed = err.print();
        // Help and version go to standard output, whose loss fails the command.
        if !err.use_stderr() {
            written(printed.and_then(|()| io::stdout().flush()));
        }
    } else if err.use_stderr() {
        let _ = io::stderr().lock().write_all(shown.as_bytes());
    } else {
        written(
            io::stdout()
                .lock()
                .write_all(shown.as_bytes())
                .and_then(|()| io::stdout().flush()),
        );
    }
    if code == 0 && lost() {
        return ExitCode::from(crate::EXIT_FAILED);
    }
    ExitCode::from(code)
}

/// Prints a line to standard output.
/// `text` with its control characters escaped (`\u{1b}`), for a line that shows what
/// the user typed: an escape sequence in a URL must not drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub(crate) fn say(line: &str) {
    let line = hidden(line);
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
    let line = hidden(line);
    let _ = writeln!(io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            printable("memory://?prefix=a\u{1b}[31m:\n\u{9b}"),
            "memory://?prefix=a\\u{1b}[31m:\\u{a}\\u{9b}"
        );
        assert_eq!(
            printable("redis://h:1/?prefix=ü:"),
            "redis://h:1/?prefix=ü:"
        );
    }

    #[test]
    fn a_closed_pipe_is_no_loss_and_another_error_is() {
        written(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(!lost());
        written(Ok(()));
        assert!(!lost());
        written(Err(io::Error::other("no space left on device")));
        assert!(lost());
    }

    /// Every argument that looks like a URL with a password is noted with its redacted
    /// form, as written, after `--flag=` and as `{:?}` quotes it; other arguments are not.
    #[test]
    fn arguments_with_a_password_are_noted_redacted() {
        let args: Vec<OsString> = [
            "cachectl",
            "get",
            "--timeout=redis://:s3cret@h:1",
            "memcache://u:pa\"ss@h",
            "redis://h:6379",
            "s3cret",
            "k",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let pairs = passwords_of(&args);
        let text = "'--timeout=redis://:s3cret@h:1' 'redis://:s3cret@h:1' \
                    \"memcache://u:pa\\\"ss@h\" memcache://u:pa\"ss@h redis://h:6379";
        assert_eq!(
            hide(text, &pairs),
            "'--timeout=redis://:***@h:1' 'redis://:***@h:1' \
             \"memcache://u:***@h\" memcache://u:***@h redis://h:6379"
        );
        assert!(pairs.iter().all(|(written, _)| written.contains("://")));
    }
}
