//! A DynamoDB Local JVM of one's own, for process faults: kill, pause, resume, restart.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lift::store::TableDef;

use super::instance::pid_alive;
use super::{client_for, default_region, jar, probe, tables, DynamoDbError};

/// Runs the JVM in the background, prints its pid, and kills it once the owning process is
/// gone, so a test process killed outright leaves no JVM behind. POSIX sh.
const GUARDIAN: &str = r#"owner=$1 log=$2
shift 2
"$@" </dev/null >>"$log" 2>&1 &
jvm=$!
echo "$jvm"
exec >/dev/null 2>&1
alive() {
    if [ -d /proc/self ]; then
        s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        s=${s##*) }
        case $s in Z* | X*) return 1 ;; esac
        return 0
    fi
    kill -0 "$1" 2>/dev/null
}
while alive "$owner" && alive "$jvm"; do sleep 1; done
kill -9 "$jvm" 2>/dev/null
wait
"#;

/// Attempts to bind the same port again on restart (the old socket may linger briefly).
const RESTART_ATTEMPTS: usize = 5;

/// Where a [`DedicatedDynamoDb`] keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// `-dbPath` in a temporary directory removed on drop: data survives kill and restart,
    /// like a real node's disk.
    #[default]
    Disk,
    /// `-inMemory`: faster; a kill or restart loses every table.
    Memory,
}

/// A DynamoDB Local JVM that only this handle uses, on its own free port, with process
/// faults: [`kill`](Self::kill) (SIGKILL), [`pause`](Self::pause) (SIGSTOP),
/// [`resume`](Self::resume) (SIGCONT) and [`restart`](Self::restart) (same port).
///
/// It runs from the DynamoDB Local jar (Java 17+), whatever `LIFT_DYNAMODB_ENDPOINT` says:
/// process faults need a process of our own. By default data lives on disk
/// ([`Storage::Disk`]), so a restarted instance comes back with its tables. The JVM is
/// killed when the handle is dropped, and by a small guardian shell when this process dies.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::dynamodb::DynamoDbError> {
/// use lift_harness::dynamodb::DynamoDbLocal;
///
/// let ddb = DynamoDbLocal::dedicated().await?;
/// let table = ddb.create_table(&lift::store::tables::audit()).await?;
/// ddb.pause()?; // requests now hang
/// ddb.resume()?;
/// ddb.kill()?; // connections are refused
/// ddb.restart().await?; // same port, same data
/// # drop(table); Ok(()) }
/// ```
#[derive(Debug)]
pub struct DedicatedDynamoDb {
    port: u16,
    java: PathBuf,
    jar_dir: PathBuf,
    storage: Storage,
    dir: PathBuf,
    start_timeout: Duration,
    process: Mutex<Option<Process>>,
}

#[derive(Debug)]
struct Process {
    guardian: Child,
    pid: u32,
    paused: bool,
}

impl super::DynamoDbLocal {
    /// Starts a DynamoDB Local JVM of its own (not shared with other processes or tests) on a
    /// free port, with data on disk, and waits until it answers.
    ///
    /// # Errors
    /// [`DynamoDbError::Java`] without Java 17+, fetch errors for the jar, and
    /// [`DynamoDbError::Exited`] or [`DynamoDbError::StartTimeout`] when the JVM does not come up.
    pub async fn dedicated() -> Result<DedicatedDynamoDb, DynamoDbError> {
        DedicatedDynamoDb::start(Storage::Disk).await
    }
}

