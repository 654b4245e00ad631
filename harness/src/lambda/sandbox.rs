//! One sandbox: the function's bootstrap binary as a child process with Lambda's
//! environment, its own Runtime API, its cgroups (freezer, memory limit, CFS quota) and its
//! own temporary directory.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use super::function::Function;
use super::logs::LogSink;
use super::runtime_api::{Received, RuntimeApi};

/// The cgroup v1 hierarchy root.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The controllers a sandbox uses.
const CONTROLLERS: [&str; 3] = ["freezer", "memory", "cpu"];
/// Our parent group under each controller.
const PARENT: &str = "lift-lambda";
/// The sandbox group's CFS weight (a plain process has 1024).
const SANDBOX_CPU_SHARES: u64 = 16 * 1024;
/// The CFS period.
const CFS_PERIOD_US: u64 = 100_000;
/// The memory group's limit.
const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
/// The memory group's limit of memory and swap together, present when swap is accounted.
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
/// How long a freeze may take before the sandbox counts as unfreezable: freezing takes
/// milliseconds, and a busy machine may stretch that.
const FREEZE_WAIT: Duration = Duration::from_secs(1);

/// Whether cgroups v1 can be written here; probed once, with one printed notice when not.
pub fn cgroups_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("LIFT_LAMBDA_NO_CGROUPS").is_some() {
            eprintln!("lift-harness lambda: LIFT_LAMBDA_NO_CGROUPS is set: sandboxes run without memory and CPU limits, frozen with SIGSTOP");
            return false;
        }
        let ok = CONTROLLERS.iter().all(|c| {
            let dir = Path::new(CGROUP_ROOT).join(c).join(PARENT);
            let ok = std::fs::create_dir_all(&dir).is_ok() && dir.join("cgroup.procs").exists();
            if ok {
                remove_stale_groups(&dir);
                if *c == "cpu" {
                    // The weight counts at each level: the parent competes with the machine.
                    let _ = std::fs::write(dir.join("cpu.shares"), SANDBOX_CPU_SHARES.to_string());
                }
            }
            ok
        });
        if !ok {
            eprintln!(
                "lift-harness lambda: cgroups v1 (freezer, memory, cpu) under {CGROUP_ROOT} are not writable: \
                 sandboxes run without memory and CPU limits, frozen with SIGSTOP/SIGCONT (run as root for the limits)"
            );
        }
        ok
    })
}

/// Whether a test that needs cgroups can run here. Where it cannot, the reason is written
/// to stderr past the test harness's capture (a passing run shows it), and with
/// `LIFT_REQUIRE_CGROUPS=1` in the environment (as CI sets it) the test fails instead.
///
/// # Examples
///
/// ```no_run
/// if !lift_harness::lambda::sandbox::cgroups_for_test("the memory limit test") {
///     return;
/// }
/// ```
pub fn cgroups_for_test(test: &str) -> bool {
    if cgroups_available() {
        return true;
    }
    let reason =
        format!("{test}: cgroups v1 (freezer, memory, cpu) under {CGROUP_ROOT} are not writable here");
    if std::env::var("LIFT_REQUIRE_CGROUPS").is_ok_and(|v| v == "1") {
        panic!("{reason}, and LIFT_REQUIRE_CGROUPS=1 requires them");
    }
    // Straight to the process's stderr: `eprintln!` inside a test is captured and shown only
    // when the test fails, and a skip is what must not go unseen.
    use std::io::Write;
    let _ =
        writeln!(std::io::stderr(), "SKIPPED {reason} (set LIFT_REQUIRE_CGROUPS=1 to make this a failure)");
    false
}

/// Whether the stock `aws` CLI runs here, for a test that drives it (the Invoke API as the CLI
/// calls it). Where it does not, the reason is written to stderr past the test harness's
/// capture and the test is skipped; with `LIFT_REQUIRE_CGROUPS=1`, the strictness CI runs with
/// (`.ci/run` sets it, and `.ci/tools` installs the CLI), the test fails instead.
///
/// # Examples
///
/// ```no_run
/// if !lift_harness::lambda::sandbox::aws_cli_for_test("the Invoke API through the aws CLI") {
///     return;
/// }
/// ```
pub fn aws_cli_for_test(test: &str) -> bool {
    tool_for_test(test, "aws", std::env::var("LIFT_REQUIRE_CGROUPS").is_ok_and(|v| v == "1"))
}

