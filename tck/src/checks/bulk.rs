//! Bulk operations and `exists`: each agrees with the single-key operations, after
//! overwrites, deletes, expiry and refused batches.

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError};

use super::values::timed_limits;
use super::{
    delete, describe, exists, expect, expect_many, remove, set, short_ttl, sleep_past, KEEP,
    LONG_TTL, MANY,
};
use crate::failure::{describe_key, CheckResult, Failure, OrFail};

/// `get_many` returns one answer per key, in the order asked, `None` for misses.
pub async fn test_get_many_keeps_order_and_reports_misses(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:many-a", b"a", KEEP).await?;
    set(cache, "tck:many-b", b"b", KEEP).await?;
    set(cache, "tck:many-c", b"", KEEP).await?;
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
        set(cache, key, key.as_bytes(), KEEP).await?;
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

/// `get_many` with a key named twice answers at both positions, in a short batch and
/// in one a backend may send in parts (the key first and last, a miss twice between).
pub async fn test_get_many_answers_duplicate_keys_at_each_position(
    cache: &dyn Cache,
) -> CheckResult {
    set(cache, "tck:dup", b"dup", KEEP).await?;
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
    if got != want {
        return Err(Failure::new(
            format!("get_many({keys:?})"),
            format!("{want:?}"),
            format!("{got:?}"),
        ));
    }
    let mut long: Vec<String> = (0..MANY * 2)
        .map(|i| format!("tck:dup-other-{i}"))
        .collect();
    long[0] = "tck:dup".to_owned();
    long[MANY * 2 - 1] = "tck:dup".to_owned();
    long[3] = "tck:dup-missing".to_owned();
    long[MANY + 3] = "tck:dup-missing".to_owned();
    let refs: Vec<&str> = long.iter().map(String::as_str).collect();
    let wanted: Vec<Option<&[u8]>> = refs
        .iter()
        .map(|key| (*key == "tck:dup").then_some(&b"dup"[..]))
        .collect();
    let context = format!("of {} keys naming \"tck:dup\" first and last", refs.len());
    expect_many(cache, &refs, &wanted, &context).await
}

/// `get_many` agrees with `get` after an overwrite (by `set` and over `set_many`), a
/// delete and an expiry.
pub async fn test_get_many_agrees_with_get_after_overwrite_delete_and_expiry(
    cache: &dyn Cache,
) -> CheckResult {
    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    set(cache, "tck:gm-overwritten", b"first", KEEP).await?;
    set(cache, "tck:gm-overwritten", b"second", KEEP).await?;
    set(cache, "tck:gm-deleted", b"deleted", KEEP).await?;
    delete(cache, "tck:gm-deleted", true, "of a live entry").await?;
    set(cache, "tck:gm-expired", b"expired", Some(ttl)).await?;
    set(cache, "tck:gm-kept", b"kept", KEEP).await?;
    cache
        .set_many(
            &[("tck:gm-batch", Bytes::from_static(b"batch first"))],
            KEEP,
        )
        .await
        .or_fail(|| "set_many([(\"tck:gm-batch\", \"batch first\")], 1h)".to_owned())?;
    set(cache, "tck:gm-batch", b"single second", KEEP).await?;
    let wait = sleep_past(ttl, &limits).await;

    let keys = [
        "tck:gm-overwritten",
        "tck:gm-deleted",
        "tck:gm-expired",
        "tck:gm-kept",
        "tck:gm-batch",
    ];
    let want: [Option<&[u8]>; 5] = [
        Some(b"second"),
        None,
        None,
        Some(b"kept"),
        Some(b"single second"),
    ];
    let context = format!("{wait:?} after overwrite, delete and a {ttl:?} ttl");
    for (key, want) in keys.iter().zip(want) {
        expect(cache, key, want, &context).await?;
    }
    expect_many(cache, &keys, &want, &context).await?;
    // The same among keys never written, in a batch a backend may send in parts.
    let padding: Vec<String> = (0..MANY).map(|i| format!("tck:gm-never-{i}")).collect();
    let mut long: Vec<&str> = padding.iter().map(String::as_str).collect();
    long.extend(keys);
    let mut wanted: Vec<Option<&[u8]>> = vec![None; MANY];
    wanted.extend(want);
    let context = format!("{context}, {MANY} keys never written first");
    expect_many(cache, &long, &wanted, &context).await
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
///
/// A batch of 2,000 entries is stored whole, read back whole by one `get_many` and
/// removed and counted whole by one `delete_many`; a zero TTL leaves nothing that
/// `exists`, `delete` or `delete_many` still finds.
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

    // A batch larger than a backend might cut into parts: every entry is there.
    // Its tenth entry's key named again last, with another value: the last one wins.
    let many_keys: Vec<String> = (0..MANY).map(|i| format!("tck:sm-many-{i}")).collect();
    let mut many: Vec<(&str, Bytes)> = many_keys
        .iter()
        .map(|key| (key.as_str(), Bytes::copy_from_slice(key.as_bytes())))
        .collect();
    many.push((
        many_keys[9].as_str(),
        Bytes::from_static(b"named again last"),
    ));
    cache
        .set_many(&many, KEEP)
        .await
        .or_fail(|| format!("set_many of {} entries with a 1h ttl", many.len()))?;
    for (i, key) in many_keys.iter().enumerate() {
        let want = if i == 9 {
            &b"named again last"[..]
        } else {
            key.as_bytes()
        };
        expect(
            cache,
            key,
            Some(want),
            &format!(
                "after set_many of {} entries, the tenth named again last",
                many.len()
            ),
        )
        .await?;
    }
    remove(
        cache,
        &many_keys.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    huge_batches_keep_every_entry(cache).await?;

    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    let short_keys: Vec<String> = (3..=MANY).map(|i| format!("tck:sm-{i}")).collect();
    let mut short = vec![
        ("tck:sm-1", Bytes::from("one")),
        ("tck:sm-2", Bytes::from("two")),
    ];
    short.extend(
        short_keys
            .iter()
            .map(|key| (key.as_str(), Bytes::from("short"))),
    );
    cache
        .set_many(&short, Some(ttl))
        .await
        .or_fail(|| format!("set_many of {MANY} entries with a {ttl:?} ttl"))?;
    let wait = sleep_past(ttl, &limits).await;
    for (key, _) in &short {
        expect(
            cache,
            key,
            None,
            &format!("{wait:?} after set_many with a {ttl:?} ttl ({MANY} entries)"),
        )
        .await?;
    }
    expect(
        cache,
        "tck:sm-dup",
        Some(b"last"),
        "untouched by a later set_many",
    )
    .await?;

    // A zero TTL over live entries removes every one of them.
    cache
        .set_many(
            &[
                ("tck:sm-empty", Bytes::from("new")),
                ("tck:sm-dup", Bytes::from("new")),
            ],
            Some(Duration::ZERO),
        )
        .await
        .or_fail(|| "set_many of 2 live keys with a zero ttl".to_owned())?;
    let zeroed = "after set_many with a zero ttl (2 live keys)";
    for key in ["tck:sm-empty", "tck:sm-dup"] {
        expect(cache, key, None, zeroed).await?;
        exists(cache, key, false, zeroed).await?;
    }
    // Gone to every operation, not hidden from reads only.
    delete(cache, "tck:sm-empty", false, zeroed).await?;
    let step = || format!("delete_many([\"tck:sm-dup\"]) {zeroed}");
    let removed = cache.delete_many(&["tck:sm-dup"]).await.or_fail(step)?;
    if removed != 0 {
        return Err(Failure::new(step(), "Ok(0)", format!("Ok({removed})")));
    }
    Ok(())
}

/// Entries in the batches of [`huge_batches_keep_every_entry`]: several times what a
/// backend may send in one command or one pipeline (512, 1000, 1024).
const HUGE_BATCH: usize = 2000;

/// One `set_many` of [`HUGE_BATCH`] entries stores every one, the last included; one
/// `get_many` reads every one back, one `delete_many` removes and counts every one.
async fn huge_batches_keep_every_entry(cache: &dyn Cache) -> CheckResult {
    let keys: Vec<String> = (0..HUGE_BATCH)
        .map(|i| format!("tck:sm-huge-{i:04}"))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let entries: Vec<(&str, Bytes)> = refs
        .iter()
        .map(|key| (*key, Bytes::copy_from_slice(key.as_bytes())))
        .collect();
    cache
        .set_many(&entries, KEEP)
        .await
        .or_fail(|| format!("set_many of {HUGE_BATCH} entries with a 1h ttl"))?;
    // The last entries first, by `get`, where a batch cut short loses them.
    for key in refs.iter().rev().take(3) {
        expect(
            cache,
            key,
            Some(key.as_bytes()),
            &format!("after set_many of {HUGE_BATCH} entries"),
        )
        .await?;
    }
    // Not `expect_many`: a failure naming 2,000 keys would bury the one that matters.
    let step = || format!("get_many of {HUGE_BATCH} keys after set_many of them");
    let got = cache.get_many(&refs).await.or_fail(step)?;
    if got.len() != HUGE_BATCH {
        return Err(Failure::new(
            step(),
            format!("{HUGE_BATCH} answers"),
            format!("{} answers", got.len()),
        ));
    }
    for (i, (key, answer)) in refs.iter().zip(&got).enumerate() {
        if answer.as_deref() != Some(key.as_bytes()) {
            return Err(Failure::new(
                format!("{}, answer {i} ({})", step(), describe_key(key)),
                describe(&Some(Bytes::copy_from_slice(key.as_bytes()))),
                describe(answer),
            ));
        }
    }
    let step = || format!("delete_many of {HUGE_BATCH} live keys");
    let removed = cache.delete_many(&refs).await.or_fail(step)?;
    if removed != HUGE_BATCH {
        return Err(Failure::new(
            step(),
            format!("Ok({HUGE_BATCH})"),
            format!("Ok({removed})"),
        ));
    }
    for key in refs.iter().rev().take(3) {
        expect(
            cache,
            key,
            None,
            &format!("after delete_many of {HUGE_BATCH} keys"),
        )
        .await?;
    }
    Ok(())
}

/// `set_many` without TTL over keys that had one removes their old TTL, as `set` does.
pub async fn test_set_many_without_ttl_clears_previous_ttl(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    // Keys that had a TTL at the start, the middle and the end of the batch.
    let keys = [
        "tck:sm-cleared-1",
        "tck:sm-cleared-fresh",
        "tck:sm-cleared-2",
        "tck:sm-cleared-3",
    ];
    for key in [keys[0], keys[2], keys[3]] {
        set(cache, key, b"with ttl", Some(ttl)).await?;
    }
    let entries = keys.map(|key| (key, Bytes::from_static(b"without ttl")));
    cache
        .set_many(&entries, None)
        .await
        .or_fail(|| "set_many of 4 entries without ttl".to_owned())?;
    let wait = sleep_past(ttl, &limits).await;
    let mut result = Ok(());
    for key in keys {
        result = expect(
            cache,
            key,
            Some(b"without ttl"),
            &format!("{wait:?} after set({ttl:?}) then set_many(None)"),
        )
        .await;
        if result.is_err() {
            break;
        }
    }
    remove(cache, &keys).await;
    result
}

/// `set_many` with a TTL too large to represent writes every entry or, refused with
/// `InvalidTtl`, none: the previous values stay.
pub async fn test_set_many_with_an_unrepresentable_ttl_writes_all_or_nothing(
    cache: &dyn Cache,
) -> CheckResult {
    set(cache, "tck:smax-old", b"before", KEEP).await?;
    let entries = [
        ("tck:smax-old", Bytes::from_static(b"after")),
        ("tck:smax-new", Bytes::from_static(b"after")),
    ];
    let step = "set_many of 2 entries with Duration::MAX";
    let result = match cache.set_many(&entries, Some(Duration::MAX)).await {
        Ok(()) => {
            expect_many(
                cache,
                &["tck:smax-old", "tck:smax-new"],
                &[Some(b"after"), Some(b"after")],
                &format!("after {step} accepted"),
            )
            .await
        }
        Err(CacheError::InvalidTtl { .. }) => {
            expect_many(
                cache,
                &["tck:smax-old", "tck:smax-new"],
                &[Some(b"before"), None],
                &format!("after {step} refused"),
            )
            .await
        }
        Err(other) => Err(Failure::new(
            step,
            "Ok or Err(InvalidTtl)",
            format!("Err({other}) [{other:?}]"),
        )),
    };
    remove(cache, &["tck:smax-old", "tck:smax-new"]).await;
    result
}

/// `delete_many` removes every key named and counts the live entries it removed,
/// a key named twice once and an entry holding an empty value too.
pub async fn test_delete_many_counts_removed_entries(cache: &dyn Cache) -> CheckResult {
    for key in ["tck:dm-1", "tck:dm-2", "tck:dm-3", "tck:dm-kept"] {
        set(cache, key, b"x", KEEP).await?;
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
    // An entry holding an empty value is a live entry, and counts.
    set(cache, "tck:dm-empty", b"", KEEP).await?;
    let step = || {
        "delete_many([\"tck:dm-empty\", \"tck:dm-missing\"]) of an empty value and a miss"
            .to_owned()
    };
    let removed = cache
        .delete_many(&["tck:dm-empty", "tck:dm-missing"])
        .await
        .or_fail(step)?;
    if removed != 1 {
        return Err(Failure::new(step(), "Ok(1)", format!("Ok({removed})")));
    }
    expect(cache, "tck:dm-empty", None, "after delete_many").await?;
    expect(
        cache,
        "tck:dm-kept",
        Some(b"x"),
        "after delete_many of other keys",
    )
    .await?;

    // A batch larger than a backend might cut into parts: every key removed and counted.
    let many_keys: Vec<String> = (0..MANY * 2).map(|i| format!("tck:dm-many-{i}")).collect();
    for key in &many_keys {
        set(cache, key, b"x", KEEP).await?;
    }
    let many: Vec<&str> = many_keys.iter().map(String::as_str).collect();
    let removed = cache
        .delete_many(&many)
        .await
        .or_fail(|| format!("delete_many of {} live keys", many.len()))?;
    if removed != many.len() {
        return Err(Failure::new(
            format!("delete_many of {} live keys", many.len()),
            format!("Ok({})", many.len()),
            format!("Ok({removed})"),
        ));
    }
    for key in many {
        expect(cache, key, None, "after delete_many of every key").await?;
    }
    Ok(())
}

/// `delete_many` does not count entries whose TTL has passed, and removes the live one
/// named with them.
pub async fn test_delete_many_does_not_count_expired_entries(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    set(cache, "tck:dme-1", b"x", Some(ttl)).await?;
    cache
        .set_many(&[("tck:dme-2", Bytes::from_static(b"x"))], Some(ttl))
        .await
        .or_fail(|| format!("set_many([(\"tck:dme-2\", \"x\")], {ttl:?})"))?;
    set(cache, "tck:dme-live", b"x", KEEP).await?;
    let wait = sleep_past(ttl, &limits).await;
    let keys = ["tck:dme-1", "tck:dme-2", "tck:dme-live", "tck:dme-missing"];
    let step = format!("delete_many({keys:?}) {wait:?} after two got a {ttl:?} ttl");
    let removed = cache.delete_many(&keys).await.or_fail(|| step.clone())?;
    if removed != 1 {
        return Err(Failure::new(step, "Ok(1)", format!("Ok({removed})")));
    }
    expect_many(cache, &keys, &[None; 4], "after delete_many").await?;

    // The same among keys never written, in a batch a backend may send in parts.
    set(cache, "tck:dme-3", b"x", Some(ttl)).await?;
    set(cache, "tck:dme-live-2", b"x", KEEP).await?;
    let wait = sleep_past(ttl, &limits).await;
    let padding: Vec<String> = (0..MANY).map(|i| format!("tck:dme-never-{i}")).collect();
    let mut long: Vec<&str> = padding.iter().map(String::as_str).collect();
    long.extend(["tck:dme-3", "tck:dme-live-2"]);
    let step = format!(
        "delete_many of {MANY} keys never written, one with a {ttl:?} ttl {wait:?} ago and a \
         live one"
    );
    let removed = cache.delete_many(&long).await.or_fail(|| step.clone())?;
    if removed != 1 {
        return Err(Failure::new(step, "Ok(1)", format!("Ok({removed})")));
    }
    Ok(())
}

/// `exists` agrees with `get`: true for live entries (empty ones too), false for
/// missing, deleted and expired ones.
pub async fn test_exists_agrees_with_get(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:exists", b"x", KEEP).await?;
    set(cache, "tck:exists-empty", b"", KEEP).await?;
    exists(cache, "tck:exists", true, "of a live entry").await?;
    exists(cache, "tck:exists-empty", true, "of a live empty value").await?;
    exists(cache, "tck:exists-missing", false, "of a key never set").await?;
    delete(cache, "tck:exists", true, "of a live entry").await?;
    exists(cache, "tck:exists", false, "after delete").await?;

    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    set(cache, "tck:exists-expiring", b"x", Some(ttl)).await?;
    sleep_past(ttl, &limits).await;
    exists(cache, "tck:exists-expiring", false, "after its ttl").await
}
