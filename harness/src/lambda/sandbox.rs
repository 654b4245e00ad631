//! One sandbox: the function's bootstrap binary as a child process with Lambda's
//! environment, its own Runtime API, its cgroups (freezer, memory limit, CFS quota, process
//! limit), its own temporary directory, an open-file limit, and, when the harness runs as
//! root, an unprivileged user of its own.
//!
//! Lambda's limits on an execution environment that no function configures are constants
//! here, with Lambda's documented values: [`FILE_DESCRIPTOR_LIMIT`], [`PROCESS_LIMIT`], and
//! the user a function runs as, one per function from [`SANDBOX_UID_BASE`] on
//! (`LIFT_LAMBDA_SANDBOX_USER=UID:GID` in the harness's environment chooses one for all). A sandbox's process starts as `/bin/sh`, which
//! joins the cgroups, sets the open-file limit, drops to the sandbox user through util-linux's
//! `setpriv` and execs the bootstrap: one process all along, limited from the bootstrap's first
//! instruction.
//!
//! The user makes what Lambda forbids fail here too: writing next to the bootstrap (Lambda's
//! `/var/task` is read-only), reading the harness user's private files (`/root/.aws`), binding
//! a port below 1024 (where the kernel keeps its default `ip_unprivileged_port_start`). The
//! task root is read-only to the sandbox only as far as its permissions say: there is no mount
//! namespace, so a directory the sandbox user may write stays writable, and so does the host's
//! `/tmp`. `setpriv` also sets `no_new_privs`, so a set-user-ID program (`sudo`, `su`) cannot
//! take the sandbox back to root. A harness running as root without a working `setpriv` starts
//! no sandbox (the invocation fails with `Runtime.Unknown`, naming util-linux) rather than
//! quietly running functions as root; `LIFT_LAMBDA_SANDBOX_USER=0:0` is the way to choose
//! root. A bootstrap the sandbox user may not read and execute, or whose directories it may
//! not search, is Lambda's `Runtime.InvalidEntrypoint`, with a warning that names the path in
//! the way.

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
/// The controllers a sandbox uses; a sandbox's group directories are in this order.
const CONTROLLERS: [&str; 4] = ["freezer", "memory", "cpu", "pids"];
// The index of each controller in `CONTROLLERS`, and of its group in a sandbox's `dirs`.
const FREEZER: usize = 0;
const MEMORY: usize = 1;
const CPU: usize = 2;
const PIDS: usize = 3;
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
/// How long a killed sandbox's output may take to reach the log: the pipes close as soon
/// as the last process holding them dies, so this bounds only a process that outlived it.
const PUMP_DRAIN_WAIT: Duration = Duration::from_secs(2);

/// The open files each process of a sandbox may have: Lambda's quota of 1,024 file
/// descriptors per execution environment, set as the soft and the hard `RLIMIT_NOFILE`, so
/// the function cannot raise it. A limit per process: a sandbox of several processes could
/// hold more in all, which Lambda would refuse.
pub const FILE_DESCRIPTOR_LIMIT: u64 = 1024;

/// The processes and threads a sandbox may run at once: Lambda's quota of 1,024 per execution
/// environment, the `pids.max` of the sandbox's pids cgroup (without cgroups, no limit). Not
/// an `RLIMIT_NPROC`: that counts every process of the user, across sandboxes and beyond, and
/// binds no process running as root.
pub const PROCESS_LIMIT: u64 = 1024;

/// The user and group ids `LIFT_LAMBDA_SANDBOX_USER` is documented with: 65534, `nobody` and
/// `nogroup` on most systems. Without that variable a harness running as root runs each
/// function as a user and group of its own, [`SANDBOX_UID_BASE`] onwards.
pub const SANDBOX_USER: (u32, u32) = (65534, 65534);

