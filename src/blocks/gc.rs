//! `blocks gc`: drop old versions and free the content nothing live refers to any more.
//!
//! The registry decides which versions go ([`BlockStore::remove_block_versions`]: all but
//! the newest N of each name, the blocks of queued and running runs, and the lineage of what
//! is kept) and marks them removed; then the content store deletes every object and folder
//! listing that no remaining version needs. Both happen under the store's exclusive lock, so
//! no publication or materialisation on this host is half-way meanwhile. A crash between the
//! two steps only leaves content for the next `gc` to free. In an object store, which has no
//! lock, only unneeded content older than [`super::GC_GRACE`] is deleted.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::content::Content;
use super::error::Error;
use crate::store::{BlockKind, BlockStore, BlockVersion};

/// What `blocks gc` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// The versions marked removed.
    pub removed: Vec<BlockVersion>,
    /// Files deleted from the content store.
    pub files: u64,
    /// Disk space freed, in bytes.
    pub bytes: u64,
}

/// Removes all but the newest `keep` versions of each name (see the module docs).
///
/// # Errors
/// The store fails, or a kept folder's listing is unreadable — then nothing is deleted.
pub fn collect_garbage(
    store: &dyn BlockStore,
    keep: usize,
    now: DateTime<Utc>,
) -> Result<GcReport, Error> {
    let content = Content::of(store)?;
    let _hold = content.lock_exclusive()?;
    let removed = store.remove_block_versions(keep, now)?;
    let mut objects = HashSet::new();
    let mut trees = HashSet::new();
    for (hash, kind) in store.live_block_content()? {
        match kind {
            BlockKind::File => {
                objects.insert(hash);
            }
            BlockKind::Folder => {
                objects.extend(content.tree_objects(&hash)?);
                trees.insert(hash);
            }
        }
    }
    let sweep = content.sweep(&objects, &trees, now)?;
    Ok(GcReport {
        removed,
        files: sweep.files,
        bytes: sweep.bytes,
    })
}
