//! Walking `/proc`: a step's process tree, the processes carrying its kill token, and the
//! CPU time and memory they use.
//!
//! A step's tree is its main process, every descendant of it (followed through parent
//! links), and every process whose environment carries `COREFLOW_KILL_TOKEN=<token>`
//! together with their descendants. The token catches what parent links lose: a process
//! whose parent exited is re-parented to init, but it keeps the environment it inherited.
//!
//! Everything here is a best-effort snapshot of a changing system: processes come and go
//! while `/proc` is read, and a process that vanished half-way is simply skipped. Signalling
//! is left to `kill.rs`; nothing here changes any process.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that marks every process of a step.
pub const KILL_TOKEN_VAR: &str = "COREFLOW_KILL_TOKEN";

/// Resource use of a process tree at one instant, summed over its processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSample {
    /// Resident memory of all processes of the tree, in bytes.
    pub rss_bytes: u64,
    /// User and system CPU time of the tree in milliseconds: of its live processes, plus
    /// what the children they already reaped used.
    pub cpu_ms: u64,
    /// How many live processes the tree has.
    pub processes: u32,
}

/// The fields of `/proc/<pid>/stat` that are used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    pub(super) pid: u32,
    pub(super) ppid: u32,
    pub(super) pgrp: u32,
    /// `R`, `S`, `D`, `Z`, …
    pub(super) state: u8,
    /// `utime + stime + cutime + cstime`, in clock ticks.
    pub(super) cpu_ticks: u64,
    /// Resident set size, in pages.
    pub(super) rss_pages: u64,
}

impl ProcStat {
    /// Whether the process has exited and only waits to be reaped.
    pub(super) fn is_zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parses one `/proc/<pid>/stat` line.
///
/// The command name (second field) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub(super) fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Positions after the command name: field 3 of proc(5) is index 0.
    let unsigned = |index: usize| fields.get(index)?.parse::<u64>().ok();
    // cutime, cstime and rss are signed in the kernel; negative values make no sense here.
    let signed = |index: usize| {
        let value = fields.get(index)?.parse::<i64>().ok()?;
        Some(u64::try_from(value).unwrap_or(0))
    };
    let state = *fields.first()?.as_bytes().first()?;
    let parent = u32::try_from(signed(1)?).ok()?;
    let pgrp = u32::try_from(signed(2)?).ok()?;
    // utime, stime, then cutime and cstime: the process's own time and its reaped children's.
    let own = unsigned(11)?.saturating_add(unsigned(12)?);
    let reaped = signed(13)?.saturating_add(signed(14)?);
    let rss_pages = signed(21)?;
    let cpu_ticks = own.saturating_add(reaped);
    Some(ProcStat {
        pid,
        ppid: parent,
        pgrp,
        state,
        cpu_ticks,
        rss_pages,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub(super) fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Whether `pid` exists and has not exited yet (a zombie counts as dead).
pub(super) fn is_alive(pid: u32) -> bool {
    read_stat(pid).is_some_and(|stat| !stat.is_zombie())
}

/// The ids of all processes, in `/proc` order.
pub(super) fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// `COREFLOW_KILL_TOKEN=<token>`, the entry to look for in environments; `None` for a token
/// that cannot mark anything (empty, only `*`, or with a NUL byte), so that it never matches.
///
/// A token ending in `*` is a pattern: it matches every token that starts with what comes
/// before the `*` (`cf-12-*` finds every process of run 12). Tokens that CoreFlow hands to
/// steps never contain a `*`.
pub(super) fn token_entry(token: &str) -> Option<Vec<u8>> {
    if token.is_empty() || token == "*" || token.contains('\0') {
        return None;
    }
    Some(format!("{KILL_TOKEN_VAR}={token}").into_bytes())
}

/// Whether the environment of `pid` holds exactly `entry`. Unreadable environments
/// (another user's process, a zombie, a kernel thread) do not.
pub(super) fn carries_token(pid: u32, entry: &[u8]) -> bool {
    environ_holds(pid, entry) == Some(true)
}

/// Whether the environment of `pid` holds exactly `entry` (or, for an entry ending in `*`,
/// an item starting with what precedes it); `None` when it cannot be told: unreadable or
/// empty. An environment also reads empty for a moment during `execve`.
fn environ_holds(pid: u32, entry: &[u8]) -> Option<bool> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    if environ.is_empty() {
        return None;
    }
    Some(
        environ
            .split(|&b| b == 0)
            .any(|item| entry_matches(entry, item)),
    )
}

/// Whether one environment item matches `entry`, exactly or as a `*` pattern.
fn entry_matches(entry: &[u8], item: &[u8]) -> bool {
    match entry.strip_suffix(b"*") {
        Some(prefix) => item.starts_with(prefix),
        None => item == entry,
    }
}

/// Every process that carries `entry`, except the current process.
pub(super) fn token_carriers(entry: &[u8]) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && carries_token(pid, entry))
        .collect()
}

