//! The longest string the server takes in one argument (`proto-max-bulk-len`), read at
//! build so that a value the server would refuse is refused before it is sent.
//!
//! Redis answers a longer argument with `Protocol error: invalid bulk length` and closes
//! the connection: the caller would see its write fail as a lost connection (worth a
//! retry, which fails again), and on a multiplexed connection the calls of everyone else
//! in flight on it would fail with it.

use redis::{Cmd, Value};

/// `CONFIG GET proto-max-bulk-len`.
pub(crate) fn query() -> Cmd {
    redis::cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .clone()
}

/// The limit in a `CONFIG GET` answer: a list of name and value (RESP2) or a map
/// (RESP3). `None` for any other answer.
pub(crate) fn parse(answer: &Value) -> Option<usize> {
    let pairs: Vec<(&Value, &Value)> = match answer {
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|pair| (&pair[0], &pair[1]))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(name, value)| (name, value)).collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(name, value)| {
        if !text(name)?.eq_ignore_ascii_case("proto-max-bulk-len") {
            return None;
        }
        text(value)?
            .trim()
            .parse::<u64>()
            .ok()
            .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX))
    })
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// The configured limit, lowered to the servers' (the smallest, on a cluster); kept when
/// no server said (a user whose ACL lacks `+config|get`, a service that renamed `CONFIG`).
pub(crate) fn effective(
    configured: usize,
    servers: impl IntoIterator<Item = Option<usize>>,
) -> usize {
    servers
        .into_iter()
        .flatten()
        .fold(configured, |limit, server| limit.min(server.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn both_protocols_answers_are_read() {
        let resp2 = Value::Array(vec![bulk("proto-max-bulk-len"), bulk("1048576")]);
        assert_eq!(parse(&resp2), Some(1 << 20));
        let resp3 = Value::Map(vec![(bulk("proto-max-bulk-len"), bulk("536870912"))]);
        assert_eq!(parse(&resp3), Some(512 << 20));
    }

    #[test]
    fn other_answers_say_nothing() {
        for answer in [
            Value::Nil,
            Value::Array(Vec::new()),
            Value::Array(vec![bulk("maxmemory"), bulk("100")]),
            Value::Array(vec![bulk("proto-max-bulk-len"), bulk("lots")]),
            Value::Array(vec![bulk("proto-max-bulk-len")]),
            Value::Okay,
        ] {
            assert_eq!(parse(&answer), None, "{answer:?}");
        }
    }

    #[test]
    fn the_smallest_limit_wins_and_silence_keeps_the_configured_one() {
        assert_eq!(effective(64 << 20, [Some(1 << 20)]), 1 << 20);
        assert_eq!(effective(1000, [Some(1 << 20)]), 1000);
        assert_eq!(
            effective(64 << 20, [None, Some(2 << 20), Some(1 << 20)]),
            1 << 20
        );
        assert_eq!(effective(64 << 20, [None, None]), 64 << 20);
        assert_eq!(effective(64 << 20, [Some(0)]), 1);
    }
}
