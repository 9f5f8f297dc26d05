//! Where to connect: parsing the `redis://`, `rediss://`, `redis+unix://` and
//! `redis[s]+cluster://` URLs into connection information, on the workspace's one URL
//! parser (`cache-url-core`), whose redactor and scrubber keep their passwords out of
//! every message. `redis+sentinel://` is read in `sentinel.rs`.

use cache_api::CacheError;
use cache_url_core::{parse_number, CacheUrl};
use redis::IntoConnectionInfo;

use crate::tls::{certificates, configure, TlsSettings};

/// A database asked for besides a URL's path, and by whom: a message about it names
/// what the caller wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Database {
    /// Set by [`RedisCacheBuilder::database`](crate::RedisCacheBuilder::database).
    Set(i64),
    /// Named by the URL's `db` parameter.
    Param(i64),
}

impl Database {
    /// The database number.
    pub(crate) fn number(self) -> i64 {
        match self {
            Database::Set(number) | Database::Param(number) => number,
        }
    }

    /// Where it was asked for, as the end of a sentence: `database(2) was set`, `the url
    /// parameter db=2 names database 2`.
    pub(crate) fn asked(self) -> String {
        match self {
            Database::Set(number) => format!("database({number}) was set"),
            Database::Param(number) => {
                format!("the url parameter db={number} names database {number}")
            }
        }
    }
}

/// The database of a URL: the one its path names (`from_path`), or the one asked for
/// besides, which must be the same when both are given; 0 when neither is.
pub(crate) fn agreed_database(
    from_path: Option<i64>,
    asked: Option<Database>,
) -> Result<i64, CacheError> {
    match (from_path, asked) {
        (Some(path), Some(asked)) if path != asked.number() => Err(CacheError::config(format!(
            "the url names database {path} in its path but {}",
            asked.asked()
        ))),
        (path, asked) => Ok(path.or(asked.map(Database::number)).unwrap_or(0)),
    }
}

/// A database number as a path writes it: plain digits, at most `u32::MAX`.
pub(crate) fn database_number(text: &str) -> Option<i64> {
    parse_number::<u32>(text).map(i64::from)
}

/// Where to connect: one server or the seed nodes of a cluster.
pub(crate) struct Endpoint {
    pub(crate) nodes: Nodes,
    /// The URL (or the seed URLs) with the password replaced by `***`, for `Debug`.
    pub(crate) redacted_url: String,
    /// The password as written in the URL and decoded, so that no error message can
    /// carry it even if a dependency ever put it in one.
    pub(crate) secrets: Vec<String>,
    /// The CA and client certificate of a TLS connection, read from their files: the
    /// cluster client needs them for the nodes it discovers.
    pub(crate) certificates: Option<redis::TlsCertificates>,
}

/// The connection information of one server, of every seed node of a cluster, or of
/// the sentinels that name the master of a group.
pub(crate) enum Nodes {
    Single(redis::ConnectionInfo),
    Cluster(Vec<redis::ConnectionInfo>),
    Sentinel(crate::sentinel::SentinelTarget),
}

impl Nodes {
    /// Where a connection goes, without credentials: `host:port` (`[v6]:port`) or a
    /// socket's path; every seed of a cluster. None for a sentinel group, whose failure
    /// may be that of a sentinel or of the master it named.
    pub(crate) fn addresses(&self) -> Vec<String> {
        let infos = match self {
            Nodes::Single(info) => std::slice::from_ref(info),
            Nodes::Cluster(seeds) => seeds.as_slice(),
            Nodes::Sentinel(_) => &[],
        };
        infos.iter().map(address).collect()
    }
}

/// Where `info` connects, without credentials: `host:port` (`[v6]:port`) or a socket's
/// path.
pub(crate) fn address(info: &redis::ConnectionInfo) -> String {
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            crate::wrong_port::display_address(host, *port)
        }
        // A socket's path, as the crate shows it.
        other => other.to_string(),
    }
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
/// The scheme of a cluster URL over TLS.
pub(crate) const TLS_CLUSTER_SCHEME: &str = "rediss+cluster";

