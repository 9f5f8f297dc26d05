//! Redis Sentinel: `redis+sentinel://[user:password@]host:26379,host:26379/mymaster[/db]`.
//!
//! The sentinels are asked in turn for the master of the group, and the server named is
//! checked to call itself a master (`ROLE`), each connection and each answer within the
//! cache's connect and response timeouts; the cache then talks to that master exactly
//! as to one server (`single.rs`). When an operation fails in a way that says the master
//! may have moved (unreachable, timed out, or `READONLY` from a demoted master), the
//! master is looked up again in the background, one lookup at a time, and once the
//! sentinels name another master that answers, the next operations go to it. The
//! failed operation itself is not sent again: retrying is the caller's choice.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

use cache_api::CacheError;
use cache_url_core::CacheUrl;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue,
    IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult, Value,
};

use crate::{
    endpoint::{address, agreed_database, credentials, database_number, Database, Endpoint, Nodes},
    error::{ErrorContext, Origin},
    settings::Mode,
    single::{Request, Single},
    tls::TlsSettings,
};

/// The scheme of a Sentinel URL.
pub(crate) const SENTINEL_SCHEME: &str = "redis+sentinel";

/// The port of a sentinel that the URL names without one.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The shortest pause between two lookups of the master, so that a burst of failing
/// operations does not turn into a burst of lookups.
const LOOKUP_INTERVAL: Duration = Duration::from_millis(50);

/// Where the sentinels are and what they serve.
pub(crate) struct SentinelTarget {
    sentinels: Vec<ConnectionInfo>,
    service: String,
    /// Database, user and password for the master.
    node: RedisConnectionInfo,
}

pub(crate) fn is_sentinel_url(raw: &str) -> bool {
    raw.trim()
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(SENTINEL_SCHEME))
}

/// Reads `redis+sentinel://[user:password@]h1[:port],h2[:port]/service[/db]`. The user
/// and password are those of the master; the sentinels are asked without credentials.
pub(crate) fn parse_sentinel_url(
    raw: &str,
    database: Option<Database>,
    tls: &TlsSettings,
) -> Result<Endpoint, CacheError> {
    let url = CacheUrl::parse(raw)?;
    if tls.any() {
        return Err(CacheError::config(
            "tls_ca, tls_cert, tls_key and tls_insecure_skip_verify do not apply to \
             redis+sentinel:// (sentinels and master over plain tcp)",
        ));
    }
    if url.hosts().is_empty() {
        return Err(CacheError::config(
            "the redis+sentinel url names no sentinel",
        ));
    }
    let mut path = url.path().trim_matches('/').split('/');
    let service = path.next().unwrap_or_default().to_owned();
    if service.is_empty() {
        return Err(CacheError::config(
            "a redis+sentinel url names the master group in its path: redis+sentinel://host:26379/mymaster",
        ));
    }
    let from_path = match (path.next(), path.next()) {
        (None, _) => None,
        (Some(db), None) => Some(database_number(db).ok_or_else(|| {
            CacheError::config(format!(
                "the path of a redis+sentinel url is /group[/database], and {db:?} is not a database number"
            ))
        })?),
        (Some(_), Some(_)) => {
            return Err(CacheError::config(
                "the path of a redis+sentinel url is /group[/database]",
            ))
        }
    };
    let db = agreed_database(from_path, database)?;
    let sentinels = url
        .hosts()
        .iter()
        .map(|host| {
            let address = ConnectionAddr::Tcp(
                host.name().to_owned(),
                host.port().unwrap_or(DEFAULT_SENTINEL_PORT),
            );
            address
                .into_connection_info()
                .map_err(|err| CacheError::config(format!("invalid sentinel address: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Endpoint {
        nodes: Nodes::Sentinel(SentinelTarget {
            sentinels,
            service,
            node: credentials(&url)?.set_db(db),
        }),
        redacted_url: url.redacted().to_owned(),
        secrets: url.secrets().to_vec(),
        certificates: None,
    })
}

/// The master the sentinels named last, with its connections.
struct Master {
    address: ConnectionAddr,
    single: Single,
}

/// One server found through sentinels, followed across failovers.
pub(crate) struct SentinelBackend {
    shared: Arc<Shared>,
}

struct Shared {
    lookup: Lookup,
    current: RwLock<Arc<Master>>,
    mode: Mode,
    errors: ErrorContext,
    /// Set while a lookup runs: one at a time.
    looking_up: AtomicBool,
    last_lookup: Mutex<Option<Instant>>,
}

impl SentinelBackend {
    /// Asks the sentinels for the master and connects to it.
    pub(crate) async fn connect(
        target: SentinelTarget,
        mode: Mode,
        errors: &ErrorContext,
    ) -> Result<Self, CacheError> {
        let sentinels: Vec<String> = target.sentinels.iter().map(address).collect();
        let errors = &errors.looking_up(&target.service, &sentinels);
        let lookup = Lookup {
            sentinels: target.sentinels,
            service: target.service,
            node: target.node,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(errors.connect_timeout))
                .set_response_timeout(Some(errors.response_timeout)),
        };
        let info = lookup.master(errors).await?;
        let master = Master {
            address: info.addr().clone(),
            single: Single::connect(info, mode, errors).await?,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                lookup,
                current: RwLock::new(Arc::new(master)),
                mode,
                errors: errors.clone(),
                looking_up: AtomicBool::new(false),
                last_lookup: Mutex::new(None),
            }),
        })
    }

    fn current(&self) -> Arc<Master> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The database of the master's connections.
    pub(crate) fn database(&self) -> i64 {
        self.current().single.database
    }

    /// Sends `request` to the current master; a failure that says the master may have
    /// moved starts a lookup of the master.
    pub(crate) async fn send<T: FromRedisValue + Send>(
        &self,
        request: Request<'_>,
    ) -> Result<T, CacheError> {
        let master = self.current();
        let result = master.single.send(request).await;
        self.after(&result);
        result
    }

    /// Removes the keys under `prefix` on the current master.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> Result<(), CacheError> {
        let master = self.current();
        let result = master.single.clear_prefix(prefix).await;
        self.after(&result);
        result
    }

    fn after<T>(&self, result: &Result<T, CacheError>) {
        if let Err(err) = result {
            if may_have_moved(err) {
                Shared::follow(&self.shared);
            }
        }
    }
}