/// Whether `tool` runs here (`tool --version` starts); if not, fails when `required`, else
/// says the test is skipped where a passing run shows it.
fn tool_for_test(test: &str, tool: &str, required: bool) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if runs {
        return true;
    }
    let reason = format!("{test}: no `{tool}` on PATH (`bash .ci/tools` installs it)");
    if required {
        panic!("{reason}, and LIFT_REQUIRE_CGROUPS=1 (as CI runs) requires it");
    }
    use std::io::Write;
    let _ =
        writeln!(std::io::stderr(), "SKIPPED {reason} (set LIFT_REQUIRE_CGROUPS=1 to make this a failure)");
    false
}

/// Removes groups of sandboxes gone for a minute or more (a process that ended without
/// cleaning up, e.g. a test runtime shut down).
fn remove_stale_groups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60));
        let empty = std::fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
        if path.is_dir() && old && empty {
            let _ = std::fs::remove_dir(&path);
        }
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The bootstrap binary is missing or not executable.
    #[error("no executable bootstrap at {0}")]
    InvalidEntrypoint(PathBuf),
    /// The process or its Runtime API could not start.
    #[error("the sandbox could not start: {0}")]
    Io(#[from] std::io::Error),
}

/// A sandbox's cgroups.
#[derive(Debug, Clone)]
struct Cgroup {
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    fn create(id: &str, function: &Function) -> std::io::Result<Self> {
        let dirs: Vec<PathBuf> =
            CONTROLLERS.iter().map(|c| Path::new(CGROUP_ROOT).join(c).join(PARENT).join(id)).collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir)?;
        }
        set_memory_limit(&dirs[1], u64::from(function.memory_mb) * 1024 * 1024)?;
        std::fs::write(dirs[2].join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
        std::fs::write(dirs[2].join("cpu.cfs_quota_us"), function.cpu_quota_us(CFS_PERIOD_US).to_string())?;
        // On Lambda the share is the sandbox's own; on a shared machine a high weight lets
        // the sandbox take its share from busy neighbours, so the quota is what limits it.
        std::fs::write(dirs[2].join("cpu.shares"), SANDBOX_CPU_SHARES.to_string())?;
        Ok(Self { dirs })
    }

    fn read(&self, controller: usize, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dirs[controller].join(file)).ok()
    }

    /// The processes in any of the sandbox's groups.
    fn procs(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|procs| procs.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<_>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the groups, then thaws them: a frozen process takes its
    /// SIGKILL only once thawed. A process that left the bootstrap's process group (`setsid`)
    /// is still here.
    fn kill_all(&self) {
        let pids: Vec<String> = self.procs().iter().map(u32::to_string).collect();
        send_signal("-KILL", &pids);
        let _ = std::fs::write(self.dirs[0].join("freezer.state"), "THAWED");
    }

    /// Removes the groups, once every process in them has died.
    fn remove(&self) {
        for _ in 0..300 {
            if self.dirs.iter().all(|d| std::fs::remove_dir(d).is_ok() || !d.exists()) {
                return;
            }
            // A group still holding a process refuses removal: the kill is asynchronous, and
            // a process may have forked after the group was read.
            self.kill_all();
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!(group = %self.dirs[0].display(), pids = ?self.procs(), "a sandbox's cgroup outlived its processes' kill");
    }
}

/// Limits the memory group in `dir` to `bytes`, swap included where the kernel accounts for
/// swap (`memory.memsw.limit_in_bytes`): Lambda has no swap, so a function over its memory
/// size is killed there, not swapped out.
fn set_memory_limit(dir: &Path, bytes: u64) -> std::io::Result<()> {
    let memsw = dir.join(MEMSW_LIMIT);
    if !memsw.exists() {
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            tracing::debug!(
                group = %dir.display(),
                "no {MEMSW_LIMIT} (swap accounting is off): the memory limit does not cover swap"
            );
        });
        return std::fs::write(dir.join(MEMORY_LIMIT), bytes.to_string());
    }
    let current = std::fs::read_to_string(dir.join(MEMORY_LIMIT)).ok().and_then(|s| s.trim().parse().ok());
    for file in limit_write_order(current, bytes) {
        std::fs::write(dir.join(file), bytes.to_string())?;
    }
    Ok(())
}