/// Every live process that belongs to a tree: `root` and its descendants, the members of
/// the process group `group` and the token carriers, with their descendants; from one full
/// scan of `/proc`, without the current process (nor init).
pub(super) fn tree_members(
    root: Option<u32>,
    group: Option<u32>,
    entry: Option<&[u8]>,
) -> Vec<ProcStat> {
    let me = std::process::id();
    let stats: Vec<ProcStat> = all_pids()
        .into_iter()
        .filter(|&pid| pid != me && pid > 1)
        .filter_map(read_stat)
        .filter(|stat| !stat.is_zombie())
        .collect();
    let mut roots: Vec<u32> = root.into_iter().collect();
    if let Some(group) = group {
        roots.extend(stats.iter().filter(|s| s.pgrp == group).map(|s| s.pid));
    }
    if let Some(entry) = entry {
        roots.extend(
            stats
                .iter()
                .map(|s| s.pid)
                .filter(|&pid| carries_token(pid, entry)),
        );
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for stat in &stats {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    let members = walk(roots, |pid| children.get(&pid).cloned().unwrap_or_default());
    stats
        .into_iter()
        .filter(|stat| members.contains(&stat.pid))
        .collect()
}

/// Breadth-first walk from `roots` along `children_of`, each process once.
fn walk(roots: Vec<u32>, mut children_of: impl FnMut(u32) -> Vec<u32>) -> HashSet<u32> {
    let mut seen: HashSet<u32> = HashSet::new();
    let mut queue = roots;
    while let Some(pid) = queue.pop() {
        if seen.insert(pid) {
            queue.extend(children_of(pid).into_iter().filter(|c| !seen.contains(c)));
        }
    }
    seen
}

/// The children of `pid` from `/proc/<pid>/task/<tid>/children`, over all its threads.
fn children_from_task_files(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let mut path = task.path();
        path.push("children");
        if let Ok(text) = fs::read_to_string(&path) {
            children.extend(
                text.split_ascii_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// Whether the kernel offers `/proc/<pid>/task/<tid>/children` (`CONFIG_PROC_CHILDREN`).
/// With them a tree is walked in a few reads instead of a scan of every process.
fn has_children_files() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| Path::new("/proc/thread-self/children").exists())
}

/// Clock ticks per second, the unit of CPU times in `/proc`.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value; it has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
    })
}

/// The size of a memory page in bytes, the unit of RSS in `/proc/<pid>/stat`.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value; it has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
    })
}

