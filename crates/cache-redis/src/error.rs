//! How the errors of `redis` and `deadpool-redis` become [`CacheError`]s.

use std::{fmt, time::Duration};

use cache_api::{BoxError, CacheError};
use deadpool_redis::{PoolError, TimeoutType};
use redis::{ErrorKind, RedisError};

use crate::endpoint::scrub;

pub(crate) const BACKEND: &str = "redis";

/// What an error is mapped against: the timeouts it may have run into, and the
/// secrets it must not show.
#[derive(Clone)]
pub(crate) struct ErrorContext {
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) secrets: Vec<String>,
    /// Where the errors come from, named in each error of reaching it; `None` for a
    /// cluster, whose errors come from any of its nodes.
    pub(crate) origin: Option<Origin>,
}

/// Where the errors of an [`ErrorContext`] come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// One server's connections: `host:port`, `[v6]:port` or a socket's path.
    Server(String),
    /// The sentinels' lookup of their group's master, in words that name the group and
    /// the sentinels (the failure may be a sentinel's or the master's).
    Lookup(String),
}

/// Server error codes that mean the credentials were refused or are missing.
const AUTH_CODES: &[&str] = &["NOAUTH", "WRONGPASS"];

/// What Redis says with those codes: "NOAUTH Authentication required." and "WRONGPASS
/// invalid username-password pair or user is disabled.". The `redis` crate keeps only
/// these words of a refusal it wraps in an error of its own (a `SELECT` refused while
/// connecting is "Redis server refused to switch database - Authentication required."),
/// so a server asking for credentials is recognised by them whatever command met it.
const AUTH_WORDS: &[&str] = &["Authentication required", "invalid username-password pair"];

/// What the `redis` crate says when the server refuses the `SELECT` of a new
/// connection, before the server's own words.
const SELECT_REFUSED: &str = "refused to switch database";

/// Whether the server refused the database a connection asked for: past its
/// `databases` setting Redis says `DB index is out of range`, past what it can number
/// (2^31 - 1) `value is out of range`.
fn refuses_the_database(text: &str) -> bool {
    text.contains("DB index is out of range")
        || (text.contains(SELECT_REFUSED) && text.contains("out of range"))
}

/// What the `redis` crate's parser says of a reply that ended early.
const TRUNCATED_REPLY: &str = "Unexpected end of input";

/// The server error code of a command the user's ACL does not allow.
const PERMISSION_CODE: &str = "NOPERM";

/// What Redis says of such a command: "this user has no permissions to run the 'select'
/// command".
const NO_PERMISSIONS: &str = "has no permissions to run";

impl ErrorContext {
    /// The context of the connections to one server, whose errors name it.
    pub(crate) fn at(&self, server: String) -> Self {
        Self {
            origin: Some(Origin::Server(server)),
            ..self.clone()
        }
    }

    /// The context of the sentinels' lookup of `service`'s master, whose errors name
    /// the group and the sentinels. The group's name comes from a URL, percent-decoded:
    /// it is shown escaped, so that a control character in it cannot reach a log line.
    pub(crate) fn looking_up(&self, service: &str, sentinels: &[String]) -> Self {
        Self {
            origin: Some(Origin::Lookup(format!(
                "looking up the master of `{}` through the sentinels {}",
                service.escape_debug(),
                sentinels.join(", ")
            ))),
            ..self.clone()
        }
    }

