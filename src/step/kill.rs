//! Stopping a step's whole process tree: SIGTERM, a grace period, then SIGKILL.
//!
//! A step runs in its own process group, so most of its tree is reached with one `killpg`.
//! What left the group (`setsid`, a double fork, a daemon) is found through the kill token
//! in its environment (see `procfs.rs`) and signalled one process at a time. Stopped
//! processes get SIGCONT after SIGTERM so that they can act on it.
//!
//! The escalation for a running step is driven by `process.rs`, which races the grace
//! period against the child's exit; [`kill_token_processes`] is the blocking variant for
//! leftovers at the end of a job, or after a crash of `coreflow`, when no child handle exists.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::procfs;

/// How long [`kill_tree`] keeps looking for survivors after SIGKILL: processes that were
/// forking while the first round hit, or that are slow to die.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// A pid as nix wants it. Linux pids are below 2^22, so the conversion cannot fail for a
/// real process; anything else maps to an id no process has.
fn nix_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Sends `signal` to the process group `pgid`. Returns whether the group existed.
pub(super) fn signal_group(pgid: u32, signal: Signal) -> bool {
    // Process group 0 and 1 would mean "our own group" and "every process we may signal";
    // a step's group id is its leader's pid, never one of those.
    if pgid <= 1 {
        return false;
    }
    signal::killpg(nix_pid(pgid), signal) != Err(Errno::ESRCH)
}

/// Whether any process is left in the group `pgid` (zombies included).
pub(super) fn group_exists(pgid: u32) -> bool {
    pgid > 1 && signal::killpg(nix_pid(pgid), None) != Err(Errno::ESRCH)
}

/// Whether a live (non-zombie) process is left in the group `pgid` or among `pids`.
///
/// Zombies do not count: orphans are reaped by init, and some inits (in containers and
/// micro-VMs) take a second or more to do it. Blocking: may scan `/proc`.
pub(super) fn is_any_alive(pgid: u32, pids: &HashSet<u32>) -> bool {
    if pids.iter().any(|&pid| procfs::is_alive(pid)) {
        return true;
    }
    // Cheap test first; a scan only when the group still has members, live or not.
    group_exists(pgid)
        && procfs::all_pids()
            .into_iter()
            .filter_map(procfs::read_stat)
            .any(|stat| stat.pgrp == pgid && !stat.is_zombie())
}

/// Sends `signal` to one process. Returns whether it existed.
fn signal_process(pid: u32, signal: Signal) -> bool {
    pid > 1 && signal::kill(nix_pid(pid), signal) != Err(Errno::ESRCH)
}

/// Starts a graceful stop of a step whose process group is `pgid`: SIGTERM and SIGCONT to
/// the group, and to each member of the tree outside it (descendants of `root` that left the
/// group, token carriers and their descendants). Returns the pids that were signalled, the
/// group's members included.
pub(super) fn terminate_step(root: Option<u32>, pgid: u32, token: &str) -> HashSet<u32> {
    let entry = procfs::token_entry(token);
    // Scan first: a process forked between the scan and `killpg` still gets the signal,
    // it is merely not recorded (and may get a second SIGTERM from `terminate_newcomers`).
    let members = procfs::tree_members(root, Some(pgid), entry.as_deref());
    signal_group(pgid, Signal::SIGTERM);
    signal_group(pgid, Signal::SIGCONT);
    members
        .into_iter()
        .filter(|stat| stat.pgrp == pgid || terminate(stat.pid))
        .map(|stat| stat.pid)
        .collect()
}

/// SIGTERM and SIGCONT to the members of the tree (group `pgid` and token carriers) that are
/// not in `signalled` yet — started after the stop began, typically by a cleanup handler —
/// and records them.
pub(super) fn terminate_newcomers(pgid: u32, token: &str, signalled: &mut HashSet<u32>) {
    let entry = procfs::token_entry(token);
    for stat in procfs::tree_members(None, Some(pgid), entry.as_deref()) {
        if !signalled.contains(&stat.pid) && terminate(stat.pid) {
            signalled.insert(stat.pid);
        }
    }
}

/// SIGTERM, then SIGCONT so that a stopped process can act on it. Returns whether the
/// process existed.
fn terminate(pid: u32) -> bool {
    let existed = signal_process(pid, Signal::SIGTERM);
    if existed {
        signal_process(pid, Signal::SIGCONT);
    }
    existed
}

