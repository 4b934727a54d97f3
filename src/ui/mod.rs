//! How `coreflow run` shows a run: live bars on a terminal, plain lines in logs and CI, JSON
//! events for scripts, GitHub Actions groups, and a `JUnit` report (SPEC §4, "Progress").
//!
//! The engine sends [`Event`]s to one [`Reporter`] and calls [`Reporter::finish`] at the end;
//! this module never looks at the engine or the store. Each reporter turns events into output:
//!
//! - [`PlainReporter`]: timestamped lines without control characters (`--progress plain`, no
//!   terminal, or `CI` set); folds jobs into `::group::`s and adds `::error` annotations when
//!   `GITHUB_ACTIONS` is set ([`github`]).
//! - [`TtyReporter`]: indicatif bars (`--progress tty`, or `auto` on a terminal).
//! - [`JsonReporter`]: one JSON object per event (`--progress json`); the fields are listed in
//!   [`json`].
//! - [`JUnitWriter`]: the `--junit PATH` report.
//! - [`Multi`]: several of them at once.
//!
//! The text of every line comes from the pure functions of [`format`](mod@format), which are
//! snapshot tested. A typical setup:
//!
//! ```text
//! let options = UiOptions::from_env(progress, color, quiet);
//! let mut reporters = vec![ui::reporter(&options)];
//! if let Some(path) = junit {
//!     reporters.push(Box::new(JUnitWriter::create(path)?)); // fails early: exit 2
//! }
//! let mut reporter = Multi(reporters);
//! // … reporter.event(&ev) for each event …
//! reporter.finish()?; // only a report file can fail here
//! ```
//!
//! Rules that hold in every mode: output never fails a run (a closed stdout ends it quietly),
//! memory stays bounded however much a step prints, and plain and JSON output never contain
//! terminal escape sequences, whatever `--color` says (colors are for live bars only).

mod error;
mod events;
#[cfg(test)]
mod fixtures;
pub mod format;
pub mod github;
pub mod json;
pub mod junit;
mod multi;
mod options;
pub mod plain;
mod ring;
mod sink;
pub mod tty;

use std::io;

pub use error::Error;
pub use events::{Event, JobChange, JobSummary, Reporter, Stream};
pub use json::JsonReporter;
pub use junit::JUnitWriter;
pub use multi::Multi;
pub use options::{ColorChoice, ProgressMode, UiOptions, UnknownChoice};
pub use plain::PlainReporter;
pub use tty::TtyReporter;

/// The screen reporter `options` call for, writing to stdout.
///
/// `json` → [`JsonReporter`]; `tty` → [`TtyReporter`], unless `--quiet`, which prints plain
/// failure lines and the result line only; otherwise [`PlainReporter`], GitHub-folding when
/// `GITHUB_ACTIONS` is set.
#[must_use]
pub fn reporter(options: &UiOptions) -> Box<dyn Reporter> {
    match options.effective_mode() {
        ProgressMode::Json => Box::new(JsonReporter::new(Box::new(io::stdout()))),
        ProgressMode::Tty if !options.quiet => Box::new(TtyReporter::new(options)),
        ProgressMode::Auto | ProgressMode::Tty | ProgressMode::Plain => {
            Box::new(PlainReporter::new(Box::new(io::stdout()), options))
        }
    }
}