    /// Maps an error of a command (or of opening a connection, when `connecting`).
    pub(crate) fn map(&self, err: RedisError, connecting: bool) -> CacheError {
        if let Some(failure) = crate::tls::certificate_failure(&err) {
            // Not worth a retry: the same certificate is refused again.
            return CacheError::Auth {
                backend: BACKEND,
                source: Box::new(Scrubbed(scrub(&failure, &self.secrets))),
            };
        }
        if err.is_timeout() {
            return if connecting {
                self.timeout("connect", self.connect_timeout)
            } else {
                self.timeout("response", self.response_timeout)
            };
        }
        // The cluster client wraps a node's refusal in an error of its own: look at the text.
        let text = err.to_string();
        // `SELECT` refused by an ACL comes wrapped in another error, with the code gone
        // and Redis's words kept.
        if err.code() == Some(PERMISSION_CODE)
            || text.contains(PERMISSION_CODE)
            || text.contains("NoPerm")
            || text.contains(NO_PERMISSIONS)
        {
            return CacheError::PermissionDenied {
                backend: BACKEND,
                source: self.source(err),
            };
        }
        let is_auth = err.kind() == ErrorKind::AuthenticationFailed
            || err.code().is_some_and(|code| AUTH_CODES.contains(&code))
            || AUTH_WORDS.iter().any(|words| text.contains(words));
        // A cluster client that has no connection to the node serving a slot (the node
        // is down and no other node took its slots over yet) is as unreachable as a
        // refused connection.
        // A reply cut off by a closed connection reaches the parser as an early end of
        // input: the connection was lost, not a bad answer from a live server.
        let is_unreachable = err.is_io_error()
            || err.is_connection_refusal()
            || err.is_connection_dropped()
            || err.kind() == ErrorKind::ClusterConnectionNotFound
            || text.contains(TRUNCATED_REPLY);
        // A reply that is not Redis's protocol from a server that answered before
        // (something else now listens on its port): one line saying so, in place of
        // the parser's dump of byte values over several lines.
        if err.kind() == ErrorKind::Parse && !is_unreachable && !is_auth {
            return CacheError::Backend {
                backend: BACKEND,
                source: Box::new(Scrubbed(format!(
                    "{}answered in something other than the redis protocol: is another \
                     server listening on its port now?",
                    self.server_named()
                ))),
            };
        }
        let source = self.source(err);
        if is_auth {
            CacheError::Auth {
                backend: BACKEND,
                source,
            }
        } else if is_unreachable {
            CacheError::Unreachable {
                backend: BACKEND,
                source: self.located(source, connecting),
            }
        } else {
            CacheError::Backend {
                backend: BACKEND,
                source,
            }
        }
    }

    /// As [`map_connect`](Self::map_connect), for an opening that took `elapsed`: a
    /// timeout before the connect timeout could run out is the first command's answer
    /// that did not come (the handshake, the `PING`), which the response timeout bounds.
    pub(crate) fn map_opening(
        &self,
        err: RedisError,
        database: i64,
        elapsed: std::time::Duration,
    ) -> CacheError {
        if err.is_timeout() && elapsed < self.connect_timeout {
            return self.timeout("response", self.response_timeout);
        }
        self.map_connect(err, database)
    }

    /// Maps an error met while opening a connection or sending its first `PING`: on
    /// top of [`map`](Self::map), a database the server does not have and an answer that
    /// is not Redis's protocol are configuration errors, the latter said in one line
    /// instead of the parser's dump.
    pub(crate) fn map_connect(&self, err: RedisError, database: i64) -> CacheError {
        let text = err.to_string();
        if refuses_the_database(&text) {
            return CacheError::config(format!(
                "database {database} does not exist on this server (see its `databases` setting)"
            ));
        }
        // The URL leads to something else than Redis (a memcached port, say): a setting
        // to correct, as the memcached backend says of a port that is not memcached's.
        if err.kind() == ErrorKind::Parse || text.contains("Parse error") {
            return CacheError::config(format!(
                "{}does not answer as a redis server (its reply is not the redis \
                 protocol): is the url pointing at the right port?",
                self.server_named()
            ));
        }
        let refused = err.is_connection_refusal();
        let mapped = self.map(err, true);
        // Redis closes the connection of a client that sends a longer argument before
        // it has logged in: the login can never pass, whatever the server's state. (A
        // connection refused never reached a server: that stays unreachable.)
        if matches!(mapped, CacheError::Unreachable { .. })
            && !refused
            && self
                .secrets
                .iter()
                .any(|secret| secret.len() > UNAUTHENTICATED_ARGUMENT)
        {
            return CacheError::config(format!(
                "the url's credentials are longer than {} KiB, which redis refuses from a \
                 client that has not logged in yet (it closes the connection: \
                 \"unauthenticated bulk length\")",
                UNAUTHENTICATED_ARGUMENT / 1024
            ));
        }
        mapped
    }