/// The order to write the memory and memory+swap limits in, moving both from a memory limit
/// of `current` to `new`. The kernel refuses a memory limit above the memory+swap limit and a
/// memory+swap limit below the memory limit, so lowering sets the memory limit first and
/// raising sets memory+swap first. An unknown current limit is taken as unlimited (a new group).
fn limit_write_order(current: Option<u64>, new: u64) -> [&'static str; 2] {
    if new <= current.unwrap_or(u64::MAX) {
        [MEMORY_LIMIT, MEMSW_LIMIT]
    } else {
        [MEMSW_LIMIT, MEMORY_LIMIT]
    }
}

/// How a sandbox's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit status.
    pub status: ExitStatus,
    /// Whether the memory cgroup's OOM killer killed it.
    pub out_of_memory: bool,
    /// The memory cgroup's peak usage, read before the group is removed.
    pub peak_bytes: Option<u64>,
}

impl Exit {
    /// The text Lambda puts after `Runtime exited with error: `.
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(9)) => "signal: killed".to_owned(),
            (None, Some(6)) => "signal: aborted (core dumped)".to_owned(),
            (None, Some(11)) => "signal: segmentation fault (core dumped)".to_owned(),
            (None, Some(sig)) => format!("signal: {sig}"),
            (None, None) => "unknown".to_owned(),
        }
    }
}

/// Where the sandboxes' own temporary directories are made: `lift-lambda` in the host's
/// temporary directory.
fn tmp_root() -> PathBuf {
    std::env::temp_dir().join("lift-lambda")
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// The sandbox id.
    pub id: String,
    /// Its log stream name.
    pub stream: String,
    /// When the process was spawned.
    pub started: Instant,
    /// The sandbox's own temporary directory, its `TMPDIR`: Lambda gives each execution
    /// environment a `/tmp` of its own, kept across its invocations and empty in a new one.
    /// Removed when the sandbox ends.
    pub tmp: PathBuf,
    pub(crate) api: RuntimeApi,
    pub(crate) events: mpsc::UnboundedReceiver<Received>,
    pub(crate) exit: watch::Receiver<Option<Exit>>,
    pid: u32,
    cgroup: Option<Cgroup>,
    kill: Option<oneshot::Sender<()>>,
    frozen: bool,
}

impl Sandbox {
    /// Spawns `function`'s bootstrap with Lambda's environment, in its cgroups when
    /// available; its output goes to `sink`.
    pub async fn spawn(function: &Function, sink: &LogSink) -> Result<Self, SpawnError> {
        Self::spawn_with(function, sink, cgroups_available()).await
    }

