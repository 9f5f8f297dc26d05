//! Looking at a memcached server from outside any client, over its text protocol: one
//! command and its answer, and the list of every item it holds. For tests that check what
//! a run left on a server; they panic, with what was asked, when the server misbehaves.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    thread,
    time::{Duration, Instant},
};

/// How long one answer, or a busy key lister, is waited for.
const PATIENCE: Duration = Duration::from_secs(10);

/// Sends `command` (its `\r\n` added) to the memcached at `address` (`host:port`) on a
/// connection of its own, and returns the answer's lines without their line ends, up to
/// and including the first that equals one of `last_lines` or starts with `ERROR`,
/// `CLIENT_ERROR`, `SERVER_ERROR` or `BUSY`.
///
/// # Panics
///
/// When the server cannot be reached, closes the connection or is silent for 10 s.
#[must_use]
pub fn memcached_exchange(address: &str, command: &str, last_lines: &[&str]) -> Vec<Vec<u8>> {
    let stream = TcpStream::connect(address)
        .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    (&stream)
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap_or_else(|error| panic!("cannot send {command:?} to {address}: {error}"));
    let mut reader = BufReader::new(&stream);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let read = reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|error| panic!("{command:?} on {address}: {error}"));
        assert!(
            read > 0,
            "{address} closed the connection during {command:?}"
        );
        while line
            .last()
            .is_some_and(|byte| matches!(byte, b'\r' | b'\n'))
        {
            line.pop();
        }
        let done = last_lines.iter().any(|last| line == last.as_bytes())
            || [&b"ERROR"[..], b"CLIENT_ERROR", b"SERVER_ERROR", b"BUSY"]
                .iter()
                .any(|start| line.starts_with(start));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// Every item the memcached at `address` holds, one `lru_crawler metadump` line each
/// (`key=<percent-encoded key> exp=… la=… cas=… fetch=… cls=… size=…`), listed by walking
/// the hash table (`hash`), where no item moves while the server reorders its LRUs; a
/// server that knows no `hash` walks its LRUs (`all`). memcached lists for one client at
/// a time: a busy lister is asked again, for up to 10 s.
///
/// # Panics
///
/// As [`memcached_exchange`], and when the listing is refused or stays busy.
#[must_use]
pub fn memcached_items(address: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut command = "lru_crawler metadump hash";
    loop {
        let mut lines = memcached_exchange(address, command, &["END"]);
        let last = lines.pop().unwrap_or_default();
        if last.starts_with(b"BUSY") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        if last.starts_with(b"BADCLASS") && command.ends_with("hash") {
            command = "lru_crawler metadump all";
            continue;
        }
        assert_eq!(
            last,
            b"END",
            "{command} on {address} answered {:?}",
            String::from_utf8_lossy(&last)
        );
        return lines;
    }
}
