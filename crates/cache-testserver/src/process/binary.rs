//! Finding a server binary and starting it on a port, ready for connections.

use std::path::{Path, PathBuf};

use super::watchdog::ServerProcess;
use crate::kind::ServerKind;
use crate::port::free_port;

/// How many free ports [`LocalServer::start`] tries when another process takes the one it picked.
const PORT_ATTEMPTS: usize = 3;

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