/// The first user id of the per-function sandbox users a harness running as root uses: the
/// first function it starts runs as `SANDBOX_UID_BASE:SANDBOX_UID_BASE`, the second as the
/// next id, and so on, used by number so that no named user need exist. Lambda runs a function
/// as an unprivileged user (`sbx_user1051`), never as root, and no two functions share an
/// execution environment; a user each keeps one function out of another's `/proc/<pid>/environ`
/// (its role's keys and secrets) and its `TMPDIR`. `LIFT_LAMBDA_SANDBOX_UID_BASE=N` in the
/// harness's environment moves the range (pick ids no real user or container range has).
/// `LIFT_LAMBDA_SANDBOX_USER=UID:GID` instead runs every sandbox as one user, e.g. one that may
/// read a project under a private home directory, giving up that separation; `0:0` runs
/// sandboxes as root, unlike Lambda.
///
/// A harness that does not run as root runs its sandboxes as its own user, and that isolates
/// little: a sandbox may read everything that user may (`~/.aws/credentials`), and read or
/// trace every other sandbox (their environments, role keys and `TMPDIR`s) and the user's
/// other processes. The harness's own `/proc/<pid>/environ` (a developer's real `AWS_*` keys:
/// the sandbox's environment is Lambda's, but its parent's is not) is closed to them either
/// way: before its first sandbox the harness makes itself non-dumpable
/// (`prctl(PR_SET_DUMPABLE, 0)`), which also keeps debuggers of the same user from attaching
/// to it. Run as root for the separation Lambda has: each function's user is its own.
pub const SANDBOX_UID_BASE: u32 = 900_000;

/// Whether cgroups v1 can be written here; probed once, with one printed notice when not.
pub fn cgroups_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("LIFT_LAMBDA_NO_CGROUPS").is_some() {
            eprintln!("lift-harness lambda: LIFT_LAMBDA_NO_CGROUPS is set: sandboxes run without memory, CPU and process limits, frozen with SIGSTOP");
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
                "lift-harness lambda: cgroups v1 ({}) under {CGROUP_ROOT} are not writable: \
                 sandboxes run without memory, CPU and process limits, frozen with SIGSTOP/SIGCONT (run as root for the limits)",
                CONTROLLERS.join(", ")
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
        format!("{test}: cgroups v1 ({}) under {CGROUP_ROOT} are not writable here", CONTROLLERS.join(", "));
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
        set_memory_limit(&dirs[MEMORY], u64::from(function.memory_mb) * 1024 * 1024)?;
        std::fs::write(dirs[CPU].join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
        std::fs::write(dirs[CPU].join("cpu.cfs_quota_us"), function.cpu_quota_us(CFS_PERIOD_US).to_string())?;
        // On Lambda the share is the sandbox's own; on a shared machine a high weight lets
        // the sandbox take its share from busy neighbours, so the quota is what limits it.
        std::fs::write(dirs[CPU].join("cpu.shares"), SANDBOX_CPU_SHARES.to_string())?;
        std::fs::write(dirs[PIDS].join("pids.max"), PROCESS_LIMIT.to_string())?;
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
        let _ = std::fs::write(self.dirs[FREEZER].join("freezer.state"), "THAWED");
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
        tracing::warn!(group = %self.dirs[FREEZER].display(), pids = ?self.procs(), "a sandbox's cgroup outlived its processes' kill");
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

/// Whom sandboxes run as, from the harness's own user and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SandboxUsers {
    /// As the harness runs: it is not root, or `LIFT_LAMBDA_SANDBOX_USER=0:0` asks for root.
    Harness,
    /// Every sandbox as these ids, which `LIFT_LAMBDA_SANDBOX_USER` names.
    Shared((u32, u32)),
    /// Each function as a user and group of its own: the base id plus the function's number.
    PerFunction(u32),
}

/// Whom sandboxes run as. Read once; a malformed `LIFT_LAMBDA_SANDBOX_USER` or
/// `LIFT_LAMBDA_SANDBOX_UID_BASE` fails every spawn, saying why.
fn sandbox_users() -> Result<SandboxUsers, String> {
    static USERS: OnceLock<Result<SandboxUsers, String>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            if effective_uid() != Some(0) {
                return Ok(SandboxUsers::Harness);
            }
            if let Ok(value) = std::env::var("LIFT_LAMBDA_SANDBOX_USER") {
                let user = parse_user(&value)?;
                return Ok(if user == (0, 0) { SandboxUsers::Harness } else { SandboxUsers::Shared(user) });
            }
            match std::env::var("LIFT_LAMBDA_SANDBOX_UID_BASE") {
                Ok(value) => value.trim().parse().map(SandboxUsers::PerFunction).map_err(|_| {
                    format!("LIFT_LAMBDA_SANDBOX_UID_BASE must be a user id in numbers (e.g. {SANDBOX_UID_BASE}), not {value:?}")
                }),
                Err(_) => Ok(SandboxUsers::PerFunction(SANDBOX_UID_BASE)),
            }
        })
        .clone()
}