/// Converts clock ticks to milliseconds.
fn ticks_to_ms(ticks: u64) -> u64 {
    let ms = u128::from(ticks) * 1000 / u128::from(clock_ticks());
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Samples one step's tree repeatedly, remembering which processes were already found not
/// to carry the token so that later samples read only the environments of new processes.
#[derive(Debug)]
pub(super) struct Sampler {
    entry: Option<Vec<u8>>,
    carriers: HashSet<u32>,
    not_carriers: HashSet<u32>,
}

impl Sampler {
    /// A sampler for the tree marked by `token`.
    pub(super) fn new(token: &str) -> Self {
        Self {
            entry: token_entry(token),
            carriers: HashSet::new(),
            not_carriers: HashSet::new(),
        }
    }

    /// Sums CPU time and memory over `root`'s tree, after a scan of `/proc` for new token
    /// carriers (one read of every process's environment not seen before).
    pub(super) fn sample(&mut self, root: u32) -> TreeSample {
        if let Some(entry) = &self.entry {
            let me = std::process::id();
            let pids = all_pids();
            let present: HashSet<u32> = pids.iter().copied().collect();
            self.not_carriers.retain(|pid| present.contains(pid));
            self.carriers.retain(|pid| present.contains(pid));
            for pid in pids {
                if pid == me || self.carriers.contains(&pid) || self.not_carriers.contains(&pid) {
                    continue;
                }
                match environ_holds(pid, entry) {
                    Some(true) => {
                        self.carriers.insert(pid);
                    }
                    Some(false) => {
                        self.not_carriers.insert(pid);
                    }
                    // Unreadable for now (gone, or in the middle of `execve`): look again
                    // next time.
                    None => {}
                }
            }
        }
        let mut roots = vec![root];
        roots.extend(self.carriers.iter().copied());
        let members = if has_children_files() {
            walk(roots, children_from_task_files)
        } else {
            let stats: Vec<ProcStat> = all_pids().into_iter().filter_map(read_stat).collect();
            let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
            for stat in &stats {
                children.entry(stat.ppid).or_default().push(stat.pid);
            }
            walk(roots, |pid| children.get(&pid).cloned().unwrap_or_default())
        };
        let mut ticks = 0u64;
        let mut pages = 0u64;
        let mut processes = 0u32;
        for pid in members {
            match read_stat(pid) {
                Some(stat) => {
                    ticks = ticks.saturating_add(stat.cpu_ticks);
                    pages = pages.saturating_add(stat.rss_pages);
                    if !stat.is_zombie() {
                        processes += 1;
                    }
                }
                None => {
                    self.carriers.remove(&pid);
                }
            }
        }
        TreeSample {
            rss_bytes: pages.saturating_mul(page_size()),
            cpu_ms: ticks_to_ms(ticks),
            processes,
        }
    }
}

/// Sums the CPU time and resident memory of the process tree of `root_pid`: the process,
/// its descendants, and every process carrying `COREFLOW_KILL_TOKEN=<token>` with their
/// descendants. A `root_pid` that does not exist contributes nothing.
///
/// This reads `/proc` (a few milliseconds on a busy machine): call it from a blocking
/// context, or accept the short stall.
#[must_use]
pub fn sample_tree(root_pid: u32, token: &str) -> TreeSample {
    Sampler::new(token).sample(root_pid)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use nix::sys::stat::Mode;
    use nix::unistd::mkfifo;

    use super::{
        KILL_TOKEN_VAR, ProcStat, entry_matches, is_alive, parse_stat, read_stat, sample_tree,
        token_carriers, token_entry, tree_members,
    };
    use crate::step::kill::kill_token_processes;

    /// A token no other test uses.
    fn unique_token(name: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("procfs-{name}-{}-{n}", std::process::id())
    }

    /// Starts `sh -c script` with the token, and waits until it printed `lines` lines.
    fn start(script: &str, token: &str, lines: usize) -> Child {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .env(KILL_TOKEN_VAR, token)
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let stdout = child.stdout.take().expect("piped");
        let mut reader = BufReader::new(stdout);
        for _ in 0..lines {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a line");
            assert!(line.ends_with('\n'), "early end of output: {line:?}");
        }
        child
    }

    /// Stops everything the test started, and reaps its own child.
    fn kill_all(token: &str, mut child: Child) {
        let _ = kill_token_processes(token, Duration::ZERO);
        child.wait().expect("reap");
    }

    #[test]
    fn parses_stat_lines_with_odd_command_names() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 -1 3 20 0 1 0 \
                    12345 1000000 256 18446744073709551615";
        let stat = parse_stat(42, line).expect("valid line");
        assert_eq!(
            stat,
            ProcStat {
                pid: 42,
                ppid: 7,
                pgrp: 42,
                state: b'S',
                cpu_ticks: 203,
                rss_pages: 256
            }
        );
        assert!(!stat.is_zombie());
        assert_eq!(parse_stat(1, "1 (x) Z 0 0"), None);
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_stat(1, ""), None);
    }

    #[test]
    fn reads_our_own_stat() {
        let me = std::process::id();
        let stat = read_stat(me).expect("we exist");
        assert_eq!(stat.pid, me);
        assert!(stat.rss_pages > 0);
        assert!(is_alive(me));
        assert!(read_stat(u32::MAX).is_none());
    }

    #[test]
    fn empty_or_nul_tokens_match_nothing() {
        assert_eq!(token_entry(""), None);
        assert_eq!(token_entry("*"), None);
        assert_eq!(token_entry("a\0b"), None);
        assert_eq!(
            token_entry("x").as_deref(),
            Some(&b"COREFLOW_KILL_TOKEN=x"[..])
        );
    }

    #[test]
    fn a_star_token_matches_by_prefix() {
        let entry = token_entry("cf-12-*").expect("a pattern");
        assert!(entry_matches(&entry, b"COREFLOW_KILL_TOKEN=cf-12-3-1-99"));
        assert!(entry_matches(&entry, b"COREFLOW_KILL_TOKEN=cf-12-"));
        assert!(!entry_matches(&entry, b"COREFLOW_KILL_TOKEN=cf-123-3-1-99"));
        assert!(!entry_matches(&entry, b"OTHER=cf-12-3"));
        let exact = token_entry("cf-12").expect("a token");
        assert!(entry_matches(&exact, b"COREFLOW_KILL_TOKEN=cf-12"));
        assert!(!entry_matches(&exact, b"COREFLOW_KILL_TOKEN=cf-12-3"));
    }

    #[test]
    fn finds_descendants_and_orphaned_token_carriers() {
        let token = unique_token("tree");
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo, Mode::S_IRWXU).expect("mkfifo");
        // Three shells that block opening a FIFO nobody writes to, each after printing a
        // line: no fork or exec is under way when they are counted. The subshell exits at
        // once, so the first one is re-parented away from our tree: only the token still
        // ties it to the step.
        let fifo = fifo.display();
        let script = format!(
            "(sh -c 'echo orphan; read x < {fifo}' &); \
             sh -c 'echo child; read x < {fifo}' & echo parent; read x < {fifo}"
        );
        let child = start(&script, &token, 3);
        let root = child.id();
        let entry = token_entry(&token).expect("valid token");

        let carriers = token_carriers(&entry);
        assert_eq!(carriers.len(), 3, "three shells: {carriers:?}");

        let members = tree_members(Some(root), None, Some(&entry));
        assert_eq!(members.len(), 3, "{members:?}");
        let without_token = tree_members(Some(root), None, None);
        assert_eq!(
            without_token.len(),
            2,
            "the orphan is no descendant: {without_token:?}"
        );

        let sample = sample_tree(root, &token);
        assert_eq!(sample.processes, 3);
        assert!(sample.rss_bytes > 0);
        // A token that marks nothing leaves the descendants only.
        assert_eq!(sample_tree(root, "no-such-token").processes, 2);

        kill_all(&token, child);
        assert!(token_carriers(&entry).is_empty());
    }

    #[test]
    fn a_missing_root_samples_as_nothing() {
        let sample = sample_tree(u32::MAX, &unique_token("missing"));
        assert_eq!(sample.processes, 0);
        assert_eq!(sample.rss_bytes, 0);
    }
}
