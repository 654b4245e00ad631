//! moto's S3 server (`moto_server`, from `pip install "moto[server]"`) as a child process on
//! a free port, for S3 backup targets in tests and drills.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long moto may take to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why moto's server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MotoError {
    /// `moto_server` is not installed.
    #[error("moto_server not found on PATH (install it with: pip install \"moto[server]\")")]
    NotInstalled,
    /// It started but never answered, or exited.
    #[error("moto_server did not start: {0}")]
    Start(String),
}

/// A running `moto_server`: an S3 endpoint on 127.0.0.1 and a free port, killed on drop.
///
/// `LIFT_MOTO_SERVER` names the binary (default `moto_server` on `PATH`).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use lift_harness::backup::MotoS3;
///
/// let moto = MotoS3::start().await?;
/// let s3 = moto.client().await;
/// s3.create_bucket().bucket("backups").send().await?;
/// println!("AWS_ENDPOINT_URL_S3={}", moto.endpoint());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MotoS3 {
    child: Child,
    endpoint: String,
}

impl MotoS3 {
    /// Starts `moto_server` on a free port and waits until it answers.
    ///
    /// # Errors
    /// [`MotoError::NotInstalled`] when the binary is missing, [`MotoError::Start`] when it
    /// exits or does not answer within 30 s.
    pub async fn start() -> Result<Self, MotoError> {
        let binary = std::env::var("LIFT_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| MotoError::Start(format!("no free port: {e}")))?
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => MotoError::NotInstalled,
                _ => MotoError::Start(format!("cannot run {binary}: {e}")),
            })?;
        let mut moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(MotoError::Start(format!("{binary} exited: {status}")));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(moto);
            }
            if Instant::now() >= deadline {
                return Err(MotoError::Start(format!("no answer on port {port} after {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its endpoint, e.g. `http://127.0.0.1:41234` (what `AWS_ENDPOINT_URL_S3` takes).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An S3 client for it: path-style addressing, static test credentials, `us-east-1`.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        s3_client(Some(&self.endpoint)).await
    }
}

/// An S3 client: at `endpoint` with path-style addressing and static credentials when one
/// is given (moto, MinIO), else the default AWS chain (`AWS_ENDPOINT_URL_S3` is honoured
/// there as by every SDK).
pub async fn s3_client(endpoint: Option<&str>) -> aws_sdk_s3::Client {
    let region = crate::dynamodb::default_region();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint).credentials_provider(aws_credential_types::Credentials::new(
            "lift",
            "lift",
            None,
            None,
            "lift-harness",
        ));
    }
    let config = loader.load().await;
    // Local servers serve buckets by path; AWS by virtual host.
    let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(endpoint.is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}
