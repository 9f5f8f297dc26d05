//! A `memcached` serving a unix socket (`-s`) in a [`TestDir`] of its own. With `-s`,
//! memcached listens on no TCP port, so it is ready once the socket accepts a connection.

use std::{
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{process::find_binary, run_at_exit, TestDir, MEMCACHED};

/// How long memcached may take to create and serve its socket.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A memcached process on a unix socket, killed on drop and when the test process ends
/// (however it ends: a shell started by [`run_at_exit`] kills it).
#[derive(Debug)]
pub struct UnixMemcached {
    process: Child,
    /// Kills the server once dropped, or when this process ends.
    killer: Option<Child>,
    socket: PathBuf,
    dir: TestDir,
}

impl UnixMemcached {
    /// Starts `memcached -s <dir>/memcached.sock -a 0700` and waits until the socket
    /// answers.
    ///
    /// # Errors
    ///
    /// A message when memcached is not on `PATH` (saying how to install it), does not
    /// start, or does not serve the socket within 10 s.
    pub async fn start() -> Result<Self, String> {
        let binary = find_binary(MEMCACHED.binary).ok_or_else(|| {
            format!(
                "memcached not found on PATH (install it: {})",
                MEMCACHED.install_hint
            )
        })?;
        let dir = TestDir::new("memcached-unix")?;
        let socket = dir.join("memcached.sock");
        // The kind's own arguments (`-u root` when running as root; the TCP ones are
        // ignored, `-s` turns TCP off) and the socket, private to this user.
        let mut args = (MEMCACHED.binary_args)(0);
        args.extend(["-s".to_owned(), socket.display().to_string()]);
        args.extend(["-a".to_owned(), "0700".to_owned()]);
        let process = Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
        let killer = run_at_exit(r#"kill "$1" 2>/dev/null"#, [process.id().to_string()])
            .map_err(|err| format!("cannot run sh to watch memcached: {err}"))?;
        let mut server = Self {
            process,
            killer: Some(killer),
            socket,
            dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.process.try_wait() {
                return Err(format!(
                    "memcached -s exited before serving its socket: {status}"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "memcached did not serve {} within {READY_DEADLINE:?}",
                    self.socket.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The socket's path.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `memcache+unix://<socket path>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("memcache+unix://{}", self.socket.display())
    }

    /// The directory the socket is in.
    #[must_use]
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }
}

impl Drop for UnixMemcached {
    fn drop(&mut self) {
        // Closing the killer's stdin makes it kill the server; then the exit is reaped.
        drop(self.killer.take());
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
