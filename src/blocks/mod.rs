//! DataBlocks (SPEC §1, §2 `datablocks`, `inputs`, `type: datablock`, §4 `coreflow blocks`):
//! named, versioned files and folders that jobs publish and other jobs consume.
//!
//! - [`Cas`] is the content-addressed store in the environment (`<env>/blocks/`): each
//!   distinct file content is kept once, read-only, under its SHA-256; a folder is a listing
//!   of its files' hashes and modes ([`tree`](self) format in `tree.rs`). Content is hashed
//!   while it is copied in, in one streaming pass with bounded memory.
//! - [`BlockStore`] is the registry, one of the store's traits (`store/blocks.rs`): names, versions (from 1
//!   per name, a new one only when the content changed), who published each version, what
//!   each job attempt read — lineage both ways — and the publish sequence the daemon's
//!   `datablock:` trigger polls ([`BlockStore::block_versions_since`]).
//! - The engine's hooks around an attempt (inputs before the first step, publication after
//!   success) are `engine/blocks.rs`: this module knows nothing of runs being executed.
//! - [`pin_params`] fixes a run's `datablock` parameters to versions before it starts;
//!   [`resolve`] turns `NAME[@VERSION]` into a version with clear "not found" errors.
//! - [`Content`] is where an environment's content lives as the engine and the commands use
//!   it: the [`Cas`] on this host and, with `--blocks s3://…`, the object store behind it
//!   ([`Remote`], `remote.rs`), which the local `Cas` then caches.
//! - [`collect_garbage`] is `blocks gc`; [`copy_content`] copies the content of one
//!   environment's blocks into another's (`env copy`).
//!
//! The command line (`coreflow blocks …`, the blocks in `show RUN`) lives in `cli/blocks.rs`.

mod cas;
mod content;
mod copy;
mod error;
mod gc;
mod hash;
mod ingest;
mod reference;
mod remote;
mod resolve;
mod tree;

pub use cas::{Access, Cas, INPUTS_DIR, Lock, Stored, Sweep, remove_tree};
pub use content::Content;
pub use copy::{ContentCopied, copy_content};
pub use error::Error;
pub use gc::{GcReport, collect_garbage};
pub use hash::{hash_bytes, hash_reader};
pub use reference::BlockRef;
pub use remote::{GC_GRACE, Remote};
// The registry's trait and records are the store's (`store/blocks.rs`); named here too, as
// the vocabulary of this module.
pub use crate::store::{
    BlockKey, BlockKind, BlockStore, BlockSummary, BlockVersion, BlockVersionId, ContentHash,
    JobAttempt, JobBlocks, Lineage, LineageLink, NewBlock, Published, UnknownKind,
};
pub use resolve::{pin_params, resolve};