    /// `host:port ` of a single server, or `the server `.
    fn server_named(&self) -> String {
        match &self.origin {
            Some(Origin::Server(address)) => format!("{address} "),
            _ => "the server ".to_owned(),
        }
    }

    /// Maps an error of a pool checkout.
    pub(crate) fn map_pool(&self, err: PoolError) -> CacheError {
        match err {
            PoolError::Timeout(TimeoutType::Wait) => {
                self.timeout("pool checkout", self.pool_wait_timeout)
            }
            PoolError::Timeout(TimeoutType::Create) => {
                self.timeout("connect", self.connect_timeout)
            }
            // Recycling a pooled connection is a PING.
            PoolError::Timeout(TimeoutType::Recycle) => {
                self.timeout("response", self.response_timeout)
            }
            PoolError::Backend(err) => self.map(err, true),
            other => CacheError::Backend {
                backend: BACKEND,
                source: Box::new(Scrubbed(scrub(&other.to_string(), &self.secrets))),
            },
        }
    }

    /// A timeout of `phase` in a Redis command; a caller that knows which cache
    /// operation sent it names it with [`CacheError::in_operation`].
    pub(crate) fn timeout(&self, phase: &'static str, after: Duration) -> CacheError {
        CacheError::Timeout {
            backend: BACKEND,
            operation: "command",
            phase,
            after,
        }
    }

    /// `source`, named with where it came from when that is known and its message
    /// does not already say it: `connecting to {server}: {source}`, `{server}: {source}`
    /// for a connection that was up, or `looking up the master of …: {source}`. The
    /// original error stays the source's own source.
    fn located(&self, source: BoxError, connecting: bool) -> BoxError {
        let (named, text) = match &self.origin {
            Some(Origin::Server(server)) if connecting => {
                (server, format!("connecting to {server}: {source}"))
            }
            Some(Origin::Server(server)) => (server, format!("{server}: {source}")),
            Some(Origin::Lookup(lookup)) => (lookup, format!("{lookup}: {source}")),
            None => return source,
        };
        if source.to_string().contains(named.as_str()) {
            return source;
        }
        Box::new(Located { text, source })
    }

    /// Keeps the original error as the source, unless its message or `Debug` output
    /// shows a secret: then only a scrubbed copy of its message is kept.
    pub(crate) fn source(&self, err: RedisError) -> BoxError {
        let shown = format!("{err} {err:?}");
        if self
            .secrets
            .iter()
            .any(|secret| !secret.is_empty() && shown.contains(secret.as_str()))
        {
            Box::new(Scrubbed(scrub(&err.to_string(), &self.secrets)))
        } else {
            Box::new(err)
        }
    }
}

/// An `Unreachable` of a connection at build, naming where it went when its message does
/// not already (a cluster's seeds, whose errors have no one origin), as [`Located`]
/// does for one server: the original error stays its source. Other errors are returned
/// as they are.
pub(crate) fn naming(error: CacheError, addresses: &[String]) -> CacheError {
    let lead = format!("connecting to {}", addresses.join(", "));
    located_unreachable(error, addresses, &lead)
}

/// An `Unreachable` of a call on a cluster, naming `node`, the master that serves the
/// key's slot as this cache last read the slots (the node the call most likely went
/// to), when its message does not already. Other errors are returned as they are.
pub(crate) fn at_node(error: CacheError, slot: u16, node: &str) -> CacheError {
    let lead = format!("the master of slot {slot} ({node}, as last read from the cluster)");
    located_unreachable(error, &[node.to_owned()], &lead)
}