/// The ids `function`'s sandboxes drop to, or `None` to run them as the harness runs. With
/// a user per function, a function's number is the order in which this process first
/// started it, so the ids of a name stay the same for the life of the process (all its
/// versions and every [`LocalLambda`](super::LocalLambda) in it) and two names never share.
fn sandbox_user(function: &str) -> Result<Option<(u32, u32)>, String> {
    match sandbox_users()? {
        SandboxUsers::Harness => Ok(None),
        SandboxUsers::Shared(user) => Ok(Some(user)),
        SandboxUsers::PerFunction(base) => {
            static NUMBERS: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
            let mut names = NUMBERS.get_or_init(Default::default).lock().expect("not poisoned");
            let number = match names.iter().position(|n| n == function) {
                Some(number) => number,
                None => {
                    names.push(function.to_owned());
                    names.len() - 1
                }
            };
            let id = u32::try_from(number)
                .ok()
                .and_then(|n| base.checked_add(n))
                .filter(|id| *id < u32::MAX)
                .ok_or_else(|| format!("no user id is left above LIFT_LAMBDA_SANDBOX_UID_BASE={base} for function {function}"))?;
            Ok(Some((id, id)))
        }
    }
}

/// `UID:GID`, both numbers.
fn parse_user(value: &str) -> Result<(u32, u32), String> {
    value
        .split_once(':')
        .and_then(|(uid, gid)| Some((uid.trim().parse().ok()?, gid.trim().parse().ok()?)))
        .ok_or_else(|| {
            format!("LIFT_LAMBDA_SANDBOX_USER must be UID:GID in numbers (e.g. 65534:65534), not {value:?}")
        })
}

/// This process's effective user id: the second number of `Uid:` in `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The absolute path of util-linux's `setpriv`, with which a sandbox started as root drops to
/// its user: the first on the harness's `PATH` or in the system's directories that answers
/// `--version`, looked up once. The wrapper names it by path because the sandbox gets Lambda's
/// `PATH`, which a function may change.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
                .map(|dir| dir.join("setpriv"))
                .filter(|p| p.is_absolute() && is_executable(p))
                .find(|p| {
                    std::process::Command::new(p)
                        .arg("--version")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .as_deref()
}

/// Why a sandbox cannot drop to `user` without `setpriv`.
fn no_setpriv((uid, gid): (u32, u32)) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "the harness runs as root, so its sandboxes run unprivileged as on Lambda, as {uid}:{gid}; dropping to \
             that user needs `setpriv` from util-linux, and none answers `setpriv --version` on PATH or in \
             /usr/bin, /bin, /usr/sbin, /sbin. Install util-linux (on Alpine, the setpriv package), or set \
             LIFT_LAMBDA_SANDBOX_USER=0:0 to run sandboxes as root, unlike Lambda"
        ),
    )
}

/// The open-file limit a sandbox gets: [`FILE_DESCRIPTOR_LIMIT`], or the harness's own hard
/// limit where that is lower (anyone may lower a limit; raising one takes
/// `CAP_SYS_RESOURCE`), which is said once.
fn file_descriptor_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let hard = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| hard_open_files(&l));
        match hard {
            Some(hard) if hard < FILE_DESCRIPTOR_LIMIT => {
                tracing::warn!(
                    "the harness may open only {hard} files (its hard RLIMIT_NOFILE): sandboxes get {hard}, not Lambda's {FILE_DESCRIPTOR_LIMIT}"
                );
                hard
            }
            _ => FILE_DESCRIPTOR_LIMIT,
        }
    })
}

