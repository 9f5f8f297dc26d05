//! The operations a model run sends, how they are generated, and how a sequence of them
//! prints: as the Rust calls that replay it.

use std::{fmt, time::Duration};

use cache_api::{Bytes, Capabilities};
use proptest::{
    collection::vec,
    prelude::{Just, Strategy},
    sample::select,
    strategy::{BoxedStrategy, Union},
};

/// One key of the small alphabet the runs draw from: few keys, so that the operations of
/// a sequence keep landing on the same entries. Besides plain keys, the alphabet holds
/// keys a backend must encode (spaces, a line break, non-ASCII text, 300 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u8);

/// The alphabet; the last key is [`LONG_KEY`] and printed as a variable.
const KEYS: [&str; 6] = ["a", "b", "c", "with space", "line\r\nbreak", "ünï"];

/// Length of the long key of the alphabet: over memcached's 250 bytes.
const LONG_KEY_LEN: usize = 300;

/// The long key, `"k"` repeated [`LONG_KEY_LEN`] times.
static LONG_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| "k".repeat(LONG_KEY_LEN));

impl Key {
    /// Every key of the alphabet.
    pub(crate) fn all() -> impl Iterator<Item = Key> {
        (0..=KEYS.len()).map(|i| Key(i as u8))
    }

    /// The key's text.
    #[must_use]
    pub fn text(self) -> &'static str {
        KEYS.get(usize::from(self.0))
            .copied()
            .unwrap_or_else(|| LONG_KEY.as_str())
    }

    /// A short name for the key, used in the values written under it.
    fn label(self) -> &'static str {
        match self.0 {
            0..=2 => KEYS[usize::from(self.0)],
            3 => "space",
            4 => "crlf",
            5 => "unicode",
            _ => "long",
        }
    }

    fn is_long(self) -> bool {
        usize::from(self.0) == KEYS.len()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_long() {
            f.write_str("long_key")
        } else {
            write!(f, "{:?}", self.text())
        }
    }
}

/// The value a write stores: it names its key and the write (step of the sequence, and
/// position in a batch), so a wrong answer shows where it came from.
pub(crate) fn value_of(key: Key, step: usize, position: Option<usize>) -> Bytes {
    match position {
        None => Bytes::from(format!("{}#{step}", key.label())),
        Some(at) => Bytes::from(format!("{}#{step}.{at}", key.label())),
    }
}

/// One operation of a sequence. Durations are the ones sent: a sequence replays exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `get(key)`.
    Get(Key),
    /// `set(key, value, ttl)`.
    Set(Key, Option<Duration>),
    /// `delete(key)`.
    Delete(Key),
    /// `exists(key)`.
    Exists(Key),
    /// `get_many(keys)`.
    GetMany(Vec<Key>),
    /// `set_many(entries, ttl)`, one value per key.
    SetMany(Vec<Key>, Option<Duration>),
    /// `delete_many(keys)`.
    DeleteMany(Vec<Key>),
    /// `add(key, value, ttl)`; generated only when the backend declares an atomic add.
    Add(Key, Option<Duration>),
    /// `clear()`; generated only when the backend declares clear.
    Clear,
    /// Waits, so that short TTLs run out during the sequence.
    Sleep(Duration),
}

/// A sequence of operations. Its `Debug` is the Rust code that replays it on a
/// `cache: impl Cache`, one statement per line, values included.
#[derive(Clone, PartialEq, Eq)]
pub struct Program(pub Vec<Op>);

impl Program {
    /// The statement that runs step `step` (without its trailing `;`).
    #[must_use]
    pub fn statement(&self, step: usize) -> String {
        let Some(op) = self.0.get(step) else {
            return String::new();
        };
        let entries = |keys: &[Key]| {
            let list: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(at, key)| {
                    format!("({key:?}, {})", bytes_expr(&value_of(*key, step, Some(at))))
                })
                .collect();
            format!("&[{}]", list.join(", "))
        };
        match op {
            Op::Get(key) => format!("cache.get({key:?}).await"),
            Op::Set(key, ttl) => format!(
                "cache.set({key:?}, {}, {}).await",
                bytes_expr(&value_of(*key, step, None)),
                ttl_expr(*ttl)
            ),
            Op::Delete(key) => format!("cache.delete({key:?}).await"),
            Op::Exists(key) => format!("cache.exists({key:?}).await"),
            Op::GetMany(keys) => format!("cache.get_many(&{keys:?}).await"),
            Op::SetMany(keys, ttl) => {
                format!(
                    "cache.set_many({}, {}).await",
                    entries(keys),
                    ttl_expr(*ttl)
                )
            }
            Op::DeleteMany(keys) => format!("cache.delete_many(&{keys:?}).await"),
            Op::Add(key, ttl) => format!(
                "cache.add({key:?}, {}, {}).await",
                bytes_expr(&value_of(*key, step, None)),
                ttl_expr(*ttl)
            ),
            Op::Clear => "cache.clear().await".to_owned(),
            Op::Sleep(pause) => {
                format!("tokio::time::sleep({}).await", duration_expr(*pause))
            }
        }
    }

    /// Whether the sequence names the long key (its replay then declares it).
    fn uses_long_key(&self) -> bool {
        self.0.iter().any(|op| match op {
            Op::Get(key) | Op::Set(key, _) | Op::Delete(key) | Op::Exists(key) => key.is_long(),
            Op::Add(key, _) => key.is_long(),
            Op::GetMany(keys) | Op::SetMany(keys, _) | Op::DeleteMany(keys) => {
                keys.iter().any(|key| key.is_long())
            }
            Op::Clear | Op::Sleep(_) => false,
        })
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.uses_long_key() {
            writeln!(f, "let long_key: &str = &\"k\".repeat({LONG_KEY_LEN});")?;
        }
        for step in 0..self.0.len() {
            let unwrap = if matches!(self.0[step], Op::Sleep(_)) {
                ""
            } else {
                "?"
            };
            writeln!(f, "{}{unwrap}; // step {step}", self.statement(step))?;
        }
        Ok(())
    }
}

