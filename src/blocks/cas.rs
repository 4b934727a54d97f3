//! [`Cas`]: the content-addressed store of one environment, a folder of immutable files.
//!
//! ```text
//! <env>/blocks/objects/5b/5b1f…   file content, read-only (0444), named by its SHA-256
//! <env>/blocks/trees/9c/9c02…     folder listings (see super::tree), named by their SHA-256
//! <env>/blocks/tmp/               content being written; renamed into place when complete
//! <env>/blocks/lock               publishers and readers share it, `blocks gc` takes it alone
//! ```
//!
//! Each distinct content is stored once: a folder's files are objects of their own, so a new
//! version of a folder stores only the files that changed. An object is written to `tmp/`,
//! flushed to disk, then renamed into place, so it is complete whenever its name exists.
//!
//! Materialising links objects into place (hard links share the read-only inode, so a step
//! cannot change stored content without first changing its mode) and copies when linking is
//! impossible (another file system), when an executable file needs its own mode, or when
//! CoreFlow runs as root — root writes through any mode, and a write through a link would
//! change the stored content for every version that shares it. A copy is made with
//! `copy_file_range`, which file systems with copy-on-write (btrfs, XFS) turn into a reflink.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::Error;
use super::hash::{CHUNK, hash_bytes, hash_reader};
use super::ingest::{Failure, Ingested, ingest};
use super::tree::{self, Entry, EntryKind};
use crate::store::private;
use crate::store::{BlockKind, ContentHash};

/// Folder names inside the store.
const OBJECTS: &str = "objects";
const TREES: &str = "trees";
const TMP: &str = "tmp";
const LOCK: &str = "lock";
/// Stored objects are read-only and, like everything in the environment, private.
const OBJECT_MODE: u32 = 0o400;

/// The folder materialised inputs go to inside a job's workspace; never part of a folder
/// block published from that workspace.
pub const INPUTS_DIR: &str = ".coreflow-inputs";

/// Content stored under one hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: ContentHash,
    pub kind: BlockKind,
    pub size: u64,
    pub files: u64,
    pub executable: bool,
}

/// How materialised content may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A job's input: hard links where possible, everything read-only.
    ReadOnly,
    /// `blocks get`: independent copies with ordinary modes, for the user to change.
    Writable,
}

/// The content store in one folder.
#[derive(Debug, Clone)]
pub struct Cas {
    root: PathBuf,
}

