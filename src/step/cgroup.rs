//! Kernel-enforced limits for a job's processes: a cgroup v2 per attempt, where the host
//! lets this process make one.
//!
//! A job that declares `resources: { memory, cpus }` is held to its `memory` by sampling its
//! process tree (the engine's business, in `engine/job.rs`). Where the host has a writable
//! cgroup v2 hierarchy with the memory controller, the attempt also gets its own cgroup —
//! `memory.max` (with `memory.swap.max` at 0 and `memory.oom.group` set, so that the kernel
//! stops the whole attempt rather than one of its processes) and `cpu.max` from `cpus` — so
//! that the kernel enforces the limit between two samples; [`Cgroup::oom_kills`] tells the
//! engine that it did.
//!
//! # Where the cgroups go
//!
//! Attempt cgroups live in a folder of this process, `coreflow-<pid>`, whose
//! `cgroup.subtree_control` turns the memory (and cpu) controllers on. It is made, once,
//! in the first of these places that works:
//!
//! 1. under this process's own cgroup, when that already hands the memory controller to
//!    its children (the root of a cgroup namespace);
//! 2. beside this process's cgroup, when that is the `main` leaf of another CoreFlow
//!    process's folder (a worker started by a daemon that moved itself there);
//! 3. under this process's own cgroup after moving this process into a leaf,
//!    `coreflow-<pid>/main`: the kernel's "no internal processes" rule lets a cgroup hand
//!    controllers to its children only when it holds no process itself. This fails when
//!    other processes share the cgroup (a login shell's session, say); the process then
//!    moves back.
//!
//! When none works — no cgroup v2 mount, no memory controller in it (a v1 or hybrid host),
//! no permission, other processes in the way — or when `COREFLOW_CGROUPS=off`
//! ([`DISABLE_VAR`]), limits are enforced by sampling alone. [`enforcement`] says which.
//! Folders left by CoreFlow processes that died are removed when the next one sets up.
//!
//! Linux only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that turns cgroups off (`off`, `0`, `false` or `no`): limits are then
/// enforced by sampling alone.
pub const DISABLE_VAR: &str = "COREFLOW_CGROUPS";

/// The period of `cpu.max`, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;
/// How long [`Cgroup::remove`] waits for the killed processes to leave the cgroup.
const REMOVE_WAIT: Duration = Duration::from_secs(2);

/// How job limits are enforced in this process: `"cgroup"` (a cgroup v2 per attempt, and
/// sampling) or `"sampling"` (sampling alone). Computed once, on the first call, which sets
/// the hierarchy up (see the module documentation) and logs the answer at debug level.
#[must_use]
pub fn enforcement() -> &'static str {
    if hierarchy().is_some() {
        "cgroup"
    } else {
        "sampling"
    }
}

/// The folder attempt cgroups are made in, once set up.
#[derive(Debug)]
struct Hierarchy {
    /// `…/coreflow-<pid>`, with the controllers on for its children.
    dir: PathBuf,
    /// Whether the cpu controller is on too (`cpu.max` can be written).
    cpu: bool,
}

fn hierarchy() -> Option<&'static Hierarchy> {
    static HIERARCHY: OnceLock<Option<Hierarchy>> = OnceLock::new();
    HIERARCHY
        .get_or_init(|| {
            let result = if is_turned_off(std::env::var(DISABLE_VAR).ok().as_deref()) {
                Err(format!("turned off by {DISABLE_VAR}"))
            } else {
                let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
                let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                set_up(&mountinfo, &own, std::process::id())
            };
            match result {
                Ok(hierarchy) => {
                    tracing::debug!(
                        enforcement = "cgroup",
                        dir = %hierarchy.dir.display(),
                        cpu = hierarchy.cpu,
                        "job limits"
                    );
                    Some(hierarchy)
                }
                Err(why) => {
                    tracing::debug!(enforcement = "sampling", why = %why, "job limits");
                    None
                }
            }
        })
        .as_ref()
}

