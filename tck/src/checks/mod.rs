//! The checks: one `pub async fn` per behaviour of the contract, its doc line the
//! expected result, grouped in files by topic and all re-exported here.
//!
//! Every check receives a fresh, clean cache and may write any key into it. Timing is
//! handled so that a loaded two-core machine does not flake a check:
//! - a check that waits for an entry to expire sleeps past its TTL plus the backend's
//!   declared [granularity](cache_api::Limits::ttl_granularity) plus a margin; sleeping
//!   longer than asked only makes the entry more certainly gone;
//! - a check that asserts an entry is still there measures the time from before its
//!   `set` to after its `get`, and counts a miss as a failure only when that time is
//!   well inside the TTL (see `expect_alive`); a read that came too late proves nothing
//!   and the check tries again with fresh keys.
//!
//! Every value a check writes carries a TTL of at most an hour ([`KEEP_TTL`]), so that a
//! check failing part-way on a live server leaves nothing behind for long. The
//! exceptions write small values: the checks about entries without TTL, and those about
//! TTLs longer than an hour (31 days, 10 years, `Duration::MAX`), which delete their keys
//! once they have read them.

mod add;
mod basics;
mod bulk;
mod clear;
mod concurrency;
mod keys;
mod ttl;
mod values;

use std::time::{Duration, Instant};

use cache_api::{Bytes, Cache, CacheError, Limits};

pub use add::*;
pub use basics::*;
pub use bulk::*;
pub use clear::*;
pub use concurrency::*;
pub use keys::*;
pub use ttl::*;
pub use values::*;

use crate::failure::{describe, describe_bytes, describe_key, CheckResult, Failure, OrFail};

/// The sources of the checks, where [`Check::expects`](crate::Check::expects) reads
/// each check's doc line.
pub(crate) const SOURCES: &[&str] = &[
    include_str!("basics.rs"),
    include_str!("ttl.rs"),
    include_str!("values.rs"),
    include_str!("keys.rs"),
    include_str!("bulk.rs"),
    include_str!("add.rs"),
    include_str!("clear.rs"),
    include_str!("concurrency.rs"),
];

/// A TTL that outlasts any check, for entries read back within the same check.
const LONG_TTL: Duration = Duration::from_secs(60);
/// The TTL of entries that must stay for the whole check: an hour at most, so that a
/// check failing part-way on a live server leaves nothing behind for long.
pub const KEEP_TTL: Duration = Duration::from_secs(3600);
/// [`KEEP_TTL`] as the argument of `set`.
const KEEP: Option<Duration> = Some(KEEP_TTL);
/// The longest TTL a check waits into (the presence check reads its entry 1.5 s into
/// it); an entry without TTL must outlive it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(6);
/// Slack added to every wait for expiry, on top of the TTL and the granularity.
const EXPIRY_MARGIN: Duration = Duration::from_millis(100);
/// How many times a timing-sensitive step is tried with fresh keys before a machine too
/// loaded to tell counts as a failure.
const ATTEMPTS: usize = 3;
/// Entries in the larger batches of the checks: more than a backend that sends a batch
/// in parts of 8 or 16 would put in one, where it may treat the later parts otherwise.
const MANY: usize = 20;

fn ttl_text(ttl: Option<Duration>) -> String {
    match ttl {
        None => "None".to_owned(),
        Some(ttl) => format!("{ttl:?}"),
    }
}

/// Sleeps until an entry written with `ttl` has certainly expired: the TTL, plus the
/// backend's granularity, plus a margin. With a 1 ms granularity and a 1 s TTL this is
/// the seed guide's 1.1 s (and a millisecond). Returns how long it slept, for failure
/// messages.
async fn sleep_past(ttl: Duration, limits: &Limits) -> Duration {
    let wait = limits.round_up_ttl(ttl) + limits.ttl_granularity + EXPIRY_MARGIN;
    tokio::time::sleep(wait).await;
    wait
}

/// The shortest TTL worth waiting for: 300 ms, or the granularity when it is coarser.
fn short_ttl(limits: &Limits) -> Duration {
    limits
        .round_up_ttl(Duration::from_millis(300))
        .max(limits.ttl_granularity)
}

