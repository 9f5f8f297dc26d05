//! `clear`: every entry goes, whichever way it was written, and the cache stays usable.

use std::time::Duration;

use cache_api::{Bytes, Cache};

use super::{add_absent, delete, exists, expect, expect_many, set, KEEP, LONG_TTL};
use crate::failure::{CheckResult, Failure, OrFail};

/// `clear` removes every entry of the cache, with and without TTL (a TTL of a few
/// seconds among them).
pub async fn test_clear_removes_every_entry(cache: &dyn Cache) -> CheckResult {
    let keys: Vec<String> = (0..20).map(|i| format!("tck:clear-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let ttl = match i % 3 {
            0 => Some(LONG_TTL),
            1 => Some(Duration::from_secs(5)),
            _ => None,
        };
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
    set(cache, "tck:after-clear", b"usable", KEEP).await?;
    expect(cache, "tck:after-clear", Some(b"usable"), "after clear").await
}

/// `clear` removes entries written by every write path (`set`, `set_many` and `add`, with
/// and without TTL, overwritten ones, empty values, long keys, keys outside ASCII, keys
/// without a colon, TTLs of a day, a month and ten years):
/// `get`, `get_many`, `exists` and `delete_many` all find nothing, and batches work
/// afterwards.
pub async fn test_clear_removes_entries_from_every_write_path(cache: &dyn Cache) -> CheckResult {
    let long_key = format!("tck:clear-long-{}", "k".repeat(4096));
    set(cache, "tck:clear-set-ttl", b"x", KEEP).await?;
    set(cache, "tck:clear-set-none", b"x", None).await?;
    set(cache, "tck:clear-ttl-then-none", b"x", KEEP).await?;
    set(cache, "tck:clear-ttl-then-none", b"y", None).await?;
    set(cache, "tck:clear-none-then-ttl", b"x", None).await?;
    set(cache, "tck:clear-none-then-ttl", b"y", KEEP).await?;
    set(cache, "tck:clear-empty", b"", KEEP).await?;
    set(cache, &long_key, b"x", KEEP).await?;
    set(cache, "tck:clear spaces\r\nand controls", b"x", KEEP).await?;
    let batch = [
        ("tck:clear-batch-ttl", Bytes::from_static(b"x")),
        ("tck:clear-set-then-batch", Bytes::from_static(b"y")),
    ];
    set(cache, "tck:clear-set-then-batch", b"x", KEEP).await?;
    cache
        .set_many(&batch, KEEP)
        .await
        .or_fail(|| "set_many of 2 entries with a 1h ttl".to_owned())?;
    cache
        .set_many(&[("tck:clear-batch-none", Bytes::from_static(b"x"))], None)
        .await
        .or_fail(|| "set_many of 1 entry without ttl".to_owned())?;
    // Keys outside ASCII, and entries written by `add`, with and without TTL, on a
    // backend that declares it.
    let non_ascii = ["tck:clear-ünïcödé", "tck:clear-日本語", "tck:clear-🦀"];
    for key in non_ascii {
        set(cache, key, b"x", KEEP).await?;
    }
    let added: &[&str] = if cache.limits().atomic_add {
        &["tck:clear-add-ttl", "tck:clear-add-none"]
    } else {
        &[]
    };
    for (&key, ttl) in added.iter().zip([KEEP, None]) {
        cache
            .add(key, Bytes::from_static(b"x"), ttl)
            .await
            .or_fail(|| format!("add({key:?}) of an absent key"))?;
    }
    let mut keys = vec![
        "tck:clear-set-ttl",
        "tck:clear-set-none",
        "tck:clear-ttl-then-none",
        "tck:clear-none-then-ttl",
        "tck:clear-empty",
        &long_key,
        "tck:clear spaces\r\nand controls",
        "tck:clear-batch-ttl",
        "tck:clear-set-then-batch",
        "tck:clear-batch-none",
    ];
    keys.extend(added);
    keys.extend(non_ascii);
    // Keys without the `tck:` prefix or any colon, or made of a lone `%`: a `clear` that
    // walks only keys shaped like `name:rest` leaves them.
    let unprefixed = ["with space", "%", "nocolon", "tck-nocolon"];
    for key in unprefixed {
        set(cache, key, b"x", KEEP).await?;
    }
    keys.extend(unprefixed);
    // Entries with TTLs of a day, a month and ten years: a `clear` that leaves a
    // long-lived tier alone leaves them.
    let long_lived = [
        ("tck:clear-day", Duration::from_secs(24 * 3600)),
        ("tck:clear-month", Duration::from_secs(31 * 24 * 3600)),
        (
            "tck:clear-decade",
            Duration::from_secs(10 * 365 * 24 * 3600),
        ),
    ];
    for (key, ttl) in long_lived {
        set(cache, key, b"x", Some(ttl)).await?;
    }
    keys.extend(long_lived.map(|(key, _)| key));

    cache
        .clear()
        .await
        .or_fail(|| format!("clear() of {} entries", keys.len()))?;
    for &key in &keys {
        expect(cache, key, None, "after clear").await?;
    }
    expect_many(cache, &keys, &vec![None; keys.len()], "after clear").await?;
    for &key in &keys {
        exists(cache, key, false, "after clear").await?;
    }
    let step = || format!("delete_many of the {} cleared keys", keys.len());
    let removed = cache.delete_many(&keys).await.or_fail(step)?;
    if removed != 0 {
        return Err(Failure::new(step(), "Ok(0)", format!("Ok({removed})")));
    }
    // One by one too, and an `add` of a cleared key stores.
    delete(cache, "tck:clear-set-none", false, "after clear").await?;
    if cache.limits().atomic_add {
        add_absent(cache, "tck:clear-set-ttl", b"added", KEEP).await?;
    }

    cache
        .set_many(&batch, KEEP)
        .await
        .or_fail(|| "set_many of 2 entries with a 1h ttl after clear".to_owned())?;
    expect_many(
        cache,
        &["tck:clear-batch-ttl", "tck:clear-set-then-batch"],
        &[Some(b"x"), Some(b"y")],
        "after clear, then set_many",
    )
    .await
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

/// `clear`, `delete` and `delete_many` on one cache leave another cache of the same
/// factory untouched.
///
/// The second cache is a namespace of its own on the same server (or an instance of its
/// own): neither cache sees the other's keys (short ones, keys outside ASCII and keys
/// over 250 bytes alike, written by `set` or `set_many`), an `add` of a key only the
/// other holds stores, a `delete` or `delete_many` of a key both hold removes only the
/// deleting cache's, a `delete` of a key only the other holds removes nothing (and
/// `get_many`, `delete_many` and `set_many` of such a key neither read, count, remove
/// nor overwrite the other's entry), and a `clear` only its entries, with or without
/// TTL.
pub async fn test_clear_leaves_other_caches_alone(
    cache: &dyn Cache,
    other: &dyn Cache,
) -> CheckResult {
    const SHARED: &str = "tck:neighbour-shared";
    const MINE: &str = "tck:neighbour-mine";
    const THEIRS: &str = "tck:neighbour-theirs";
    const THEIRS_FOREVER: &str = "tck:neighbour-theirs-without-ttl";
    const BATCHED: &str = "tck:neighbour-batched";
    let second = "in a second cache from the factory (each test must get a cache of its own)";
    let long = format!("tck:neighbour-{}", "long".repeat(70));
    let shared = [SHARED, "tck:neighbour-ünïcödé", &long];
    for key in shared {
        set(cache, key, b"first", KEEP).await?;
    }
    set(cache, MINE, b"first", KEEP).await?;
    let written = format!("{second}, after the first wrote it");
    for key in shared {
        expect(other, key, None, &written).await?;
    }
    exists(other, MINE, false, &written).await?;
    for key in &shared[1..] {
        set(other, key, b"second", KEEP).await?;
    }
    set(other, SHARED, b"second", KEEP).await?;
    set(other, THEIRS, b"second", KEEP).await?;
    // An entry without TTL too: a clear that takes those of every namespace fails here.
    set(other, THEIRS_FOREVER, b"second", None).await?;
    let outcome = async {
        let same_key = "after a second cache from the factory wrote the same key";
        for key in shared {
            expect(cache, key, Some(b"first"), same_key).await?;
        }
        if other.limits().atomic_add {
            add_absent(other, MINE, b"second", KEEP).await?;
            expect(
                cache,
                MINE,
                Some(b"first"),
                "after an add of the same key by a second cache from the factory",
            )
            .await?;
        }
        cache
            .set_many(&[(BATCHED, Bytes::from_static(b"first"))], KEEP)
            .await
            .or_fail(|| format!("set_many([{BATCHED:?}]) of the first cache"))?;
        let batched = format!("{second}, after the first wrote it with set_many");
        expect(other, BATCHED, None, &batched).await?;
        delete(cache, SHARED, true, same_key).await?;
        let deleted = format!("{second}, after the first deleted the same key");
        expect(other, SHARED, Some(b"second"), &deleted).await?;
        set(cache, SHARED, b"first", KEEP).await?;
        let step =
            || format!("delete_many([{SHARED:?}, \"tck:neighbour-absent\"]) of the first cache");
        let removed = cache
            .delete_many(&[SHARED, "tck:neighbour-absent"])
            .await
            .or_fail(step)?;
        if removed != 1 {
            return Err(Failure::new(step(), "Ok(1)", format!("Ok({removed})")));
        }
        let deleted_many =
            format!("{second}, after the first deleted the same key with delete_many");
        expect(other, SHARED, Some(b"second"), &deleted_many).await?;
        let theirs_only = "of the first cache, of a key only the second holds";
        delete(cache, THEIRS, false, theirs_only).await?;
        expect(
            other,
            THEIRS,
            Some(b"second"),
            &format!("{second}, after a delete {theirs_only}"),
        )
        .await?;
        // The second cache's batches, over keys only the first holds: `get_many` misses,
        // `delete_many` removes and counts nothing, `set_many` writes its own entry.
        let only_first = format!("{second}, of keys only the first holds");
        expect_many(
            other,
            &[BATCHED, "tck:neighbour-absent"],
            &[None, None],
            &only_first,
        )
        .await?;
        let step = || format!("delete_many([{BATCHED:?}]) {only_first}");
        let removed = other.delete_many(&[BATCHED]).await.or_fail(step)?;
        if removed != 0 {
            return Err(Failure::new(step(), "Ok(0)", format!("Ok({removed})")));
        }
        expect(
            cache,
            BATCHED,
            Some(b"first"),
            &format!("after a delete_many by a second cache from the factory, {only_first}"),
        )
        .await?;
        other
            .set_many(&[(BATCHED, Bytes::from_static(b"second"))], KEEP)
            .await
            .or_fail(|| format!("set_many([{BATCHED:?}]) {only_first}"))?;
        expect(
            cache,
            BATCHED,
            Some(b"first"),
            "after a set_many of the same key by a second cache from the factory",
        )
        .await?;
        expect(
            other,
            BATCHED,
            Some(b"second"),
            &format!("{second}, after its own set_many"),
        )
        .await?;
        set(cache, SHARED, b"first", KEEP).await?;
        cache
            .clear()
            .await
            .or_fail(|| "clear() of the first cache".to_owned())?;
        expect(cache, SHARED, None, "after clear").await?;
        expect(cache, MINE, None, "after clear").await?;
        let cleared = format!("{second}, after the first was cleared");
        expect(other, SHARED, Some(b"second"), &cleared).await?;
        expect(other, THEIRS, Some(b"second"), &cleared).await?;
        for key in &shared[1..] {
            expect(other, key, Some(b"second"), &cleared).await?;
        }
        expect(other, THEIRS_FOREVER, Some(b"second"), &cleared).await
    }
    .await;
    // The second cache's entries go either way; the first's went with its clear.
    let mut theirs = vec![SHARED, THEIRS, THEIRS_FOREVER, MINE, BATCHED];
    theirs.extend(&shared[1..]);
    let removed = other.delete_many(&theirs).await;
    outcome?;
    removed
        .map(drop)
        .or_fail(|| format!("delete_many of its {} keys {second}", theirs.len()))
}

/// The key a cache of the factory writes before it is dropped, in the factory's
/// lifecycle steps of the check of two caches ([`run_pair_check_from`](crate::run_pair_check_from)).
const DROPPED: &str = "tck:lifecycle-dropped";

/// The key a cache writes before the factory makes another.
const EARLIER: &str = "tck:lifecycle-earlier";

/// The first lifecycle step: a cache of the factory writes a key (for a minute, so that
/// a namespace nobody cleans loses it soon), then is dropped.
pub(crate) async fn write_then_drop(cache: impl Cache) -> CheckResult {
    set(&cache, DROPPED, b"dropped", Some(LONG_TTL)).await
}

/// The next cache of the factory starts clean: the key a dropped cache wrote is not
/// there. Then it writes a key of its own, which the factory's next cache must leave.
pub(crate) async fn clean_after_a_dropped_one(cache: &dyn Cache) -> CheckResult {
    expect(
        cache,
        DROPPED,
        None,
        "in a cache from the factory made after another one wrote it and was dropped",
    )
    .await?;
    set(cache, EARLIER, b"earlier", Some(LONG_TTL)).await
}

/// Making a cache leaves the entries of caches made before it alone: no wipe of the
/// store by the factory.
pub(crate) async fn kept_when_another_is_made(cache: &dyn Cache) -> CheckResult {
    expect(
        cache,
        EARLIER,
        Some(b"earlier"),
        "after the factory made a second cache",
    )
    .await?;
    delete(
        cache,
        EARLIER,
        true,
        "after the factory made a second cache",
    )
    .await
}
