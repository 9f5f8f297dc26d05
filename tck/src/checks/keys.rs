//! Keys: the empty key, long keys, keys with spaces, control characters and non-ASCII
//! text, keys that must not collide, and keys that must not inject commands.

use cache_api::{Bytes, Cache};

use super::{
    delete, every_operation_on, expect, expect_invalid_key, expect_many, round_trip_each, set,
    KEEP, LONG_TTL, MANY,
};
use crate::failure::{CheckResult, OrFail};

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
    expect_invalid_key(
        cache.set("", v(), Some(std::time::Duration::ZERO)).await,
        "set(\"\", \"v\", 0s)",
    )?;
    expect_invalid_key(cache.delete("").await, "delete(\"\")")?;
    expect_invalid_key(cache.exists("").await, "exists(\"\")")?;
    expect_invalid_key(
        cache.get_many(&["tck:a", ""]).await,
        "get_many([\"tck:a\", \"\"])",
    )?;
    expect_invalid_key(
        cache
            .set_many(&[("tck:empty-key-batch", v()), ("", v())], KEEP)
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
    set(cache, "tck:kept", b"kept", KEEP).await?;
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
    .await?;
    // Alone in a batch too, where a backend may take a path of its own for one key.
    expect_invalid_key(cache.get_many(&[""]).await, "get_many([\"\"])")?;
    expect_invalid_key(cache.delete_many(&[""]).await, "delete_many([\"\"])")?;
    expect_invalid_key(
        cache.set_many(&[("", v())], None).await,
        "set_many([(\"\", \"v\")], None)",
    )?;
    // Last in a batch a backend may send in parts, where it may check the first only.
    let others: Vec<String> = (0..MANY)
        .map(|i| format!("tck:empty-key-long-{i}"))
        .collect();
    let mut keys: Vec<&str> = others.iter().map(String::as_str).collect();
    keys.push("");
    expect_invalid_key(
        cache.get_many(&keys).await,
        &format!("get_many of {MANY} keys, then \"\""),
    )?;
    let entries: Vec<(&str, Bytes)> = keys.iter().map(|key| (*key, v())).collect();
    expect_invalid_key(
        cache.set_many(&entries, KEEP).await,
        &format!("set_many of {MANY} entries, then one under \"\""),
    )?;
    expect_many(
        cache,
        &keys[..MANY],
        &[None; MANY],
        &format!("after a refused set_many of {MANY} entries, then one under \"\""),
    )
    .await?;
    keys[0] = "tck:kept";
    expect_invalid_key(
        cache.delete_many(&keys).await,
        &format!(
            "delete_many of \"tck:kept\" and {} keys, then \"\"",
            MANY - 1
        ),
    )?;
    expect(
        cache,
        "tck:kept",
        Some(b"kept"),
        &format!("after a refused delete_many of {MANY} keys, then \"\""),
    )
    .await
}

/// Keys of 300 bytes and of 4 KiB (ASCII and multi-byte) work with every operation:
/// `set`, `set_many`, `get`, `get_many`, `exists`, `delete`, `delete_many` and, where
/// declared, `add`.
pub async fn test_long_keys_round_trip(cache: &dyn Cache) -> CheckResult {
    let keys = [
        "k".repeat(300),
        "a".repeat(4096),
        "é".repeat(2048),
        format!("{} {}", "with spaces".repeat(200), "end"),
        "m".repeat(251),
        format!("{}ü", "n".repeat(300)),
    ];
    every_operation_on(cache, &keys, "long key").await
}

/// Keys of 4 KiB, 16 KiB, 64 KiB and 128 KiB work with `set`, `get`, `get_many` and
/// `delete`, and keys of those lengths that differ only in their first, middle or last
/// byte stay apart (a backend that keeps only part of a long key merges them).
pub async fn test_very_long_keys_round_trip_and_stay_apart(cache: &dyn Cache) -> CheckResult {
    let mut keys = Vec::new();
    for len in [4 << 10, 16 << 10, 64 << 10, 128 << 10] {
        let body = "k".repeat(len - 1);
        let (head, tail) = ("k".repeat(len / 2), "k".repeat(len - len / 2 - 1));
        keys.extend([
            format!("{body}1"),
            format!("{body}2"),
            format!("2{body}"),
            format!("{head}3{tail}"),
            format!("{head}4{tail}"),
        ]);
    }
    let values: Vec<String> = (0..keys.len())
        .map(|i| format!("very long key {i}"))
        .collect();
    for (key, value) in keys.iter().zip(&values) {
        set(cache, key, value.as_bytes(), KEEP).await?;
    }
    for (key, value) in keys.iter().zip(&values) {
        expect(
            cache,
            key,
            Some(value.as_bytes()),
            "after set of a very long key",
        )
        .await?;
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let wanted: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_bytes())).collect();
    expect_many(cache, &refs, &wanted, "after set of very long keys").await?;
    for key in &keys {
        delete(cache, key, true, "of a very long key").await?;
    }
    expect_many(
        cache,
        &refs,
        &vec![None; keys.len()],
        "after delete of very long keys",
    )
    .await
}

