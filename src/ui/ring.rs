//! A bounded buffer of a job's last output lines, for the tail shown under a failed job and
//! the output in a `JUnit` `<failure>`.
//!
//! A step may print gigabytes; reporters keep only the end of it, bounded both in lines and in
//! bytes, and count what they dropped.

use std::collections::VecDeque;

/// The last lines pushed into it, within a line count and a byte budget.
#[derive(Debug, Clone)]
pub(crate) struct LineRing {
    lines: VecDeque<String>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    dropped: u64,
}

impl LineRing {
    /// A ring that keeps at most `max_lines` lines and `max_bytes` bytes of text.
    ///
    /// A single line longer than `max_bytes` is cut to its last `max_bytes` bytes (on a
    /// character boundary), so the newest output always shows.
    pub(crate) fn new(max_lines: usize, max_bytes: usize) -> Self {
        LineRing {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, line: String) {
        let mut line = line;
        if line.len() > self.max_bytes {
            let mut start = line.len() - self.max_bytes;
            while !line.is_char_boundary(start) {
                start += 1;
            }
            line.replace_range(..start, "");
        }
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            self.dropped += 1;
        }
    }

    /// The kept lines, oldest first.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// How many lines were pushed out.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::LineRing;

    #[test]
    fn keeps_the_last_lines_within_both_bounds() {
        let mut ring = LineRing::new(3, 1_000);
        for i in 0..10 {
            ring.push(format!("line {i}"));
        }
        assert_eq!(
            ring.lines().collect::<Vec<_>>(),
            ["line 7", "line 8", "line 9"]
        );
        assert_eq!(ring.dropped(), 7);

        let mut ring = LineRing::new(100, 10);
        ring.push("aaaa".to_owned());
        ring.push("bbbb".to_owned());
        ring.push("cccc".to_owned());
        assert_eq!(ring.lines().collect::<Vec<_>>(), ["bbbb", "cccc"]);
        assert_eq!(ring.dropped(), 1);

        let mut ring = LineRing::new(100, 10);
        ring.push("é".repeat(20));
        let kept: Vec<_> = ring.lines().collect();
        assert_eq!(kept, ["ééééé"]);
    }
}