/// How long after the start of its `set` an entry written with `ttl` is certainly still
/// there: the TTL rounded up, less one granularity (memcached's clock ticks once a
/// second, so an entry may go up to that much early), less a margin. Zero when the TTL
/// is too short to promise anything.
fn certainly_alive_for(ttl: Duration, limits: &Limits) -> Duration {
    limits
        .round_up_ttl(ttl)
        .saturating_sub(limits.ttl_granularity + EXPIRY_MARGIN)
}

/// What a read of an entry that should still be alive showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alive {
    /// The entry was there, with its value.
    Yes,
    /// A miss, but the read ended too late to prove anything: try again.
    TooLate,
}

/// Reads `key`, written with `ttl` by a `set` that started at `written`, expecting
/// `value`. A wrong value always fails; a miss fails only when the read ended while the
/// entry was certainly alive ([`certainly_alive_for`]), and is [`Alive::TooLate`]
/// otherwise.
async fn expect_alive(
    cache: &dyn Cache,
    key: &str,
    value: &[u8],
    ttl: Duration,
    written: Instant,
    context: &str,
) -> Result<Alive, Failure> {
    let limits = timed_limits(cache)?;
    let actual = get(cache, key, context).await?;
    let elapsed = written.elapsed();
    if actual.as_deref() == Some(value) {
        return Ok(Alive::Yes);
    }
    if actual.is_none() && elapsed >= certainly_alive_for(ttl, &limits) {
        return Ok(Alive::TooLate);
    }
    Err(Failure::new(
        format!(
            "get({}) {context}, {elapsed:.3?} after set with a {ttl:?} ttl (granularity {:?})",
            describe_key(key),
            limits.ttl_granularity
        ),
        describe(&Some(Bytes::copy_from_slice(value))),
        describe(&actual),
    ))
}

/// Fails unless `result` is `ValueTooLarge` naming a value one byte over `limit` and
/// `limit` itself: the value's own size, not a batch's, and the declared limit.
fn expect_too_large<T: std::fmt::Debug>(
    result: &Result<T, CacheError>,
    limit: usize,
    step: impl FnOnce() -> String,
) -> CheckResult {
    expect_too_large_of(result, limit + 1, limit, step)
}

/// Fails unless `result` is `ValueTooLarge` naming `size` and `limit`.
fn expect_too_large_of<T: std::fmt::Debug>(
    result: &Result<T, CacheError>,
    size: usize,
    limit: usize,
    step: impl FnOnce() -> String,
) -> CheckResult {
    match result {
        Err(CacheError::ValueTooLarge {
            size: named_size,
            limit: named,
        }) if *named_size == size && *named == limit => Ok(()),
        other => Err(Failure::new(
            step(),
            format!("Err(ValueTooLarge {{ size: {size}, limit: {limit} }})"),
            format!("{other:?}"),
        )),
    }
}

/// The failure of a timing-sensitive step whose every attempt came too late.
fn too_loaded(step: &str, wanted: Duration) -> Failure {
    Failure::new(
        format!("{step}, {ATTEMPTS} attempts with fresh keys"),
        format!("one attempt to read within {wanted:?} of its set"),
        "every read came later: the machine is too loaded to tell",
    )
}

async fn set(cache: &dyn Cache, key: &str, value: &[u8], ttl: Option<Duration>) -> CheckResult {
    cache
        .set(key, Bytes::copy_from_slice(value), ttl)
        .await
        .or_fail(|| {
            format!(
                "set({}, {}, {})",
                describe_key(key),
                describe_bytes(value),
                ttl_text(ttl)
            )
        })
}

async fn get(cache: &dyn Cache, key: &str, context: &str) -> Result<Option<Bytes>, Failure> {
    cache
        .get(key)
        .await
        .or_fail(|| format!("get({}) {context}", describe_key(key)))
}

/// Reads `key` and fails unless the answer is `expected`.
async fn expect(
    cache: &dyn Cache,
    key: &str,
    expected: Option<&[u8]>,
    context: &str,
) -> CheckResult {
    let actual = get(cache, key, context).await?;
    if actual.as_deref() == expected {
        Ok(())
    } else {
        Err(Failure::new(
            format!("get({}) {context}", describe_key(key)),
            describe(&expected.map(Bytes::copy_from_slice)),
            describe(&actual),
        ))
    }
}