/// Whether an error may mean that the master is no longer where it was.
fn may_have_moved(err: &CacheError) -> bool {
    match err {
        CacheError::Unreachable { .. } | CacheError::Timeout { .. } => true,
        CacheError::Backend { .. } => err.to_string().contains("READONLY"),
        _ => false,
    }
}

impl Shared {
    /// Starts a lookup of the master in the background, unless one is running or one
    /// ran within [`LOOKUP_INTERVAL`].
    fn follow(shared: &Arc<Self>) {
        {
            let mut last = shared
                .last_lookup
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|last| last.elapsed() < LOOKUP_INTERVAL) {
                return;
            }
            if shared.looking_up.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            // A failed lookup (the sentinels still name the dead master, or none
            // answers) changes nothing; the next failing operation starts another.
            let _ = shared.move_to_master().await;
            shared.looking_up.store(false, Ordering::Release);
        });
    }

    async fn move_to_master(&self) -> Result<(), CacheError> {
        let info = self.lookup.master(&self.errors).await?;
        let current = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        if *info.addr() == current.address {
            return Ok(());
        }
        let master = Master {
            address: info.addr().clone(),
            single: Single::connect(info, self.mode, &self.errors).await?,
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(master);
        Ok(())
    }
}

/// Where the sentinels are, what they serve, and how long each step of a lookup waits.
struct Lookup {
    sentinels: Vec<ConnectionInfo>,
    service: String,
    /// Database, user and password for the master.
    node: RedisConnectionInfo,
    /// The cache's connect and response timeouts.
    config: AsyncConnectionConfig,
}