/// A shared or exclusive hold on the store (see the module docs); released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Cas {
    /// The store in `root` (`<env>/blocks`); nothing is created until it is used.
    #[must_use]
    pub fn new(root: PathBuf) -> Cas {
        Cas { root }
    }

    /// The store's folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the content of a file with this hash is kept.
    #[must_use]
    pub fn object_path(&self, hash: &ContentHash) -> PathBuf {
        self.root
            .join(OBJECTS)
            .join(hash.shard())
            .join(hash.as_str())
    }

    /// Where the listing of a folder with this hash is kept.
    #[must_use]
    pub fn tree_path(&self, hash: &ContentHash) -> PathBuf {
        self.root.join(TREES).join(hash.shard()).join(hash.as_str())
    }

    /// Where the stored content of a block of `kind` with `hash` is.
    #[must_use]
    pub fn content_path(&self, hash: &ContentHash, kind: BlockKind) -> PathBuf {
        match kind {
            BlockKind::File => self.object_path(hash),
            BlockKind::Folder => self.tree_path(hash),
        }
    }

    /// Waits for a shared hold: publishing and materialising take one, so that `blocks gc`
    /// never removes content between its hashing and its registration, or under a reader.
    ///
    /// # Errors
    /// The lock file cannot be created or locked.
    pub fn lock_shared(&self) -> Result<Lock, Error> {
        self.lock(false)
    }

    /// Waits for the store to be held by nobody else (`blocks gc`).
    ///
    /// # Errors
    /// The lock file cannot be created or locked.
    pub fn lock_exclusive(&self) -> Result<Lock, Error> {
        self.lock(true)
    }

    fn lock(&self, exclusive: bool) -> Result<Lock, Error> {
        private::create_dir_all(&self.root).map_err(Error::io("create", &self.root))?;
        let path = self.root.join(LOCK);
        let file = private::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(Error::io("lock", &path))?;
        Ok(Lock { _file: file })
    }

    /// Stores the file or folder at `path` (a symbolic link there is followed; links inside
    /// a folder are kept as links). `skip` is a folder not to descend into, such as the
    /// environment itself when a job publishes its whole workspace.
    ///
    /// # Errors
    /// The path is missing or of an unsupported type, or reading or writing fails.
    pub fn put(&self, path: &Path, skip: Option<&Path>) -> Result<Stored, Error> {
        let meta = fs::metadata(path).map_err(Error::io("read", path))?;
        if meta.is_file() {
            let (hash, size) = self.put_file(path)?;
            Ok(Stored {
                hash,
                kind: BlockKind::File,
                size,
                files: 1,
                executable: meta.mode() & 0o111 != 0,
            })
        } else if meta.is_dir() {
            self.put_folder(path, skip, None)
        } else {
            Err(Error::Unsupported {
                path: path.to_owned(),
                what: file_type_name(&meta.file_type()),
            })
        }
    }

    /// Like [`Cas::put`], for a path that probably holds `previous` (the newest version of the
    /// block it is published as): a file of the same size as `previous` — or, in a folder, a
    /// file of at least a chunk with the same path and size as before — is first only hashed,
    /// and when that matches, nothing is written: republishing unchanged content costs one
    /// read. A file of the same size with other content is then read a second time.
    ///
    /// # Errors
    /// As [`Cas::put`].
    pub fn put_unless_unchanged(
        &self,
        path: &Path,
        skip: Option<&Path>,
        previous: Option<&Stored>,
    ) -> Result<Stored, Error> {
        let meta = fs::metadata(path).map_err(Error::io("read", path))?;
        match previous {
            Some(previous) if previous.kind == BlockKind::File && meta.is_file() => {
                if self.is_unchanged(path, meta.len(), previous.size, &previous.hash)? {
                    return Ok(Stored {
                        hash: previous.hash.clone(),
                        kind: BlockKind::File,
                        size: previous.size,
                        files: 1,
                        executable: meta.mode() & 0o111 != 0,
                    });
                }
                self.put(path, skip)
            }
            Some(previous) if previous.kind == BlockKind::Folder && meta.is_dir() => {
                self.put_folder(path, skip, Some(&previous.hash))
            }
            _ => self.put(path, skip),
        }
    }

    /// Whether the file at `path` (`len` bytes) holds stored content of `size` bytes hashing
    /// to `hash`, found by reading and hashing alone.
    fn is_unchanged(
        &self,
        path: &Path,
        len: u64,
        size: u64,
        hash: &ContentHash,
    ) -> Result<bool, Error> {
        if len != size || !self.object_path(hash).exists() {
            return Ok(false);
        }
        let file = File::open(path).map_err(Error::io("read", path))?;
        let (found, read) = hash_reader(file).map_err(Error::io("read", path))?;
        Ok(found == *hash && read == size)
    }

    /// Stores one file's content; returns its hash and size.
    fn put_file(&self, path: &Path) -> Result<(ContentHash, u64), Error> {
        let mut source = File::open(path).map_err(Error::io("read", path))?;
        let tmp = self.root.join(TMP);
        let mut temp = None;
        let ingested = ingest(&mut source, || {
            private::create_dir_all(&tmp)?;
            let file = tempfile::Builder::new()
                .prefix("object-")
                .tempfile_in(&tmp)?;
            let handle = file.as_file().try_clone()?;
            temp = Some(file);
            Ok(handle)
        });
        match ingested {
            Ok(Ingested::Small { hash, bytes }) => {
                let size = bytes.len() as u64;
                self.put_bytes_at(&bytes, &self.object_path(&hash))?;
                Ok((hash, size))
            }
            Ok(Ingested::Written { hash, size }) => {
                let temp = temp.expect("ingest wrote to the temporary file it opened");
                let target = self.object_path(&hash);
                // Content the store already holds is dropped unflushed: cheap.
                if !target.exists() {
                    temp.as_file()
                        .sync_data()
                        .map_err(Error::io("write", temp.path()))?;
                    self.install(temp, &target)?;
                }
                Ok((hash, size))
            }
            Err(Failure::Read(error)) => Err(Error::io("read", path)(error)),
            Err(Failure::Write(error)) => Err(Error::io("write", &tmp)(error)),
        }
    }

    /// Stores bytes held in memory (a small file, a link target, a listing) at `target`
    /// unless something is there already.
    fn put_bytes_at(&self, bytes: &[u8], target: &Path) -> Result<(), Error> {
        if target.exists() {
            return Ok(());
        }
        let tmp = self.tmp_dir()?;
        let mut temp = tempfile::Builder::new()
            .prefix("object-")
            .tempfile_in(&tmp)
            .map_err(Error::io("create a file in", &tmp))?;
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_data())
            .map_err(Error::io("write", temp.path()))?;
        self.install(temp, target)
    }

    /// Makes a complete temporary file read-only and renames it to `target`.
    fn install(&self, temp: tempfile::NamedTempFile, target: &Path) -> Result<(), Error> {
        temp.as_file()
            .set_permissions(Permissions::from_mode(OBJECT_MODE))
            .map_err(Error::io("protect", temp.path()))?;
        let shard = target.parent().expect("an object path has a shard folder");
        private::create_dir_all(shard).map_err(Error::io("create", shard))?;
        // Another process storing the same content at the same time renames an identical
        // file over this one: harmless.
        temp.persist(target)
            .map_err(|error| Error::io("store", target)(error.error))?;
        Ok(())
    }

    /// A temporary file inside the store, to receive content from elsewhere (an object
    /// store) before [`Cas::install_received`] puts it in place.
    ///
    /// # Errors
    /// The temporary folder or file cannot be created.
    pub(crate) fn receiving(&self) -> Result<tempfile::NamedTempFile, Error> {
        let tmp = self.tmp_dir()?;
        tempfile::Builder::new()
            .prefix("received-")
            .tempfile_in(&tmp)
            .map_err(Error::io("create a file in", &tmp))
    }

    /// Puts received content in place as the object (`File`) or listing (`Folder`) with
    /// `hash`; the caller checked that the content has that hash.
    ///
    /// # Errors
    /// Flushing or renaming fails.
    pub(crate) fn install_received(
        &self,
        temp: tempfile::NamedTempFile,
        hash: &ContentHash,
        kind: BlockKind,
    ) -> Result<(), Error> {
        temp.as_file()
            .sync_data()
            .map_err(Error::io("write", temp.path()))?;
        self.install(temp, &self.content_path(hash, kind))
    }

    fn tmp_dir(&self) -> Result<PathBuf, Error> {
        let tmp = self.root.join(TMP);
        private::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(tmp)
    }

    /// Stores every file of a folder, then its listing. `previous` is the listing of the
    /// folder's newest version, whose large files are recognised by hashing alone.
    fn put_folder(
        &self,
        root: &Path,
        skip: Option<&Path>,
        previous: Option<&ContentHash>,
    ) -> Result<Stored, Error> {
        let known = previous
            .map(|hash| self.large_files(hash))
            .unwrap_or_default();
        let skip = skip.and_then(|dir| fs::metadata(dir).ok());
        let is_skipped = |meta: &fs::Metadata| {
            skip.as_ref()
                .is_some_and(|s| s.dev() == meta.dev() && s.ino() == meta.ino())
        };
        let mut entries = Vec::new();
        let mut size = 0u64;
        let mut files = 0u64;
        // Folders still to read: (absolute path, relative path bytes).
        let mut pending: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_owned(), Vec::new())];
        while let Some((dir, relative)) = pending.pop() {
            let listing = fs::read_dir(&dir).map_err(Error::io("read", &dir))?;
            for item in listing {
                let item = item.map_err(Error::io("read", &dir))?;
                let path = item.path();
                let name = item.file_name();
                if relative.is_empty() && name == OsStr::new(INPUTS_DIR) {
                    continue;
                }
                let mut rel = relative.clone();
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name.as_bytes());
                let meta = fs::symlink_metadata(&path).map_err(Error::io("read", &path))?;
                let kind = meta.file_type();
                if kind.is_dir() {
                    if is_skipped(&meta) {
                        continue;
                    }
                    entries.push(Entry {
                        path: rel.clone(),
                        kind: EntryKind::Dir,
                        size: 0,
                        hash: None,
                    });
                    pending.push((path, rel));
                } else if kind.is_file() {
                    let (hash, bytes) = match known.get(&rel) {
                        Some((size, hash))
                            if self.is_unchanged(&path, meta.len(), *size, hash)? =>
                        {
                            (hash.clone(), *size)
                        }
                        _ => self.put_file(&path)?,
                    };
                    size += bytes;
                    files += 1;
                    entries.push(Entry {
                        path: rel,
                        kind: EntryKind::File {
                            executable: meta.mode() & 0o111 != 0,
                        },
                        size: bytes,
                        hash: Some(hash),
                    });
                } else if kind.is_symlink() {
                    let target = fs::read_link(&path).map_err(Error::io("read", &path))?;
                    let target = target.into_os_string().into_vec();
                    let hash = hash_bytes(&target);
                    self.put_bytes_at(&target, &self.object_path(&hash))?;
                    entries.push(Entry {
                        path: rel,
                        kind: EntryKind::Symlink,
                        size: target.len() as u64,
                        hash: Some(hash),
                    });
                } else {
                    return Err(Error::Unsupported {
                        path,
                        what: file_type_name(&kind),
                    });
                }
            }
        }
        let listing = tree::encode(&mut entries);
        let hash = hash_bytes(&listing);
        self.put_bytes_at(&listing, &self.tree_path(&hash))?;
        Ok(Stored {
            hash,
            kind: BlockKind::Folder,
            size,
            files,
            executable: false,
        })
    }

    /// Recreates stored content at `dest`, which must not exist; its parent must.
    ///
    /// # Errors
    /// The content is missing from the store, or writing fails.
    pub fn materialise(
        &self,
        hash: &ContentHash,
        kind: BlockKind,
        executable: bool,
        dest: &Path,
        access: Access,
    ) -> Result<(), Error> {
        match kind {
            BlockKind::File => place_file(&self.object_path(hash), dest, executable, access),
            BlockKind::Folder => self.materialise_folder(hash, dest, access),
        }
    }

    fn materialise_folder(
        &self,
        hash: &ContentHash,
        dest: &Path,
        access: Access,
    ) -> Result<(), Error> {
        let listing_path = self.tree_path(hash);
        let listing = File::open(&listing_path).map_err(Error::io("read", &listing_path))?;
        fs::create_dir(dest).map_err(Error::io("create", dest))?;
        let mut dirs = vec![dest.to_owned()];
        for entry in tree::Reader::new(BufReader::new(listing)) {
            let entry = entry.map_err(Error::io("read", &listing_path))?;
            let path = dest.join(OsStr::from_bytes(&entry.path));
            match (entry.kind, &entry.hash) {
                (EntryKind::Dir, _) => {
                    fs::create_dir(&path).map_err(Error::io("create", &path))?;
                    dirs.push(path);
                }
                (EntryKind::File { executable }, Some(hash)) => {
                    place_file(&self.object_path(hash), &path, executable, access)?;
                }
                (EntryKind::Symlink, Some(hash)) => {
                    let object = self.object_path(hash);
                    let target = fs::read(&object).map_err(Error::io("read", &object))?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                        .map_err(Error::io("create", &path))?;
                }
                // The reader guarantees a hash for files and links.
                (_, None) => {}
            }
        }
        if access == Access::ReadOnly {
            for dir in dirs.iter().rev() {
                fs::set_permissions(dir, Permissions::from_mode(0o555))
                    .map_err(Error::io("protect", dir))?;
            }
        }
        Ok(())
    }

    /// The files of at least a chunk in a stored listing, by path; empty when it cannot be
    /// read (the folder is then simply stored again).
    fn large_files(&self, tree: &ContentHash) -> HashMap<Vec<u8>, (u64, ContentHash)> {
        let Ok(file) = File::open(self.tree_path(tree)) else {
            return HashMap::new();
        };
        tree::Reader::new(BufReader::new(file))
            .map_while(Result::ok)
            .filter(|entry| {
                matches!(entry.kind, EntryKind::File { .. }) && entry.size >= CHUNK as u64
            })
            .filter_map(|entry| Some((entry.path, (entry.size, entry.hash?))))
            .collect()
    }

    /// The objects a folder's listing refers to.
    ///
    /// # Errors
    /// The listing is missing or damaged.
    pub fn tree_objects(&self, hash: &ContentHash) -> Result<Vec<ContentHash>, Error> {
        let path = self.tree_path(hash);
        let file = File::open(&path).map_err(Error::io("read", &path))?;
        let mut objects = Vec::new();
        for entry in tree::Reader::new(BufReader::new(file)) {
            let entry = entry.map_err(Error::io("read", &path))?;
            objects.extend(entry.hash);
        }
        Ok(objects)
    }

    /// Deletes every object and listing not in `live`, and every leftover temporary file.
    /// Call it holding [`Cas::lock_exclusive`].
    ///
    /// # Errors
    /// A folder of the store cannot be read or a file removed.
    pub fn sweep(
        &self,
        live_objects: &HashSet<ContentHash>,
        live_trees: &HashSet<ContentHash>,
    ) -> Result<Sweep, Error> {
        let mut sweep = Sweep::default();
        for (folder, live) in [(OBJECTS, live_objects), (TREES, live_trees)] {
            let base = self.root.join(folder);
            let shards = match fs::read_dir(&base) {
                Ok(shards) => shards,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(Error::io("read", &base)(error)),
            };
            for shard in shards {
                let shard = shard.map_err(Error::io("read", &base))?.path();
                let Ok(items) = fs::read_dir(&shard) else {
                    continue;
                };
                for item in items {
                    let item = item.map_err(Error::io("read", &shard))?;
                    let keep = item
                        .file_name()
                        .to_str()
                        .and_then(ContentHash::parse)
                        .is_some_and(|hash| live.contains(&hash));
                    if !keep {
                        sweep.remove(&item.path())?;
                    }
                }
                // Empty shard folders go too; a non-empty one stays (the error is expected).
                let _ = fs::remove_dir(&shard);
            }
        }
        let tmp = self.root.join(TMP);
        if let Ok(items) = fs::read_dir(&tmp) {
            for item in items {
                let item = item.map_err(Error::io("read", &tmp))?;
                sweep.remove(&item.path())?;
            }
        }
        Ok(sweep)
    }
}

