//! `cachectl check`: every check of the contract against one backend URL.

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cache_api::Cache;
use cache_tck::{run_check, run_pair_check, Check, Group, KeyRecorder, Outcome, CHECKS, PAIR};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::output::printable;
use crate::report::{backend_name, Header};
use crate::{options, report, say, warn, Connection, EXIT_FAILED, EXIT_UNUSABLE};
use cache_bench::cleanup::{
    clear_namespace, delete_keys, in_nested_prefix, left_behind, nested_prefix, patience_from_now,
};

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// Backend URL: memory:// (the default), redis://host:port, redis+cluster://h1:p1,h2:p2, memcache://host:port[,host:port...].
    #[arg(default_value = "memory://")]
    url: String,
    /// Which checks: core (the five of the original contract), extended, or all.
    #[arg(long, value_enum, default_value_t = Which::All)]
    group: Which,
    /// Only the checks whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// How many checks run at once (most of a check's time is spent waiting for TTLs).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    Core,
    Extended,
    All,
}

#[derive(Serialize)]
struct CheckReport<'a> {
    name: &'static str,
    group: String,
    passed: bool,
    elapsed_ms: u128,
    /// Why the check did not apply (an operation the backend does not declare); such a
    /// check is neither passed nor failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_applicable: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cleanup_error: Option<&'a str>,
    /// The right the server refused (a Redis ACL without it): the check could not be
    /// judged, and is counted as skipped rather than failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    needs_rights: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    header: Header,
    url: String,
    backend: &'static str,
    limits: DeclaredLimits,
    checks: Vec<CheckReport<'a>>,
    passed: usize,
    failed: usize,
    not_applicable: usize,
    need_rights: usize,
}

/// What the backend declares about itself ([`cache_api::Limits`]), which the checks read.
#[derive(Serialize)]
struct DeclaredLimits {
    ttl_granularity_ms: f64,
    max_value_size: usize,
    /// `None` (JSON `null`): every key is stored as-is.
    max_native_key_len: Option<usize>,
    /// The optional operations the backend declares it keeps: their checks run only then.
    clear: bool,
    atomic_add: bool,
    native_bulk: bool,
}

impl From<cache_api::Limits> for DeclaredLimits {
    fn from(limits: cache_api::Limits) -> Self {
        Self {
            ttl_granularity_ms: limits.ttl_granularity.as_secs_f64() * 1000.0,
            max_value_size: limits.max_value_size,
            max_native_key_len: limits.max_native_key_len,
            clear: limits.clear,
            atomic_add: limits.atomic_add,
            native_bulk: limits.native_bulk,
        }
    }
}

impl DeclaredLimits {
    /// One line for the text report.
    fn describe(&self) -> String {
        let keys = self.max_native_key_len.map_or_else(
            || "every key stored as-is".to_owned(),
            |len| format!("keys over {len} bytes encoded"),
        );
        let granularity = Duration::from_secs_f64(self.ttl_granularity_ms / 1000.0);
        let declared: Vec<&str> = [
            (self.clear, "clear"),
            (self.atomic_add, "atomic add"),
            (self.native_bulk, "native bulk"),
        ]
        .into_iter()
        .filter_map(|(declared, name)| declared.then_some(name))
        .collect();
        let declared = if declared.is_empty() {
            "no optional operation".to_owned()
        } else {
            declared.join(", ")
        };
        format!(
            "ttl granularity {}, largest value {} bytes, {keys}; declares {declared}",
            humantime::format_duration(granularity),
            self.max_value_size
        )
    }
}

/// How a check ended, clean-up included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Passed,
    Failed,
    /// About an operation the backend does not declare: neither passed nor failed.
    NotApplicable,
    /// The server refused a command to this account: neither passed nor failed.
    NeedsRights,
}

impl Ran {
    /// Whether the check, or its clean-up, failed on a timeout of the backend.
    fn timed_out(&self) -> bool {
        let failure = self.outcome.result.as_ref().err().map(ToString::to_string);
        failure
            .iter()
            .chain(&self.cleanup_error)
            .any(|text| text.contains(" timed out after "))
    }

    fn status(&self) -> Status {
        if self.needs_rights().is_some() {
            Status::NeedsRights
        } else if self.cleanup_error.is_some() || self.outcome.result.is_err() {
            Status::Failed
        } else if self.outcome.not_applicable().is_some() {
            Status::NotApplicable
        } else {
            Status::Passed
        }
    }
}

/// One check's outcome, plus whether removing its keys afterwards failed.
struct Ran {
    outcome: Outcome,
    cleanup_error: Option<String>,
}

