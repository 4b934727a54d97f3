//! [`Remote`]: DataBlock content in an S3-compatible object store (`--blocks s3://…`),
//! through the `object_store` crate, with this host's [`Cas`] as its cache.
//!
//! ```text
//! s3://bucket/prefix/objects/5b/5b1f…   as in the folder store: content named by its SHA-256
//! s3://bucket/prefix/trees/9c/9c02…     folder listings
//! ```
//!
//! Publishing stores content in the local cache first, as in a folder store, then uploads
//! what the bucket lacks — a folder's objects before its listing, so that a listing in the
//! bucket means its objects are there too. Reading downloads what the cache lacks (checking
//! each download against its hash) and materialises from the cache. Names never change
//! content, so uploads and downloads of the same content by several hosts at once are
//! harmless. `blocks gc` deletes what no remaining version needs, but only content older
//! than [`GC_GRACE`]: another host may have uploaded it for a version it has not registered
//! yet, and the bucket has no lock to wait for.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::cas::{Cas, Sweep};
use super::error::Error;
use crate::store::{BlockKind, ContentHash};

/// How old unreferenced content in the bucket must be before `blocks gc` deletes it.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

/// Content up to this size is uploaded in one request; larger content in parts.
const ONE_REQUEST: u64 = 16 << 20;

