//! What the soak records and checks: acknowledged writes (one bit each), outcome counts,
//! samples of memory and connections, and the growth allowed after the warm-up.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use cache_api::CacheError;
use cache_testserver::chaos::probe;

/// The long-lived keys one task wrote: a sequence number each, a bit set when the write
/// was acknowledged. A bit, not a key, so that recording them does not grow the memory the
/// soak watches.
#[derive(Debug, Default)]
pub(crate) struct Acked {
    written: u64,
    bits: Vec<u64>,
    count: u64,
}

impl Acked {
    /// The sequence number of the next write.
    pub(crate) fn next(&mut self) -> u64 {
        self.written += 1;
        self.written - 1
    }

    /// Records `sequence` as acknowledged.
    pub(crate) fn record(&mut self, sequence: u64) {
        let (word, bit) = ((sequence / 64) as usize, sequence % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
        self.count += 1;
    }

    fn contains(&self, sequence: u64) -> bool {
        let word = (sequence / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|bits| bits & (1 << (sequence % 64)) != 0)
    }

    /// Some acknowledged sequence number chosen from `seed`, if any.
    pub(crate) fn pick(&self, seed: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let start = seed.wrapping_mul(2_654_435_761) % self.written;
        (0..self.written)
            .map(|offset| (start + offset) % self.written)
            .find(|&sequence| self.contains(sequence))
    }

    /// Every acknowledged sequence number, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.written).filter(|&sequence| self.contains(sequence))
    }
}

/// What one load task did.
#[derive(Debug)]
pub(crate) struct SoakReport {
    pub(crate) task: usize,
    pub(crate) acked: Acked,
    operations: u64,
    errors: BTreeMap<&'static str, u64>,
    mismatched: u64,
    mismatches: Vec<String>,
}

impl SoakReport {
    pub(crate) fn new(task: usize) -> Self {
        Self {
            task,
            acked: Acked::default(),
            operations: 0,
            errors: BTreeMap::new(),
            mismatched: 0,
            mismatches: Vec::new(),
        }
    }

    /// Counts one operation and its error, if any.
    pub(crate) fn count(&mut self, error: Option<&CacheError>) {
        self.operations += 1;
        if let Some(error) = error {
            *self.errors.entry(probe::kind(error)).or_default() += 1;
        }
    }

    fn wrong(&mut self, what: String) {
        self.mismatched += 1;
        if self.mismatches.len() < 5 {
            self.mismatches.push(what);
        }
    }

    /// A short-lived key may be missing (deleted, expired), never another key's value.
    pub(crate) fn check_scratch(&mut self, key: &str, value: Option<&[u8]>) {
        if value.is_some() {
            if let Some(wrong) = probe::mismatch(key, value) {
                self.wrong(wrong);
            }
        }
    }

    /// An acknowledged long-lived key must read back exactly.
    pub(crate) fn check_durable(&mut self, key: &str, sequence: u64, value: Option<&[u8]>) {
        if value != Some(probe::value_for(key, sequence).as_ref()) {
            let shown = value.map(String::from_utf8_lossy);
            self.wrong(format!("{key}, acknowledged, read back as {shown:?}"));
        }
    }

    fn totals(reports: &[Self]) -> (u64, BTreeMap<&'static str, u64>, u64) {
        let mut errors = BTreeMap::new();
        let (mut operations, mut mismatched) = (0, 0);
        for report in reports {
            operations += report.operations;
            mismatched += report.mismatched;
            for (kind, count) in &report.errors {
                *errors.entry(*kind).or_default() += count;
            }
        }
        (operations, errors, mismatched)
    }

    /// One line: operations, rate, errors by kind and their share, faults, mismatches.
    pub(crate) fn summary(backend: &str, reports: &[Self], ran: Duration, faults: usize) -> String {
        let (operations, errors, mismatched) = Self::totals(reports);
        let failed: u64 = errors.values().sum();
        format!(
            "{backend}: {operations} operations in {:.0} s ({:.0}/s), {failed} failed ({:.2} %: {errors:?}) \
             over {faults} faults, {mismatched} mismatched reads",
            ran.as_secs_f64(),
            operations as f64 / ran.as_secs_f64(),
            100.0 * failed as f64 / operations.max(1) as f64,
        )
    }

