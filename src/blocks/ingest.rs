//! Copying a file into the content store while hashing it: one read pass, bounded memory.
//!
//! The file is read a chunk ([`CHUNK`]) at a time; each chunk is hashed on the calling thread
//! while a writer thread puts the previous one into a temporary file next to the objects.
//! Four chunk buffers circulate between the two, so memory stays at about 4 MiB whatever the
//! file's size, and publishing costs about one SHA-256 pass or one write, whichever is
//! slower, rather than their sum. What was hashed is exactly what was written, so an object
//! always matches its name even if the source changes meanwhile.
//!
//! Runs of zero bytes (whole 4 KiB blocks) are skipped rather than written, so a sparse
//! source stays sparse in the store. A file that fits in one chunk is hashed first and
//! written only when the store does not hold it yet.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use super::hash::{CHUNK, read_full};
use crate::store::ContentHash;

/// Chunk buffers in flight between the hashing and the writing thread.
const BUFFERS: usize = 4;

/// The granularity of hole detection: the usual file system block.
const SPARSE_BLOCK: usize = 4096;

static ZEROS: [u8; SPARSE_BLOCK] = [0; SPARSE_BLOCK];

/// What reading a source gave.
pub(crate) enum Ingested {
    /// The whole content fit in the first chunk and was not written anywhere yet.
    Small { hash: ContentHash, bytes: Vec<u8> },
    /// The content was written to the `temp` file given to [`ingest`].
    Written { hash: ContentHash, size: u64 },
}

/// Reads `source` to its end, hashing it; content larger than one chunk is written to `temp`
/// on the way (`temp` is only created by `open_temp` when needed). The temporary file is not
/// flushed to disk: the caller does that only if it keeps it.
///
/// # Errors
/// Reading `source`, creating or writing the temporary file fails; which one is told by
/// [`Failure`].
pub(crate) fn ingest(
    source: &mut File,
    open_temp: impl FnOnce() -> io::Result<File>,
) -> Result<Ingested, Failure> {
    let mut first = vec![0u8; CHUNK];
    let n = read_full(source, &mut first).map_err(Failure::Read)?;
    if n < CHUNK {
        first.truncate(n);
        let hash = ContentHash::from_digest(&Sha256::digest(&first));
        return Ok(Ingested::Small { hash, bytes: first });
    }
    let temp = open_temp().map_err(Failure::Write)?;
    let (hash, size) = pipeline(source, &temp, first)?;
    Ok(Ingested::Written { hash, size })
}

/// Why ingesting failed: the source could not be read, or the store could not be written.
#[derive(Debug)]
pub(crate) enum Failure {
    Read(io::Error),
    Write(io::Error),
}

/// Hashes on this thread, writes on another; `first` is a full first chunk.
fn pipeline(source: &mut File, temp: &File, first: Vec<u8>) -> Result<(ContentHash, u64), Failure> {
    let (to_writer, chunks) = mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS - 2);
    let (give_back, free) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_chunks(temp, &chunks, &give_back));
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut spare: Vec<Vec<u8>> = (1..BUFFERS).map(|_| vec![0u8; CHUNK]).collect();
        let mut next = Some((first, CHUNK));
        let mut read_error = None;
        while let Some((buffer, n)) = next.take() {
            hasher.update(&buffer[..n]);
            total += n as u64;
            if to_writer.send((buffer, n)).is_err() {
                // The writer stopped on an error; it reports it below.
                break;
            }
            if n < CHUNK {
                break;
            }
            let mut buffer = match spare.pop() {
                Some(buffer) => buffer,
                None => match free.recv() {
                    Ok(buffer) => buffer,
                    Err(_) => break,
                },
            };
            match read_full(source, &mut buffer) {
                Ok(0) => {}
                Ok(n) => next = Some((buffer, n)),
                Err(error) => read_error = Some(error),
            }
        }
        drop(to_writer);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        if let Some(error) = read_error {
            return Err(Failure::Read(error));
        }
        let written = written.map_err(Failure::Write)?;
        if written != total {
            return Err(Failure::Write(io::Error::other(
                "the writing thread stopped early",
            )));
        }
        temp.set_len(total).map_err(Failure::Write)?;
        Ok((ContentHash::from_digest(&hasher.finalize()), total))
    })
}

