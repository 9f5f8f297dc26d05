//! [`TestDir`]: a directory of a test's own under the system's temporary directory, for
//! certificates and unix sockets, removed when dropped and also when the test process
//! ends however it ends.

use std::{
    path::{Path, PathBuf},
    process::Child,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::run_at_exit;

/// A fresh directory, removed on drop (and by a watchdog shell if the process dies).
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    remover: Option<Child>,
}

impl TestDir {
    /// Creates `<temp>/cache-<label>-<pid>-<n>-<nanos>`, mode 0700 on unix.
    ///
    /// # Errors
    ///
    /// A message when the directory cannot be created.
    pub fn new(label: &str) -> Result<Self, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "cache-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Private keys live here.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|err| format!("cannot restrict {}: {err}", path.display()))?;
        }
        // The pause lets the servers' watchdogs kill them first.
        let remover = run_at_exit(r#"sleep 1; rm -rf "$1""#, [&path]).ok();
        Ok(Self { path, remover })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        if let Some(mut remover) = self.remover.take() {
            let _ = remover.kill();
            let _ = remover.wait();
        }
    }
}
