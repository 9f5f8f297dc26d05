//! One parser for every cache URL:
//! `scheme://[user[:password]@]host[:port][,host[:port]...][/path][?query]`.
//!
//! The `url` crate reads one host per URL, so the host list is split here and each host
//! is checked by `url::Host::parse` (domain names, IPv4, bracketed IPv6); the query is
//! read by `form_urlencoded` ([`Params`]).

use std::fmt;

use cache_api::CacheError;
use percent_encoding::percent_decode_str;

use crate::{
    params::parse_number,
    redact::{redact, secret_start},
    Params,
};

/// A parsed cache URL. Its `Debug` shows the redacted URL only.
///
/// ```
/// use cache_url_core::CacheUrl;
///
/// let url = CacheUrl::parse("MEMCACHE://10.0.0.1,[::1]:11212/?prefix=app:")?;
/// assert_eq!(url.scheme(), "memcache");
/// let servers: Vec<String> = url.hosts().iter().map(|host| host.address(11211)).collect();
/// assert_eq!(servers, ["10.0.0.1:11211", "[::1]:11212"]);
///
/// let socket = CacheUrl::parse("redis+unix:///run/redis.sock?db=2")?;
/// assert!(socket.hosts().is_empty());
/// assert_eq!(socket.path(), "/run/redis.sock");
/// # Ok::<(), cache_api::CacheError>(())
/// ```
#[derive(Clone)]
pub struct CacheUrl {
    scheme: String,
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<Host>,
    path: String,
    params: Params,
    redacted: String,
    secrets: Vec<String>,
    /// The user info and path as written (still encoded), for [`CacheUrl::per_host_urls`].
    written_user_info: Option<String>,
    written_path: String,
}

/// One host of a URL's host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host name or address, IPv6 without brackets.
    name: String,
    port: Option<u16>,
    ipv6: bool,
}

impl Host {
    /// The host name or address (an IPv6 address without its brackets), as a socket
    /// address or a client's `Tcp(host, port)` takes it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port the URL names, if any.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `host:port` (`[v6]:port`), with `default_port` where the URL names none.
    #[must_use]
    pub fn address(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        if self.ipv6 {
            format!("[{}]:{port}", self.name)
        } else {
            format!("{}:{port}", self.name)
        }
    }

    /// Reads one `host[:port]` entry; `None` when it is not one. Also used for server
    /// lists given in code rather than in a URL.
    #[must_use]
    pub fn parse(entry: &str) -> Option<Host> {
        Self::read(entry).ok()
    }

    /// Reads one `host[:port]` entry given in code (a server list), or says what is
    /// wrong with it. The entry is quoted only when it cannot be a password: not when
    /// its "port" is no number, nor when it has a port and no host (`user:password`).
    ///
    /// ```
    /// use cache_url_core::Host;
    ///
    /// assert_eq!(Host::parse_or_explain("h:11212").map(|host| host.address(1)), Ok("h:11212".to_owned()));
    /// assert!(Host::parse_or_explain("bad host").unwrap_err().contains("\"bad host\""));
    /// assert!(!Host::parse_or_explain("user:s3cret").unwrap_err().contains("s3cret"));
    /// ```
    ///
    /// # Errors
    ///
    /// What is wrong with the entry, as a message.
    pub fn parse_or_explain(entry: &str) -> Result<Host, String> {
        Self::read(entry).map_err(|reason| {
            if secret_start(entry).is_some() {
                format!(
                    "a server address is not host[:port]: {reason} (not shown: it may hold \
                     a password)"
                )
            } else {
                format!("bad server address {:?}: {reason}", entry.trim())
            }
        })
    }

