//! What a run is asked to do: the settings `cachectl bench` takes as flags.

use std::time::Duration;

use crate::{plan::Workload, BenchError};

/// The longest duration, warmup or sampling period a run takes: a load test runs for
/// seconds to hours; longer is a typing error.
pub(crate) const MAX_LENGTH: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The most distinct keys a run uses: their names are made before the run and held in
/// memory (some 60 bytes each), and a run that writes them all puts that many entries
/// on the server.
pub(crate) const MAX_KEYS: usize = 10_000_000;

/// The settings of one run. Start from [`Settings::new`] and change the fields needed.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Backend URL: `memory://`, `redis://`, `redis+cluster://` or `memcache://`.
    pub url: String,
    /// What each operation does.
    pub workload: Workload,
    /// Keys per `get_many` of the get-many workload.
    pub batch: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Distinct keys; written before the run for get, mix and get-many.
    pub keys: usize,
    /// Tasks issuing operations at once.
    pub concurrency: usize,
    /// How long to measure (per side with a baseline); 10 s when neither this nor
    /// `ops` is given. At most 30 days, as are `warmup` and `sample_every`.
    pub duration: Option<Duration>,
    /// Operations to measure (per side with a baseline).
    pub ops: Option<u64>,
    /// Unmeasured run before measuring, per side.
    pub warmup: Duration,
    /// Also run the identical workload straight through the backend's client.
    pub raw_baseline: bool,
    /// Rounds per side with a baseline, in ABBA order, splitting `duration` or `ops`.
    pub rounds: u32,
    /// redis: every operation through a pool of at most this many connections.
    pub pooled: Option<usize>,
    /// redis: operations spread over this many multiplexed connections.
    pub connections: Option<usize>,
    /// How often to record resident memory and the server's connection count.
    pub sample_every: Option<Duration>,
    /// Connect and response timeout of network backends.
    pub timeout: Option<Duration>,
    /// Run even when the keys written would take more than half the memory a server has
    /// free (it may then evict entries that are not the run's).
    pub allow_eviction: bool,
    /// What progress lines on standard error start with, once per second; `None` prints
    /// none. Also the first word of the text report.
    pub progress_label: Option<String>,
    /// No progress line even on a terminal: for a report a program reads (`--json`).
    /// Without it the line shows only when standard error is a terminal.
    pub quiet: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("Settings")
            .field("url", &cache_url::redact(&self.url))
            .field("workload", &self.workload)
            .field("value_size", &self.value_size)
            .field("keys", &self.keys)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The defaults of `cachectl bench` for `url`: get of 10,000 keys of 100 bytes by 16
    /// tasks for 10 s after a 1 s warmup, no baseline.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            workload: Workload::Get,
            batch: 100,
            value_size: 100,
            keys: 10_000,
            concurrency: 16,
            duration: None,
            ops: None,
            warmup: Duration::from_secs(1),
            raw_baseline: false,
            rounds: 4,
            pooled: None,
            connections: None,
            sample_every: None,
            timeout: None,
            allow_eviction: false,
            progress_label: None,
            quiet: false,
        }
    }

    /// Refuses settings no run can be made of.
    pub(crate) fn check(&self) -> Result<(), BenchError> {
        let at_least_one = [
            ("keys", self.keys),
            ("batch", self.batch),
            ("concurrency", self.concurrency),
            ("rounds", self.rounds as usize),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(BenchError::Settings(format!("{name} must be at least 1")));
        }
        let above_zero = [
            ("ops", self.ops == Some(0)),
            ("duration", self.duration == Some(Duration::ZERO)),
            ("sample_every", self.sample_every == Some(Duration::ZERO)),
        ];
        if let Some((name, _)) = above_zero.iter().find(|(_, zero)| *zero) {
            let flag = name.replace('_', "-");
            return Err(BenchError::Settings(format!(
                "{name} (--{flag}) must be above zero"
            )));
        }
        let lengths = [
            ("duration", self.duration),
            ("warmup", Some(self.warmup)),
            ("sample_every", self.sample_every),
        ];
        if let Some((name, Some(length))) = lengths
            .iter()
            .find(|(_, length)| length.is_some_and(|length| length > MAX_LENGTH))
        {
            return Err(BenchError::Settings(format!(
                "a {name} of {length:?} is longer than a run may take (at most {} days)",
                MAX_LENGTH.as_secs() / (24 * 60 * 60)
            )));
        }
        if self.keys > MAX_KEYS {
            return Err(BenchError::Settings(format!(
                "{} keys are more than a run may use (at most {MAX_KEYS}: the keys are \
                 made before the run, in this process's memory)",
                self.keys
            )));
        }
        if self.workload == Workload::GetMany && self.batch > self.keys {
            return Err(BenchError::Settings(format!(
                "a batch of {} keys is more than the {} keys of the run: each get_many \
                 would read some keys twice (use --keys of at least --batch)",
                self.batch, self.keys
            )));
        }
        if let (Some(ops), true) = (self.ops, self.raw_baseline) {
            if ops < u64::from(self.rounds) {
                return Err(BenchError::Settings(format!(
                    "{ops} operations cannot be split among {} rounds per side: give \
                     --ops at least --rounds",
                    self.rounds
                )));
            }
        }
        if self.pooled == Some(0) || self.connections == Some(0) {
            return Err(BenchError::Settings(
                "pooled and connections need at least one connection".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_that_cannot_be_made_as_asked_are_refused() {
        let mut settings = Settings::new("memory://");
        settings.keys = MAX_KEYS;
        assert!(settings.check().is_ok());
        settings.keys = 4_294_967_295;
        let refused = settings.check().unwrap_err().to_string();
        assert!(
            refused.contains("4294967295 keys") && refused.contains("10000000"),
            "{refused}"
        );

        let mut settings = Settings::new("memory://");
        settings.workload = Workload::GetMany;
        settings.keys = 5;
        settings.batch = 5;
        assert!(settings.check().is_ok());
        settings.batch = 6;
        let refused = settings.check().unwrap_err().to_string();
        assert!(refused.contains("batch of 6 keys"), "{refused}");
        settings.workload = Workload::Get;
        assert!(settings.check().is_ok(), "--batch only counts for get-many");

        let mut settings = Settings::new("memory://");
        settings.raw_baseline = true;
        settings.rounds = 4;
        settings.ops = Some(4);
        assert!(settings.check().is_ok());
        settings.ops = Some(3);
        let refused = settings.check().unwrap_err().to_string();
        assert!(
            refused.contains("3 operations cannot be split among 4 rounds"),
            "{refused}"
        );
        settings.raw_baseline = false;
        assert!(settings.check().is_ok(), "one round without a baseline");
    }

    #[test]
    fn zero_counts_are_refused() {
        assert!(Settings::new("memory://").check().is_ok());
        let mut settings = Settings::new("memory://");
        settings.keys = 0;
        assert!(settings.check().unwrap_err().to_string().contains("keys"));
        let mut settings = Settings::new("memory://");
        settings.sample_every = Some(Duration::ZERO);
        assert!(settings.check().is_err());
        let mut settings = Settings::new("memory://");
        settings.duration = Some(Duration::ZERO);
        assert!(settings
            .check()
            .unwrap_err()
            .to_string()
            .contains("duration"));
    }

    #[test]
    fn lengths_past_thirty_days_are_refused() {
        let mut settings = Settings::new("memory://");
        (settings.duration, settings.warmup, settings.sample_every) =
            (Some(MAX_LENGTH), MAX_LENGTH, Some(MAX_LENGTH));
        assert!(settings.check().is_ok());
        for length in [MAX_LENGTH + Duration::from_secs(1), Duration::MAX] {
            let mut duration = Settings::new("memory://");
            duration.duration = Some(length);
            let mut warmup = Settings::new("memory://");
            warmup.warmup = length;
            let mut sample_every = Settings::new("memory://");
            sample_every.sample_every = Some(length);
            for (name, settings) in [
                ("duration", duration),
                ("warmup", warmup),
                ("sample_every", sample_every),
            ] {
                let refused = settings.check().unwrap_err().to_string();
                assert!(
                    refused.contains(name) && refused.contains("at most 30 days"),
                    "{refused}"
                );
            }
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let settings = Settings::new("redis://user:hunter2@127.0.0.1:6379");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
