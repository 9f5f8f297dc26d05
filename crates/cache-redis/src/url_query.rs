//! The query parameters of a `redis://` or `redis+cluster://` URL.
//!
//! Every parameter the URL may carry is read here and taken out of the URL before
//! the `redis` crate sees it (that crate ignores what it does not know, which would
//! silently drop a key prefix). An unknown or malformed parameter is a
//! [`CacheError::Config`] naming it; values are never repeated, so a secret pasted in
//! the wrong place does not end up in a log.

use std::time::Duration;

use cache_api::CacheError;
use cache_url_core::Params;

/// The parameters a Redis URL understands, for error messages.
pub(crate) const KNOWN: &[&str] = &[
    "prefix",
    "timeout",
    "connect_timeout",
    "response_timeout",
    "pool_wait_timeout",
    "pool_size",
    "mode",
    "max_value_size",
    "db",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_insecure_skip_verify",
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

/// Splits `url` into the URL without its query and the parameters of that query.
pub(crate) fn split(url: &str) -> Result<(String, UrlParams), CacheError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    if query.contains('#') {
        return Err(CacheError::config(
            "a redis url has no fragment: percent-encode '#' in parameter values",
        ));
    }
    Ok((base.to_owned(), parse(query)?))
}

/// Reads the parameters of a query string (without the `?`).
pub(crate) fn parse(query: &str) -> Result<UrlParams, CacheError> {
    let mut query = Params::from_query(query);
    let params = UrlParams {
        prefix: query.take_string(&["prefix", "key_prefix"])?,
        timeout: query.take_duration("timeout")?,
        connect_timeout: query.take_duration("connect_timeout")?,
        response_timeout: query.take_duration("response_timeout")?,
        pool_wait_timeout: query.take_duration("pool_wait_timeout")?,
        pool_size: query.take_count("pool_size")?,
        max_value_size: query.take_count("max_value_size")?,
        db: query.take_number("db", "a database number")?,
        tls_ca: query.take_string(&["tls_ca"])?,
        tls_cert: query.take_string(&["tls_cert"])?,
        tls_key: query.take_string(&["tls_key"])?,
        tls_insecure_skip_verify: query.take_bool("tls_insecure_skip_verify")?,
        mode: query.take_with("mode", "multiplexed or pooled", |mode| match mode {
            "multiplexed" => Some(ModeParam::Multiplexed),
            "pooled" => Some(ModeParam::Pooled),
            _ => None,
        })?,
    };
    query.finish("redis", KNOWN)?;
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
            let shown = config_message(parse(query));
            assert!(shown.contains(named), "{query}: {shown}");
            assert!(!shown.contains("hunter2"), "{query}: {shown}");
        }
        assert!(split("redis://h?prefix=a#b").is_err());
    }
}