/// The port of a `redis://` URL that names none.
const DEFAULT_PORT: u16 = 6379;

pub(crate) use cache_url_core::{redact as redact_url, scrub};

pub(crate) fn is_cluster_url(raw: &str) -> bool {
    raw.trim().split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case(CLUSTER_SCHEME)
            || scheme.eq_ignore_ascii_case(TLS_CLUSTER_SCHEME)
    })
}

/// Splits `redis+cluster://[user:password@]host1[:port1],host2[:port2][/0]` into one
/// `redis://` URL per host, each with the same credentials and path (`rediss://` for
/// `rediss+cluster://`).
pub(crate) fn split_cluster_url(raw: &str) -> Result<Vec<String>, CacheError> {
    let url = CacheUrl::parse(raw)?;
    let node_scheme = match url.scheme() {
        CLUSTER_SCHEME => "redis",
        TLS_CLUSTER_SCHEME => "rediss",
        _ => "",
    };
    if node_scheme.is_empty() {
        return Err(CacheError::config(format!(
            "{} is not a cluster url: expected {CLUSTER_SCHEME}://host1:port1,host2:port2",
            url.redacted()
        )));
    }
    if url.hosts().is_empty() {
        return Err(CacheError::config("the redis cluster url names no host"));
    }
    // Checked here, where the message can name the cluster url rather than the url of
    // one of its seeds.
    match database_path(url.path()) {
        "" => {}
        path => match database_number(path) {
            Some(0) => {}
            Some(database) => {
                return Err(CacheError::config(format!(
                    "a redis cluster has only database 0, but the url {} names database {database}",
                    url.redacted()
                )))
            }
            None => {
                return Err(CacheError::config(format!(
                    "the path of a {} url is the database number, 0 on a cluster, not {path:?}",
                    url.scheme()
                )))
            }
        },
    }
    Ok(url.per_host_urls(node_scheme))
}

/// Parses the seed URLs of a cluster: each a `redis://` URL, all with the same
/// credentials, none naming a database other than 0.
pub(crate) fn parse_cluster_seeds(
    seeds: &[String],
    database: Option<Database>,
    redacted_url: String,
    tls: &TlsSettings,
) -> Result<Endpoint, CacheError> {
    if seeds.is_empty() {
        return Err(CacheError::config(
            "a redis cluster needs at least one seed url",
        ));
    }
    if let Some(database) = database.filter(|database| database.number() != 0) {
        return Err(CacheError::config(format!(
            "a redis cluster has only database 0, but {}",
            database.asked()
        )));
    }
    let mut infos = Vec::with_capacity(seeds.len());
    let mut secrets: Vec<String> = Vec::new();
    let mut credentials = None;
    for seed in seeds {
        let target = parse_url(seed, None)?;
        if matches!(target.info.addr(), redis::ConnectionAddr::Unix(_)) {
            return Err(CacheError::config(
                "the nodes of a redis cluster are reached over tcp: redis:// or rediss:// seeds",
            ));
        }
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
    let certificates = certificates_for(&infos, tls)?;
    let infos = infos
        .into_iter()
        .map(|info| configure(info, tls, certificates.as_ref()))
        .collect::<Result<_, _>>()?;
    Ok(Endpoint {
        nodes: Nodes::Cluster(infos),
        redacted_url,
        secrets,
        certificates,
    })
}

/// The certificates the files of `tls` hold, for connections to `infos`. TLS settings
/// for a connection without TLS are refused before any file they name is read: that
/// they do not apply is the mistake to report, not what a file holds.
pub(crate) fn certificates_for(
    infos: &[redis::ConnectionInfo],
    tls: &TlsSettings,
) -> Result<Option<redis::TlsCertificates>, CacheError> {
    for info in infos {
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            // Refuses any TLS setting; given none, changes nothing.
            configure(info.clone(), tls, None)?;
        }
    }
    certificates(tls)
}