    /// [`Sandbox::spawn`], in cgroups only if `with_cgroups` (tests take the path without).
    async fn spawn_with(function: &Function, sink: &LogSink, with_cgroups: bool) -> Result<Self, SpawnError> {
        if !is_executable(&function.bin) {
            return Err(SpawnError::InvalidEntrypoint(function.bin.clone()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let date = time::OffsetDateTime::now_utc();
        let stream = format!(
            "{:04}/{:02}/{:02}/[{}]{id}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            function.version
        );
        let (api, events) = RuntimeApi::start().await?;
        let tmp = tmp_root().join(&id);
        std::fs::create_dir_all(&tmp)?;
        let cgroup = match with_cgroups.then(|| Cgroup::create(&id, function)).transpose() {
            Ok(cgroup) => cgroup,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(err.into());
            }
        };

        let mut cmd = match &cgroup {
            // The shell joins the groups, then execs the bootstrap under the same pid, so the
            // process is limited from its first instruction.
            Some(cg) => {
                let joins: Vec<String> =
                    cg.dirs.iter().map(|d| format!("echo $$ > {}/cgroup.procs", d.display())).collect();
                let mut cmd = tokio::process::Command::new("/bin/sh");
                cmd.arg("-c").arg(format!("{} && exec \"$0\"", joins.join(" && "))).arg(&function.bin);
                cmd
            }
            None => tokio::process::Command::new(&function.bin),
        };
        let task_root = function.bin.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        cmd.env_clear()
            .envs(lambda_env(function, &api.host(), &stream, &task_root, &tmp))
            // After Lambda's own: build refuses the reserved keys, and the others Lambda sets
            // (`TZ`, `LANG`, `PATH`, `LD_LIBRARY_PATH`) a function may change.
            .envs(function.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&tmp);
                if let Some(cg) = cgroup {
                    std::thread::spawn(move || cg.remove());
                }
                return Err(err.into());
            }
        };
        let pid = child.id().unwrap_or_default();
        if let Some(out) = child.stdout.take() {
            pump(out, sink.clone(), function.name.clone(), stream.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, sink.clone(), function.name.clone(), stream.clone());
        }
        let (exit_tx, exit) = watch::channel(None);
        let (kill, kill_rx) = oneshot::channel::<()>();
        let watched = cgroup.clone();
        let watched_tmp = tmp.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    kill_environment(pid, watched.as_ref());
                    child.wait().await
                }
            };
            // The environment ends with its bootstrap, as on Lambda: a process it started (a
            // shell's child, a helper) dies with it and writes no more to its log stream.
            kill_environment(pid, watched.as_ref());
            let _ = std::fs::remove_dir_all(&watched_tmp);
            let out_of_memory = watched
                .as_ref()
                .and_then(|cg| cg.read(1, "memory.oom_control"))
                .map(|s| oom_kills(&s) > 0)
                .unwrap_or(false);
            // Read before the group goes: the invocation's REPORT needs the peak after the
            // process has died (an OOM kill above all).
            let peak_bytes = watched
                .as_ref()
                .and_then(|cg| cg.read(1, "memory.max_usage_in_bytes"))
                .and_then(|b| b.trim().parse::<u64>().ok());
            if let Ok(status) = status {
                let _ = exit_tx.send(Some(Exit { status, out_of_memory, peak_bytes }));
            }
            if let Some(cg) = watched {
                std::thread::spawn(move || cg.remove());
            }
        });
        Ok(Self { id, stream, started, tmp, api, events, exit, pid, cgroup, kill: Some(kill), frozen: false })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How the process ended, once it has.
    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Whether cgroup limits apply to this sandbox.
    pub fn limited(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Stops every thread of the sandbox (cgroup freezer, else SIGSTOP of its group).
    ///
    /// # Errors
    ///
    /// The freezer could not be written or read, its group did not reach `FROZEN` within
    /// a second (a task that cannot be frozen keeps it `FREEZING`), or the `SIGSTOP`
    /// could not be sent. The sandbox may then still run, and is not marked frozen: kill it
    /// rather than keep it.
    pub async fn freeze(&mut self) -> std::io::Result<()> {
        if self.frozen {
            return Ok(());
        }
        match &self.cgroup {
            Some(cg) => {
                let state = cg.dirs[0].join("freezer.state");
                tokio::fs::write(&state, "FROZEN").await?;
                let until = Instant::now() + FREEZE_WAIT;
                loop {
                    let now = tokio::fs::read_to_string(&state).await?;
                    if now.trim() == "FROZEN" {
                        break;
                    }
                    if Instant::now() >= until {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("{} still reads {} after {FREEZE_WAIT:?}", state.display(), now.trim()),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            None => {
                if !signal_group(self.pid, "-STOP") {
                    return Err(std::io::Error::other(format!(
                        "SIGSTOP of process group {} failed",
                        self.pid
                    )));
                }
            }
        }
        self.frozen = true;
        Ok(())
    }

    /// Lets the sandbox run again.
    pub async fn thaw(&mut self) {
        if !self.frozen {
            return;
        }
        match &self.cgroup {
            Some(cg) => {
                let _ = tokio::fs::write(cg.dirs[0].join("freezer.state"), "THAWED").await;
            }
            None => {
                signal_group(self.pid, "-CONT");
            }
        }
        self.frozen = false;
    }

    /// Whether the sandbox is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The sandbox's peak memory in MB (cgroup `memory.max_usage_in_bytes`, else the
    /// process's `VmHWM`).
    pub fn max_memory_used_mb(&self) -> u64 {
        const MB: u64 = 1024 * 1024;
        if let Some(bytes) = self.cgroup.as_ref().and_then(|cg| cg.read(1, "memory.max_usage_in_bytes")) {
            if let Ok(bytes) = bytes.trim().parse::<u64>() {
                return bytes.div_ceil(MB);
            }
        }
        // The process is gone and its group with it: the peak the exit watcher read.
        if let Some(bytes) = self.exit.borrow().and_then(|e| e.peak_bytes) {
            return bytes.div_ceil(MB);
        }
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .map(|kb: u64| kb.div_ceil(1024))
            .unwrap_or(0)
    }

    /// Time the CFS quota has held the sandbox back so far (`cpu.stat` `throttled_time`).
    pub fn cpu_throttled(&self) -> Duration {
        let ns = self
            .cgroup
            .as_ref()
            .and_then(|cg| cg.read(2, "cpu.stat"))
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("throttled_time ").and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0);
        Duration::from_nanos(ns)
    }

    /// Kills the sandbox (frozen or not) and waits until its process is gone.
    pub async fn kill(&mut self) -> Option<Exit> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.frozen = false;
        let mut exit = self.exit.clone();
        let _ = exit.wait_for(Option::is_some).await;
        let exited = *exit.borrow();
        exited
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
            // Also here and now: the task that owns the child may be gone with its runtime.
            // Once the bootstrap has exited, that task has killed its process group (whose id
            // may since have been reused); its cgroup still tells which processes are its own.
            if self.exited().is_none() {
                kill_environment(self.pid, self.cgroup.as_ref());
            } else if let Some(cg) = &self.cgroup {
                cg.kill_all();
            }
            let _ = std::fs::remove_dir_all(&self.tmp);
            if let Some(cg) = self.cgroup.clone() {
                std::thread::spawn(move || cg.remove());
            }
        }
    }
}