/// `Unreachable` saying why the server refused the connection (`reason`, in the server's
/// words), the error met while connecting as its source. Other errors are returned as
/// they are.
pub(crate) fn refused(error: CacheError, reason: &str) -> CacheError {
    match error {
        CacheError::Unreachable { backend, source } => {
            let text = format!("the server refused the connection ({reason}): {source}");
            CacheError::Unreachable {
                backend,
                source: Box::new(Located { text, source }),
            }
        }
        other => other,
    }
}

/// `Unreachable` led by `lead` unless its message names one of `addresses` already.
fn located_unreachable(error: CacheError, addresses: &[String], lead: &str) -> CacheError {
    match error {
        CacheError::Unreachable { backend, source }
            if !addresses.is_empty()
                && !addresses
                    .iter()
                    .any(|address| source.to_string().contains(address.as_str())) =>
        {
            let text = format!("{lead}: {source}");
            CacheError::Unreachable {
                backend,
                source: Box::new(Located { text, source }),
            }
        }
        other => other,
    }
}

/// Whether `err` says the connection was refused or dropped (not a timeout): the
/// connection is then reconnecting, and a timeout of the next call on it may be the
/// connect timeout.
pub(crate) fn lost_connection(err: &RedisError) -> bool {
    !err.is_timeout() && (err.is_connection_dropped() || err.is_connection_refusal())
}

/// Whether `err` leaves a `ConnectionManager` unable to recover by itself: an error after
/// which it reconnects (redis's `is_unrecoverable_error`) that is not an I/O error (a reply
/// it could not parse, a refused authentication). When its reconnect fails the same way,
/// the manager keeps that failure and hands it to every later call without trying again,
/// where an I/O failure would start a new attempt.
pub(crate) fn needs_new_connection(err: &RedisError) -> bool {
    err.is_unrecoverable_error() && !err.is_io_error()
}

/// An error message from which a password was removed.
#[derive(Debug)]
pub(crate) struct Scrubbed(pub(crate) String);

impl fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Scrubbed {}

