//! What a server writes: kept (the last bytes of each stream) for error messages, and
//! read for the pid line the watchdog prints.

use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::watchdog::PID_MARKER;

/// The most of a server's output kept for error messages, per stream.
const OUTPUT_LIMIT: usize = 16 * 1024;

/// What a server wrote on its standard output and error, the last [`OUTPUT_LIMIT`] bytes of each.
#[derive(Default)]
pub(super) struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Captured {
    pub(super) fn push(buffer: &mut Vec<u8>, bytes: &[u8]) {
        buffer.extend_from_slice(bytes);
        if buffer.len() > OUTPUT_LIMIT {
            let excess = buffer.len() - OUTPUT_LIMIT;
            buffer.drain(..excess);
        }
    }

    pub(super) fn describe(&self) -> String {
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

pub(super) fn read_stdout(
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

pub(super) fn read_stderr(stderr: impl Read, output: &Mutex<Captured>) -> std::io::Result<()> {
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