/// How many keys [`test_thousands_of_keys_stay_apart`] writes: enough that a backend
/// storing entries under a 24-bit hash of their key has several collisions among them.
const MANY_KEYS: usize = 16_384;

/// 16,384 keys, written by `set_many` in batches, each read back by `get_many` with
/// its own value (a backend that stores entries under a short hash of their key, or
/// keeps only part of it, hands one key's value to another); then removed, by one
/// `clear` where declared (a `clear` that stops after the first thousand entries leaves
/// some), by `delete_many` otherwise, and all read back as misses.
pub async fn test_thousands_of_keys_stay_apart(cache: &dyn Cache) -> CheckResult {
    const BATCH: usize = 512;
    let keys: Vec<String> = (0..MANY_KEYS)
        .map(|i| {
            format!(
                "tck:many-{i:05}-{:08x}",
                (i as u32).wrapping_mul(0x9e37_79b9)
            )
        })
        .collect();
    for batch in keys.chunks(BATCH) {
        let entries: Vec<(&str, Bytes)> = batch
            .iter()
            .map(|key| (key.as_str(), Bytes::copy_from_slice(key.as_bytes())))
            .collect();
        cache
            .set_many(&entries, KEEP)
            .await
            .or_fail(|| format!("set_many of {} entries, {MANY_KEYS} in all", entries.len()))?;
    }
    for batch in keys.chunks(BATCH) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let wanted: Vec<Option<&[u8]>> = refs.iter().map(|key| Some(key.as_bytes())).collect();
        let context = format!("after set_many of {MANY_KEYS} keys, each valued its own name");
        expect_many(cache, &refs, &wanted, &context).await?;
    }
    let removed_by = if cache.limits().clear {
        cache
            .clear()
            .await
            .or_fail(|| format!("clear of {MANY_KEYS} entries"))?;
        "clear"
    } else {
        for batch in keys.chunks(BATCH) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            cache
                .delete_many(&refs)
                .await
                .or_fail(|| format!("delete_many of {} keys", refs.len()))?;
        }
        "delete_many"
    };
    for batch in keys.chunks(BATCH) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let context = format!("after {removed_by} of {MANY_KEYS} entries");
        expect_many(cache, &refs, &vec![None; refs.len()], &context).await?;
    }
    Ok(())
}

/// Keys with spaces, tabs, CR/LF, control characters, NUL, glob and non-ASCII
/// characters work with every operation: `set`, `set_many`, `get`, `get_many`,
/// `exists`, `delete`, `delete_many` and, where declared, `add`.
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
        " ",
        "\t",
        "\n",
        "%",
    ];
    every_operation_on(cache, &keys, "special key").await
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
        "a/b".to_owned(),
        "a%2Fb".to_owned(),
        "a%2fb".to_owned(),
        "%".to_owned(),
        "%25".to_owned(),
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
    // Keys made to look like what an encoding backend might produce for keys it cannot
    // send as they are: their bytes in hexadecimal, bare or behind a tag.
    for key in ["a b", "a\tb", "key\n", "über"] {
        let hex: String = key.bytes().map(|byte| format!("{byte:02x}")).collect();
        keys.extend(["", "hex:", "hex_", "x", "0x", "~"].map(|tag| format!("{tag}{hex}")));
    }
    // Keys made to look like what an encoding backend might produce for a long key.
    keys.push(format!("{}#{}", "x".repeat(200), "0".repeat(64)));
    keys.push(format!("{}:{}", "x".repeat(200), "f".repeat(43)));
    // Keys that differ only in characters outside ASCII (an encoder that replaces them
    // with '?' would merge them), accents composed and decomposed included.
    for key in [
        "über", "öber", "Über", "日本", "中国", "e\u{301}", "é", "🦀", "🦞",
    ] {
        keys.push(key.to_owned());
    }
    // Keys that differ only in an invisible character or in whitespace outside ASCII (a
    // backend that strips or trims them would merge them).
    for key in [
        "ab",
        "a\u{200b}b",
        "a\u{200c}b",
        "a\u{200d}b",
        "a\u{2060}b",
        "\u{feff}ab",
        "k",
        "k\u{a0}",
        "k\u{3000}",
        "\u{a0}k",
    ] {
        keys.push(key.to_owned());
    }
    // Keys that differ only in one control character, every one of them, and the key
    // without any (an encoder that strips them would merge them all).
    keys.extend(
        (1u8..0x20)
            .chain([0x7f])
            .map(|code| format!("ctl{}x", char::from(code))),
    );
    keys.push("ctlx".to_owned());
    round_trip_each(cache, &keys, "value", "after setting many alike keys", None).await
}

/// A key cannot smuggle protocol commands: keys with CR/LF and command words are
/// stored under themselves and leave other entries alone.
pub async fn test_keys_cannot_inject_protocol_commands(cache: &dyn Cache) -> CheckResult {
    set(cache, "tck:victim", b"victim", KEEP).await?;
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
