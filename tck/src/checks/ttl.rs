//! TTLs: zero, none, rounding to the granularity, long and unrepresentable TTLs, and
//! entries that must still be there well before their TTL.

use std::time::{Duration, Instant};

use cache_api::{Bytes, Cache, CacheError, Limits};

use super::values::timed_limits;
use super::{
    add_absent, certainly_alive_for, delete, describe, exists, expect, expect_alive, expect_many,
    get, patterned, remove, set, short_ttl, sleep_past, too_loaded, Alive, ATTEMPTS, EXPIRY_MARGIN,
    KEEP, KEEP_TTL, LONG_TTL, PRESENCE_TTL,
};
use crate::failure::{CheckResult, Failure, OrFail};

/// How far into [`PRESENCE_TTL`] the presence check reads its entries again: far past a
/// TTL ten times too short, far before the real one ends.
const PRESENCE_WAIT: Duration = Duration::from_millis(1500);

/// The slack of the check that entries expire on time: the set returned after the server
/// took it, so the wait starts after the entry's TTL did, and a read that comes late
/// only makes the miss more certain; what is left is timer and clock jitter.
const ON_TIME_MARGIN: Duration = Duration::from_millis(20);

/// A zero TTL stores nothing and removes the value the key had, with a TTL or without;
/// the key is then absent to `exists`, `delete` and `add` too.
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
    set(cache, "tck:zero-old", b"old", KEEP).await?;
    set(cache, "tck:zero-old", b"new", Some(Duration::ZERO)).await?;
    let zeroed = "after set with a 1h ttl, then set with a zero ttl";
    expect(cache, "tck:zero-old", None, zeroed).await?;
    exists(cache, "tck:zero-old", false, zeroed).await?;
    delete(cache, "tck:zero-old", false, zeroed).await?;
    if cache.limits().atomic_add {
        add_absent(cache, "tck:zero-old", b"added", KEEP).await?;
    }
    set(cache, "tck:zero-no-ttl", b"old", None).await?;
    set(cache, "tck:zero-no-ttl", b"new", Some(Duration::ZERO)).await?;
    let removed = expect(
        cache,
        "tck:zero-no-ttl",
        None,
        "after set without ttl, then set with a zero ttl",
    )
    .await;
    remove(cache, &["tck:zero-no-ttl"]).await;
    removed
}

