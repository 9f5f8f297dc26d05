//! Values: empty, binary, the largest and one byte over it; what `delete` reports; and
//! the limits a backend declares.

use std::time::Duration;

use cache_api::{Bytes, Cache, CacheError, Limits};

use super::{
    add_absent, delete, expect, expect_many, expect_too_large, expect_too_large_of, patterned,
    remove, set, KEEP, MANY,
};
use crate::failure::{CheckResult, Failure, OrFail};

/// The least a backend may declare as its largest value: 1 MiB, less the 1 KiB that
/// memcached's default 1 MiB item spends on its header and key.
pub const MIN_MAX_VALUE_SIZE: usize = (1 << 20) - 1024;
/// The coarsest TTL granularity a backend may declare: memcached's 1 s.
pub const MAX_TTL_GRANULARITY: Duration = Duration::from_secs(1);

/// The most a backend may declare as its largest value: 1 GiB. The value checks write a
/// value of exactly the declared size and one a byte larger, so a larger limit cannot be
/// checked; it is also more than memcached (1 GiB items at most) or Redis (512 MiB) store.
pub const MAX_CHECKED_VALUE_SIZE: usize = 1 << 30;

/// The largest value the check of oversized values writes to see it refused: eight
/// times the least limit a backend may declare, and more.
const MAX_FAR_OVER: usize = 64 << 20;

/// The declared limits ask no less than the contract: values of at least 1 MiB less
/// 1 KiB (and at most [`MAX_CHECKED_VALUE_SIZE`], which the checks can write), and a TTL
/// granularity of at most 1 s; and an optional operation the backend does not declare
/// (`add`, `clear`) answers `Unsupported` and changes nothing, rather than a silent
/// success the checks of that operation never looked at.
pub async fn test_declared_limits_are_within_the_contract(cache: &dyn Cache) -> CheckResult {
    largest_value(cache)?;
    timed_limits(cache)?;
    let declared = cache.limits();
    if !declared.atomic_add {
        let added = cache
            .add("tck:undeclared-add", Bytes::from_static(b"added"), KEEP)
            .await;
        if !matches!(added, Err(CacheError::Unsupported { .. })) {
            remove(cache, &["tck:undeclared-add"]).await;
            return Err(Failure::new(
                "add of an absent key on a backend that declares no atomic add",
                "Err(Unsupported)",
                format!("{added:?}"),
            ));
        }
        expect(
            cache,
            "tck:undeclared-add",
            None,
            "after add on a backend that declares no atomic add",
        )
        .await?;
    }
    if !declared.clear {
        set(cache, "tck:undeclared-clear", b"kept", KEEP).await?;
        let cleared = cache.clear().await;
        let kept = expect(
            cache,
            "tck:undeclared-clear",
            Some(b"kept"),
            "after clear on a backend that declares no clear",
        )
        .await;
        remove(cache, &["tck:undeclared-clear"]).await;
        if !matches!(cleared, Err(CacheError::Unsupported { .. })) {
            return Err(Failure::new(
                "clear on a backend that declares no clear",
                "Err(Unsupported)",
                format!("{cleared:?}"),
            ));
        }
        kept?;
    }
    Ok(())
}

/// The declared largest value, when the value checks can run on it; otherwise the
/// failure naming it. Every check that writes a value of the declared size asks here.
pub(crate) fn largest_value(cache: &dyn Cache) -> Result<usize, Failure> {
    let declared = cache.limits().max_value_size;
    if declared < MIN_MAX_VALUE_SIZE {
        return Err(Failure::new(
            "limits().max_value_size",
            format!(
                "at least {MIN_MAX_VALUE_SIZE} bytes (the contract: values up to memcached's \
                 default 1 MiB item, so the value checks cannot be made easier)"
            ),
            format!("{declared} bytes"),
        ));
    }
    if declared > MAX_CHECKED_VALUE_SIZE {
        return Err(Failure::new(
            "limits().max_value_size",
            format!(
                "at most {MAX_CHECKED_VALUE_SIZE} bytes (the checks write a value of the \
                 declared size and one a byte larger: declare the largest value the backend \
                 really stores)"
            ),
            format!("{declared} bytes"),
        ));
    }
    Ok(declared)
}

