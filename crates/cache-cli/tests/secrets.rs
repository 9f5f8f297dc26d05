//! A password written in a connection URL never shows: not in an error's message, its
//! `Debug` output or its sources, not in a span or event the libraries log, not in
//! anything `cachectl` prints (text or `--json`), whatever the scheme and whatever went
//! wrong: a malformed URL, a wrong password, a server that is down, frozen, lacks the
//! database or refuses the command.

mod common;

use std::{
    sync::{Mutex, OnceLock},
    time::Duration,
};

use cache_api::CacheError;
use cache_testserver::{free_port, LocalServer, MEMCACHED, REDIS};
use common::{cachectl, text};

/// The password every URL of this file carries, and its percent-encoded form.
const PASSWORD: &str = "Pw-s3cret/93@x";
const ENCODED: &str = "Pw-s3cret%2F93%40x";

/// Every span and event the libraries emit in this test process, as text: names, fields
/// and values. Installed once, for the whole process, at the most verbose level.
fn logs() -> &'static Mutex<String> {
    static LOGS: OnceLock<Mutex<String>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per process");
        Mutex::new(String::new())
    })
}

/// Writes every field of every span and event into [`logs`].
struct Capture;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(format!("span {}", attrs.metadata().name()));
        attrs.record(&mut fields);
        logs().lock().unwrap().push_str(&(fields.0 + "\n"));
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields("record".to_owned());
        values.record(&mut fields);
        logs().lock().unwrap().push_str(&(fields.0 + "\n"));
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(format!("event {}", event.metadata().target()));
        event.record(&mut fields);
        logs().lock().unwrap().push_str(&(fields.0 + "\n"));
    }
}

/// The logs so far hold no password, and (when `expect_some`) hold something at all, so
/// that the capture is known to work.
fn assert_logs_hidden(what: &str, expect_some: bool) {
    let logs = logs().lock().unwrap().clone();
    if expect_some {
        assert!(logs.contains("span"), "{what}: nothing was logged:\n{logs}");
    }
    assert_hidden(&logs, &format!("{what}: the logs"));
}