impl Ran {
    /// What right the check or its clean-up lacked, when a refused permission is what
    /// went wrong (and nothing else did).
    fn needs_rights(&self) -> Option<String> {
        let failure = self.outcome.result.as_ref().err().map(ToString::to_string);
        let refusals: Vec<String> = failure
            .iter()
            .chain(&self.cleanup_error)
            .map(|text| missing_right(text))
            .collect::<Option<_>>()?;
        let mut unique: Vec<String> = Vec::new();
        for refusal in refusals {
            if !unique.contains(&refusal) {
                unique.push(refusal);
            }
        }
        // An empty list: nothing went wrong.
        (!unique.is_empty()).then(|| unique.join("; "))
    }
}

/// What a permission refusal in `text` says is missing (`needs +flushdb`), or `None`
/// when `text` is not a refused permission.
fn missing_right(text: &str) -> Option<String> {
    if !text.contains("permission denied") {
        return None;
    }
    // Redis: "this user has no permissions to run the 'scan' command".
    if let Some(command) = text
        .split("run the '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        return Some(format!("needs +{command}"));
    }
    // "no permissions to access one of the keys used as arguments".
    if text.contains("access a key") || text.contains("of the keys") {
        return Some("needs access to the keys under the prefix (~prefix*)".to_owned());
    }
    Some("needs more rights".to_owned())
}

