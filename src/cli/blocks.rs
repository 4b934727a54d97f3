//! `coreflow blocks [list | show NAME[@VERSION] | get NAME[@VERSION] DEST | gc]`, and the
//! DataBlocks that `coreflow show RUN` lists for each job.
//!
//! Listings print a table, or with `--json` the records of [`crate::blocks`]. A name or
//! version that does not exist is exit 2 with a message (SPEC §7), as is a `get` that would
//! overwrite without `--force`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::blocks::{
    Access, BlockKind, BlockRef, BlockStore, BlockVersion, Content, JobBlocks, LineageLink,
    collect_garbage, pin_params, remove_tree, resolve,
};
use crate::cli::args::{BlocksAction, BlocksArgs, GlobalArgs};
use crate::cli::env;
use crate::cli::output::table;
use crate::error::Error;
use crate::spec::Loaded;
use crate::spec::params::{Overrides, Values};
use crate::state::RunId;
use crate::store::JobRecord;

pub(super) fn run(global: &GlobalArgs, args: &BlocksArgs) -> Result<(), Error> {
    let env = env::open(global)?;
    let now = env.clock().now();
    let store: &dyn BlockStore = &*env;
    match &args.action {
        None | Some(BlocksAction::List) => list(global, store),
        Some(BlocksAction::Show { block }) => show(global, store, block),
        Some(BlocksAction::Get { block, dest, force }) => get(global, store, block, dest, *force),
        Some(BlocksAction::Gc { keep }) => gc(global, store, *keep, now),
    }
}

/// Fixes the run's `datablock` parameters to versions (exit 2 when one does not exist),
/// before anything starts.
pub(super) fn pin(
    store: &dyn BlockStore,
    loaded: &Loaded,
    values: &mut Values,
    overrides: &mut Overrides,
) -> Result<(), Error> {
    pin_params(store, &loaded.workflow, values, overrides).map_err(Error::Blocks)
}

