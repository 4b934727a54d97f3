//! `blocks::Error`: what can go wrong storing, finding or materialising a DataBlock.
//!
//! The CLI maps the "not found" variants ([`Error::is_not_found`]) and an existing
//! destination to exit 2, a store error that means a broken environment to exit 3.

use std::io;
use std::path::{Path, PathBuf};

/// An error of the DataBlock layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No block of that name was ever published here.
    #[error("no DataBlock named `{name}` in this environment{}", hint(.suggestion))]
    UnknownBlock {
        name: String,
        /// "did you mean `orders`?"
        suggestion: Option<String>,
    },

    /// The name exists, the version does not.
    #[error("DataBlock `{name}` has no version {version} (the newest is {newest})")]
    UnknownVersion {
        name: String,
        version: u64,
        newest: u64,
    },

    /// Every version of the name, or the one asked for, was removed by `blocks gc`.
    #[error("DataBlock `{name}@{version}` was removed by `coreflow blocks gc`")]
    Removed { name: String, version: u64 },

    /// Not `NAME` or `NAME@VERSION`.
    #[error(
        "invalid DataBlock reference `{0}`: expected NAME or NAME@VERSION (a version counts from 1)"
    )]
    InvalidReference(String),

    /// A block name a job declares that `NAME@VERSION` could not name.
    #[error("invalid DataBlock name `{0}`: {rule}", rule = crate::spec::params::BLOCK_NAME_RULE)]
    InvalidName(String),

    /// `blocks get` would overwrite something.
    #[error("`{}` already exists; add --force to replace it", .0.display())]
    Exists(PathBuf),

    /// A file operation failed; `action` says which (`read`, `create`, …).
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Something that is neither a regular file, a folder nor a symbolic link inside one.
    #[error("`{}` is {what}; a DataBlock holds regular files, folders and symbolic links", path.display())]
    Unsupported { path: PathBuf, what: &'static str },

    /// The registry names content the content store does not hold.
    #[error("the content of DataBlock `{name}@{version}` is missing from the environment (`{}`)", path.display())]
    MissingContent {
        name: String,
        version: u64,
        path: PathBuf,
    },

    /// The object store holding block content (`--blocks s3://…`) failed or refused.
    #[error("DataBlock store `{url}`: {detail}")]
    Remote { url: String, detail: String },

    /// Content read from the object store is not what its name says.
    #[error("DataBlock store `{url}`: `{key}` holds content whose hash is {actual}")]
    Corrupt {
        url: String,
        key: String,
        actual: String,
    },

    /// A problem with the block a parameter names.
    #[error("parameter `{param}`: {source}")]
    Param {
        param: String,
        #[source]
        source: Box<Error>,
    },

    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// Whether this is a "not found" of a name or version (exit 2 on the command line).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::UnknownBlock { .. } | Error::UnknownVersion { .. } | Error::Removed { .. } => {
                true
            }
            Error::Param { source, .. } => source.is_not_found(),
            _ => false,
        }
    }

    /// The exit class: a broken environment (the store reports one, or content the
    /// registry names is missing) is 3; a name or version not found, a bad reference, a file
    /// that cannot be placed are 2.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Store(store) => store.exit_code(),
            Error::Param { source, .. } => source.exit_code(),
            Error::MissingContent { .. } | Error::Remote { .. } | Error::Corrupt { .. } => {
                crate::exit::ENVIRONMENT
            }
            _ => crate::exit::USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn messages_are_lowercase_fragments() {
        let error = Error::UnknownBlock {
            name: "ordrs".into(),
            suggestion: Some("did you mean `orders`?".into()),
        };
        assert_eq!(
            error.to_string(),
            "no DataBlock named `ordrs` in this environment: did you mean `orders`?"
        );
        assert!(error.is_not_found());
        let error = Error::UnknownVersion {
            name: "orders".into(),
            version: 9,
            newest: 2,
        };
        assert_eq!(
            error.to_string(),
            "DataBlock `orders` has no version 9 (the newest is 2)"
        );
        let io = Error::io("read", std::path::Path::new("x.csv"))(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        ));
        assert!(io.to_string().starts_with("cannot read `x.csv`: "), "{io}");
        assert!(!io.is_not_found());
    }
}
