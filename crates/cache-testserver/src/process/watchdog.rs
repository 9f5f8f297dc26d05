//! A server process under its `sh` watchdog, which kills the server when this process
//! ends: spawned, waited on until it accepts connections, signalled and killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::output::{read_stderr, read_stdout, Captured};
use crate::port::accepts_connections;

/// How long a server may take to accept connections after it was spawned.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// Marks the line on which the watchdog reports the server's pid.
///
/// The server shares the watchdog's standard output and may write before the watchdog does, so
/// the pid is searched for after this marker rather than expected on the first line.
pub(super) const PID_MARKER: &str = "cache-testserver-pid:";

/// The watchdog, run as `sh -c WATCHDOG sh BINARY ARGS...`.
///
/// An asynchronous list gets `/dev/null` as standard input in a non-interactive shell, so the
/// pipe is handed to the watcher on descriptor 3. The main shell waits for the server, so it
/// exits with the server's status and then stops the watcher: this process learns that the
/// server died by the shell exiting, and no `kill -9` can hit a recycled pid later.
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null &
server=$!
echo "cache-testserver-pid:$server"
(read _ <&3; kill -9 "$server" 2>/dev/null) &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

/// Sends `signal` (a name such as `STOP`) to `pid` with the shell's `kill` builtin.
pub(super) fn send_signal(pid: u32, signal: &str) -> Result<(), String> {
    let output = Command::new("sh")
        .args(["-c", r#"kill -s "$1" "$2""#, "sh", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run sh to send SIG{signal} to pid {pid}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "sending SIG{signal} to pid {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A server process running under its watchdog.
pub(crate) struct ServerProcess {
    /// The watchdog shell; its stdin pipe, held here, is what keeps the server alive. Behind a
    /// mutex so that a shared reference can still ask whether it has exited.
    shell: Mutex<Child>,
    /// The server's own pid, for signals.
    pid: u32,
    /// Path of the binary, for messages.
    binary: PathBuf,
    output: Arc<Mutex<Captured>>,
}

impl ServerProcess {
    /// Spawns `binary args...` under the watchdog and waits until its pid is known.
    pub(super) async fn spawn(binary: &Path, args: &[String]) -> Result<Self, String> {
        let mut command = Command::new("sh");
        // Its own process group: a Ctrl-C meant for the test run must not reach the watchdog
        // before the test process is gone; the closed pipe then ends the server.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut shell = command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run sh to start {}: {err}", binary.display()))?;

        let output = Arc::new(Mutex::new(Captured::default()));
        let (pid_tx, pid_rx) = oneshot::channel();
        if let Some(stdout) = shell.stdout.take() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || read_stdout(stdout, &output, pid_tx));
        }
        if let Some(stderr) = shell.stderr.take() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || read_stderr(stderr, &output));
        }

        match tokio::time::timeout(READY_DEADLINE, pid_rx).await {
            Ok(Ok(pid)) => Ok(Self {
                shell: Mutex::new(shell),
                pid,
                binary: binary.to_owned(),
                output,
            }),
            _ => {
                let _ = shell.kill();
                let _ = shell.wait();
                let described = output.lock().map(|o| o.describe()).unwrap_or_default();
                Err(format!(
                    "the watchdog shell starting {} did not report a pid; {described}",
                    binary.display()
                ))
            }
        }
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The binary the server runs.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    /// The server's exit status, if it has exited.
    pub(super) fn exited(&self) -> Option<ExitStatus> {
        let mut shell = self
            .shell
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shell.try_wait().ok().flatten()
    }

    pub(super) fn describe_output(&self) -> String {
        self.output
            .lock()
            .map(|output| output.describe())
            .unwrap_or_else(|_| "its output is unavailable".to_owned())
    }

    /// Waits until the server accepts connections on `127.0.0.1:port`.
    ///
    /// On failure the server is killed and the message carries what it wrote.
    pub(super) async fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited ({status}) before accepting connections on 127.0.0.1:{port}; {}",
                    self.binary.display(),
                    self.describe_output()
                ));
            }
            // Checked again after a successful connect: if another process owned the port,
            // ours exits on its failed bind and the connection proved nothing.
            if accepts_connections(port).await && self.exited().is_none() {
                return Ok(());
            }
            if start.elapsed() >= READY_DEADLINE {
                self.kill();
                return Err(format!(
                    "{} did not accept connections on 127.0.0.1:{port} within {READY_DEADLINE:?}; {}",
                    self.binary.display(),
                    self.describe_output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn signal(&self, signal: &str) -> Result<(), String> {
        if let Some(status) = self.exited() {
            return Err(format!(
                "{} (pid {}) is no longer running ({status})",
                self.binary.display(),
                self.pid
            ));
        }
        send_signal(self.pid, signal)
    }

    /// Kills the server with `SIGKILL` and reaps its watchdog.
    pub(super) fn kill(&mut self) {
        if self.exited().is_none() {
            // A stopped process still dies on SIGKILL, so a paused server needs no SIGCONT.
            let _ = send_signal(self.pid, "KILL");
            let mut shell = self
                .shell
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = shell.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::{PID_MARKER, WATCHDOG};

    #[test]
    fn watchdog_reports_the_pid_after_the_marker() {
        assert!(
            WATCHDOG.contains(&format!("echo \"{PID_MARKER}$server\"")),
            "the watchdog script and PID_MARKER disagree"
        );
    }
}
