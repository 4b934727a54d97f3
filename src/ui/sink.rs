//! Where line-oriented reporters write: a writer that ends quietly when its reader goes away.
//!
//! `coreflow run … | head` closes stdout early; the run must go on and must not panic or
//! complain (ripgrep's habit), so a broken pipe silently turns the sink off. Any other write
//! error also turns it off and is reported once by [`Sink::finish`].

use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use crate::ui::error::Error;

pub(crate) struct Sink {
    out: BufWriter<Box<dyn Write + Send>>,
    closed: bool,
    error: Option<io::Error>,
    last_flush: Instant,
}

/// Output is flushed at least this often while lines arrive, and by [`Sink::flush`] on the
/// reporter's tick: a chatty step then costs one write per buffer, not one per line.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

impl Sink {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Sink {
            out: BufWriter::with_capacity(64 * 1024, out),
            closed: false,
            error: None,
            last_flush: Instant::now(),
        }
    }

    /// Writes `text` as it is and flushes, so lines appear while the run goes on.
    pub(crate) fn write(&mut self, text: &str) {
        self.write_with(|out| out.write_all(text.as_bytes()));
    }

    /// Writes `line` and a line feed.
    pub(crate) fn line(&mut self, line: &str) {
        self.write_with(|out| {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        });
    }

    /// Runs `f` on the writer unless the sink is closed, then flushes.
    /// Writes a line that may wait in the buffer for a moment (step output).
    pub(crate) fn buffered_line(&mut self, line: &str) {
        if self.closed {
            return;
        }
        let result = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        self.settle(result);
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Writes pieces of a line that may wait in the buffer for a moment (step output).
    pub(crate) fn buffered_parts(&mut self, parts: &[&[u8]]) {
        if self.closed {
            return;
        }
        let mut result = Ok(());
        for part in parts {
            result = result.and_then(|()| self.out.write_all(part));
        }
        let result = result.and_then(|()| self.out.write_all(b"\n"));
        self.settle(result);
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Pushes buffered output to the terminal or file.
    pub(crate) fn flush(&mut self) {
        if self.closed {
            return;
        }
        self.last_flush = Instant::now();
        let result = self.out.flush();
        self.settle(result);
    }

    fn settle(&mut self, result: io::Result<()>) {
        if let Err(err) = result {
            self.closed = true;
            if err.kind() != io::ErrorKind::BrokenPipe {
                self.error = Some(err);
            }
        }
    }

    pub(crate) fn write_with(&mut self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        if self.closed {
            return;
        }
        self.last_flush = Instant::now();
        let result = f(&mut self.out).and_then(|()| self.out.flush());
        if let Err(err) = result {
            self.closed = true;
            if err.kind() != io::ErrorKind::BrokenPipe {
                self.error = Some(err);
            }
        }
    }

    /// Flushes, and reports the first write error other than a broken pipe.
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        self.write_with(|_| Ok(()));
        match self.error.take() {
            Some(err) => Err(Error::Output(err)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::Sink;
    use crate::ui::fixtures::Failing;

    #[test]
    fn broken_pipe_ends_quietly() {
        let mut sink = Sink::new(Box::new(Failing(io::ErrorKind::BrokenPipe)));
        sink.line("lost");
        sink.line("lost too");
        assert!(sink.finish().is_ok());
    }

    #[test]
    fn other_errors_are_reported_once() {
        let mut sink = Sink::new(Box::new(Failing(io::ErrorKind::StorageFull)));
        sink.line("lost");
        assert!(sink.finish().is_err());
        assert!(sink.finish().is_ok());
    }
}
