//! The in-memory backend's resident memory per entry, against its table (quick_cache)
//! used directly.
//!
//! Each side is measured in a process of its own: memory freed by one side would
//! otherwise be reused by the other, and its growth would not show. The front end
//! starts those processes (it knows how to run itself) and each of them calls
//! [`measure_side`].

use std::process::{Command, Stdio};

use bytes::Bytes;
use cache_api::Cache;
use serde::{Deserialize, Serialize};

use crate::{
    backend::Backend, probe, report::group_digits, status_line::StatusLine, targets::Raw,
    BenchError, Settings,
};

/// Which side a footprint process measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The in-memory backend.
    Adapter,
    /// quick_cache with the backend's settings.
    Raw,
}

impl Side {
    /// `"adapter"` or `"raw"`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Adapter => "adapter",
            Side::Raw => "raw",
        }
    }
}

/// What one footprint process reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FootprintSide {
    /// `"adapter"` or `"raw"`.
    pub side: String,
    /// Entries stored.
    pub entries: u64,
    /// Entries still there once housekeeping ran.
    pub live_entries: u64,
    /// Resident memory before the first entry, in KiB.
    pub rss_before_kib: u64,
    /// Resident memory after the last entry, in KiB.
    pub rss_after_kib: u64,
    /// Growth of resident memory over the entries stored.
    pub bytes_per_entry: f64,
}

/// Both sides of a footprint run. Its JSON fields are described in
/// `crates/cache-cli/README.md`; `Display` prints the table.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FootprintReport {
    /// What the table's first line starts with.
    #[serde(skip)]
    pub label: String,
    /// The backend URL, password hidden.
    pub url: String,
    /// Bytes per value.
    pub value_size: usize,
    /// Bytes per key.
    pub key_len: usize,
    /// Entries stored per side.
    pub entries: u64,
    /// The in-memory backend.
    pub adapter: FootprintSide,
    /// quick_cache used directly, with a baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<FootprintSide>,
    /// Adapter bytes per entry over raw bytes per entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl FootprintReport {
    /// Whether every entry of every side was still there: otherwise the byte budget was
    /// too small and the figures mean little.
    pub fn complete(&self) -> bool {
        std::iter::once(&self.adapter)
            .chain(self.raw.as_ref())
            .all(|side| side.live_entries == self.entries)
    }
}

impl std::fmt::Display for FootprintReport {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            out,
            "{} {} --footprint {}: {}-byte keys, {}-byte values",
            self.label, self.url, self.entries, self.key_len, self.value_size
        )?;
        write!(
            out,
            "{:<12} {:>12} {:>14} {:>14} {:>16}",
            "", "live", "rss before KiB", "rss after KiB", "bytes per entry"
        )?;
        for side in std::iter::once(&self.adapter).chain(self.raw.as_ref()) {
            write!(
                out,
                "\n{:<12} {:>12} {:>14} {:>14} {:>16.1}",
                side.side,
                side.live_entries,
                side.rss_before_kib,
                side.rss_after_kib,
                side.bytes_per_entry
            )?;
        }
        if let Some(ratio) = self.ratio {
            write!(out, "\n{:<12} {ratio:>12.3}", "adapter/raw")?;
        }
        Ok(())
    }
}

/// The key of footprint entry `i`: 18 bytes.
fn footprint_key(i: u64) -> String {
    format!("footprint:{i:08}")
}

/// Refuses a URL other than `memory://`, and a value size over the largest value that
/// backend takes (both sides store the same values). Builds a cache to ask: not for a
/// process that measures its own memory.
fn check_settings(settings: &Settings) -> Result<(), BenchError> {
    let limits = cache_memory::MemoryCache::builder()
        .max_capacity_bytes(capacity_of(settings)?)
        .build()
        .map_err(|err| BenchError::Settings(err.to_string()))?
        .limits();
    crate::run::check_value_size(settings.value_size, &limits)
}

fn capacity_of(settings: &Settings) -> Result<u64, BenchError> {
    match Backend::of(&settings.url, settings.timeout) {
        Ok(Backend::Memory { capacity_bytes }) => Ok(capacity_bytes),
        Ok(_) => Err(BenchError::Settings(
            "--footprint measures the in-memory backend: use a memory:// URL".to_owned(),
        )),
        Err(err) => Err(BenchError::Settings(err.to_string())),
    }
}

