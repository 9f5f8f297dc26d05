//! Keys: the empty key, long keys, keys with spaces, control characters and non-ASCII
//! text, keys that must not collide, and keys that must not inject commands.

use std::panic::AssertUnwindSafe;

use cache_api::{Bytes, Cache};
use futures::FutureExt;

use super::{
    delete, every_operation_on, exists, expect, expect_invalid_key, expect_many, round_trip_each,
    set, KEEP, LONG_TTL, MANY,
};
use crate::failure::{describe, describe_key, CheckResult, Failure, OrFail};

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
/// declared, `add`; keys over 250 bytes of 2-, 3- and 4-byte characters, at every byte
/// alignment, with `set`, `get` and `delete`.
pub async fn test_long_keys_round_trip(cache: &dyn Cache) -> CheckResult {
    let keys = [
        "k".repeat(300),
        "a".repeat(4096),
        "é".repeat(2048),
        format!("{} {}", "with spaces".repeat(200), "end"),
        "m".repeat(251),
        format!("{}ü", "n".repeat(300)),
    ];
    every_operation_on(cache, &keys, "long key").await?;
    multi_byte_keys_at_every_alignment(cache).await
}

/// Keys over 250 bytes made of 2-, 3- and 4-byte characters, behind 0 to 3 ASCII bytes so
/// that every byte offset falls inside a character in one of them, work with `set`,
/// `get` and `delete`. A backend that cuts such a key at a fixed byte offset panics on
/// some of them (slicing a `str` mid-character), and a panic fails this step, naming the
/// key, rather than the run.
async fn multi_byte_keys_at_every_alignment(cache: &dyn Cache) -> CheckResult {
    for wide in ['é', '€', '🦀'] {
        for lead in 0..=3 {
            let body = wide.to_string().repeat(300 / wide.len_utf8());
            let key = format!("{}{body}", "p".repeat(lead));
            let what = format!(
                "of a key of {} bytes: {lead} ASCII bytes, then {}-byte characters",
                key.len(),
                wide.len_utf8()
            );
            let value = format!("aligned {lead} {wide}");
            let shown = || describe_key(&key);
            unpanicked(
                || format!("set({}, {value:?}, 1h) {what}", shown()),
                cache.set(&key, Bytes::copy_from_slice(value.as_bytes()), KEEP),
            )
            .await?;
            let got = unpanicked(|| format!("get({}) {what}", shown()), cache.get(&key)).await?;
            if got.as_deref() != Some(value.as_bytes()) {
                return Err(Failure::new(
                    format!("get({}) after set, {what}", shown()),
                    describe(&Some(Bytes::copy_from_slice(value.as_bytes()))),
                    describe(&got),
                ));
            }
            let removed =
                unpanicked(|| format!("delete({}) {what}", shown()), cache.delete(&key)).await?;
            if !removed {
                return Err(Failure::new(
                    format!("delete({}) after set, {what}", shown()),
                    "Ok(true)",
                    "Ok(false)",
                ));
            }
        }
    }
    Ok(())
}

/// Awaits `operation`, turning an error or a panic into a failure of `step`.
async fn unpanicked<T>(
    step: impl Fn() -> String,
    operation: impl std::future::Future<Output = Result<T, cache_api::CacheError>>,
) -> Result<T, Failure> {
    match AssertUnwindSafe(operation).catch_unwind().await {
        Ok(result) => result.or_fail(step),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(Failure::new(
                step(),
                "an answer",
                format!("a panic: {message}"),
            ))
        }
    }
}

/// Keys of 4 KiB, 16 KiB, 64 KiB and 128 KiB work with `set`, `get`, `get_many`,
/// `exists`, `delete`, `set_many` and `delete_many`, and keys of those lengths that differ only in their first, middle or last
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
        exists(cache, key, true, "of a very long key after set").await?;
    }
    for key in &keys {
        delete(cache, key, true, "of a very long key").await?;
    }
    expect_many(
        cache,
        &refs,
        &vec![None; keys.len()],
        "after delete of very long keys",
    )
    .await?;
    // The same keys through `set_many`, `exists` and `delete_many`.
    let batch: Vec<(&str, Bytes)> = refs
        .iter()
        .zip(&values)
        .map(|(key, value)| (*key, Bytes::from(value.clone())))
        .collect();
    cache
        .set_many(&batch, KEEP)
        .await
        .or_fail(|| format!("set_many of {} very long keys", batch.len()))?;
    expect_many(cache, &refs, &wanted, "after set_many of very long keys").await?;
    let removed = cache
        .delete_many(&refs)
        .await
        .or_fail(|| format!("delete_many of {} very long keys", refs.len()))?;
    if removed != refs.len() {
        return Err(Failure::new(
            format!(
                "delete_many of {} very long keys set by set_many",
                refs.len()
            ),
            refs.len().to_string(),
            removed.to_string(),
        ));
    }
    for key in &keys {
        exists(cache, key, false, "of a very long key after delete_many").await?;
    }
    Ok(())
}

