//! The engine's two DataBlock hooks around one job attempt (the content store and the
//! registry they use are [`crate::blocks`]).
//!
//! [`materialise_inputs`], before the first step: every `inputs: { x: job.block }` entry and
//! every `datablock` parameter is resolved to a version, placed read-only at
//! `<workspace>/.coreflow-inputs/<job id>/<NAME>/<file name>` (hard links to the content
//! store where the file system allows, copies otherwise), and announced to the steps as
//! `COREFLOW_INPUT_<NAME>`; a `datablock` parameter's `COREFLOW_PARAM_<NAME>` shows the
//! resolved `name@version`. What was read is recorded for lineage. A block that cannot be
//! found fails the attempt before any step starts.
//!
//! [`finish_attempt`], after the last step: when the attempt succeeded, every declared
//! `datablocks` path is stored and published in one registry transaction — a failed
//! attempt publishes nothing, and a path that is missing fails the attempt. Then the
//! materialised inputs are removed.
//!
//! Jobs that declare no blocks and read none pay nothing: no thread, no database access.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::JobFailure;
use crate::engine::attempt::{AttemptInput, AttemptOutcome};
use crate::engine::shared::RunShared;
use crate::spec::env_key;
use crate::spec::params::ParamValue;
use crate::state::JobState;

use crate::blocks::{
    Access, BlockKind, BlockRef, BlockVersion, Content, Error, INPUTS_DIR, JobAttempt, NewBlock,
    Published, Stored, remove_tree, resolve,
};

