//! The container source: a shared server started from a local image with `testcontainers`.
//!
//! The images are built locally by `scripts/build-test-images`; no registry is reachable, so a
//! missing image is reported with that script's name instead of a failed pull. The container is
//! published on `127.0.0.1` only and labelled `cache-testserver=1`. A shared container lives as
//! long as the process, so it is never dropped: a watchdog shell removes it when the process
//! exits, the way the binary source's watchdog kills its server.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testcontainers::bollard::models::PortBinding;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::kind::{Ready, ServerKind};
use crate::process::{find_binary, run_at_exit};
use crate::shared::{announce, redact_url, SharedServer};
use crate::CONTAINER_LABEL;

/// How long a container may take to start and report ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Keeps a shared container and its remover alive for as long as the process runs.
struct ContainerGuard {
    /// Never dropped while the process runs: dropping would remove the container early.
    _container: ContainerAsync<GenericImage>,
    /// The remover's stdin pipe; closed by the kernel at process exit, which triggers removal.
    _remover: Child,
}

/// Splits `name:tag` at the tag's colon (not a registry port's), defaulting the tag to `latest`.
fn split_image(image: &str) -> (&str, &str) {
    let name_start = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => (
            &image[..name_start + colon],
            &image[name_start + colon + 1..],
        ),
        None => (image, "latest"),
    }
}

/// Checks that `image` exists locally, since a pull can only fail here.
fn check_image(docker: &Path, image: &str, kind: &ServerKind) -> Result<(), String> {
    let output = Command::new(docker)
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {}: {err}", docker.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such image") || stderr.contains("no such image") {
        Err(format!(
            "image {image} not found locally (images are not pulled): {}",
            missing_image_hint(image, kind)
        ))
    } else {
        Err(format!("docker cannot be used: {}", stderr.trim()))
    }
}

/// How to get a missing image: the local `cache-test/*` images are built by a script, any
/// other image is pulled by hand.
fn missing_image_hint(image: &str, kind: &ServerKind) -> String {
    if image.starts_with("cache-test/") {
        format!(
            "run scripts/build-test-images, or set {}=name:tag to an image that exists",
            kind.image_env
        )
    } else {
        format!(
            "pull it first (docker pull {image}), or unset {} to use the image \
             scripts/build-test-images builds ({})",
            kind.image_env, kind.default_image
        )
    }
}

/// Starts a shell that removes container `name` once this process's end of its stdin closes.
fn spawn_remover(docker: &Path, name: &str) -> Result<Child, String> {
    run_at_exit(
        r#""$1" rm -f -v "$2" >/dev/null 2>&1"#,
        [docker.as_os_str(), OsStr::new(name)],
    )
    .map_err(|err| format!("cannot run sh to watch the container: {err}"))
}

/// Starts a container of `kind`'s image and waits until it is ready.
pub(crate) async fn start(kind: &'static ServerKind) -> Result<SharedServer, String> {
    let image = std::env::var(kind.image_env)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| kind.default_image.to_owned());
    let docker = find_binary("docker").ok_or_else(|| {
        "docker not found on PATH (it starts the container and removes it at exit)".to_owned()
    })?;
    check_image(&docker, &image, kind)?;

    // Named before it exists, so the remover is watching before the container is created.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let container_name = format!(
        "cache-testserver-{}-{}-{nanos}",
        kind.name,
        std::process::id()
    );
    let remover = spawn_remover(&docker, &container_name)?;

    let container = image_request(kind, &image, &container_name)
        .start()
        .await
        .map_err(|err| format!("container of {image} did not start: {err}"))?;
    let id = container.id().to_owned();
    let port = container
        .get_host_port_ipv4(kind.container_port)
        .await
        .map_err(|err| format!("container {id} of {image} has no published port: {err}"))?;
    let waited = match kind.container_ready {
        Ready::Reply {
            request,
            reply_prefix,
        } => crate::port::wait_for_reply(port, request, reply_prefix, STARTUP_TIMEOUT).await,
        Ready::StdoutLine(_) | Ready::StderrLine(_) => {
            crate::port::wait_for_port(port, Duration::from_secs(10)).await
        }
    };
    waited.map_err(|err| format!("container {id} of {image}: {err}"))?;

    let url = (kind.url_for)("127.0.0.1", port);
    announce(&format!(
        "{} from container {image} (id {}) at {}",
        kind.name,
        &id[..id.len().min(12)],
        redact_url(&url)
    ));
    let guard = ContainerGuard {
        _container: container,
        _remover: remover,
    };
    Ok(SharedServer::from_container(url, id, Box::new(guard)))
}

/// The container to start: `image` labelled for clean-up, its port published on the
/// loopback interface only, waited for as the kind says.
fn image_request(
    kind: &'static ServerKind,
    image: &str,
    container_name: &str,
) -> testcontainers::ContainerRequest<GenericImage> {
    let (name, tag) = split_image(image);
    let ready = match kind.container_ready {
        Ready::StdoutLine(line) => WaitFor::message_on_stdout(line),
        Ready::StderrLine(line) => WaitFor::message_on_stderr(line),
        // Checked by the caller, once the published port is known.
        Ready::Reply { .. } => WaitFor::Nothing,
    };
    let port_key = format!("{}/tcp", kind.container_port);
    let request = GenericImage::new(name, tag)
        .with_exposed_port(kind.container_port.tcp())
        .with_wait_for(ready)
        .with_container_name(container_name)
        .with_label(CONTAINER_LABEL, "1")
        .with_label(format!("{CONTAINER_LABEL}.kind"), kind.name)
        .with_startup_timeout(STARTUP_TIMEOUT)
        // Published on the loopback interface only: the default publishes on every interface.
        .with_host_config_modifier(move |host| {
            host.publish_all_ports = Some(false);
            host.port_bindings = Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(String::new()),
                }]),
            )]));
        });
    if kind.container_args.is_empty() {
        request
    } else {
        request.with_cmd(kind.container_args.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::{missing_image_hint, split_image};
    use crate::MEMCACHED;

    #[test]
    fn a_missing_image_is_built_when_local_and_pulled_otherwise() {
        let local = missing_image_hint("cache-test/memcached:latest", &MEMCACHED);
        assert!(local.contains("scripts/build-test-images"), "{local}");
        assert!(!local.contains("docker pull"), "{local}");
        let official = missing_image_hint("memcached:1.6", &MEMCACHED);
        assert!(official.contains("docker pull memcached:1.6"), "{official}");
        assert!(official.contains("unset MEMCACHED_IMAGE"), "{official}");
    }

    #[test]
    fn split_image_reads_the_tag_after_the_last_path_segment() {
        assert_eq!(
            split_image("cache-test/redis:latest"),
            ("cache-test/redis", "latest")
        );
        assert_eq!(split_image("redis"), ("redis", "latest"));
        assert_eq!(
            split_image("localhost:5000/cache-test/redis"),
            ("localhost:5000/cache-test/redis", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/redis:7.2"),
            ("localhost:5000/redis", "7.2")
        );
    }
}