/// Reads `keys` with one `get_many` and fails unless every answer is the expected one.
async fn expect_many(
    cache: &dyn Cache,
    keys: &[&str],
    expected: &[Option<&[u8]>],
    context: &str,
) -> CheckResult {
    let step = || {
        let shown: Vec<String> = keys.iter().map(|key| describe_key(key)).collect();
        format!("get_many([{}]) {context}", shown.join(", "))
    };
    let got = cache.get_many(keys).await.or_fail(step)?;
    if got.len() != keys.len() {
        return Err(Failure::new(
            step(),
            format!("{} answers", keys.len()),
            format!("{} answers", got.len()),
        ));
    }
    for (i, ((key, want), answer)) in keys.iter().zip(expected).zip(&got).enumerate() {
        if answer.as_deref() != *want {
            return Err(Failure::new(
                format!("{}, answer {i} ({})", step(), describe_key(key)),
                describe(&want.map(Bytes::copy_from_slice)),
                describe(answer),
            ));
        }
    }
    Ok(())
}

async fn delete(cache: &dyn Cache, key: &str, expected: bool, context: &str) -> CheckResult {
    let removed = cache
        .delete(key)
        .await
        .or_fail(|| format!("delete({}) {context}", describe_key(key)))?;
    if removed == expected {
        Ok(())
    } else {
        Err(Failure::new(
            format!("delete({}) {context}", describe_key(key)),
            format!("Ok({expected})"),
            format!("Ok({removed})"),
        ))
    }
}

/// Adds `value` under `key`, which is absent, and fails unless the add stored it.
async fn add_absent(
    cache: &dyn Cache,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) -> CheckResult {
    let step = || {
        format!(
            "add({}, {}, {}) of an absent key",
            describe_key(key),
            describe_bytes(value),
            ttl_text(ttl)
        )
    };
    let added = cache
        .add(key, Bytes::copy_from_slice(value), ttl)
        .await
        .or_fail(step)?;
    if added {
        Ok(())
    } else {
        Err(Failure::new(step(), "Ok(true)", "Ok(false)"))
    }
}

async fn exists(cache: &dyn Cache, key: &str, want: bool, context: &str) -> CheckResult {
    let got = cache
        .exists(key)
        .await
        .or_fail(|| format!("exists({}) {context}", describe_key(key)))?;
    if got == want {
        Ok(())
    } else {
        Err(Failure::new(
            format!("exists({}) {context}", describe_key(key)),
            format!("Ok({want})"),
            format!("Ok({got})"),
        ))
    }
}

/// Removes keys a check wrote with a TTL over an hour, once it has read them. Clean-up
/// only, not an assertion: its errors are left to the key recorder of `cachectl check`.
async fn remove(cache: &dyn Cache, keys: &[&str]) {
    let _ = cache.delete_many(keys).await;
}

fn expect_invalid_key<T: std::fmt::Debug>(
    result: Result<T, CacheError>,
    step: &str,
) -> CheckResult {
    match result {
        Err(CacheError::InvalidKey { .. }) => Ok(()),
        other => Err(Failure::new(step, "Err(InvalidKey)", format!("{other:?}"))),
    }
}

/// Sets every key to a value of its own, `"{label} {i}"` for the key at index `i`, with
/// [`KEEP_TTL`], then reads each back (`context` naming that read in a failure) and,
/// when `delete_context` is given, deletes it, expecting `true`. Every key is written
/// before any is read, so a key that lands on another's entry shows.
async fn round_trip_each<K: AsRef<str>>(
    cache: &dyn Cache,
    keys: &[K],
    label: &str,
    context: &str,
    delete_context: Option<&str>,
) -> CheckResult {
    for (i, key) in keys.iter().enumerate() {
        set(cache, key.as_ref(), format!("{label} {i}").as_bytes(), KEEP).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let key = key.as_ref();
        let value = format!("{label} {i}");
        expect(cache, key, Some(value.as_bytes()), context).await?;
        if let Some(delete_context) = delete_context {
            delete(cache, key, true, delete_context).await?;
        }
    }
    Ok(())
}