/// How many keys [`test_thousands_of_keys_stay_apart`] writes: enough that a backend
/// storing entries under a 24-bit hash of their key has many collisions among them, and
/// more than a 16-bit number counts (a backend whose slot or entry numbers wrap at 65,536
/// hands the first keys' entries to the last ones).
const MANY_KEYS: usize = 70_000;

/// 70,000 keys, written by `set_many` in batches, each read back by `get_many` with its
/// own value (a backend that stores entries under a short hash of their key, keeps only
/// part of it, numbers its entries in 16 bits or stops storing past some count hands one
/// key's value to another or loses it; 70,000 small entries are a few megabytes, which
/// any cache under test has room for); then removed, by one
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
///
/// Among them: keys over 250 bytes alike up to their last bytes (two bytes swapped, or
/// endings of equal byte sum), keys alike but for a separator (`a:b`, `a/b`, `a//b`,
/// `a.b`, `a\b`), a control character or a space against the text of its escape, a C1
/// control character or a line separator against the key without it, and compatibility
/// forms (fullwidth letters, ligatures, circled digits) against their plain twins.
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
    round_trip_each(cache, &keys, "value", "after setting many alike keys", None).await?;
    for (label, context, twins) in alike_key_groups() {
        round_trip_each(cache, &twins, label, context, None).await?;
    }
    code_point_neighbours_stay_apart(cache).await
}

/// Characters sampled over every plane (one every 499 code points from U+00A0), each
/// beside the characters 1, 256 and 65,536 code points on: keys alike but for that one
/// character, written by `set_many` and read back by `get_many`, each with its own
/// value. A backend that keeps 8 or 16 bits of a character, or replaces the characters
/// it cannot send with one placeholder, merges a pair.
async fn code_point_neighbours_stay_apart(cache: &dyn Cache) -> CheckResult {
    const STEP: usize = 499;
    const BATCH: usize = 256;
    let mut characters: Vec<char> = (0xa0_u32..=0x10_ffff)
        .step_by(STEP)
        .flat_map(|c| [c, c + 1, c + 0x100, c + 0x1_0000])
        .filter_map(char::from_u32)
        .collect();
    characters.sort_unstable();
    characters.dedup();
    let keys: Vec<String> = characters.iter().map(|c| format!("tck:cp-{c}")).collect();
    let values: Vec<String> = characters
        .iter()
        .map(|c| format!("U+{:04X}", u32::from(*c)))
        .collect();
    for (keys, values) in keys.chunks(BATCH).zip(values.chunks(BATCH)) {
        let entries: Vec<(&str, Bytes)> = keys
            .iter()
            .zip(values)
            .map(|(key, value)| (key.as_str(), Bytes::copy_from_slice(value.as_bytes())))
            .collect();
        cache.set_many(&entries, KEEP).await.or_fail(|| {
            format!(
                "set_many of {} keys alike but for one character",
                entries.len()
            )
        })?;
    }
    let context = format!(
        "after set_many of {} keys alike but for one character, sampled over every plane \
         beside the characters 1, 256 and 65,536 code points on",
        keys.len()
    );
    for (keys, values) in keys.chunks(BATCH).zip(values.chunks(BATCH)) {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let wanted: Vec<Option<&[u8]>> =
            values.iter().map(|value| Some(value.as_bytes())).collect();
        expect_many(cache, &refs, &wanted, &context).await?;
    }
    Ok(())
}