/// The writing thread: positional writes, skipping whole zero blocks. Returns the byte count.
fn write_chunks(
    file: &File,
    chunks: &mpsc::Receiver<(Vec<u8>, usize)>,
    give_back: &mpsc::Sender<Vec<u8>>,
) -> io::Result<u64> {
    let mut offset = 0u64;
    for (buffer, n) in chunks {
        write_sparse(file, &buffer[..n], offset)?;
        offset += n as u64;
        // The hashing side may have finished and gone; the buffer is then simply dropped.
        let _ = give_back.send(buffer);
    }
    Ok(offset)
}

/// Writes `data` at `offset`, leaving holes where whole blocks are zero. The caller sets the
/// file's final length, which covers a hole at the very end.
pub(crate) fn write_sparse(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut start = 0;
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + SPARSE_BLOCK).min(data.len());
        let block = &data[pos..end];
        // A slice comparison is a memcmp: fast even in a debug build, and it stops at the
        // first non-zero byte, so ordinary data costs next to nothing here.
        if block.len() == SPARSE_BLOCK && block == ZEROS {
            if start < pos {
                file.write_all_at(&data[start..pos], offset + start as u64)?;
            }
            start = end;
        }
        pos = end;
    }
    if start < data.len() {
        file.write_all_at(&data[start..], offset + start as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    use super::{Ingested, ingest};
    use crate::blocks::hash::{CHUNK, hash_bytes};

    fn source(dir: &std::path::Path, content: &[u8]) -> File {
        let path = dir.join("source");
        File::create(&path).unwrap().write_all(content).unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn a_small_file_is_hashed_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = source(dir.path(), b"hello\n");
        let result = ingest(&mut file, || panic!("no temporary file for small content"));
        match result {
            Ok(Ingested::Small { hash, bytes }) => {
                assert_eq!(hash, hash_bytes(b"hello\n"));
                assert_eq!(bytes, b"hello\n");
            }
            _ => panic!("expected small content"),
        }
    }

    #[test]
    fn a_large_file_is_copied_and_hashed_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        // Three chunks and a bit, with a zero run in the middle and at the end.
        let mut content: Vec<u8> = (0..CHUNK * 3 + 1234).map(|i| (i % 253) as u8 | 1).collect();
        content[CHUNK..CHUNK + 64 * 1024].fill(0);
        let tail = content.len() - 10_000;
        content[tail..].fill(0);
        let mut file = source(dir.path(), &content);
        let temp_path = dir.path().join("temp");
        let result = ingest(&mut file, || File::create(&temp_path));
        let Ok(Ingested::Written { hash, size }) = result else {
            panic!("expected written content");
        };
        assert_eq!(size, content.len() as u64);
        assert_eq!(hash, hash_bytes(&content));
        let mut copy = Vec::new();
        File::open(&temp_path)
            .unwrap()
            .read_to_end(&mut copy)
            .unwrap();
        assert!(copy == content, "the copy differs from the source");
    }

    #[test]
    fn zero_blocks_become_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let sparse = File::create(&path).unwrap();
        sparse.set_len(64 * CHUNK as u64).unwrap();
        let mut file = File::open(&path).unwrap();
        let temp_path = dir.path().join("temp");
        let Ok(Ingested::Written { size, .. }) = ingest(&mut file, || File::create(&temp_path))
        else {
            panic!("expected written content");
        };
        assert_eq!(size, 64 * CHUNK as u64);
        let meta = std::fs::metadata(&temp_path).unwrap();
        assert_eq!(meta.len(), size);
        // 512-byte blocks actually allocated: far fewer than 64 MiB worth.
        assert!(meta.blocks() * 512 < size / 16, "{} blocks", meta.blocks());
    }
}
