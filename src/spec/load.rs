//! Loading a workflow file: bytes → YAML tree → structural check → model → semantic checks.
//!
//! Every stage collects positioned diagnostics; a file is accepted only when none of them is an
//! error. Warnings travel with the accepted file ([`Loaded::warnings`]) for the commands to
//! show; a refused file reports its errors only.
//! Nothing in here panics, overflows the stack or takes more than linear time on any input:
//! property tests over arbitrary bytes check it here and in `tests/cli/robustness.rs`, and the
//! fuzz target in `fuzz/` ([`parse_bytes`] is its entry) searches for counterexamples.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::spec::check::{check_workflow, parents_of, prune};
use crate::spec::de::from_node;
use crate::spec::diag::{Diagnostic, Pos, Severity, render_report};
use crate::spec::model::Workflow;
use crate::spec::validate::validate;
use crate::spec::yaml::{self, Node};

/// A workflow file that passed every check.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub workflow: Workflow,
    /// `name:` or the file name without its extension.
    pub name: String,
    /// The file as given on the command line (for messages).
    pub file: String,
    /// The folder relative paths are resolved against.
    pub dir: PathBuf,
    pub source: String,
    /// Hex SHA-256 of the file's bytes.
    pub hash: String,
    pub root: Node,
    /// What is allowed but risky, such as script injection, sorted by position.
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    /// The warnings rendered with their source lines, then a count; empty without any.
    #[must_use]
    pub fn render_warnings(&self) -> String {
        if self.warnings.is_empty() {
            return String::new();
        }
        render_report(&self.file, &self.source, &self.warnings)
    }

    /// The file refused for its warnings, as `validate --deny-warnings` asks; unchanged when
    /// it has none.
    ///
    /// # Errors
    /// Every warning, now an error.
    pub fn deny_warnings(self) -> Result<Loaded, LoadError> {
        if self.warnings.is_empty() {
            return Ok(self);
        }
        let mut diagnostics = self.warnings;
        for diagnostic in &mut diagnostics {
            diagnostic.severity = Severity::Error;
        }
        Err(LoadError {
            file: self.file,
            source: self.source,
            diagnostics,
            io: None,
        })
    }
}

/// Why a workflow file was refused: either it could not be read, or its diagnostics.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub file: String,
    pub source: String,
    /// The errors, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// Set when the file could not be read at all.
    pub io: Option<String>,
}