/// An error of reaching a server, its message naming where it came from (the server,
/// or a Sentinel group's lookup); the error it wraps is its source.
pub(crate) struct Located {
    text: String,
    source: BoxError,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The message alone: the source's own `Debug` may be long, and shows nothing more.
impl fmt::Debug for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl std::error::Error for Located {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The longest argument Redis takes from a client that has not logged in.
const UNAUTHENTICATED_ARGUMENT: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A connection closed on a login with credentials Redis never takes before a login
    /// says so, as a configuration error that does not show them.
    #[test]
    fn credentials_too_long_to_send_are_config() {
        let long = "p".repeat(UNAUTHENTICATED_ARGUMENT + 1);
        let errors = ErrorContext {
            secrets: vec![long.clone()],
            ..context()
        };
        let reset = || RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let mapped = errors.map_connect(reset(), 0);
        let shown = mapped.to_string();
        assert!(matches!(mapped, CacheError::Config { .. }), "{mapped:?}");
        assert!(
            shown.contains("longer than 16 KiB") && !shown.contains(&long),
            "{shown}"
        );
        assert!(matches!(
            context().map_connect(reset(), 0),
            CacheError::Unreachable { .. }
        ));
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            errors.map_connect(refused, 0),
            CacheError::Unreachable { .. }
        ));
    }

    fn context() -> ErrorContext {
        ErrorContext {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_millis(500),
            pool_wait_timeout: Duration::from_secs(1),
            secrets: vec!["s3cret".to_owned()],
            origin: None,
        }
    }

    #[test]
    fn timeouts_name_the_timeout_that_ran_out() {
        let err = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        match context().map(err.clone(), false) {
            CacheError::Timeout { phase, after, .. } => {
                assert_eq!((phase, after), ("response", Duration::from_millis(500)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            context().map(err, true),
            CacheError::Timeout {
                phase: "connect",
                ..
            }
        ));
        assert!(matches!(
            context().map_pool(PoolError::Timeout(TimeoutType::Wait)),
            CacheError::Timeout {
                phase: "pool checkout",
                ..
            }
        ));
    }

    #[test]
    fn io_errors_are_unreachable_and_lose_the_connection() {
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(lost_connection(&refused));
        assert!(matches!(
            context().map(refused, false),
            CacheError::Unreachable { .. }
        ));
        let reset = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(lost_connection(&reset));
        assert!(!lost_connection(&RedisError::from(io::Error::from(
            io::ErrorKind::TimedOut
        ))));
    }

    /// The errors of reaching one server name it once, in the phase they came in, and
    /// keep the original error as their source; a cluster's are left as they are.
    #[test]
    fn unreachable_errors_name_the_server() {
        let refused = || RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        let at = context().at("[::1]:6390".to_owned());
        let running = at.map(refused(), false);
        assert!(
            running
                .to_string()
                .ends_with(": [::1]:6390: connection refused"),
            "{running}"
        );
        let named = std::error::Error::source(&running).expect("the named error");
        let original = named.source().expect("the original error");
        assert!(
            original.downcast_ref::<RedisError>().is_some(),
            "{original:?}"
        );
        assert!(format!("{running:?}").contains("[::1]:6390"), "{running:?}");
        let connecting = at.map(refused(), true).to_string();
        assert!(
            connecting.contains("connecting to [::1]:6390: connection refused"),
            "{connecting}"
        );
        assert_eq!(connecting.matches("[::1]:6390").count(), 1, "{connecting}");
        // Already named in its message: not named again.
        let mentioned = RedisError::from(io::Error::other("lost [::1]:6390"));
        let once = at.map(mentioned, false).to_string();
        assert_eq!(once.matches("[::1]:6390").count(), 1, "{once}");
        // A timeout says which bound ran out; not reaching a cluster names no one node.
        let timed_out = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(matches!(
            at.map(timed_out, false),
            CacheError::Timeout { .. }
        ));
        let cluster = context().map(refused(), false).to_string();
        assert!(!cluster.contains("[::1]"), "{cluster}");
        // A sentinel lookup names the group and the sentinels, whatever the phase.
        let lookup = context().looking_up("mymaster", &["h1:26379".to_owned(), "h2:1".to_owned()]);
        for connecting in [true, false] {
            let message = lookup.map(refused(), connecting).to_string();
            assert!(
                message.ends_with(
                    ": looking up the master of `mymaster` through the sentinels h1:26379, \
                     h2:1: connection refused"
                ),
                "{message}"
            );
        }
        let odd = context().looking_up("a\0b\x1b[2J", &["h1:26379".to_owned()]);
        let message = odd.map(refused(), true).to_string();
        assert!(!message.chars().any(char::is_control), "{message}");
        assert!(message.contains(r"`a\0b\u{1b}[2J`"), "{message}");
    }

    /// Only the failures the manager reconnects after but cannot recover from by itself
    /// ask for a new connection: a reply it could not parse, a refused authentication.
    #[test]
    fn unparsable_replies_and_refused_logins_need_a_new_connection() {
        let unparsable = RedisError::from((ErrorKind::Parse, "parse error", "at 1".to_owned()));
        assert!(needs_new_connection(&unparsable));
        let login = RedisError::from((ErrorKind::AuthenticationFailed, "refused"));
        assert!(needs_new_connection(&login));
        let dropped = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let timed_out = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        let wrong_type = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value".to_owned(),
        ));
        for kept in [dropped, timed_out, wrong_type] {
            assert!(!needs_new_connection(&kept), "{kept:?}");
        }
    }

    #[test]
    fn permission_refusals_are_their_own_error_naming_the_command() {
        let err = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "NOPERM",
            "this user has no permissions to run the 'flushdb' command".to_owned(),
        ));
        let mapped = context().map(err, false);
        assert!(
            matches!(mapped, CacheError::PermissionDenied { .. }),
            "{mapped:?}"
        );
        assert!(mapped.to_string().contains("'flushdb'"), "{mapped}");
    }

    #[test]
    fn a_missing_database_and_a_foreign_protocol_read_clearly() {
        let db = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "Redis server refused to switch database",
            "DB index is out of range".to_owned(),
        ));
        let mapped = context().map_connect(db, 99);
        assert!(
            matches!(&mapped, CacheError::Config { message } if message.contains("database 99")),
            "{mapped:?}"
        );
        let truncated = RedisError::from((
            ErrorKind::Parse,
            "Parse error at 0",
            "Unexpected end of input\nUnexpected `99`".to_owned(),
        ));
        assert!(matches!(
            context().map(truncated, false),
            CacheError::Unreachable { .. }
        ));
        let parse = || RedisError::from((ErrorKind::Parse, "Parse error at 1\nUnexpected `82`"));
        let answered = context().map(parse(), false);
        assert!(
            matches!(answered, CacheError::Backend { .. }),
            "{answered:?}"
        );
        let shown = answered.to_string();
        assert!(
            shown.contains("other than the redis protocol") && !shown.contains('\n'),
            "{shown}"
        );
        let mapped = context().map_connect(parse(), 0);
        assert!(matches!(mapped, CacheError::Config { .. }), "{mapped:?}");
        let shown = mapped.to_string();
        assert!(
            shown.contains("does not answer as a redis server") && !shown.contains('\n'),
            "{shown}"
        );
    }

    #[test]
    fn auth_failures_are_auth_errors() {
        let err = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(matches!(context().map(err, true), CacheError::Auth { .. }));
    }

    /// A server asking for credentials is `Auth` whatever command met the refusal: the
    /// `SELECT` of a connection to another database than 0 comes wrapped, its code gone.
    #[test]
    fn a_refused_select_for_want_of_credentials_is_an_auth_error() {
        for detail in [
            "Authentication required.",
            "invalid username-password pair or user is disabled.",
        ] {
            let err = RedisError::from((
                ErrorKind::Server(redis::ServerErrorKind::ResponseError),
                "Redis server refused to switch database",
                detail.to_owned(),
            ));
            for mapped in [
                context().map_connect(err.clone(), 3),
                context().map(err, false),
            ] {
                assert!(matches!(mapped, CacheError::Auth { .. }), "{mapped:?}");
            }
        }
    }

    #[test]
    fn a_message_showing_the_password_is_scrubbed() {
        let err = RedisError::from((ErrorKind::Client, "failed", "with s3cret inside".to_owned()));
        let mapped = context().map(err, false);
        let shown = format!(
            "{mapped} {mapped:?} {}",
            std::error::Error::source(&mapped).unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("with *** inside"), "{shown}");
    }

    #[test]
    fn a_cluster_call_that_cannot_reach_its_node_names_it() {
        let unreachable = |text: &str| CacheError::Unreachable {
            backend: BACKEND,
            source: text.to_owned().into(),
        };
        let named = at_node(unreachable("Connection refused"), 866, "127.0.0.1:7001");
        assert_eq!(
            named.to_string(),
            "redis unreachable: the master of slot 866 (127.0.0.1:7001, as last read from \
             the cluster): Connection refused"
        );
        // The original error stays the source.
        let source = std::error::Error::source(&named).unwrap();
        assert_eq!(
            std::error::Error::source(source).unwrap().to_string(),
            "Connection refused"
        );
        // A message that names the node already, and any other error, are left alone.
        let already = at_node(unreachable("127.0.0.1:7001: reset"), 866, "127.0.0.1:7001");
        assert_eq!(
            already.to_string(),
            "redis unreachable: 127.0.0.1:7001: reset"
        );
        let timeout = context().timeout("request", Duration::from_secs(3));
        assert!(at_node(timeout, 866, "127.0.0.1:7001").is_timeout());
    }
}
