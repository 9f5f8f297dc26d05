//! Small assertions for a backend's own tests, beside the contract's checks.

use std::fmt::Debug;

use cache_api::CacheError;

/// The message of the [`CacheError::Config`] that `result` must be: what a backend's tests
/// of its settings read to check that a refusal names the setting (and never a secret).
///
/// ```
/// use cache_api::CacheError;
///
/// let refused: Result<u32, _> = Err(CacheError::config("`timeout` must be above zero"));
/// assert!(cache_tck::config_message(refused).contains("timeout"));
/// ```
///
/// # Panics
///
/// When `result` is a value or an error of another kind: both are named in the message.
#[track_caller]
pub fn config_message<T: Debug>(result: Result<T, CacheError>) -> String {
    match result {
        Err(CacheError::Config { message }) => message,
        Err(other) => panic!("expected a config error, got the error {other:?}"),
        Ok(value) => panic!("expected a config error, got {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_of_a_config_error_is_returned() {
        let refused: Result<(), _> = Err(CacheError::config("bad `retry`"));
        assert_eq!(config_message(refused), "bad `retry`");
    }

    #[test]
    #[should_panic(expected = "expected a config error, got 7")]
    fn a_value_is_named() {
        config_message(Ok::<_, CacheError>(7));
    }

    #[test]
    #[should_panic(expected = "expected a config error, got the error")]
    fn another_error_is_named() {
        config_message::<()>(Err(CacheError::Unsupported { operation: "get" }));
    }
}