/// Groups of keys that an encoding backend may merge, each written then read back on
/// its own: (value label, step, keys).
fn alike_key_groups() -> Vec<(&'static str, &'static str, Vec<String>)> {
    // Over 250 bytes, alike up to byte 200 and beyond: two bytes swapped past it, and
    // endings of equal length and equal byte sum ("ad" and "bc"). A backend that keeps
    // the first 200 bytes, the length and a sum of the bytes merges each pair.
    let head = format!("tck:{}", "h".repeat(206));
    let tail = "t".repeat(80);
    let long = vec![
        format!("{head}xy{tail}"),
        format!("{head}yx{tail}"),
        format!("{head}{tail}ad"),
        format!("{head}{tail}bc"),
    ];
    // Alike but for a separator: a backend that rewrites one separator into another,
    // or collapses repeated ones, merges them.
    let separators = [
        "a:b", "a/b", "a//b", "a::b", "a.b", "a\\b", "a_b", "a-b", "a|b",
    ]
    .map(|key| format!("tck:sep-{key}"))
    .to_vec();
    // A control character or a space, and the text of its escape: a backend that
    // escapes them without escaping the backslash merges each pair.
    let escapes = [
        "a\nb", "a\\nb", "a\rb", "a\\rb", "a\tb", "a\\tb", "a b", "a\\ b", "a\\sb", "a\\x20b",
        "a\\0b", "a\0b",
    ]
    .map(|key| format!("tck:esc-{key}"))
    .to_vec();
    // C1 control characters (U+0080 to U+009F) and the line and paragraph separators,
    // each against the key without it: a backend that strips them merges them all.
    let mut c1: Vec<String> = ('\u{80}'..='\u{9f}')
        .chain(['\u{2028}', '\u{2029}'])
        .map(|c| format!("tck:c1-a{c}b"))
        .collect();
    c1.push("tck:c1-ab".to_owned());
    // Compatibility forms and their plain twins: a backend that normalises keys (NFKC,
    // or fullwidth folded to ASCII) merges each pair.
    let compatibility = [
        "ｕｓｅｒ",
        "user",
        "ＵＳＥＲ",
        "USER",
        "ﬁ",
        "fi",
        "①",
        "1",
        "Ａ１",
        "A1",
        "ｰ",
        "ー",
    ]
    .map(|key| format!("tck:compat-{key}"))
    .to_vec();
    // Characters a backend may drop or fold as if they were not there: bidi marks and
    // embeddings, variation selectors, the soft hyphen, the combining grapheme joiner,
    // noncharacters, private-use characters (one against another), a decomposed
    // umlaut, CR LF against LF, and case in a key over 250 bytes. Each is set beside
    // the key without it: a backend that strips, folds, normalises or replaces them
    // merges a pair.
    let mut ignorable: Vec<String> = [
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{fe0e}',
        '\u{fe0f}',
        '\u{ad}',
        '\u{34f}',
        '\u{fdd0}',
        '\u{fdef}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{e000}',
        '\u{e001}',
        '\u{f8ff}',
        '\u{1f3fb}',
        '\u{e0001}',
    ]
    .iter()
    .map(|c| format!("tck:ign-a{c}b"))
    .collect();
    let long_case = "x".repeat(300);
    ignorable.extend([
        "tck:ign-ab".to_owned(),
        "tck:ign-u\u{308}ber".to_owned(),
        "tck:ign-über".to_owned(),
        "tck:ign-a\u{308}".to_owned(),
        "tck:ign-ä".to_owned(),
        "tck:ign-line\r\nbreak".to_owned(),
        "tck:ign-line\nbreak".to_owned(),
        "tck:ign-line\rbreak".to_owned(),
        format!("tck:ign-{long_case}A"),
        format!("tck:ign-{long_case}a"),
        format!("tck:ign-A{long_case}"),
        format!("tck:ign-a{long_case}"),
    ]);
    vec![
        (
            "long twin",
            "after setting long keys alike up to their last bytes",
            long,
        ),
        (
            "ignorable twin",
            "after setting keys alike but for a format, private-use or noncharacter, a \
             composed form, CR LF or case past 250 bytes",
            ignorable,
        ),
        (
            "separator twin",
            "after setting keys alike but for a separator",
            separators,
        ),
        (
            "escape twin",
            "after setting keys holding a control character or its escape text",
            escapes,
        ),
        (
            "c1 twin",
            "after setting keys alike but for a C1 control or a line separator",
            c1,
        ),
        (
            "compatibility twin",
            "after setting keys alike but for a compatibility form",
            compatibility,
        ),
    ]
}

/// A key cannot smuggle protocol commands: keys with CR/LF and command words are
/// stored under themselves and leave other entries alone.
///
/// Keys holding `*`, `?` or `[0-9]` are deleted as themselves by `delete` and
/// `delete_many`, never as patterns matching other keys.
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
    .await?;
    glob_keys_are_taken_literally(cache).await
}

/// Keys holding `*`, `?` or `[…]` are deleted as themselves, by `delete` and by
/// `delete_many`: a backend that hands them to a pattern match (Redis `SCAN MATCH`, a
/// glob over its own map) removes the keys they match as well.
async fn glob_keys_are_taken_literally(cache: &dyn Cache) -> CheckResult {
    const VICTIM: &str = "tck:glob-victim:1";
    let globs = [
        "tck:glob-victim:*",
        "tck:glob-victim:?",
        "tck:glob-victim:[0-9]",
    ];
    set(cache, VICTIM, b"victim", KEEP).await?;
    for key in globs {
        set(cache, key, b"glob", KEEP).await?;
    }
    delete(cache, globs[0], true, "of a key holding '*'").await?;
    expect(
        cache,
        VICTIM,
        Some(b"victim"),
        "after delete(\"tck:glob-victim:*\")",
    )
    .await?;
    let step = || format!("delete_many({:?})", &globs[1..]);
    let removed = cache.delete_many(&globs[1..]).await.or_fail(step)?;
    if removed != 2 {
        return Err(crate::Failure::new(
            step(),
            "Ok(2)",
            format!("Ok({removed})"),
        ));
    }
    expect(
        cache,
        VICTIM,
        Some(b"victim"),
        "after delete_many of keys holding '?' and '[0-9]'",
    )
    .await
}