/// Whether the value of [`DISABLE_VAR`] turns cgroups off.
fn is_turned_off(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

/// Finds the cgroup v2 hierarchy from `/proc/self/mountinfo` and `/proc/self/cgroup` and
/// makes this process's folder in it (see the module documentation), or says why not.
fn set_up(mountinfo: &str, own_cgroup: &str, pid: u32) -> Result<Hierarchy, String> {
    let (mount_point, mount_root) =
        cgroup2_mount(mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
    let own = own_cgroup_path(own_cgroup).ok_or("this process is in no cgroup v2")?;
    let relative = relative_to(&own, &mount_root)
        .ok_or_else(|| format!("cgroup {own} is outside the mount of {mount_root}"))?;
    let base = if relative.is_empty() {
        mount_point
    } else {
        mount_point.join(relative)
    };
    let controllers = read_words(&base.join("cgroup.controllers"));
    if !controllers.iter().any(|c| c == "memory") {
        return Err(format!(
            "the memory controller is not available in {}",
            base.display()
        ));
    }
    let cpu = controllers.iter().any(|c| c == "cpu");
    let name = format!("coreflow-{pid}");

    let is_enabled = |dir: &Path| {
        read_words(&dir.join("cgroup.subtree_control"))
            .iter()
            .any(|c| c == "memory")
    };
    // 1 and 2: a folder that hands the memory controller down already.
    let home = if is_enabled(&base) {
        Some(base.clone())
    } else {
        base.parent()
            .filter(|parent| {
                base.file_name().is_some_and(|n| n == "main")
                    && parent
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("coreflow-"))
                    && is_enabled(parent)
            })
            .map(Path::to_path_buf)
    };
    if let Some(home) = home {
        remove_stale(&home, pid);
        let dir = home.join(&name);
        make_dir(&dir)?;
        let cpu = match enable(&dir, cpu) {
            Ok(cpu) => cpu,
            Err(err) => {
                let _ = fs::remove_dir(&dir);
                return Err(err);
            }
        };
        return Ok(Hierarchy { dir, cpu });
    }

    // 3: move into a leaf of our own, so that our cgroup may hand controllers down.
    remove_stale(&base, pid);
    let dir = base.join(&name);
    let leaf = dir.join("main");
    make_dir(&dir)?;
    let undo = |moved: bool| {
        if moved {
            let _ = fs::write(base.join("cgroup.procs"), pid.to_string());
        }
        let _ = fs::remove_dir(&leaf);
        let _ = fs::remove_dir(&dir);
    };
    if let Err(err) = make_dir(&leaf) {
        undo(false);
        return Err(err);
    }
    if let Err(err) = fs::write(leaf.join("cgroup.procs"), pid.to_string()) {
        undo(false);
        return Err(format!("cannot move into {}: {err}", leaf.display()));
    }
    if let Err(err) = enable(&base, cpu) {
        undo(true);
        return Err(err);
    }
    match enable(&dir, cpu) {
        Ok(cpu) => Ok(Hierarchy { dir, cpu }),
        Err(err) => {
            undo(true);
            Err(err)
        }
    }
}

/// Turns the memory controller (and the cpu one, when `cpu` and it can be) on for the
/// children of `dir`; says whether cpu is on.
fn enable(dir: &Path, cpu: bool) -> Result<bool, String> {
    let control = dir.join("cgroup.subtree_control");
    if cpu && fs::write(&control, "+memory +cpu").is_ok() {
        return Ok(true);
    }
    fs::write(&control, "+memory")
        .map(|()| false)
        .map_err(|err| {
            format!(
                "cannot turn the memory controller on in {}: {err}",
                dir.display()
            )
        })
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(format!("cannot create {}: {err}", dir.display())),
    }
}

