//! What the `cachectl` tests share: running the binary and reading its output.

use std::process::{Command, Output};

/// Runs the `cachectl` binary of this build with `args`, to its end.
pub(crate) fn cachectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachectl"))
        .args(args)
        .output()
        .expect("cachectl runs")
}

/// Output bytes as text, for assertions and their messages.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