    /// Reads one `host[:port]` entry, or says what is wrong with it (without repeating
    /// it: the entry may be the tail of a password).
    fn read(entry: &str) -> Result<Host, &'static str> {
        let entry = entry.trim();
        let (host, port) = if let Some(inner) = entry.strip_prefix('[') {
            let (address, after) = inner
                .split_once(']')
                .ok_or("its IPv6 address has no closing ']'")?;
            let port = match after {
                "" => None,
                after => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("only ':port' may follow an IPv6 address's ']'")?,
                ),
            };
            (format!("[{address}]"), port)
        } else {
            match entry.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (entry.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(port) => Some(
                parse_number::<u16>(port)
                    .filter(|port| *port != 0)
                    .ok_or("its port is not a number from 1 to 65535")?,
            ),
        };
        let parsed = url::Host::parse(&host).map_err(|_| {
            "its host is not a domain name, an IPv4 address or a bracketed IPv6 address"
        })?;
        let (name, ipv6) = match parsed {
            url::Host::Domain(domain) if !domain.is_empty() => (domain, false),
            url::Host::Domain(_) => return Err("its host name is empty"),
            url::Host::Ipv4(address) => (address.to_string(), false),
            url::Host::Ipv6(address) => (address.to_string(), true),
        };
        Ok(Host { name, port, ipv6 })
    }
}

impl fmt::Display for Host {
    /// `host[:port]`, IPv6 in brackets, as it would be written in a URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ipv6, self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.name),
            (true, None) => write!(f, "[{}]", self.name),
            (false, Some(port)) => write!(f, "{}:{port}", self.name),
            (false, None) => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for CacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheUrl").field(&self.redacted).finish()
    }
}

impl CacheUrl {
    /// Parses `raw`. Schemes are case-insensitive and returned lowercased; the user,
    /// password and path are percent-decoded. Whitespace around the whole URL (a
    /// newline left in an environment variable) is ignored, as it is around each host.
    ///
    /// The user info ends at the last `@` before the query, so that a password holding
    /// an unencoded `/` or `@` still reads as one. An `@` after the first `?` is refused:
    /// the URL cannot tell a password holding an unencoded `?` from a parameter value
    /// holding an `@`, and the first would put the password's tail among the parameters.
    /// A port is plain digits.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] for anything malformed. The message never repeats the
    /// password, nor anything that may be part of one; a host is named only when the URL
    /// holds no `@` at all and the host is not one that [`redact`] hides (a "port" that
    /// is no number, a port without a host: `user:password` missing its `@host`).
    pub fn parse(raw: &str) -> Result<CacheUrl, CacheError> {
        let raw = raw.trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(CacheError::config(
                "not a cache url: expected scheme://host[:port][/path][?parameters]",
            ));
        };
        let scheme = checked_scheme(scheme)?;
        if rest.contains('#') {
            return Err(CacheError::config(
                "a cache url has no fragment: percent-encode '#' in the password and in parameter values",
            ));
        }
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.contains('@') {
            // The '?' may be inside a password, whose tail would then read as parameters
            // and be named in messages: the URL is refused, showing nothing of it.
            return Err(CacheError::config(
                "the url has an '@' after its '?': percent-encode '?' in a password (%3F) \
                 and '@' in a parameter value (%40)",
            ));
        }
        // The user info ends at the last '@' before the query, so that a password with
        // an unencoded '/' still reads as one. An empty authority (`redis+unix:///p@th`)
        // has no user info.
        let (user_info, location) = match head.rfind('@') {
            Some(at) if !head.starts_with('/') => (Some(&head[..at]), &head[at + 1..]),
            _ => (None, head),
        };
        let (authority, path) = location.split_at(location.find('/').unwrap_or(location.len()));
        let (username, password) = split_user_info(user_info)?;
        let hosts = parse_hosts(authority, raw.contains('@'))?;
        let written_path = path.to_owned();
        let path = decode(path, "path")?;
        let mut secrets = Vec::new();
        if let Some(password) = &password {
            let written = user_info
                .and_then(|info| info.split_once(':'))
                .map(|(_, written)| written.to_owned());
            for secret in written.into_iter().chain([password.clone()]) {
                if !secret.is_empty() && !secrets.contains(&secret) {
                    secrets.push(secret);
                }
            }
        }
        Ok(CacheUrl {
            scheme,
            username,
            password,
            hosts,
            path,
            params: Params::from_query(query),
            redacted: redact(raw),
            secrets,
            written_user_info: user_info.map(str::to_owned),
            written_path,
        })
    }

    /// The scheme, lowercased: `redis`, `redis+cluster`, `memcache`...
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The user name, decoded; `None` when the URL has none or it is empty.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, decoded; `None` when the URL has none.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The hosts of the host list, in order; empty for `memory://` or a socket path.
    #[must_use]
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The path, decoded, with its leading `/` (`""` when there is none).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query's parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The query's parameters, to take them one by one.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// The URL with its password replaced by `***`: what messages and `Debug` show.
    #[must_use]
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The password as written and as decoded, for [`crate::scrub`] on the messages of
    /// clients that might echo it.
    #[must_use]
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// One URL per host, `scheme://[user info@]host[:port][path]`, each with the user
    /// info and path as written and without the query: how the host list of a cluster
    /// URL becomes the seed URLs of its nodes.
    ///
    /// ```
    /// let url = cache_url_core::CacheUrl::parse("redis+cluster://:p%40ss@h1:7000,[::1]:7001/0?x=1")?;
    /// assert_eq!(url.per_host_urls("redis"), ["redis://:p%40ss@h1:7000/0", "redis://:p%40ss@[::1]:7001/0"]);
    /// # Ok::<(), cache_api::CacheError>(())
    /// ```
    #[must_use]
    pub fn per_host_urls(&self, scheme: &str) -> Vec<String> {
        let user_info = self
            .written_user_info
            .as_deref()
            .map_or_else(String::new, |info| format!("{info}@"));
        self.hosts
            .iter()
            .map(|host| format!("{scheme}://{user_info}{host}{}", self.written_path))
            .collect()
    }

    /// `text` with every form of this URL's password replaced by `***`.
    #[must_use]
    pub fn scrub(&self, text: &str) -> String {
        crate::scrub(text, &self.secrets)
    }
}

