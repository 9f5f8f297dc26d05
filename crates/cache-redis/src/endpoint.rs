//! Where to connect: parsing the `redis://` and `redis+cluster://` URLs into connection
//! information, and keeping their passwords out of every message (`redact_url`, `scrub`).

use cache_api::CacheError;
use redis::IntoConnectionInfo;
use url::Url;

/// Where to connect: one server or the seed nodes of a cluster.
pub(crate) struct Endpoint {
    pub(crate) nodes: Nodes,
    /// The URL (or the seed URLs) with the password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded, so that no error message can
    /// carry it even if a dependency ever put it in one.
    pub(crate) secrets: Vec<String>,
}

/// The connection information of one server, or of every seed node of a cluster.
pub(crate) enum Nodes {
    Single(redis::ConnectionInfo),
    Cluster(Vec<redis::ConnectionInfo>),
}

/// Where to connect, parsed from one `redis://` URL.
pub(crate) struct Target {
    pub(crate) info: redis::ConnectionInfo,
    /// The URL with its password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded.
    pub(crate) secrets: Vec<String>,
}

/// The scheme of a cluster URL: `redis+cluster://host1:port1,host2:port2`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster";

pub(crate) fn is_cluster_url(raw: &str) -> bool {
    raw.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(CLUSTER_SCHEME))
}

/// Splits `redis+cluster://[user:password@]host1[:port1],host2[:port2][/0]` into one
/// `redis://` URL per host, each with the same credentials and path.
pub(crate) fn split_cluster_url(raw: &str) -> Result<Vec<String>, CacheError> {
    let Some((_, rest)) = raw
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(CLUSTER_SCHEME))
    else {
        return Err(CacheError::config(format!(
            "{} is not a cluster url: expected {CLUSTER_SCHEME}://host1:port1,host2:port2",
            redact_url(raw)
        )));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host list holds no '@', so the last one ends the user info even when a
    // password holds an unencoded '@'.
    let (user_info, hosts) = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => (Some(user_info), hosts),
        None => (None, authority),
    };
    if hosts.is_empty() {
        return Err(CacheError::config("the redis cluster url names no host"));
    }
    hosts
        .split(',')
        .map(|host| {
            if host.trim().is_empty() {
                return Err(CacheError::config(format!(
                    "the redis cluster url {} has an empty entry in its host list",
                    redact_url(raw)
                )));
            }
            Ok(match user_info {
                Some(user_info) => format!("redis://{user_info}@{host}{tail}"),
                None => format!("redis://{host}{tail}"),
            })
        })
        .collect()
}

/// Parses the seed URLs of a cluster: each a `redis://` URL, all with the same
/// credentials, none naming a database other than 0.
pub(crate) fn parse_cluster_seeds(
    seeds: &[String],
    database: Option<i64>,
    redacted_url: String,
) -> Result<Endpoint, CacheError> {
    if seeds.is_empty() {
        return Err(CacheError::config(
            "a redis cluster needs at least one seed url",
        ));
    }
    if let Some(database) = database.filter(|database| *database != 0) {
        return Err(CacheError::config(format!(
            "a redis cluster has only database 0, but database({database}) was set"
        )));
    }
    let mut infos = Vec::with_capacity(seeds.len());
    let mut secrets: Vec<String> = Vec::new();
    let mut credentials = None;
    for seed in seeds {
        let target = parse_url(seed, None)?;
        for secret in target.secrets {
            if !secrets.contains(&secret) {
                secrets.push(secret);
            }
        }
        let settings = target.info.redis_settings();
        if settings.db() != 0 {
            return Err(CacheError::config(format!(
                "a redis cluster has only database 0, but the url {} names database {}",
                target.redacted_url,
                settings.db()
            )));
        }
        let these = (
            settings.username().map(str::to_owned),
            settings.password().map(str::to_owned),
        );
        match &credentials {
            None => credentials = Some(these),
            Some(first) if *first != these => {
                return Err(CacheError::config(
                    "the seed urls of a redis cluster must all carry the same user and password",
                ))
            }
            Some(_) => {}
        }
        infos.push(target.info);
    }
    Ok(Endpoint {
        nodes: Nodes::Cluster(infos),
        redacted_url,
        secrets,
    })
}

/// Parses and checks a `redis://` URL; the database comes from its path or from
/// `database`, which must agree when both are given.
pub(crate) fn parse_url(raw: &str, database: Option<i64>) -> Result<Target, CacheError> {
    // url::ParseError never repeats the input, so the message cannot carry a password.
    let url =
        Url::parse(raw).map_err(|err| CacheError::config(format!("invalid redis url: {err}")))?;
    match url.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(CacheError::config(
                "rediss:// asks for tls, which is not supported by this build of cache-redis \
                 (built without openssl or rustls): use redis:// on a trusted network or through a tls tunnel",
            ))
        }
        other => {
            return Err(CacheError::config(format!(
                "unsupported url scheme {other:?}: expected redis://"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CacheError::config("the redis url names no host"));
    }
    if url.query().is_some_and(|query| !query.is_empty()) {
        // The builder takes the parameters of its own URL out before this point; a
        // query here is on a seed of `cluster_builder`, where it would be lost.
        return Err(CacheError::config(
            "the seed urls of cluster_builder take no parameters: set them on the builder",
        ));
    }
    let from_path = match url.path().trim_matches('/') {
        "" => None,
        path => Some(path.parse::<u32>().map(i64::from).map_err(|_| {
            CacheError::config(format!(
                "the path of a redis url is the database number, not {path:?}"
            ))
        })?),
    };
    let db = match (from_path, database) {
        (Some(a), Some(b)) if a != b => {
            return Err(CacheError::config(format!(
                "the url names database {a} but database({b}) was set"
            )))
        }
        (a, b) => a.or(b).unwrap_or(0),
    };

    let mut secrets = Vec::new();
    if let Some(password) = url.password() {
        secrets.push(password.to_owned());
        if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
            if decoded != password {
                secrets.push(decoded.into_owned());
            }
        }
    }
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|err| CacheError::config(scrub(&format!("invalid redis url: {err}"), &secrets)))?;
    let redis_settings = info.redis_settings().clone().set_db(db);
    let info = info.set_redis_settings(redis_settings);
    Ok(Target {
        info,
        redacted_url: redact_url(raw),
        secrets,
    })
}