/// Everything an error shows: message, `Debug`, and every source's message and `Debug`.
fn everything_shown(err: &CacheError) -> String {
    let mut shown = format!("{err}\n{err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        shown.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    shown
}

fn assert_hidden(shown: &str, what: &str) {
    for secret in [PASSWORD, ENCODED, "s3cret"] {
        assert!(
            !shown.contains(secret),
            "{what} shows the password ({secret:?}):\n{shown}"
        );
    }
}

/// `cache_url::connect` fails, and what `cachectl` prints for the same URL (`get`, `set`,
/// `del`, `check` and `check --json`) fails too, all without the password.
async fn assert_fails_without_the_password(url: &str, what: &str) -> CacheError {
    let err = match cache_url::connect(url).await {
        Ok(_) => panic!("{what}: {} was accepted", cache_url::redact(url)),
        Err(err) => err,
    };
    assert_hidden(&everything_shown(&err), what);
    let url = url.to_owned();
    let what = what.to_owned();
    tokio::task::spawn_blocking(move || {
        for args in [
            vec!["get", &url, "k"],
            vec!["set", &url, "k", "v", "--timeout", "300ms"],
            vec!["del", &url, "k"],
            vec![
                "check",
                &url,
                "--filter",
                "test_set_and_get",
                "--timeout",
                "300ms",
            ],
            vec!["check", &url, "--json", "--filter", "test_set_and_get"],
        ] {
            let out = cachectl(&args);
            assert!(
                !out.status.success(),
                "{what}: cachectl {:?} succeeded",
                args[0]
            );
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_hidden(&shown, &format!("{what}: cachectl {args:?}"));
        }
    })
    .await
    .unwrap();
    err
}

/// Malformed URLs of every scheme: refused as configuration errors.
#[tokio::test]
async fn malformed_urls_never_show_the_password() {
    let _ = logs();
    for url in [
        format!("memory://user:{ENCODED}@"),
        format!("MEMORY://:{PASSWORD}@host"),
        format!("redis://user:{ENCODED}@127.0.0.1:99999"),
        format!("redis://user:{ENCODED}@127.0.0.1/notadb"),
        format!("redis://user:{ENCODED}@127.0.0.1?colour=red"),
        format!("redis://user:{ENCODED}@127.0.0.1?timeout=abc&pool_size=0"),
        format!("REDIS://user:{ENCODED}@127.0.0.1?prefix=nodelimiter"),
        format!("rediss://user:{ENCODED}@127.0.0.1?tls_cert=/only/a/certificate.pem"),
        format!("rediss://user:{ENCODED}@127.0.0.1?tls_insecure_skip_verify=maybe"),
        format!("redis://user:{ENCODED}@127.0.0.1?tls_ca=/a/ca.pem"),
        format!("rediss+cluster://user:{ENCODED}@h1,,h2"),
        format!("redis+sentinel://user:{ENCODED}@h1,,h2/mymaster"),
        format!("redis+sentinel://user:{ENCODED}@127.0.0.1:26379/mymaster?tls_ca=/a/ca.pem"),
        format!("redis+unix://user:{ENCODED}@/run/redis.sock?colour=red"),
        format!("memcaches://user:{ENCODED}@127.0.0.1:11211"),
        format!("memcaches://127.0.0.1:11211?tls_key=/only/a/key.pem&password={ENCODED}"),
        format!("memcache+unix://user:{ENCODED}@/run/memcached.sock"),
        format!("redis+cluster://user:{ENCODED}@h1,,h2"),
        format!("redis+cluster://user:{ENCODED}@h1:7000/2"),
        format!("memcache://user:{ENCODED}@127.0.0.1:11211"),
        format!("memcached://127.0.0.1:11211,user:{PASSWORD}@h"),
        format!("ftp://user:{ENCODED}@host"),
        PASSWORD.to_owned(),
    ] {
        let err = assert_fails_without_the_password(&url, &cache_url::redact(&url)).await;
        assert!(
            matches!(err, CacheError::Config { .. }),
            "{}: expected a configuration error, got {err:?}",
            cache_url::redact(&url)
        );
    }
    assert_logs_hidden("malformed URLs", false);
}

/// Servers that refuse, are down, frozen, lack the database or refuse the command.
#[tokio::test]
async fn every_backend_failure_hides_the_password() {
    let _ = logs();
    let acl_user = format!(">{PASSWORD}");
    let server = LocalServer::start(
        &REDIS,
        &[
            "--requirepass",
            PASSWORD,
            "--user",
            "limited",
            "on",
            &acl_user,
            "~app:*",
            "+get",
            "+set",
            "+ping",
        ],
    )
    .await
    .unwrap_or_else(|err| {
        panic!("cannot start redis-server (scripts/install-servers installs it): {err}")
    });
    let port = server.port();
    let down = free_port();

    let wrong = format!("redis://:wrong-{ENCODED}@127.0.0.1:{port}");
    let err = assert_fails_without_the_password(&wrong, "a wrong password").await;
    assert!(matches!(err, CacheError::Auth { .. }), "{err:?}");

    let missing = format!("redis://:{ENCODED}@127.0.0.1:{port}/99");
    let err = assert_fails_without_the_password(&missing, "a database the server lacks").await;
    assert!(matches!(err, CacheError::Config { .. }), "{err:?}");

    for url in [
        format!("redis://:{ENCODED}@127.0.0.1:{down}"),
        format!("redis+cluster://:{ENCODED}@127.0.0.1:{down}"),
    ] {
        let err = assert_fails_without_the_password(&url, "a server that is down").await;
        assert!(err.is_retryable(), "{err:?}");
    }

    // A command the ACL user may not run: the error names it, not the password.
    let limited = format!("redis://limited:{ENCODED}@127.0.0.1:{port}?prefix=app:");
    let cache = cache_url::connect(&limited).await.unwrap();
    cache.set("k", "v".into(), None).await.unwrap();
    let err = cache.delete("k").await.unwrap_err();
    assert!(
        matches!(err, CacheError::PermissionDenied { .. }) && err.to_string().contains("'unlink'"),
        "{err:?}"
    );
    assert_hidden(&everything_shown(&err), "a refused command");
    let err = cache.clear().await.unwrap_err();
    assert!(
        matches!(err, CacheError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert_hidden(&everything_shown(&err), "a refused clear");
    let shown = tokio::task::spawn_blocking(move || {
        let out = cachectl(&["del", &limited, "k"]);
        let check = cachectl(&["check", &limited, "--json", "--filter", "test_set_and_get"]);
        format!(
            "{}{}{}{}",
            text(&out.stdout),
            text(&out.stderr),
            text(&check.stdout),
            text(&check.stderr)
        )
    })
    .await
    .unwrap();
    assert!(shown.contains("permission denied"), "{shown}");
    assert_hidden(&shown, "cachectl with an ACL user");

    // A frozen server: every phase times out, and says so without the password.
    let frozen = format!("redis://:{ENCODED}@127.0.0.1:{port}?timeout=200ms&trace=true");
    let cache = cache_url::connect(&frozen).await.unwrap();
    server.pause();
    let err = cache
        .set("k", "v".into(), Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Timeout {
                phase: "response",
                ..
            }
        ),
        "{err:?}"
    );
    assert_hidden(&everything_shown(&err), "a response timeout");
    let err = assert_fails_without_the_password(&frozen, "a frozen server").await;
    assert!(err.is_timeout(), "{err:?}");
    server.resume();
    assert_logs_hidden("every backend failure", true);
}

/// A `redis://` URL pointed at a memcached port says so in one line, and the password
/// stays hidden there too.
#[tokio::test]
async fn a_redis_url_at_a_memcached_port_reads_clearly() {
    let memcached = LocalServer::start(&MEMCACHED, &[])
        .await
        .unwrap_or_else(|err| {
            panic!("cannot start memcached (scripts/install-servers installs it): {err}")
        });
    let url = format!("redis://:{ENCODED}@127.0.0.1:{}", memcached.port());
    let err = assert_fails_without_the_password(&url, "a memcached port").await;
    let shown = err.to_string();
    assert!(
        shown.contains(&format!(
            "127.0.0.1:{} does not answer as a redis server",
            memcached.port()
        )) && !shown.contains('\n'),
        "{shown}"
    );
}

/// A URL given where the command line wants something else (a duration, a workload, a
/// key, one argument too many), as `--flag URL` or `--flag=URL`, is shown redacted in
/// clap's message, which is otherwise unchanged: exit code 2, the value named. `--help`
/// and `--version` still print on standard output with exit code 0.
#[test]
fn command_line_errors_never_show_the_password() {
    let url = format!("redis://user:{PASSWORD}@127.0.0.1:6379");
    let encoded = format!("redis://:{ENCODED}@h1");
    // A password that `{:?}` escapes, as a workload's message quotes it.
    let quoting = "redis://u:s3cret\"q\\@h2".to_owned();
    let timeout_eq = format!("--timeout={url}");
    let ttl_eq = format!("--ttl={encoded}");
    let workload_eq = format!("--workload={quoting}");
    let cases: [(&[&str], &str); 11] = [
        (&["get", "--timeout", &url, "k"], "--timeout <TIMEOUT>"),
        (&["get", &timeout_eq, "k"], "--timeout <TIMEOUT>"),
        (&["check", &url, &encoded], "unexpected argument"),
        (
            &["set", "memory://", "k", "v", "--ttl", &encoded],
            "--ttl <TTL>",
        ),
        (&["set", "memory://", "k", "v", &ttl_eq], "--ttl <TTL>"),
        (&["bench", "--workload", &url], "--workload <WORKLOAD>"),
        (&["bench", "--workload", &quoting], "--workload <WORKLOAD>"),
        (&["bench", &workload_eq], "--workload <WORKLOAD>"),
        (&["del", "memory://", "k", &url], "unexpected argument"),
        (&[&url, "get"], "unrecognized subcommand"),
        (
            &["get", "memory://", "k", "--colour", &encoded],
            "unexpected argument",
        ),
    ];
    for (args, said) in cases {
        let out = cachectl(args);
        let stderr = text(&out.stderr);
        let shown = format!("{}{stderr}", text(&out.stdout));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(said),
            "{args:?}: clap's message is gone: {shown}"
        );
        assert_hidden(&shown, &format!("cachectl {args:?}"));
        // The misplaced URL is named, redacted, where clap names it.
        if said.starts_with("--") || said == "unrecognized subcommand" {
            assert!(shown.contains(":***@"), "{args:?}: {shown}");
        }
    }
    for flag in ["--help", "--version"] {
        let out = cachectl(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{flag}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("cachectl"),
            "{flag}: {}",
            text(&out.stdout)
        );
    }
    let out = cachectl(&["get", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("Usage: cachectl get"),
        "{}",
        text(&out.stdout)
    );
}

/// A URL given as a key is shown redacted where cachectl names the key (a miss).
#[test]
fn a_url_given_as_a_key_is_shown_redacted() {
    let key = format!("redis://user:{PASSWORD}@h");
    let out = cachectl(&["get", "memory://", &key]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("miss") && stderr.contains("user:***@h"),
        "{stderr}"
    );
    assert_hidden(&stderr, "a miss on a URL-shaped key");
}