impl DedicatedDynamoDb {
    /// Starts a dedicated instance with the given storage (see [`super::DynamoDbLocal::dedicated`]).
    pub async fn start(storage: Storage) -> Result<Self, DynamoDbError> {
        let start_timeout =
            super::secs_from_env("LIFT_DYNAMODB_START_TIMEOUT_SECS", super::DEFAULT_START_TIMEOUT_SECS)?;
        let (java, jar_dir) = tokio::task::spawn_blocking(|| {
            let cache = jar::cache_dir()?;
            let java = jar::find_java()?;
            Ok::<_, DynamoDbError>((java, jar::ensure_jar(&cache)?))
        })
        .await
        .map_err(|err| DynamoDbError::Java(format!("the dynamodb local jar task failed: {err}")))??;
        let mut last = None;
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(format!("lift-dynamodb-{}", uuid::Uuid::new_v4().simple()));
            fs::create_dir_all(dir.join("data"))
                .map_err(DynamoDbError::io(format!("cannot create {}", dir.display())))?;
            let local = Self {
                port: free_port()?,
                java: java.clone(),
                jar_dir: jar_dir.clone(),
                storage,
                dir,
                start_timeout,
                process: Mutex::new(None),
            };
            // A failed attempt is dropped: its JVM killed, its directory removed.
            match local.spawn_and_wait().await {
                Ok(()) => return Ok(local),
                Err(err @ DynamoDbError::Exited { .. })
                    if err.to_string().contains("in use") || err.to_string().contains("BindException") =>
                {
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The endpoint URL, `http://127.0.0.1:<port>`; the same across restarts.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its data lives.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The JVM's pid, while it runs (or is paused).
    pub fn pid(&self) -> Option<u32> {
        let mut process = self.process.lock().expect("process lock");
        self.reap(&mut process);
        process.as_ref().map(|p| p.pid)
    }

    /// Whether the JVM runs (paused counts as running).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether the JVM is stopped by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.process.lock().expect("process lock").as_ref().is_some_and(|p| p.paused)
    }

    /// The JVM's log (stdout and stderr of every start).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dynamodb.log")
    }

    /// A new client for this instance, in [`default_region`].
    pub async fn client(&self) -> aws_sdk_dynamodb::Client {
        client_for(&self.endpoint(), &default_region())
    }

    /// Creates a uniquely named table from `def` and returns its physical name (see
    /// [`super::DynamoDbLocal::create_table`]).
    pub async fn create_table(&self, def: &TableDef) -> Result<String, DynamoDbError> {
        tables::create_table(&self.client().await, def).await
    }

    /// Kills the JVM with SIGKILL, as a crash would, and waits until it is gone. Connections
    /// are refused afterwards. Killing a stopped instance is not an error.
    pub fn kill(&self) -> Result<(), DynamoDbError> {
        let mut process = self.process.lock().expect("process lock");
        if let Some(mut running) = process.take() {
            signal(running.pid, "-KILL")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while pid_alive(running.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // The JVM's main thread shows as a zombie while its other threads still exit, and
            // they hold its socket: killed means the port refuses connections too.
            let address = SocketAddr::from(([127, 0, 0, 1], self.port));
            while TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            // The guardian notices within a second and exits; do not leave it waiting.
            let _ = running.guardian.kill();
            let _ = running.guardian.wait();
            tracing::info!(port = self.port, pid = running.pid, "killed dedicated dynamodb local");
        }
        Ok(())
    }

    /// Stops the JVM with SIGSTOP: connections are accepted by the kernel, nothing answers.
    pub fn pause(&self) -> Result<(), DynamoDbError> {
        self.with_running("pause", |running| {
            signal(running.pid, "-STOP")?;
            running.paused = true;
            Ok(())
        })
    }

    /// Continues a paused JVM with SIGCONT.
    pub fn resume(&self) -> Result<(), DynamoDbError> {
        self.with_running("resume", |running| {
            signal(running.pid, "-CONT")?;
            running.paused = false;
            Ok(())
        })
    }

    /// Kills the JVM if it runs, starts a new one on the same port and waits until it answers.
    /// With [`Storage::Disk`] the tables and items are still there.
    pub async fn restart(&self) -> Result<(), DynamoDbError> {
        self.kill()?;
        let mut last = None;
        for attempt in 0..RESTART_ATTEMPTS {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(err @ DynamoDbError::Exited { .. }) => {
                    tracing::debug!(attempt, port = self.port, "restart failed, retrying: {err}");
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn with_running(
        &self,
        what: &str,
        f: impl FnOnce(&mut Process) -> Result<(), DynamoDbError>,
    ) -> Result<(), DynamoDbError> {
        let mut process = self.process.lock().expect("process lock");
        self.reap(&mut process);
        match process.as_mut() {
            Some(running) => f(running),
            None => Err(DynamoDbError::Io {
                action: format!("cannot {what} dynamodb local on port {}", self.port),
                source: std::io::Error::other("it is not running"),
            }),
        }
    }

    /// Forgets a JVM that died on its own.
    fn reap(&self, process: &mut Option<Process>) {
        if process.as_ref().is_some_and(|p| !pid_alive(p.pid)) {
            if let Some(mut dead) = process.take() {
                let _ = dead.guardian.kill();
                let _ = dead.guardian.wait();
            }
        }
    }

    async fn spawn_and_wait(&self) -> Result<(), DynamoDbError> {
        let log = self.log_path();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(GUARDIAN)
            .arg("lift-dynamodb-guardian")
            .arg(std::process::id().to_string())
            .arg(&log)
            .arg(&self.java)
            .args(java_options())
            .arg("-Djava.library.path=./DynamoDBLocal_lib")
            .arg("-jar")
            .arg("DynamoDBLocal.jar")
            .arg("-sharedDb")
            .arg("-port")
            .arg(self.port.to_string());
        match self.storage {
            Storage::Disk => command.arg("-dbPath").arg(self.dir.join("data")),
            Storage::Memory => command.arg("-inMemory"),
        };
        let mut guardian = command
            .current_dir(&self.jar_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(DynamoDbError::io("cannot run sh for dedicated dynamodb local"))?;
        let mut line = String::new();
        let stdout = guardian.stdout.take().expect("stdout is piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Ok(pid) = line.trim().parse::<u32>() else {
            let _ = guardian.kill();
            let _ = guardian.wait();
            return Err(DynamoDbError::Exited { log, tail: "the guardian did not report a pid".into() });
        };
        *self.process.lock().expect("process lock") = Some(Process { guardian, pid, paused: false });
        let began = Instant::now();
        let port = self.port;
        let timeout = self.start_timeout;
        let answered = tokio::task::spawn_blocking(move || loop {
            if probe::answers("127.0.0.1", port, Duration::from_secs(1)) {
                return Ok(());
            }
            if !pid_alive(pid) {
                return Err(false);
            }
            if began.elapsed() >= timeout {
                return Err(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        })
        .await
        .unwrap_or(Err(true));
        match answered {
            Ok(()) => {
                tracing::info!(
                    port,
                    pid,
                    secs = began.elapsed().as_secs_f32(),
                    "dedicated dynamodb local up"
                );
                Ok(())
            }
            Err(timed_out) => {
                let _ = self.kill();
                let text = fs::read_to_string(&log).unwrap_or_default();
                Err(if timed_out {
                    DynamoDbError::StartTimeout {
                        endpoint: self.endpoint(),
                        secs: timeout.as_secs(),
                        log: log.display().to_string(),
                    }
                } else {
                    DynamoDbError::Exited { log, tail: jar::last_lines(&text, 5) }
                })
            }
        }
    }
}

impl Drop for DedicatedDynamoDb {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// JVM options of every DynamoDB Local the harness starts, dedicated or shared:
/// `LIFT_DYNAMODB_JAVA_OPTS` (split on spaces) when set, else options that favour a quick
/// warm-up over peak throughput (C1 only, serial GC). A dedicated instance lives for one test
/// or drill; the shared one stops 20 s after its last user, so a run often starts it cold in
/// the middle. With the C2 compiler too, a fresh JVM's compilers took the 2-core reference
/// machine's CPU for tens of seconds: the good deployment drill, 40 requests a second from
/// its start, fell behind and failed 7 times in 10 on a fresh shared JVM. With these options
/// a fresh JVM answered within 10 ms (median of 8 concurrent workers) after 0.6 to 1.2 s of
/// [`warm_up`](super::DynamoDbLocal::warm_up); with C2 it took 1.3 to 5.1 s.
pub(super) fn java_options() -> Vec<String> {
    match super::env_value("LIFT_DYNAMODB_JAVA_OPTS") {
        Some(opts) => opts.split_whitespace().map(str::to_owned).collect(),
        None => ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xms256m"].map(str::to_owned).to_vec(),
    }
}

/// Sends a signal with the `kill` command (no libc, no unsafe).
fn signal(pid: u32, signal: &str) -> Result<(), DynamoDbError> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(DynamoDbError::io(format!("cannot run kill {signal} {pid}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(DynamoDbError::Io {
            action: format!("kill {signal} {pid} failed"),
            source: std::io::Error::other(status.to_string()),
        })
    }
}

fn free_port() -> Result<u16, DynamoDbError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(DynamoDbError::io("cannot find a free port"))?;
    Ok(listener.local_addr().map_err(DynamoDbError::io("cannot find a free port"))?.port())
}
