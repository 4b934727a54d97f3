//! [`Content`]: where an environment's DataBlock content lives, as the engine and the
//! commands use it — the content store on this host ([`Cas`]: the environment's folder, a
//! shared mount, or the cache of an object store) and, with `--blocks s3://…`, the object
//! store behind it ([`Remote`]). Publishing stores, then uploads; reading downloads what the
//! cache lacks, then materialises from it.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::cas::{Cas, Lock, Stored, Sweep};
use super::error::Error;
use super::remote::Remote;
use crate::store::{BlockKind, BlockStore, ContentHash};

/// An environment's block content.
#[derive(Debug)]
pub struct Content {
    cas: Cas,
    remote: Option<Remote>,
}

impl Content {
    /// The content of `store`'s environment.
    ///
    /// # Errors
    /// The environment has no place for content (PostgreSQL without `--blocks`), or the
    /// object store's configuration is not usable.
    pub fn of(store: &dyn BlockStore) -> Result<Content, Error> {
        let cas = Cas::new(store.blocks_dir()?);
        let remote = store
            .blocks_remote()
            .as_deref()
            .map(Remote::open)
            .transpose()?;
        Ok(Content { cas, remote })
    }

    /// Content in the folder `root` alone (no object store).
    #[must_use]
    pub fn folder(root: std::path::PathBuf) -> Content {
        Content {
            cas: Cas::new(root),
            remote: None,
        }
    }

    /// The content store on this host.
    #[must_use]
    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    /// A shared hold on this host's content store (see [`Cas::lock_shared`]).
    ///
    /// # Errors
    /// As [`Cas::lock_shared`].
    pub fn lock_shared(&self) -> Result<Lock, Error> {
        self.cas.lock_shared()
    }

    /// An exclusive hold on this host's content store (see [`Cas::lock_exclusive`]).
    ///
    /// # Errors
    /// As [`Cas::lock_exclusive`].
    pub fn lock_exclusive(&self) -> Result<Lock, Error> {
        self.cas.lock_exclusive()
    }

    /// Stores the file or folder at `path` as [`Cas::put_unless_unchanged`] does, and
    /// uploads it to the object store.
    ///
    /// # Errors
    /// Storing or uploading fails.
    pub fn publish(
        &self,
        path: &Path,
        skip: Option<&Path>,
        previous: Option<&Stored>,
    ) -> Result<Stored, Error> {
        let stored = self.cas.put_unless_unchanged(path, skip, previous)?;
        self.upload(&stored.hash, stored.kind)?;
        Ok(stored)
    }

    /// Uploads content with `hash`, already in this host's store, to the object store (what
    /// it lacks); nothing without one.
    ///
    /// # Errors
    /// The upload fails.
    pub fn upload(&self, hash: &ContentHash, kind: BlockKind) -> Result<(), Error> {
        match &self.remote {
            Some(remote) => remote.upload(&self.cas, hash, kind),
            None => Ok(()),
        }
    }

    /// Whether content with `hash` can be read here (materialised from [`Content::cas`]),
    /// downloading it first from the object store when this host lacks it.
    ///
    /// # Errors
    /// The download fails (the bucket lacks it, or refuses).
    pub fn fetch(&self, hash: &ContentHash, kind: BlockKind) -> Result<bool, Error> {
        if let Some(remote) = &self.remote {
            remote.download(&self.cas, hash, kind)?;
        }
        Ok(self.cas.content_path(hash, kind).exists())
    }

    /// The objects a folder's listing refers to, downloading the listing when needed.
    ///
    /// # Errors
    /// As [`Cas::tree_objects`].
    pub fn tree_objects(&self, hash: &ContentHash) -> Result<Vec<ContentHash>, Error> {
        if let Some(remote) = &self.remote
            && !self.cas.tree_path(hash).exists()
        {
            remote.download(&self.cas, hash, BlockKind::Folder)?;
        }
        self.cas.tree_objects(hash)
    }

    /// Deletes content not in `live`: on this host (see [`Cas::sweep`]) and in the object
    /// store (what is older than [`super::remote::GC_GRACE`]). Call it holding
    /// [`Content::lock_exclusive`].
    ///
    /// # Errors
    /// Listing or deleting fails.
    pub fn sweep(
        &self,
        live_objects: &HashSet<ContentHash>,
        live_trees: &HashSet<ContentHash>,
        now: DateTime<Utc>,
    ) -> Result<Sweep, Error> {
        let mut sweep = self.cas.sweep(live_objects, live_trees)?;
        if let Some(remote) = &self.remote {
            let remote = remote.sweep(live_objects, live_trees, now)?;
            sweep.files += remote.files;
            sweep.bytes += remote.bytes;
        }
        Ok(sweep)
    }
}
