//! Workflow files: YAML → the typed model, with diagnostics a user can act on.
//!
//! [`load::load`] is the entry point. The stages: [`yaml`] builds a positioned tree,
//! [`check`] walks it against the JSON Schema generated from [`model`], [`de`] builds the
//! model, and [`validate`] checks what a schema cannot (needs, cycles, templates, cron…).
//! [`params`] resolves parameter values for the commands that run workflows.

pub mod check;
pub mod cron;
pub mod de;
pub mod diag;
pub mod load;
pub mod model;
pub mod params;
pub mod template;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Pos};
pub use load::{LoadError, Loaded, load, parse_str};
pub use model::Workflow;
