//! Bounded line splitting of a step's stdout or stderr.
//!
//! [`LineSplitter`] turns the chunks read from one pipe into lines: the trailing `\n` and
//! `\r` are stripped, a final line without newline is delivered by [`LineSplitter::finish`],
//! and a line longer than [`MAX_LINE`] is delivered in pieces of at most that size. It never
//! holds more than [`MAX_LINE`] bytes, whatever the child prints. Complete lines are handed
//! out straight from the chunk they arrived in, without copying; only the unfinished tail
//! of a chunk is kept.
//!
//! Reading the pipes and timestamping lines is left to the caller (`process.rs` and the
//! sink it is given).

/// The longest piece of a line delivered at once; longer lines are cut into pieces this big.
pub const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines with a bounded buffer. One per stream.
#[derive(Debug)]
pub(super) struct LineSplitter {
    /// The start of the current, unfinished line (at most `max` bytes).
    pending: Vec<u8>,
    /// Whether a piece of the current line was already delivered, so that a newline
    /// arriving right after a full piece does not add an empty line.
    mid_line: bool,
    max: usize,
}

impl LineSplitter {
    /// A splitter that cuts lines into pieces of at most [`MAX_LINE`] bytes.
    pub(super) fn new() -> Self {
        Self::with_max(MAX_LINE)
    }

    /// A splitter with another piece size (tests use small ones).
    pub(super) fn with_max(max: usize) -> Self {
        let max = max.max(1);
        Self {
            pending: Vec::new(),
            mid_line: false,
            max,
        }
    }

    /// Feeds one chunk, calling `emit` for every line (or piece of a long line) it
    /// completes, in order.
    pub(super) fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while let Some(at) = find_newline(data) {
            self.complete_line(&data[..at], emit);
            data = &data[at + 1..];
        }
        if !data.is_empty() {
            self.push_partial(data, emit);
        }
    }

    /// Delivers what is left of a final line without newline, if anything.
    pub(super) fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.pending.is_empty() {
            let line = strip_cr(&self.pending);
            emit(line);
        }
        self.pending.clear();
        self.mid_line = false;
    }

    /// Handles `content`, the bytes before a newline.
    fn complete_line(&mut self, content: &[u8], emit: &mut dyn FnMut(&[u8])) {
        // Strip the carriage return of a CRLF ending first, wherever it sits, so that it
        // never ends up as a piece of its own.
        let content = if content.is_empty() {
            if self.pending.last() == Some(&b'\r') {
                self.pending.pop();
            }
            content
        } else {
            strip_cr(content)
        };
        let mut rest = content;
        if !self.pending.is_empty() {
            let room = self.max - self.pending.len();
            if rest.len() <= room {
                self.pending.extend_from_slice(rest);
                emit(&self.pending);
                self.pending.clear();
                self.mid_line = false;
                return;
            }
            self.pending.extend_from_slice(&rest[..room]);
            emit(&self.pending);
            self.pending.clear();
            self.mid_line = true;
            rest = &rest[room..];
        }
        // Long lines go out in full pieces, straight from the chunk.
        while rest.len() > self.max {
            emit(&rest[..self.max]);
            rest = &rest[self.max..];
            self.mid_line = true;
        }
        // A newline right after a full piece ends that line; it is not an empty line.
        if !(rest.is_empty() && self.mid_line) {
            emit(rest);
        }
        self.mid_line = false;
    }

    /// Keeps `data` (which holds no newline) as the start of the current line, delivering
    /// full pieces once more than `max` bytes have accumulated.
    fn push_partial(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        // A full piece is only delivered once more bytes of the same line arrive: if the
        // newline came next instead, the piece is simply the whole line.
        if self.pending.len() == self.max {
            emit(&self.pending);
            self.pending.clear();
            self.mid_line = true;
        }
        if self.pending.is_empty() {
            while data.len() > self.max {
                emit(&data[..self.max]);
                data = &data[self.max..];
                self.mid_line = true;
            }
            self.pending.extend_from_slice(data);
            return;
        }
        let room = self.max - self.pending.len();
        if data.len() <= room {
            self.pending.extend_from_slice(data);
        } else {
            self.pending.extend_from_slice(&data[..room]);
            self.push_partial(&data[room..], emit);
        }
    }
}

/// Removes one trailing `\r` (a CRLF line ending).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The position of the first `\n` in `data`.
///
/// Eight bytes at a time with the classic "has zero byte" bit trick: several times faster
/// than a byte loop, which matters when a step prints hundreds of megabytes.
fn find_newline(data: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = data.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        let x = word ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            // In little-endian order the lowest set flag marks the first match; flags above
            // it may be false positives, the lowest one never is.
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|at| offset + at)
}

#[cfg(test)]
mod tests {
    use super::{LineSplitter, MAX_LINE, find_newline};

