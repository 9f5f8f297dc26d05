//! Making URLs and messages safe to show, and the few readings of a URL's text that
//! must work before (or without) a full parse.

use crate::Params;
use cache_api::CacheError;

/// What [`redact`] shows for a text that is not a URL: it may be a pasted password.
pub const NOT_A_URL: &str = "<not a URL>";

/// The URL with the password of its user info replaced by `***`, safe for messages,
/// logs and `Debug`; the user name stays.
///
/// The user info ends at the *last* `@`, not where a parser would end the authority: a
/// password holding an unencoded `/`, `?`, `#` or `@` makes the URL malformed, and it
/// must be hidden all the same. An `@` further on (in a parameter value) only hides more
/// than needed.
///
/// ```
/// use cache_url_core::redact;
///
/// assert_eq!(redact("redis://alice:s3cret@127.0.0.1:6379/0"), "redis://alice:***@127.0.0.1:6379/0");
/// assert_eq!(redact("redis://u:pa/ss@h:1/2"), "redis://u:***@h:1/2");
/// assert_eq!(redact("memcache://127.0.0.1:11211"), "memcache://127.0.0.1:11211");
/// assert_eq!(redact("s3cret"), "<not a URL>");
/// ```
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return NOT_A_URL.to_owned();
    };
    match rest.rfind('@') {
        Some(at) => {
            let (user_info, after) = rest.split_at(at);
            match user_info.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{after}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// `text` with every one of `secrets` replaced by `***`; empty secrets are ignored.
///
/// ```
/// let secrets = ["s3cret".to_owned()];
/// assert_eq!(cache_url_core::scrub("auth s3cret refused", &secrets), "auth *** refused");
/// ```
#[must_use]
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// The key prefix a URL's query names (`prefix` or `key_prefix`, decoded), if any,
/// read without parsing the rest of the URL.
///
/// Tools that work inside an application's namespace use it to nest a namespace of
/// their own under it, so that clearing their own namespace never touches the
/// application's keys.
///
/// ```
/// assert_eq!(cache_url_core::key_prefix("redis://h:6379/0?prefix=app%3A").as_deref(), Some("app:"));
/// assert_eq!(cache_url_core::key_prefix("memcache://h?timeout=1s"), None);
/// ```
#[must_use]
pub fn key_prefix(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    Params::from_query(query)
        .take_string(&["prefix", "key_prefix"])
        .ok()
        .flatten()
}

/// Refuses a key prefix that does not end with a delimiter (an ASCII punctuation mark
/// such as `:`): `foo` would also match the keys of `foobar:`, so clearing it would
/// empty another prefix's keys. The empty prefix is no prefix, and passes. The error
/// quotes the prefix escaped, so that no control character of it reaches a terminal.
///
/// ```
/// assert!(cache_url_core::check_prefix_delimiter("app:").is_ok());
/// assert!(cache_url_core::check_prefix_delimiter("").is_ok());
/// let err = cache_url_core::check_prefix_delimiter("app").unwrap_err();
/// assert!(err.to_string().contains(r#"("app:")"#));
/// ```
///
/// # Errors
///
/// `Config`, suggesting the prefix with `:` appended.
pub fn check_prefix_delimiter(prefix: &str) -> Result<(), CacheError> {
    match prefix.chars().last() {
        None => Ok(()),
        Some(last) if last.is_ascii_punctuation() => Ok(()),
        Some(_) => Err(CacheError::config(format!(
            "the key prefix {prefix:?} must end with a delimiter such as ':' ({:?}), \
             or it would also match the keys of longer prefixes like {:?}",
            format!("{prefix}:"),
            format!("{prefix}bar")
        ))),
    }
}

/// Takes the parameters named in `names` out of `url`'s query: the URL without them
/// (every other pair kept as written, in order) and what they said. Wrappers use it to
/// read their own settings before the backend reads the rest.
///
/// ```
/// let (rest, mut taken) = cache_url_core::split_off_params("redis://h?retry=2&prefix=a:", &["retry"]);
/// assert_eq!(rest, "redis://h?prefix=a:");
/// assert_eq!(taken.take_count("retry")?, Some(2));
/// # Ok::<(), cache_api::CacheError>(())
/// ```
#[must_use]
pub fn split_off_params(url: &str, names: &[&str]) -> (String, Params) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Params::default());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let decoded = Params::from_query(name);
        let is_taken = decoded
            .remaining()
            .next()
            .is_some_and(|name| names.contains(&name));
        if is_taken {
            taken.push(pair);
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.iter().all(|pair| pair.is_empty()) {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, Params::from_query(&taken.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_in_the_password_are_hidden() {
        for (raw, shown) in [
            ("memory://:pw/93@x@host", "memory://:***@host"),
            ("redis://u:pa?ss@host/1", "redis://u:***@host/1"),
            ("redis://u:p#w@host", "redis://u:***@host"),
            ("redis://u:p@ss@host/2?x=1", "redis://u:***@host/2?x=1"),
            (
                "redis+cluster://u:p@h1:1,h2:2?prefix=a:",
                "redis+cluster://u:***@h1:1,h2:2?prefix=a:",
            ),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }

    #[test]
    fn odd_user_info_and_no_user_info() {
        assert_eq!(redact("redis://user@host"), "redis://user@host");
        assert_eq!(redact("redis://:s3cret@h"), "redis://:***@h");
        assert_eq!(
            redact("redis://host/?password=x"),
            "redis://host/?password=x"
        );
        assert_eq!(
            redact("redis+unix:///run/r.sock"),
            "redis+unix:///run/r.sock"
        );
    }

    #[test]
    fn the_prefix_is_read_decoded() {
        assert_eq!(
            key_prefix("redis://h?prefix=a%3Ab%3A").as_deref(),
            Some("a:b:")
        );
        assert_eq!(
            key_prefix("redis://h?x=1&key_prefix=k:").as_deref(),
            Some("k:")
        );
        assert_eq!(key_prefix("redis://h?prefix=").as_deref(), Some(""));
        assert_eq!(key_prefix("redis://h"), None);
    }

    #[test]
    fn params_are_split_off_and_the_rest_kept_as_written() {
        let (rest, taken) = split_off_params(
            "memory://?retry=0&max_value_size=9&trace=1",
            &["retry", "trace"],
        );
        assert_eq!(rest, "memory://?max_value_size=9");
        assert_eq!(taken.remaining().collect::<Vec<_>>(), ["retry", "trace"]);
        let (rest, taken) = split_off_params("memory://?retry=1", &["retry"]);
        assert_eq!(rest, "memory://");
        assert!(!taken.is_empty());
        let (rest, _) = split_off_params("redis://h", &["retry"]);
        assert_eq!(rest, "redis://h");
    }
}