/// The declared limits, when the checks that time expiries can run on them; otherwise
/// the failure naming the granularity. Every check that waits on a TTL asks here, so a
/// granularity outside the contract fails at once instead of sleeping for it.
pub(crate) fn timed_limits(cache: &dyn Cache) -> Result<Limits, Failure> {
    timed(cache.limits())
}

/// `limits`, when the checks that time expiries can run on them, as [`timed_limits`].
pub(crate) fn timed(limits: Limits) -> Result<Limits, Failure> {
    if limits.ttl_granularity > MAX_TTL_GRANULARITY {
        return Err(Failure::new(
            "limits().ttl_granularity",
            format!(
                "at most {MAX_TTL_GRANULARITY:?} (the contract: expiry to the second, so the \
                 ttl checks cannot be made easier)"
            ),
            format!("{:?}", limits.ttl_granularity),
        ));
    }
    Ok(limits)
}

/// An empty value is stored and returned as an empty value, not as a miss, by `get` and
/// by `get_many`.
pub async fn test_empty_value_round_trips(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:empty-value", b"", KEEP).await?;
    expect(
        cache,
        "tck:empty-value",
        Some(b""),
        "after set of an empty value",
    )
    .await?;
    expect_many(
        cache,
        &["tck:empty-value"],
        &[Some(b"")],
        "after set of an empty value",
    )
    .await
}

/// An empty value written over a non-empty one replaces it.
pub async fn test_empty_value_overwrites_non_empty_value(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:empty-over", b"not empty", KEEP).await?;
    set(cache, "tck:empty-over", b"", KEEP).await?;
    expect(
        cache,
        "tck:empty-over",
        Some(b""),
        "after set of \"not empty\" then \"\"",
    )
    .await
}

/// Values are raw bytes: every byte value, invalid UTF-8, protocol-looking bytes,
/// bytes a text-minded layer might "clean" (a byte-order mark, padding, leading zeros)
/// the magic numbers of compressed and zipped data and byte-order marks of UTF-16,
/// and words a client may show for "no value" (`null`, `nil`, `None`) come back
/// exactly, a lone NUL byte too; so does a value starting with each possible byte (a
/// backend that frames values with a tag byte of its own must not take any for its tag).
pub async fn test_binary_values_round_trip(cache: &dyn Cache) -> CheckResult {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let values: [(&str, &[u8]); 29] = [
        ("tck:binary-bom", "\u{feff}text".as_bytes()),
        ("tck:binary-lone-nul", b"\0"),
        ("tck:binary-zeros", b"007"),
        // Text a backend may take for a number and write back canonical.
        ("tck:binary-plus", b"+15551234567"),
        ("tck:binary-minus-zero", b"-0"),
        ("tck:binary-exponent", b"1e3"),
        ("tck:binary-spaced-number", b" 1"),
        ("tck:binary-hex-number", b"0x10"),
        ("tck:binary-decimal", b"1.50"),
        ("tck:binary-padded", b"padded   "),
        ("tck:binary-lead", b" lead"),
        ("tck:binary-tab", b"\ttabbed\t"),
        ("tck:binary-all", &all_bytes),
        // What compressed data starts with: a backend (or a layer) must not take them
        // for its own framing and strip or inflate them.
        ("tck:binary-gzip", b"\x1f\x8b\x08\x00payload"),
        ("tck:binary-zlib", b"\x78\x9cpayload"),
        ("tck:binary-zstd", b"\x28\xb5\x2f\xfdpayload"),
        ("tck:binary-lz4", b"\x04\x22\x4d\x18payload"),
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
        // What a client or a layer may show for "no value": stored, they are values.
        ("tck:binary-null", b"null"),
        ("tck:binary-nil", b"nil"),
        ("tck:binary-nil-shown", b"(nil)"),
        ("tck:binary-none", b"None"),
        ("tck:binary-undefined", b"undefined"),
        ("tck:binary-false", b"false"),
        ("tck:binary-zero", b"0"),
        ("tck:binary-end", b"END"),
    ];
    for (key, value) in values {
        set(cache, key, value, KEEP).await?;
    }
    for (key, value) in values {
        expect(cache, key, Some(value), "after set of binary bytes").await?;
    }
    for first in 0..=255u8 {
        let key = format!("tck:binary-first-{first:02x}");
        let value = [first, b'A'];
        set(cache, &key, &value, KEEP).await?;
        expect(
            cache,
            &key,
            Some(&value),
            "after set of a value starting with this byte",
        )
        .await?;
        remove(cache, &[key.as_str()]).await;
    }
    // Byte-order marks of UTF-16 and the magic numbers of zip and gzip, alone and
    // leading a value: a layer that sniffs them must not strip or decode them.
    let magic: [(&str, &[u8]); 6] = [
        ("tck:binary-utf16le-bom", b"\xff\xfepayload"),
        ("tck:binary-utf16be-bom", b"\xfe\xffpayload"),
        ("tck:binary-zip", b"PK\x03\x04payload"),
        ("tck:binary-gzip-bare", b"\x1f\x8b"),
        ("tck:binary-utf16le-bom-bare", b"\xff\xfe"),
        ("tck:binary-zip-bare", b"PK\x03\x04"),
    ];
    for (key, value) in magic {
        set(cache, key, value, KEEP).await?;
    }
    for (key, value) in magic {
        expect(
            cache,
            key,
            Some(value),
            "after set of a value with a magic prefix",
        )
        .await?;
    }
    Ok(())
}

