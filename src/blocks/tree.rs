//! The canonical listing of a folder block: what its hash is computed from, and what is kept
//! in the content store to rebuild the folder.
//!
//! A listing starts with the line `coreflow-tree 1`, then holds one record per entry below
//! the folder, sorted by relative path (bytes, `/` between components), each ended by a NUL
//! byte — the one byte a Unix path cannot hold:
//!
//! ```text
//! d 755 0 - data
//! f 644 1024 <sha256 of the content> data/orders.csv
//! f 755 88 <sha256 of the content> run.sh
//! l 777 9 <sha256 of the target text> latest
//! ```
//!
//! Modes are normalised as git does — a file is `755` when any execute bit is set, else
//! `644`; folders are `755`, symbolic links `777` — so that a different umask does not make a
//! new version of the same content. Owners and times are not part of a block. A symbolic
//! link is kept as a link (its target text is stored like file content), never followed.

use std::io::{self, BufRead};

use crate::store::ContentHash;

/// The first line of every listing.
pub(crate) const HEADER: &[u8] = b"coreflow-tree 1\n";

/// What an entry of a folder block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File { executable: bool },
    Symlink,
}

impl EntryKind {
    fn code(self) -> (&'static str, &'static str) {
        match self {
            EntryKind::Dir => ("d", "755"),
            EntryKind::File { executable: false } => ("f", "644"),
            EntryKind::File { executable: true } => ("f", "755"),
            EntryKind::Symlink => ("l", "777"),
        }
    }
}

/// One entry of a folder block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Relative to the folder, components joined by `/`; never empty, absolute or with `..`.
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryKind,
    /// Content bytes (the target's length for a link; 0 for a folder).
    pub(crate) size: u64,
    /// The content (or link target) hash; `None` for a folder.
    pub(crate) hash: Option<ContentHash>,
}

/// Sorts `entries` into canonical order and writes the listing.
#[must_use]
pub(crate) fn encode(entries: &mut [Entry]) -> Vec<u8> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = HEADER.to_vec();
    for entry in entries.iter() {
        let (kind, mode) = entry.kind.code();
        let hash = entry.hash.as_ref().map_or("-", ContentHash::as_str);
        out.extend_from_slice(format!("{kind} {mode} {} {hash} ", entry.size).as_bytes());
        out.extend_from_slice(&entry.path);
        out.push(0);
    }
    out
}

/// Reads a listing one entry at a time, so that a folder of a million files is rebuilt
/// without holding its listing in memory.
pub(crate) struct Reader<R> {
    input: R,
    record: Vec<u8>,
    started: bool,
}

impl<R: BufRead> Reader<R> {
    pub(crate) fn new(input: R) -> Reader<R> {
        Reader {
            input,
            record: Vec::new(),
            started: false,
        }
    }

    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if !self.started {
            self.started = true;
            let mut header = Vec::new();
            self.input.read_until(b'\n', &mut header)?;
            if header != HEADER {
                return Err(invalid("it does not start with `coreflow-tree 1`"));
            }
        }
        self.record.clear();
        if self.input.read_until(0, &mut self.record)? == 0 {
            return Ok(None);
        }
        if self.record.pop() != Some(0) {
            return Err(invalid("its last record is cut short"));
        }
        parse_record(&self.record).map(Some)
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        self.next_entry().transpose()
    }
}

fn invalid(detail: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a folder listing: {detail}"),
    )
}