impl Lookup {
    /// The connection information of the master the first sentinel that knows the group
    /// names, checked to call itself a master. The sentinels are asked in turn: one that
    /// cannot be reached, does not know the group or names a server that is not a
    /// master leaves the question to the next. When the sentinels that answered all
    /// know no such group, and none named a master, the group's name is the mistake.
    async fn master(&self, errors: &ErrorContext) -> Result<ConnectionInfo, CacheError> {
        let mut last_error = None;
        let (mut unknown_group, mut named_one) = (false, false);
        for sentinel in &self.sentinels {
            match self.ask(sentinel).await {
                Ok(Answer::Master(master)) => return Ok(*master),
                Ok(Answer::NoSuchGroup) => unknown_group = true,
                Ok(Answer::NotAMaster) => named_one = true,
                Err(err) => last_error = Some(err),
            }
        }
        let lookup = match &errors.origin {
            Some(Origin::Lookup(lookup)) => lookup.as_str(),
            _ => "looking up the master",
        };
        if unknown_group && !named_one && !last_error.as_ref().is_some_and(is_unknown_command) {
            return Err(CacheError::config(format!(
                "{lookup}: the sentinels know no master named `{}`: check the group in the \
                 url's path (redis+sentinel://host:26379/group)",
                self.service.escape_debug()
            )));
        }
        Err(match last_error {
            Some(err) if is_unknown_command(&err) => CacheError::config(format!(
                "{lookup}: a server answered as a redis that is not a sentinel (it does \
                     not know the SENTINEL command): name the sentinels' addresses, port \
                     26379 by default"
            )),
            // The master is asked `ROLE` on a connection to the database of the url: a
            // database it does not have is named as the url names it.
            Some(err) => errors.map_connect(err, self.node.db()),
            None => errors.map_connect(
                RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "no sentinel names a master of the group that answers as one",
                )),
                self.node.db(),
            ),
        })
    }

    /// What `sentinel` says: the master it names, if it knows the group and that server
    /// calls itself a master.
    async fn ask(&self, sentinel: &ConnectionInfo) -> RedisResult<Answer> {
        let mut connection = redis::Client::open(sentinel.clone())?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let named: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut connection)
            .await?;
        let Some((host, port)) = named else {
            return Ok(Answer::NoSuchGroup);
        };
        let master = ConnectionAddr::Tcp(host, port)
            .into_connection_info()?
            .set_redis_settings(self.node.clone());
        let mut connection = redis::Client::open(master.clone())?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut connection).await?;
        Ok(if is_master(&role) {
            Answer::Master(Box::new(master))
        } else {
            Answer::NotAMaster
        })
    }
}

/// What one sentinel answered about the group.
enum Answer {
    /// The master it named, which calls itself one.
    Master(Box<ConnectionInfo>),
    /// It names a server for the group that does not call itself a master (a failover
    /// under way).
    NotAMaster,
    /// It knows no group of that name.
    NoSuchGroup,
}

/// Whether a `ROLE` answer is a master's: its first element is `master`.
fn is_master(role: &[Value]) -> bool {
    match role.first() {
        Some(Value::BulkString(name)) => name == b"master",
        Some(Value::SimpleString(name)) => name == "master",
        _ => false,
    }
}

/// Whether the server refused a command it does not know: a Redis that is no sentinel,
/// asked `SENTINEL ...`.
fn is_unknown_command(err: &RedisError) -> bool {
    matches!(err.kind(), ErrorKind::Server(_)) && err.to_string().contains("unknown command")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<SentinelTarget, CacheError> {
        match parse_sentinel_url(url, None, &TlsSettings::default())?.nodes {
            Nodes::Sentinel(target) => Ok(target),
            _ => panic!("not a sentinel target"),
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_group_and_the_database() {
        let parsed = target("redis+sentinel://:s3cret@h1,h2:26380/mymaster/3").unwrap();
        assert_eq!(parsed.service, "mymaster");
        assert_eq!(parsed.node.db(), 3);
        assert_eq!(parsed.node.password(), Some("s3cret"));
        let ports: Vec<_> = parsed
            .sentinels
            .iter()
            .map(|info| match info.addr() {
                ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ports, [("h1".to_owned(), 26379), ("h2".to_owned(), 26380)]);
        assert!(is_sentinel_url("REDIS+SENTINEL://h/m"));
    }

    #[test]
    fn bad_sentinel_urls_are_config_errors_without_the_password() {
        for bad in [
            "redis+sentinel://:s3cret@h1",
            "redis+sentinel://:s3cret@h1/",
            "redis+sentinel://:s3cret@h1/m/x",
            "redis+sentinel://:s3cret@h1/m/1/2",
        ] {
            match target(bad) {
                Err(CacheError::Config { message }) => {
                    assert!(!message.contains("s3cret"), "{bad}: {message}");
                }
                Err(other) => panic!("{bad}: {other:?}"),
                Ok(_) => panic!("{bad} was accepted"),
            }
        }
        let tls = TlsSettings {
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        assert!(parse_sentinel_url("redis+sentinel://h/m", None, &tls).is_err());
    }

    #[test]
    fn only_errors_that_may_mean_a_new_master_start_a_lookup() {
        let unreachable = CacheError::Unreachable {
            backend: "redis",
            source: "refused".into(),
        };
        assert!(may_have_moved(&unreachable));
        let readonly = CacheError::Backend {
            backend: "redis",
            source: "READONLY You can't write against a read only replica".into(),
        };
        assert!(may_have_moved(&readonly));
        assert!(!may_have_moved(&CacheError::config("x")));
    }
}
