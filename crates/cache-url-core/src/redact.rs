//! Making URLs and messages safe to show, and the few readings of a URL's text that
//! must work before (or without) a full parse.

use crate::{
    params::{form_decode, is_parameter_name},
    parse_bool, parse_duration, parse_number, Params,
};
use cache_api::CacheError;

/// What [`redact`] shows for a text that is not a URL: it may be a pasted password.
pub const NOT_A_URL: &str = "<not a URL>";

/// The URL with whatever may be a password replaced by `***`, safe for messages, logs
/// and `Debug`:
///
/// - the password of the user info, the user name staying (`alice:***@`); user info
///   without a `:` may be a bare token and is hidden whole (`***@`). The user info ends
///   at the *last* `@`, not where a parser would end the authority: a password holding
///   an unencoded `/`, `?`, `#` or `@` makes the URL malformed, and it must be hidden all
///   the same. An `@` further on (in a parameter value) only hides more than needed;
/// - a host whose "port" is not a number, or a port without a host (`user:password` or
///   `:password` written without its `@host`): everything from that `:` on;
/// - the value of every query parameter, unless the parameter is a setting of the
///   workspace and the value reads as one (a number, a duration, `true`/`false`,
///   `multiplexed`/`pooled`); a key prefix and the paths of TLS files are shown as
///   written. A secret pasted into the wrong parameter is not shown. A name no
///   parameter could have, and a fragment, are hidden too.
///
/// ```
/// use cache_url_core::redact;
///
/// assert_eq!(redact("redis://alice:s3cret@127.0.0.1:6379/0"), "redis://alice:***@127.0.0.1:6379/0");
/// assert_eq!(redact("redis://u:pa/ss@h:1/2"), "redis://u:***@h:1/2");
/// assert_eq!(redact("memcache://t0ken@h"), "memcache://***@h");
/// assert_eq!(redact("redis://default:s3cret"), "redis://default:***");
/// assert_eq!(redact("redis://h?prefix=app:&timeout=2s&db=s3cret"), "redis://h?prefix=app:&timeout=2s&db=***");
/// assert_eq!(redact("memcache://127.0.0.1:11211"), "memcache://127.0.0.1:11211");
/// assert_eq!(redact("s3cret"), "<not a URL>");
/// ```
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return NOT_A_URL.to_owned();
    };
    let mut shown = format!("{scheme}://");
    // An empty authority (`redis+unix:///p@th`) has no user info, as the parser reads it.
    let location = match rest.rfind('@') {
        Some(at) if !rest.starts_with('/') => {
            match rest[..at].split_once(':') {
                Some((user, _)) => {
                    shown.push_str(user);
                    shown.push_str(":***");
                }
                None if at == 0 => {}
                None => shown.push_str("***"),
            }
            shown.push('@');
            &rest[at + 1..]
        }
        _ => rest,
    };
    let (authority, after) =
        location.split_at(location.find(['/', '?', '#']).unwrap_or(location.len()));
    for (index, entry) in authority.split(',').enumerate() {
        if index > 0 {
            shown.push(',');
        }
        if let Some(start) = secret_start(entry) {
            // What follows may be a password, the rest of the URL included when the
            // password holds a reserved character: none of it is shown.
            shown.push_str(&entry[..start]);
            shown.push_str("***");
            return shown;
        }
        shown.push_str(entry);
    }
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((before, _)) => (before, true),
        None => (after, false),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            shown.push_str(path);
            shown.push('?');
            shown.push_str(&redact_query(query));
        }
        None => shown.push_str(before_fragment),
    }
    if fragment {
        shown.push_str("#***");
    }
    shown
}

/// In one `host[:port]` entry of a host list, where a password may start: after the
/// `:` of a "port" that is no number, or of a port after an empty host. That is how
/// `user:password` and `:password` read when their `@host` is missing.
pub(crate) fn secret_start(entry: &str) -> Option<usize> {
    let bracket = entry.trim_start().starts_with('[');
    let (host, colon) = match entry.find(']').filter(|_| bracket) {
        Some(close) => {
            let after = &entry[close + 1..];
            if after.trim().is_empty() {
                return None;
            }
            if !after.starts_with(':') {
                // Only `:port` may follow `]`: anything else is hidden whole.
                return Some(close + 1);
            }
            (&entry[..=close], close + 1)
        }
        None => {
            let colon = entry.rfind(':')?;
            (&entry[..colon], colon)
        }
    };
    let port = entry[colon + 1..].trim();
    let is_number = !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit());
    (!is_number || host.trim().is_empty()).then_some(colon + 1)
}

