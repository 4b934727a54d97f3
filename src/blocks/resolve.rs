//! Turning `NAME` or `NAME@VERSION` into a registered version, with the errors a user needs,
//! and fixing a run's `datablock` parameters to versions before anything starts.
//!
//! A run records `name@version` for every `datablock` parameter (SPEC §7), so its steps, its
//! `show` and a later `retry` all see the version that was newest when the run was created,
//! however many versions are published meanwhile.

use crate::spec::diag::suggest;
use crate::spec::model::{ParamType, Workflow};
use crate::spec::params::{Overrides, ParamValue, Values};

use super::error::Error;
use super::reference::BlockRef;
use crate::store::{BlockStore, BlockVersion};

/// The version `reference` names: its number, or the newest not removed.
///
/// # Errors
/// [`Error::UnknownBlock`] (with a suggestion), [`Error::UnknownVersion`],
/// [`Error::Removed`], or a store failure.
pub fn resolve(store: &dyn BlockStore, reference: &BlockRef) -> Result<BlockVersion, Error> {
    let name = &reference.name;
    if let Some(found) = store.block_version(name, reference.version)? {
        if found.is_removed() {
            return Err(Error::Removed {
                name: found.name,
                version: found.version,
            });
        }
        return Ok(found);
    }
    let versions = store.block_versions(name)?;
    match (versions.first(), reference.version) {
        (Some(newest), Some(version)) => Err(Error::UnknownVersion {
            name: name.clone(),
            version,
            newest: newest.version,
        }),
        // Every version was removed.
        (Some(newest), None) => Err(Error::Removed {
            name: name.clone(),
            version: newest.version,
        }),
        (None, _) => {
            let known = store.block_names()?;
            Err(Error::UnknownBlock {
                name: name.clone(),
                suggestion: suggest(name, known.iter().map(|b| b.latest.name.as_str())),
            })
        }
    }
}

/// Fixes every `datablock` parameter of a run to `name@version`: the workflow-level values
/// in `values` and the job-level ones of `-p JOB.NAME=…` in `overrides`. A job's own
/// `params:` value is resolved when the job starts.
///
/// # Errors
/// The first parameter whose block or version does not exist, as [`Error::Param`].
pub fn pin_params(
    store: &dyn BlockStore,
    workflow: &Workflow,
    values: &mut Values,
    overrides: &mut Overrides,
) -> Result<(), Error> {
    let is_block = |param: &str| {
        workflow
            .params
            .get(param)
            .is_some_and(|p| p.kind == ParamType::Datablock)
    };
    let context = |param: &str| {
        let param = param.to_owned();
        move |source: Error| Error::Param {
            param,
            source: Box::new(source),
        }
    };
    for (param, value) in values.iter_mut() {
        if !is_block(param) {
            continue;
        }
        if let ParamValue::DataBlock { name, version } = value {
            let reference = BlockRef {
                name: name.clone(),
                version: *version,
            };
            let found = resolve(store, &reference).map_err(context(param))?;
            *version = Some(found.version);
        }
    }
    for (_, param, text) in &mut overrides.jobs {
        if !is_block(param) {
            continue;
        }
        let reference = BlockRef::parse(text).map_err(context(param))?;
        let found = resolve(store, &reference).map_err(context(param))?;
        *text = found.label();
    }
    Ok(())
}
