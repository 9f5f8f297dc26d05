//! The longest string the server takes in one argument, read at build so that a value
//! the server would refuse is refused before it is sent: its `proto-max-bulk-len`, and
//! its `client-query-buffer-limit` (the whole command, a large argument included, is
//! read into that buffer: an operator may lower it below the default of 1 GiB).
//!
//! Redis answers a longer argument with `Protocol error: invalid bulk length`, or a query
//! buffer over its limit by closing the connection: the caller would see its write fail
//! as a lost connection (worth a retry, which fails again), and on a multiplexed
//! connection the calls of everyone else in flight on it would fail with it.

use redis::{Cmd, Value};

/// The settings asked for, in the order of [`queries`].
const SETTINGS: [&str; 2] = ["proto-max-bulk-len", "client-query-buffer-limit"];

/// What a command holds in the query buffer besides its largest argument: the command's
/// name, the key (a long one included) and the protocol's framing. A query buffer limit
/// is lowered by this much to give the limit of one value.
const QUERY_OVERHEAD: usize = 64 * 1024;

/// `CONFIG GET` of each setting, one command each (Redis before 7 takes one name per
/// `CONFIG GET`).
pub(crate) fn queries() -> [Cmd; 2] {
    SETTINGS.map(|name| redis::cmd("CONFIG").arg("GET").arg(name).clone())
}

/// The longest argument a server takes, from its answers to [`queries`] (`None` for a
/// query that failed); `None` when it said neither.
pub(crate) fn server_limit(answers: [Option<&Value>; 2]) -> Option<usize> {
    let [bulk, query_buffer] = answers;
    let bulk = bulk.and_then(|answer| parse(answer, SETTINGS[0]));
    let query_buffer = query_buffer
        .and_then(|answer| parse(answer, SETTINGS[1]))
        .map(|limit| limit.saturating_sub(QUERY_OVERHEAD));
    match (bulk, query_buffer) {
        (Some(bulk), Some(query_buffer)) => Some(bulk.min(query_buffer)),
        (one, other) => one.or(other),
    }
}

/// The value of `setting` in a `CONFIG GET` answer: a list of name and value (RESP2) or
/// a map (RESP3). `None` for any other answer.
fn parse(answer: &Value, setting: &str) -> Option<usize> {
    let pairs: Vec<(&Value, &Value)> = match answer {
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|pair| (&pair[0], &pair[1]))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(name, value)| (name, value)).collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(name, value)| {
        if !text(name)?.eq_ignore_ascii_case(setting) {
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

    const BULK: &str = "proto-max-bulk-len";

    fn parse(answer: &Value) -> Option<usize> {
        super::parse(answer, BULK)
    }

    #[test]
    fn both_protocols_answers_are_read() {
        let resp2 = Value::Array(vec![bulk(BULK), bulk("1048576")]);
        assert_eq!(parse(&resp2), Some(1 << 20));
        let resp3 = Value::Map(vec![(bulk(BULK), bulk("536870912"))]);
        assert_eq!(parse(&resp3), Some(512 << 20));
    }

    #[test]
    fn a_lower_query_buffer_limit_lowers_the_limit_by_the_commands_overhead() {
        let bulk_len = Value::Array(vec![bulk(BULK), bulk("536870912")]);
        let query_buffer = Value::Array(vec![bulk("client-query-buffer-limit"), bulk("1048576")]);
        assert_eq!(
            server_limit([Some(&bulk_len), Some(&query_buffer)]),
            Some((1 << 20) - QUERY_OVERHEAD)
        );
        assert_eq!(server_limit([Some(&bulk_len), None]), Some(512 << 20));
        assert_eq!(
            server_limit([None, Some(&query_buffer)]),
            Some((1 << 20) - QUERY_OVERHEAD)
        );
        let default_buffer =
            Value::Array(vec![bulk("client-query-buffer-limit"), bulk("1073741824")]);
        assert_eq!(
            server_limit([Some(&bulk_len), Some(&default_buffer)]),
            Some(512 << 20)
        );
        assert_eq!(server_limit([None, None]), None);
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
