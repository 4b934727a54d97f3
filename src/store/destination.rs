//! Opening the destination of `coreflow env copy`: it must exist empty or be created —
//! a missing or empty folder (SQLite), or a database or schema without CoreFlow data — and
//! a SQLite folder a failed copy wrote into is emptied again ([`Destination::discard`]).

use std::path::{Path, PathBuf};

use super::copy::{CopyError, describe_contents};
use super::environment::{Env, OpenOptions, is_database_url, open_with};
use super::error::Error;

/// A destination opened for a copy, and how to take it back when the copy fails.
pub struct Destination {
    pub env: Env,
    /// A SQLite folder that was missing or empty: emptied again when the copy fails (a
    /// retry would find it not empty).
    new_folder: Option<NewFolder>,
}

struct NewFolder {
    path: PathBuf,
    existed: bool,
}

impl Destination {
    /// Takes back what opening and a failed copy left in a SQLite folder: the folder
    /// itself when it did not exist, else its entries (it had none). A PostgreSQL
    /// destination keeps its (empty) tables.
    pub fn discard(self) {
        let Destination { env, new_folder } = self;
        drop(env);
        let Some(folder) = new_folder else {
            return;
        };
        if !folder.existed {
            let _ = std::fs::remove_dir_all(&folder.path);
            return;
        }
        if let Ok(entries) = std::fs::read_dir(&folder.path) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
}

/// Opens the destination of a copy, refusing one that is not empty: a folder holding any
/// file (checked before anything is created in it), or a database holding CoreFlow data.
///
/// # Errors
/// [`CopyError::NotEmpty`], or the destination cannot be opened (exit 3).
pub fn open_destination(location: &Path, options: &OpenOptions) -> Result<Destination, CopyError> {
    let shown = || location.display().to_string();
    let mut new_folder = None;
    if !is_database_url(location) {
        match std::fs::read_dir(location) {
            Ok(mut entries) => {
                if let Some(entry) = entries.next() {
                    let first = entry
                        .map(|entry| entry.file_name().to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return Err(CopyError::NotEmpty {
                        location: shown(),
                        holds: format!("the folder holds `{first}`"),
                    });
                }
                new_folder = Some(NewFolder {
                    path: location.to_owned(),
                    existed: true,
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                new_folder = Some(NewFolder {
                    path: location.to_owned(),
                    existed: false,
                });
            }
            Err(error) => {
                return Err(CopyError::Store(Error::Environment {
                    path: location.to_owned(),
                    detail: error.to_string(),
                }));
            }
        }
    }
    let env = open_with(location, options)?;
    let destination = Destination { env, new_folder };
    let contents = match destination.env.contents() {
        Ok(contents) => contents,
        Err(error) => {
            destination.discard();
            return Err(error.into());
        }
    };
    if !contents.is_empty() {
        let location = destination.env.location();
        // A folder was checked empty above: only a database gets here.
        destination.discard();
        return Err(CopyError::NotEmpty {
            location,
            holds: describe_contents(&contents),
        });
    }
    Ok(destination)
}
