//! The one server per kind that every test of a process shares, and how its source is chosen.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tokio::sync::OnceCell;

use crate::kind::ServerKind;
use crate::process::start_binary;
use crate::runtime::on_background;

/// Environment variable that chooses where a shared server comes from.
pub const SOURCE_ENV: &str = "CACHE_TEST_SERVERS";

/// Where a [`SharedServer`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// An external server named by the kind's `url_env` variable; not owned by the fixture.
    Environment,
    /// A process of the kind's binary, started by this process.
    Binary,
    /// A container of the kind's image, started by this process.
    Container,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Environment => "environment",
            Self::Binary => "binary",
            Self::Container => "container",
        })
    }
}

impl Origin {
    /// True when this process started the server, so FLUSHDB / flush_all on it is allowed;
    /// false for [`Origin::Environment`], a server that may hold someone else's data.
    #[must_use]
    pub fn owned_by_fixture(self) -> bool {
        self != Self::Environment
    }
}

/// The sources `CACHE_TEST_SERVERS` can ask for; see [`shared_server`].
///
/// Fixtures that find or start servers of their own (a ring, a cluster) read it too, so
/// that one variable narrows every source the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Unset, empty or `auto`: the URL variable, else the binary, else a container.
    Auto,
    /// `binary`: the binary only.
    Binary,
    /// `containers`: a container only.
    Containers,
    /// `external`: the URL variable only.
    External,
}

impl Source {
    /// Reads `CACHE_TEST_SERVERS`, ignoring white space around the value.
    ///
    /// # Errors
    ///
    /// Returns a message naming the variable when its value is not unicode or not one of
    /// `auto`, `binary`, `containers`, `external`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(SOURCE_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::Auto),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{SOURCE_ENV} is not valid unicode"))
            }
            Ok(value) => match value.trim() {
                "" | "auto" => Ok(Self::Auto),
                "binary" => Ok(Self::Binary),
                "containers" => Ok(Self::Containers),
                "external" => Ok(Self::External),
                other => Err(format!(
                    "{SOURCE_ENV}={other:?} is not one of auto, binary, containers, external"
                )),
            },
        }
    }

    /// The value of `CACHE_TEST_SERVERS` that asks for this source, e.g. `"auto"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Binary => "binary",
            Self::Containers => "containers",
            Self::External => "external",
        }
    }
}

/// A server shared by every test of the process; see [`shared_server`].
pub struct SharedServer {
    url: String,
    origin: Origin,
    container_id: Option<String>,
    /// Whatever keeps an owned server alive while the process runs (its watchdog's stdin pipe).
    _keepalive: Option<Box<dyn Any + Send + Sync>>,
}

impl SharedServer {
    #[cfg(feature = "containers")]
    pub(crate) fn from_container(
        url: String,
        container_id: String,
        keepalive: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Self {
            url,
            origin: Origin::Container,
            container_id: Some(container_id),
            _keepalive: Some(keepalive),
        }
    }

    /// The URL a client uses to reach the server.
    ///
    /// It may hold a password (when it comes from the environment): do not log it as is.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the server comes from.
    #[must_use]
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// True when this process started the server (so FLUSHDB / flush_all on it is allowed).
    ///
    /// False for an external server from the environment, which may hold someone else's data.
    #[must_use]
    pub fn owned_by_fixture(&self) -> bool {
        self.origin.owned_by_fixture()
    }

    /// The id of the container running the server, when it runs in one.
    #[must_use]
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }
}

impl fmt::Debug for SharedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedServer")
            .field("url", &redact_url(&self.url))
            .field("origin", &self.origin)
            .field("container_id", &self.container_id)
            .finish_non_exhaustive()
    }
}

/// The one redactor of the workspace's URLs.
pub(crate) use cache_url_core::redact as redact_url;

type Slot = OnceCell<Result<SharedServer, String>>;