/// The hard limit of `Max open files` in `/proc/<pid>/limits`; `None` when unlimited.
fn hard_open_files(limits: &str) -> Option<u64> {
    limits.lines().find_map(|l| l.strip_prefix("Max open files"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The `/bin/sh -c` script that makes the shell the sandbox: it joins the cgroups in `groups`,
/// sets the open-file limit to `nofile`, then execs the bootstrap (`$0`), through `setpriv`
/// (`$1`) as `user` when one is given. One process throughout, which keeps the bootstrap's pid
/// and process group, so the bootstrap is limited from its first instruction and nothing of
/// the wrapper stays behind.
fn wrapper_script(groups: &[PathBuf], nofile: u64, user: Option<(u32, u32)>) -> String {
    let mut steps: Vec<String> =
        groups.iter().map(|d| format!("echo $$ > {}/cgroup.procs", d.display())).collect();
    // Soft first: a hard limit below the soft one is refused.
    steps.push(format!("ulimit -Sn {nofile}"));
    steps.push(format!("ulimit -Hn {nofile}"));
    steps.push(match user {
        // `--no-new-privs`: no set-user-ID program takes the sandbox back to root.
        Some((uid, gid)) => {
            format!("exec \"$1\" --reuid={uid} --regid={gid} --clear-groups --no-new-privs -- \"$0\"")
        }
        None => "exec \"$0\"".to_owned(),
    });
    steps.join(" && ")
}

/// What keeps `user` from running `bin`, judged by permission bits (ACLs are not read): the
/// first directory on the way, from `/` down, that it cannot search, else `bin` itself if it
/// cannot read and execute it.
fn blocked_path(bin: &Path, (uid, gid): (u32, u32)) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let allows = |path: &Path, bits: u32| {
        std::fs::metadata(path).is_ok_and(|m| {
            let shift = if m.uid() == uid {
                6
            } else if m.gid() == gid {
                3
            } else {
                0
            };
            (m.mode() >> shift) & bits == bits
        })
    };
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
    let dirs: Vec<&Path> = bin.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()).collect();
    match dirs.into_iter().rev().find(|d| !allows(d, 0o1)) {
        Some(dir) => Some(dir.to_path_buf()),
        None => (!allows(&bin, 0o5)).then_some(bin),
    }
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
    /// The tasks copying stdout and stderr into the log: a line the function printed is in
    /// the log only once its pump has read it, which [`Sandbox::kill`] waits for.
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

/// Makes the harness's process non-dumpable, once, before its first sandbox: its
/// `/proc/<pid>/environ`, `mem` and `maps` then belong to root and no process of another or
/// the same unprivileged user may read or trace it, so a sandbox running as the harness's own
/// user (a harness that is not root) cannot read the harness's environment. A failure is
/// logged, not fatal: the sandboxes still run, with that door open.
fn close_harness_proc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{set_dumpable_behavior, DumpableBehavior};
        if let Err(err) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
            tracing::warn!(%err, "could not make the harness non-dumpable: its sandboxes may read its /proc entries");
        }
    });
}

impl Sandbox {
    /// Spawns `function`'s bootstrap with Lambda's environment, in its cgroups when
    /// available; its output goes to `sink`.
    pub async fn spawn(function: &Function, sink: &LogSink) -> Result<Self, SpawnError> {
        Self::spawn_with(function, sink, cgroups_available()).await
    }