fn list(global: &GlobalArgs, store: &dyn BlockStore) -> Result<(), Error> {
    let blocks = store.block_names().map_err(Error::Store)?;
    if global.json {
        return super::output::print(&super::output::json_text(&blocks));
    }
    if blocks.is_empty() {
        return super::output::print("no DataBlocks\n");
    }
    let mut rows = vec![
        [
            "NAME",
            "VERSION",
            "VERSIONS",
            "KIND",
            "SIZE",
            "HASH",
            "CREATED",
            "PRODUCED BY",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for summary in &blocks {
        let block = &summary.latest;
        rows.push(vec![
            block.name.clone(),
            block.version.to_string(),
            summary.versions.to_string(),
            block.kind.to_string(),
            size(block.size),
            block.hash.short().to_owned(),
            local_time(block.created_at),
            producer(block),
        ]);
    }
    super::output::print(&table(&rows))
}

fn show(global: &GlobalArgs, store: &dyn BlockStore, text: &str) -> Result<(), Error> {
    let reference = BlockRef::parse(text).map_err(Error::Blocks)?;
    let versions = store
        .block_versions(&reference.name)
        .map_err(Error::Store)?;
    // The version to walk the lineage of: the one asked for, else the newest not removed
    // (else the newest, when all were removed).
    let selected = match reference.version {
        Some(_) => resolve_for_show(store, &reference)?,
        None => match versions.iter().find(|v| !v.is_removed()) {
            Some(version) => version.clone(),
            None => resolve_for_show(store, &reference)?,
        },
    };
    let lineage = store.block_lineage(selected.id).map_err(Error::Store)?;
    if global.json {
        let mut chosen = serde_json::to_value(&selected).unwrap_or_default();
        chosen["lineage"] = serde_json::to_value(&lineage).unwrap_or_default();
        let value = json!({
            "name": reference.name,
            "versions": versions,
            "selected": chosen,
        });
        return super::output::print(&super::output::json_text(&value));
    }
    let live = versions.iter().filter(|v| !v.is_removed()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DataBlock {} · {live} version{} · newest {}\n",
        reference.name,
        if live == 1 { "" } else { "s" },
        versions
            .iter()
            .find(|v| !v.is_removed())
            .map_or_else(|| "removed".to_owned(), |v| format!("@{}", v.version)),
    );
    let mut rows = vec![
        [
            "VERSION",
            "KIND",
            "SIZE",
            "FILES",
            "HASH",
            "CREATED",
            "PRODUCED BY",
            "NOTE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for version in &versions {
        rows.push(vec![
            version.version.to_string(),
            version.kind.to_string(),
            size(version.size),
            version.files.to_string(),
            version.hash.short().to_owned(),
            local_time(version.created_at),
            producer(version),
            if version.is_removed() {
                "removed by gc".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "\n{} · {} `{}` · {}{}",
        selected.label(),
        selected.kind,
        selected.file_name,
        size(selected.size),
        if selected.is_removed() {
            " · removed by gc"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "sha256 {}", selected.hash);
    let section = |out: &mut String, title: &str, items: Vec<String>| {
        let shown = if items.is_empty() {
            "-".to_owned()
        } else {
            items.join("\n              ")
        };
        let _ = writeln!(out, "{title:<13} {shown}");
    };
    section(
        &mut out,
        "produced by:",
        lineage
            .produced_by
            .iter()
            .map(|l| {
                let what = if l.new == Some(true) {
                    "new version"
                } else {
                    "unchanged content"
                };
                format!("{} ({what})", attempt_name(l))
            })
            .collect(),
    );
    section(
        &mut out,
        "made from:",
        lineage
            .made_from
            .iter()
            .map(|l| {
                format!(
                    "{}{} (input `{}` of {})",
                    l.block.label(),
                    removed_note(l),
                    l.input.as_deref().unwrap_or(""),
                    attempt_name(l)
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "consumed by:",
        lineage
            .consumed_by
            .iter()
            .map(|l| {
                format!(
                    "{} as input `{}`",
                    attempt_name(l),
                    l.input.as_deref().unwrap_or("")
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "used for:",
        lineage
            .used_for
            .iter()
            .map(|l| {
                format!(
                    "{}{} (by {})",
                    l.block.label(),
                    removed_note(l),
                    attempt_name(l)
                )
            })
            .collect(),
    );
    super::output::print(&out)
}

fn resolve_for_show(store: &dyn BlockStore, reference: &BlockRef) -> Result<BlockVersion, Error> {
    match resolve(store, reference) {
        Ok(version) => Ok(version),
        // `show` still describes a removed version: its lineage is kept.
        Err(crate::blocks::Error::Removed { name, version }) => store
            .block_version(&name, Some(version))
            .map_err(Error::Store)?
            .ok_or_else(|| Error::Usage(format!("no DataBlock `{name}@{version}`"))),
        Err(other) => Err(Error::Blocks(other)),
    }
}

fn get(
    global: &GlobalArgs,
    store: &dyn BlockStore,
    text: &str,
    dest: &Path,
    force: bool,
) -> Result<(), Error> {
    let reference = BlockRef::parse(text).map_err(Error::Blocks)?;
    let version = resolve(store, &reference).map_err(Error::Blocks)?;
    let exists = fs::symlink_metadata(dest).is_ok();
    if exists && !force {
        return Err(Error::Blocks(crate::blocks::Error::Exists(dest.to_owned())));
    }
    let content = Content::of(store).map_err(Error::Blocks)?;
    if exists {
        check_replaceable(dest, &version, content.cas().root())?;
    }
    let _hold = content.lock_shared().map_err(Error::Blocks)?;
    if !content
        .fetch(&version.hash, version.kind)
        .map_err(Error::Blocks)?
    {
        return Err(Error::Blocks(crate::blocks::Error::MissingContent {
            name: version.name,
            version: version.version,
            path: content.cas().content_path(&version.hash, version.kind),
        }));
    }
    // Written beside DEST first, then renamed: DEST is never half-written, and with
    // `--force` the old content stays until the new one is complete.
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".coreflow-get-")
        .tempdir_in(&parent)
        .map_err(|e| Error::Usage(format!("cannot write in `{}`: {e}", parent.display())))?;
    let staged = staging.path().join("content");
    content
        .cas()
        .materialise(
            &version.hash,
            version.kind,
            version.executable,
            &staged,
            Access::Writable,
        )
        .map_err(Error::Blocks)?;
    if exists {
        let replaced = match fs::symlink_metadata(dest) {
            Ok(meta) if meta.is_dir() => remove_tree(dest),
            Ok(_) => fs::remove_file(dest),
            Err(_) => Ok(()),
        };
        replaced.map_err(|e| Error::Usage(format!("cannot replace `{}`: {e}", dest.display())))?;
    }
    fs::rename(&staged, dest)
        .map_err(|e| Error::Usage(format!("cannot write `{}`: {e}", dest.display())))?;
    if global.json {
        let mut value = serde_json::to_value(&version).unwrap_or_default();
        value["path"] = json!(dest.display().to_string());
        return super::output::print(&super::output::json_text(&value));
    }
    if global.quiet {
        return Ok(());
    }
    super::output::print(&format!(
        "{} ({} {}) written to {}\n",
        version.label(),
        version.kind,
        size(version.size),
        dest.display()
    ))
}

/// What `get --force` may replace: a file with a file block, a folder with a folder block,
/// and never a folder holding the current folder or the environment.
fn check_replaceable(dest: &Path, version: &BlockVersion, blocks_dir: &Path) -> Result<(), Error> {
    let is_dir = fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir());
    let shown = dest.display();
    match (version.kind, is_dir) {
        (BlockKind::File, true) => Err(Error::Usage(format!(
            "`{shown}` is a folder; `{}` is a file block, which replaces only a file",
            version.label()
        ))),
        (BlockKind::Folder, false) => Err(Error::Usage(format!(
            "`{shown}` is not a folder; `{}` is a folder block, which replaces only a folder",
            version.label()
        ))),
        (BlockKind::Folder, true) => {
            let target = fs::canonicalize(dest)?;
            let holds =
                |inner: &Path| fs::canonicalize(inner).is_ok_and(|p| p.starts_with(&target));
            let cwd = std::env::current_dir()?;
            if holds(&cwd) {
                return Err(Error::Usage(format!(
                    "refusing to replace `{shown}`: it holds the current folder"
                )));
            }
            if holds(blocks_dir) {
                return Err(Error::Usage(format!(
                    "refusing to replace `{shown}`: it holds the environment"
                )));
            }
            Ok(())
        }
        (BlockKind::File, false) => Ok(()),
    }
}

fn gc(
    global: &GlobalArgs,
    store: &dyn BlockStore,
    keep: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let report = collect_garbage(store, keep, now).map_err(Error::Blocks)?;
    if global.json {
        return super::output::print(&super::output::json_text(&report));
    }
    if global.quiet {
        return Ok(());
    }
    let removed: Vec<String> = report.removed.iter().map(BlockVersion::label).collect();
    let mut out = String::new();
    if removed.is_empty() {
        out.push_str("no versions removed");
    } else {
        let _ = write!(
            out,
            "removed {} version{}: {}",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            removed.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "; freed {} ({} file{})",
        size(report.bytes),
        report.files,
        if report.files == 1 { "" } else { "s" }
    );
    super::output::print(&out)
}

/// The `DataBlocks:` section of `show RUN`: what each job consumed and produced, or nothing
/// when no job of the run touched a block.
pub(super) fn show_section(
    store: &dyn BlockStore,
    run: RunId,
    jobs: &[JobRecord],
) -> Result<String, Error> {
    let blocks: Vec<JobBlocks> = store.run_blocks(run).map_err(Error::Store)?;
    if blocks.is_empty() {
        return Ok(String::new());
    }
    let mut rows = Vec::new();
    for job in jobs {
        let Some(found) = blocks.iter().find(|b| b.job_id == job.id) else {
            continue;
        };
        let mut parts = Vec::new();
        if !found.consumed.is_empty() {
            let items: Vec<String> = found
                .consumed
                .iter()
                .map(|l| {
                    format!(
                        "{}{} as `{}`",
                        l.block.label(),
                        removed_note(l),
                        l.input.as_deref().unwrap_or("")
                    )
                })
                .collect();
            parts.push(format!("consumed {}", items.join(", ")));
        }
        if !found.produced.is_empty() {
            let items: Vec<String> = found
                .produced
                .iter()
                .map(|l| {
                    let what = if l.new == Some(true) {
                        "new"
                    } else {
                        "unchanged"
                    };
                    format!("{}{} ({what})", l.block.label(), removed_note(l))
                })
                .collect();
            parts.push(format!("produced {}", items.join(", ")));
        }
        rows.push(vec![format!("  {}", job.name), parts.join("; ")]);
    }
    Ok(format!("\nDataBlocks:\n{}", table(&rows)))
}

fn removed_note(link: &LineageLink) -> &'static str {
    if link.block.removed { " (removed)" } else { "" }
}

/// `7/extract`, with the attempt when it was not the first.
fn attempt_name(link: &LineageLink) -> String {
    let job = &link.job;
    if job.attempt > 1 {
        format!("{}/{} (attempt {})", job.run_id, job.job, job.attempt)
    } else {
        format!("{}/{}", job.run_id, job.job)
    }
}

fn producer(version: &BlockVersion) -> String {
    version
        .produced_by
        .as_ref()
        .map_or_else(|| "-".to_owned(), |p| format!("{}/{}", p.run_id, p.job))
}

fn local_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A size for people: `512 B`, `1.5 KiB`, `1.0 GiB`.
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "a display figure")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
    }
}
