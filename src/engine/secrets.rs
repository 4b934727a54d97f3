//! `secrets:`: values read when a job starts — from the environment of the process that
//! starts it or from a file — handed to steps only through templates, never stored, and
//! masked (`***`) wherever a step's output leaves it: captured lines, outputs, and so the
//! logs, JUnit, `--progress json` and the API that read them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::spec::model::{SecretSource, Workflow};

/// What replaces a secret's value.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: they would mask ordinary text everywhere.
pub const MIN_MASKED: usize = 4;

/// A secret that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The variable `env:` names is not set (or not UTF-8).
    #[error("secret `{name}`: the environment variable `{variable}` is not set")]
    Unset { name: String, variable: String },
    /// The file `file:` names cannot be read.
    #[error("secret `{name}`: cannot read {path}: {problem}")]
    File {
        name: String,
        path: String,
        problem: String,
    },
}

/// Reads every secret of `workflow`, by name, from `env` (the starting process's environment)
/// and the files named. A file's trailing line break is not part of the value.
///
/// # Errors
/// The first secret that cannot be read, named.
pub fn resolve(
    workflow: &Workflow,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut values = BTreeMap::new();
    for (name, source) in &workflow.secrets {
        let value = match source {
            SecretSource::Env { env: variable } => {
                env.get(variable)
                    .cloned()
                    .ok_or_else(|| SecretError::Unset {
                        name: name.clone(),
                        variable: variable.clone(),
                    })?
            }
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|text| {
                    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                    trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
                })
                .map_err(|err| SecretError::File {
                    name: name.clone(),
                    path: file.clone(),
                    problem: err.to_string(),
                })?,
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// Replaces the values of secrets in text with [`MASK`].
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so that a secret containing another is masked whole.
    values: Vec<Vec<u8>>,
}

impl Masker {
    /// A masker for `values` (those shorter than [`MIN_MASKED`] are left alone).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a String>) -> Masker {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED)
            .map(|v| v.as_bytes().to_vec())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    /// Whether there is nothing to mask.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret's value replaced.
    #[must_use]
    pub fn mask<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let mut text = Cow::Borrowed(text);
        for value in &self.values {
            if memchr::memmem::find(&text, value).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(text.len());
            let mut rest: &[u8] = &text;
            while let Some(at) = memchr::memmem::find(rest, value) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(MASK.as_bytes());
                rest = &rest[at + value.len()..];
            }
            out.extend_from_slice(rest);
            text = Cow::Owned(out);
        }
        text
    }

    /// [`Masker::mask`] for text.
    #[must_use]
    pub fn mask_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_masked_longest_first_short_values_are_not() {
        let values = [
            "hunter2".to_owned(),
            "hunter2-admin".to_owned(),
            "abc".to_owned(),
        ];
        let masker = Masker::new(&values);
        assert_eq!(
            masker.mask_str("hunter2 hunter2-admin abc hunter2hunter2"),
            "*** *** abc ******"
        );
        assert!(matches!(masker.mask_str("nothing here"), Cow::Borrowed(_)));
        assert!(Masker::new(&["abc".to_owned()]).is_empty());
    }
}