/// Measures both sides (the raw one with `settings.raw_baseline`), each in the process
/// `child` makes for it: one that runs [`measure_side`] for that side with these
/// settings and prints its [`FootprintSide`] as JSON on standard output. Waits for the
/// processes: call it where blocking is allowed.
///
/// # Errors
///
/// A URL other than `memory://`, a process that cannot start, fails or prints something
/// other than a footprint.
pub fn footprint(
    settings: &Settings,
    entries: u64,
    child: impl Fn(Side) -> Command,
) -> Result<FootprintReport, BenchError> {
    check_settings(settings)?;
    let run = |side: Side| -> Result<FootprintSide, BenchError> {
        let name = side.name();
        let cannot_run = |err: std::io::Error| {
            BenchError::Run(format!("cannot run the {name} footprint process: {err}"))
        };
        let process = child(side)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(cannot_run)?;
        // Filling a large table takes minutes: on a terminal, the process's resident
        // memory once a second shows that it does.
        let pid = process.id().to_string();
        let line = StatusLine::showing(settings, move |label, elapsed| {
            let resident = probe::rss_kib_of(&pid)
                .map(|kib| format!("{} MiB resident", group_digits((kib / 1024) as f64)))
                .unwrap_or_default();
            format!(
                "{label}: {:>4}s  footprint, {name} side storing {} entries: {resident}",
                elapsed.as_secs(),
                group_digits(entries as f64),
            )
        });
        let output = process.wait_with_output();
        if let Some(line) = line {
            line.finish();
        }
        let output = output.map_err(cannot_run)?;
        if !output.status.success() {
            return Err(BenchError::Run(format!(
                "the {name} footprint process failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|err| BenchError::Run(format!("unreadable {name} footprint: {err}")))
    };
    let adapter = run(Side::Adapter)?;
    let raw = if settings.raw_baseline {
        Some(run(Side::Raw)?)
    } else {
        None
    };
    Ok(FootprintReport {
        label: settings
            .progress_label
            .clone()
            .unwrap_or_else(|| "cache-bench".to_owned()),
        url: cache_url::redact(&settings.url),
        value_size: settings.value_size,
        key_len: footprint_key(0).len(),
        entries,
        ratio: raw
            .as_ref()
            .map(|raw| adapter.bytes_per_entry / raw.bytes_per_entry),
        adapter,
        raw,
    })
}

/// Stores `entries` entries of `settings.value_size` bytes on one side, in this process,
/// and reports the resident memory they cost.
///
/// # Errors
///
/// A URL other than `memory://`, a backend that refuses its settings or an entry,
/// a system without `/proc/self/status`.
pub async fn measure_side(
    settings: &Settings,
    side: Side,
    entries: u64,
) -> Result<FootprintSide, BenchError> {
    let capacity = capacity_of(settings)?;
    // [`footprint`] checked the size against the backend's largest value. No cache is
    // built here only to ask again (one freed before the measure would lower the
    // figures: its memory is reused), but no value over the whole budget is ever made.
    if settings.value_size as u64 > capacity {
        return Err(BenchError::Settings(format!(
            "a value of {} bytes is over the backend's whole budget ({capacity} bytes)",
            settings.value_size
        )));
    }
    let failed = |err: &dyn std::fmt::Display| BenchError::Run(err.to_string());
    let value_size = settings.value_size;
    let value = |i: u64| Bytes::from(vec![(i % 251) as u8; value_size]);
    let before;
    let live = match side {
        Side::Adapter => {
            let cache = cache_memory::MemoryCache::builder()
                .max_capacity_bytes(capacity)
                .build()
                .map_err(|err| failed(&err))?;
            crate::run::check_value_size(value_size, &cache.limits())?;
            before = probe::rss_kib().map_err(|err| failed(&err))?;
            for i in 0..entries {
                let set = cache.set(&footprint_key(i), value(i), None).await;
                set.map_err(|err| failed(&err))?;
            }
            cache.entry_count().await
        }
        Side::Raw => {
            let Raw::Memory(table) = Raw::memory(capacity) else {
                unreachable!("Raw::memory builds the table");
            };
            before = probe::rss_kib().map_err(|err| failed(&err))?;
            for i in 0..entries {
                table.insert(&footprint_key(i), value(i));
            }
            table.len()
        }
    };
    let after = probe::rss_kib().map_err(|err| failed(&err))?;
    Ok(FootprintSide {
        side: side.name().to_owned(),
        entries,
        live_entries: live,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_entry: after.saturating_sub(before) as f64 * 1024.0 / entries.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_side_counts_its_entries() {
        let mut settings = Settings::new("memory://");
        settings.value_size = 10;
        for side in [Side::Adapter, Side::Raw] {
            let measured = measure_side(&settings, side, 1_000).await.unwrap();
            assert_eq!(measured.side, side.name());
            assert_eq!(measured.live_entries, 1_000);
            assert!(measured.rss_after_kib > 0);
        }
    }

    /// A side run on its own never makes a value no machine could allocate.
    #[tokio::test]
    async fn a_side_refuses_a_value_over_the_budget() {
        let mut settings = Settings::new("memory://");
        settings.value_size = usize::MAX / 2;
        for side in [Side::Adapter, Side::Raw] {
            let err = measure_side(&settings, side, 10).await.unwrap_err();
            assert!(err.to_string().contains("whole budget"), "{err}");
        }
    }

    #[test]
    fn only_the_memory_backend_has_a_footprint() {
        let settings = Settings::new("redis://127.0.0.1:1");
        let err = footprint(&settings, 10, |_| Command::new("false")).unwrap_err();
        assert!(err.to_string().contains("memory://"), "{err}");
    }
}
