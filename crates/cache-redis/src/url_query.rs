//! The query parameters of a Redis URL, read on the workspace's one URL parser.
//!
//! The whole URL is parsed before any of its query is read, as every other crate of the
//! workspace does: a password holding an unencoded `?` then fails as a malformed URL
//! that shows nothing of it, instead of its tail being read (and named) as parameters.
//! Every parameter the URL may carry is read here and taken out of the URL before the
//! `redis` crate sees it (that crate ignores what it does not know, which would silently
//! drop a key prefix). An unknown or malformed parameter is a [`CacheError::Config`]
//! naming it; values are never repeated, so a secret pasted in the wrong place does not
//! end up in a log.

use std::time::Duration;

use cache_api::CacheError;
use cache_url_core::{CacheUrl, Params, TLS_PARAMS};

/// The parameters of every Redis URL.
const KNOWN: &[&str] = &[
    "prefix",
    "timeout",
    "connect_timeout",
    "response_timeout",
    "pool_wait_timeout",
    "pool_size",
    "mode",
    "max_value_size",
    "db",
];

/// How operations reach the server, as a URL names it (`mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeParam {
    Multiplexed,
    Pooled,
}

/// What the query of a URL says; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UrlParams {
    pub(crate) prefix: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) pool_wait_timeout: Option<Duration>,
    pub(crate) pool_size: Option<usize>,
    pub(crate) mode: Option<ModeParam>,
    pub(crate) max_value_size: Option<usize>,
    pub(crate) db: Option<u32>,
    pub(crate) tls_ca: Option<String>,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    pub(crate) tls_insecure_skip_verify: Option<bool>,
}

/// Parses `raw` whole, then splits it into the URL without its query and the
/// parameters of that query.
pub(crate) fn split(raw: &str) -> Result<(String, UrlParams), CacheError> {
    let mut url = CacheUrl::parse(raw)?;
    let scheme = url.scheme().to_owned();
    let params = read(url.params_mut(), &scheme)?;
    // The parser refuses an '@' after the first '?', so the first '?' of a URL it
    // accepted ends its user info, host list and path: no password is cut here.
    let raw = raw.trim();
    let base = raw.split_once('?').map_or(raw, |(base, _)| base);
    Ok((base.to_owned(), params))
}

