//! [`Owner`]: which process drives a run, and whether that process still lives.
//!
//! A run records its owner (pid, the process's start time and the host name) so that the next
//! command on the environment can tell a run whose process died (kill -9, power loss) from one
//! still in progress. The pid alone is not enough: after a reboot or a long time it may belong to
//! another process, so the start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot)
//! must match as well. Killing leftover step processes is left to the caller.

use std::fs;
use std::io;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::signal;
use nix::unistd::Pid;
use serde::Serialize;

/// The process that owns a run: the one that executes it and will finish it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// The process start time in clock ticks since boot (`/proc/<pid>/stat` field 22), or 0
    /// where `/proc` is not available.
    pub start_time: u64,
    /// The host the process runs on, as [`host_identity`] names it.
    pub host: String,
}

impl Owner {
    /// The current process.
    #[must_use]
    pub fn current() -> Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                let start_time = match process_status(pid) {
                    Ok(Some(status)) => status.start_time,
                    _ => 0,
                };
                Owner {
                    pid,
                    start_time,
                    host: host_identity().to_owned(),
                }
            })
            .clone()
    }

    /// The live process `pid` on this host, or `None` when there is no such process.
    #[must_use]
    pub fn of_pid(pid: u32) -> Option<Owner> {
        match process_status(pid) {
            Ok(Some(status)) if !status.is_dead => Some(Owner {
                pid,
                start_time: status.start_time,
                host: host_identity().to_owned(),
            }),
            _ => None,
        }
    }
}

/// Whether `owner` is still running, as far as this host can tell.
///
/// A process on another host is taken as alive: only its own host (or a lease, later) can
/// declare it gone. On this host the process must exist, not be a zombie, and have the recorded
/// start time; an unreadable `/proc` entry (permissions) counts as alive, to stay on the safe
/// side.
#[must_use]
pub fn owner_is_alive(owner: &Owner) -> bool {
    if !is_this_host(&owner.host) {
        return true;
    }
    if !has_proc() {
        return pid_exists(owner.pid);
    }
    match process_status(owner.pid) {
        Ok(Some(status)) => !status.is_dead && status.start_time == owner.start_time,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// How records name the host of a process: its host name and, after `@`, a tag of the
/// kernel's boot and the PID namespace (`build-1@3fa2c1d0`). Two processes are on "this
/// host" — where one can look the other up in `/proc` — only when both agree: containers
/// sharing the machine's host name (`--network host`) or cloned machines with one name are
/// other hosts, whose processes only their leases can declare gone.
#[must_use]
pub fn host_identity() -> &'static str {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let pid_namespace = fs::read_link("/proc/self/ns/pid")
            .map(|link| link.display().to_string())
            .unwrap_or_default();
        if boot.is_empty() && pid_namespace.is_empty() {
            return host_name().to_owned();
        }
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}\n{pid_namespace}", boot.trim()).as_bytes());
        let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}@{tag}", host_name())
    })
}

/// Whether a recorded host is this one: its [`host_identity`], or its bare name as versions
/// before the identity recorded it (so that their dead processes are still found).
#[must_use]
pub fn is_this_host(recorded: &str) -> bool {
    recorded == host_identity() || recorded == host_name()
}

/// The name of this host, read once.
#[must_use]
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let from_proc = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        if !from_proc.is_empty() {
            return from_proc;
        }
        match std::env::var("HOSTNAME") {
            Ok(name) if !name.is_empty() => name,
            _ => "localhost".to_owned(),
        }
    })
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessStatus {
    /// Zombie (`Z`) or dead (`X`): the process has exited.
    is_dead: bool,
    /// Field 22, `starttime`.
    start_time: u64,
}

fn has_proc() -> bool {
    static HAS_PROC: OnceLock<bool> = OnceLock::new();
    *HAS_PROC.get_or_init(|| fs::metadata("/proc/self/stat").is_ok())
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when the process does not exist.
fn process_status(pid: u32) -> io::Result<Option<ProcessStatus>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format"))
}

/// Parses the state and start time out of a `stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcessStatus> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the state; field 22 is 19 further on.
    let state = fields.next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcessStatus {
        is_dead: matches!(state, "Z" | "X" | "x"),
        start_time,
    })
}

/// Fallback without `/proc`: signal 0 tells whether the pid exists.
fn pid_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(signal::kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::{Owner, host_identity, host_name, is_this_host, owner_is_alive, parse_stat};

    #[test]
    fn the_host_identity_tells_containers_with_one_name_apart() {
        let me = Owner::current();
        assert!(
            host_identity().starts_with(&format!("{}@", host_name())),
            "{}",
            host_identity()
        );
        assert!(is_this_host(&me.host));
        // This very process, recorded as running in another PID namespace of a machine with
        // the same name: not ours to look up, so alive whatever /proc here says.
        let elsewhere = Owner {
            host: format!("{}@00000000", host_name()),
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!is_this_host(&elsewhere.host));
        assert!(owner_is_alive(&elsewhere));
        // The same mismatch recorded here is a dead process; so is one recorded under the
        // bare name, as versions before the identity wrote it.
        let here = Owner {
            host: host_identity().to_owned(),
            ..elsewhere.clone()
        };
        assert!(!owner_is_alive(&here));
        let old = Owner {
            host: host_name().to_owned(),
            ..elsewhere
        };
        assert!(!owner_is_alive(&old));
    }

    use std::process::Command;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        let status = parse_stat(line).unwrap();
        assert_eq!(status.start_time, 987_654);
        assert!(!status.is_dead);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn current_process_is_alive_and_reaped_child_is_not() {
        let me = Owner::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start_time > 0);
        assert!(owner_is_alive(&me));

        // The same pid with another start time is a reused pid: not our owner.
        let reused = Owner {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!owner_is_alive(&reused));

        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Owner {
            pid,
            start_time: 1,
            host: host_name().to_owned(),
        };
        assert!(!owner_is_alive(&gone));

        // Another host's process cannot be judged from here.
        let remote = Owner {
            host: format!("{}-elsewhere", host_name()),
            ..gone
        };
        assert!(owner_is_alive(&remote));
        assert_eq!(Owner::of_pid(me.pid), Some(me));
    }
}