/// The inputs materialised for one attempt: the variables its steps see, and the folder to
/// remove when it ends.
#[derive(Debug, Default)]
pub struct Inputs {
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Inputs {
    /// `COREFLOW_INPUT_<NAME>` (and, for parameters, `COREFLOW_PARAM_<NAME>`) values.
    #[must_use]
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

/// Where one input comes from.
#[derive(Debug, Clone)]
enum Source {
    /// `inputs: { name: producer.block }`: what that job published in this run.
    Output { producer: String, block: String },
    /// A `datablock` parameter.
    Param(BlockRef),
}

/// One input to materialise under `name`.
#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    source: Source,
}

fn attempt_of(shared: &RunShared, input: &AttemptInput) -> JobAttempt {
    JobAttempt {
        run_id: shared.run_id,
        workflow: shared.workflow_name.clone(),
        job_id: input.job,
        job: input.name.clone(),
        job_base: input.base.clone(),
        attempt: input.attempt,
    }
}

/// Everything of a job a reference can stand in (steps, env, metadata, paths…) and the
/// workflow's `env`, as one text to search.
fn job_texts(shared: &RunShared, job: &crate::spec::model::Job) -> String {
    let mut texts = serde_json::to_string(job).unwrap_or_default();
    texts.push_str(&serde_json::to_string(&shared.workflow.env).unwrap_or_default());
    texts
}

/// Whether a job reads the datablock parameter `param`: a template names `params.PARAM`, or
/// the text names `$COREFLOW_INPUT_PARAM` (SPEC §2: its content is there).
fn reads_block_param(texts: &str, param: &str) -> bool {
    let variable = format!("COREFLOW_INPUT_{}", env_key(param));
    let reference = format!("params.{param}");
    texts.contains(&variable)
        || texts.match_indices(&reference).any(|(at, _)| {
            // `params.src` is not read by `params.src_old`.
            texts[at + reference.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'))
        })
}

/// Materialises the job's inputs in `workdir` (see the module docs).
///
/// # Errors
/// The reason the attempt fails: a block, version or publication that does not exist, or a
/// file that cannot be placed.
pub async fn materialise_inputs(
    shared: &Arc<RunShared>,
    input: &AttemptInput,
    workdir: &Path,
) -> Result<Inputs, JobFailure> {
    let job_def = &shared.workflow.jobs[input.base.as_str()];
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut texts = None;
    for (param, value) in &input.context.params {
        if let ParamValue::DataBlock { name, version } = value {
            // Only where the job reads it: a run's block parameter is not copied into every job.
            let texts = texts.get_or_insert_with(|| job_texts(shared, job_def));
            if !reads_block_param(texts, param) {
                continue;
            }
            wanted.push(Wanted {
                name: param.clone(),
                source: Source::Param(BlockRef {
                    name: name.clone(),
                    version: *version,
                }),
            });
        }
    }
    for (name, source) in &job_def.inputs {
        let Some((producer, block)) = source.split_once('.') else {
            return Err(JobFailure(format!(
                "input `{name}` must name `job.block`, found `{source}`"
            )));
        };
        // An input of the same name as a parameter wins: it is the job's own choice.
        wanted.retain(|w| w.name != *name);
        wanted.push(Wanted {
            name: name.clone(),
            source: Source::Output {
                producer: producer.to_owned(),
                block: block.to_owned(),
            },
        });
    }
    if wanted.is_empty() {
        return Ok(Inputs::default());
    }
    let store = Arc::clone(&shared.store);
    let attempt = attempt_of(shared, input);
    let dir = workdir.join(INPUTS_DIR).join(input.job.to_string());
    let placed = tokio::task::spawn_blocking(move || {
        let result = place_inputs(&*store, &attempt, &wanted, &dir);
        if result.is_err() {
            remove_inputs(&dir);
        }
        result
    })
    .await
    .map_err(|error| format!("cannot materialise the job's inputs: {error}"))?;
    Ok(placed?)
}

fn place_inputs(
    store: &dyn crate::store::Environment,
    attempt: &JobAttempt,
    wanted: &[Wanted],
    dir: &Path,
) -> Result<Inputs, String> {
    let content = Content::of(store).map_err(|e| e.to_string())?;
    let _hold = content.lock_shared().map_err(|e| e.to_string())?;
    // A folder left by an attempt that crashed is replaced.
    remove_tree(dir).map_err(|e| Error::io("remove", dir)(e).to_string())?;
    create_dir_racing(dir).map_err(|e| Error::io("create", dir)(e).to_string())?;
    let mut env = Vec::with_capacity(wanted.len() * 2);
    let mut consumed = Vec::with_capacity(wanted.len());
    for want in wanted {
        let fail = |error: &dyn std::fmt::Display| format!("input `{}`: {error}", want.name);
        let version = match &want.source {
            Source::Output { producer, block } => store
                .published_in_run(attempt.run_id, producer, block)
                .map_err(|e| fail(&e))?
                .ok_or_else(|| {
                    fail(&format!(
                        "job `{producer}` published no DataBlock `{block}` in run {}",
                        attempt.run_id
                    ))
                })?,
            Source::Param(reference) => resolve(store, reference).map_err(|e| fail(&e))?,
        };
        if version.is_removed() {
            let removed = Error::Removed {
                name: version.name,
                version: version.version,
            };
            return Err(fail(&removed));
        }
        let path = place(&content, &version, &dir.join(&want.name)).map_err(|e| fail(&e))?;
        env.push((
            format!("COREFLOW_INPUT_{}", env_key(&want.name)),
            path.display().to_string(),
        ));
        if matches!(want.source, Source::Param(_)) {
            env.push((
                format!("COREFLOW_PARAM_{}", env_key(&want.name)),
                version.label(),
            ));
        }
        consumed.push((want.name.clone(), version.id));
    }
    store
        .record_consumption(attempt, &consumed, store.clock().now())
        .map_err(|e| format!("cannot record the job's inputs: {e}"))?;
    Ok(Inputs {
        dir: Some(dir.to_owned()),
        env,
    })
}

/// Places one version in a new folder `slot`; returns the path steps see.
fn place(content: &Content, version: &BlockVersion, slot: &Path) -> Result<PathBuf, Error> {
    if !content.fetch(&version.hash, version.kind)? {
        return Err(Error::MissingContent {
            name: version.name.clone(),
            version: version.version,
            path: content.cas().content_path(&version.hash, version.kind),
        });
    }
    fs::create_dir_all(slot).map_err(Error::io("create", slot))?;
    let path = slot.join(consumer_file_name(version));
    content.cas().materialise(
        &version.hash,
        version.kind,
        version.executable,
        &path,
        Access::ReadOnly,
    )?;
    Ok(path)
}

/// The name a consumer sees: the published file or folder name, unless it could step out of
/// its folder.
fn consumer_file_name(version: &BlockVersion) -> &str {
    let name = version.file_name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        &version.name
    } else {
        name
    }
}

/// Creates `dir` and its parents, trying again when another job's [`remove_inputs`] removed
/// the shared `.coreflow-inputs` folder between the two `mkdir`s.
fn create_dir_racing(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match fs::create_dir_all(dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// Removes an attempt's inputs folder, and the parent `.coreflow-inputs` once empty.
fn remove_inputs(dir: &Path) {
    let _ = remove_tree(dir);
    if let Some(parent) = dir.parent() {
        // Fails, as it should, while another job's inputs are still there.
        let _ = fs::remove_dir(parent);
    }
}

/// Publishes the job's `datablocks` when the attempt succeeded, then removes its inputs. A
/// failure to publish turns the attempt into a failure with the reason.
pub async fn finish_attempt(
    shared: &Arc<RunShared>,
    input: &AttemptInput,
    workdir: &Path,
    inputs: Inputs,
    outcome: &mut AttemptOutcome,
) {
    let job_def = &shared.workflow.jobs[input.base.as_str()];
    let publish = outcome.state == JobState::Succeeded && !job_def.datablocks.is_empty();
    if !publish && inputs.dir.is_none() {
        return;
    }
    let mut declared = Vec::new();
    if publish {
        let value = crate::engine::context::LazyValue::default();
        for (name, decl) in &job_def.datablocks {
            let what = format!("`datablocks.{name}.path`");
            match input.context.render(&value, decl.path.as_str(), &what) {
                Ok(path) => declared.push((name.clone(), workdir.join(path))),
                Err(reason) => {
                    fail(outcome, reason);
                    break;
                }
            }
        }
    }
    let publish = publish && outcome.state == JobState::Succeeded;
    let store = Arc::clone(&shared.store);
    let attempt = attempt_of(shared, input);
    let result = tokio::task::spawn_blocking(move || {
        let result = if publish {
            publish_blocks(&*store, &attempt, &declared)
        } else {
            Ok(Vec::new())
        };
        if let Some(dir) = &inputs.dir {
            remove_inputs(dir);
        }
        result
    })
    .await;
    match result {
        Ok(Ok(_published)) => {}
        Ok(Err(reason)) => fail(outcome, reason),
        Err(error) => fail(
            outcome,
            format!("cannot publish the job's DataBlocks: {error}"),
        ),
    }
}

fn fail(outcome: &mut AttemptOutcome, reason: impl Into<String>) {
    outcome.state = JobState::Failed;
    outcome.reason = Some(reason.into());
}

/// Stores every declared path, then registers them all at once.
fn publish_blocks(
    store: &dyn crate::store::Environment,
    attempt: &JobAttempt,
    declared: &[(String, PathBuf)],
) -> Result<Vec<Published>, String> {
    let content = Content::of(store).map_err(|e| e.to_string())?;
    let _hold = content.lock_shared().map_err(|e| e.to_string())?;
    // A job that publishes its whole workspace must not publish the environment in it.
    let environment = content.cas().root().parent().map(Path::to_path_buf);
    let mut blocks = Vec::with_capacity(declared.len());
    for (name, path) in declared {
        let fail =
            |error: &dyn std::fmt::Display| format!("cannot publish DataBlock `{name}`: {error}");
        if !crate::spec::params::is_valid_block_name(name) {
            return Err(fail(&Error::InvalidName(name.clone())));
        }
        // The newest version, if any: unchanged content is then recognised by hashing alone.
        let previous = store
            .block_version(name, None)
            .map_err(|e| fail(&e))?
            .map(|v| Stored {
                hash: v.hash,
                kind: v.kind,
                size: v.size,
                files: v.files,
                executable: v.executable,
            });
        let stored = content
            .publish(path, environment.as_deref(), previous.as_ref())
            .map_err(|e| fail(&e))?;
        let file_name = path
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned());
        blocks.push(NewBlock {
            name: name.clone(),
            hash: stored.hash,
            kind: stored.kind,
            size: stored.size,
            files: stored.files,
            file_name,
            executable: stored.kind == BlockKind::File && stored.executable,
        });
    }
    store
        .publish_blocks(attempt, &blocks, store.clock().now())
        .map_err(|e| format!("cannot register the job's DataBlocks: {e}"))
}
