//! Opening the environment a command works on, and recovering lost work on the way.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::args::GlobalArgs;
use crate::error::Error;
use crate::store::Env;
use crate::store::{owner_is_alive, owner_token_prefix};

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
pub(super) fn open(global: &GlobalArgs) -> Result<Env, Error> {
    open_dir(&env_dir(global), global)
}

/// Opens one environment folder, as [`open`] does.
///
/// # Errors
/// As [`open`].
pub(super) fn open_dir(dir: &std::path::Path, global: &GlobalArgs) -> Result<Env, Error> {
    let dir = dir.to_path_buf();
    let options = crate::store::OpenOptions {
        clock: None,
        blocks: global.blocks.clone(),
    };
    let store =
        crate::store::open_with(&dir, &options).map_err(|e| Error::Environment(e.to_string()))?;
    tracing::debug!(env = %dir.display(), "environment opened");
    let lost = store.recover_lost(&owner_is_alive)?;
    // One scan per dead run finds every process its owner started, also those of jobs it
    // had not recorded as running yet; a job's own token only matters outside that pattern.
    let prefixes: Vec<String> = lost
        .runs
        .iter()
        .map(|(run, owner)| owner_token_prefix(*run, owner))
        .collect();
    let tokens = prefixes.iter().map(|prefix| format!("{prefix}*")).chain(
        lost.jobs
            .into_iter()
            .filter_map(|job| job.kill_token)
            .filter(|token| {
                !prefixes
                    .iter()
                    .any(|prefix| token.starts_with(prefix.as_str()))
            }),
    );
    for (run, owner) in &lost.runs {
        tracing::info!(
            run = run.0,
            owner_pid = owner.pid,
            "run failed: its owner is gone"
        );
    }
    for token in tokens {
        let killed = crate::step::kill_token_processes(&token, Duration::from_secs(2));
        if killed > 0 {
            tracing::info!(token, killed, "leftover processes stopped");
        }
    }
    Ok(store)
}