/// What [`Cas::sweep`] freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    pub files: u64,
    /// Bytes of disk actually freed (allocated blocks, so a sparse object counts its data).
    pub bytes: u64,
}

impl Sweep {
    fn remove(&mut self, path: &Path) -> Result<(), Error> {
        let meta = fs::symlink_metadata(path).map_err(Error::io("read", path))?;
        let removed = if meta.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        match removed {
            Ok(()) => {
                self.files += 1;
                self.bytes += meta.blocks() * 512;
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(Error::io("remove", path)(error)),
        }
    }
}

/// Whether read-only inputs may be hard links to stored objects: not for root, whom no mode
/// stops from writing.
fn may_link() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid != 0
}

/// Puts one stored file at `dest`: a hard link when read-only access allows it, else a copy
/// with its own mode.
fn place_file(object: &Path, dest: &Path, executable: bool, access: Access) -> Result<(), Error> {
    if access == Access::ReadOnly
        && !executable
        && may_link()
        && fs::hard_link(object, dest).is_ok()
    {
        return Ok(());
    }
    // A writable copy is a file the user asked for (`blocks get`): created with the usual
    // 0666/0777, the umask decides. A read-only input is made read-only after its copy.
    let (create_mode, final_mode) = match (access, executable) {
        (Access::ReadOnly, false) => (0o600, Some(0o444)),
        (Access::ReadOnly, true) => (0o700, Some(0o555)),
        (Access::Writable, false) => (0o666, None),
        (Access::Writable, true) => (0o777, None),
    };
    let mut source = File::open(object).map_err(Error::io("read", object))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(create_mode)
        .open(dest)
        .map_err(Error::io("create", dest))?;
    // `io::copy` between files uses copy_file_range on Linux: in the kernel, no buffer here.
    io::copy(&mut source, &mut target).map_err(Error::io("write", dest))?;
    if let Some(mode) = final_mode {
        target
            .set_permissions(Permissions::from_mode(mode))
            .map_err(Error::io("write", dest))?;
    }
    Ok(())
}