/// The parameters of the workspace whose values are shown as written: what an
/// application names on purpose (a key prefix, a file's path).
const SHOWN_AS_WRITTEN: &[&str] = &["prefix", "key_prefix", "tls_ca", "tls_cert", "tls_key"];

/// The parameters of the workspace whose values are shown when they read as a setting.
const SETTINGS: &[&str] = &[
    "timeout",
    "connect_timeout",
    "response_timeout",
    "pool_wait_timeout",
    "pool_size",
    "mode",
    "max_value_size",
    "max_capacity_bytes",
    "db",
    "tls_insecure_skip_verify",
    "namespace_refresh",
    "get_many_fail_open",
    "retry",
    "deadline",
    "trace",
    "metrics",
];

/// A query with every value hidden that may be a secret: see [`redact`].
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            if pair.is_empty() {
                return String::new();
            }
            let (name, value) = match pair.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (pair, None),
            };
            // A name that is not UTF-8 once decoded is no parameter's.
            let decoded = form_decode(name)
                .ok()
                .filter(|name| is_parameter_name(name));
            let name_shown = if decoded.is_some() { name } else { "***" };
            let decoded = decoded.unwrap_or_default();
            let Some(value) = value else {
                // A lone word that names no parameter may be a password pasted there.
                let known = SETTINGS.contains(&decoded.as_str())
                    || SHOWN_AS_WRITTEN.contains(&decoded.as_str())
                    || crate::TLS_PARAMS.contains(&decoded.as_str());
                return if known { name_shown } else { "***" }.to_owned();
            };
            let readable = value.is_empty()
                || SHOWN_AS_WRITTEN.contains(&decoded.as_str())
                || (SETTINGS.contains(&decoded.as_str())
                    && form_decode(value).is_ok_and(|value| reads_as_a_setting(&value)));
            format!("{name_shown}={}", if readable { value } else { "***" })
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `value` is a number, a duration, a boolean or a connection mode.
fn reads_as_a_setting(value: &str) -> bool {
    parse_number::<u128>(value).is_some()
        || parse_duration(value).is_some()
        || parse_bool(value).is_some()
        || matches!(value, "multiplexed" | "pooled")
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
///
/// A URL the parser refuses because its query holds an `@` (the `?` may be inside a
/// password, and the "prefix" the tail of it) names no prefix here either.
#[must_use]
pub fn key_prefix(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    if query.contains('@') {
        return None;
    }
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
pub(crate) mod tests {
    use super::*;

    /// Every scheme of the workspace, and one it does not know.
    pub(crate) const SCHEMES: &[&str] = &[
        "memory",
        "redis",
        "rediss",
        "redis+unix",
        "redis+cluster",
        "rediss+cluster",
        "redis+sentinel",
        "memcache",
        "memcached",
        "memcaches",
        "memcache+unix",
        "ftp",
    ];

    #[test]
    fn reserved_characters_in_the_password_are_hidden() {
        for (raw, shown) in [
            ("memory://:pw/93@x@host", "memory://:***@host"),
            ("redis://u:pa?ss@host/1", "redis://u:***@host/1"),
            ("redis://u:p#w@host", "redis://u:***@host"),
            ("redis://u:p@ss@host/2?db=1", "redis://u:***@host/2?db=1"),
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
        assert_eq!(redact("redis://:s3cret@h"), "redis://:***@h");
        assert_eq!(redact("redis://@h"), "redis://@h");
        assert_eq!(
            redact("redis+unix:///run/r.sock"),
            "redis+unix:///run/r.sock"
        );
        assert_eq!(
            redact("redis+unix:///run/a@b.sock?db=2"),
            "redis+unix:///run/a@b.sock?db=2"
        );
    }

    /// User info without a ':' may be a bare token: it is hidden whole, on every scheme.
    #[test]
    fn user_info_without_a_colon_is_hidden_whole() {
        for scheme in SCHEMES {
            for (rest, shown) in [
                ("hunter2@127.0.0.1:11211", "***@127.0.0.1:11211"),
                ("hun%40ter2@h/0?prefix=p:", "***@h/0?prefix=p:"),
                ("hun/ter2@h", "***@h"),
            ] {
                let url = format!("{scheme}://{rest}");
                assert_eq!(redact(&url), format!("{scheme}://{shown}"), "{url}");
            }
        }
    }

    /// `user:password` or `:password` without its `@host` reads as a host whose port is
    /// the password: from that ':' on, nothing is shown, on every scheme, whatever
    /// reserved character the password holds.
    #[test]
    fn a_password_missing_its_host_is_hidden() {
        for scheme in SCHEMES {
            for (rest, shown) in [
                ("default:S3cretPw", "default:***"),
                (":S3cretPw", ":***"),
                (":1234", ":***"),
                ("[::1]:S3cretPw", "[::1]:***"),
                ("[::1]S3cretPw", "[::1]***"),
                ("default:S3cretPw,127.0.0.1:7000", "default:***"),
                (
                    "127.0.0.1:7000,default:S3cretPw/0",
                    "127.0.0.1:7000,default:***",
                ),
                ("default:S3cr/etPw", "default:***"),
                ("default:S3cr?etPw", "default:***"),
                ("default:S3cr#etPw", "default:***"),
                ("default:S3cr%2CetPw", "default:***"),
            ] {
                let url = format!("{scheme}://{rest}");
                assert_eq!(redact(&url), format!("{scheme}://{shown}"), "{url}");
            }
        }
        // A host with a port in digits, or without a port, is no password.
        for url in [
            "redis://127.0.0.1:6379/0",
            "memcache://h1,h2:11212,[::1]:11213,[::1]",
            "redis+cluster://h1:7000,h2:7001",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    /// Query values are shown only for the workspace's settings that read as one, and
    /// for a prefix and TLS file paths; names no parameter could have are hidden.
    #[test]
    fn query_values_are_hidden_unless_they_read_as_a_setting() {
        for (url, shown) in [
            (
                "redis://h/0?prefix=app%3A&timeout=250ms&pool_size=4&mode=pooled&trace",
                "redis://h/0?prefix=app%3A&timeout=250ms&pool_size=4&mode=pooled&trace",
            ),
            ("redis://h?db=S3cretPw", "redis://h?db=***"),
            ("redis://h?colour=hunter2", "redis://h?colour=***"),
            (
                "redis://h?password=hunter2&db=2",
                "redis://h?password=***&db=2",
            ),
            ("redis://h?timeout=hunter2", "redis://h?timeout=***"),
            ("redis://h?mode=hunter2", "redis://h?mode=***"),
            (
                "memory://?max_value_size=2048&retry=",
                "memory://?max_value_size=2048&retry=",
            ),
            (
                "rediss://h?tls_ca=/etc/ca.pem",
                "rediss://h?tls_ca=/etc/ca.pem",
            ),
            ("redis://h?hun%20ter2=1&=hunter2", "redis://h?***=***&=***"),
            ("redis://h?%ffhunter2=1&%ff", "redis://h?***=***&***"),
            ("redis://h?prefix=a:#hunter2", "redis://h?prefix=a:#***"),
            ("redis://h#hunter2?db=1", "redis://h#***"),
            // A lone word is shown only when it names a parameter.
            (
                "redis://h?S3cretPw&db=1&tls_insecure_skip_verify",
                "redis://h?***&db=1&tls_insecure_skip_verify",
            ),
            (
                "memcache://h?get_many_fail_open=true&namespace_refresh=0",
                "memcache://h?get_many_fail_open=true&namespace_refresh=0",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
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
        // What follows a '?' before an '@' may be the tail of a password.
        assert_eq!(key_prefix("redis://u:1?prefix=hunter2@h"), None);
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
