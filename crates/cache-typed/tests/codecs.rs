//! Codecs and the envelope: arbitrary serde values round-trip through every codec,
//! with and without compression; frozen envelopes written by this version keep
//! decoding; arbitrary bytes never panic the decoder.

mod common;

use std::collections::BTreeMap;

use cache_typed::{
    envelope::{self, Header},
    Codec, Compression, EntryOptions, JsonCodec, PostcardCodec, TypedCache,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Point,
    Circle(u32),
    Rect { w: u16, h: u16 },
    Path(Vec<(i32, i32)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    label: String,
    weight: Option<i64>,
    flags: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    id: u64,
    title: String,
    shapes: Vec<Shape>,
    inner: Option<Inner>,
    counts: BTreeMap<String, u32>,
    bytes: Vec<u8>,
    nested: Vec<Vec<Option<String>>>,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Point),
        any::<u32>().prop_map(Shape::Circle),
        (any::<u16>(), any::<u16>()).prop_map(|(w, h)| Shape::Rect { w, h }),
        prop::collection::vec(any::<(i32, i32)>(), 0..5).prop_map(Shape::Path),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    let inner = (
        any::<String>(),
        any::<Option<i64>>(),
        prop::collection::vec(any::<bool>(), 0..8),
    )
        .prop_map(|(label, weight, flags)| Inner {
            label,
            weight,
            flags,
        });
    (
        any::<u64>(),
        any::<String>(),
        prop::collection::vec(shape(), 0..6),
        prop::option::of(inner),
        prop::collection::btree_map(any::<String>(), any::<u32>(), 0..6),
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(prop::collection::vec(any::<Option<String>>(), 0..3), 0..3),
    )
        .prop_map(|(id, title, shapes, inner, counts, bytes, nested)| Doc {
            id,
            title,
            shapes,
            inner,
            counts,
            bytes,
            nested,
        })
}

fn typed<C: Codec>(codec: C, compression: Compression) -> TypedCache<Doc, C> {
    TypedCache::builder(common::memory(), codec)
        .compression(compression)
        .build()
}

