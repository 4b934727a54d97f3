//! `NAME` or `NAME@VERSION`: how `-p`, `blocks show` and `blocks get` name a DataBlock.

use std::fmt;

use crate::spec::model::ParamType;
use crate::spec::params::{ParamValue, parse_value};

use super::error::Error;

/// `NAME` or `NAME@VERSION`, as `-p`, `blocks show` and `blocks get` take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    pub name: String,
    pub version: Option<u64>,
}

impl BlockRef {
    /// Parses `NAME` or `NAME@VERSION` (the same rule as a `datablock` parameter).
    ///
    /// # Errors
    /// [`Error::InvalidReference`].
    pub fn parse(text: &str) -> Result<BlockRef, Error> {
        match parse_value(ParamType::Datablock, text) {
            Ok(ParamValue::DataBlock { name, version }) => Ok(BlockRef { name, version }),
            _ => Err(Error::InvalidReference(text.to_owned())),
        }
    }
}

impl fmt::Display for BlockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(version) => write!(f, "{}@{version}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BlockRef;
    use crate::spec::params::is_valid_block_name as is_valid_name;

    #[test]
    fn references_parse_like_datablock_parameters() {
        assert_eq!(
            BlockRef::parse("orders@3").unwrap(),
            BlockRef {
                name: "orders".into(),
                version: Some(3)
            }
        );
        assert_eq!(BlockRef::parse("raw-orders").unwrap().version, None);
        assert_eq!(BlockRef::parse("orders@3").unwrap().to_string(), "orders@3");
        for bad in ["", "orders@0", "orders@x", "a b", "@1", "orders@"] {
            assert!(BlockRef::parse(bad).is_err(), "{bad}");
        }
        assert!(is_valid_name("daily_summary.v2"));
        assert!(!is_valid_name("a@1"));
        assert!(!is_valid_name("a/b"));
    }
}
