//! Content hashes: SHA-256 as 64 lowercase hex digits, always computed by streaming.
//!
//! A file block's hash is the SHA-256 of its bytes, so it equals what `sha256sum` prints for
//! the file. A folder block's hash is the SHA-256 of its canonical listing ([`super::tree`]).

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::store::ContentHash;

/// How much is read at a time when hashing or copying content: large enough that a system
/// call per chunk costs nothing next to hashing it, small enough to keep memory flat.
pub(crate) const CHUNK: usize = 1 << 20;

/// The hash of bytes already in memory.
#[must_use]
pub fn hash_bytes(bytes: &[u8]) -> ContentHash {
    ContentHash::from_digest(&Sha256::digest(bytes))
}

/// Hashes everything `reader` yields, a chunk at a time; returns the hash and the byte count.
///
/// # Errors
/// Reading fails.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(ContentHash, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((ContentHash::from_digest(&hasher.finalize()), total))
}

/// Reads until `buffer` is full or the reader ends; returns how much was read. Short reads
/// from pipes or signals do not end a chunk early, so chunks line up the same way each time.
///
/// # Errors
/// Reading fails.
pub(crate) fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::{ContentHash, hash_bytes, hash_reader, read_full};

    /// `printf 'hello\n' | sha256sum`
    const HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    #[test]
    fn hashes_match_sha256sum() {
        assert_eq!(hash_bytes(b"hello\n").as_str(), HELLO);
        let (hash, size) = hash_reader(&b"hello\n"[..]).unwrap();
        assert_eq!((hash.as_str(), size), (HELLO, 6));
        // Empty content has the well-known empty hash.
        assert_eq!(
            hash_bytes(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_reader_larger_than_a_chunk_hashes_like_the_whole() {
        let data: Vec<u8> = (0..(super::CHUNK * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let (hash, size) = hash_reader(&data[..]).unwrap();
        assert_eq!(hash, hash_bytes(&data));
        assert_eq!(size, data.len() as u64);
    }

    #[test]
    fn parse_accepts_only_lowercase_hex_of_the_right_length() {
        let hash = ContentHash::parse(HELLO).unwrap();
        assert_eq!(hash.short(), "5891b5b522d5");
        assert_eq!(hash.shard(), "58");
        assert!(ContentHash::parse(&HELLO.to_uppercase()).is_none());
        assert!(ContentHash::parse(&HELLO[1..]).is_none());
        assert!(ContentHash::parse("../../etc/passwd").is_none());
    }

    #[test]
    fn read_full_fills_across_short_reads() {
        // A reader that hands out 3 bytes at a time.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut buffer = [0u8; 8];
        let mut reader = Trickle(b"abcdefghij");
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 8);
        assert_eq!(&buffer, b"abcdefgh");
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 2);
    }
}
