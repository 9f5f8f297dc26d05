//! Server processes started from a binary, and [`LocalServer`], the one a fault test controls.
//!
//! Every server runs under a small `sh` watchdog whose standard input is a pipe held by this
//! process. When this process ends for any reason (normal exit, panic, abort, `SIGKILL`) the
//! kernel closes that pipe, the watchdog's `read` returns and it kills the server: no server
//! outlives its test process, without any signal handler or `unsafe` code.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::kind::ServerKind;
use crate::port::{accepts_connections, free_port, wait_until_closed_blocking};
use crate::runtime::on_background;

/// How long a server may take to accept connections after it was spawned.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a killed server may take to release its port.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// How long a paused server's threads may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How many free ports [`LocalServer::start`] tries when another process takes the one it picked.
const PORT_ATTEMPTS: usize = 3;

/// The most of a server's output kept for error messages, per stream.
const OUTPUT_LIMIT: usize = 16 * 1024;

/// Marks the line on which the watchdog reports the server's pid.
///
/// The server shares the watchdog's standard output and may write before the watchdog does, so
/// the pid is searched for after this marker rather than expected on the first line.
const PID_MARKER: &str = "cache-testserver-pid:";

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

/// Looks `binary` up on `PATH`, or checks it directly when it contains a `/`.
pub(crate) fn find_binary(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        let path = PathBuf::from(binary);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Sends `signal` (a name such as `STOP`) to `pid` with the shell's `kill` builtin.
fn send_signal(pid: u32, signal: &str) -> Result<(), String> {
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

/// What a server wrote on its standard output and error, the last [`OUTPUT_LIMIT`] bytes of each.
#[derive(Default)]
struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Captured {
    fn push(buffer: &mut Vec<u8>, bytes: &[u8]) {
        buffer.extend_from_slice(bytes);
        if buffer.len() > OUTPUT_LIMIT {
            let excess = buffer.len() - OUTPUT_LIMIT;
            buffer.drain(..excess);
        }
    }

    fn describe(&self) -> String {
        let stdout = String::from_utf8_lossy(&self.stdout);
        let stderr = String::from_utf8_lossy(&self.stderr);
        match (stdout.trim().is_empty(), stderr.trim().is_empty()) {
            (true, true) => "it wrote nothing".to_owned(),
            (false, true) => format!("its stdout:\n{}", stdout.trim_end()),
            (true, false) => format!("its stderr:\n{}", stderr.trim_end()),
            (false, false) => format!(
                "its stdout:\n{}\nits stderr:\n{}",
                stdout.trim_end(),
                stderr.trim_end()
            ),
        }
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
    async fn spawn(binary: &Path, args: &[String]) -> Result<Self, String> {
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
    fn exited(&self) -> Option<ExitStatus> {
        let mut shell = self
            .shell
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shell.try_wait().ok().flatten()
    }

    fn describe_output(&self) -> String {
        self.output
            .lock()
            .map(|output| output.describe())
            .unwrap_or_else(|_| "its output is unavailable".to_owned())
    }

    /// Waits until the server accepts connections on `127.0.0.1:port`.
    ///
    /// On failure the server is killed and the message carries what it wrote.
    async fn wait_ready(&mut self, port: u16) -> Result<(), String> {
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

    fn signal(&self, signal: &str) -> Result<(), String> {
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
    fn kill(&mut self) {
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

fn read_stdout(
    stdout: impl Read,
    output: &Mutex<Captured>,
    pid_tx: oneshot::Sender<u32>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stdout);
    let mut pid_tx = Some(pid_tx);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if pid_tx.is_some() {
            let text = String::from_utf8_lossy(&line);
            if let Some(at) = text.find(PID_MARKER) {
                let pid = text[at + PID_MARKER.len()..].trim().parse::<u32>();
                if let (Ok(pid), Some(tx)) = (pid, pid_tx.take()) {
                    let _ = tx.send(pid);
                }
                // Whatever the server wrote before the marker on this line is still its output.
                let before = text[..at].as_bytes().to_vec();
                if let Ok(mut output) = output.lock() {
                    Captured::push(&mut output.stdout, &before);
                }
                continue;
            }
        }
        if let Ok(mut output) = output.lock() {
            Captured::push(&mut output.stdout, &line);
        }
    }
}

fn read_stderr(stderr: impl Read, output: &Mutex<Captured>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stderr);
    let mut chunk = [0_u8; 4096];
    loop {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        if let Ok(mut output) = output.lock() {
            Captured::push(&mut output.stderr, &chunk[..read]);
        }
    }
}

/// Starts `kind`'s binary with its arguments for `port` plus `extra_args`, and waits until ready.
///
/// With `port` unset it picks a free port, and picks another when the server reports that the
/// port was taken in between.
pub(crate) async fn start_binary(
    kind: &'static ServerKind,
    port: Option<u16>,
    extra_args: &[String],
) -> Result<(ServerProcess, u16), String> {
    let binary = find_binary(kind.binary).ok_or_else(|| {
        format!(
            "{} not found on PATH (install it: {})",
            kind.binary, kind.install_hint
        )
    })?;
    let attempts = if port.is_some() { 1 } else { PORT_ATTEMPTS };
    let mut last_error = String::new();
    for _ in 0..attempts {
        let port = port.unwrap_or_else(free_port);
        let mut args = (kind.binary_args)(port);
        args.extend(extra_args.iter().cloned());
        let mut process = ServerProcess::spawn(&binary, &args).await?;
        match process.wait_ready(port).await {
            Ok(()) => return Ok((process, port)),
            Err(err) if err.to_ascii_lowercase().contains("in use") => last_error = err,
            Err(err) => return Err(err),
        }
    }
    Err(last_error)
}

/// A dedicated server process on a free `127.0.0.1` port, for fault tests.
///
/// Unlike the shared server, it belongs to one test: the test can pause it (`SIGSTOP`), resume it
/// (`SIGCONT`), kill it and restart it on the same port. It is killed on drop, and also when the
/// test process dies (see the crate docs). Always started from the binary on
/// `PATH`, never from a container or an external URL.
///
/// ```no_run
/// # async fn demo(kind: &'static cache_testserver::ServerKind) -> Result<(), String> {
/// use cache_testserver::LocalServer;
///
/// let mut server = LocalServer::start(kind, &["--requirepass", "s3cret"]).await?;
/// let url = server.url(); // give it to the client under test
/// server.pause(); // the client's calls now time out
/// server.resume();
/// server.kill(); // the client's calls now fail to connect
/// server.restart().await?; // same port, same arguments
/// # Ok(())
/// # }
/// ```
pub struct LocalServer {
    kind: &'static ServerKind,
    port: u16,
    /// Kept for restarts; never shown, as it may hold a password.
    extra_args: Vec<String>,
    process: Option<ServerProcess>,
}

impl LocalServer {
    /// Starts `kind`'s binary on a free `127.0.0.1` port, `extra_args` appended to its arguments,
    /// and waits (up to 10 s) until it accepts connections.
    ///
    /// Works from any async runtime.
    ///
    /// # Errors
    ///
    /// Returns a message when the binary is not on `PATH` (with the kind's install hint), or when
    /// the server exits early or is not ready in time (with what it wrote on stdout and stderr).
    pub async fn start(kind: &'static ServerKind, extra_args: &[&str]) -> Result<Self, String> {
        let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        let args = extra_args.clone();
        let (process, port) =
            on_background(async move { start_binary(kind, None, &args).await }).await?;
        Ok(Self {
            kind,
            port,
            extra_args,
            process: Some(process),
        })
    }

    /// The URL a client uses to reach this server, built by the kind's `url_for`.
    #[must_use]
    pub fn url(&self) -> String {
        (self.kind.url_for)("127.0.0.1", self.port)
    }

    /// The `127.0.0.1` port the server listens on; it stays the same across restarts.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid, or `None` after [`kill`](Self::kill) until the next restart.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|process| process.pid)
    }

    /// Freezes the server with `SIGSTOP`: connections stay open but nothing is answered.
    /// Returns once every thread of the server is stopped (a signal is delivered
    /// asynchronously, and a request sent in between would still be answered), or after
    /// 5 s on a system without `/proc`.
    ///
    /// # Panics
    ///
    /// Panics when the server is not running (killed, or exited by itself), when the signal
    /// fails, or when `/proc` shows a thread of the server still running 5 s after it.
    pub fn pause(&self) {
        self.signal("STOP");
        if let Some(pid) = self.pid() {
            let deadline = Instant::now() + STOP_DEADLINE;
            while !all_threads_stopped(pid) {
                if Instant::now() >= deadline {
                    // Without /proc there is nothing to wait on: the deadline is the wait.
                    assert!(
                        !Path::new("/proc/self/task").is_dir(),
                        "the {} server (pid {pid}) on port {} did not stop within {STOP_DEADLINE:?} of SIGSTOP",
                        self.kind.name,
                        self.port
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Lets a paused server run again with `SIGCONT`.
    ///
    /// # Panics
    ///
    /// Panics when the server is not running (killed, or exited by itself) or the signal fails.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let name = self.kind.name;
        let port = self.port;
        let process = self.process.as_ref().unwrap_or_else(|| {
            panic!("cannot send SIG{signal}: the {name} server on port {port} was killed")
        });
        if let Err(err) = process.signal(signal) {
            panic!("cannot send SIG{signal} to the {name} server on port {port}: {err}");
        }
    }

    /// Kills the server with `SIGKILL` (even when paused) and waits until its port is closed.
    ///
    /// Does nothing when it is already killed.
    ///
    /// # Panics
    ///
    /// Panics when the port still accepts connections 10 s after the kill.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
            assert!(
                wait_until_closed_blocking(self.port, CLOSE_DEADLINE),
                "the {} server was killed but 127.0.0.1:{} still accepts connections after {CLOSE_DEADLINE:?}",
                self.kind.name,
                self.port
            );
        }
    }

    /// Starts the server again on the same port with the same arguments, and waits until it is
    /// ready; a running server is killed first. Data is not kept: servers run without persistence.
    ///
    /// # Errors
    ///
    /// Returns a message when the server cannot be started or is not ready in time (for example
    /// when another process took the port meanwhile).
    pub async fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let (kind, port, args) = (self.kind, self.port, self.extra_args.clone());
        let (process, _) =
            on_background(async move { start_binary(kind, Some(port), &args).await }).await?;
        self.process = Some(process);
        Ok(())
    }
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer")
            .field("kind", &self.kind.name)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Whether every thread of `pid` is in state `T` (stopped), read from `/proc`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name, which may hold spaces.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{run_at_exit, PID_MARKER, WATCHDOG};

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

    #[test]
    fn watchdog_reports_the_pid_after_the_marker() {
        assert!(
            WATCHDOG.contains(&format!("echo \"{PID_MARKER}$server\"")),
            "the watchdog script and PID_MARKER disagree"
        );
    }
}