fn bytes_expr(value: &Bytes) -> String {
    format!("Bytes::from({:?})", String::from_utf8_lossy(value))
}

fn ttl_expr(ttl: Option<Duration>) -> String {
    ttl.map_or_else(
        || "None".to_owned(),
        |ttl| format!("Some({})", duration_expr(ttl)),
    )
}

fn duration_expr(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("Duration::from_secs({})", duration.as_secs())
    } else {
        format!("Duration::from_millis({})", duration.as_millis())
    }
}

/// What the sequences of one run are drawn from: the operations the backend declares,
/// and TTLs and pauses on the scale of its clock.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) max_ops: usize,
    pub(crate) clear: bool,
    pub(crate) add: bool,
    /// TTLs that run out within a sequence.
    pub(crate) short_ttls: Vec<Duration>,
    /// A TTL that outlives the run (and bounds what a failed run leaves behind).
    pub(crate) long_ttl: Duration,
    pub(crate) pauses: Vec<Duration>,
}

impl Plan {
    /// A plan for a backend declaring `declared`, on a time scale of `unit` (at least
    /// the TTL granularity): short TTLs of 2 and 3 units, pauses of 1 and 3.5 units
    /// (a 2-unit TTL is surely over after 3.5 units, even on a clock of 1 unit).
    pub(crate) fn new(declared: &Capabilities, unit: Duration, max_ops: usize) -> Self {
        let unit = unit.max(declared.ttl_granularity);
        Self {
            max_ops: max_ops.max(1),
            clear: declared.clear,
            add: declared.atomic_add,
            short_ttls: vec![
                declared.round_up_ttl(unit * 2),
                declared.round_up_ttl(unit * 3),
            ],
            long_ttl: Duration::from_secs(3600),
            pauses: vec![unit, unit * 7 / 2],
        }
    }

    fn ttl(&self) -> BoxedStrategy<Option<Duration>> {
        let mut choices = vec![None, Some(Duration::ZERO), Some(self.long_ttl)];
        choices.extend(self.short_ttls.iter().copied().map(Some));
        // Short TTLs are drawn as often as all the others together: expiry is where
        // backends go wrong.
        let short = select(self.short_ttls.clone()).prop_map(Some);
        Union::new_weighted(vec![(1, select(choices).boxed()), (1, short.boxed())]).boxed()
    }

    /// One operation.
    fn op(&self) -> BoxedStrategy<Op> {
        let key = || select(Key::all().collect::<Vec<_>>());
        let keys = move || vec(key(), 0..4);
        // Weights out of about 95: reads and writes most, a pause every 16 operations
        // or so, a clear rarely (it wipes what the sequence built up).
        let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (20, key().prop_map(Op::Get).boxed()),
            (
                20,
                (key(), self.ttl()).prop_map(|(k, t)| Op::Set(k, t)).boxed(),
            ),
            (8, key().prop_map(Op::Delete).boxed()),
            (8, key().prop_map(Op::Exists).boxed()),
            (8, keys().prop_map(Op::GetMany).boxed()),
            (
                8,
                (keys(), self.ttl())
                    .prop_map(|(k, t)| Op::SetMany(k, t))
                    .boxed(),
            ),
            (4, keys().prop_map(Op::DeleteMany).boxed()),
            (6, select(self.pauses.clone()).prop_map(Op::Sleep).boxed()),
        ];
        if self.add {
            arms.push((
                12,
                (key(), self.ttl()).prop_map(|(k, t)| Op::Add(k, t)).boxed(),
            ));
        }
        if self.clear {
            arms.push((1, Just(Op::Clear).boxed()));
        }
        Union::new_weighted(arms).boxed()
    }

    /// A whole sequence: 1 to `max_ops` operations.
    pub(crate) fn program(&self) -> BoxedStrategy<Program> {
        vec(self.op(), 1..=self.max_ops).prop_map(Program).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_prints_as_the_calls_that_replay_it() {
        let program = Program(vec![
            Op::Set(Key(0), Some(Duration::from_millis(200))),
            Op::SetMany(vec![Key(1), Key(6)], None),
            Op::Sleep(Duration::from_secs(1)),
            Op::GetMany(vec![Key(0), Key(4)]),
        ]);
        let text = format!("{program:?}");
        assert_eq!(
            text,
            "let long_key: &str = &\"k\".repeat(300);\n\
             cache.set(\"a\", Bytes::from(\"a#0\"), Some(Duration::from_millis(200))).await?; // step 0\n\
             cache.set_many(&[(\"b\", Bytes::from(\"b#1.0\")), (long_key, Bytes::from(\"long#1.1\"))], None).await?; // step 1\n\
             tokio::time::sleep(Duration::from_secs(1)).await; // step 2\n\
             cache.get_many(&[\"a\", \"line\\r\\nbreak\"]).await?; // step 3\n"
        );
    }

    #[test]
    fn the_alphabet_holds_a_key_over_250_bytes() {
        assert_eq!(Key::all().count(), 7);
        assert!(Key::all().any(|key| key.text().len() > 250));
    }
}
