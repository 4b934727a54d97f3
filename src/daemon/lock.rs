//! The environment's daemon lock: an exclusive `flock` on `<env>/daemon.lock`, holding the
//! owner's pid. The kernel releases it however the daemon ends (even `kill -9`), so a stale
//! file never blocks a restart.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::daemon::config::DaemonError;

/// Takes the environment's daemon lock, or says who holds it. The lock lasts as long as the
/// returned file is open.
///
/// # Errors
/// Another daemon holds it ([`DaemonError::Locked`] with its pid), or the lock file cannot
/// be opened.
pub fn lock(env: &Path) -> Result<File, DaemonError> {
    let path = env.join("daemon.lock");
    let mut file = crate::store::private::file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DaemonError::Start(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(DaemonError::Locked(if holder.is_empty() {
            "unknown".to_owned()
        } else {
            holder.to_owned()
        }));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        match lock(dir.path()) {
            Err(DaemonError::Locked(pid)) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        assert!(lock(dir.path()).is_ok());
    }
}
