//! One DynamoDB Local JVM shared by every test process of a run.
//!
//! `cargo test` runs test binaries one after the other and nextest runs a process per test,
//! so the JVM outlives the process that started it. A state directory in the cache holds:
//!
//! - `lock`: an exclusive file lock around attaching and starting;
//! - `instance.json`: `{id, pid, port}` of the running JVM, written once it answers;
//! - `users-<id>/<pid>.<nonce>`: one file per handle of a process using that JVM;
//! - `dynamodb-<id>.log` and `watchdog.log`.
//!
//! A process attaches to a live instance (pid alive and the port answers as DynamoDB),
//! otherwise starts one. The JVM runs under `watchdog.sh`, which stops it once no registered
//! process is alive for `LIFT_DYNAMODB_LINGER_SECS`; nothing depends on `Drop`, which Rust
//! never runs for statics. Dropping a handle (not the process-wide one) unregisters it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{jar, probe, DynamoDbError};

const WATCHDOG: &str = include_str!("watchdog.sh");
const STATE: &str = "instance.json";
/// Ports to try when another process grabs the free port before the JVM binds it.
const PORT_ATTEMPTS: usize = 3;

/// What `instance.json` says about the running JVM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceState {
    /// Names the users directory; lets a watchdog tell its state file from a newer one.
    pub(crate) id: String,
    /// The JVM's pid.
    pub(crate) pid: u32,
    /// The port DynamoDB Local listens on.
    pub(crate) port: u16,
}

impl InstanceState {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// How long to wait for a start, and how long an unused JVM lingers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) start_timeout: Duration,
    pub(crate) linger: Duration,
}

/// A process's registration as a user of a JVM; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct Registration {
    path: PathBuf,
}

