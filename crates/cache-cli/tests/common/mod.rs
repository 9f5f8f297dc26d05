//! What the `cachectl` tests share: running the binary and reading its output.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

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

/// Runs `cachectl check TARGET --timeout 300ms` and freezes `server` for 3 s once the
/// checks are under way (a first result line is out, however slowly a loaded machine
/// started the run). Returns everything cachectl printed, after asserting that the
/// frozen server failed some checks with a timeout and that clean-up still finished.
#[allow(dead_code)] // Used by the tests that start servers of their own.
pub(crate) fn check_with_a_frozen_server(
    server: &cache_testserver::LocalServer,
    target: &str,
) -> String {
    use std::{
        io::{BufRead, BufReader},
        process::Stdio,
        sync::mpsc,
        thread,
        time::Duration,
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_cachectl"))
        .args(["check", target, "--timeout", "300ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cachectl runs");
    let stdout = child.stdout.take().expect("piped");
    let (started, first_result) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("PASS") || line.starts_with("FAIL") {
                let _ = started.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    first_result
        .recv_timeout(Duration::from_secs(120))
        .expect("cachectl check printed no result line within 2 minutes");
    server.pause();
    thread::sleep(Duration::from_secs(3));
    server.resume();
    let out = child.wait_with_output().expect("cachectl ends");
    let shown = format!(
        "{}{}",
        reader.join().expect("the reader ends"),
        text(&out.stderr)
    );
    assert!(
        !out.status.success() && shown.contains("timed out"),
        "the frozen server was meant to fail some checks:\n{shown}"
    );
    assert!(!shown.contains("clean-up failed"), "{shown}");
    shown
}

/// Runs `cachectl` with `args`, asserts it succeeded and returns all it printed.
#[allow(dead_code)] // Not every test file uses it.
pub(crate) fn run_ok(args: &[&str]) -> String {
    let out = cachectl(args);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "cachectl {args:?} failed:\n{shown}");
    shown
}

/// Runs `args`, a bench that must be refused before it writes anything because the
/// server would evict to make room: exit 2, saying so with what the server has free of
/// its `limit` (as printed, e.g. `8.0 MiB`).
#[allow(dead_code)] // Used by the tests that start servers of their own.
pub(crate) fn assert_refused_as_evicting(args: &[&str], limit: &str) {
    let out = cachectl(args);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("would evict") && said.contains(&format!("MiB free of {limit}")),
        "{said}"
    );
}

/// Starts a server of `kind` of the test's own (so a full dump of it sees nothing but
/// what the test put there), with the runtime its watchdog lives in.
#[allow(dead_code)] // Used by the tests that start servers of their own.
pub(crate) fn start_server(
    kind: &'static cache_testserver::ServerKind,
) -> (tokio::runtime::Runtime, cache_testserver::LocalServer) {
    start_server_with(kind, &[])
}

/// [`start_server`] with `args` on the server's command line.
#[allow(dead_code)] // Used by the tests that start servers of their own.
pub(crate) fn start_server_with(
    kind: &'static cache_testserver::ServerKind,
    args: &[&str],
) -> (tokio::runtime::Runtime, cache_testserver::LocalServer) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(cache_testserver::LocalServer::start(kind, args))
        .unwrap_or_else(|err| {
            panic!("cannot start the test server (scripts/install-servers installs it): {err}")
        });
    (runtime, server)
}

/// A `cachectl` run in the background, whose output is collected as it comes, and which
/// is killed if the test lets go of it before it ends.
#[allow(dead_code)] // Used by the tests that interrupt a run or feed it standard input.
pub(crate) struct Background {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: std::sync::mpsc::Receiver<String>,
    stderr_seen: String,
    /// Keeps writing to the run's standard input until the run ends.
    feeder: Option<Feeder>,
}

/// The thread that writes an endless standard input, and the switch that ends it.
struct Feeder {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

#[allow(dead_code)] // Used by the tests that interrupt a run or feed it standard input.
impl Background {
    /// Starts `cachectl` with `args`, standard input closed.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::spawn(args, false)
    }

    /// Starts `cachectl` with `args` and a standard input that never ends: zeros, as fast
    /// as the run reads them, up to 256 MiB; after that the pipe is held open without
    /// another byte, so a run that waits for the end of its input waits for ever, with a
    /// bounded amount of memory.
    pub(crate) fn start_with_endless_stdin(args: &[&str]) -> Self {
        Self::spawn(args, true)
    }