/// The slot of `kind`, created on first use; slots live as long as the process.
fn slot(kind: &'static ServerKind) -> &'static Slot {
    static SLOTS: OnceLock<Mutex<HashMap<&'static str, &'static Slot>>> = OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slots
        .entry(kind.name)
        .or_insert_with(|| Box::leak(Box::new(OnceCell::new())))
}

/// One server of `kind` per test process, started on first use and reused by every test in the
/// process, stopped when the process exits (even on panic, abort or `SIGKILL`).
///
/// The source is chosen by the `CACHE_TEST_SERVERS` environment variable:
///
/// | value | source |
/// |---|---|
/// | unset, empty or `auto` | the kind's `url_env` if set; else its binary from `PATH`; else a container |
/// | `binary` | the binary only |
/// | `containers` | a container only, even when the binary is on `PATH` |
/// | `external` | the kind's `url_env` only |
///
/// The choice is made once per kind and process: later changes to the environment are not seen.
/// Servers are keyed by [`ServerKind::name`]. Safe to call from many tests at once, from different
/// runtimes (each `#[test]` has its own): the first call starts the server, the others wait for it.
///
/// When it starts something it writes one line on stderr (past the test harness' capture), e.g.
/// `cache-testserver: redis from container cache-test/redis:latest (id 1a2b3c4d5e6f) at
/// redis://127.0.0.1:32768`, so a run shows what it used.
///
/// # Panics
///
/// Panics when no server can be had, with a message that says what was tried and how to provide
/// a server (set the URL variable, install the binary, or build the image with
/// `scripts/build-test-images`); every later call for the same kind panics with the same message.
/// Also panics when `CACHE_TEST_SERVERS` holds an unknown value.
pub async fn shared_server(kind: &'static ServerKind) -> &'static SharedServer {
    let result = slot(kind)
        .get_or_init(|| on_background(async move { find_or_start(kind).await }))
        .await;
    match result {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// Writes one line on stderr, bypassing the test harness' capture on purpose: which server a run
/// used is worth seeing even when every test passes.
pub(crate) fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "cache-testserver: {line}");
}

async fn find_or_start(kind: &'static ServerKind) -> Result<SharedServer, String> {
    let source = Source::from_env().map_err(|err| {
        format!(
            "cache-testserver: cannot choose a {} server: {err}",
            kind.name
        )
    })?;
    let mut tried = Vec::new();

    if matches!(source, Source::Auto | Source::External) {
        match std::env::var(kind.url_env) {
            Ok(url) if !url.trim().is_empty() => {
                let url = url.trim().to_owned();
                announce(&format!(
                    "{} from {} at {}",
                    kind.name,
                    kind.url_env,
                    redact_url(&url)
                ));
                return Ok(SharedServer {
                    url,
                    origin: Origin::Environment,
                    container_id: None,
                    _keepalive: None,
                });
            }
            _ => tried.push(format!("{}: not set", kind.url_env)),
        }
    }

    if matches!(source, Source::Auto | Source::Binary) {
        match start_binary(kind, None, &[]).await {
            Ok((process, port)) => {
                let url = (kind.url_for)("127.0.0.1", port);
                announce(&format!(
                    "{} from binary {} (pid {}) at {}",
                    kind.name,
                    process.binary().display(),
                    process.pid(),
                    redact_url(&url)
                ));
                return Ok(SharedServer {
                    url,
                    origin: Origin::Binary,
                    container_id: None,
                    _keepalive: Some(Box::new(process)),
                });
            }
            Err(err) => {
                // A binary that is there but fails is worth knowing about even when a container
                // then takes over.
                if source == Source::Auto && crate::process::find_binary(kind.binary).is_some() {
                    announce(&format!(
                        "{}: binary {} failed, trying a container: {err}",
                        kind.name, kind.binary
                    ));
                }
                tried.push(format!("binary {}: {err}", kind.binary));
            }
        }
    }

    if matches!(source, Source::Auto | Source::Containers) {
        match start_container(kind).await {
            Ok(server) => return Ok(server),
            Err(err) => tried.push(format!("container: {err}")),
        }
    }

    Err(nothing_found(kind, source, &tried))
}

#[cfg(feature = "containers")]
async fn start_container(kind: &'static ServerKind) -> Result<SharedServer, String> {
    crate::container::start(kind).await
}

#[cfg(not(feature = "containers"))]
async fn start_container(_kind: &'static ServerKind) -> Result<SharedServer, String> {
    Err("the `containers` feature of cache-testserver is off".to_owned())
}

fn nothing_found(kind: &ServerKind, source: Source, tried: &[String]) -> String {
    let image = std::env::var(kind.image_env)
        .ok()
        .filter(|image| !image.trim().is_empty())
        .unwrap_or_else(|| kind.default_image.to_owned());
    let mut message = format!(
        "cache-testserver: no {} server available ({SOURCE_ENV}={})\ntried:\n",
        kind.name,
        source.name()
    );
    for attempt in tried {
        message.push_str("  - ");
        message.push_str(&attempt.replace('\n', "\n    "));
        message.push('\n');
    }
    message.push_str(&format!(
        "provide one of:\n  - an external server: {url_env}=... (with {SOURCE_ENV}=auto or external)\n  \
         - the binary on PATH: {hint} (with {SOURCE_ENV}=auto or binary)\n  \
         - a local image: run scripts/build-test-images to build {image}, or set {image_env}=name:tag \
         (with {SOURCE_ENV}=auto or containers)",
        url_env = kind.url_env,
        hint = kind.install_hint,
        image_env = kind.image_env,
    ));
    message
}
