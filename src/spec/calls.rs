//! Checks across workflow files: a `workflow:` job naming a file (`*.yaml`, `*.yml`,
//! relative to the calling file's folder) is loaded and checked with its caller — the
//! called file must be valid, `with:` must give parameters it declares, with values of their
//! types where they are not templates, and every required one — and a cycle of calls is an
//! error naming the chain (`a.yaml -> b.yaml -> a.yaml`). A `workflow:` naming a workflow the
//! environment knows is checked when the job starts.

use std::path::{Path, PathBuf};

use crate::spec::diag::{Diagnostic, Pos, suggest};
use crate::spec::load::{LoadError, Loaded, load_file};
use crate::spec::model::Job;
use crate::spec::params::check_value;
use crate::spec::yaml::Node;

/// Reads and checks a workflow file and the files it calls.
///
/// # Errors
/// The file cannot be read, or it has problems (all of them, sorted by position), its
/// calls' included.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_called(path, &[identity(path)])
}

/// [`load`] for a file called through `chain` (which ends with the file itself).
fn load_called(path: &Path, chain: &[PathBuf]) -> Result<Loaded, LoadError> {
    let loaded = load_file(path)?;
    let mut diagnostics = check(&loaded, chain);
    if diagnostics.is_empty() {
        return Ok(loaded);
    }
    diagnostics.sort_by_key(|d| d.pos);
    Err(LoadError {
        file: loaded.file,
        source: loaded.source,
        diagnostics,
        io: None,
    })
}

/// Whether a `workflow:` value is a file rather than the name of a known workflow.
#[must_use]
pub fn is_workflow_file(called: &str) -> bool {
    let called = called.trim();
    called.ends_with(".yaml") || called.ends_with(".yml")
}

/// The file a `workflow:` value names, for a caller in `dir`.
#[must_use]
pub fn called_path(dir: &Path, called: &str) -> PathBuf {
    if dir == Path::new(".") {
        return PathBuf::from(called.trim());
    }
    dir.join(called.trim())
}

/// A file's identity in a chain of calls: its canonical path where it exists.
pub(crate) fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The problems of `loaded`'s calls to other files; `chain` holds the files calling it, then
/// itself.
fn check(loaded: &Loaded, chain: &[PathBuf]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, job) in &loaded.workflow.jobs {
        let Some(called) = job.workflow.as_deref() else {
            continue;
        };
        if !is_workflow_file(called) {
            continue;
        }
        let job_node = loaded.root.get("jobs").and_then(|jobs| jobs.get(name));
        let at = |node: Option<&Node>| node.map_or(loaded.root.pos, |node| node.pos);
        let pos = at(job_node.and_then(|job| job.get("workflow")));
        let path = called_path(&loaded.dir, called);
        let id = identity(&path);
        if let Some(start) = chain.iter().position(|file| *file == id) {
            let names: Vec<String> = chain[start..]
                .iter()
                .chain(std::iter::once(&id))
                .map(|file| short(file))
                .collect();
            out.push(Diagnostic::error(
                pos,
                format!("a cycle of workflow calls: {}", names.join(" -> ")),
            ));
            continue;
        }
        let mut longer = chain.to_vec();
        longer.push(id);
        match load_called(&path, &longer) {
            Err(err) => {
                let first = err.io.clone().unwrap_or_else(|| {
                    err.diagnostics.first().map_or_else(String::new, |d| {
                        format!("{}:{}:{}: {}", err.file, d.pos.line, d.pos.col, d.message)
                    })
                });
                out.push(Diagnostic::error(
                    pos,
                    format!("the called workflow `{called}` cannot be used: {first}"),
                ));
            }
            Ok(child) => check_with(&mut out, job, called, &child, job_node, pos),
        }
    }
    out
}

/// `with:` against the called workflow's parameters.
fn check_with(
    out: &mut Vec<Diagnostic>,
    job: &Job,
    called: &str,
    child: &Loaded,
    job_node: Option<&Node>,
    workflow_pos: Pos,
) {
    let params = &child.workflow.params;
    let with_node = job_node.and_then(|job| job.get("with"));
    for (key, value) in &job.with {
        let pos = with_node
            .and_then(|with| with.entry(key))
            .map_or(workflow_pos, |(key, _)| key.pos);
        let Some(param) = params.get(key) else {
            let mut diag =
                Diagnostic::error(pos, format!("`{called}` declares no parameter `{key}`"));
            diag.help = suggest(key, params.keys().map(String::as_str));
            if params.is_empty() {
                diag.label = Some("it has no `params`".into());
            }
            out.push(diag);
            continue;
        };
        if !value.as_str().contains("${{")
            && let Err(err) = check_value(key, param, value.as_str())
        {
            let pos = with_node
                .and_then(|with| with.get(key))
                .map_or(pos, |node| node.pos);
            out.push(Diagnostic::error(pos, format!("`with`: {err}")));
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .filter(|(name, param)| {
            param.required && param.default.is_none() && !job.with.contains_key(*name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        let pos = job_node
            .and_then(|job| job.entry("with"))
            .map_or(workflow_pos, |(key, _)| key.pos);
        out.push(Diagnostic::error(
            pos,
            format!(
                "`{called}` requires {} not given in `with`",
                missing
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
}

/// A file as a chain shows it: its name.
fn short(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}