/// Removes a folder made by [`Cas::materialise`] with read-only access: its folders are made
/// writable again first, or their entries could not be unlinked.
///
/// # Errors
/// A folder cannot be read or changed, or an entry removed.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        fs::set_permissions(&dir, Permissions::from_mode(0o755))?;
        for item in fs::read_dir(&dir)? {
            let item = item?;
            if item.file_type()?.is_dir() {
                pending.push(item.path());
            }
        }
    }
    fs::remove_dir_all(path)
}

fn file_type_name(kind: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use super::{Access, Cas, INPUTS_DIR, remove_tree};
    use crate::blocks::hash::{CHUNK, hash_bytes};
    use crate::store::BlockKind;

    fn write(path: &Path, content: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_file_is_stored_once_read_only_under_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        write(&dir.path().join("a.csv"), b"id\n1\n");
        write(&dir.path().join("b.csv"), b"id\n1\n");
        let a = cas.put(&dir.path().join("a.csv"), None).unwrap();
        let b = cas.put(&dir.path().join("b.csv"), None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hash, hash_bytes(b"id\n1\n"));
        assert_eq!((a.kind, a.size, a.files), (BlockKind::File, 5, 1));
        let object = cas.object_path(&a.hash);
        assert_eq!(fs::read(&object).unwrap(), b"id\n1\n");
        assert_eq!(mode(&object), super::OBJECT_MODE);
        // Nothing is left behind in tmp/.
        assert_eq!(fs::read_dir(cas.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_large_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        let content: Vec<u8> = (0..CHUNK * 2 + 99).map(|i| (i % 241) as u8).collect();
        write(&dir.path().join("big"), &content);
        let stored = cas.put(&dir.path().join("big"), None).unwrap();
        assert_eq!(stored.hash, hash_bytes(&content));
        let again = cas.put(&dir.path().join("big"), None).unwrap();
        assert_eq!(again, stored);
        let out = dir.path().join("out");
        cas.materialise(&stored.hash, stored.kind, false, &out, Access::Writable)
            .unwrap();
        assert!(fs::read(&out).unwrap() == content);
        assert_eq!(mode(&out), 0o644);
    }

    fn sample_folder(root: &Path) {
        write(&root.join("data/orders.csv"), b"id\n1\n");
        write(&root.join("data/copy.csv"), b"id\n1\n");
        write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n");
        fs::set_permissions(root.join("run.sh"), Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        std::os::unix::fs::symlink("data/orders.csv", root.join("latest")).unwrap();
    }

    #[test]
    fn a_folder_round_trips_with_modes_links_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        let src = dir.path().join("src");
        sample_folder(&src);
        let stored = cas.put(&src, None).unwrap();
        assert_eq!(
            (stored.kind, stored.files, stored.size),
            (BlockKind::Folder, 3, 28)
        );
        // Identical files share one object: two contents plus one link target.
        let objects = cas.tree_objects(&stored.hash).unwrap();
        let distinct: HashSet<_> = objects.iter().collect();
        assert_eq!((objects.len(), distinct.len()), (4, 3));

        // The same content elsewhere, made with another umask, hashes the same.
        let twin = dir.path().join("twin");
        sample_folder(&twin);
        fs::set_permissions(twin.join("data/orders.csv"), Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cas.put(&twin, None).unwrap().hash, stored.hash);
        // A changed execute bit is a change.
        fs::set_permissions(twin.join("run.sh"), Permissions::from_mode(0o600)).unwrap();
        assert_ne!(cas.put(&twin, None).unwrap().hash, stored.hash);

        let input = dir.path().join("input");
        cas.materialise(&stored.hash, stored.kind, false, &input, Access::ReadOnly)
            .unwrap();
        assert_eq!(fs::read(input.join("data/orders.csv")).unwrap(), b"id\n1\n");
        // A hard link to the private object (0400), or a read-only copy (0444) for root.
        assert!([0o400, 0o444].contains(&mode(&input.join("data/orders.csv"))));
        assert_eq!(mode(&input.join("run.sh")), 0o555);
        assert_eq!(mode(&input), 0o555);
        assert!(input.join("empty").is_dir());
        assert_eq!(
            fs::read_link(input.join("latest")).unwrap(),
            Path::new("data/orders.csv")
        );
        // A read-only input is a hard link to the object (except the executable file), unless
        // the tests run as root: then it is a copy, which a write cannot carry to the store.
        let object = cas.object_path(&hash_bytes(b"id\n1\n"));
        let linked = fs::metadata(input.join("data/orders.csv")).unwrap().ino()
            == fs::metadata(&object).unwrap().ino();
        assert_eq!(linked, super::may_link());
        let _ = fs::write(input.join("data/orders.csv"), b"changed");
        assert_eq!(fs::read(&object).unwrap(), b"id\n1\n");
        remove_tree(&input).unwrap();
        assert!(!input.exists());
        assert_eq!(fs::read(&object).unwrap(), b"id\n1\n");

        let copy = dir.path().join("copy");
        cas.materialise(&stored.hash, stored.kind, false, &copy, Access::Writable)
            .unwrap();
        assert_eq!(mode(&copy.join("run.sh")), 0o755);
        assert_eq!(mode(&copy.join("data/orders.csv")), 0o644);
        assert_eq!(cas.put(&copy, None).unwrap().hash, stored.hash);
    }

    #[test]
    fn a_folder_skips_materialised_inputs_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let cas = Cas::new(work.join(".coreflow/blocks"));
        write(&work.join("out.txt"), b"1");
        let bare = cas.put(&work, None).unwrap();
        write(&work.join(INPUTS_DIR).join("7/x/x.txt"), b"input");
        write(&work.join(".coreflow/coreflow.db"), b"db");
        let with = cas.put(&work, Some(&work.join(".coreflow"))).unwrap();
        assert_eq!(with.hash, bare.hash);
    }

    #[test]
    fn unchanged_content_is_recognised_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        let content: Vec<u8> = (0..CHUNK * 2).map(|i| (i % 239) as u8).collect();
        let path = dir.path().join("big");
        write(&path, &content);
        let first = cas.put(&path, None).unwrap();
        // The same bytes: found by hashing; tmp/ never sees a file.
        fs::remove_dir_all(cas.root().join("tmp")).unwrap();
        let again = cas.put_unless_unchanged(&path, None, Some(&first)).unwrap();
        assert_eq!(again, first);
        assert!(!cas.root().join("tmp").exists());
        // Same size, other bytes: stored as new content.
        let mut other = content.clone();
        other[5] ^= 1;
        write(&path, &other);
        let changed = cas.put_unless_unchanged(&path, None, Some(&first)).unwrap();
        assert_eq!(changed.hash, hash_bytes(&other));
        assert!(cas.object_path(&changed.hash).exists());

        // In a folder, a large file at the same path and size is recognised the same way.
        let folder = dir.path().join("folder");
        write(&folder.join("data/big"), &content);
        write(&folder.join("small"), b"s");
        let first = cas.put(&folder, None).unwrap();
        fs::remove_dir_all(cas.root().join("tmp")).unwrap();
        assert_eq!(
            cas.put_unless_unchanged(&folder, None, Some(&first))
                .unwrap(),
            first
        );
        assert!(!cas.root().join("tmp").exists());
        write(&folder.join("data/big"), &other);
        let changed = cas
            .put_unless_unchanged(&folder, None, Some(&first))
            .unwrap();
        assert_ne!(changed.hash, first.hash);
        assert!(cas.object_path(&hash_bytes(&other)).exists());
    }

    #[test]
    fn unsupported_and_missing_paths_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        let missing = cas.put(&dir.path().join("nope.csv"), None).unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read `"),
            "{missing}"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = cas.put(&fifo, None).unwrap_err();
        assert!(error.to_string().contains("is a named pipe"), "{error}");
    }

    #[test]
    fn sweep_keeps_live_content_and_clears_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::new(dir.path().join("blocks"));
        write(&dir.path().join("keep"), b"keep");
        write(&dir.path().join("drop"), b"drop");
        let keep = cas.put(&dir.path().join("keep"), None).unwrap();
        let drop = cas.put(&dir.path().join("drop"), None).unwrap();
        write(&cas.root().join("tmp/object-crashed"), b"partial");
        let _hold = cas.lock_exclusive().unwrap();
        let live: HashSet<_> = [keep.hash.clone()].into();
        let sweep = cas.sweep(&live, &HashSet::new()).unwrap();
        assert_eq!(sweep.files, 2);
        assert!(cas.object_path(&keep.hash).exists());
        assert!(!cas.object_path(&drop.hash).exists());
    }
}