impl Registration {
    fn create(users: &Path) -> Result<Self, DynamoDbError> {
        fs::create_dir_all(users).map_err(DynamoDbError::io(format!("cannot create {}", users.display())))?;
        let path = users.join(format!("{}.{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        File::create(&path).map_err(DynamoDbError::io(format!("cannot create {}", path.display())))?;
        Ok(Self { path })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A JVM this process uses, and whether this process started it.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) state: InstanceState,
    pub(crate) started: bool,
    pub(crate) registration: Registration,
}

/// Attaches to the live JVM of this cache, or starts one. Blocking.
pub(crate) fn acquire(cache: &Path, timing: Timing) -> Result<Attached, DynamoDbError> {
    let run = cache.join("run");
    fs::create_dir_all(&run).map_err(DynamoDbError::io(format!("cannot create {}", run.display())))?;
    let lock_path = run.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(DynamoDbError::io(format!("cannot open {}", lock_path.display())))?;
    fs2::FileExt::lock_exclusive(&lock)
        .map_err(DynamoDbError::io(format!("cannot lock {}", lock_path.display())))?;
    // The lock is released when `lock` is dropped, on every return below.
    for _ in 0..3 {
        let Some(state) = read_state(&run) else { break };
        if !pid_alive(state.pid) || !probe::answers("127.0.0.1", state.port, Duration::from_secs(5)) {
            tracing::info!(pid = state.pid, port = state.port, "dynamodb local in {} is gone", run.display());
            let _ = fs::remove_file(run.join(STATE));
            break;
        }
        // A watchdog that is stopping removes the users directory; look again.
        let Ok(registration) = Registration::create(&users_dir(&run, &state.id)) else { continue };
        // A watchdog retires the state file before its last look at the users; if the file
        // is still there now, it has seen or will see our registration.
        if read_state(&run).as_ref() == Some(&state) {
            tracing::debug!(port = state.port, "attached to dynamodb local");
            return Ok(Attached { state, started: false, registration });
        }
        drop(registration);
        let _ = fs::remove_dir(users_dir(&run, &state.id));
    }
    let java = jar::find_java()?;
    let jar_dir = jar::ensure_jar(cache)?;
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        match start(&run, &java, &jar_dir, timing) {
            Ok(attached) => return Ok(attached),
            Err(Start::PortTaken(err)) => last = Some(err),
            Err(Start::Failed(err)) => return Err(err),
        }
    }
    Err(last.expect("at least one attempt"))
}

enum Start {
    PortTaken(DynamoDbError),
    Failed(DynamoDbError),
}

/// Starts a JVM under the watchdog and waits until it answers; the caller holds the lock.
fn start(run: &Path, java: &Path, jar_dir: &Path, timing: Timing) -> Result<Attached, Start> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let port = free_port().map_err(Start::Failed)?;
    // Registered before the watchdog runs, so even a zero linger does not stop the JVM early.
    let registration = Registration::create(&users_dir(run, &id)).map_err(Start::Failed)?;
    let log = run.join(format!("dynamodb-{id}.log"));
    let pid = spawn_watchdog(run, java, jar_dir, port, &id, timing.linger).map_err(Start::Failed)?;
    let began = Instant::now();
    let deadline = began + timing.start_timeout;
    loop {
        if probe::answers("127.0.0.1", port, Duration::from_secs(1)) {
            break;
        }
        if !pid_alive(pid) {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let err = DynamoDbError::Exited { log: log.clone(), tail: jar::last_lines(&text, 5) };
            return Err(if text.contains("Address already in use") || text.contains("BindException") {
                Start::PortTaken(err)
            } else {
                Start::Failed(err)
            });
        }
        if Instant::now() >= deadline {
            kill(pid);
            return Err(Start::Failed(DynamoDbError::StartTimeout {
                endpoint: format!("http://127.0.0.1:{port}"),
                secs: timing.start_timeout.as_secs(),
                log: log.display().to_string(),
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let state = InstanceState { id, pid, port };
    write_state(run, &state).map_err(Start::Failed)?;
    tracing::info!(port, pid, secs = began.elapsed().as_secs_f32(), "started dynamodb local (jar)");
    Ok(Attached { state, started: true, registration })
}

/// Runs `watchdog.sh` in its own process group; returns the JVM pid it prints.
fn spawn_watchdog(
    run: &Path,
    java: &Path,
    jar_dir: &Path,
    port: u16,
    id: &str,
    linger: Duration,
) -> Result<u32, DynamoDbError> {
    let log_path = run.join("watchdog.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(DynamoDbError::io(format!("cannot open {}", log_path.display())))?;
    // Run from a file, so `ps` shows what it is. Written whole (temp file, then rename): a
    // running shell keeps reading its own, older copy.
    let script = run.join("watchdog.sh");
    let tmp = run.join(format!("watchdog.sh.tmp-{}", uuid::Uuid::new_v4().simple()));
    fs::write(&tmp, WATCHDOG)
        .and_then(|()| fs::rename(&tmp, &script))
        .map_err(DynamoDbError::io(format!("cannot write {}", script.display())))?;
    let mut child = Command::new("sh")
        .arg(&script)
        .arg(java)
        .arg(jar_dir)
        .arg(port.to_string())
        .arg(run)
        .arg(id)
        .arg(linger.as_secs().to_string())
        .args(super::dedicated::java_options())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own process group: Ctrl-C in the terminal stops the tests, not the shared JVM,
        // which the watchdog stops once the tests are gone.
        .process_group(0)
        .spawn()
        .map_err(DynamoDbError::io("cannot run sh for the dynamodb local watchdog"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let read = BufReader::new(stdout).read_line(&mut line);
    // The watchdog is not waited for: it outlives this process by design.
    match read.ok().and_then(|_| line.trim().parse().ok()) {
        Some(pid) => Ok(pid),
        None => Err(DynamoDbError::Exited {
            log: log_path,
            tail: format!("the watchdog did not report a pid (printed {:?})", line.trim()),
        }),
    }
}

fn users_dir(run: &Path, id: &str) -> PathBuf {
    run.join(format!("users-{id}"))
}

fn read_state(run: &Path) -> Option<InstanceState> {
    let text = fs::read_to_string(run.join(STATE)).ok()?;
    let state = InstanceState::parse(&text);
    if state.is_none() {
        tracing::warn!("ignoring unreadable {}", run.join(STATE).display());
    }
    state
}

/// Writes the state file whole (temp file, then rename), so readers never see half of it.
fn write_state(run: &Path, state: &InstanceState) -> Result<(), DynamoDbError> {
    let path = run.join(STATE);
    let tmp = run.join(format!("{STATE}.tmp-{}", std::process::id()));
    let json = serde_json::to_string(state).expect("state serializes");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(json.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(DynamoDbError::io(format!("cannot write {}", path.display())))
}

fn free_port() -> Result<u16, DynamoDbError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(DynamoDbError::io("cannot find a free port"))?;
    let port = listener.local_addr().map_err(DynamoDbError::io("cannot find a free port"))?.port();
    Ok(port)
}

/// Whether a process runs. Zombies are dead: an orphaned JVM may never be reaped.
pub(crate) fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                !matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('Z' | 'X'))
            }
            Err(_) => false,
        };
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lift-instance-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Polls a condition for up to `secs` seconds.
    fn eventually(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        condition()
    }

    /// A stand-in for `java` that runs until killed, so the watchdog can be tested alone.
    fn fake_java(dir: &Path) -> PathBuf {
        let java = dir.join("java");
        fs::write(&java, "#!/bin/sh\nexec sleep 300\n").unwrap();
        fs::set_permissions(&java, fs::Permissions::from_mode(0o755)).unwrap();
        java
    }

    #[test]
    fn state_files_parse() {
        let state = InstanceState { id: "abc".into(), pid: 42, port: 8000 };
        let text = serde_json::to_string(&state).unwrap();
        // The watchdog greps for this exact shape.
        assert_eq!(text, r#"{"id":"abc","pid":42,"port":8000}"#);
        assert_eq!(InstanceState::parse(&text), Some(state));
        assert_eq!(InstanceState::parse(r#"{"id":"abc","pid":42}"#), None);
        assert_eq!(InstanceState::parse("garbage"), None);
        assert_eq!(InstanceState::parse(r#"{"id":"a","pid":-1,"port":1}"#), None);
    }

    #[test]
    fn state_files_are_written_whole_and_read_back() {
        let run = temp_dir();
        assert_eq!(read_state(&run), None);
        let state = InstanceState { id: "x1".into(), pid: 7, port: 9 };
        write_state(&run, &state).unwrap();
        assert_eq!(read_state(&run), Some(state));
        fs::write(run.join(STATE), "{").unwrap();
        assert_eq!(read_state(&run), None);
        fs::remove_dir_all(run).unwrap();
    }

    #[test]
    fn dead_and_zombie_processes_are_not_alive() {
        assert!(pid_alive(std::process::id()));
        let mut child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id();
        // Not waited for yet: a zombie.
        assert!(eventually(5, || !pid_alive(pid)), "zombie {pid} counted as alive");
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[test]
    fn registrations_are_removed_on_drop() {
        let users = temp_dir().join("users-x");
        let registration = Registration::create(&users).unwrap();
        let path = registration.path.clone();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{}.", std::process::id())), "{name}");
        assert!(path.exists());
        drop(registration);
        assert!(!path.exists());
        fs::remove_dir_all(users.parent().unwrap()).unwrap();
    }

    #[test]
    fn watchdog_stops_the_jvm_when_the_last_user_is_gone() {
        let run = temp_dir();
        let java = fake_java(&run);
        let id = "w1";
        // A user that is alive for a moment.
        let mut user = Command::new("sleep").arg("1").spawn().unwrap();
        fs::create_dir_all(users_dir(&run, id)).unwrap();
        File::create(users_dir(&run, id).join(format!("{}.n", user.id()))).unwrap();
        let jvm = spawn_watchdog(&run, &java, &run, 1, id, Duration::from_secs(1)).unwrap();
        let state = InstanceState { id: id.into(), pid: jvm, port: 1 };
        write_state(&run, &state).unwrap();
        assert!(pid_alive(jvm));
        user.wait().unwrap();
        assert!(eventually(15, || !pid_alive(jvm)), "jvm {jvm} still runs without users");
        assert!(eventually(5, || !run.join(STATE).exists()), "state file left behind");
        assert!(eventually(5, || !users_dir(&run, id).exists()), "users dir left behind");
        fs::remove_dir_all(run).unwrap();
    }

    #[test]
    fn watchdog_keeps_the_jvm_while_a_user_lives() {
        let run = temp_dir();
        let java = fake_java(&run);
        let id = "w2";
        let users = users_dir(&run, id);
        fs::create_dir_all(&users).unwrap();
        File::create(users.join(format!("{}.n", std::process::id()))).unwrap();
        // A dead user is forgotten, the live one (this process) keeps the JVM.
        File::create(users.join("999999999.n")).unwrap();
        let jvm = spawn_watchdog(&run, &java, &run, 1, id, Duration::from_secs(0)).unwrap();
        assert!(eventually(5, || !users.join("999999999.n").exists()), "dead user kept");
        assert!(pid_alive(jvm), "jvm stopped although a user lives");
        kill(jvm);
        assert!(eventually(5, || !users.exists()), "watchdog did not exit with the jvm");
        assert!(run.join(format!("dynamodb-{id}.log")).exists(), "crash log removed");
        fs::remove_dir_all(run).unwrap();
    }

    #[test]
    fn watchdog_leaves_a_newer_state_file_alone() {
        let run = temp_dir();
        let java = fake_java(&run);
        let jvm = spawn_watchdog(&run, &java, &run, 1, "old", Duration::from_secs(0)).unwrap();
        let newer = InstanceState { id: "new".into(), pid: std::process::id(), port: 2 };
        write_state(&run, &newer).unwrap();
        assert!(eventually(15, || !pid_alive(jvm)), "unused jvm {jvm} not stopped");
        assert!(eventually(5, || !users_dir(&run, "old").exists()));
        assert_eq!(read_state(&run), Some(newer));
        fs::remove_dir_all(run).unwrap();
    }

    /// The shared JVM starts with the same options as a dedicated one (C1 only, serial GC,
    /// unless `LIFT_DYNAMODB_JAVA_OPTS` says otherwise), before `-jar`, where the JVM reads
    /// them: after it they would go to DynamoDB Local as its own arguments.
    #[test]
    fn the_watchdog_starts_the_jvm_with_the_harness_options() {
        let run = temp_dir();
        let java = run.join("java");
        fs::write(&java, "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\nexec sleep 300\n").unwrap();
        fs::set_permissions(&java, fs::Permissions::from_mode(0o755)).unwrap();
        let users = users_dir(&run, "opts");
        fs::create_dir_all(&users).unwrap();
        File::create(users.join(format!("{}.n", std::process::id()))).unwrap();
        let jvm = spawn_watchdog(&run, &java, &run, 1, "opts", Duration::from_secs(0)).unwrap();
        assert!(eventually(5, || run.join("args").exists()), "the fake java never ran");
        let args = fs::read_to_string(run.join("args")).unwrap();
        let jar = args.find("-jar DynamoDBLocal.jar").expect(&args);
        for option in super::super::dedicated::java_options() {
            let at = args.find(&option).unwrap_or_else(|| panic!("{option} missing: {args}"));
            assert!(at < jar, "{option} after -jar: {args}");
        }
        assert!(
            args.contains("-XX:TieredStopAtLevel=1") || std::env::var_os("LIFT_DYNAMODB_JAVA_OPTS").is_some()
        );
        kill(jvm);
        assert!(eventually(5, || !users.exists()), "watchdog did not exit with the jvm");
        fs::remove_dir_all(run).unwrap();
    }
}