/// Parses and checks a `redis://` URL; the database comes from its path or from
/// `database`, which must agree when both are given.
pub(crate) fn parse_url(raw: &str, database: Option<Database>) -> Result<Target, CacheError> {
    let url = CacheUrl::parse(raw)?;
    let tls = match url.scheme() {
        "redis" | "redis+unix" => false,
        "rediss" => true,
        other => {
            return Err(CacheError::config(format!(
                "unsupported url scheme {other:?}: expected redis://, rediss:// or redis+unix://"
            )))
        }
    };
    if !url.params().is_empty() {
        // The builder takes the parameters of its own URL out before this point; a
        // query here is on a seed of `cluster_builder`, where it would be lost.
        return Err(CacheError::config(
            "the seed urls of cluster_builder take no parameters: set them on the builder",
        ));
    }
    let (address, db) = if url.scheme() == "redis+unix" {
        (unix_address(&url)?, agreed_database(None, database)?)
    } else {
        let host = match url.hosts() {
            [] => return Err(CacheError::config("the redis url names no host")),
            [host] => host,
            _ => {
                return Err(CacheError::config(format!(
                    "the redis url {} names several hosts: use {CLUSTER_SCHEME}:// for a cluster \
                     or redis+sentinel:// for sentinels",
                    url.redacted()
                )))
            }
        };
        let (name, port) = (host.name().to_owned(), host.port().unwrap_or(DEFAULT_PORT));
        let address = if tls {
            crate::tls::tls_address(name, port, false)
        } else {
            redis::ConnectionAddr::Tcp(name, port)
        };
        (address, database_of(&url, database)?)
    };
    let info = address
        .into_connection_info()
        .map_err(|err| CacheError::config(url.scrub(&format!("invalid redis url: {err}"))))?
        .set_redis_settings(credentials(&url)?.set_db(db));
    Ok(Target {
        info,
        redacted_url: url.redacted().to_owned(),
        secrets: url.secrets().to_vec(),
    })
}

/// The user and password of a URL, as the server's `AUTH` takes them.
///
/// User info without a `:` (`redis://name@host`) is refused, without being repeated: the
/// `redis` crate reads it as a user name, which it never sends without a password, and
/// what stands there may well be a password or a token written in the wrong place.
pub(crate) fn credentials(url: &CacheUrl) -> Result<redis::RedisConnectionInfo, CacheError> {
    if url.username().is_some() && url.password().is_none() {
        return Err(CacheError::config(format!(
            "the user info of the url has no ':' (it is not shown: it may be a password): \
             write {scheme}://user:password@host for an acl user, or {scheme}://:password@host \
             for requirepass; a user name without a password is never sent to the server",
            scheme = url.scheme()
        )));
    }
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(user) = url.username() {
        settings = settings.set_username(user);
    }
    if let Some(password) = url.password() {
        settings = settings.set_password(password);
    }
    Ok(settings)
}

/// The socket of `redis+unix:///path/to/redis.sock`: a path and no host.
fn unix_address(url: &CacheUrl) -> Result<redis::ConnectionAddr, CacheError> {
    if !url.hosts().is_empty() || url.path().is_empty() {
        return Err(CacheError::config(
            "a redis+unix url names a socket path and no host: redis+unix:///path/to/redis.sock",
        ));
    }
    Ok(redis::ConnectionAddr::Unix(url.path().into()))
}

/// The part of a URL's path that names the database: the path less one leading and one
/// trailing `/` (`/3` and `/3/` name database 3); a path of more segments is left whole,
/// and refused as no database number.
fn database_path(path: &str) -> &str {
    let inner = path.strip_prefix('/').unwrap_or(path);
    inner.strip_suffix('/').unwrap_or(inner)
}