    fn split_all(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::with_max(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, &mut |line| lines.push(line.to_vec()));
        }
        splitter.finish(&mut |line| lines.push(line.to_vec()));
        lines
    }

    fn texts(lines: &[Vec<u8>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn finds_newlines_like_a_byte_loop() {
        let mut data = vec![b'x'; 100];
        assert_eq!(find_newline(&data), None);
        for at in 0..100 {
            data[at] = b'\n';
            assert_eq!(find_newline(&data), Some(at), "newline at {at}");
            // A byte just above '\n' (0x0b) and 0x8a must not fool the bit trick.
            data[at] = 0x0b;
            assert_eq!(find_newline(&data), None);
            data[at] = 0x8a;
            assert_eq!(find_newline(&data), None);
            data[at] = b'x';
        }
        assert_eq!(find_newline(b"\x0a\x0a"), Some(0));
        assert_eq!(
            find_newline(b"\x0b\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a"),
            Some(1)
        );
        assert_eq!(find_newline(b""), None);
    }

    #[test]
    fn splits_lines_and_strips_line_endings() {
        let lines = split_all(MAX_LINE, &[b"one\ntwo\r\n\nthree"]);
        assert_eq!(texts(&lines), ["one", "two", "", "three"]);
    }

    #[test]
    fn joins_lines_split_across_chunks() {
        let lines = split_all(MAX_LINE, &[b"he", b"llo wo", b"rld\r", b"\nbye\n"]);
        assert_eq!(texts(&lines), ["hello world", "bye"]);
    }

    #[test]
    fn final_line_without_newline_is_delivered() {
        assert_eq!(texts(&split_all(8, &[b"a\nlast"])), ["a", "last"]);
        assert_eq!(texts(&split_all(8, &[b"a\n"])), ["a"]);
        assert!(split_all(8, &[]).is_empty());
    }

    #[test]
    fn long_lines_come_in_bounded_pieces() {
        // In one chunk.
        assert_eq!(
            texts(&split_all(4, &[b"abcdefghij\nk\n"])),
            ["abcd", "efgh", "ij", "k"]
        );
        // Byte by byte.
        let text = b"abcdefghij\nk\n";
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(texts(&split_all(4, &bytes)), ["abcd", "efgh", "ij", "k"]);
        // Across chunks of every size.
        for size in 1..=text.len() {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(
                texts(&split_all(4, &chunks)),
                ["abcd", "efgh", "ij", "k"],
                "{size}"
            );
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_one_piece() {
        for size in 1..=10 {
            let text = b"abcd\nefgh12345678\n\n";
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(
                texts(&split_all(4, &chunks)),
                ["abcd", "efgh", "1234", "5678", ""]
            );
        }
        assert_eq!(texts(&split_all(4, &[b"abcd"])), ["abcd"]);
        assert_eq!(texts(&split_all(4, &[b"abcdefgh"])), ["abcd", "efgh"]);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut splitter = LineSplitter::new();
        let chunk = vec![b'y'; 10_000];
        let mut pieces = 0usize;
        let mut total = 0usize;
        for _ in 0..100 {
            splitter.feed(&chunk, &mut |piece| {
                assert!(piece.len() <= MAX_LINE);
                pieces += 1;
                total += piece.len();
            });
            assert!(splitter.pending.len() <= MAX_LINE);
            assert!(splitter.pending.capacity() <= 2 * MAX_LINE);
        }
        splitter.finish(&mut |piece| {
            pieces += 1;
            total += piece.len();
        });
        assert_eq!(total, 1_000_000);
        assert_eq!(pieces, 1_000_000usize.div_ceil(MAX_LINE));
    }

    #[test]
    fn matches_a_naive_splitter_on_mixed_input() {
        // A deterministic pseudo-random stream of short, empty and long lines, fed in
        // chunks of varying size, must give what a simple reference implementation gives.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut data = Vec::new();
        for _ in 0..300 {
            let len = usize::try_from(next() % 23).expect("small");
            data.extend((0..len).map(|i| b'a' + u8::try_from(i % 26).expect("small")));
            if next() % 5 == 0 {
                data.push(b'\r');
            }
            data.push(b'\n');
        }
        data.extend_from_slice(b"tail");
        let max = 7;
        let mut expected = Vec::new();
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let last = lines.pop().expect("split yields one item at least");
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                expected.push(Vec::new());
            }
            expected.extend(line.chunks(max).map(<[u8]>::to_vec));
        }
        expected.extend(last.chunks(max).map(<[u8]>::to_vec));
        let mut start = 0;
        let mut chunks = Vec::new();
        while start < data.len() {
            let end = (start + 1 + usize::try_from(next() % 40).expect("small")).min(data.len());
            chunks.push(&data[start..end]);
            start = end;
        }
        assert_eq!(split_all(max, &chunks), expected);
    }
}
