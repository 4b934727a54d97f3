//! The errors of the user interface: only writing a report the user asked for can fail.

use std::io;
use std::path::PathBuf;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `JUnit` report's temporary file could not be created next to `path`.
    #[error("cannot create JUnit report {}: {source}", path.display())]
    JUnitCreate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The `JUnit` report could not be written or moved into place at `path`.
    #[error("cannot write JUnit report {}: {source}", path.display())]
    JUnitWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Progress output failed for another reason than a closed pipe.
    #[error("cannot write progress output")]
    Output(#[source] io::Error),
}