/// Copies a pipe into the log, line by line, until the process closes it. Lines are read as
/// bytes and converted lossily: a line that is not UTF-8 must not end the copy, or every later
/// line (EMF metrics, errors) would be lost and the function's next write would fail on a pipe
/// nobody reads any more.
fn pump<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    pipe: R,
    sink: LogSink,
    function: String,
    stream: String,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => sink.push(&function, &stream, log_text(&line)),
            }
        }
    });
}

/// One line of output as log text: without its `\n` or `\r\n`, bytes that are not UTF-8
/// replaced by U+FFFD.
fn log_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// The environment Lambda gives an OS-only runtime (`provided.al2023`).
fn lambda_env(
    function: &Function,
    runtime_api: &str,
    stream: &str,
    task_root: &Path,
    tmp: &Path,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", function.version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", function.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", function.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", function.region.clone()),
        ("AWS_DEFAULT_REGION", function.region.clone()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
        // The sandbox's own `/tmp`: without a mount namespace the path `/tmp` stays the
        // host's, so the directory is handed over the way programs look for one.
        ("TMPDIR", tmp.display().to_string()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
        ("LD_LIBRARY_PATH", "/lib64:/usr/lib64:/opt/lib".to_owned()),
        // The execution role's credentials are the function's configured ones, never the
        // harness's own: a developer's real credentials would let code pass here that the role
        // denies on Lambda, and would hand their secret to any bootstrap.
        ("AWS_ACCESS_KEY_ID", function.credentials.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", function.credentials.secret_access_key.clone()),
    ];
    if let Some(token) = &function.credentials.session_token {
        env.push(("AWS_SESSION_TOKEN", token.clone()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// `oom_kill N` from `memory.oom_control`.
fn oom_kills(oom_control: &str) -> u64 {
    oom_control
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Kills every process of a sandbox whose bootstrap is `pid`: its process group (the spawn
/// makes the bootstrap a group leader) and, with cgroups, every process in its groups. Frozen
/// or stopped processes are let run afterwards, so that they take the SIGKILL.
fn kill_environment(pid: u32, cgroup: Option<&Cgroup>) {
    signal_group(pid, "-KILL");
    match cgroup {
        Some(cg) => cg.kill_all(),
        None => {
            signal_group(pid, "-CONT");
        }
    }
}

/// Sends `signal` (e.g. `-STOP`) to the process group led by `pid`, without unsafe code;
/// whether it was delivered.
fn signal_group(pid: u32, signal: &str) -> bool {
    pid != 0 && send_signal(signal, &[format!("-{pid}")])
}

/// Sends `signal` to `targets`, `kill`'s operands (a pid, or `-pgid` for a process group);
/// whether `kill` delivered it to every target.
fn send_signal(signal: &str, targets: &[String]) -> bool {
    if targets.is_empty() {
        return true;
    }
    std::process::Command::new("kill")
        .arg(signal)
        .arg("--")
        .args(targets)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_count_is_read_from_oom_control() {
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 2);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    #[test]
    fn lowering_sets_the_memory_limit_first_and_raising_sets_memory_and_swap_first() {
        assert_eq!(limit_write_order(None, 128 << 20), [MEMORY_LIMIT, MEMSW_LIMIT]);
        assert_eq!(
            limit_write_order(Some(9_223_372_036_854_771_712), 128 << 20),
            [MEMORY_LIMIT, MEMSW_LIMIT]
        );
        assert_eq!(limit_write_order(Some(512 << 20), 128 << 20), [MEMORY_LIMIT, MEMSW_LIMIT]);
        assert_eq!(limit_write_order(Some(128 << 20), 512 << 20), [MEMSW_LIMIT, MEMORY_LIMIT]);
    }

    /// A directory standing in for a memory group, with `files` in it.
    fn fake_group(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lift-memcg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in files {
            std::fs::write(dir.join(name), value).unwrap();
        }
        dir
    }

    #[test]
    fn the_memory_limit_covers_swap_when_swap_is_accounted() {
        let unlimited = "9223372036854771712\n";
        let dir = fake_group(&[(MEMORY_LIMIT, unlimited), (MEMSW_LIMIT, unlimited)]);
        set_memory_limit(&dir, 256 << 20).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!((read(MEMORY_LIMIT), read(MEMSW_LIMIT)), ("268435456".into(), "268435456".into()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_swap_accounting_only_the_memory_limit_is_set() {
        let dir = fake_group(&[(MEMORY_LIMIT, "9223372036854771712\n")]);
        set_memory_limit(&dir, 256 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(MEMORY_LIMIT)).unwrap(), "268435456");
        assert!(!dir.join(MEMSW_LIMIT).exists(), "no memsw file is made up");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_real_memory_group_takes_both_limits_raised_and_lowered() {
        if !cgroups_for_test("a_real_memory_group_takes_both_limits_raised_and_lowered") {
            return;
        }
        let dir = Path::new(CGROUP_ROOT)
            .join("memory")
            .join(PARENT)
            .join(format!("test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let swap_accounted = dir.join(MEMSW_LIMIT).exists();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().parse::<u64>().unwrap();
        let mut results = Vec::new();
        for bytes in [128u64 << 20, 512 << 20, 64 << 20] {
            let set = set_memory_limit(&dir, bytes);
            results.push((bytes, set.is_ok(), read(MEMORY_LIMIT), swap_accounted.then(|| read(MEMSW_LIMIT))));
        }
        std::fs::remove_dir(&dir).unwrap();
        for (bytes, ok, memory, memsw) in results {
            assert!(ok, "the kernel took {bytes}");
            assert_eq!(memory, bytes);
            assert!(memsw.is_none_or(|memsw| memsw == bytes), "memsw {memsw:?} for {bytes}");
        }
        if !swap_accounted {
            eprintln!("the swap half is not exercised: no {MEMSW_LIMIT} here");
        }
    }

    /// A sandbox whose bootstrap starts two helpers that would live 30 s (one in its process
    /// group, one that left it with `setsid`, the latter only where the cgroup can find it),
    /// then runs `tail`; and the helpers' pids.
    async fn sandbox_with_helpers(with_cgroups: bool, tail: &str) -> (Sandbox, Vec<u32>) {
        let dir = std::env::temp_dir().join(format!("lift-helpers-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let setsid = if with_cgroups { "setsid sleep 30 &\necho $! >> pids\n" } else { "" };
        let bootstrap = dir.join("bootstrap");
        std::fs::write(
            &bootstrap,
            format!("#!/bin/sh\ntrap '' HUP\nsleep 30 &\necho $! >> pids\n{setsid}{tail}\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
        let function = Function::builder("helpers", &bootstrap).build().unwrap();
        let sandbox = Sandbox::spawn_with(&function, &LogSink::new(false), with_cgroups).await.unwrap();
        let expected = if with_cgroups { 2 } else { 1 };
        for _ in 0..200 {
            let pids: Vec<u32> = std::fs::read_to_string(dir.join("pids"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.len() == expected {
                let _ = std::fs::remove_dir_all(&dir);
                return (sandbox, pids);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the helpers did not start");
    }

    /// Whether `pid` still runs (a zombie waiting for its reaper does not).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    /// The pids among `pids` still running after up to 2 s.
    async fn survivors(pids: &[u32]) -> Vec<u32> {
        for _ in 0..200 {
            if !pids.iter().any(|&pid| running(pid)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pids.iter().copied().filter(|&pid| running(pid)).collect()
    }

    /// The cgroup modes this machine can run: without cgroups always, with them where they
    /// can be written (a skip of that half is printed, and fails under LIFT_REQUIRE_CGROUPS=1).
    fn modes(test: &str) -> Vec<bool> {
        if cgroups_for_test(&format!("{test} (with cgroups)")) {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    #[tokio::test]
    async fn killing_a_frozen_sandbox_kills_every_process_its_bootstrap_started() {
        let mut outcomes = Vec::new();
        for with_cgroups in modes("killing_a_frozen_sandbox_kills_every_process_its_bootstrap_started") {
            let (mut sandbox, pids) = sandbox_with_helpers(with_cgroups, "exec sleep 30").await;
            let group = sandbox.cgroup.clone();
            sandbox.freeze().await.unwrap();
            assert!(sandbox.kill().await.is_some());
            let survivors = survivors(&pids).await;
            let mut removed = true;
            if let Some(group) = group {
                tokio::time::sleep(Duration::from_millis(500)).await;
                removed = group.dirs.iter().all(|d| !d.exists());
            }
            outcomes.push((with_cgroups, survivors, removed));
        }
        assert!(
            outcomes.iter().all(|(_, survivors, removed)| survivors.is_empty() && *removed),
            "{outcomes:?}"
        );
    }

    #[tokio::test]
    async fn a_bootstrap_that_exits_takes_the_processes_it_started_with_it() {
        let mut outcomes = Vec::new();
        for with_cgroups in modes("a_bootstrap_that_exits_takes_the_processes_it_started_with_it") {
            let (sandbox, pids) = sandbox_with_helpers(with_cgroups, "exit 0").await;
            let mut exit = sandbox.exit.clone();
            let _ = exit.wait_for(Option::is_some).await;
            outcomes.push((with_cgroups, survivors(&pids).await));
        }
        assert!(outcomes.iter().all(|(_, survivors)| survivors.is_empty()), "{outcomes:?}");
    }

    #[test]
    fn a_missing_tool_skips_the_test_unless_tools_are_required() {
        // The skip this prints names a tool missing on purpose.
        let test = "a_missing_tool_skips_the_test_unless_tools_are_required";
        let missing = "lift-no-such-tool-on-path";
        assert!(!tool_for_test(test, missing, false));
        let required = std::panic::catch_unwind(|| tool_for_test(test, missing, true));
        let message = required.expect_err("a missing tool fails where tools are required");
        let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("no `lift-no-such-tool-on-path` on PATH"), "{message}");
        assert!(tool_for_test(test, "sh", true), "a tool that runs is there");
    }

    #[test]
    fn output_lines_that_are_not_utf8_are_kept_lossily() {
        assert_eq!(log_text(b"after\n"), "after");
        assert_eq!(log_text(b"crlf\r\n"), "crlf");
        assert_eq!(log_text(b"\xff\n"), "\u{fffd}");
        assert_eq!(log_text(b"no newline at the end"), "no newline at the end");
    }

    #[test]
    fn exit_descriptions_match_lambdas_wording() {
        use std::os::unix::process::ExitStatusExt;
        let killed = Exit { status: ExitStatus::from_raw(9), out_of_memory: false, peak_bytes: None };
        assert_eq!(killed.describe(), "signal: killed");
        let code = Exit { status: ExitStatus::from_raw(1 << 8), out_of_memory: false, peak_bytes: None };
        assert_eq!(code.describe(), "exit status 1");
    }
}
