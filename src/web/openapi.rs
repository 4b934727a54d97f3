//! The OpenAPI document (placeholder).

/// The document as JSON.
#[must_use]
pub fn document_json() -> String {
    "{}".to_owned()
}