/// A set without TTL on a key that had one removes the old TTL.
pub async fn test_set_without_ttl_clears_previous_ttl(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
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

/// Setting a key to the value it already holds still replaces its TTL: a short TTL then
/// none keeps the entry, a long TTL then a short one lets it expire, and so does none
/// then a short one (a backend that skips writes of an unchanged value, or keeps the
/// entry's first TTL, fails here).
pub async fn test_set_of_the_same_value_still_replaces_the_ttl(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    set(cache, "tck:same-kept", b"same", Some(ttl)).await?;
    set(cache, "tck:same-kept", b"same", None).await?;
    set(cache, "tck:same-shortened", b"same", Some(LONG_TTL)).await?;
    set(cache, "tck:same-shortened", b"same", Some(ttl)).await?;
    set(cache, "tck:same-given", b"same", None).await?;
    set(cache, "tck:same-given", b"same", Some(ttl)).await?;
    let wait = sleep_past(ttl, &limits).await;
    let kept = expect(
        cache,
        "tck:same-kept",
        Some(b"same"),
        &format!("{wait:?} after set(\"same\", {ttl:?}) then set(\"same\", None)"),
    )
    .await;
    let given = expect(
        cache,
        "tck:same-given",
        None,
        &format!("{wait:?} after set(\"same\", None) then set(\"same\", {ttl:?})"),
    )
    .await;
    remove(cache, &["tck:same-kept", "tck:same-given"]).await;
    kept?;
    given?;
    expect(
        cache,
        "tck:same-shortened",
        None,
        &format!("{wait:?} after set(\"same\", 60s) then set(\"same\", {ttl:?})"),
    )
    .await
}

/// TTLs of a few seconds are kept to the granularity both ways: entries with a 1.9 s
/// TTL are there 1.3 s in and ones with a 1.4 s TTL 1.15 s in (not rounded down, nor to
/// the nearest second; on a backend whose clock ticks once a second, earlier), written
/// by `set`, `set_many` and, where declared, `add`; and ones with a 2.5 s TTL are gone by
/// their TTL plus the granularity and 20 ms (not ignored, not kept late), also when read
/// by `get`, `exists` and `get_many` meanwhile (a read does not push the expiry out).
///
/// Entries of every shape expire alike: an empty value, one over 64 KiB, one under a key
/// over 250 bytes and one under a non-ASCII key; at that time `exists`, `get_many` and
/// `delete` see them gone too. An entry with a 3 s TTL is gone by its TTL plus the
/// granularity and 20 ms as well (not ignored, not rounded up to a minute), and so are
/// ones with TTLs of 1.05 s and 2.005 s (no multiple of 100 ms, just past a second:
/// not rounded to a coarser step than declared, the fraction not misread); one with a
/// 4.9 s TTL is there 4.3 s in (long TTLs not rounded down to whole seconds).
pub async fn test_ttls_of_seconds_are_kept_to_the_granularity(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
    let expiring = Duration::from_millis(2500);
    let longer = Duration::from_secs(3);
    // Each wait counts from when the writes had returned: the server had the entries by
    // then, so a read after it that finds one proves it was kept late.
    for key in EXPIRING.iter().chain([&EXPIRED_DELETE]) {
        set(cache, key, b"expiring", Some(expiring)).await?;
    }
    let expiring_set = Instant::now();
    let shapes = shapes(&limits);
    for (key, value, _) in &shapes {
        set(cache, key, value, Some(expiring)).await?;
    }
    let shapes_set = Instant::now();
    set(cache, LONGER, b"three seconds", Some(longer)).await?;
    let longer_set = Instant::now();
    for (fractional, nominal) in [(1900, 1300), (1400, 1150)] {
        let (fractional, nominal) = (
            Duration::from_millis(fractional),
            Duration::from_millis(nominal),
        );
        // On a coarse clock an entry may go a granularity early: read well before that.
        let read_at = if limits.ttl_granularity >= Duration::from_millis(100) {
            (certainly_alive_for(fractional, &limits) * 3 / 4).min(nominal)
        } else {
            nominal
        };
        present_into(cache, fractional, read_at).await?;
    }
    // Reads during the TTL, whatever they find: a backend that restarts the TTL on a
    // read (an idle timeout) keeps these entries past `due`.
    let [by_get, by_exists, by_get_many] = EXPIRING;
    let _ = cache.get(by_get).await;
    let _ = cache.exists(by_exists).await;
    let _ = cache.get_many(&[by_get_many]).await;
    let read_at = expiring_set.elapsed();
    let due = limits.round_up_ttl(expiring) + limits.ttl_granularity + ON_TIME_MARGIN;
    let when = |set: Instant, ttl: Duration| {
        format!(
            "{:?} after set with a {ttl:?} ttl (granularity {:?})",
            set.elapsed(),
            limits.ttl_granularity
        )
    };
    tokio::time::sleep_until((expiring_set + due).into()).await;
    for (key, read) in EXPIRING.iter().zip(["get", "exists", "get_many"]) {
        expect(
            cache,
            key,
            None,
            &format!(
                "{}, read by {read} {read_at:?} in",
                when(expiring_set, expiring)
            ),
        )
        .await?;
    }
    // The reads besides `get` see them gone as soon, as do the entries of every shape.
    exists(cache, by_exists, false, &when(expiring_set, expiring)).await?;
    expect_many(
        cache,
        &[by_get_many],
        &[None],
        &when(expiring_set, expiring),
    )
    .await?;
    delete(cache, EXPIRED_DELETE, false, &when(expiring_set, expiring)).await?;
    tokio::time::sleep_until((shapes_set + due).into()).await;
    for (key, _, shape) in &shapes {
        let context = format!("{} ({shape})", when(shapes_set, expiring));
        expect(cache, key, None, &context).await?;
    }
    let due = limits.round_up_ttl(longer) + limits.ttl_granularity + ON_TIME_MARGIN;
    tokio::time::sleep_until((longer_set + due).into()).await;
    expect(cache, LONGER, None, &when(longer_set, longer)).await?;
    // TTLs that are no multiple of 100 ms, just over a second boundary, gone on time (a
    // backend that rounds to a coarser step than it declares, or that writes 1.05 s as
    // "1.5", keeps them late), beside a TTL past 4 s still there well before its end (a
    // backend that rounds long TTLs down to whole seconds drops it early).
    let long = Duration::from_millis(4900);
    let read_at = if limits.ttl_granularity >= Duration::from_millis(100) {
        (certainly_alive_for(long, &limits) * 3 / 4).min(Duration::from_millis(4300))
    } else {
        Duration::from_millis(4300)
    };
    let (gone, present) = tokio::join!(
        odd_ttls_gone_on_time(cache, &limits),
        present_into(cache, long, read_at)
    );
    gone.and(present)
}

/// Entries with TTLs of 1.05 s and 2.005 s, each read when its TTL, rounded up to the
/// granularity, and one granularity more have passed: gone.
async fn odd_ttls_gone_on_time(cache: &dyn Cache, limits: &Limits) -> CheckResult {
    let mut written = Vec::new();
    for ttl in [Duration::from_millis(1050), Duration::from_millis(2005)] {
        let key = format!("tck:seconds-odd-{}", ttl.as_millis());
        set(cache, &key, b"odd ttl", Some(ttl)).await?;
        written.push((key, ttl, Instant::now()));
    }
    for (key, ttl, written_at) in written {
        let due = limits.round_up_ttl(ttl) + limits.ttl_granularity + ON_TIME_MARGIN;
        tokio::time::sleep_until((written_at + due).into()).await;
        let context = format!(
            "{:?} after set with a {ttl:?} ttl (granularity {:?})",
            written_at.elapsed(),
            limits.ttl_granularity
        );
        expect(cache, &key, None, &context).await?;
    }
    Ok(())
}

/// Entries of the shapes a backend may store apart (an empty value, one over 64 KiB, a
/// key over 250 bytes, a non-ASCII key): key, value and what the shape is.
fn shapes(limits: &Limits) -> Vec<(String, Vec<u8>, &'static str)> {
    let large = (64 * 1024 + 1000).min(limits.max_value_size);
    vec![
        (
            "tck:seconds-shape-empty".to_owned(),
            Vec::new(),
            "empty value",
        ),
        (
            "tck:seconds-shape-large".to_owned(),
            patterned(large, 7),
            "value over 64 KiB",
        ),
        (
            format!("tck:seconds-shape-{}", "long".repeat(70)),
            b"long key".to_vec(),
            "key over 250 bytes",
        ),
        (
            "tck:seconds-shape-ünïcödé-ключ".to_owned(),
            b"non-ascii key".to_vec(),
            "non-ascii key",
        ),
    ]
}

/// The entry of the check above with a TTL of 3 s.
const LONGER: &str = "tck:seconds-three";

/// The entry of the check above deleted once expired.
const EXPIRED_DELETE: &str = "tck:seconds-expiring-delete";

/// Writes an entry with `ttl` by each write path and reads each `read_at` into it,
/// expecting it there; a read that comes too late tries again with fresh keys.
async fn present_into(cache: &dyn Cache, ttl: Duration, read_at: Duration) -> CheckResult {
    let step = format!("get {read_at:?} into a {ttl:?} ttl");
    let value = b"fractional";
    for attempt in 0..ATTEMPTS {
        let mut written = Vec::new();
        let key = format!("tck:seconds-{}-set-{attempt}", ttl.as_millis());
        let started = Instant::now();
        set(cache, &key, value, Some(ttl)).await?;
        written.push((key, "set", started));
        let key = format!("tck:seconds-{}-set-many-{attempt}", ttl.as_millis());
        let started = Instant::now();
        cache
            .set_many(&[(key.as_str(), Bytes::from_static(value))], Some(ttl))
            .await
            .or_fail(|| format!("set_many([{key:?}]) with a {ttl:?} ttl"))?;
        written.push((key, "set_many", started));
        if cache.limits().atomic_add {
            let key = format!("tck:seconds-{}-add-{attempt}", ttl.as_millis());
            let started = Instant::now();
            add_absent(cache, &key, value, Some(ttl)).await?;
            written.push((key, "add", started));
        }
        let mut too_late = false;
        for (key, path, started) in &written {
            tokio::time::sleep_until((*started + read_at).into()).await;
            let context = format!("{read_at:?} into a {ttl:?} ttl given by {path}");
            too_late |=
                expect_alive(cache, key, value, ttl, *started, &context).await? == Alive::TooLate;
        }
        if !too_late {
            return Ok(());
        }
    }
    Err(too_loaded(&step, read_at))
}

/// The entries of the check above that must expire on time, each read meanwhile by
/// one of `get`, `exists` and `get_many`.
const EXPIRING: [&str; 3] = [
    "tck:seconds-expiring",
    "tck:seconds-expiring-exists",
    "tck:seconds-expiring-many",
];

/// A longer TTL set over a shorter one keeps the entry past the first TTL; so does the
/// same TTL set again later, which counts from the second write, not the first.
pub async fn test_overwrite_with_a_longer_ttl_extends_the_entry(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
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
    .await?;
    // Written again `gap` into its TTL, read once the first write's TTL is certainly
    // over and while the second's certainly is not, whatever the granularity.
    let granularity = limits.ttl_granularity;
    let gap = granularity * 2 + Duration::from_millis(500);
    let ttl = limits.round_up_ttl(gap + Duration::from_millis(500));
    for attempt in 0..ATTEMPTS {
        let key = format!("tck:ttl-restarted-{attempt}");
        let first = Instant::now();
        set(cache, &key, b"first", Some(ttl)).await?;
        tokio::time::sleep_until((first + gap).into()).await;
        let second = Instant::now();
        set(cache, &key, b"second", Some(ttl)).await?;
        let first_over = limits.round_up_ttl(ttl) + granularity + EXPIRY_MARGIN;
        tokio::time::sleep_until((first + first_over).into()).await;
        let context = format!(
            "{:?} after set({ttl:?}) and {gap:?} after that set({ttl:?}) again",
            first.elapsed()
        );
        if expect_alive(cache, &key, b"second", ttl, second, &context).await? == Alive::Yes {
            return Ok(());
        }
    }
    Err(too_loaded(
        &format!("get of an entry whose {ttl:?} ttl was set again {gap:?} in"),
        certainly_alive_for(ttl, &limits),
    ))
}

/// A TTL below the backend's granularity is rounded up, never down to "no expiry"
/// or to "already expired"; so is a TTL with a part below it (1 s and 1 ns, 1.5 ms),
/// never refused.
pub async fn test_ttl_below_granularity_is_rounded_up(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
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

    // TTLs over the granularity with a part below it (1 s and 1 ns, 1.5 ms): rounded
    // up, never refused, and there right after set.
    for ttl in [Duration::new(1, 1), Duration::from_micros(1500)]
        .into_iter()
        .filter(|ttl| *ttl > granularity)
    {
        let key = format!("tck:sub-granularity-part-{}", ttl.as_nanos());
        set(cache, &key, b"rounded up", Some(ttl)).await?;
        if ttl >= Duration::from_secs(1) {
            expect(
                cache,
                &key,
                Some(b"rounded up"),
                &format!("right after set with a {ttl:?} ttl"),
            )
            .await?;
        }
        remove(cache, &[key.as_str()]).await;
    }

    // Rounded down to zero, others would store nothing. Only observable where the
    // granularity is coarse enough to read the entry back before it expires. On a 1 s
    // clock that ticks on its own an entry may live anywhere up to 1 s, so a miss is
    // allowed; only misses read within half a granularity of their set count, and
    // three of them fail.
    if granularity >= Duration::from_millis(100) {
        let counted_within = granularity / 2;
        let mut misses = Vec::new();
        for attempt in 0..ATTEMPTS * 2 {
            let key = format!("tck:sub-granularity-{attempt}");
            let started = Instant::now();
            set(cache, &key, b"rounded up", Some(sub)).await?;
            let answer = get(cache, &key, "right after set").await?;
            if answer.as_deref() == Some(b"rounded up") {
                return Ok(());
            }
            if answer.is_some() || started.elapsed() < counted_within {
                misses.push(describe(&answer));
            }
            if misses.len() == ATTEMPTS {
                break;
            }
        }
        let step = format!("get right after set with a {sub:?} ttl (granularity {granularity:?})");
        if misses.is_empty() {
            return Err(too_loaded(&step, counted_within));
        }
        return Err(Failure::new(
            format!("{step}, {} times", misses.len()),
            "the value at least once",
            misses.join(", "),
        ));
    }
    Ok(())
}

/// Entries are still there well before their TTL: right after `set`, and 1.5 s into a
/// 6 s and a 1 h TTL (a backend whose TTLs are too short, or that stores nothing for
/// short TTLs, fails here).
pub async fn test_entries_are_present_well_before_their_ttl(cache: &dyn Cache) -> CheckResult {
    let short = short_ttl(&timed_limits(cache)?);
    for attempt in 0..ATTEMPTS {
        if presence_attempt(cache, attempt, short).await? == Alive::Yes {
            return Ok(());
        }
    }
    Err(too_loaded(
        "get of entries right after set and 1.5s into their ttl",
        PRESENCE_TTL - PRESENCE_WAIT,
    ))
}

/// One try of the presence check, on keys of its own.
async fn presence_attempt(
    cache: &dyn Cache,
    attempt: usize,
    short: Duration,
) -> Result<Alive, Failure> {
    let value = b"present";
    let limits = timed_limits(cache)?;
    let mut written = Vec::new();
    for (name, ttl) in [("short", short), ("6s", PRESENCE_TTL), ("1h", KEEP_TTL)] {
        let key = format!("tck:present-{name}-{attempt}");
        let started = Instant::now();
        set(cache, &key, value, Some(ttl)).await?;
        let alive = expect_alive(cache, &key, value, ttl, started, "right after set").await?;
        // A TTL within a granularity of nothing (1 s on a 1 s clock) promises nothing.
        if alive == Alive::TooLate && !certainly_alive_for(ttl, &limits).is_zero() {
            return Ok(Alive::TooLate);
        }
        written.push((key, ttl, started));
    }
    tokio::time::sleep(PRESENCE_WAIT).await;
    // The short entry may well be gone by now; the others certainly are not.
    for (key, ttl, started) in &written[1..] {
        let context = format!("{PRESENCE_WAIT:?} into its ttl");
        if expect_alive(cache, key, value, *ttl, *started, &context).await? == Alive::TooLate {
            return Ok(Alive::TooLate);
        }
    }
    Ok(Alive::Yes)
}

/// Entries written without TTL, by `set`, `set_many` and (where declared) `add`, empty
/// ones too, are still there after the longest TTL any check waits into (6 s) has
/// passed; so are entries with TTLs from an hour to ten years, written by `set`,
/// `set_many` and (where declared) `add`, and ones whose TTL in milliseconds or seconds
/// overflows 32 bits (kept as given, or refused with `InvalidTtl`): a backend that caps
/// TTLs, or keeps them in 32 bits, loses them within the wait.
///
/// So are entries written by `set` and `add` without TTL over an expired entry never read
/// since; and within the same wait, entries with TTLs of 5, 50, 150 and 250 ms, and one
/// of 4.5 s, are gone by their TTL, the granularity and 100 ms.
pub async fn test_entries_without_ttl_outlive_every_ttl_of_the_run(
    cache: &dyn Cache,
) -> CheckResult {
    let limits = timed_limits(cache)?;
    set(cache, "tck:none-set", b"no ttl", None).await?;
    set(cache, "tck:none-empty", b"", None).await?;
    cache
        .set_many(&[("tck:none-batch", Bytes::from_static(b"no ttl"))], None)
        .await
        .or_fail(|| "set_many([(\"tck:none-batch\", \"no ttl\")], None)".to_owned())?;
    let mut entries: Vec<(String, &[u8], String)> = [
        ("tck:none-set", &b"no ttl"[..]),
        ("tck:none-empty", b""),
        ("tck:none-batch", b"no ttl"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value, "without ttl".to_owned()))
    .collect();
    if cache.limits().atomic_add {
        add_absent(cache, "tck:none-add", b"no ttl", None).await?;
        entries.push((
            "tck:none-add".to_owned(),
            b"no ttl",
            "without ttl by add".to_owned(),
        ));
    }
    entries.extend(write_long_lived(cache).await?);
    let written = Instant::now();
    let wait = limits.round_up_ttl(PRESENCE_TTL) + limits.ttl_granularity + EXPIRY_MARGIN;
    // The wait holds the checks of shorter TTLs, each due before its end.
    entries.extend(expiries_within_the_wait(cache, &limits, written, written + wait).await?);
    tokio::time::sleep_until((written + wait).into()).await;
    for (key, value, how) in &entries {
        expect(
            cache,
            key,
            Some(value),
            &format!("{wait:?} after it was written {how}"),
        )
        .await?;
    }
    let keys: Vec<&str> = entries.iter().map(|(key, _, _)| key.as_str()).collect();
    remove(cache, &keys).await;
    Ok(())
}

/// The TTLs of [`expiries_within_the_wait`] under a second: a backend that keeps brief
/// TTLs apart (or lets them be until a sweep) keeps them.
const BRIEF_TTLS: [Duration; 4] = [
    Duration::from_millis(5),
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(250),
];

/// A TTL of seconds between two multiples of 5 s and far from a whole minute, within the
/// wait of the check above.
const FOUR_AND_A_HALF_SECONDS: Duration = Duration::from_millis(4500);

/// Runs, between `start` and `end`, the checks the wait of
/// [`test_entries_without_ttl_outlive_every_ttl_of_the_run`] leaves room for: entries
/// with [`BRIEF_TTLS`] are gone by their TTL, the granularity and the margin; `set` and
/// `add` without TTL over an expired entry never read since store it right away (and the
/// entries returned must still be there at `end`, long past the old TTL: it was not
/// kept); an entry with a 4.5 s TTL is gone by its TTL, the granularity and the margin.
async fn expiries_within_the_wait(
    cache: &dyn Cache,
    limits: &Limits,
    start: Instant,
    end: Instant,
) -> Result<Vec<(String, &'static [u8], String)>, Failure> {
    let short = short_ttl(limits);
    let mut over_expired = vec![("tck:none-over-expired-set", "set")];
    if cache.limits().atomic_add {
        over_expired.push(("tck:none-over-expired-add", "add"));
    }
    for (key, _) in &over_expired {
        set(cache, key, b"expiring", Some(short)).await?;
    }
    for ttl in BRIEF_TTLS {
        let key = format!("tck:brief-{}ms", ttl.as_millis());
        set(cache, &key, b"brief", Some(ttl)).await?;
    }
    let brief_set = Instant::now();
    set(
        cache,
        "tck:four-and-a-half",
        b"4.5s",
        Some(FOUR_AND_A_HALF_SECONDS),
    )
    .await?;
    let four_set = Instant::now();
    let gone_after =
        |ttl: Duration| limits.round_up_ttl(ttl) + limits.ttl_granularity + EXPIRY_MARGIN;
    let brief_due = BRIEF_TTLS.into_iter().chain([short]).map(gone_after).max();
    tokio::time::sleep_until((brief_set + brief_due.unwrap_or_default()).into()).await;
    for ttl in BRIEF_TTLS {
        let key = format!("tck:brief-{}ms", ttl.as_millis());
        let context = format!(
            "{:?} after set with a {ttl:?} ttl (granularity {:?})",
            brief_set.elapsed(),
            limits.ttl_granularity
        );
        expect(cache, &key, None, &context).await?;
    }
    let mut written = Vec::new();
    for (key, path) in over_expired {
        let how = format!(
            "by {path} without ttl over an expired entry of a {short:?} ttl, {:?} into the wait",
            start.elapsed()
        );
        if path == "set" {
            set(cache, key, b"no ttl", None).await?;
        } else {
            add_absent(cache, key, b"no ttl", None).await?;
        }
        expect(
            cache,
            key,
            Some(b"no ttl"),
            &format!("right after it was written {how}"),
        )
        .await?;
        written.push((key.to_owned(), &b"no ttl"[..], how));
    }
    let four_due = four_set + gone_after(FOUR_AND_A_HALF_SECONDS);
    if four_due < end {
        tokio::time::sleep_until(four_due.into()).await;
        let context = format!(
            "{:?} after set with a {FOUR_AND_A_HALF_SECONDS:?} ttl (granularity {:?})",
            four_set.elapsed(),
            limits.ttl_granularity
        );
        expect(cache, "tck:four-and-a-half", None, &context).await?;
    }
    Ok(written)
}

/// Writes an entry for each long TTL, by each write path; the keys written, their
/// value and how they were written. A TTL past 32 bits refused with `InvalidTtl` is
/// left out.
async fn write_long_lived(
    cache: &dyn Cache,
) -> Result<Vec<(String, &'static [u8], String)>, Failure> {
    const DAY: u64 = 24 * 60 * 60;
    let value: &'static [u8] = b"long-lived";
    let ttls = [
        ("1h", KEEP_TTL, true),
        ("31d", Duration::from_secs(31 * DAY), true),
        ("10y", Duration::from_secs(3653 * DAY), true),
        // Each wraps to about a second when kept in 32 bits.
        ("2^31ms+1s", Duration::from_millis((1 << 31) + 1000), true),
        ("2^32ms+1s", Duration::from_millis((1 << 32) + 1000), true),
        ("2^32s+1s", Duration::from_secs((1 << 32) + 1), false),
    ];
    let mut written = Vec::new();
    for (name, ttl, representable) in ttls {
        let how = |path: &str| format!("by {path} with a {ttl:?} ttl");
        let key = format!("tck:long-set-{name}");
        match cache.set(&key, Bytes::from_static(value), Some(ttl)).await {
            Err(CacheError::InvalidTtl { .. }) if !representable => continue,
            result => result.or_fail(|| format!("set({key:?}) with a {ttl:?} ttl"))?,
        }
        written.push((key, value, how("set")));
        let key = format!("tck:long-batch-{name}");
        cache
            .set_many(&[(key.as_str(), Bytes::from_static(value))], Some(ttl))
            .await
            .or_fail(|| format!("set_many([{key:?}]) with a {ttl:?} ttl"))?;
        written.push((key, value, how("set_many")));
        if cache.limits().atomic_add {
            let key = format!("tck:long-add-{name}");
            add_absent(cache, &key, value, Some(ttl)).await?;
            written.push((key, value, how("add")));
        }
    }
    Ok(written)
}

/// TTLs of 30 days, a fraction and a second past it, 31 days and 10 years keep the entry
/// readable right away (memcached reads more than 30 days as a Unix time, so an adapter
/// must convert, on both sides of the line).
pub async fn test_long_ttls_are_readable_right_away(cache: &dyn Cache) -> CheckResult {
    const DAY: u64 = 24 * 60 * 60;
    let thirty_days = Duration::from_secs(30 * DAY);
    let entries = [
        ("tck:ttl-31-days", Duration::from_secs(31 * DAY)),
        ("tck:ttl-10-years", Duration::from_secs(3653 * DAY)),
        // Either side of memcached's 30-day line, and a fraction past it.
        ("tck:ttl-30-days", thirty_days),
        (
            "tck:ttl-30-days-and-a-half-second",
            thirty_days + Duration::from_millis(500),
        ),
        (
            "tck:ttl-30-days-and-a-second",
            thirty_days + Duration::from_secs(1),
        ),
    ];
    for (key, ttl) in entries {
        set(cache, key, b"long-lived", Some(ttl)).await?;
        expect(
            cache,
            key,
            Some(b"long-lived"),
            &format!("right after set with a {ttl:?} ttl"),
        )
        .await?;
    }
    remove(cache, &entries.map(|(key, _)| key)).await;
    Ok(())
}

/// A TTL too large to represent (100 years, `u32::MAX` and `u64::MAX / 2` seconds,
/// `Duration::MAX`) is either kept as "very long" or refused with `InvalidTtl`, in which
/// case the previous value stays; never a panic or another error.
pub async fn test_unrepresentable_ttl_is_kept_or_rejected(cache: &dyn Cache) -> CheckResult {
    const YEAR: u64 = 365 * 24 * 60 * 60;
    for ttl in [
        Duration::MAX,
        Duration::from_secs(100 * YEAR),
        Duration::from_secs(u64::from(u32::MAX)),
        Duration::from_secs(u64::MAX / 2),
    ] {
        let result = kept_or_rejected(cache, ttl).await;
        remove(cache, &["tck:ttl-max"]).await;
        result?;
    }
    Ok(())
}

/// A set with `ttl` over a value with a 1 h TTL: stored, or refused with `InvalidTtl`
/// and the old value left.
async fn kept_or_rejected(cache: &dyn Cache, ttl: Duration) -> CheckResult {
    let (named, argument) = if ttl == Duration::MAX {
        ("Duration::MAX".to_owned(), "Duration::MAX".to_owned())
    } else {
        (format!("a {ttl:?} ttl"), format!("{ttl:?}"))
    };
    set(cache, "tck:ttl-max", b"before", KEEP).await?;
    match cache
        .set("tck:ttl-max", Bytes::from_static(b"after"), Some(ttl))
        .await
    {
        Ok(()) => {
            expect(
                cache,
                "tck:ttl-max",
                Some(b"after"),
                &format!("after set with {named} accepted"),
            )
            .await
        }
        Err(CacheError::InvalidTtl { .. }) => {
            expect(
                cache,
                "tck:ttl-max",
                Some(b"before"),
                &format!("after set with {named} refused"),
            )
            .await
        }
        Err(other) => Err(Failure::new(
            format!("set(\"tck:ttl-max\", \"after\", {argument})"),
            "Ok or Err(InvalidTtl)",
            format!("Err({other}) [{other:?}]"),
        )),
    }
}

/// `delete` of an entry whose TTL has passed returns false.
pub async fn test_delete_of_an_expired_entry_returns_false(cache: &dyn Cache) -> CheckResult {
    let limits = timed_limits(cache)?;
    let ttl = short_ttl(&limits);
    set(cache, "tck:delete-expired", b"x", Some(ttl)).await?;
    sleep_past(ttl, &limits).await;
    delete(cache, "tck:delete-expired", false, "of an expired entry").await
}
