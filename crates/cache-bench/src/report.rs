//! What a run reports: a document for `--json` and the table printed otherwise.

use std::fmt::{self, Write as _};

use cache_api::CacheError;
use serde::Serialize;

use crate::{cleanup::Cleanup, measurement::SideReport, probe::Sample};

/// Adapter against raw client.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Adapter throughput over raw throughput, all rounds together: 1.0 means no cost.
    pub throughput: f64,
    /// Adapter throughput over raw throughput in each round (the two sides of a round
    /// run back to back).
    pub throughput_rounds: Vec<f64>,
    /// The median of `throughput_rounds`: a burst of other work on the machine that
    /// hits one round moves it less than the overall ratio.
    pub throughput_median: f64,
    /// Adapter p99 over raw p99, all rounds together: 1.0 means no cost.
    pub p99: f64,
}

/// Everything a run measured, and how it left the server. Its JSON fields are described
/// in `crates/cache-cli/README.md`; `Display` prints the table.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// What the table's first line starts with.
    #[serde(skip)]
    pub label: String,
    /// The backend URL, password hidden.
    pub url: String,
    /// `memory`, `redis` (a cluster too) or `memcached`.
    pub backend: &'static str,
    /// How the adapter reaches the backend: `multiplexed(1)`, `pooled(16)`, `cluster(3 seeds)`...
    pub mode: String,
    /// The workload's name.
    pub workload: &'static str,
    /// Keys per operation: only for the get-many workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Bytes per value.
    pub value_size: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Tasks issuing operations at once.
    pub concurrency: usize,
    /// Threads of the async runtime.
    pub threads: usize,
    /// Rounds per side (1 without a baseline).
    pub rounds: u32,
    /// Unmeasured run per side, in seconds.
    pub warmup_s: f64,
    /// The adapter's figures.
    pub adapter: SideReport,
    /// The raw client's figures, with a baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<SideReport>,
    /// Adapter against raw client, with a baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
    /// Readings taken during the run, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    /// What removing the run's keys achieved.
    pub cleanup: Cleanup,
    /// Stopped early: the figures cover only part of the planned run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl Report {
    /// Whether an operation failed on either side, or keys were left behind.
    pub fn failed(&self) -> bool {
        self.adapter.errors > 0
            || self.raw.as_ref().is_some_and(|raw| raw.errors > 0)
            || self.cleanup.left_prefix.is_some()
    }

    fn write_side(
        &self,
        out: &mut fmt::Formatter<'_>,
        name: &str,
        side: &SideReport,
    ) -> fmt::Result {
        let reads = side.hits + side.misses;
        let hit = if reads == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", side.hits as f64 * 100.0 / reads as f64)
        };
        writeln!(
            out,
            "{name:<12} {:>12} {:>12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>7}",
            group_digits(side.ops_per_sec),
            group_digits(side.keys_per_sec),
            side.p50_us,
            side.p99_us,
            side.p999_us,
            side.max_us,
            side.errors,
            hit
        )?;
        if let Some(error) = &side.first_error {
            writeln!(out, "{:<12} first error: {error}", "")?;
        }
        Ok(())
    }

    fn write_ratio(out: &mut fmt::Formatter<'_>, ratio: &Ratio) -> fmt::Result {
        writeln!(
            out,
            "{:<12} {:>12.3} {:>12} {:>9} {:>9.3}",
            "adapter/raw", ratio.throughput, "", "", ratio.p99
        )?;
        let rounds: Vec<String> = ratio
            .throughput_rounds
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect();
        writeln!(
            out,
            "{:<12} throughput ratio per round: {} (median {:.3})",
            "",
            rounds.join(", "),
            ratio.throughput_median
        )
    }

    fn write_samples(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(out, "samples:")?;
        writeln!(
            out,
            "{:>8} {:>12} {:>20}",
            "at s", "rss KiB", "server connections"
        )?;
        for sample in &self.samples {
            let connections = sample
                .server_connections
                .map_or_else(|| "-".to_owned(), |count| count.to_string());
            writeln!(
                out,
                "{:>8.1} {:>12} {:>20}",
                sample.at_s, sample.rss_kib, connections
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "{} {} ({}, {})",
            self.label, self.url, self.backend, self.mode
        )?;
        let batch = self
            .batch
            .map_or_else(String::new, |batch| format!(" of {batch} keys"));
        writeln!(
            out,
            "workload {}{batch}, {}-byte values, {} keys, concurrency {}, {} runtime thread(s), {} round(s) per side, warmup {}s",
            self.workload, self.value_size, self.keys, self.concurrency, self.threads, self.rounds, self.warmup_s
        )?;
        writeln!(
            out,
            "{:<12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
            "", "ops/s", "keys/s", "p50 us", "p99 us", "p99.9 us", "max us", "errors", "hit %"
        )?;
        self.write_side(out, "adapter", &self.adapter)?;
        if let Some(raw) = &self.raw {
            self.write_side(out, "raw", raw)?;
        }
        if let Some(ratio) = &self.ratio {
            Self::write_ratio(out, ratio)?;
        }
        if !self.samples.is_empty() {
            self.write_samples(out)?;
        }
        write!(out, "cleanup: {}", self.cleanup.describe())?;
        if self.interrupted {
            write!(
                out,
                "\ninterrupted: the figures cover only part of the planned run"
            )?;
        }
        Ok(())
    }
}

/// The median of `values`; NaN for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// 1234567.8 as "1,234,568".
pub(crate) fn group_digits(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An error with its causes, on one line.
pub(crate) fn chain(err: &CacheError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        // A message may already end with its source's: add only what is new.
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            let _ = write!(message, ": {cause_text}");
        }
        source = cause.source();
    }
    message
}

/// Removes the URL's password from a client's error message, should it ever carry one.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    match cache_url::CacheUrl::parse(url) {
        Ok(url) => url.scrub(message),
        // A URL that does not parse never reached a client.
        Err(_) => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0.4), "0");
        assert_eq!(group_digits(999.0), "999");
        assert_eq!(group_digits(1000.0), "1,000");
        assert_eq!(group_digits(1_234_567.8), "1,234,568");
    }

    #[test]
    fn passwords_are_scrubbed_from_client_errors() {
        let url = "redis://user:hunter2@127.0.0.1:7000/0";
        assert_eq!(scrub("auth hunter2 refused", url), "auth *** refused");
        assert_eq!(
            scrub("no secret here", "redis://127.0.0.1"),
            "no secret here"
        );
    }
}