/// Values of sizes on either side of the usual buffer and frame sizes (1 KiB, 16 KiB,
/// 64 KiB), of 100,000, 200,000, 500,000 and 1,000,000 bytes and of one byte under the
/// declared limit round-trip unchanged, each with a pattern of its own.
///
/// So do values of 2^n bytes and one byte either side, up to 1 MiB or the limit, and
/// values of one byte repeated (zeros, 0xff) of 4 KiB, 64 KiB and the limit (1 MiB at
/// most).
pub async fn test_values_of_every_size_up_to_the_limit_round_trip(
    cache: &dyn Cache,
) -> CheckResult {
    let limit = largest_value(cache)?;
    // Beside the powers of two (below), sizes of many factors, where a backend that
    // cuts values in chunks of a packet's size (1400, 1448, 1500 bytes) may lose or
    // repeat a byte at a chunk's edge.
    let mut sizes: Vec<usize> = [
        1, 1023, 1024, 1025, 1400, 1448, 1500, 2800, 2896, 4200, 9000, 16_383, 16_384, 16_385,
        65_535, 65_536, 65_537, 100_000, 200_000, 500_000, 1_000_000, 1_000_440,
    ]
    .into_iter()
    .filter(|size| *size < limit)
    .collect();
    sizes.push(limit - 1);
    for (seed, size) in (1u8..).zip(sizes) {
        let value = patterned(size, seed);
        set(cache, "tck:sized", &value, KEEP).await?;
        expect(
            cache,
            "tck:sized",
            Some(&value),
            &format!("after set of {size} bytes (the declared limit is {limit})"),
        )
        .await?;
        round_trip_in_batches(cache, "tck:sized-batch", &value, limit).await?;
    }
    powers_of_two_round_trip(cache, limit).await?;
    constant_values_round_trip(cache, limit).await?;
    remove(cache, &["tck:sized", "tck:sized-batch"]).await;
    Ok(())
}

/// The largest power of two [`powers_of_two_round_trip`] writes: 1 MiB, so that the
/// check writes about 6 MiB in all whatever the declared limit.
const LARGEST_POWER_OF_TWO: usize = 1 << 20;