impl LoadError {
    /// Every diagnostic rendered with its source line, then a count.
    #[must_use]
    pub fn render(&self) -> String {
        if let Some(io) = &self.io {
            return format!("error: cannot read {}: {io}\n", self.file);
        }
        render_report(&self.file, &self.source, &self.diagnostics)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks one workflow file, not the files it calls (see
/// [`crate::spec::calls::load`], which does both).
///
/// # Errors
/// The file cannot be read, or it has problems (all of them, sorted by position).
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| LoadError {
        file: file.clone(),
        source: String::new(),
        diagnostics: Vec::new(),
        io: Some(err.to_string()),
    })?;
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut loaded = parse_bytes(&file, bytes)?;
    loaded.dir = dir;
    if loaded.workflow.name.is_none() {
        loaded.name = path.file_stem().map_or_else(
            || "workflow".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
    }
    Ok(loaded)
}

/// Checks workflow text that did not come from a file (tests, the API).
///
/// # Errors
/// As [`load_file`].
pub fn parse_str(file: &str, source: &str) -> Result<Loaded, LoadError> {
    parse_bytes(file, source.as_bytes().to_vec())
}

/// Checks a workflow file's bytes (the fuzz target's entry), which become its
/// [`Loaded::source`] without a copy.
///
/// # Errors
/// As [`load_file`]; bytes that are not UTF-8 are refused at the first bad one.
pub fn parse_bytes(file: &str, bytes: Vec<u8>) -> Result<Loaded, LoadError> {
    let fail = |source: String, diagnostics: Vec<Diagnostic>| LoadError {
        file: file.to_owned(),
        source,
        diagnostics,
        io: None,
    };
    let source = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let bytes = err.as_bytes();
            let err = err.utf8_error();
            let valid = &bytes[..err.valid_up_to()];
            let text = String::from_utf8_lossy(bytes).into_owned();
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            let pos = Pos {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                col: u32::try_from(col).unwrap_or(u32::MAX),
                offset: err.valid_up_to(),
                len: 1,
            };
            let diag = Diagnostic::error(pos, "the file is not UTF-8 text".to_owned());
            return Err(fail(text, vec![diag]));
        }
    };
    let root = match yaml::parse(&source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let diag = Diagnostic::error(
                Pos {
                    line: 1,
                    col: 1,
                    offset: 0,
                    len: 1,
                },
                "the file is empty: a workflow needs at least `jobs`".to_owned(),
            );
            return Err(fail(source, vec![diag]));
        }
        Err(diag) => return Err(fail(source, vec![diag])),
    };
    if root.as_map().is_none() {
        let diag = Diagnostic::error(
            root.pos,
            format!("a workflow is a map with `jobs`, found {}", root.describe()),
        );
        return Err(fail(source, vec![diag]));
    }
    let report = check_workflow(&root);
    let mut diagnostics = report.diagnostics;
    if !diagnostics.is_empty() {
        // Drop what does not fit and check the rest too, so that one run of `validate`
        // reports every problem; when the model cannot be built even so, stop here.
        let quiet = parents_of(&root, &report.bad);
        let pruned = prune(root, &report.bad);
        if let Ok(mut workflow) = from_node::<Workflow>(&pruned) {
            workflow.imply_needs();
            let mut semantic = Vec::new();
            validate(&workflow, &pruned, &source, &mut semantic);
            diagnostics.extend(
                semantic
                    .into_iter()
                    .filter(|d| d.is_error() && !quiet.contains(&d.pos)),
            );
        }
        diagnostics.sort_by_key(|d| d.pos);
        diagnostics.dedup();
        return Err(fail(source, diagnostics));
    }
    let mut workflow: Workflow = match from_node(&root) {
        Ok(workflow) => workflow,
        Err(err) => {
            let pos = err.pos.unwrap_or(root.pos);
            return Err(fail(source, vec![Diagnostic::error(pos, err.message)]));
        }
    };
    workflow.imply_needs();
    validate(&workflow, &root, &source, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.pos);
    diagnostics.dedup();
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        diagnostics.into_iter().partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(fail(source, errors));
    }
    let hash = Sha256::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = workflow.name.clone().unwrap_or_else(|| {
        Path::new(file).file_stem().map_or_else(
            || "workflow".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    Ok(Loaded {
        workflow,
        name,
        file: file.to_owned(),
        dir: PathBuf::from("."),
        source,
        hash,
        root,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{TestCaseError, prop_assert};

    use super::*;

    #[test]
    fn empty_and_scalar_files_are_invalid() {
        for src in [
            "",
            "   \n",
            "just text",
            "- a\n- b\n",
            "jobs: {}\n",
            "jobs:\n",
        ] {
            let err = parse_str("wf.yaml", src).unwrap_err();
            assert!(!err.diagnostics.is_empty(), "{src:?}");
        }
    }

    #[test]
    fn binary_garbage_points_at_the_bad_byte() {
        let err = parse_bytes("wf.yaml", b"jobs:\n  a\xff: 1\n".to_vec()).unwrap_err();
        assert_eq!(
            (err.diagnostics[0].pos.line, err.diagnostics[0].pos.col),
            (2, 4)
        );
    }

    #[test]
    fn a_valid_file_loads() {
        let loaded = parse_str(
            "hello.yaml",
            "jobs:\n  a:\n    steps:\n      - run: echo hi\n",
        )
        .unwrap();
        assert_eq!(loaded.name, "hello");
        assert_eq!(loaded.hash.len(), 64);
    }

    /// What every input must come to: accepted, or refused with diagnostics that each have a
    /// position (line and column from 1).
    fn positioned(result: &Result<Loaded, LoadError>) -> Result<(), TestCaseError> {
        let Err(err) = result else {
            return Ok(());
        };
        prop_assert!(!err.diagnostics.is_empty(), "refused without a diagnostic");
        for diagnostic in &err.diagnostics {
            prop_assert!(
                diagnostic.pos.line >= 1 && diagnostic.pos.col >= 1,
                "{diagnostic:?}"
            );
        }
        Ok(())
    }

    const VALID: &str = "name: demo\nparams:\n  n: { type: int, default: 3 }\njobs:\n  a:\n    steps:\n      - run: echo ${{ params.n }}\n  b:\n    needs: [a]\n    matrix: { x: [1, 2] }\n    retry: { max_attempts: 2, delay: 1s }\n    steps: [{ command: [echo, '${{ matrix.x }}'] }]\n";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Arbitrary bytes are accepted or refused with positions, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            positioned(&parse_bytes("fuzz.yaml", bytes))?;
        }

        /// A valid file with bytes replaced or cut is accepted or refused with positions.
        #[test]
        fn mutated_workflows_never_panic(
            edits in proptest::collection::vec((0..VALID.len(), proptest::prelude::any::<u8>()), 0..8),
            cut in 0..=VALID.len(),
        ) {
            let mut bytes = VALID.as_bytes()[..cut].to_vec();
            for (at, byte) in edits {
                if at < bytes.len() {
                    bytes[at] = byte;
                }
            }
            positioned(&parse_bytes("fuzz.yaml", bytes))?;
        }

        /// Random YAML-ish text built from the format's own tokens reaches the deeper checks,
        /// and is accepted or refused with positions.
        #[test]
        fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(vec![
            "jobs:", "\n", "  ", "a:", "b:", "steps:", "- ", "run: x", "needs: [a]", "needs: b",
            "${{ params.x }}", "${{ needs.a.outputs.y ", "matrix: { k: [1] }", "{", "}", "[", "]",
            "&x ", "*x", "<<: *x", "timeout: 1h30m", "timeout: 5", "retry: { max_attempts: 0 }",
            "if: '!a && b'", "'", "\"", "\t", "#", ":", "params: { x: { type: int, default: y } }",
        ]), 0..64)) {
            let text: String = tokens.concat();
            positioned(&parse_str("soup.yaml", &text))?;
        }
    }

    #[test]
    fn large_and_deep_inputs_are_handled() {
        // About 5 MB of jobs loads (or is refused) without trouble.
        let mut big = String::from("jobs:\n");
        let filler = "x".repeat(4000);
        let mut i = 0;
        while big.len() < 5 * 1024 * 1024 {
            big.push_str(&format!(
                "  j{i}:\n    steps:\n      - run: echo {i} {filler}\n"
            ));
            i += 1;
        }
        assert!(parse_str("big.yaml", &big).is_ok());
        let deep = format!("jobs: {}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(parse_str("deep.yaml", &deep).is_err());
        let deep_maps = "a:\n".to_owned()
            + &(1..300)
                .map(|d| format!("{}k:\n", " ".repeat(d)))
                .collect::<String>();
        assert!(parse_str("deep.yaml", &deep_maps).is_err());
    }
}