/// The database of a URL's path (`/N`), checked against the one asked for besides.
fn database_of(url: &CacheUrl, database: Option<Database>) -> Result<i64, CacheError> {
    let from_path = match database_path(url.path()) {
        "" => None,
        path => Some(database_number(path).ok_or_else(|| {
            if path.bytes().all(|byte| byte.is_ascii_digit()) {
                CacheError::config(format!(
                    "database {path} is out of range: a redis database is a number from 0 to \
                     the server's `databases` setting less one"
                ))
            } else {
                CacheError::config(format!(
                    "the path of a redis url is the database number, not {path:?}"
                ))
            }
        })?),
    };
    agreed_database(from_path, database)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::RedisCacheBuilder;
    use cache_tck::config_message;

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
        assert_eq!(redact_url("not a url with s3cret"), "<not a URL>");
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

        let legacy = parse_url("redis://:s3cret@127.0.0.1", Some(Database::Set(5))).unwrap();
        assert_eq!(legacy.info.redis_settings().username(), None);
        assert_eq!(legacy.info.redis_settings().password(), Some("s3cret"));
        assert_eq!(legacy.info.redis_settings().db(), 5);

        let same = parse_url("redis://127.0.0.1/4", Some(Database::Param(4))).unwrap();
        assert_eq!(same.info.redis_settings().db(), 4);
    }

    #[test]
    fn the_path_is_one_database_number_at_most() {
        for (url, db) in [
            ("redis://h", 0),
            ("redis://h/", 0),
            ("redis://h/3", 3),
            ("redis://h/3/", 3),
        ] {
            let target = parse_url(url, None).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(target.info.redis_settings().db(), db, "{url}");
        }
        for url in [
            "redis://h///3///",
            "redis://h/3/4",
            "redis://h//3",
            "redis://h/a/3",
        ] {
            let message = config_message(parse_url(url, None).map(drop));
            assert!(
                message.contains("the path of a redis url is the database number"),
                "{url}: {message}"
            );
        }
        for url in ["redis+cluster://h1,h2///0///", "redis+cluster://h1,h2/0/0"] {
            let message = config_message(split_cluster_url(url).map(drop));
            assert!(
                message.contains("is the database number"),
                "{url}: {message}"
            );
        }
        assert!(split_cluster_url("redis+cluster://h1,h2/0/").is_ok());
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        let tls = parse_url("rediss://:s3cret@127.0.0.1:6380", None).unwrap();
        assert!(matches!(
            tls.info.addr(),
            redis::ConnectionAddr::TcpTls {
                port: 6380,
                insecure: false,
                ..
            }
        ));
        let unix = parse_url("redis+unix:///run/redis.sock", Some(Database::Param(2))).unwrap();
        assert_eq!(
            unix.info.addr(),
            &redis::ConnectionAddr::Unix("/run/redis.sock".into())
        );
        assert_eq!(unix.info.redis_settings().db(), 2);
        let host = config_message(parse_url("redis+unix://h/run/redis.sock", None).map(drop));
        assert!(host.contains("socket path"), "{host}");

        let scheme = config_message(parse_url("http://:s3cret@127.0.0.1", None).map(drop));
        assert!(scheme.contains("\"http\""), "{scheme}");

        let db = config_message(parse_url("redis://:s3cret@127.0.0.1/abc", None).map(drop));
        assert!(
            db.contains("database number") && !db.contains("s3cret"),
            "{db}"
        );

        let clash =
            config_message(parse_url("redis://127.0.0.1/2", Some(Database::Set(3))).map(drop));
        assert!(
            clash.contains("database 2") && clash.contains("database(3)"),
            "{clash}"
        );
        let signed = config_message(parse_url("redis://127.0.0.1/+2", None).map(drop));
        assert!(signed.contains("database number"), "{signed}");
        let huge =
            config_message(parse_url("redis://127.0.0.1/99999999999999999999", None).map(drop));
        assert!(huge.contains("out of range"), "{huge}");

        let garbage = config_message(parse_url("s3cret", None).map(drop));
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
        assert_eq!(
            split_cluster_url("rediss+cluster://h1,h2:7001").unwrap(),
            vec!["rediss://h1", "rediss://h2:7001"]
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
