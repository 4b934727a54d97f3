//! `coreflow validate FILE…`: check files without running anything (exit 0 when all are
//! valid, 2 otherwise), every problem of every file at once. The warnings of a valid file are
//! printed but leave it valid, unless `--deny-warnings` counts them as errors.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::{GlobalArgs, ValidateArgs};
use crate::error::Error;
use crate::spec::{Diagnostic, Loaded, load};

/// One file's verdict in `--json` output.
#[derive(Serialize)]
struct Verdict {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<usize>,
    errors: Vec<Problem>,
    /// Reported for a file without errors (with `--deny-warnings`, they are its errors).
    warnings: Vec<Problem>,
}

/// One diagnostic in `--json` output.
#[derive(Serialize)]
struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
}

impl From<&Diagnostic> for Problem {
    fn from(d: &Diagnostic) -> Self {
        Problem {
            line: Some(d.pos.line),
            column: Some(d.pos.col),
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

pub(super) fn run(global: &GlobalArgs, args: &ValidateArgs) -> Result<(), Error> {
    let mut verdicts = Vec::with_capacity(args.files.len());
    let mut stderr = std::io::stderr().lock();
    for file in &args.files {
        let mut loaded = load(file);
        if args.deny_warnings {
            loaded = loaded.and_then(Loaded::deny_warnings);
        }
        match loaded {
            Ok(loaded) => {
                if !global.json {
                    stderr.write_all(loaded.render_warnings().as_bytes())?;
                }
                if !global.json && !global.quiet {
                    super::output::print(&format!(
                        "{}: ok ({}, {} job{})\n",
                        file.display(),
                        loaded.name,
                        loaded.workflow.jobs.len(),
                        if loaded.workflow.jobs.len() == 1 {
                            ""
                        } else {
                            "s"
                        }
                    ))?;
                }
                verdicts.push(Verdict {
                    file: file.display().to_string(),
                    valid: true,
                    workflow: Some(loaded.name),
                    jobs: Some(loaded.workflow.jobs.len()),
                    errors: Vec::new(),
                    warnings: loaded.warnings.iter().map(Problem::from).collect(),
                });
            }
            Err(err) => {
                if !global.json {
                    stderr.write_all(err.render().as_bytes())?;
                }
                let mut errors: Vec<Problem> = err.diagnostics.iter().map(Problem::from).collect();
                if let Some(io) = &err.io {
                    errors.push(Problem {
                        line: None,
                        column: None,
                        message: format!("cannot read the file: {io}"),
                        help: None,
                    });
                }
                verdicts.push(Verdict {
                    file: file.display().to_string(),
                    valid: false,
                    workflow: None,
                    jobs: None,
                    errors,
                    warnings: Vec::new(),
                });
            }
        }
    }
    if global.json {
        let mut text = serde_json::to_string_pretty(&verdicts).expect("verdicts serialize");
        text.push('\n');
        super::output::print(&text)?;
    }
    if verdicts.iter().all(|v| v.valid) {
        Ok(())
    } else {
        Err(Error::AlreadyReported)
    }
}
