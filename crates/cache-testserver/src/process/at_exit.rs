//! [`run_at_exit`]: clean-up that runs however the test process ends, by the same pipe
//! trick as the servers' watchdog.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};

/// Starts a shell that runs `script` once its standard input closes: when the returned
/// [`Child`] is dropped, or when this process ends, however it ends (the kernel then closes
/// the pipe, even after `SIGKILL`). `args` are the script's `$1`, `$2`...; its output is
/// discarded.
///
/// For clean-up that must happen whatever ends a test process: removing a container, a
/// directory. The shell runs in its own process group, so that a Ctrl-C on the terminal,
/// which ends the test process, does not end the shell before it has done its work.
///
/// # Errors
///
/// Returns the error of starting `sh`.
pub fn run_at_exit<I, S>(script: &str, args: I) -> std::io::Result<Child>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("sh");
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .arg("-c")
        .arg(format!("read _; {script}"))
        .arg("sh")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::run_at_exit;

    #[test]
    fn run_at_exit_runs_the_script_once_its_stdin_closes() {
        let marker = std::env::temp_dir().join(format!(
            "cache-testserver-run-at-exit-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&marker);
        let shell = run_at_exit(r#"touch "$1""#, [&marker]).expect("sh starts");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.exists(), "the script ran before its stdin closed");
        drop(shell);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !marker.exists() {
            assert!(
                Instant::now() < deadline,
                "the script did not run within 5 s of its stdin closing"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&marker);
    }
}