/// An object store holding block content.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// The object store at `url` (`s3://bucket[/prefix]`), configured from the `AWS_*`
    /// variables (credentials, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
    ///
    /// # Errors
    /// The URL or the configuration is not usable.
    pub fn open(url: &str) -> Result<Remote, Error> {
        let fail = |detail: String| Error::Remote {
            url: url.to_owned(),
            detail,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| fail("expected s3://BUCKET[/PREFIX]".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start its client: {e}")))?;
        Ok(Remote {
            url: url.to_owned(),
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
            runtime,
        })
    }

    /// The key of content with `hash`: an object (`File`) or a listing (`Folder`).
    fn key(&self, hash: &ContentHash, kind: BlockKind) -> Key {
        let folder = match kind {
            BlockKind::File => "objects",
            BlockKind::Folder => "trees",
        };
        let key = format!("{folder}/{}/{}", hash.shard(), hash.as_str());
        if self.prefix.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{}/{key}", self.prefix))
        }
    }

    fn fail(&self, error: &dyn std::fmt::Display) -> Error {
        Error::Remote {
            url: self.url.clone(),
            detail: error.to_string(),
        }
    }

    /// Runs `work` on the client's runtime, from any thread (see
    /// [`crate::store::outside_runtime`]).
    fn block_on<T: Send>(&self, work: impl Future<Output = T> + Send) -> T {
        crate::store::outside_runtime(|| self.runtime.block_on(work))
    }

    /// Uploads what the bucket lacks of content with `hash` stored in `cas`.
    ///
    /// # Errors
    /// The cache cannot be read, or the bucket refuses.
    pub fn upload(&self, cas: &Cas, hash: &ContentHash, kind: BlockKind) -> Result<(), Error> {
        let mut wanted = Vec::new();
        if kind == BlockKind::Folder {
            let objects: HashSet<ContentHash> = cas.tree_objects(hash)?.into_iter().collect();
            wanted.extend(objects.into_iter().map(|hash| (hash, BlockKind::File)));
        }
        // The listing last: once it is in the bucket, so is everything it lists.
        wanted.push((hash.clone(), kind));
        self.block_on(async {
            for (hash, kind) in &wanted {
                let key = self.key(hash, *kind);
                match self.store.head(&key).await {
                    Ok(_) => continue,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => return Err(self.fail(&error)),
                }
                self.put(&key, &cas.content_path(hash, *kind)).await?;
            }
            Ok(())
        })
    }

    async fn put(&self, key: &Key, path: &std::path::Path) -> Result<(), Error> {
        let mut file = std::fs::File::open(path).map_err(Error::io("read", path))?;
        let size = file.metadata().map_err(Error::io("read", path))?.len();
        if size <= ONE_REQUEST {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut bytes)
                .map_err(Error::io("read", path))?;
            self.store
                .put(key, PutPayload::from(bytes))
                .await
                .map_err(|e| self.fail(&e))?;
            return Ok(());
        }
        let mut upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.fail(&e))?;
        let mut part = vec![0u8; ONE_REQUEST as usize / 2];
        let sent: Result<(), Error> = async {
            loop {
                let n = super::hash::read_full(&mut file, &mut part)
                    .map_err(Error::io("read", path))?;
                if n == 0 {
                    return Ok(());
                }
                upload
                    .put_part(PutPayload::from(part[..n].to_vec()))
                    .await
                    .map_err(|e| self.fail(&e))?;
            }
        }
        .await;
        match sent {
            Ok(()) => {
                upload.complete().await.map_err(|e| self.fail(&e))?;
                Ok(())
            }
            Err(error) => {
                let _ = upload.abort().await;
                Err(error)
            }
        }
    }

    /// Downloads into `cas` what it lacks of content with `hash`: a file's object, or a
    /// folder's listing and every object it lists.
    ///
    /// # Errors
    /// The bucket lacks it or fails, content does not match its hash, or the cache cannot
    /// be written.
    pub fn download(&self, cas: &Cas, hash: &ContentHash, kind: BlockKind) -> Result<(), Error> {
        self.block_on(async {
            self.fetch(cas, hash, kind).await?;
            if kind == BlockKind::Folder {
                for object in cas.tree_objects(hash)? {
                    self.fetch(cas, &object, BlockKind::File).await?;
                }
            }
            Ok(())
        })
    }

    async fn fetch(&self, cas: &Cas, hash: &ContentHash, kind: BlockKind) -> Result<(), Error> {
        if cas.content_path(hash, kind).exists() {
            return Ok(());
        }
        let key = self.key(hash, kind);
        let got = self.store.get(&key).await.map_err(|e| self.fail(&e))?;
        let mut temp = cas.receiving()?;
        let mut hasher = Sha256::new();
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail(&e))?;
            hasher.update(&chunk);
            temp.write_all(&chunk)
                .map_err(Error::io("write", temp.path()))?;
        }
        let actual = ContentHash::from_digest(&hasher.finalize());
        if &actual != hash {
            return Err(Error::Corrupt {
                url: self.url.clone(),
                key: key.to_string(),
                actual: actual.as_str().to_owned(),
            });
        }
        cas.install_received(temp, hash, kind)
    }

    /// Deletes content no remaining version needs and older than [`GC_GRACE`] at `now`.
    ///
    /// # Errors
    /// Listing or deleting fails.
    pub fn sweep(
        &self,
        live_objects: &HashSet<ContentHash>,
        live_trees: &HashSet<ContentHash>,
        now: DateTime<Utc>,
    ) -> Result<Sweep, Error> {
        let cutoff = now - chrono::Duration::from_std(GC_GRACE).unwrap_or_default();
        self.block_on(async {
            let mut sweep = Sweep::default();
            for (folder, live) in [("objects", live_objects), ("trees", live_trees)] {
                let prefix = if self.prefix.is_empty() {
                    Key::from(folder)
                } else {
                    Key::from(format!("{}/{folder}", self.prefix))
                };
                let mut listing = self.store.list(Some(&prefix));
                let mut doomed = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(|e| self.fail(&e))?;
                    let keep = meta
                        .location
                        .filename()
                        .and_then(ContentHash::parse)
                        .is_some_and(|hash| live.contains(&hash));
                    if !keep && meta.last_modified < cutoff {
                        doomed.push(meta);
                    }
                }
                for meta in doomed {
                    match self.store.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            sweep.files += 1;
                            sweep.bytes += meta.size;
                        }
                        Err(error) => return Err(self.fail(&error)),
                    }
                }
            }
            Ok(sweep)
        })
    }
}
