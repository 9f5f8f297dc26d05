//! The five core checks: the names and values of the original Python TCK.

use std::time::Duration;

use cache_api::Cache;

use super::values::timed_limits;
use super::{expect, set, sleep_past, LONG_TTL};
use crate::failure::{CheckResult, OrFail};

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
    let wait = sleep_past(ttl, &timed_limits(cache)?).await;
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
    let wait = sleep_past(ttl, &timed_limits(cache)?).await;
    expect(
        cache,
        "tck:overwrite",
        None,
        &format!("{wait:?} after set(60s) then set(1s)"),
    )
    .await
}
