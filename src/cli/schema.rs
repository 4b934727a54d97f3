//! `coreflow schema`: the JSON Schema of the workflow format, generated from the model types.

use crate::error::Error;
use crate::spec::model::json_schema;

/// The schema as printed, pretty JSON with a final newline.
#[must_use]
pub(super) fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a JSON value serializes");
    text.push('\n');
    text
}

pub(super) fn run() -> Result<(), Error> {
    super::output::print(&schema_text())
}