    fn spawn(args: &[&str], endless_stdin: bool) -> Self {
        use std::{
            io::{BufRead, BufReader, Read, Write},
            process::Stdio,
            sync::{atomic::Ordering, mpsc, Arc},
            thread,
        };

        let mut child = Command::new(env!("CARGO_BIN_EXE_cachectl"))
            .args(args)
            .stdin(if endless_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cachectl runs");
        let mut stdout = child.stdout.take().expect("piped");
        let stdout = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stdout.read_to_end(&mut all);
            text(&all)
        });
        let stderr = child.stderr.take().expect("piped");
        let (line, stderr_lines) = mpsc::channel();
        thread::spawn(move || {
            for read in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.send(read).is_err() {
                    break;
                }
            }
        });
        let feeder = child.stdin.take().map(|mut stdin| {
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let switch = Arc::clone(&done);
            let thread = thread::spawn(move || {
                let chunk = vec![0_u8; 64 * 1024];
                let mut sent = 0_usize;
                while !switch.load(Ordering::Relaxed) {
                    if sent < 256 << 20 {
                        // Fails once the run has ended (a broken pipe).
                        if stdin.write_all(&chunk).is_err() {
                            return;
                        }
                        sent += chunk.len();
                    } else {
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            });
            Feeder { done, thread }
        });
        Self {
            child,
            stdout: Some(stdout),
            stderr: stderr_lines,
            stderr_seen: String::new(),
            feeder,
        }
    }

    /// Waits until the run has its Ctrl-C handler in place (Linux: the process's caught
    /// signals, in `/proc`), so that a SIGINT sent after reaches it rather than ending the
    /// process outright.
    fn wait_until_catching_ctrl_c(&mut self) {
        let status = format!("/proc/{}/status", self.child.id());
        let started = Instant::now();
        loop {
            let caught = std::fs::read_to_string(&status)
                .ok()
                .and_then(|status| {
                    let mask = status
                        .lines()
                        .find_map(|line| line.strip_prefix("SigCgt:"))?;
                    u64::from_str_radix(mask.trim(), 16).ok()
                })
                // SIGINT is signal 2: bit 1 of the mask.
                .is_some_and(|mask| mask & (1 << 1) != 0);
            if caught {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "cachectl ended ({status}) before it caught Ctrl-C:\n{}",
                    self.stderr_so_far()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cachectl did not catch Ctrl-C within a minute:\n{}",
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts `cachectl` with `args`, waits until it catches Ctrl-C, then lets it run
    /// for `settle` more, into the phase the test means to interrupt.
    pub(crate) fn catching_ctrl_c(args: &[&str], settle: Duration) -> Self {
        let mut run = Self::start(args);
        run.wait_until_catching_ctrl_c();
        std::thread::sleep(settle);
        run
    }

    /// Sends a SIGINT, then waits for the run to end as [`Background::finish`] does;
    /// [`Ended::took`] is the time from the signal to the end.
    pub(crate) fn interrupt_and_finish(self, limit: Duration, what: &str) -> Ended {
        self.interrupt();
        let interrupted = Instant::now();
        let (code, stdout, stderr) = self.finish(limit, what);
        Ended {
            code,
            stdout,
            stderr,
            took: interrupted.elapsed(),
        }
    }

    /// Sends the run a SIGINT, as Ctrl-C in a terminal does.
    pub(crate) fn interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -INT failed: {sent}");
    }

    /// Waits up to `limit` for a line of standard error that contains `wanted`.
    pub(crate) fn wait_for_stderr(&mut self, wanted: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.stderr_seen.contains(wanted) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push_str(&line);
                    self.stderr_seen.push('\n');
                }
                Err(_) => return false,
            }
        }
    }

    fn stderr_so_far(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push_str(&line);
            self.stderr_seen.push('\n');
        }
        self.stderr_seen.clone()
    }

    /// Waits for the run to end, for at most `limit` (then kills it and fails the test,
    /// saying `what`), and returns its exit code, standard output and standard error.
    pub(crate) fn finish(mut self, limit: Duration, what: &str) -> (Option<i32>, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("cachectl can be waited for") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{what}: cachectl had not ended after {limit:?}:\n{}",
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = self
            .stdout
            .take()
            .map(|reader| reader.join().expect("the reader ends"))
            .unwrap_or_default();
        // The writer of standard error ended with the process; its lines are all in.
        let stderr = loop {
            match self.stderr.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => {
                    self.stderr_seen.push_str(&line);
                    self.stderr_seen.push('\n');
                }
                Err(_) => break self.stderr_seen.clone(),
            }
        };
        (status.code(), stdout, stderr)
    }
}

/// How an interrupted run ended.
#[allow(dead_code)] // Used by the tests that interrupt a run.
pub(crate) struct Ended {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// From the last Ctrl-C to the end of the process.
    pub(crate) took: Duration,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(feeder) = self.feeder.take() {
            feeder
                .done
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = feeder.thread.join();
        }
    }
}
