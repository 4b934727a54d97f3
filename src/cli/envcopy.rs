//! `coreflow env copy --to DEST [--from SRC] [--to-blocks DIR_OR_URL]`: an environment copied into
//! another store — from a laptop's SQLite folder to a PostgreSQL database most of all.
//!
//! The records move through the stores' [`CopyStore`](crate::store::copy::CopyStore)
//! (every table with its ids, in one destination transaction; logs converted between files
//! and database chunks), the DataBlock content through [`crate::blocks::copy_content`],
//! before the records, so that no version is registered without its content. Refused
//! (exit 2): a destination that is not empty, a source with work running, a source with
//! DataBlock content and a PostgreSQL destination without `--to-blocks`. A SQLite
//! destination folder that a failed copy leaves behind is emptied again.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::blocks::{Content, ContentCopied, copy_content};
use crate::cli::args::{EnvAction, EnvArgs, EnvCopyArgs, GlobalArgs};
use crate::cli::env;
use crate::error::Error;
use crate::store::copy::{CopyError, CopyStore, Imported, Snapshot, refuse_running};
use crate::store::{
    BlockKind, ContentHash, DATABASE_FILE, Destination, Environment, OpenOptions, is_database_url,
    open_destination,
};

pub(super) fn run(global: &GlobalArgs, args: &EnvArgs) -> Result<(), Error> {
    match &args.action {
        EnvAction::Copy(copy) => copy_env(global, copy),
    }
}

/// What was copied: the summary line, or the `--json` object.
#[derive(Debug, Serialize)]
struct Summary {
    from: String,
    to: String,
    definitions: usize,
    runs: usize,
    jobs: usize,
    attempts: usize,
    queues: usize,
    workers: usize,
    block_versions: usize,
    /// Stored files of DataBlock content (objects and folder listings).
    block_objects: u64,
    logs: u64,
    log_bytes: u64,
}

fn copy_env(global: &GlobalArgs, args: &EnvCopyArgs) -> Result<(), Error> {
    let from = args
        .from
        .as_deref()
        .map_or_else(|| env::env_dir(global), PathBuf::from);
    let to = PathBuf::from(&args.to);
    if same_place(&from, &to) {
        return Err(CopyError::Same(args.to.clone()).into());
    }
    if !is_database_url(&from) && !from.join(DATABASE_FILE).is_file() {
        return Err(Error::Usage(format!(
            "no CoreFlow environment at `{}` to copy from",
            from.display()
        )));
    }
    let source = env::open_dir(&from, global)?;
    let snapshot = source.export()?;
    refuse_running(&*source, &snapshot)?;
    let live = source.live_block_content()?;
    // Where the content comes from and goes to, settled before the destination is touched.
    let from_blocks = if live.is_empty() {
        None
    } else {
        Some(Content::of(&*source)?)
    };
    if from_blocks.is_some() && is_database_url(&to) && args.to_blocks.is_none() {
        return Err(Error::Usage(format!(
            "the source has DataBlock content ({} stored version{}): a PostgreSQL destination \
             needs --to-blocks DIR_OR_URL, the folder or s3:// store its hosts will share \
             for it (their --blocks)",
            live.len(),
            if live.len() == 1 { "" } else { "s" }
        )));
    }
    let options = OpenOptions {
        clock: None,
        blocks: args.to_blocks.clone(),
    };
    let destination = open_destination(&to, &options)?;
    let copied = match copy_into(&destination, &*source, &snapshot, from_blocks, &live) {
        Ok(copied) => copied,
        Err(error) => {
            destination.discard();
            return Err(error);
        }
    };
    let (content, imported) = copied;
    let summary = Summary {
        from: source.location(),
        to: destination.env.location(),
        definitions: snapshot.count("definitions"),
        runs: snapshot.count("runs"),
        jobs: snapshot.count("jobs"),
        attempts: snapshot.count("attempts"),
        queues: snapshot.count("queues"),
        workers: snapshot.count("workers"),
        block_versions: snapshot.count("block_versions"),
        block_objects: content.objects,
        logs: imported.logs,
        log_bytes: imported.log_bytes,
    };
    if global.json {
        return super::output::print(&super::output::json_text(&summary));
    }
    if global.quiet {
        return Ok(());
    }
    super::output::print(&format!("{}\n", summary_line(&summary)))
}

/// The content, then the records: a version is never registered without its content.
fn copy_into(
    destination: &Destination,
    source: &dyn Environment,
    snapshot: &Snapshot,
    from_blocks: Option<Content>,
    live: &[(ContentHash, BlockKind)],
) -> Result<(ContentCopied, Imported), Error> {
    let content = match from_blocks {
        Some(from_blocks) => copy_content(&from_blocks, &Content::of(&*destination.env)?, live)?,
        None => ContentCopied::default(),
    };
    let source: &dyn CopyStore = source;
    let imported = destination.env.import(snapshot, source)?;
    Ok((content, imported))
}

/// Whether `from` and `to` name one environment: the same URL, or the same folder.
fn same_place(from: &Path, to: &Path) -> bool {
    if from == to {
        return true;
    }
    match (from.canonicalize(), to.canonicalize()) {
        (Ok(from), Ok(to)) => from == to,
        _ => false,
    }
}

/// `copied 3 definitions, 12 runs, … from SRC to DEST`.
fn summary_line(summary: &Summary) -> String {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let objects = summary.block_objects;
    format!(
        "copied {}, {}, {}, {}, {}, {} ({} object{}), {} of logs from {} to {}",
        count(summary.definitions, "definition", "definitions"),
        count(summary.runs, "run", "runs"),
        count(summary.jobs, "job", "jobs"),
        count(summary.queues, "queue", "queues"),
        count(summary.workers, "worker", "workers"),
        count(summary.block_versions, "block version", "block versions"),
        objects,
        if objects == 1 { "" } else { "s" },
        super::blocks::size(summary.log_bytes),
        summary.from,
        summary.to,
    )
}

#[cfg(test)]
mod tests {
    use super::{Summary, summary_line};

    #[test]
    fn the_summary_counts_what_was_copied() {
        let summary = Summary {
            from: ".coreflow".into(),
            to: "postgres://flows@db/flows".into(),
            definitions: 3,
            runs: 12,
            jobs: 1,
            attempts: 50,
            queues: 2,
            workers: 5,
            block_versions: 7,
            block_objects: 12,
            logs: 50,
            log_bytes: 1_258_291,
        };
        assert_eq!(
            summary_line(&summary),
            "copied 3 definitions, 12 runs, 1 job, 2 queues, 5 workers, 7 block versions \
             (12 objects), 1.2 MiB of logs from .coreflow to postgres://flows@db/flows"
        );
    }
}