/// Puts `keys` through every operation: writes half of them by `set` and the rest by
/// one `set_many` (values `"{label} {i}"`, [`KEEP_TTL`]), reads each back by `get` and
/// all by one `get_many`, asks `exists` of each, removes the first half by `delete` and
/// the rest by one `delete_many` (each counted), reads them all back as misses and asks
/// `exists` again; then, where `add` is declared, adds each again and reads it back.
/// A backend that encodes keys on one path and not another, or drops some keys from a
/// batch, fails here.
async fn every_operation_on<K: AsRef<str>>(
    cache: &dyn Cache,
    keys: &[K],
    label: &str,
) -> CheckResult {
    let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    let values: Vec<String> = (0..keys.len()).map(|i| format!("{label} {i}")).collect();
    let half = keys.len() / 2;
    for (key, value) in keys[..half].iter().zip(&values) {
        set(cache, key, value.as_bytes(), KEEP).await?;
    }
    let batch: Vec<(&str, Bytes)> = keys[half..]
        .iter()
        .zip(&values[half..])
        .map(|(key, value)| (*key, Bytes::copy_from_slice(value.as_bytes())))
        .collect();
    cache
        .set_many(&batch, KEEP)
        .await
        .or_fail(|| format!("set_many of {} {label}s", batch.len()))?;
    let written = format!("after set and set_many of {label}s");
    for (key, value) in keys.iter().zip(&values) {
        expect(cache, key, Some(value.as_bytes()), &written).await?;
        exists(cache, key, true, &written).await?;
    }
    let wanted: Vec<Option<&[u8]>> = values.iter().map(|value| Some(value.as_bytes())).collect();
    expect_many(cache, &keys, &wanted, &written).await?;
    for key in &keys[..half] {
        delete(cache, key, true, &format!("of a {label}")).await?;
    }
    count_removed(cache, &keys[half..], keys.len() - half, label).await?;
    let removed = format!("after delete and delete_many of {label}s");
    expect_many(cache, &keys, &vec![None; keys.len()], &removed).await?;
    for key in &keys {
        exists(cache, key, false, &removed).await?;
    }
    if !cache.limits().atomic_add {
        return Ok(());
    }
    for (key, value) in keys.iter().zip(&values) {
        add_absent(cache, key, value.as_bytes(), KEEP).await?;
        expect(
            cache,
            key,
            Some(value.as_bytes()),
            &format!("after add of a {label}"),
        )
        .await?;
    }
    count_removed(cache, &keys, keys.len(), label).await
}

/// Removes `keys` with one `delete_many` and fails unless it counted `expected` of them.
async fn count_removed(
    cache: &dyn Cache,
    keys: &[&str],
    expected: usize,
    label: &str,
) -> CheckResult {
    let step = || format!("delete_many of {} live {label}s", keys.len());
    let removed = cache.delete_many(keys).await.or_fail(step)?;
    if removed == expected {
        Ok(())
    } else {
        Err(Failure::new(
            step(),
            format!("Ok({expected})"),
            format!("Ok({removed})"),
        ))
    }
}

/// A value with every byte value in it, so that truncation, re-encoding or a lost
/// byte anywhere shows.
fn patterned(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// The multi-thread Tokio runtime a check that runs `what` on threads of their own needs:
/// it waits for them in place (`block_in_place`), which only such a runtime allows.
pub(crate) fn multi_thread_runtime(what: &str) -> Result<tokio::runtime::Handle, crate::Failure> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::try_current().map_err(|_| {
        crate::Failure::new(
            "running the check",
            "a tokio runtime",
            "none (call it inside a multi-thread tokio runtime)",
        )
    })?;
    let flavor = handle.runtime_flavor();
    if flavor != RuntimeFlavor::MultiThread {
        return Err(crate::Failure::new(
            "running the check",
            format!(
                "a multi-thread tokio runtime (the check runs its {what} on threads of their \
                 own and waits for them in place, which only a multi-thread runtime allows)"
            ),
            format!("a {flavor:?} runtime"),
        ));
    }
    Ok(handle)
}
