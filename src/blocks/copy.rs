//! [`copy_content`]: DataBlock content from one environment's content store into another's
//! (`coreflow env copy`).
//!
//! It copies what the registry keeps — the content of every version not removed, a
//! folder's listing and the objects it names — not whatever lies in the source folder, so
//! that garbage `blocks gc` has not swept yet stays behind. Each stored file is written
//! under a temporary name beside its place, flushed, made read-only and renamed into place,
//! as [`Cas`] stores content, so a name that exists is always complete; content the
//! destination has already is left alone (the same name is the same bytes).
//!
//! Either side may keep its content in an object store ([`Content`]).

use std::collections::HashSet;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::content::Content;
use super::error::Error;
use crate::store::private;
use crate::store::{BlockKind, ContentHash};

/// What [`copy_content`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentCopied {
    /// Stored files (objects and folder listings) the content is made of.
    pub objects: u64,
    /// Of those, the ones the destination lacked and that were written.
    pub written: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Copies the content of `live` (each `(hash, kind)` of a version not removed, as
/// [`crate::store::BlockStore::live_block_content`] lists it) from `from` into `to`, holding
/// both stores' shared lock so that neither's `blocks gc` runs meanwhile. Content in an
/// object store is downloaded into the source's cache first, and uploaded from the
/// destination's store after.
///
/// # Errors
/// Content of the source is missing or cannot be read, or the destination cannot be
/// written.
pub fn copy_content(
    from_content: &Content,
    to_content: &Content,
    live: &[(ContentHash, BlockKind)],
) -> Result<ContentCopied, Error> {
    let _from = from_content.lock_shared()?;
    let _to = to_content.lock_shared()?;
    for (hash, kind) in live {
        from_content.fetch(hash, *kind)?;
    }
    let (from, to) = (from_content.cas(), to_content.cas());
    let mut copied = ContentCopied::default();
    let mut done: HashSet<(ContentHash, BlockKind)> = HashSet::new();
    let mut copy = |hash: &ContentHash, kind: BlockKind| -> Result<(), Error> {
        if !done.insert((hash.clone(), kind)) {
            return Ok(());
        }
        copied.objects += 1;
        if let Some(bytes) =
            copy_file(&from.content_path(hash, kind), &to.content_path(hash, kind))?
        {
            copied.written += 1;
            copied.bytes += bytes;
        }
        Ok(())
    };
    for (hash, kind) in live {
        copy(hash, *kind)?;
        if *kind == BlockKind::Folder {
            for object in from.tree_objects(hash)? {
                copy(&object, BlockKind::File)?;
            }
        }
    }
    for (hash, kind) in live {
        to_content.upload(hash, *kind)?;
    }
    Ok(copied)
}

/// Copies one stored file to `dest` unless it is there already; the bytes written, if any.
fn copy_file(source: &Path, dest: &Path) -> Result<Option<u64>, Error> {
    if fs::symlink_metadata(dest).is_ok() {
        return Ok(None);
    }
    let folder = dest.parent().unwrap_or(Path::new("."));
    private::create_dir_all(folder).map_err(Error::io("create", folder))?;
    let mut input = File::open(source).map_err(Error::io("read", source))?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".copy-")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(folder)
        .map_err(Error::io("create", folder))?;
    // Between files `io::copy` is copy_file_range: in the kernel, no buffer here.
    let bytes = io::copy(&mut input, temporary.as_file_mut()).map_err(Error::io("write", dest))?;
    let file = temporary.as_file();
    file.sync_all().map_err(Error::io("write", dest))?;
    file.set_permissions(Permissions::from_mode(0o400))
        .map_err(Error::io("write", dest))?;
    temporary
        .persist(dest)
        .map_err(|error| Error::io("write", dest)(error.error))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::copy_content;
    use crate::blocks::{Cas, Content};
    use crate::store::BlockKind;

    #[test]
    fn live_content_is_copied_once_read_only_and_garbage_stays_behind() {
        let dir = tempfile::tempdir().unwrap();
        let from = Cas::new(dir.path().join("from"));
        let to = Cas::new(dir.path().join("to"));
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), "a").unwrap();
        std::fs::write(src.join("sub/b.txt"), "b").unwrap();
        let folder = from.put(&src, None).unwrap();
        let file = from.put(&src.join("a.txt"), None).unwrap();
        let garbage = dir.path().join("garbage.txt");
        std::fs::write(&garbage, "old").unwrap();
        let garbage = from.put(&garbage, None).unwrap();

        let live = [
            (folder.hash.clone(), BlockKind::Folder),
            (file.hash.clone(), BlockKind::File),
        ];
        let (from_content, to_content) = (
            Content::folder(from.root().to_path_buf()),
            Content::folder(to.root().to_path_buf()),
        );
        let copied = copy_content(&from_content, &to_content, &live).unwrap();
        // The listing and its two files; `a.txt` is one object for both blocks.
        assert_eq!((copied.objects, copied.written), (3, 3));
        let object = to.object_path(&file.hash);
        assert_eq!(std::fs::read(&object).unwrap(), b"a");
        let mode = std::fs::metadata(&object).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert!(to.tree_path(&folder.hash).is_file());
        assert!(!to.object_path(&garbage.hash).exists());
        // Again: everything is there already.
        let again = copy_content(&from_content, &to_content, &live).unwrap();
        assert_eq!((again.objects, again.written), (3, 0));
    }
}
