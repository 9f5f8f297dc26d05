//! The TCK catches defects: a reference backend passes every check, and each
//! deliberately broken variant of it fails the check named after its defect.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use cache_api::{async_trait, validate_key, validate_keys, Bytes, Cache, CacheError, Limits};
use cache_tck::{check_named, run_check, CHECKS};
use futures::future::join_all;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    TtlIgnored,
    FirstTtlKeptOnOverwrite,
    OverwriteDropsTtl,
    DeleteDoesNothing,
    MissReturnedAsEmptyValue,
    MissReturnedAsError,
    ValuesTruncated,
    TtlThreeTimesTooLong,
    ZeroTtlStoredForever,
    DeleteAlwaysTrue,
    EmptyValueReadAsMiss,
    EmptyKeyAccepted,
    SetWithoutTtlKeepsOldTtl,
    SubMillisecondTtlTruncatedToForever,
    LongTtlReadAsUnixTime,
    MaxTtlIsABackendError,
    ExpiredDeleteReportsTrue,
    EmptyValueOverwriteIgnored,
    ValuesDecodedAsUtf8,
    LargestValueRejected,
    OversizedValueAccepted,
    KeysTruncatedTo250Bytes,
    KeysCaseInsensitive,
    KeysCutAtCarriageReturn,
    GetManySkipsMisses,
    GetManyDeduplicates,
    DeleteManyCountsEveryKeyNamed,
    SetManyIgnoresTtl,
    ExistsIgnoresExpiry,
    ClearDoesNothing,
    ClearFailsOnEmptyCache,
    KeysOver250BytesRejected,
    KeysWithWhitespaceOrControlsRejected,
    EmptyBatchIsAnError,
}

use Defect::*;

/// Each defect, with the check that must catch it.
const DEFECTS: &[(Defect, &str)] = &[
    (TtlIgnored, "test_key_expires_after_ttl"),
    (
        FirstTtlKeptOnOverwrite,
        "test_set_overwrites_existing_value_and_ttl",
    ),
    (
        OverwriteDropsTtl,
        "test_set_overwrites_existing_value_and_ttl",
    ),
    (DeleteDoesNothing, "test_delete_removes_key_before_expiry"),
    (
        MissReturnedAsEmptyValue,
        "test_get_non_existent_key_is_a_cache_miss",
    ),
    (
        MissReturnedAsError,
        "test_get_non_existent_key_is_a_cache_miss",
    ),
    (ValuesTruncated, "test_set_and_get_value_without_ttl"),
    (TtlThreeTimesTooLong, "test_key_expires_after_ttl"),
    (
        ZeroTtlStoredForever,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
    ),
    (
        DeleteAlwaysTrue,
        "test_delete_reports_whether_a_live_entry_was_removed",
    ),
    (EmptyValueReadAsMiss, "test_empty_value_round_trips"),
    (
        EmptyKeyAccepted,
        "test_empty_key_is_invalid_on_every_operation",
    ),
    (
        SetWithoutTtlKeepsOldTtl,
        "test_set_without_ttl_clears_previous_ttl",
    ),
    (
        SubMillisecondTtlTruncatedToForever,
        "test_ttl_below_granularity_is_rounded_up",
    ),
    (
        LongTtlReadAsUnixTime,
        "test_long_ttls_are_readable_right_away",
    ),
    (
        MaxTtlIsABackendError,
        "test_unrepresentable_ttl_is_kept_or_rejected",
    ),
    (
        ExpiredDeleteReportsTrue,
        "test_delete_of_an_expired_entry_returns_false",
    ),
    (
        EmptyValueOverwriteIgnored,
        "test_empty_value_overwrites_non_empty_value",
    ),
    (ValuesDecodedAsUtf8, "test_binary_values_round_trip"),
    (LargestValueRejected, "test_largest_value_round_trips"),
    (
        OversizedValueAccepted,
        "test_value_over_limit_is_rejected_and_harms_nothing",
    ),
    (KeysTruncatedTo250Bytes, "test_distinct_keys_never_collide"),
    (KeysCaseInsensitive, "test_distinct_keys_never_collide"),
    (
        KeysCutAtCarriageReturn,
        "test_keys_cannot_inject_protocol_commands",
    ),
    (
        GetManySkipsMisses,
        "test_get_many_keeps_order_and_reports_misses",
    ),
    (
        GetManyDeduplicates,
        "test_get_many_answers_duplicate_keys_at_each_position",
    ),
    (
        DeleteManyCountsEveryKeyNamed,
        "test_delete_many_counts_removed_entries",
    ),
    (
        SetManyIgnoresTtl,
        "test_set_many_stores_every_entry_with_the_ttl",
    ),
    (ExistsIgnoresExpiry, "test_exists_agrees_with_get"),
    (ClearDoesNothing, "test_clear_removes_every_entry"),
    (
        ClearFailsOnEmptyCache,
        "test_clear_on_an_empty_cache_succeeds",
    ),
    (
        FirstTtlKeptOnOverwrite,
        "test_overwrite_with_a_longer_ttl_extends_the_entry",
    ),
    (KeysOver250BytesRejected, "test_long_keys_round_trip"),
    (
        KeysWithWhitespaceOrControlsRejected,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
    ),
    (
        EmptyBatchIsAnError,
        "test_bulk_operations_accept_empty_lists",
    ),
];

