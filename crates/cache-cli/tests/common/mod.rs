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
