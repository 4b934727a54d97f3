//! The environment folder is private to its owner (SPEC §7): folders 0700 and files 0600
//! (0400 for read-only content), whatever the umask, because it holds every run's logs and
//! parameters. Everything CoreFlow creates under it goes through [`create_dir_all`] and
//! [`file_options`]; [`tighten`] closes an environment made by an older version.
//!
//! Files a user asks for outside it (`--junit`, `blocks get`, `man`) are not made here: they
//! follow the umask like any file a program writes.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of the environment's folders.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the environment's files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents as private folders. Folders that exist keep their
/// mode (the environment's root is closed by [`tighten`]).
///
/// # Errors
/// As [`DirBuilder::create`].
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Options that create a file private to its owner.
#[must_use]
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Makes an environment folder private: when its root is open to others (made by an older
/// CoreFlow, or by hand), removes group and other permissions from the root and from
/// everything under the entries CoreFlow owns in it (`owned`: names in the root). Whatever
/// else a user keeps in that folder is left alone. Returns how many entries were changed (0
/// when the root was private already, so a private environment costs one `stat`).
///
/// # Errors
/// The root cannot be read or changed.
pub fn tighten(root: &Path, owned: &[&str]) -> io::Result<usize> {
    let mode = fs::metadata(root)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(0);
    }
    let mut changed = usize::from(close(root)?);
    let mut pending: Vec<_> = owned.iter().map(|name| root.join(name)).collect();
    while let Some(path) = pending.pop() {
        // An entry that does not exist (yet), or vanished meanwhile (a finished run's
        // scratch), is no concern.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            changed += usize::from(close(&path)?);
            if let Ok(entries) = fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|entry| entry.path()));
            }
        } else if meta.is_file() {
            changed += usize::from(close(&path).unwrap_or(false));
        }
    }
    Ok(changed)
}

/// Removes group and other permissions from one entry; whether it had any.
fn close(path: &Path) -> io::Result<bool> {
    let mode = fs::symlink_metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, Permissions::from_mode(mode & 0o7700))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn opened_environments_are_closed_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("env");
        fs::create_dir_all(root.join("logs/1")).unwrap();
        fs::write(root.join("logs/1/a.log"), "secret").unwrap();
        fs::set_permissions(root.join("logs/1/a.log"), Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(root.join("logs"), Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(root.join("logs/1"), Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("notes.txt"), "the user's").unwrap();
        fs::set_permissions(root.join("notes.txt"), Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten(&root, &["logs", "coreflow.db"]).unwrap(), 4);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("logs")), 0o700);
        assert_eq!(mode(&root.join("logs/1/a.log")), 0o600);
        // What CoreFlow does not own is not touched.
        assert_eq!(mode(&root.join("notes.txt")), 0o644);
        // A private root is not walked again.
        fs::set_permissions(root.join("logs/1/a.log"), Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten(&root, &["logs"]).unwrap(), 0);
    }

    #[test]
    fn created_entries_are_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        let file = nested.join("f");
        file_options().create(true).write(true).open(&file).unwrap();
        // The umask can only remove bits: nothing beyond the owner's can appear.
        assert_eq!(mode(&dir.path().join("a")) & 0o077, 0);
        assert_eq!(mode(&nested) & 0o077, 0);
        assert_eq!(mode(&file) & 0o077, 0);
    }
}