/// Removes the `coreflow-<pid>` folders in `dir` of processes that are gone, with the
/// cgroups in them; a cgroup that still holds a process stays (the kernel refuses).
fn remove_stale(dir: &Path, me: u32) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("coreflow-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me && !is_running(pid) {
            remove_tree(&entry.path());
        }
    }
}

/// Whether a process `pid` exists (signal 0).
fn is_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Removes the cgroup `dir` and the cgroups under it, deepest first. A cgroup's control
/// files go with it; only folders are removed.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// One attempt's cgroup: its limits, its processes, and how many the kernel killed for
/// going over `memory.max`. Dropping it removes the folder when it is empty; [`remove`]
/// first stops what is left in it.
///
/// [`remove`]: Cgroup::remove
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// Makes a cgroup named after `name` (a kill token, say) for one attempt, limited to
    /// `memory` bytes (none when 0) and `cpus` CPUs (none when 0). `None` where limits are
    /// enforced by sampling alone ([`enforcement`]), or when the cgroup cannot be made or
    /// limited (logged at debug level): sampling still holds the attempt to its memory.
    #[must_use]
    pub fn create(name: &str, memory: u64, cpus: f64) -> Option<Cgroup> {
        let hierarchy = hierarchy()?;
        let dir = hierarchy.dir.join(format!("job-{}", folder_name(name)));
        // A folder of the same name is the leftover of an attempt of this process that
        // could not be removed: it holds no process of ours any more, or the kernel refuses.
        let _ = fs::remove_dir(&dir);
        if let Err(err) = fs::create_dir(&dir) {
            tracing::debug!(dir = %dir.display(), %err, "cannot create the attempt's cgroup");
            return None;
        }
        let cgroup = Cgroup { dir };
        match cgroup.limit(memory, cpus.max(0.0), hierarchy.cpu) {
            Ok(()) => Some(cgroup),
            Err(err) => {
                tracing::debug!(
                    dir = %cgroup.dir.display(),
                    %err,
                    "cannot limit the attempt's cgroup"
                );
                None
            }
        }
    }

    fn limit(&self, memory: u64, cpus: f64, cpu: bool) -> io::Result<()> {
        if memory > 0 {
            fs::write(self.dir.join("memory.max"), memory.to_string())?;
            // Without swap the limit is one of resident memory, as sampling measures it.
            let swap = self.dir.join("memory.swap.max");
            if swap.exists() {
                fs::write(swap, "0")?;
            }
            // The whole attempt stops, as on timeout, not one process of it.
            let group = self.dir.join("memory.oom.group");
            if group.exists() {
                fs::write(group, "1")?;
            }
        }
        if cpus > 0.0 && cpu {
            fs::write(self.dir.join("cpu.max"), cpu_max(cpus))?;
        }
        Ok(())
    }

    /// The cgroup's folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves process `pid` (all its threads) into the cgroup; what it starts afterwards
    /// is born there.
    ///
    /// # Errors
    /// The kernel refuses (the process is gone, or the cgroup).
    pub fn place(&self, pid: u32) -> io::Result<()> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// How many processes the kernel killed in the cgroup for going over `memory.max`.
    #[must_use]
    pub fn oom_kills(&self) -> u64 {
        fs::read_to_string(self.dir.join("memory.events"))
            .ok()
            .and_then(|text| event_count(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// The most memory the cgroup used (`memory.peak`, from Linux 5.19), in bytes.
    #[must_use]
    pub fn peak(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("memory.peak"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills what is left in the cgroup (`cgroup.kill`, from Linux 5.14) and removes it,
    /// waiting up to two seconds for the processes to leave. Blocks: call it from a
    /// blocking context.
    pub fn remove(&self) {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() && has_processes(&self.dir) {
            let _ = fs::write(kill, "1");
        }
        let deadline = Instant::now() + REMOVE_WAIT;
        loop {
            match fs::remove_dir(&self.dir) {
                Err(err) if err.kind() != io::ErrorKind::NotFound && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    tracing::debug!(
                        dir = %self.dir.display(),
                        %err,
                        "cannot remove the attempt's cgroup"
                    );
                    return;
                }
                _ => return,
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Usually gone already, through `remove`; the kernel refuses while processes remain.
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Whether the cgroup `dir` holds a process.
fn has_processes(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|text| !text.trim().is_empty())
}

/// `cpu.max` for `cpus` CPUs: the quota per period, in microseconds.
fn cpu_max(cpus: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive number of CPUs, far below u64::MAX microseconds"
    )]
    let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
    format!("{} {CPU_PERIOD_US}", quota.max(CPU_MIN_QUOTA_US))
}

/// A kill token as a folder name: letters, digits, `-` and `_` kept, the rest `_`.
fn folder_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The count of `key` in a flat-keyed file such as `memory.events` (`oom_kill 3`).
fn event_count(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// The words of a file such as `cgroup.controllers`; none when it cannot be read.
fn read_words(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| text.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The mount point and root of the first cgroup v2 mount in `/proc/self/mountinfo`.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mount-point options [optional…] - type source super`
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        let root = unescape(fields.get(3)?);
        let mount_point = unescape(fields.get(4)?);
        Some((PathBuf::from(mount_point), root))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path of this process: the `0::PATH` line of `/proc/self/cgroup`.
fn own_cgroup_path(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim().to_owned())
        .filter(|path| path.starts_with('/'))
}

/// `path` relative to the mount's `root`, without a leading `/`; `None` when it lies
/// outside it.
fn relative_to(path: &str, root: &str) -> Option<String> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rest.trim_start_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::{
        cgroup2_mount, cpu_max, event_count, folder_name, is_turned_off, own_cgroup_path,
        relative_to, remove_stale, set_up,
    };

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
";

    #[test]
    fn finds_the_cgroup2_mount_and_the_own_cgroup() {
        assert_eq!(
            cgroup2_mount(HYBRID),
            Some(("/sys/fs/cgroup/unified".into(), "/".to_owned()))
        );
        let spaced = "40 1 0:40 /a\\040b /mnt/cg\\040v2 rw - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_mount(spaced),
            Some(("/mnt/cg v2".into(), "/a b".to_owned()))
        );
        assert_eq!(cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/sda rw\n"), None);

        let own = "4:memory:/process_api/1\n0::/user.slice/session-2.scope\n";
        assert_eq!(
            own_cgroup_path(own).as_deref(),
            Some("/user.slice/session-2.scope")
        );
        assert_eq!(own_cgroup_path("4:memory:/x\n"), None);

        assert_eq!(relative_to("/a/b", "/").as_deref(), Some("a/b"));
        assert_eq!(relative_to("/a/b", "/a").as_deref(), Some("b"));
        assert_eq!(relative_to("/a", "/a").as_deref(), Some(""));
        assert_eq!(relative_to("/ab", "/a"), None);
        assert_eq!(relative_to("/x", "/a"), None);
    }

    #[test]
    fn reads_oom_kills_and_writes_cpu_quotas() {
        let events = "low 0\nhigh 0\nmax 31\noom 2\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(event_count(events, "oom_kill"), Some(2));
        assert_eq!(event_count(events, "oom"), Some(2));
        assert_eq!(event_count(events, "missing"), None);
        assert_eq!(cpu_max(2.0), "200000 100000");
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_max(0.001), "1000 100000");
        assert_eq!(folder_name("cf-12-3-1"), "cf-12-3-1");
        assert_eq!(folder_name("a/b c"), "a_b_c");
        assert!(is_turned_off(Some("off")) && is_turned_off(Some("0")));
        assert!(is_turned_off(Some(" NO ")) && is_turned_off(Some("false")));
        assert!(!is_turned_off(None) && !is_turned_off(Some("on")));
    }

    /// A fake hierarchy in a temporary folder: plain files stand for the control files, so
    /// every write succeeds unless a test puts a folder in the way.
    fn fake(controllers: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("session");
        fs::create_dir_all(&base).expect("base");
        fs::write(base.join("cgroup.controllers"), controllers).expect("controllers");
        fs::write(base.join("cgroup.subtree_control"), "").expect("subtree_control");
        let mountinfo = format!(
            "36 35 0:31 / {} rw,nosuid shared:10 - cgroup2 cgroup2 rw\n",
            dir.path().display()
        );
        (dir, mountinfo)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn moves_into_a_leaf_to_hand_controllers_down() {
        let (dir, mountinfo) = fake("cpuset cpu io memory pids");
        let hierarchy = set_up(&mountinfo, "0::/session\n", 42).expect("set up");
        let base = dir.path().join("session");
        assert_eq!(hierarchy.dir, base.join("coreflow-42"));
        assert!(hierarchy.cpu);
        assert_eq!(read(&base.join("coreflow-42/main/cgroup.procs")), "42");
        assert_eq!(read(&base.join("cgroup.subtree_control")), "+memory +cpu");
        assert_eq!(
            read(&base.join("coreflow-42/cgroup.subtree_control")),
            "+memory +cpu"
        );
    }

    #[test]
    fn moves_back_when_the_cgroup_cannot_hand_controllers_down() {
        let (dir, mountinfo) = fake("memory pids");
        let base = dir.path().join("session");
        // A folder where the file should be: every write to it fails, as EBUSY would.
        fs::remove_file(base.join("cgroup.subtree_control")).expect("remove");
        fs::create_dir(base.join("cgroup.subtree_control")).expect("block");
        let why = set_up(&mountinfo, "0::/session\n", 42).expect_err("no controllers");
        assert!(
            why.contains("cannot turn the memory controller on"),
            "{why}"
        );
        // Moved back. (The folders stay here: unlike cgroupfs, a plain folder holding the
        // file written for the move cannot be removed with `rmdir`.)
        assert_eq!(read(&base.join("cgroup.procs")), "42");
    }

    #[test]
    fn uses_a_cgroup_that_hands_controllers_down_already() {
        let (dir, mountinfo) = fake("memory");
        let base = dir.path().join("session");
        fs::write(base.join("cgroup.subtree_control"), "memory").expect("enabled");
        // A folder of a dead CoreFlow process is cleared, a live one's is kept.
        let me = std::process::id();
        fs::create_dir_all(base.join("coreflow-4194999/job-x")).expect("stale");
        fs::create_dir_all(base.join(format!("coreflow-{me}"))).expect("live");
        let hierarchy = set_up(&mountinfo, "0::/session\n", 7).expect("set up");
        assert_eq!(hierarchy.dir, base.join("coreflow-7"));
        assert!(!hierarchy.cpu);
        assert!(!base.join("coreflow-4194999").exists());
        assert!(base.join(format!("coreflow-{me}")).exists());
        assert!(!base.join("coreflow-7/main").exists());

        // A worker started there by that process uses the same folder.
        let leaf = base.join("coreflow-7/main");
        fs::create_dir_all(&leaf).expect("leaf");
        fs::write(leaf.join("cgroup.controllers"), "memory").expect("controllers");
        fs::write(base.join("coreflow-7/cgroup.subtree_control"), "memory").expect("enabled");
        let worker = set_up(&mountinfo, "0::/session/coreflow-7/main\n", 8).expect("worker set up");
        assert_eq!(worker.dir, base.join("coreflow-7/coreflow-8"));
    }

    #[test]
    fn needs_the_memory_controller() {
        let (_dir, mountinfo) = fake("hugetlb");
        let why = set_up(&mountinfo, "0::/session\n", 42).expect_err("no memory");
        assert!(why.contains("memory controller is not available"), "{why}");
        let why = set_up("", "0::/\n", 42).expect_err("no mount");
        assert_eq!(why, "no cgroup v2 hierarchy is mounted");
        // Nothing to clear where there is no folder.
        remove_stale(Path::new("/nonexistent"), 1);
    }
}