/// Reads the parameters of a URL of `scheme`; a TLS parameter on a scheme without TLS
/// is refused whatever its value.
fn read(query: &mut Params, scheme: &str) -> Result<UrlParams, CacheError> {
    let tls = match scheme {
        "rediss" | "rediss+cluster" => true,
        "redis" | "redis+unix" | "redis+cluster" => {
            query.refuse(
                scheme,
                TLS_PARAMS,
                "which has no tls: use rediss:// (or rediss+cluster://) for tls",
            )?;
            false
        }
        "redis+sentinel" => {
            query.refuse(
                scheme,
                TLS_PARAMS,
                "whose sentinels and master are reached over plain tcp",
            )?;
            false
        }
        other => {
            return Err(CacheError::config(format!(
                "unsupported url scheme {other:?}: expected redis://, rediss://, redis+unix://, \
                 redis+sentinel://, redis+cluster:// or rediss+cluster://"
            )))
        }
    };
    let mut params = UrlParams {
        prefix: query.take_string(&["prefix", "key_prefix"])?,
        timeout: query.take_duration("timeout")?,
        connect_timeout: query.take_duration("connect_timeout")?,
        response_timeout: query.take_duration("response_timeout")?,
        pool_wait_timeout: query.take_duration("pool_wait_timeout")?,
        pool_size: query.take_count("pool_size")?,
        max_value_size: query.take_count("max_value_size")?,
        db: query.take_number("db", "a database number")?,
        mode: query.take_with("mode", "multiplexed or pooled", |mode| match mode {
            "multiplexed" => Some(ModeParam::Multiplexed),
            "pooled" => Some(ModeParam::Pooled),
            _ => None,
        })?,
        ..UrlParams::default()
    };
    if tls {
        params.tls_ca = query.take_string(&["tls_ca"])?;
        params.tls_cert = query.take_string(&["tls_cert"])?;
        params.tls_key = query.take_string(&["tls_key"])?;
        params.tls_insecure_skip_verify = query.take_bool("tls_insecure_skip_verify")?;
        query.finish(scheme, &[KNOWN, TLS_PARAMS].concat())?;
    } else {
        query.finish(scheme, KNOWN)?;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_tck::config_message;

    #[test]
    fn every_parameter_is_read() {
        let (base, params) = split(
            "redis://:pw@h:1/2?prefix=app%3A&timeout=250ms&connect_timeout=2s\
             &response_timeout=0.5&pool_wait_timeout=1m&pool_size=4&mode=pooled\
             &max_value_size=1000&db=2",
        )
        .unwrap();
        assert_eq!(base, "redis://:pw@h:1/2");
        assert_eq!(
            params,
            UrlParams {
                prefix: Some("app:".to_owned()),
                timeout: Some(Duration::from_millis(250)),
                connect_timeout: Some(Duration::from_secs(2)),
                response_timeout: Some(Duration::from_millis(500)),
                pool_wait_timeout: Some(Duration::from_secs(60)),
                pool_size: Some(4),
                mode: Some(ModeParam::Pooled),
                max_value_size: Some(1000),
                db: Some(2),
                ..UrlParams::default()
            }
        );
        assert_eq!(split("redis://h").unwrap().1, UrlParams::default());
        let (_, tls) = split(
            "rediss://h?tls_ca=%2Fetc%2Fca.pem&tls_cert=c.pem&tls_key=k.pem&tls_insecure_skip_verify=true",
        )
        .unwrap();
        assert_eq!(tls.tls_ca.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(tls.tls_cert.as_deref(), Some("c.pem"));
        assert_eq!(tls.tls_key.as_deref(), Some("k.pem"));
        assert_eq!(tls.tls_insecure_skip_verify, Some(true));
        assert_eq!(split("redis://h/?").unwrap().1, UrlParams::default());
    }

    #[test]
    fn unknown_and_malformed_parameters_name_the_parameter_not_the_value() {
        for (query, named) in [
            ("colour=red", "\"colour\""),
            ("password=hunter2", "\"password\""),
            ("pool_size=0", "pool_size"),
            ("pool_size=hunter2", "pool_size"),
            ("timeout=abc", "timeout"),
            ("timeout=0", "timeout"),
            ("timeout=-1", "timeout"),
            ("db=three", "db"),
            ("db=-1", "db"),
            ("mode=fast", "mode"),
            ("max_value_size=0", "max_value_size"),
            (
                "tls_insecure_skip_verify=hunter2",
                "tls_insecure_skip_verify",
            ),
        ] {
            let shown = config_message(split(&format!("rediss://h?{query}")));
            assert!(shown.contains(named), "{query}: {shown}");
            assert!(!shown.contains("hunter2"), "{query}: {shown}");
        }
        assert!(split("redis://h?prefix=a#b").is_err());
    }

    /// Numbers are plain digits: a `+` (a space in a query) or a sign is refused, in a
    /// parameter and in the port.
    #[test]
    fn numbers_with_a_sign_are_refused() {
        for (url, named) in [
            ("redis://h?pool_size=+3", "pool_size"),
            ("redis://h?pool_size=%2B3", "pool_size"),
            ("redis://h?max_value_size=+100", "max_value_size"),
            ("redis://h?db=+1", "db"),
            ("redis+cluster://h1,h2?timeout=+1s", "timeout"),
            ("redis://h:+23471", "port"),
        ] {
            let shown = config_message(split(url));
            assert!(shown.contains(named), "{url}: {shown}");
        }
    }

    /// A parameter with an empty name is refused, as an unknown one is.
    #[test]
    fn a_parameter_with_an_empty_name_is_refused() {
        for url in [
            "redis://h?=1",
            "redis://h?&=x",
            "rediss://h?prefix=a:&=",
            "redis+sentinel://h/m?=",
        ] {
            let shown = config_message(split(url));
            assert!(shown.contains("empty name"), "{url}: {shown}");
        }
        assert_eq!(split("redis://h?&").unwrap().1, UrlParams::default());
    }

    /// On a scheme without TLS, a TLS parameter is refused whatever its value, `false`
    /// included, before any file it names is looked at.
    #[test]
    fn tls_parameters_on_a_scheme_without_tls_are_refused_whatever_their_value() {
        for base in [
            "redis://h",
            "redis+unix:///run/redis.sock",
            "redis+cluster://h1,h2",
            "redis+sentinel://h/mymaster",
        ] {
            for query in [
                "tls_insecure_skip_verify=false",
                "tls_insecure_skip_verify=true",
                "tls_ca=/nonexistent/ca.pem",
                "tls_cert=/nonexistent/c.pem&tls_key=/nonexistent/k.pem",
            ] {
                let url = format!("{base}?{query}");
                let shown = config_message(split(&url));
                let name = query.split('=').next().unwrap();
                assert!(
                    shown.contains(name) && shown.contains("does not apply"),
                    "{url}: {shown}"
                );
                assert!(!shown.contains("nonexistent"), "{url}: {shown}");
            }
        }
        let (_, tls) = split("rediss+cluster://h1,h2?tls_insecure_skip_verify=false").unwrap();
        assert_eq!(tls.tls_insecure_skip_verify, Some(false));
    }

    /// A password with an unencoded `?`, `#`, `@` or `/` is never cut at the `?`: the
    /// URL is refused as a whole (or read with the whole password), and no part of the
    /// password is named as a parameter.
    #[test]
    fn a_password_holding_a_query_mark_is_not_read_as_parameters() {
        for url in [
            "redis://u:hunter?secretpart&x@127.0.0.1:6379",
            "redis://u:abc?def=ghi@127.0.0.1:6379",
            "redis://u:6379?secretpart&x@127.0.0.1",
            "rediss://:6380?secretpart=1@127.0.0.1",
            "redis+cluster://:hunter?secretpart&x@127.0.0.1:7000,127.0.0.1:7001",
            "redis+sentinel://:hunter?secretpart&x@127.0.0.1:26379/mymaster",
            "redis+unix://:hunter?secretpart&x@/run/redis.sock",
            "redis://u:hun#secretpart@127.0.0.1",
        ] {
            let shown = config_message(split(url));
            for part in ["hunter", "secretpart", "def", "ghi"] {
                assert!(!shown.contains(part), "{url}: {shown}");
            }
        }
        let (base, params) = split("redis://u:p@s/s@127.0.0.1:1/2?prefix=a:").unwrap();
        assert_eq!(base, "redis://u:p@s/s@127.0.0.1:1/2");
        assert_eq!(params.prefix.as_deref(), Some("a:"));
    }
}