fn round_trip<C: Codec>(cache: &TypedCache<Doc, C>, value: &Doc) -> Result<(), TestCaseError> {
    let bytes = cache.encode(value, &EntryOptions::default()).unwrap();
    let entry = cache.decode(&bytes).unwrap();
    prop_assert_eq!(&entry.value, value);
    prop_assert!(!entry.stale);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every value comes back equal through JSON and postcard, compressed (threshold
    /// 0, so every payload that shrinks is compressed) or not.
    #[test]
    fn values_round_trip_through_every_codec(value in doc()) {
        round_trip(&typed(JsonCodec, Compression::none()), &value)?;
        round_trip(&typed(JsonCodec, Compression::lz4(0)), &value)?;
        round_trip(&typed(PostcardCodec, Compression::none()), &value)?;
        round_trip(&typed(PostcardCodec, Compression::lz4(0)), &value)?;
    }

    /// Arbitrary bytes never panic the envelope decoder nor a typed decode.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = envelope::decode(&bytes);
        let _ = typed(JsonCodec, Compression::lz4(0)).decode(&bytes);
        let _ = typed(PostcardCodec, Compression::lz4(0)).decode(&bytes);
    }

    /// A valid header followed by arbitrary bytes (compressed flag on or off, any tags
    /// length) reaches the decompressor and the codecs: it decodes or is an error.
    #[test]
    fn a_valid_header_over_arbitrary_payloads_never_panics(
        codec in prop_oneof![Just(1_u8), Just(2_u8)],
        flags in 0_u8..4,
        tags_len in prop_oneof![Just(0_u16), any::<u16>()],
        tail in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::new();
        Header { codec, flags: 0, written_at_ms: 1, logical_expiry_ms: None, tags: &[] }.write(&mut bytes);
        bytes[4] = flags;
        bytes[21..23].copy_from_slice(&tags_len.to_be_bytes());
        bytes.extend_from_slice(&tail);
        let _ = envelope::decode(&bytes);
        prop_assert!(typed(JsonCodec, Compression::none()).decode(&bytes).is_err() || codec == 1);
        let _ = typed(PostcardCodec, Compression::none()).decode(&bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The value of every frozen vector.
fn frozen_value() -> common::User {
    common::user(42, "ada")
}

const WRITTEN_AT_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const EXPIRES_AT_MS: u64 = 1_767_225_660_000; // a minute later

/// Envelope format 1, JSON, uncompressed, no tags.
const FROZEN_JSON: &str = concat!(
    "ca7e",                                                             // magic
    "01",                                                               // format version
    "01",                                                               // codec
    "00",                                                               // flags
    "0000019b76daa800",                                                 // written at (unix ms)
    "0000019b76db9260",                                                 // logical expiry (unix ms)
    "0000",                                                             // tags length
    "7b226964223a34322c226e616d65223a22616461222c22656d61696c223a2261", // payload
    "6461406578616d706c652e636f6d222c22726f6c6573223a5b226d656d626572",
    "225d2c226d616e61676572223a312c227072656673223a7b226c616e67223a22",
    "656e227d7d",
);
/// Envelope format 1, postcard, uncompressed, no tags.
const FROZEN_POSTCARD: &str = concat!(
    "ca7e",                                                             // magic
    "01",                                                               // format version
    "02",                                                               // codec
    "00",                                                               // flags
    "0000019b76daa800",                                                 // written at (unix ms)
    "0000019b76db9260",                                                 // logical expiry (unix ms)
    "0000",                                                             // tags length
    "2a036164610f616461406578616d706c652e636f6d01066d656d626572010101", // payload
    "046c616e6702656e",
);
/// Envelope format 1, JSON, LZ4-compressed, with a 3-byte tags section (which
/// format 1 readers skip).
const FROZEN_JSON_LZ4_TAGS: &str = concat!(
    "ca7e",                                                             // magic
    "01",                                                               // format version
    "01",                                                               // codec
    "01",                                                               // flags
    "0000019b76daa800",                                                 // written at (unix ms)
    "0000019b76db9260",                                                 // logical expiry (unix ms)
    "0003",                                                             // tags length
    "743a31",                                                           // tags
    "c8010000f40f7b226964223a34332c226e616d65223a226772616365222c2265", // payload
    "6d61696c1000ff11406578616d706c652e636f6d222c22726f6c6573223a5b22",
    "6d656d626572222c0900ff4cf0155d2c226d616e61676572223a312c22707265",
    "6673223a7b226c616e67223a22656e227d7d",
);

/// The value of the compressed vector: large and repetitive enough to compress.
fn frozen_large_value() -> common::User {
    let mut user = common::user(43, "grace");
    user.roles = vec!["member".to_owned(); 40];
    user
}

fn frozen_bytes<C: Codec>(codec: &C, tags: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    codec.encode(&frozen_value(), &mut payload).unwrap();
    with_header(C::ID, 0, tags, &payload)
}

fn with_header(codec: u8, flags: u8, tags: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    Header {
        codec,
        flags,
        written_at_ms: WRITTEN_AT_MS,
        logical_expiry_ms: Some(EXPIRES_AT_MS),
        tags,
    }
    .write(&mut bytes);
    bytes.extend_from_slice(payload);
    bytes
}

/// The compressed vector as this version writes it: the cache's own compression, then
/// the fixed times and a tags section.
fn frozen_compressed_bytes() -> Vec<u8> {
    let cache: TypedCache<common::User, JsonCodec> =
        TypedCache::builder(common::memory(), JsonCodec)
            .compression(Compression::lz4(0))
            .build();
    let written = cache
        .encode(&frozen_large_value(), &EntryOptions::default())
        .unwrap();
    let (header, payload) = envelope::decode(&written).unwrap();
    assert!(header.compressed());
    with_header(JsonCodec::ID, envelope::FLAG_COMPRESSED, b"t:1", payload)
}

/// This version writes the frozen bytes exactly (the writer is pinned too).
#[test]
fn the_frozen_vectors_are_what_this_version_writes() {
    assert_eq!(hex(&frozen_bytes(&JsonCodec, &[])), FROZEN_JSON);
    assert_eq!(hex(&frozen_bytes(&PostcardCodec, &[])), FROZEN_POSTCARD);
    assert_eq!(hex(&frozen_compressed_bytes()), FROZEN_JSON_LZ4_TAGS);
}

/// Prints the vectors, to freeze a new format's: `cargo test -p cache-typed --test
/// codecs print_vectors -- --ignored --nocapture`.
#[test]
#[ignore = "prints the vectors for a new format; run by hand"]
fn print_vectors() {
    println!("json {}", hex(&frozen_bytes(&JsonCodec, &[])));
    println!("postcard {}", hex(&frozen_bytes(&PostcardCodec, &[])));
    println!("json lz4 tags {}", hex(&frozen_compressed_bytes()));
}

/// Entries written by format 1 decode, today and in every later release.
#[test]
fn frozen_vectors_decode() {
    let cases: [(&str, &str); 3] = [
        ("json", FROZEN_JSON),
        ("postcard", FROZEN_POSTCARD),
        ("json lz4 tags", FROZEN_JSON_LZ4_TAGS),
    ];
    for (name, vector) in cases {
        let bytes = unhex(vector);
        let entry = if name.starts_with("json") {
            TypedCache::<common::User, _>::new(common::memory(), JsonCodec)
                .decode(&bytes)
                .unwrap()
        } else {
            TypedCache::<common::User, _>::new(common::memory(), PostcardCodec)
                .decode(&bytes)
                .unwrap()
        };
        let expected = if name.contains("lz4") {
            frozen_large_value()
        } else {
            frozen_value()
        };
        assert_eq!(entry.value, expected, "{name}");
        assert!(entry.stale, "{name}: its logical expiry has passed");
        let since_epoch = entry
            .written_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(since_epoch.as_millis(), u128::from(WRITTEN_AT_MS), "{name}");
        let (header, _) = envelope::decode(&bytes).unwrap();
        assert_eq!(header.logical_expiry_ms, Some(EXPIRES_AT_MS), "{name}");
    }
    let compressed = unhex(FROZEN_JSON_LZ4_TAGS);
    let (header, _) = envelope::decode(&compressed).unwrap();
    assert!(header.compressed());
    assert_eq!(header.tags, b"t:1");
}

/// A value written with one codec is not read by a cache of another.
#[test]
fn another_codec_is_refused() {
    let bytes = unhex(FROZEN_POSTCARD);
    let json = TypedCache::<common::User, _>::new(common::memory(), JsonCodec);
    assert!(matches!(
        json.decode(&bytes),
        Err(cache_typed::DecodeError::Envelope(
            envelope::EnvelopeError::CodecMismatch {
                expected: 1,
                found: 2
            }
        ))
    ));
}

/// A postcard value written as a type with more fields than the one read (a field
/// removed since) leaves bytes unread: it is refused, not read in part.
#[test]
fn a_postcard_value_of_a_longer_type_is_refused() {
    let wider = TypedCache::<(u64, u64), _>::new(common::memory(), PostcardCodec);
    let bytes = wider.encode(&(7, 9), &EntryOptions::default()).unwrap();
    let narrower = TypedCache::<u64, _>::new(common::memory(), PostcardCodec);
    match narrower.decode(&bytes) {
        Err(cache_typed::DecodeError::Codec(err)) => {
            assert!(err.to_string().contains("left after the value"), "{err}");
        }
        other => panic!("read in part: {other:?}"),
    }
    assert_eq!(wider.decode(&bytes).unwrap().value, (7, 9));
}
