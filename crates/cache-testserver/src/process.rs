//! Server processes started from a binary, and [`LocalServer`], the one a fault test controls.
//!
//! Every server runs under a small `sh` watchdog whose standard input is a pipe held by this
//! process. When this process ends for any reason (normal exit, panic, abort, `SIGKILL`) the
//! kernel closes that pipe, the watchdog's `read` returns and it kills the server: no server
//! outlives its test process, without any signal handler or `unsafe` code.

mod at_exit;
mod binary;
mod output;
mod watchdog;

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

pub use at_exit::run_at_exit;
pub(crate) use binary::{find_binary, start_binary};
use watchdog::ServerProcess;

use crate::kind::ServerKind;
use crate::port::wait_until_closed_blocking;
use crate::runtime::on_background;

/// How long a killed server may take to release its port.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// How long a paused server's threads may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

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
        self.process.as_ref().map(ServerProcess::pid)
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

    /// Starts the server again on the same port, as [`restart`](Self::restart) does, with
    /// `extra_args` in place of the arguments it had: a server reconfigured under the
    /// clients that know it (a smaller item size, another password). Later restarts keep
    /// these.
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart).
    pub async fn restart_with(&mut self, extra_args: &[&str]) -> Result<(), String> {
        self.extra_args = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        self.restart().await
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