fn parse_record(record: &[u8]) -> io::Result<Entry> {
    let mut fields = record.splitn(5, |&b| b == b' ');
    let mut field = || {
        fields
            .next()
            .ok_or_else(|| invalid("a record has too few fields"))
    };
    let (kind, mode, size, hash, path) = (field()?, field()?, field()?, field()?, field()?);
    let kind = match (kind, mode) {
        (b"d", b"755") => EntryKind::Dir,
        (b"f", b"644") => EntryKind::File { executable: false },
        (b"f", b"755") => EntryKind::File { executable: true },
        (b"l", b"777") => EntryKind::Symlink,
        _ => return Err(invalid("a record has an unknown type or mode")),
    };
    let size = std::str::from_utf8(size)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| invalid("a record has a bad size"))?;
    let hash = match (kind, hash) {
        (EntryKind::Dir, b"-") => None,
        (EntryKind::Dir, _) => return Err(invalid("a folder record has a hash")),
        (_, text) => Some(
            std::str::from_utf8(text)
                .ok()
                .and_then(ContentHash::parse)
                .ok_or_else(|| invalid("a record has a bad hash"))?,
        ),
    };
    if !is_safe_path(path) {
        return Err(invalid(
            "a record's path is empty, absolute or leaves the folder",
        ));
    }
    Ok(Entry {
        path: path.to_vec(),
        kind,
        size,
        hash,
    })
}

/// Whether `path` stays inside the folder: relative, no empty, `.` or `..` components.
fn is_safe_path(path: &[u8]) -> bool {
    !path.is_empty()
        && path
            .split(|&b| b == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..")
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::{Entry, EntryKind, Reader, encode};
    use crate::blocks::hash::hash_bytes;

    fn file(path: &str, content: &[u8], executable: bool) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::File { executable },
            size: content.len() as u64,
            hash: Some(hash_bytes(content)),
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::Dir,
            size: 0,
            hash: None,
        }
    }

    #[test]
    fn the_listing_is_canonical_whatever_the_walk_order() {
        let mut one = vec![
            file("b.txt", b"b", false),
            dir("a"),
            file("a/x", b"x", true),
            file("a-b", b"ab", false),
        ];
        let mut two: Vec<Entry> = one.iter().rev().cloned().collect();
        assert_eq!(encode(&mut one), encode(&mut two));
        let order: Vec<&[u8]> = one.iter().map(|e| e.path.as_slice()).collect();
        // Bytes order: `-` sorts before `/`, and a folder always before what it holds.
        assert_eq!(order, [&b"a"[..], b"a-b", b"a/x", b"b.txt"]);
    }

    #[test]
    fn mode_and_content_both_count() {
        let plain = encode(&mut [file("run.sh", b"echo", false)]);
        let exec = encode(&mut [file("run.sh", b"echo", true)]);
        let other = encode(&mut [file("run.sh", b"echo 2", false)]);
        assert_ne!(hash_bytes(&plain), hash_bytes(&exec));
        assert_ne!(hash_bytes(&plain), hash_bytes(&other));
    }

    #[test]
    fn a_listing_reads_back_entry_by_entry() {
        let mut entries = vec![
            dir("d"),
            file("d/with space\nand newline", b"1", false),
            Entry {
                path: b"link".to_vec(),
                kind: EntryKind::Symlink,
                size: 6,
                hash: Some(hash_bytes(b"target")),
            },
        ];
        let bytes = encode(&mut entries);
        let read: Vec<Entry> = Reader::new(Cursor::new(bytes))
            .collect::<std::io::Result<_>>()
            .unwrap();
        assert_eq!(read, entries);
    }

    #[test]
    fn damaged_or_hostile_listings_are_refused() {
        let good = encode(&mut [file("a", b"1", false)]);
        let cases: Vec<Vec<u8>> = vec![
            b"not a listing\n".to_vec(),
            good[..good.len() - 1].to_vec(),
            encode(&mut [file("../escape", b"1", false)]),
            encode(&mut [file("/etc/passwd", b"1", false)]),
            encode(&mut [file("a//b", b"1", false)]),
            String::from_utf8_lossy(&good)
                .replace(" 644 ", " 600 ")
                .into_bytes(),
        ];
        for case in cases {
            let result: std::io::Result<Vec<Entry>> = Reader::new(Cursor::new(case)).collect();
            assert!(result.is_err());
        }
    }
}