    /// [`Sandbox::spawn`], in cgroups only if `with_cgroups` (tests take the path without).
    async fn spawn_with(function: &Function, sink: &LogSink, with_cgroups: bool) -> Result<Self, SpawnError> {
        close_harness_proc();
        if !is_executable(&function.bin) {
            return Err(SpawnError::InvalidEntrypoint(function.bin.clone()));
        }
        let user = sandbox_user(&function.name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let setpriv = match user {
            Some(user) => Some(setpriv().ok_or_else(|| no_setpriv(user))?),
            None => None,
        };
        if let Some((uid, gid)) = user {
            if let Some(blocked) = blocked_path(&function.bin, (uid, gid)) {
                // Lambda's answer to a bootstrap its user cannot run; the cause here is often
                // the machine (a project in a private home directory), so it is said too.
                tracing::warn!(
                    bootstrap = %function.bin.display(),
                    "the sandbox user {uid}:{gid} cannot run the bootstrap: {} is not open to it. Lambda runs a \
                     function unprivileged: make the path readable and searchable by others, or set \
                     LIFT_LAMBDA_SANDBOX_USER=UID:GID to a user that may read it (0:0 runs sandboxes as root, unlike Lambda)",
                    blocked.display()
                );
                return Err(SpawnError::InvalidEntrypoint(function.bin.clone()));
            }
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
        // Its owner's alone: another sandbox (another function's user, or, with one user for
        // all, any sandbox) may neither list nor read nor write it.
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(err) = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(err.into());
            }
        }
        if let Some((uid, gid)) = user {
            // The sandbox's `/tmp` is the one place it may write, as on Lambda.
            if let Err(err) = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)) {
                let _ = std::fs::remove_dir_all(&tmp);
                let message =
                    format!("the sandbox's TMPDIR {} cannot go to {uid}:{gid}: {err}", tmp.display());
                return Err(std::io::Error::new(err.kind(), message).into());
            }
        }
        let cgroup = match with_cgroups.then(|| Cgroup::create(&id, function)).transpose() {
            Ok(cgroup) => cgroup,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(err.into());
            }
        };

        let groups = cgroup.as_ref().map(|cg| cg.dirs.as_slice()).unwrap_or_default();
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(wrapper_script(groups, file_descriptor_limit(), user)).arg(&function.bin);
        cmd.args(setpriv);
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
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, sink.clone(), function.name.clone(), stream.clone()));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, sink.clone(), function.name.clone(), stream.clone()));
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
                .and_then(|cg| cg.read(MEMORY, "memory.oom_control"))
                .map(|s| oom_kills(&s) > 0)
                .unwrap_or(false);
            // Read before the group goes: the invocation's REPORT needs the peak after the
            // process has died (an OOM kill above all).
            let peak_bytes = watched
                .as_ref()
                .and_then(|cg| cg.read(MEMORY, "memory.max_usage_in_bytes"))
                .and_then(|b| b.trim().parse::<u64>().ok());
            if let Ok(status) = status {
                let _ = exit_tx.send(Some(Exit { status, out_of_memory, peak_bytes }));
            }
            if let Some(cg) = watched {
                std::thread::spawn(move || cg.remove());
            }
        });
        Ok(Self {
            id,
            stream,
            started,
            tmp,
            api,
            events,
            exit,
            pid,
            cgroup,
            kill: Some(kill),
            frozen: false,
            pumps,
        })
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
                let state = cg.dirs[FREEZER].join("freezer.state");
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
                let _ = tokio::fs::write(cg.dirs[FREEZER].join("freezer.state"), "THAWED").await;
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
        let peak = self.cgroup.as_ref().and_then(|cg| cg.read(MEMORY, "memory.max_usage_in_bytes"));
        if let Some(bytes) = peak {
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
            .and_then(|cg| cg.read(CPU, "cpu.stat"))
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("throttled_time ").and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0);
        Duration::from_nanos(ns)
    }

    /// Kills the sandbox (frozen or not), waits until its process is gone, then until
    /// everything it wrote to stdout and stderr is in the log (its pipes reached their end).
    pub async fn kill(&mut self) -> Option<Exit> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.frozen = false;
        let mut exit = self.exit.clone();
        let _ = exit.wait_for(Option::is_some).await;
        let exited = *exit.borrow();
        self.drain_output().await;
        exited
    }

    /// Waits for the pumps to copy the rest of the output and reach the pipes' end. Bounded:
    /// without cgroups, a helper that left the process group may still hold a pipe open, and
    /// the lines it writes later are not this wait's to catch.
    async fn drain_output(&mut self) {
        let until = Instant::now() + PUMP_DRAIN_WAIT;
        for pump in self.pumps.drain(..) {
            let left = until.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, pump).await.is_err() {
                tracing::warn!(sandbox = %self.id, "a sandbox's output pipe stayed open {PUMP_DRAIN_WAIT:?} after its kill; its later lines may reach the log late");
            }
        }
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
) -> tokio::task::JoinHandle<()> {
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
    })
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

    /// A function named `name` whose bootstrap is `script`, in a new directory (its task root)
    /// that only the harness's user may write; and that directory.
    fn script_function(name: &str, script: &str) -> (PathBuf, Function) {
        let dir = std::env::temp_dir().join(format!("lift-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let bootstrap = dir.join("bootstrap");
        std::fs::write(&bootstrap, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, Function::builder(name, &bootstrap).build().unwrap())
    }

    /// Waits up to 5 s for `path` to exist, then reads it.
    async fn read_when_written(path: &Path) -> Option<String> {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path) {
                return Some(text);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// A sandbox whose bootstrap starts two helpers that would live 30 s (one in its process
    /// group, one that left it with `setsid`, the latter only where the cgroup can find it),
    /// then runs `tail`; and the helpers' pids.
    async fn sandbox_with_helpers(with_cgroups: bool, tail: &str) -> (Sandbox, Vec<u32>) {
        let setsid = if with_cgroups { "setsid sleep 30 &\necho $! >> pids\n" } else { "" };
        let script = format!("#!/bin/sh\ntrap '' HUP\nsleep 30 &\necho $! >> pids\n{setsid}{tail}\n");
        let (dir, function) = script_function("helpers", &script);
        // The pids are written to the task root, which outlives a bootstrap that exits (its
        // TMPDIR does not): open to the sandbox's user here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
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

    /// A bootstrap that writes what it sees of its user and limits to `$TMPDIR/report` (a
    /// report there is the proof that it may write its `/tmp`), then waits.
    const REPORT_SCRIPT: &str = r#"#!/bin/sh
{
  echo "uid $(id -u)"
  echo "gid $(id -g)"
  echo "groups $(id -G)"
  if touch "$LAMBDA_TASK_ROOT/written" 2>/dev/null; then echo "task_root writable"; else echo "task_root read-only"; fi
  echo "nofile $(ulimit -Sn) $(ulimit -Hn)"
  grep '^Max open files' /proc/self/limits
  if command -v bash >/dev/null; then
    echo "opened $(bash -c 'n=0; while [ $n -lt 1100 ] && exec {fd}</dev/null; do n=$((n+1)); done 2>/dev/null; echo $n')"
  fi
  echo "pids $(grep ':pids:' /proc/self/cgroup | cut -d: -f3)"
} > "$TMPDIR/report.part" && mv "$TMPDIR/report.part" "$TMPDIR/report"
exec sleep 30
"#;

    #[tokio::test]
    async fn a_sandbox_runs_unprivileged_writing_only_its_tmp_under_lambdas_file_and_process_limits() {
        let mut reports = Vec::new();
        for with_cgroups in
            modes("a_sandbox_runs_unprivileged_writing_only_its_tmp_under_lambdas_file_and_process_limits")
        {
            let (dir, function) = script_function("limits", REPORT_SCRIPT);
            let mut sandbox =
                Sandbox::spawn_with(&function, &LogSink::new(false), with_cgroups).await.unwrap();
            let report = read_when_written(&sandbox.tmp.join("report")).await;
            let pids_max = sandbox.cgroup.as_ref().and_then(|cg| cg.read(PIDS, "pids.max"));
            sandbox.kill().await;
            let _ = std::fs::remove_dir_all(&dir);
            reports.push((with_cgroups, sandbox.id.clone(), report, pids_max));
        }
        let limit = file_descriptor_limit();
        for (with_cgroups, id, report, pids_max) in reports {
            let report =
                report.unwrap_or_else(|| panic!("cgroups {with_cgroups}: no report in the sandbox's TMPDIR"));
            let field = |key: &str| {
                report.lines().find_map(|l| l.strip_prefix(&format!("{key} "))).unwrap_or_default()
            };
            let context = format!("cgroups {with_cgroups}:\n{report}");
            match sandbox_user("limits").unwrap() {
                Some((uid, gid)) => {
                    assert_eq!(field("uid"), uid.to_string(), "{context}");
                    assert_eq!(field("gid"), gid.to_string(), "{context}");
                    assert_eq!(field("groups"), gid.to_string(), "no supplementary groups: {context}");
                    assert_eq!(field("task_root"), "read-only", "{context}");
                }
                // Not root: the harness's own user, which may write the directory it made.
                None => assert_eq!(field("uid"), effective_uid().unwrap().to_string(), "{context}"),
            }
            assert_eq!(field("nofile"), format!("{limit} {limit}"), "{context}");
            let limits = field("Max").split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(limits, format!("open files {limit} {limit} files"), "{context}");
            match field("opened").parse::<u64>() {
                Ok(opened) => assert!(opened < limit, "opened {opened} files: {context}"),
                Err(_) => eprintln!("the open-files half is not exercised: no bash here"),
            }
            if with_cgroups {
                assert_eq!(field("pids"), format!("/{PARENT}/{id}"), "{context}");
                assert_eq!(pids_max.as_deref().map(str::trim), Some("1024"), "{context}");
            }
        }
    }

    #[test]
    fn sandbox_user_ids_are_two_numbers() {
        assert_eq!(parse_user("65534:65534"), Ok((65534, 65534)));
        assert_eq!(parse_user("1000:100"), Ok((1000, 100)));
        for bad in ["nobody", "1000", "1000:", ":100", "-1:0", "nobody:nogroup"] {
            let err = parse_user(bad).unwrap_err();
            assert!(err.contains("LIFT_LAMBDA_SANDBOX_USER must be UID:GID"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_hard_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63432                63432                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(hard_open_files(limits), Some(524_288));
        assert_eq!(
            hard_open_files("Max open files            unlimited            unlimited            files"),
            None
        );
    }

    #[test]
    fn the_wrapper_joins_the_groups_limits_open_files_then_execs_once_as_the_sandbox_user() {
        let groups = [PathBuf::from("/cg/freezer/p/id"), PathBuf::from("/cg/pids/p/id")];
        assert_eq!(
            wrapper_script(&groups, 1024, Some((65534, 65534))),
            "echo $$ > /cg/freezer/p/id/cgroup.procs && echo $$ > /cg/pids/p/id/cgroup.procs \
             && ulimit -Sn 1024 && ulimit -Hn 1024 \
             && exec \"$1\" --reuid=65534 --regid=65534 --clear-groups --no-new-privs -- \"$0\""
        );
        assert_eq!(wrapper_script(&[], 1024, None), "ulimit -Sn 1024 && ulimit -Hn 1024 && exec \"$0\"");
    }

    #[tokio::test]
    async fn a_bootstrap_the_sandbox_user_cannot_reach_is_an_invalid_entrypoint() {
        use std::os::unix::fs::PermissionsExt;
        let user = (65534, 65534);
        let (dir, function) = script_function("private", "#!/bin/sh\nexit 0\n");
        let bin = std::fs::canonicalize(function.bin()).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        let open = blocked_path(&bin, user);
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o750)).unwrap();
        let unreadable = blocked_path(&bin, user);
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let private = blocked_path(&bin, user);
        // The spawn refuses it as Lambda refuses a bootstrap it cannot run, when it would drop.
        let spawned = match sandbox_user("private") {
            Ok(Some(_)) => Some(Sandbox::spawn_with(&function, &LogSink::new(false), false).await),
            _ => None,
        };
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(open, None);
        assert_eq!(unreadable, Some(bin.clone()));
        assert_eq!(private, Some(dir));
        if let Some(spawned) = spawned {
            assert!(
                matches!(spawned, Err(SpawnError::InvalidEntrypoint(ref p)) if *p == function.bin),
                "{spawned:?}"
            );
        }
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
