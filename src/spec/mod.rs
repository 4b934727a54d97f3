//! Workflow files: YAML → the typed model, with diagnostics a user can act on.
//!
//! [`calls::load`] (re-exported as `load`) is the entry point. The stages: [`yaml`] builds a positioned tree,
//! [`check`] walks it against the JSON Schema generated from [`model`], [`de`] builds the
//! model, and [`validate`] checks what a schema cannot (needs, cycles, templates, cron…), and
//! warns, with [`injection`], where a value the author does not control is pasted into a script.
//! [`params`] resolves parameter values for the commands that run workflows.

pub mod calls;
pub mod check;
pub mod cron;
pub mod dag;
pub mod de;
pub mod diag;
pub mod injection;
pub mod load;
pub mod matrix;
pub mod model;
pub mod params;
pub mod template;
pub mod validate;
pub mod yaml;

pub use calls::load;
pub use diag::{Diagnostic, Pos, Severity};
pub use load::{LoadError, Loaded, parse_bytes, parse_str};
pub use model::Workflow;

/// How deep a workflow file may nest: YAML collections, and the brackets, operators and
/// blocks of a template expression. Deeper input is refused with a positioned error rather
/// than risking the stack (SPEC §7).
pub const MAX_NESTING: usize = 64;

/// `NAME` in the variables a step sees (`COREFLOW_PARAM_NAME`, `COREFLOW_MATRIX_NAME`,
/// `COREFLOW_INPUT_NAME`): upper-cased, other characters as `_`.
#[must_use]
pub fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