    /// What is wrong with a backend's run: mismatched reads, no progress, or failures
    /// beyond what the faults' share of the time explains.
    pub(crate) fn problems(backend: &str, reports: &[Self], checked: u64) -> Vec<String> {
        let (operations, errors, mismatched) = Self::totals(reports);
        let mut problems = Vec::new();
        if mismatched > 0 {
            let examples: Vec<&String> =
                reports.iter().flat_map(|r| &r.mismatches).take(5).collect();
            problems.push(format!(
                "{backend}: {mismatched} wrong reads, e.g. {examples:?}"
            ));
        }
        if operations < 1_000 || checked < 100 {
            problems.push(format!(
                "{backend}: too little done to judge ({operations} operations, {checked} long-lived writes)"
            ));
        }
        let failed: u64 = errors.values().sum();
        // Faults hold a quarter of the time; calls fail fast or after 300 ms during them.
        if failed * 2 > operations {
            problems.push(format!("{backend}: {failed} of {operations} calls failed"));
        }
        problems
    }
}

/// One sample of the process and the servers.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) rss_kib: u64,
    pub(crate) sockets: u64,
    /// Each server's client connections, in the order of the targets.
    pub(crate) clients: Vec<u64>,
}

/// The process's resident memory, from `/proc/self/status`.
///
/// # Panics
///
/// Without `/proc` (the soak then cannot watch memory, and says so).
pub(crate) fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|error| panic!("the soak reads /proc/self/status: {error}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status"))
}

/// The process's open sockets: entries of `/proc/self/fd` that link to `socket:[..]`.
///
/// # Panics
///
/// Without `/proc`.
pub(crate) fn socket_count() -> u64 {
    let entries = std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|error| panic!("the soak reads /proc/self/fd: {error}"));
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count() as u64
}

/// Prints at most 40 samples, evenly spread, and the last.
pub(crate) fn print_samples(samples: &[Sample], servers: &[&str]) {
    let every = samples.len().div_ceil(40).max(1);
    for (index, sample) in samples.iter().enumerate() {
        if index % every != 0 && index + 1 != samples.len() {
            continue;
        }
        let mut line = format!(
            "t={:>5.0}s rss={:>7} KiB sockets={:>4}",
            sample.at.as_secs_f64(),
            sample.rss_kib,
            sample.sockets
        );
        for (server, clients) in servers.iter().zip(&sample.clients) {
            let _ = write!(line, " {server}_clients={clients}");
        }
        println!("{line}");
    }
}

/// The largest values during the warm-up and after it.
#[derive(Debug)]
pub(crate) struct Growth {
    pub(crate) warm_up: Duration,
    pub(crate) samples_after: usize,
    pub(crate) rss_kib: (u64, u64),
    pub(crate) sockets: (u64, u64),
    pub(crate) clients: Vec<(u64, u64)>,
}

impl Growth {
    /// Splits the samples at `warm_up` and keeps each side's largest values.
    pub(crate) fn after_warm_up(samples: &[Sample], warm_up: Duration) -> Self {
        let (before, after): (Vec<&Sample>, Vec<&Sample>) =
            samples.iter().partition(|sample| sample.at <= warm_up);
        let max = |side: &[&Sample], read: &dyn Fn(&Sample) -> u64| {
            side.iter().map(|sample| read(sample)).max().unwrap_or(0)
        };
        let servers = samples.first().map_or(0, |sample| sample.clients.len());
        Self {
            warm_up,
            samples_after: after.len(),
            rss_kib: (max(&before, &|s| s.rss_kib), max(&after, &|s| s.rss_kib)),
            sockets: (max(&before, &|s| s.sockets), max(&after, &|s| s.sockets)),
            clients: (0..servers)
                .map(|n| {
                    (
                        max(&before, &|s| s.clients[n]),
                        max(&after, &|s| s.clients[n]),
                    )
                })
                .collect(),
        }
    }

    /// What grew past its bound after the warm-up.
    pub(crate) fn check(&self, rss_kib: u64, sockets: u64, clients: u64) -> Vec<String> {
        let mut problems = Vec::new();
        if self.samples_after < 2 {
            problems.push(format!(
                "only {} samples after the warm-up",
                self.samples_after
            ));
        }
        let mut bound = |what: &str, (before, after): (u64, u64), allowed: u64| {
            if after > before + allowed {
                problems.push(format!(
                    "{what} grew from {before} to {after} after the warm-up of {:?} (allowed {allowed})",
                    self.warm_up
                ));
            }
        };
        bound("resident memory (KiB)", self.rss_kib, rss_kib);
        bound("open sockets", self.sockets, sockets);
        for (server, pair) in self.clients.iter().enumerate() {
            bound(&format!("clients of server {server}"), *pair, clients);
        }
        problems
    }
}