/// Values of 2^n bytes and one byte either side, from 2 bytes to 1 MiB (or the declared
/// limit), round-trip by `set` and `get` byte for byte: where a backend's buffers,
/// frames or compression change at a size, one of them sits on the edge.
async fn powers_of_two_round_trip(cache: &dyn Cache, limit: usize) -> CheckResult {
    let most = limit.min(LARGEST_POWER_OF_TWO);
    let sizes = (1..=20)
        .flat_map(|n| {
            let power = 1usize << n;
            [power - 1, power, power + 1]
        })
        .filter(|size| *size <= most);
    for (seed, size) in (11u8..).zip(sizes) {
        let value = patterned(size, seed);
        set(cache, "tck:sized-power", &value, KEEP).await?;
        expect(
            cache,
            "tck:sized-power",
            Some(&value),
            &format!(
                "after set of {size} bytes, next to a power of two (the declared limit is {limit})"
            ),
        )
        .await?;
    }
    remove(cache, &["tck:sized-power"]).await;
    Ok(())
}

/// Values of one byte repeated (zeros, and 0xff), of 4 KiB, 64 KiB and the declared
/// limit (1 MiB at most, so that a limit of many MiB costs no more), round-trip by `set`
/// and `get`: what a run-length or other compression, or a buffer that skips runs, gets
/// wrong.
async fn constant_values_round_trip(cache: &dyn Cache, limit: usize) -> CheckResult {
    for byte in [0u8, 0xff] {
        for size in [4 << 10, 64 << 10, limit.min(LARGEST_POWER_OF_TWO)] {
            let value = vec![byte; size];
            set(cache, "tck:sized-constant", &value, KEEP).await?;
            expect(
                cache,
                "tck:sized-constant",
                Some(&value),
                &format!(
                    "after set of {size} bytes all {byte:#04x} (the declared limit is {limit})"
                ),
            )
            .await?;
        }
    }
    remove(cache, &["tck:sized-constant"]).await;
    Ok(())
}

/// `value` written by `set_many` beside a small entry and read back by `get_many`: the
/// bulk paths keep the sizes `set` and `get` keep.
async fn round_trip_in_batches(
    cache: &dyn Cache,
    key: &str,
    value: &[u8],
    limit: usize,
) -> CheckResult {
    let size = value.len();
    let small = "tck:sized-batch-small";
    cache
        .set_many(
            &[
                (key, Bytes::copy_from_slice(value)),
                (small, Bytes::from_static(b"small")),
            ],
            KEEP,
        )
        .await
        .or_fail(|| {
            format!("set_many of a value of {size} bytes (the declared limit is {limit})")
        })?;
    expect_many(
        cache,
        &[key, small],
        &[Some(value), Some(b"small")],
        &format!("after set_many of {size} bytes (the declared limit is {limit})"),
    )
    .await?;
    remove(cache, &[small]).await;
    Ok(())
}

/// A value of exactly the declared largest size round-trips unchanged: under a short
/// key and under one of 4 KiB (the limit is the value's, whatever the key's length),
/// through `set_many` and `get_many`, and, where declared, through `add`.
pub async fn test_largest_value_round_trips(cache: &dyn Cache) -> CheckResult {
    let limit = largest_value(cache)?;
    let value = patterned(limit, 7);
    let long_key = format!("tck:largest-{}", "k".repeat(4096 - 12));
    for key in ["tck:largest", long_key.as_str()] {
        set(cache, key, &value, KEEP).await?;
        expect(
            cache,
            key,
            Some(&value),
            &format!(
                "after set of {limit} bytes (the declared limit) under a key of {} bytes",
                key.len()
            ),
        )
        .await?;
    }
    round_trip_in_batches(cache, "tck:largest-batch", &value, limit).await?;
    remove(cache, &["tck:largest", &long_key, "tck:largest-batch"]).await;
    if cache.limits().atomic_add {
        add_absent(cache, "tck:largest-add", &value, KEEP).await?;
        let read = expect(
            cache,
            "tck:largest-add",
            Some(&value),
            &format!("after add of {limit} bytes (the declared limit)"),
        )
        .await;
        remove(cache, &["tck:largest-add"]).await;
        read?;
    }
    Ok(())
}