/// SIGKILLs the whole tree — `root` and its descendants, the process group `group`, the
/// token carriers, and their descendants — in rounds until two scans of `/proc` in a row
/// find no member left (or [`KILL_SETTLE`] has passed). Blocking. Returns the pids
/// signalled.
///
/// Two clean scans, because one can miss a process: during `execve` there is a moment when
/// `/proc/<pid>/environ` reads empty, and an orphan in that moment shows neither a parent
/// link nor the token.
pub(super) fn kill_tree(root: Option<u32>, group: Option<u32>, token: &str) -> HashSet<u32> {
    let entry = procfs::token_entry(token);
    let mut signalled = HashSet::new();
    if root.is_none() && group.is_none() && entry.is_none() {
        return signalled;
    }
    if let Some(group) = group {
        signal_group(group, Signal::SIGKILL);
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut clean_scans = 0;
    loop {
        let members = procfs::tree_members(root, group, entry.as_deref());
        clean_scans = if members.is_empty() {
            clean_scans + 1
        } else {
            0
        };
        if clean_scans == 2 || started.elapsed() > KILL_SETTLE {
            return signalled;
        }
        for stat in members {
            if signal_process(stat.pid, Signal::SIGKILL) {
                signalled.insert(stat.pid);
            }
        }
        // A killed process takes a moment to die; the next scan must not see it as a
        // survivor, nor miss a child it forked just before the signal.
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Stops every process whose environment carries `COREFLOW_KILL_TOKEN=<token>`, and their
/// descendants: SIGTERM (and SIGCONT), up to `grace` for them to exit, then SIGKILL for any
/// survivor and for anything they started meanwhile.
///
/// This is for leftovers — background processes a job's steps left running when the job
/// ends, or whole trees that outlived a crash of `coreflow`. It blocks for up to `grace` plus
/// a moment: call it from `spawn_blocking` or a plain thread. An empty token matches
/// nothing; a token ending in `*` matches every token starting with the rest (`cf-12-*`:
/// every process of run 12). Returns how many processes were signalled.
///
/// When nothing carries the token, the cost is one read of `/proc/<pid>/environ` per
/// process on the machine (about 6 µs each).
#[must_use = "the count tells whether anything was left over"]
pub fn kill_token_processes(token: &str, grace: Duration) -> usize {
    let Some(entry) = procfs::token_entry(token) else {
        return 0;
    };
    // The common case, nothing left over, takes one read per process.
    if procfs::token_carriers(&entry).is_empty() {
        return 0;
    }
    let members: Vec<u32> = procfs::tree_members(None, None, Some(&entry))
        .into_iter()
        .map(|stat| stat.pid)
        .collect();
    if members.is_empty() {
        return 0;
    }
    let mut signalled: HashSet<u32> = members.into_iter().filter(|&pid| terminate(pid)).collect();
    // No child handle to race here: poll the signalled pids, quickly at first.
    let deadline = Instant::now().checked_add(grace);
    let mut pause = Duration::from_millis(1);
    while signalled.iter().any(|&pid| procfs::is_alive(pid)) {
        let now = Instant::now();
        let Some(left) = deadline.map_or(Some(pause), |d| d.checked_duration_since(now)) else {
            break;
        };
        if left.is_zero() {
            break;
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    signalled.extend(kill_tree(None, None, token));
    signalled.len()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::{group_exists, kill_token_processes, kill_tree, signal_group};
    use crate::step::procfs::{KILL_TOKEN_VAR, is_alive, token_carriers, token_entry};

    /// Far above what anything here needs: reaching it means a hang.
    const HANG: Duration = Duration::from_secs(20);

    fn unique_token(name: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("kill-{name}-{}-{n}", std::process::id())
    }

    /// Starts `program args…` with the token in its own process group, and waits until it
    /// printed `ready`.
    fn start_program(program: &str, args: &[&str], token: &str) -> Child {
        let mut child = Command::new(program)
            .args(args)
            .env(KILL_TOKEN_VAR, token)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("the program starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        assert_eq!(line, "ready\n");
        child
    }

    /// Starts `sh -c script` as [`start_program`] does.
    fn start(script: &str, token: &str) -> Child {
        start_program("sh", &["-c", script], token)
    }

    fn live_carriers(token: &str) -> Vec<u32> {
        let entry = token_entry(token).expect("valid token");
        token_carriers(&entry)
            .into_iter()
            .filter(|&pid| is_alive(pid))
            .collect()
    }

    #[test]
    fn kills_orphans_and_escaped_sessions() {
        let token = unique_token("orphans");
        let mut child = start(
            "(sleep 1000 &); (setsid sleep 1000 &); echo ready; exec sleep 1000",
            &token,
        );
        // `exec` keeps the pid: the leader counts once, whatever moment the scan caught.
        assert_eq!(kill_token_processes(&token, Duration::from_secs(5)), 3);
        child.wait().expect("reap");
        assert_eq!(live_carriers(&token), Vec::<u32>::new());
        // Nothing left: a second call finds nothing.
        assert_eq!(kill_token_processes(&token, Duration::from_secs(5)), 0);
    }

    #[test]
    fn sends_term_first_and_lets_the_process_finish() {
        let token = unique_token("term");
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("marker");
        // Python rather than a shell trap: a shell that forks a child right when SIGTERM
        // comes may lose it in the child, which execs before acting on it.
        let script = format!(
            "import signal, sys, time\n\
             def on_term(*_):\n    open({marker:?}, 'w').write('got-term')\n    sys.exit(0)\n\
             signal.signal(signal.SIGTERM, on_term)\n\
             print('ready', flush=True)\n\
             time.sleep(1000)\n",
            marker = marker.display().to_string()
        );
        let mut child = start_program("python3", &["-c", &script], &token);
        assert_eq!(kill_token_processes(&token, HANG), 1);
        assert!(child.wait().expect("reap").success());
        assert_eq!(
            fs::read_to_string(&marker).expect("handler ran"),
            "got-term"
        );
        assert!(live_carriers(&token).is_empty());
    }

    #[test]
    fn kills_after_the_grace_when_term_is_ignored() {
        let token = unique_token("ignore");
        let mut child = start("trap '' TERM; echo ready; sleep 1000", &token);
        let count = kill_token_processes(&token, Duration::from_millis(100));
        assert_eq!(count, 2);
        let status = child.wait().expect("reap");
        assert_eq!(status.signal(), Some(9));
        assert!(live_carriers(&token).is_empty());
    }

    #[test]
    fn a_star_token_kills_every_token_with_the_prefix() {
        let prefix = unique_token("prefix");
        let mut one = start("echo ready; exec sleep 1000", &format!("{prefix}-1"));
        let mut two = start("echo ready; exec sleep 1000", &format!("{prefix}-2"));
        let mut other = start("echo ready; exec sleep 1000", &format!("{prefix}x-1"));
        let pattern = format!("{prefix}-*");
        assert_eq!(kill_token_processes(&pattern, HANG), 2);
        one.wait().expect("reap");
        two.wait().expect("reap");
        assert!(live_carriers(&pattern).is_empty());
        // A token that only shares the text before the dash is not matched.
        assert_eq!(live_carriers(&format!("{prefix}x-1")), vec![other.id()]);
        assert_eq!(kill_token_processes(&format!("{prefix}x-1"), HANG), 1);
        other.wait().expect("reap");
    }

    #[test]
    fn empty_token_kills_nothing() {
        assert_eq!(kill_token_processes("", Duration::ZERO), 0);
        assert!(kill_tree(None, None, "").is_empty());
    }

    #[test]
    fn group_signals() {
        let token = unique_token("group");
        let mut child = start("echo ready; sleep 1000 & wait", &token);
        let pgid = child.id();
        assert!(group_exists(pgid));
        assert!(signal_group(pgid, Signal::SIGKILL));
        child.wait().expect("reap");
        // The background sleep was in the group too; once it is reaped by init, the group
        // is gone. Kill leftovers first so the test never leaks a process.
        let _ = kill_token_processes(&token, Duration::ZERO);
        assert!(live_carriers(&token).is_empty());
        assert!(!signal_group(0, Signal::SIGTERM));
        assert!(!signal_group(1, Signal::SIGTERM));
        assert!(!group_exists(1));
    }
}
