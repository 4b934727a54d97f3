//! Opening the environment a command works on, and recovering lost work on the way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::args::GlobalArgs;
use crate::error::Error;
use crate::store::{SqliteStore, Store, owner_is_alive};

/// The environment directory: `--env`, `COREFLOW_ENV`, or `./.coreflow`.
#[must_use]
pub(super) fn env_dir(global: &GlobalArgs) -> PathBuf {
    PathBuf::from(global.env.last().map_or(".coreflow", String::as_str))
}

/// Opens the environment and settles work whose owner died (SPEC §3: nothing stays
/// `running` forever): lost jobs are failed with reason `lost`, and their leftover
/// processes are killed.
///
/// # Errors
/// The environment cannot be opened or is not a CoreFlow database (exit 3).
pub(super) fn open(global: &GlobalArgs) -> Result<Arc<SqliteStore>, Error> {
    open_dir(&env_dir(global))
}

/// Opens one environment folder, as [`open`] does.
///
/// # Errors
/// As [`open`].
pub(super) fn open_dir(dir: &std::path::Path) -> Result<Arc<SqliteStore>, Error> {
    let dir = dir.to_path_buf();
    if dir.to_string_lossy().starts_with("postgres://")
        || dir.to_string_lossy().starts_with("postgresql://")
    {
        return Err(Error::Environment(
            "PostgreSQL environments are not supported yet".to_owned(),
        ));
    }
    let store = SqliteStore::open(&dir).map_err(|e| Error::Environment(e.to_string()))?;
    let lost = store.recover_lost(&owner_is_alive).map_err(|e| {
        if e.is_environment() {
            Error::Environment(e.to_string())
        } else {
            Error::Usage(e.to_string())
        }
    })?;
    for job in lost {
        if let Some(token) = job.kill_token {
            let _ = crate::worker::kill_token_processes(&token, Duration::from_secs(2));
        }
    }
    Ok(Arc::new(store))
}

/// Maps a store error met while working to the command's error.
pub(super) fn store_error(err: &crate::store::Error) -> Error {
    if err.is_environment() {
        Error::Environment(err.to_string())
    } else {
        Error::Usage(err.to_string())
    }
}