/// The URL with its password (if any) replaced by `***`; a URL that does not parse is
/// not shown at all, since where its password is cannot be told.
pub(crate) fn redact_url(raw: &str) -> String {
    if is_cluster_url(raw) {
        return redact_cluster_url(raw);
    }
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some("***")).is_err() {
                return "<redacted url>".to_owned();
            }
            url.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// A `redis+cluster://` URL with its password (if any) replaced by `***`; the url crate
/// cannot parse its host list, so the user info is cut out by hand.
fn redact_cluster_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return "<unparseable url>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, hosts)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}{tail}"),
            None => format!("{scheme}://{user_info}@{hosts}{tail}"),
        },
        None => raw.to_owned(),
    }
}

/// Replaces every secret in `text` by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::RedisCacheBuilder;

    fn config_message(result: Result<Target, CacheError>) -> String {
        match result {
            Err(CacheError::Config { message }) => message,
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("expected a config error, got a target"),
        }
    }

    #[test]
    fn the_password_is_redacted_in_every_form() {
        assert_eq!(
            redact_url("redis://alice:pa%40ss@127.0.0.1:6379/2"),
            "redis://alice:***@127.0.0.1:6379/2"
        );
        assert_eq!(
            redact_url("redis://:s3cret@localhost"),
            "redis://:***@localhost"
        );
        assert_eq!(
            redact_url("redis://localhost:6379"),
            "redis://localhost:6379"
        );
        assert_eq!(redact_url("not a url with s3cret"), "<unparseable url>");
    }

    #[test]
    fn urls_are_parsed_with_user_password_and_database() {
        let target = parse_url("redis://alice:pa%40ss@127.0.0.1:7000/3", None).unwrap();
        let redis = target.info.redis_settings();
        assert_eq!(redis.username(), Some("alice"));
        assert_eq!(redis.password(), Some("pa@ss"));
        assert_eq!(redis.db(), 3);
        assert_eq!(
            target.secrets,
            vec!["pa%40ss".to_owned(), "pa@ss".to_owned()]
        );

        let legacy = parse_url("redis://:s3cret@127.0.0.1", Some(5)).unwrap();
        assert_eq!(legacy.info.redis_settings().username(), None);
        assert_eq!(legacy.info.redis_settings().password(), Some("s3cret"));
        assert_eq!(legacy.info.redis_settings().db(), 5);

        let same = parse_url("redis://127.0.0.1/4", Some(4)).unwrap();
        assert_eq!(same.info.redis_settings().db(), 4);
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        let tls = config_message(parse_url("rediss://:s3cret@127.0.0.1", None));
        assert!(
            tls.contains("tls") && tls.contains("not supported"),
            "{tls}"
        );
        assert!(!tls.contains("s3cret"));

        let scheme = config_message(parse_url("http://:s3cret@127.0.0.1", None));
        assert!(scheme.contains("\"http\""), "{scheme}");

        let db = config_message(parse_url("redis://:s3cret@127.0.0.1/abc", None));
        assert!(
            db.contains("database number") && !db.contains("s3cret"),
            "{db}"
        );

        let clash = config_message(parse_url("redis://127.0.0.1/2", Some(3)));
        assert!(
            clash.contains("database 2") && clash.contains("database(3)"),
            "{clash}"
        );

        let garbage = config_message(parse_url("s3cret", None));
        assert!(!garbage.contains("s3cret"), "{garbage}");
    }

    #[test]
    fn cluster_urls_split_into_seeds_with_the_same_credentials() {
        assert_eq!(
            split_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
                .unwrap(),
            vec![
                "redis://u:p%40ss@10.0.0.1:7000",
                "redis://u:p%40ss@10.0.0.2:7001",
                "redis://u:p%40ss@[::1]:7002",
            ]
        );
        assert_eq!(
            split_cluster_url("REDIS+CLUSTER://h1,h2:7001/0").unwrap(),
            vec!["redis://h1/0", "redis://h2:7001/0"]
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://:s3cret@",
            "redis+cluster://:s3cret@h1,,h2",
            "redis://:s3cret@h1",
        ] {
            let err = split_cluster_url(bad).unwrap_err();
            assert!(matches!(err, CacheError::Config { .. }), "{bad}: {err:?}");
            assert!(!err.to_string().contains("s3cret"), "{bad}: {err}");
        }
    }

    #[test]
    fn cluster_urls_are_redacted() {
        assert_eq!(
            redact_url("redis+cluster://alice:s3cret@h1:7000,h2:7001/0"),
            "redis+cluster://alice:***@h1:7000,h2:7001/0"
        );
        assert_eq!(
            redact_url("redis+cluster://h1:7000,h2:7001"),
            "redis+cluster://h1:7000,h2:7001"
        );
        let shown = format!(
            "{:?}",
            RedisCacheBuilder::new_cluster(["redis://:s3cret@h1:7000", "redis://:s3cret@h2"])
        );
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let secrets = vec!["s3cret".to_owned()];
        assert_eq!(scrub("a s3cret and s3cret", &secrets), "a *** and ***");
        assert_eq!(scrub("nothing here", &[String::new()]), "nothing here");
    }
}
