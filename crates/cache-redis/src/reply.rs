//! The replies a command must get. `redis` reads a reply into `()` whatever it is, short
//! of an error, and into a number from a double or a numeric string: a server, or a
//! proxy in front of one, that answered `SET` with nil or `UNLINK` with `3.14` would pass
//! for one that did what was asked.

use redis::{FromRedisValue, ParsingError, Value};

/// `OK`: what `SET`, `MSET` and `FLUSHDB` answer when they did what they were asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored;

impl FromRedisValue for Stored {
    fn from_redis_value_ref(value: &Value) -> Result<Self, ParsingError> {
        match value {
            Value::Okay => Ok(Stored),
            Value::SimpleString(text) if text == "OK" => Ok(Stored),
            Value::ServerError(error) => Err(ParsingError::from(error.to_string())),
            // The kind only: the reply may hold cached data.
            other => Err(ParsingError::from(format!(
                "a write was answered with {}, not OK",
                kind(other)
            ))),
        }
    }

    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        Self::from_redis_value_ref(&value)
    }
}

/// A count, as `UNLINK` and `EXISTS` answer: an integer reply, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) usize);

impl FromRedisValue for Count {
    fn from_redis_value_ref(value: &Value) -> Result<Self, ParsingError> {
        match value {
            Value::Int(count) => usize::try_from(*count)
                .map(Count)
                .map_err(|_| ParsingError::from(format!("a count was answered with {count}"))),
            Value::ServerError(error) => Err(ParsingError::from(error.to_string())),
            other => Err(ParsingError::from(format!(
                "a count was answered with {}, not an integer",
                kind(other)
            ))),
        }
    }

    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        Self::from_redis_value_ref(&value)
    }
}

/// What kind of reply `value` is, in words.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a bulk string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) => "a status other than OK",
        Value::Okay => "OK",
        Value::Map(_) => "a map",
        Value::Attribute { .. } => "an attribute",
        Value::Set(_) => "a set",
        Value::Double(_) => "a double",
        Value::Boolean(_) => "a boolean",
        Value::VerbatimString { .. } => "a verbatim string",
        Value::BigNumber(_) => "a big number",
        Value::Push { .. } => "a push",
        Value::ServerError(_) => "an error",
        _ => "an unknown reply",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_is_stored() {
        assert_eq!(Stored::from_redis_value(Value::Okay).unwrap(), Stored);
        assert_eq!(
            Stored::from_redis_value(Value::SimpleString("OK".into())).unwrap(),
            Stored
        );
        for other in [
            Value::Nil,
            Value::Int(42),
            Value::Double(2.5),
            Value::Boolean(true),
            Value::SimpleString("QUEUED".into()),
            Value::BulkString(b"secret value".to_vec()),
            Value::Array(vec![Value::Okay]),
        ] {
            let error = Stored::from_redis_value(other.clone())
                .expect_err("not a stored value")
                .to_string();
            assert!(error.contains("not OK"), "{other:?}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn only_an_integer_that_is_not_negative_is_a_count() {
        assert_eq!(Count::from_redis_value(Value::Int(3)).unwrap(), Count(3));
        for other in [
            Value::Int(-1),
            Value::Double(2.5),
            Value::BulkString(b"3".to_vec()),
            Value::Nil,
            Value::Okay,
        ] {
            assert!(Count::from_redis_value(other.clone()).is_err(), "{other:?}");
        }
    }
}