struct Stored {
    value: Bytes,
    deadline: Option<Instant>,
}

impl Stored {
    fn live(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| Instant::now() < deadline)
    }
}

/// A straightforward honest cache (when `defect` is `None`), made wrong in exactly one
/// way otherwise.
struct Reference {
    defect: Option<Defect>,
    entries: Mutex<HashMap<String, Stored>>,
}

impl Reference {
    fn new(defect: Option<Defect>) -> Self {
        Self {
            defect,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn has(&self, defect: Defect) -> bool {
        self.defect == Some(defect)
    }

    fn native_key(&self, key: &str) -> String {
        if self.has(KeysTruncatedTo250Bytes) && key.len() > 250 {
            let mut end = 250;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            return key[..end].to_owned();
        }
        if self.has(KeysCaseInsensitive) {
            return key.to_lowercase();
        }
        if self.has(KeysCutAtCarriageReturn) {
            return key.split('\r').next().unwrap_or_default().to_owned();
        }
        key.to_owned()
    }

    fn check_key(&self, key: &str) -> Result<(), CacheError> {
        let refused = (self.has(KeysOver250BytesRejected) && key.len() > 250)
            || (self.has(KeysWithWhitespaceOrControlsRejected)
                && key.chars().any(|c| c.is_whitespace() || c.is_control()));
        if refused {
            return Err(CacheError::InvalidKey {
                reason: "not a native key",
            });
        }
        if self.has(EmptyKeyAccepted) {
            return Ok(());
        }
        validate_key(key)
    }

    fn check_batch(&self, len: usize) -> Result<(), CacheError> {
        if self.has(EmptyBatchIsAnError) && len == 0 {
            return Err(CacheError::Backend {
                backend: "reference",
                source: "wrong number of arguments".into(),
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &Bytes) -> Result<(), CacheError> {
        let limit = self.limits().max_value_size;
        let too_large = if self.has(LargestValueRejected) {
            value.len() >= limit
        } else {
            value.len() > limit
        };
        if too_large && !self.has(OversizedValueAccepted) {
            return Err(CacheError::ValueTooLarge {
                size: value.len(),
                limit,
            });
        }
        Ok(())
    }

    fn deadline(&self, ttl: Duration) -> Result<Option<Instant>, CacheError> {
        let ttl = if self.has(TtlThreeTimesTooLong) {
            ttl * 3
        } else {
            ttl
        };
        if self.has(SubMillisecondTtlTruncatedToForever) && ttl.as_millis() == 0 {
            return Ok(None);
        }
        if self.has(LongTtlReadAsUnixTime) && ttl > Duration::from_secs(30 * 24 * 3600) {
            return Ok(Some(Instant::now()));
        }
        if self.has(MaxTtlIsABackendError) && Instant::now().checked_add(ttl).is_none() {
            return Err(CacheError::Backend {
                backend: "reference",
                source: "instant overflow".into(),
            });
        }
        // Round up to whole milliseconds, the declared granularity.
        let ttl = Limits::default().round_up_ttl(ttl);
        Ok(Some(
            Instant::now().checked_add(ttl).unwrap_or_else(far_future),
        ))
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[async_trait]
impl Cache for Reference {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.check_key(key)?;
        let entries = self.entries.lock().unwrap();
        let value = entries
            .get(&self.native_key(key))
            .filter(|stored| stored.live())
            .map(|stored| stored.value.clone());
        match value {
            None if self.has(MissReturnedAsEmptyValue) => Ok(Some(Bytes::new())),
            None if self.has(MissReturnedAsError) => Err(CacheError::Backend {
                backend: "reference",
                source: "key not found".into(),
            }),
            Some(value) if value.is_empty() && self.has(EmptyValueReadAsMiss) => Ok(None),
            Some(value) if self.has(ValuesTruncated) => {
                Ok(Some(value.slice(..value.len().min(16))))
            }
            Some(value) if self.has(ValuesDecodedAsUtf8) => Ok(Some(Bytes::from(
                String::from_utf8_lossy(&value).into_owned(),
            ))),
            other => Ok(other),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.check_key(key)?;
        self.check_value(&value)?;
        let native = self.native_key(key);
        let mut entries = self.entries.lock().unwrap();
        if value.is_empty() && self.has(EmptyValueOverwriteIgnored) && entries.contains_key(&native)
        {
            return Ok(());
        }
        let previous = entries
            .get(&native)
            .filter(|stored| stored.live())
            .map(|s| s.deadline);
        let deadline = match ttl {
            Some(ttl) if ttl.is_zero() && !self.has(ZeroTtlStoredForever) => {
                entries.remove(&native);
                return Ok(());
            }
            Some(ttl) if ttl.is_zero() => None,
            _ if self.has(TtlIgnored) => None,
            Some(_) if self.has(FirstTtlKeptOnOverwrite) && previous.is_some() => {
                previous.flatten()
            }
            Some(_) if self.has(OverwriteDropsTtl) && previous.is_some() => None,
            None if self.has(SetWithoutTtlKeepsOldTtl) && previous.is_some() => previous.flatten(),
            Some(ttl) => self.deadline(ttl)?,
            None => None,
        };
        entries.insert(native, Stored { value, deadline });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.check_key(key)?;
        if self.has(DeleteDoesNothing) {
            return Ok(true);
        }
        let removed = self.entries.lock().unwrap().remove(&self.native_key(key));
        Ok(match removed {
            _ if self.has(DeleteAlwaysTrue) => true,
            Some(_) if self.has(ExpiredDeleteReportsTrue) => true,
            Some(stored) => stored.live(),
            None => false,
        })
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.check_batch(keys.len())?;
        if !self.has(EmptyKeyAccepted) {
            validate_keys(keys.iter().copied())?;
        }
        let mut values = Vec::new();
        let mut seen = Vec::new();
        for key in keys {
            if self.has(GetManyDeduplicates) && seen.contains(key) {
                continue;
            }
            seen.push(*key);
            let value = self.get(key).await?;
            if value.is_some() || !self.has(GetManySkipsMisses) {
                values.push(value);
            }
        }
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.check_batch(entries.len())?;
        if !self.has(EmptyKeyAccepted) {
            validate_keys(entries.iter().map(|(key, _)| *key))?;
        }
        for (_, value) in entries {
            self.check_value(value)?;
        }
        let ttl = if self.has(SetManyIgnoresTtl) {
            None
        } else {
            ttl
        };
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        self.check_batch(keys.len())?;
        if !self.has(EmptyKeyAccepted) {
            validate_keys(keys.iter().copied())?;
        }
        let mut removed = 0;
        for key in keys {
            let was_there = self.delete(key).await?;
            if was_there || self.has(DeleteManyCountsEveryKeyNamed) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.check_key(key)?;
        let entries = self.entries.lock().unwrap();
        let stored = entries.get(&self.native_key(key));
        Ok(stored.is_some_and(|stored| stored.live() || self.has(ExistsIgnoresExpiry)))
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let mut entries = self.entries.lock().unwrap();
        if self.has(ClearFailsOnEmptyCache) && entries.is_empty() {
            return Err(CacheError::Backend {
                backend: "reference",
                source: "nothing to clear".into(),
            });
        }
        if !self.has(ClearDoesNothing) {
            entries.clear();
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        // A small limit keeps the largest-value checks quick.
        Limits::new(Duration::from_millis(1), 64 << 10)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The honest reference backend passes every check: the checks ask nothing the
/// contract does not.
#[test]
fn honest_reference_passes_every_check() {
    let outcomes = runtime().block_on(join_all(CHECKS.iter().map(|check| async move {
        let cache = Reference::new(None);
        run_check(check, &cache).await
    })));
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|f| format!("{}: {f}", o.check.name))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "the honest backend failed:\n{}",
        failed.join("\n")
    );
    assert_eq!(outcomes.len(), CHECKS.len());
}

/// Every broken backend fails the check named after its defect, with a message.
#[test]
fn each_defect_fails_the_check_named_after_it() {
    let outcomes = runtime().block_on(join_all(DEFECTS.iter().map(|&(defect, name)| async move {
        let check = check_named(name).unwrap_or_else(|| panic!("no check named {name}"));
        let cache = Reference::new(Some(defect));
        (defect, run_check(check, &cache).await)
    })));
    let mut missed = Vec::new();
    for (defect, outcome) in &outcomes {
        match &outcome.result {
            Ok(()) => missed.push(format!("{defect:?} passed {}", outcome.check.name)),
            Err(failure) => assert!(
                !failure.step.is_empty() && !failure.expected.is_empty(),
                "{defect:?}: the failure should say what was done and expected: {failure:?}"
            ),
        }
    }
    assert!(
        missed.is_empty(),
        "defects not caught:\n{}",
        missed.join("\n")
    );
}

/// Every check catches at least one of the defects above, so none of them is a check
/// that cannot fail (the concurrency check is exercised by the backends' own suites).
#[test]
fn every_check_is_exercised_by_some_defect() {
    let untested: Vec<&str> = CHECKS
        .iter()
        .map(|check| check.name)
        .filter(|name| *name != "test_concurrent_use_from_many_tasks")
        .filter(|name| !DEFECTS.iter().any(|(_, caught_by)| caught_by == name))
        .collect();
    assert!(
        untested.is_empty(),
        "checks no defect exercises: {untested:?}"
    );
}