pub(crate) async fn run(args: CheckArgs) -> ExitCode {
    let selected = select(&args);
    if selected.is_empty() {
        warn("cachectl: no check matches");
        return ExitCode::from(EXIT_FAILED);
    }

    let header = Header::now("check");
    let run_id = run_id();
    // Fail fast, with one clear message, when the backend cannot be used at all, or
    // not in the namespaces the checks run in (the longest of them: the second cache
    // of the last check's pair).
    let longest = own_namespace(&run_id, selected.len()) + "b:";
    let options_in_longest =
        options(&args.connection).key_prefix(nested_prefix(&args.url, &longest));
    let limits = match cache_url::connect_with(&args.url, &options_in_longest).await {
        Ok(cache) => DeclaredLimits::from(cache.limits()),
        Err(err) => {
            // Whatever the error, a timeout included: a backend that cannot be
            // connected to cannot be used at all.
            let _ = report(&in_nested_prefix(err, &args.url, &longest));
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let backend = backend_name(&args.url);
    if !args.json {
        say(&format!(
            "cachectl check {} ({backend}): {}",
            printable(&cache_url::redact(&args.url)),
            limits.describe()
        ));
    }

    let results = run_all(&args, selected, &run_id).await;
    let count = |status: Status| results.iter().filter(|ran| ran.status() == status).count();
    let (passed, failed, need_rights) = (
        count(Status::Passed),
        count(Status::Failed),
        count(Status::NeedsRights),
    );
    let not_applicable = count(Status::NotApplicable);
    if args.json {
        let report = Report {
            header,
            url: cache_url::redact(&args.url),
            backend,
            limits,
            checks: results.iter().map(to_report).collect(),
            passed,
            failed,
            not_applicable,
            need_rights,
        };
        say(&serde_json::to_string_pretty(&report).expect("the report is plain data"));
    } else if not_applicable + need_rights == 0 {
        say(&format!("{passed} passed, {failed} failed"));
    } else if need_rights == 0 {
        // "skipped" in the summary line test runners read; each line above says why.
        say(&format!(
            "{passed} passed, {failed} failed, {not_applicable} skipped"
        ));
    } else {
        say(&format!(
            "{passed} passed, {failed} failed, {} skipped ({need_rights} for want of rights)",
            not_applicable + need_rights
        ));
    }
    let timed_out = results
        .iter()
        .filter(|ran| ran.status() == Status::Failed && ran.timed_out())
        .count();
    if timed_out > 0 {
        // A timeout says as much about the machine and the link as about the backend.
        warn(&format!(
            "cachectl: {timed_out} of the failed checks met a timeout of the backend: on a \
             loaded machine, a slow link or with the large values some checks write, give it \
             more time (--timeout 5s, or ?timeout=5s in the URL) before taking it for a defect"
        ));
    }
    // A check that could not run for want of rights proves nothing: not a success.
    if failed == 0 && need_rights == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// The checks the group and filter of the command line select, in list order.
fn select(args: &CheckArgs) -> Vec<&'static Check> {
    CHECKS
        .iter()
        .chain([&PAIR])
        .filter(|check| match args.group {
            Which::Core => check.group == Group::Core,
            Which::Extended => check.group == Group::Extended,
            Which::All => true,
        })
        .filter(|check| {
            args.filter
                .as_deref()
                .is_none_or(|text| check.name.contains(text))
        })
        .collect()
}

/// Runs `selected`, `--jobs` at a time, each printed as it ends (unless `--json`), and
/// returns the results in list order.
async fn run_all(args: &CheckArgs, selected: Vec<&'static Check>, run_id: &str) -> Vec<Ran> {
    let url = &args.url;
    let connection = &args.connection;
    let json = args.json;
    let mut results: Vec<Ran> = stream::iter(selected.into_iter().enumerate())
        .map(|(index, check)| async move {
            // Each check gets a fresh cache under a namespace of its own, and removes
            // exactly the keys it wrote, so a live server keeps everything else.
            let prefix = nested_prefix(url, &own_namespace(run_id, index));
            let ran = run_one(url, &options(connection), &prefix, check).await;
            if !json {
                print_line(&ran);
            }
            ran
        })
        .buffer_unordered(usize::from(args.jobs))
        .collect()
        .await;
    // The check of two caches, which is not in the list, last.
    results.sort_by_key(|ran| {
        CHECKS
            .iter()
            .position(|c| c.name == ran.outcome.check.name)
            .unwrap_or(CHECKS.len())
    });
    results
}

async fn run_one(
    url: &str,
    options: &cache_url::Options,
    prefix: &str,
    check: &'static Check,
) -> Ran {
    if check.name == PAIR.name {
        return run_pair(url, options, prefix).await;
    }
    let cache = match connect(url, options, prefix).await {
        Ok(cache) => cache,
        Err(failure) => return not_connected(check, failure),
    };
    let outcome = run_check(check, &cache).await;
    Ran {
        outcome,
        cleanup_error: clean_up(&cache, prefix).await,
    }
}

/// The check of two caches, on two namespaces side by side under `prefix`.
async fn run_pair(url: &str, options: &cache_url::Options, prefix: &str) -> Ran {
    let (first, second) = (format!("{prefix}a:"), format!("{prefix}b:"));
    let (cache, other) = match (
        connect(url, options, &first).await,
        connect(url, options, &second).await,
    ) {
        (Ok(cache), Ok(other)) => (cache, other),
        (Err(failure), _) | (_, Err(failure)) => return not_connected(&PAIR, failure),
    };
    let outcome = run_pair_check(&cache, &other).await;
    let cleanup_errors = [
        clean_up(&cache, &first).await,
        clean_up(&other, &second).await,
    ];
    let cleanup_errors: Vec<String> = cleanup_errors.into_iter().flatten().collect();
    Ran {
        outcome,
        cleanup_error: (!cleanup_errors.is_empty()).then(|| cleanup_errors.join("; ")),
    }
}

/// A cache of `url` under `prefix`, recording the keys written to it.
async fn connect(
    url: &str,
    options: &cache_url::Options,
    prefix: &str,
) -> Result<KeyRecorder<Arc<dyn Cache>>, cache_tck::Failure> {
    let options = options.clone().key_prefix(prefix);
    cache_url::connect_with(url, &options)
        .await
        .map(KeyRecorder::new)
        .map_err(|err| cache_tck::Failure::new("connect", "a cache", format!("Err({err})")))
}

/// A check that failed for want of a cache to run on.
fn not_connected(check: &'static Check, failure: cache_tck::Failure) -> Ran {
    Ran {
        outcome: Outcome {
            check,
            elapsed: Duration::ZERO,
            result: Err(failure),
        },
        cleanup_error: None,
    }
}

/// Whether the check passed or not: removes the keys it wrote, then whatever is left in
/// its namespace (a generation counter, entries a `clear` made unreachable); what could
/// not be removed, said.
async fn clean_up(cache: &KeyRecorder<Arc<dyn Cache>>, prefix: &str) -> Option<String> {
    let deadline = patience_from_now();
    let removed = async {
        delete_keys(cache.inner().as_ref(), &cache.written_keys(), deadline)
            .await
            .map_err(|(_, err)| err)?;
        clear_namespace(cache.inner().as_ref(), deadline).await
    };
    removed.await.err().map(|err| left_behind(&err, prefix))
}

fn print_line(ran: &Ran) {
    let Ran {
        outcome,
        cleanup_error,
    } = ran;
    let status = match ran.status() {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::NotApplicable | Status::NeedsRights => "N/A ",
    };
    let mut line = format!(
        "{status}  {:<70} {:>7.2}s",
        outcome.check.name,
        outcome.elapsed.as_secs_f64()
    );
    if let Some(needs) = ran.needs_rights() {
        line.push_str(&format!("  {needs}, the account was refused:"));
    }
    if let Err(failure) = &outcome.result {
        line.push_str(&format!("  {failure}"));
    }
    if let Some(reason) = outcome.not_applicable() {
        line.push_str(&format!("  not applicable: {reason}"));
    }
    if let Some(error) = cleanup_error {
        line.push_str(&format!("  {error}"));
    }
    say(&line);
}

fn to_report(ran: &Ran) -> CheckReport<'_> {
    CheckReport {
        name: ran.outcome.check.name,
        group: ran.outcome.check.group.to_string(),
        passed: ran.status() == Status::Passed,
        elapsed_ms: ran.outcome.elapsed.as_millis(),
        not_applicable: ran.outcome.not_applicable(),
        failure: ran.outcome.result.as_ref().err().map(ToString::to_string),
        cleanup_error: ran.cleanup_error.as_deref(),
        needs_rights: ran.needs_rights(),
    }
}

/// The namespace of the check at `index` of a run, under the URL's own prefix.
fn own_namespace(run_id: &str, index: usize) -> String {
    format!("cachectl-check:{run_id}:{index}:")
}

/// A name for this run that no other run shares: process id and start time.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_tck::{Failure, Verdict};

    fn ran(result: Result<Verdict, Failure>, cleanup_error: Option<&str>) -> Ran {
        Ran {
            outcome: Outcome {
                check: &CHECKS[0],
                elapsed: Duration::ZERO,
                result,
            },
            cleanup_error: cleanup_error.map(str::to_owned),
        }
    }

    #[test]
    fn a_check_that_does_not_apply_is_neither_passed_nor_failed() {
        let not_applicable = ran(Ok(Verdict::NotApplicable("no clear declared")), None);
        assert_eq!(not_applicable.status(), Status::NotApplicable);
        let report = to_report(&not_applicable);
        assert!(!report.passed);
        assert_eq!(report.not_applicable, Some("no clear declared"));
        assert_eq!(ran(Ok(Verdict::Passed), None).status(), Status::Passed);
        let failure = Failure::new("get", "Some", "None");
        assert_eq!(ran(Err(failure), None).status(), Status::Failed);
        assert_eq!(
            ran(Ok(Verdict::Passed), Some("clean-up failed")).status(),
            Status::Failed
        );
        assert_eq!(
            ran(Ok(Verdict::NotApplicable("x")), Some("clean-up failed")).status(),
            Status::Failed
        );
    }

    #[test]
    fn a_failure_on_a_backend_timeout_is_told_from_others() {
        let timeout = cache_api::CacheError::Timeout {
            backend: "redis",
            operation: "get",
            after: Duration::from_secs(1),
            phase: "response",
        };
        let failure = Failure::new("get", "Ok", format!("Err({timeout})"));
        assert!(ran(Err(failure), None).timed_out());
        let cleanup = format!("clean-up failed: {timeout}");
        assert!(ran(Ok(Verdict::Passed), Some(&cleanup)).timed_out());
        let other = Failure::new("get", "Some(\"v\")", "None");
        assert!(!ran(Err(other), None).timed_out());
        assert!(!ran(Ok(Verdict::Passed), None).timed_out());
    }

    #[test]
    fn a_refused_right_is_reported_as_the_right_needed_not_as_a_failure() {
        let refused = "redis permission denied: NoPerm: this user has no permissions to run the 'flushdb' command";
        let failure = Failure::new("clear", "Ok(())", format!("Err({refused})"));
        let check = ran(Err(failure), None);
        assert_eq!(check.status(), Status::NeedsRights);
        assert_eq!(check.needs_rights().as_deref(), Some("needs +flushdb"));
        assert_eq!(
            to_report(&check).needs_rights.as_deref(),
            Some("needs +flushdb")
        );
        let cleanup =
            format!("clean-up failed: {refused}; keys may be left under the prefix \"p:\"");
        let check = ran(Ok(Verdict::Passed), Some(&cleanup));
        assert_eq!(check.status(), Status::NeedsRights);
        let key = "redis permission denied: NoPerm: No permissions to access a key";
        assert!(missing_right(key).unwrap().contains("~prefix"));
        // Another failure beside the refusal is still a failure.
        let wrong = Failure::new("get", "Some", "None");
        assert_eq!(ran(Err(wrong), Some(&cleanup)).status(), Status::Failed);
        assert_eq!(missing_right("redis unreachable: refused"), None);
    }
}