fn checked_scheme(scheme: &str) -> Result<String, CacheError> {
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        // Not repeated: a malformed scheme may be a pasted secret.
        return Err(CacheError::config(
            "the url scheme is malformed: expected letters, digits, '+', '-' or '.' before ://",
        ));
    }
    Ok(scheme.to_ascii_lowercase())
}

type UserInfo = (Option<String>, Option<String>);

fn split_user_info(user_info: Option<&str>) -> Result<UserInfo, CacheError> {
    let Some(user_info) = user_info else {
        return Ok((None, None));
    };
    let (user, password) = match user_info.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (user_info, None),
    };
    let user = decode(user, "user name")?;
    let password = password
        .map(|password| decode(password, "password"))
        .transpose()?;
    Ok(((!user.is_empty()).then_some(user), password))
}

/// Percent-decodes `text`; the message names `what`, never the text.
fn decode(text: &str, what: &str) -> Result<String, CacheError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| CacheError::config(format!("the {what} of the url is not utf-8 once decoded")))
}

fn parse_hosts(authority: &str, may_hold_secret: bool) -> Result<Vec<Host>, CacheError> {
    if authority.is_empty() {
        return Ok(Vec::new());
    }
    authority
        .split(',')
        .enumerate()
        .map(|(index, entry)| {
            if entry.trim().is_empty() {
                return Err(CacheError::config(
                    "the host list of the url has an empty entry",
                ));
            }
            Host::read(entry).map_err(|reason| {
                CacheError::config(if may_hold_secret {
                    // What looks like a host may be the tail of a password holding an
                    // unencoded reserved character: do not show it.
                    format!(
                        "host {} of the url is not host[:port]: {reason} (percent-encode \
                         '/', '?', '#' and '@' in a password)",
                        index + 1
                    )
                } else if secret_start(entry).is_some() {
                    // `user:password` or `:password` without its `@host` reads as a host
                    // whose port is the password: do not show it.
                    format!(
                        "host {} of the url is not host[:port]: {reason} (user info with a \
                         password ends with '@' before the host: scheme://user:password@host)",
                        index + 1
                    )
                } else {
                    format!(
                        "bad host {:?} in the url: {reason} (expected host[:port])",
                        entry.trim()
                    )
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_tck::config_message;

    #[test]
    fn every_part_is_read() {
        let url = CacheUrl::parse(
            "REDIS+Cluster://alice:pa%40ss@h1:7000,10.0.0.2,[::1]:7002/0?prefix=a%3A",
        )
        .unwrap();
        assert_eq!(url.scheme(), "redis+cluster");
        assert_eq!(url.username(), Some("alice"));
        assert_eq!(url.password(), Some("pa@ss"));
        let addresses: Vec<String> = url.hosts().iter().map(|host| host.address(6379)).collect();
        assert_eq!(addresses, ["h1:7000", "10.0.0.2:6379", "[::1]:7002"]);
        assert_eq!(url.hosts()[2].name(), "::1");
        assert_eq!(url.path(), "/0");
        assert_eq!(url.secrets(), ["pa%40ss", "pa@ss"]);
        assert_eq!(
            url.redacted(),
            "REDIS+Cluster://alice:***@h1:7000,10.0.0.2,[::1]:7002/0?prefix=a%3A"
        );
    }

    #[test]
    fn user_info_forms() {
        let legacy = CacheUrl::parse("redis://:s3cret@h").unwrap();
        assert_eq!(
            (legacy.username(), legacy.password()),
            (None, Some("s3cret"))
        );
        let user_only = CacheUrl::parse("redis://bob@h").unwrap();
        assert_eq!(
            (user_only.username(), user_only.password()),
            (Some("bob"), None)
        );
        let slash = CacheUrl::parse("redis://u:pa/ss@h:1/2").unwrap();
        assert_eq!(slash.password(), Some("pa/ss"));
        assert_eq!(slash.path(), "/2");
        let at = CacheUrl::parse("redis://u:p@ss@h").unwrap();
        assert_eq!(at.password(), Some("p@ss"));
    }

    #[test]
    fn whitespace_around_the_url_is_ignored() {
        for raw in [
            "  redis://h:6380/2\n",
            "\tredis://h:6380/2",
            "redis://h:6380/2\r\n",
        ] {
            let url = CacheUrl::parse(raw).unwrap_or_else(|err| panic!("{raw:?}: {err}"));
            assert_eq!(url.scheme(), "redis", "{raw:?}");
            assert_eq!(url.hosts()[0].port(), Some(6380), "{raw:?}");
            assert_eq!(url.path(), "/2", "{raw:?}");
        }
    }

    #[test]
    fn empty_authorities_and_socket_paths() {
        let memory = CacheUrl::parse("memory://?max_value_size=10").unwrap();
        assert!(memory.hosts().is_empty() && memory.path().is_empty());
        let socket = CacheUrl::parse("redis+unix:///tmp/a%20b@c.sock").unwrap();
        assert!(socket.hosts().is_empty());
        assert_eq!(socket.path(), "/tmp/a b@c.sock");
        assert_eq!(socket.password(), None);
    }

    #[test]
    fn malformed_urls_are_config_errors_without_the_password() {
        for raw in [
            "hunter2",
            "hunter2@://h",
            "redis://:hunter2@h#x",
            "redis://:hunter2@h:0",
            "redis://:hunter2@h:99999",
            "redis://:hunter2@h,,k",
            "redis://:hunter2@[::1",
            "redis://:hunter2@bad host",
            "redis://u:hun?ter2@h",
            "redis://:%ff%fehunter2@h",
            "redis://:hunter2@h:+6379",
        ] {
            let shown = config_message(CacheUrl::parse(raw));
            assert!(!shown.contains("hunter2"), "{raw}: {shown}");
        }
        let port = config_message(CacheUrl::parse("redis://:hunter2@h:99999"));
        assert!(
            port.contains("port is not a number from 1 to 65535"),
            "{port}"
        );
        let bracket = config_message(CacheUrl::parse("redis://:hunter2@[::1"));
        assert!(bracket.contains("no closing ']'"), "{bracket}");
        let named = config_message(CacheUrl::parse("memcache://a,bad host:1"));
        assert!(named.contains("\"bad host:1\""), "{named}");
        assert!(named.contains("its host is not a domain name"), "{named}");
        let zero = config_message(CacheUrl::parse("memcache://127.0.0.1:0"));
        assert!(
            zero.contains("port is not a number from 1 to 65535"),
            "{zero}"
        );
    }

    /// `user:password` or `:password` without its `@host` reads as a host whose port is
    /// the password: the error does not show it, on any scheme, nor does `redact`.
    #[test]
    fn a_password_missing_its_host_is_never_shown() {
        for scheme in crate::redact::tests::SCHEMES {
            for rest in [
                "default:S3cretPw",
                ":S3cretPw",
                ":1234",
                "[::1]:S3cretPw",
                "[::1]S3cretPw",
                "default:S3cretPw,127.0.0.1:7000",
                "127.0.0.1:7000,default:S3cretPw/0?prefix=a:",
                "default:S3cr%2FetPw",
            ] {
                let raw = format!("{scheme}://{rest}");
                let shown = config_message(CacheUrl::parse(&raw));
                for part in ["S3cr", "etPw", "1234"] {
                    assert!(!shown.contains(part), "{raw}: {shown}");
                    assert!(!redact(&raw).contains(part), "{raw}: {}", redact(&raw));
                }
                assert!(shown.contains("host"), "{raw}: {shown}");
            }
        }
        // A host that cannot be a password is still named.
        let named = config_message(CacheUrl::parse("memcache://h1,bad host:11211"));
        assert!(named.contains("\"bad host:11211\""), "{named}");
    }

    /// A password with an unencoded `?` whose head reads as a port, a path or a host
    /// leaves its tail after the `?`: an `@` there refuses the URL, showing none of it.
    #[test]
    fn an_at_sign_after_the_query_mark_is_refused_without_showing_anything() {
        for raw in [
            "redis://u:6379?hunter2&x@h",
            "redis://u:6379?hunter2=x@h:1",
            "redis://u:1/b?hunter2&x@h",
            "redis://u:p@ss?hunter2&x@h",
            "redis+cluster://:7000?hunter2=tail&x@h1,h2",
            "memcache://u:11211?hunter2&pool_size=2@h",
        ] {
            let shown = config_message(CacheUrl::parse(raw));
            assert!(
                shown.contains("'@' after its '?'") && !shown.contains("hunter2"),
                "{raw}: {shown}"
            );
        }
        // The cost: an '@' in a parameter value is percent-encoded.
        assert!(CacheUrl::parse("redis://h/0?prefix=a@b:").is_err());
        let encoded = CacheUrl::parse("redis://h/0?prefix=a%40b:").unwrap();
        assert_eq!(
            encoded
                .params()
                .clone()
                .take_string(&["prefix"])
                .unwrap()
                .as_deref(),
            Some("a@b:")
        );
    }

    /// A port is plain digits: no sign.
    #[test]
    fn a_port_with_a_sign_is_refused() {
        for raw in [
            "redis://h:+23471",
            "memcache://h:-1",
            "memcache://h: 1",
            "redis://[::1]:+1",
        ] {
            let shown = config_message(CacheUrl::parse(raw));
            assert!(shown.contains("port is not a number"), "{raw}: {shown}");
        }
        assert_eq!(
            CacheUrl::parse("redis://h:023471")
                .map(|url| url.hosts()[0].port())
                .ok(),
            Some(Some(23471))
        );
    }

    #[test]
    fn debug_shows_the_redacted_url_only() {
        let url = CacheUrl::parse("redis://u:hunter2@h?prefix=p:").unwrap();
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
        assert_eq!(url.scrub("auth hunter2 failed"), "auth *** failed");
    }
}