/// A value one byte over the limit is `ValueTooLarge` naming the limit; the key's old
/// value and other entries are untouched and the cache stays usable. A value far over
/// it, under a key over 250 bytes, is `ValueTooLarge` naming its own size, and so are
/// values of twice and eight times the limit (up to 64 MiB).
pub async fn test_value_over_limit_is_rejected_and_harms_nothing(cache: &dyn Cache) -> CheckResult {
    let limit = largest_value(cache)?;
    set(cache, "tck:too-large", b"old value", KEEP).await?;
    set(cache, "tck:bystander", b"bystander", KEEP).await?;
    let long_key = format!("tck:too-large-{}", "long".repeat(70));
    set(cache, &long_key, b"old value", KEEP).await?;
    let too_large = Bytes::from(patterned(limit + 1, 3));

    let result = cache.set("tck:too-large", too_large.clone(), KEEP).await;
    expect_too_large(&result, limit, || {
        format!("set of {} bytes (limit {limit})", limit + 1)
    })?;
    let result = cache
        .set_many(
            &[
                ("tck:too-large-batch", Bytes::from_static(b"small")),
                ("tck:too-large", too_large),
            ],
            KEEP,
        )
        .await;
    // The value's own size and the declared limit, as for `set`: not the batch's.
    expect_too_large(&result, limit, || {
        format!(
            "set_many with one value of {} bytes (limit {limit})",
            limit + 1
        )
    })?;
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
    // Last in a batch a backend may send in parts, after entries it must not write.
    let others: Vec<String> = (0..MANY)
        .map(|i| format!("tck:too-large-long-{i}"))
        .collect();
    let mut entries: Vec<(&str, Bytes)> = others
        .iter()
        .map(|key| (key.as_str(), Bytes::from_static(b"small")))
        .collect();
    entries.push(("tck:too-large", Bytes::from(patterned(limit + 1, 5))));
    let result = cache.set_many(&entries, KEEP).await;
    expect_too_large(&result, limit, || {
        format!(
            "set_many of {MANY} small values, then one of {} bytes (limit {limit})",
            limit + 1
        )
    })?;
    let keys: Vec<&str> = others.iter().map(String::as_str).collect();
    expect_many(
        cache,
        &keys,
        &[None; MANY],
        &format!("after a refused set_many of {MANY} small values and an oversized one"),
    )
    .await?;
    let far_over = limit + 1000;
    let result = cache
        .set(&long_key, Bytes::from(patterned(far_over, 9)), KEEP)
        .await;
    expect_too_large_of(&result, far_over, limit, || {
        format!(
            "set of {far_over} bytes under a key of {} bytes (limit {limit})",
            long_key.len()
        )
    })?;
    expect(
        cache,
        &long_key,
        Some(b"old value"),
        "after a refused oversized set",
    )
    .await?;
    // Twice and eight times the limit: still the caller's mistake, not backend trouble.
    for factor in [2, 8] {
        let size = limit.saturating_mul(factor);
        if size > MAX_FAR_OVER {
            continue;
        }
        let result = cache
            .set("tck:too-large", Bytes::from(vec![b'x'; size]), KEEP)
            .await;
        expect_too_large_of(&result, size, limit, || {
            format!("set of {size} bytes, {factor} times the limit {limit}")
        })?;
    }
    set(cache, "tck:after-too-large", b"still usable", KEEP).await?;
    expect(
        cache,
        "tck:after-too-large",
        Some(b"still usable"),
        "after a refused oversized set",
    )
    .await
}

/// `delete` returns true when it removed a live entry and false otherwise.
pub async fn test_delete_reports_whether_a_live_entry_was_removed(
    cache: &dyn Cache,
) -> CheckResult {
    set(cache, "tck:delete-bool", b"x", KEEP).await?;
    delete(cache, "tck:delete-bool", true, "of a live entry").await?;
    delete(
        cache,
        "tck:delete-bool",
        false,
        "of an entry deleted already",
    )
    .await?;
    delete(cache, "tck:delete-never-set", false, "of a key never set").await?;
    set(cache, "tck:delete-empty", b"", KEEP).await?;
    delete(
        cache,
        "tck:delete-empty",
        true,
        "of a live entry holding an empty value",
    )
    .await
}
