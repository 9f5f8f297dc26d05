//! The checks: one `pub async fn` per behaviour of the contract, its doc line the
//! expected result.
//!
//! Every check receives a fresh, clean cache and may write any key into it. Checks
//! that wait for an entry to expire sleep past its TTL plus the backend's declared
//! [granularity](cache_api::Limits::ttl_granularity) plus a margin, and never assert
//! that an entry with a short TTL is still there (a loaded machine may sleep longer
//! than asked), so they do not flake on a busy two-core machine.

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError, Limits};
use futures::future::join_all;

use crate::failure::{describe, describe_bytes, describe_key, CheckResult, Failure, OrFail};

/// The TTL long enough that an entry is certainly still alive when a check reads it.
const LONG_TTL: Duration = Duration::from_secs(60);
/// Slack added to every wait for expiry, on top of the TTL and the granularity.
const EXPIRY_MARGIN: Duration = Duration::from_millis(100);

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

fn expect_invalid_key<T: std::fmt::Debug>(
    result: Result<T, CacheError>,
    step: &str,
) -> CheckResult {
    match result {
        Err(CacheError::InvalidKey { .. }) => Ok(()),
        other => Err(Failure::new(step, "Err(InvalidKey)", format!("{other:?}"))),
    }
}

/// Sets every key to a value of its own, `"{label} {i}"` for the key at index `i`, then
/// reads each back (`context` naming that read in a failure) and, when `delete_context`
/// is given, deletes it, expecting `true`. Every key is written before any is read, so a
/// key that lands on another's entry shows.
async fn round_trip_each<K: AsRef<str>>(
    cache: &dyn Cache,
    keys: &[K],
    label: &str,
    context: &str,
    delete_context: Option<&str>,
) -> CheckResult {
    for (i, key) in keys.iter().enumerate() {
        set(cache, key.as_ref(), format!("{label} {i}").as_bytes(), None).await?;
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

/// A value with every byte value in it, so that truncation, re-encoding or a lost
/// byte anywhere shows.
fn patterned(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

// ---------------------------------------------------------------------------------
// The five core checks: the names and values of the original Python TCK.
// ---------------------------------------------------------------------------------

/// A value set without TTL is returned unchanged by `get`.
pub async fn test_set_and_get_value_without_ttl(cache: &dyn Cache) -> CheckResult {
    let value = b"tck value \x00\xff with some length to it: 0123456789abcdef0123456789abcdef";
    set(cache, "tck:set-get", value, None).await?;
    expect(cache, "tck:set-get", Some(value), "after set without ttl").await
}

/// `get` of a key that was never set is `Ok(None)`, not an error and not an empty value.
pub async fn test_get_non_existent_key_is_a_cache_miss(cache: &dyn Cache) -> CheckResult {
    expect(cache, "tck:never-set", None, "of a key never set").await
}

/// An entry set with a 1 s TTL is gone after 1.1 s (plus the backend's granularity).
pub async fn test_key_expires_after_ttl(cache: &dyn Cache) -> CheckResult {
    let ttl = Duration::from_secs(1);
    set(cache, "tck:expires", b"short-lived", Some(ttl)).await?;
    let wait = sleep_past(ttl, &cache.limits()).await;
    expect(
        cache,
        "tck:expires",
        None,
        &format!("{wait:?} after set with a 1s ttl"),
    )
    .await
}

/// An entry set with a 10 s TTL and then deleted is gone at once.
pub async fn test_delete_removes_key_before_expiry(cache: &dyn Cache) -> CheckResult {
    let value = b"deleted before its time";
    set(cache, "tck:delete", value, Some(Duration::from_secs(10))).await?;
    expect(
        cache,
        "tck:delete",
        Some(value),
        "right after set with a 10s ttl",
    )
    .await?;
    cache
        .delete("tck:delete")
        .await
        .or_fail(|| "delete(\"tck:delete\") of a live entry".to_owned())?;
    expect(cache, "tck:delete", None, "after delete").await
}

/// Setting a key again replaces its TTL too: 60 s then 1 s means gone after 1.1 s.
pub async fn test_set_overwrites_existing_value_and_ttl(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:overwrite", b"first", Some(LONG_TTL)).await?;
    expect(
        cache,
        "tck:overwrite",
        Some(b"first"),
        "right after set with a 60s ttl",
    )
    .await?;
    let ttl = Duration::from_secs(1);
    set(cache, "tck:overwrite", b"second", Some(ttl)).await?;
    let wait = sleep_past(ttl, &cache.limits()).await;
    expect(
        cache,
        "tck:overwrite",
        None,
        &format!("{wait:?} after set(60s) then set(1s)"),
    )
    .await
}

// ---------------------------------------------------------------------------------
// Extended checks: every rule CONTRACT.md pins down.
// ---------------------------------------------------------------------------------

/// A zero TTL stores nothing and removes the value the key had.
pub async fn test_zero_ttl_stores_nothing_and_removes_previous_value(
    cache: &dyn Cache,
) -> CheckResult {
    set(
        cache,
        "tck:zero-fresh",
        b"never stored",
        Some(Duration::ZERO),
    )
    .await?;
    expect(cache, "tck:zero-fresh", None, "after set with a zero ttl").await?;
    set(cache, "tck:zero-old", b"old", None).await?;
    set(cache, "tck:zero-old", b"new", Some(Duration::ZERO)).await?;
    expect(
        cache,
        "tck:zero-old",
        None,
        "after set without ttl, then set with a zero ttl",
    )
    .await
}

/// A set without TTL on a key that had one removes the old TTL.
pub async fn test_set_without_ttl_clears_previous_ttl(cache: &dyn Cache) -> CheckResult {
    let limits = cache.limits();
    let ttl = short_ttl(&limits);
    set(cache, "tck:ttl-cleared", b"with ttl", Some(ttl)).await?;
    set(cache, "tck:ttl-cleared", b"without ttl", None).await?;
    let wait = sleep_past(ttl, &limits).await;
    expect(
        cache,
        "tck:ttl-cleared",
        Some(b"without ttl"),
        &format!("{wait:?} after set({ttl:?}) then set(None)"),
    )
    .await
}

/// A longer TTL set over a shorter one keeps the entry past the first TTL.
pub async fn test_overwrite_with_a_longer_ttl_extends_the_entry(cache: &dyn Cache) -> CheckResult {
    let limits = cache.limits();
    let ttl = short_ttl(&limits);
    set(cache, "tck:ttl-extended", b"short", Some(ttl)).await?;
    set(cache, "tck:ttl-extended", b"long", Some(LONG_TTL)).await?;
    let wait = sleep_past(ttl, &limits).await;
    expect(
        cache,
        "tck:ttl-extended",
        Some(b"long"),
        &format!("{wait:?} after set({ttl:?}) then set(60s)"),
    )
    .await
}

/// A TTL below the backend's granularity is rounded up, never down to "no expiry"
/// or to "already expired".
pub async fn test_ttl_below_granularity_is_rounded_up(cache: &dyn Cache) -> CheckResult {
    let limits = cache.limits();
    let granularity = limits.ttl_granularity;
    let sub = granularity * 3 / 10;
    set(cache, "tck:sub-granularity", b"rounded up", Some(sub)).await?;
    // Rounded down to zero, some servers would keep the entry forever.
    let wait = sleep_past(sub, &limits).await;
    expect(
        cache,
        "tck:sub-granularity",
        None,
        &format!("{wait:?} after set with a {sub:?} ttl (granularity {granularity:?})"),
    )
    .await?;

    // Rounded down to zero, others would store nothing. Only observable where the
    // granularity is coarse enough to read the entry back before it expires; on a
    // 1 s clock an entry may live anywhere up to 1 s, so a few attempts are allowed.
    if granularity >= Duration::from_millis(100) {
        let mut answers = Vec::new();
        for attempt in 0..3 {
            let key = format!("tck:sub-granularity-{attempt}");
            set(cache, &key, b"rounded up", Some(sub)).await?;
            let answer = get(cache, &key, "right after set").await?;
            if answer.is_some() {
                return Ok(());
            }
            answers.push(describe(&answer));
        }
        return Err(Failure::new(
            format!(
                "get right after set with a {sub:?} ttl (granularity {granularity:?}), three times"
            ),
            "the value at least once",
            answers.join(", "),
        ));
    }
    Ok(())
}

/// TTLs of 31 days and of 10 years keep the entry readable right away (memcached reads
/// more than 30 days as a Unix time, so an adapter must convert).
pub async fn test_long_ttls_are_readable_right_away(cache: &dyn Cache) -> CheckResult {
    const DAY: u64 = 24 * 60 * 60;
    for (key, ttl) in [
        ("tck:ttl-31-days", Duration::from_secs(31 * DAY)),
        ("tck:ttl-10-years", Duration::from_secs(3653 * DAY)),
    ] {
        set(cache, key, b"long-lived", Some(ttl)).await?;
        expect(
            cache,
            key,
            Some(b"long-lived"),
            &format!("right after set with a {ttl:?} ttl"),
        )
        .await?;
    }
    Ok(())
}

/// A TTL too large to represent is either kept as "very long" or refused with
/// `InvalidTtl`, in which case the previous value stays; never a panic or another error.
pub async fn test_unrepresentable_ttl_is_kept_or_rejected(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:ttl-max", b"before", None).await?;
    match cache
        .set(
            "tck:ttl-max",
            Bytes::from_static(b"after"),
            Some(Duration::MAX),
        )
        .await
    {
        Ok(()) => {
            expect(
                cache,
                "tck:ttl-max",
                Some(b"after"),
                "after set with Duration::MAX accepted",
            )
            .await
        }
        Err(CacheError::InvalidTtl { .. }) => {
            expect(
                cache,
                "tck:ttl-max",
                Some(b"before"),
                "after set with Duration::MAX refused",
            )
            .await
        }
        Err(other) => Err(Failure::new(
            "set(\"tck:ttl-max\", \"after\", Duration::MAX)",
            "Ok or Err(InvalidTtl)",
            format!("Err({other}) [{other:?}]"),
        )),
    }
}

/// `delete` returns true when it removed a live entry and false otherwise.
pub async fn test_delete_reports_whether_a_live_entry_was_removed(
    cache: &dyn Cache,
) -> CheckResult {
    set(cache, "tck:delete-bool", b"x", None).await?;
    delete(cache, "tck:delete-bool", true, "of a live entry").await?;
    delete(
        cache,
        "tck:delete-bool",
        false,
        "of an entry deleted already",
    )
    .await?;
    delete(cache, "tck:delete-never-set", false, "of a key never set").await?;
    set(cache, "tck:delete-empty", b"", None).await?;
    delete(
        cache,
        "tck:delete-empty",
        true,
        "of a live entry holding an empty value",
    )
    .await
}

/// `delete` of an entry whose TTL has passed returns false.
pub async fn test_delete_of_an_expired_entry_returns_false(cache: &dyn Cache) -> CheckResult {
    let limits = cache.limits();
    let ttl = short_ttl(&limits);
    set(cache, "tck:delete-expired", b"x", Some(ttl)).await?;
    sleep_past(ttl, &limits).await;
    delete(cache, "tck:delete-expired", false, "of an expired entry").await
}

/// An empty value is stored and returned as an empty value, not as a miss.
pub async fn test_empty_value_round_trips(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:empty-value", b"", None).await?;
    expect(
        cache,
        "tck:empty-value",
        Some(b""),
        "after set of an empty value",
    )
    .await?;
    set(cache, "tck:empty-value-ttl", b"", Some(LONG_TTL)).await?;
    expect(
        cache,
        "tck:empty-value-ttl",
        Some(b""),
        "after set of an empty value with a ttl",
    )
    .await
}

/// An empty value written over a non-empty one replaces it.
pub async fn test_empty_value_overwrites_non_empty_value(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:empty-over", b"not empty", None).await?;
    set(cache, "tck:empty-over", b"", None).await?;
    expect(
        cache,
        "tck:empty-over",
        Some(b""),
        "after set of \"not empty\" then \"\"",
    )
    .await
}

/// Values are raw bytes: every byte value, invalid UTF-8 and protocol-looking bytes
/// come back exactly.
pub async fn test_binary_values_round_trip(cache: &dyn Cache) -> CheckResult {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let values: [(&str, &[u8]); 5] = [
        ("tck:binary-all", &all_bytes),
        (
            "tck:binary-invalid-utf8",
            b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc",
        ),
        ("tck:binary-nul", b"\0\0\0"),
        (
            "tck:binary-protocol",
            b"VALUE k 0 1\r\nx\r\nEND\r\n$-1\r\n*0\r\n",
        ),
        ("tck:binary-crlf", b"\r\n"),
    ];
    for (key, value) in values {
        set(cache, key, value, None).await?;
    }
    for (key, value) in values {
        expect(cache, key, Some(value), "after set of binary bytes").await?;
    }
    Ok(())
}

/// A value of exactly the declared largest size round-trips unchanged.
pub async fn test_largest_value_round_trips(cache: &dyn Cache) -> CheckResult {
    let limit = cache.limits().max_value_size;
    let value = patterned(limit, 7);
    set(cache, "tck:largest", &value, None).await?;
    expect(
        cache,
        "tck:largest",
        Some(&value),
        &format!("after set of {limit} bytes (the declared limit)"),
    )
    .await
}

/// A value one byte over the limit is `ValueTooLarge` naming the limit; the key's old
/// value and other entries are untouched and the cache stays usable.
pub async fn test_value_over_limit_is_rejected_and_harms_nothing(cache: &dyn Cache) -> CheckResult {
    let limit = cache.limits().max_value_size;
    set(cache, "tck:too-large", b"old value", None).await?;
    set(cache, "tck:bystander", b"bystander", None).await?;
    let too_large = Bytes::from(patterned(limit + 1, 3));

    let result = cache.set("tck:too-large", too_large.clone(), None).await;
    match &result {
        Err(CacheError::ValueTooLarge { size, limit: named })
            if *size == limit + 1 && *named == limit => {}
        other => {
            return Err(Failure::new(
                format!("set of {} bytes (limit {limit})", limit + 1),
                format!(
                    "Err(ValueTooLarge {{ size: {}, limit: {limit} }})",
                    limit + 1
                ),
                format!("{other:?}"),
            ))
        }
    }
    let result = cache
        .set_many(
            &[
                ("tck:too-large-batch", Bytes::from_static(b"small")),
                ("tck:too-large", too_large),
            ],
            None,
        )
        .await;
    if !matches!(result, Err(CacheError::ValueTooLarge { .. })) {
        return Err(Failure::new(
            format!(
                "set_many with one value of {} bytes (limit {limit})",
                limit + 1
            ),
            "Err(ValueTooLarge)",
            format!("{result:?}"),
        ));
    }
    expect(
        cache,
        "tck:too-large",
        Some(b"old value"),
        "after a refused oversized set",
    )
    .await?;
    expect(
        cache,
        "tck:bystander",
        Some(b"bystander"),
        "after a refused oversized set",
    )
    .await?;
    expect(
        cache,
        "tck:too-large-batch",
        None,
        "after a refused set_many",
    )
    .await?;
    set(cache, "tck:after-too-large", b"still usable", None).await?;
    expect(
        cache,
        "tck:after-too-large",
        Some(b"still usable"),
        "after a refused oversized set",
    )
    .await
}

/// The empty key is `InvalidKey` on every operation, and a batch holding it writes
/// and removes nothing.
pub async fn test_empty_key_is_invalid_on_every_operation(cache: &dyn Cache) -> CheckResult {
    let v = || Bytes::from_static(b"v");
    expect_invalid_key(cache.get("").await, "get(\"\")")?;
    expect_invalid_key(cache.set("", v(), None).await, "set(\"\", \"v\", None)")?;
    expect_invalid_key(
        cache.set("", v(), Some(LONG_TTL)).await,
        "set(\"\", \"v\", 60s)",
    )?;
    expect_invalid_key(cache.delete("").await, "delete(\"\")")?;
    expect_invalid_key(cache.exists("").await, "exists(\"\")")?;
    expect_invalid_key(
        cache.get_many(&["tck:a", ""]).await,
        "get_many([\"tck:a\", \"\"])",
    )?;
    expect_invalid_key(
        cache
            .set_many(&[("tck:empty-key-batch", v()), ("", v())], None)
            .await,
        "set_many([(\"tck:empty-key-batch\", \"v\"), (\"\", \"v\")])",
    )?;
    expect(
        cache,
        "tck:empty-key-batch",
        None,
        "after a refused set_many",
    )
    .await?;
    set(cache, "tck:kept", b"kept", None).await?;
    expect_invalid_key(
        cache.delete_many(&["tck:kept", ""]).await,
        "delete_many([\"tck:kept\", \"\"])",
    )?;
    expect(
        cache,
        "tck:kept",
        Some(b"kept"),
        "after a refused delete_many",
    )
    .await
}

/// Keys of 300 bytes and of 4 KiB (ASCII and multi-byte) work.
pub async fn test_long_keys_round_trip(cache: &dyn Cache) -> CheckResult {
    let keys = [
        "k".repeat(300),
        "a".repeat(4096),
        "é".repeat(2048),
        format!("{} {}", "with spaces".repeat(200), "end"),
    ];
    round_trip_each(
        cache,
        &keys,
        "long key",
        "after set of a long key",
        Some("of a long key"),
    )
    .await
}

/// Keys with spaces, tabs, CR/LF, control characters, NUL, glob and non-ASCII
/// characters work.
pub async fn test_keys_with_spaces_control_characters_and_non_ascii_round_trip(
    cache: &dyn Cache,
) -> CheckResult {
    let keys = [
        "with space",
        " leading and trailing ",
        "tab\there",
        "new\nline",
        "cr\r\nlf",
        "nul\0byte",
        "bell\x07 esc\x1b del\x7f",
        "ünïcödé",
        "日本語のキー",
        "emoji 🦀🚀",
        "glob*?[chars]\\",
        "{hash}tag",
        "percent%20and+plus",
        "a:b:c/d",
    ];
    round_trip_each(cache, &keys, "value", "after set", None).await
}

/// Distinct keys never share an entry, however alike they are or however a backend
/// encodes them.
pub async fn test_distinct_keys_never_collide(cache: &dyn Cache) -> CheckResult {
    let long = "x".repeat(4095);
    let mut keys = vec![
        "key".to_owned(),
        "Key".to_owned(),
        "key ".to_owned(),
        " key".to_owned(),
        "key\0".to_owned(),
        "key\n".to_owned(),
        "a b".to_owned(),
        "a_b".to_owned(),
        "a%20b".to_owned(),
        "a+b".to_owned(),
        "a\tb".to_owned(),
        "YSBi".to_owned(), // base64 of "a b"
        "b64:YSBi".to_owned(),
        format!("{long}a"),
        format!("{long}b"),
        format!("a{long}"),
        format!("b{long}"),
        "k".repeat(250),
        "k".repeat(251),
        format!("{}_", "k".repeat(250)),
    ];
    // Keys made to look like what an encoding backend might produce for a long key.
    keys.push(format!("{}#{}", "x".repeat(200), "0".repeat(64)));
    keys.push(format!("{}:{}", "x".repeat(200), "f".repeat(43)));
    round_trip_each(cache, &keys, "value", "after setting many alike keys", None).await
}

/// A key cannot smuggle protocol commands: keys with CR/LF and command words are
/// stored under themselves and leave other entries alone.
pub async fn test_keys_cannot_inject_protocol_commands(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:victim", b"victim", None).await?;
    let keys = [
        "x\r\nflush_all",
        "x\r\nflush_all\r\n",
        "x\r\ndelete tck:victim\r\n",
        "x\r\nset tck:victim 0 0 6\r\nhacked\r\n",
        "x flush_all",
        "x\r\nFLUSHALL\r\n",
        "*1\r\n$8\r\nFLUSHALL\r\n",
        "x\r\nmn\r\n",
    ];
    round_trip_each(
        cache,
        &keys,
        "value",
        "after set",
        Some("of a key with protocol characters"),
    )
    .await?;
    expect(
        cache,
        "tck:victim",
        Some(b"victim"),
        "after writing keys holding protocol commands",
    )
    .await
}

/// `get_many` returns one answer per key, in the order asked, `None` for misses.
pub async fn test_get_many_keeps_order_and_reports_misses(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:many-a", b"a", None).await?;
    set(cache, "tck:many-b", b"b", None).await?;
    set(cache, "tck:many-c", b"", None).await?;
    let keys = ["tck:many-b", "tck:many-missing", "tck:many-a", "tck:many-c"];
    let got = cache
        .get_many(&keys)
        .await
        .or_fail(|| format!("get_many({keys:?})"))?;
    let want = vec![
        Some(Bytes::from("b")),
        None,
        Some(Bytes::from("a")),
        Some(Bytes::new()),
    ];
    if got != want {
        return Err(Failure::new(
            format!("get_many({keys:?})"),
            format!("{want:?}"),
            format!("{got:?}"),
        ));
    }
    // Many keys at once: a backend that batches must keep every answer in place.
    let many: Vec<String> = (0..150).map(|i| format!("tck:many-{i}")).collect();
    for key in many.iter().step_by(2) {
        set(cache, key, key.as_bytes(), None).await?;
    }
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let got = cache
        .get_many(&refs)
        .await
        .or_fail(|| "get_many of 150 keys".to_owned())?;
    if got.len() != refs.len() {
        return Err(Failure::new(
            "get_many of 150 keys",
            "150 answers",
            format!("{} answers", got.len()),
        ));
    }
    for (i, (key, answer)) in refs.iter().zip(&got).enumerate() {
        let want = (i % 2 == 0).then(|| Bytes::copy_from_slice(key.as_bytes()));
        if *answer != want {
            return Err(Failure::new(
                format!("get_many of 150 keys, answer {i} ({key})"),
                describe(&want),
                describe(answer),
            ));
        }
    }
    Ok(())
}

/// `get_many` with a key named twice answers at both positions.
pub async fn test_get_many_answers_duplicate_keys_at_each_position(
    cache: &dyn Cache,
) -> CheckResult {
    set(cache, "tck:dup", b"dup", None).await?;
    let keys = ["tck:dup", "tck:dup-missing", "tck:dup", "tck:dup-missing"];
    let got = cache
        .get_many(&keys)
        .await
        .or_fail(|| format!("get_many({keys:?})"))?;
    let want = vec![
        Some(Bytes::from("dup")),
        None,
        Some(Bytes::from("dup")),
        None,
    ];
    if got == want {
        Ok(())
    } else {
        Err(Failure::new(
            format!("get_many({keys:?})"),
            format!("{want:?}"),
            format!("{got:?}"),
        ))
    }
}

/// Bulk operations on empty lists succeed and do nothing.
pub async fn test_bulk_operations_accept_empty_lists(cache: &dyn Cache) -> CheckResult {
    let got = cache
        .get_many(&[])
        .await
        .or_fail(|| "get_many([])".to_owned())?;
    if !got.is_empty() {
        return Err(Failure::new("get_many([])", "[]", format!("{got:?}")));
    }
    cache
        .set_many(&[], None)
        .await
        .or_fail(|| "set_many([], None)".to_owned())?;
    cache
        .set_many(&[], Some(LONG_TTL))
        .await
        .or_fail(|| "set_many([], 60s)".to_owned())?;
    let removed = cache
        .delete_many(&[])
        .await
        .or_fail(|| "delete_many([])".to_owned())?;
    if removed != 0 {
        return Err(Failure::new(
            "delete_many([])",
            "Ok(0)",
            format!("Ok({removed})"),
        ));
    }
    Ok(())
}

/// `set_many` stores every entry, the last value of a repeated key winning, and
/// applies the TTL to each.
pub async fn test_set_many_stores_every_entry_with_the_ttl(cache: &dyn Cache) -> CheckResult {
    let entries = [
        ("tck:sm-1", Bytes::from("one")),
        ("tck:sm-2", Bytes::from("two")),
        ("tck:sm-dup", Bytes::from("first")),
        ("tck:sm-dup", Bytes::from("last")),
        ("tck:sm-empty", Bytes::new()),
    ];
    cache
        .set_many(&entries, Some(LONG_TTL))
        .await
        .or_fail(|| "set_many of 5 entries with a 60s ttl".to_owned())?;
    expect(cache, "tck:sm-1", Some(b"one"), "after set_many").await?;
    expect(cache, "tck:sm-2", Some(b"two"), "after set_many").await?;
    expect(
        cache,
        "tck:sm-dup",
        Some(b"last"),
        "after set_many naming the key twice",
    )
    .await?;
    expect(cache, "tck:sm-empty", Some(b""), "after set_many").await?;

    let limits = cache.limits();
    let ttl = short_ttl(&limits);
    cache
        .set_many(&entries[..2], Some(ttl))
        .await
        .or_fail(|| format!("set_many of 2 entries with a {ttl:?} ttl"))?;
    let wait = sleep_past(ttl, &limits).await;
    expect(
        cache,
        "tck:sm-1",
        None,
        &format!("{wait:?} after set_many with a {ttl:?} ttl"),
    )
    .await?;
    expect(
        cache,
        "tck:sm-2",
        None,
        &format!("{wait:?} after set_many with a {ttl:?} ttl"),
    )
    .await?;
    expect(
        cache,
        "tck:sm-dup",
        Some(b"last"),
        "untouched by a later set_many",
    )
    .await?;

    cache
        .set_many(&entries[4..], Some(Duration::ZERO))
        .await
        .or_fail(|| "set_many with a zero ttl".to_owned())?;
    expect(
        cache,
        "tck:sm-empty",
        None,
        "after set_many with a zero ttl",
    )
    .await
}

/// `delete_many` removes every key named and counts the live entries it removed,
/// a key named twice once.
pub async fn test_delete_many_counts_removed_entries(cache: &dyn Cache) -> CheckResult {
    for key in ["tck:dm-1", "tck:dm-2", "tck:dm-3", "tck:dm-kept"] {
        set(cache, key, b"x", None).await?;
    }
    let keys = [
        "tck:dm-1",
        "tck:dm-missing",
        "tck:dm-2",
        "tck:dm-1",
        "tck:dm-3",
    ];
    let removed = cache
        .delete_many(&keys)
        .await
        .or_fail(|| format!("delete_many({keys:?})"))?;
    if removed != 3 {
        return Err(Failure::new(
            format!("delete_many({keys:?})"),
            "Ok(3)",
            format!("Ok({removed})"),
        ));
    }
    for key in ["tck:dm-1", "tck:dm-2", "tck:dm-3"] {
        expect(cache, key, None, "after delete_many").await?;
    }
    expect(
        cache,
        "tck:dm-kept",
        Some(b"x"),
        "after delete_many of other keys",
    )
    .await
}

/// `exists` agrees with `get`: true for live entries (empty ones too), false for
/// missing, deleted and expired ones.
pub async fn test_exists_agrees_with_get(cache: &dyn Cache) -> CheckResult {
    async fn exists(cache: &dyn Cache, key: &str, want: bool, context: &str) -> CheckResult {
        let got = cache
            .exists(key)
            .await
            .or_fail(|| format!("exists({key:?}) {context}"))?;
        if got == want {
            Ok(())
        } else {
            Err(Failure::new(
                format!("exists({key:?}) {context}"),
                format!("Ok({want})"),
                format!("Ok({got})"),
            ))
        }
    }
    set(cache, "tck:exists", b"x", None).await?;
    set(cache, "tck:exists-empty", b"", None).await?;
    exists(cache, "tck:exists", true, "of a live entry").await?;
    exists(cache, "tck:exists-empty", true, "of a live empty value").await?;
    exists(cache, "tck:exists-missing", false, "of a key never set").await?;
    delete(cache, "tck:exists", true, "of a live entry").await?;
    exists(cache, "tck:exists", false, "after delete").await?;

    let limits = cache.limits();
    let ttl = short_ttl(&limits);
    set(cache, "tck:exists-expiring", b"x", Some(ttl)).await?;
    sleep_past(ttl, &limits).await;
    exists(cache, "tck:exists-expiring", false, "after its ttl").await
}

/// `clear` removes every entry of the cache, with and without TTL.
pub async fn test_clear_removes_every_entry(cache: &dyn Cache) -> CheckResult {
    let keys: Vec<String> = (0..20).map(|i| format!("tck:clear-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let ttl = (i % 2 == 0).then_some(LONG_TTL);
        set(cache, key, b"x", ttl).await?;
    }
    set(cache, "tck:clear-*", b"glob-looking key", None).await?;
    cache
        .clear()
        .await
        .or_fail(|| "clear() of 21 entries".to_owned())?;
    for key in keys.iter().map(String::as_str).chain(["tck:clear-*"]) {
        expect(cache, key, None, "after clear").await?;
    }
    set(cache, "tck:after-clear", b"usable", None).await?;
    expect(cache, "tck:after-clear", Some(b"usable"), "after clear").await
}

/// `clear` on an empty cache succeeds.
pub async fn test_clear_on_an_empty_cache_succeeds(cache: &dyn Cache) -> CheckResult {
    cache
        .clear()
        .await
        .or_fail(|| "clear() of an empty cache".to_owned())?;
    cache.clear().await.or_fail(|| "clear() twice".to_owned())?;
    expect(
        cache,
        "tck:clear-empty",
        None,
        "after clear of an empty cache",
    )
    .await
}

/// Many tasks using one cache at once each read back exactly what they wrote, and
/// racing writers leave one of the written values.
pub async fn test_concurrent_use_from_many_tasks(cache: &dyn Cache) -> CheckResult {
    const TASKS: usize = 64;
    const ROUNDS: usize = 20;
    let task = |t: usize| async move {
        for round in 0..ROUNDS {
            let key = format!("tck:conc-{t}-{}", round % 5);
            let value = format!("task {t} round {round}");
            set(cache, &key, value.as_bytes(), Some(LONG_TTL)).await?;
            expect(
                cache,
                &key,
                Some(value.as_bytes()),
                "by the task that wrote it",
            )
            .await?;
            set(cache, "tck:conc-shared", value.as_bytes(), None).await?;
        }
        delete(
            cache,
            &format!("tck:conc-{t}-0"),
            true,
            "by the task that wrote it",
        )
        .await
    };
    for result in join_all((0..TASKS).map(task)).await {
        result?;
    }
    let shared = get(cache, "tck:conc-shared", "after concurrent writers").await?;
    let written = shared
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("task "))
        .is_some_and(|rest| rest.contains(" round "));
    if !written {
        return Err(Failure::new(
            "get(\"tck:conc-shared\") after 64 tasks wrote it",
            "one of the written values",
            describe(&shared),
        ));
    }
    Ok(())
}
