//! Diagnostics for workflow files: positions, messages, suggestions and their rendering.
//!
//! Every problem found in a file becomes a [`Diagnostic`]; the loader collects all of them,
//! sorts them by position and renders them one way:
//!
//! ```text
//! pipeline.yaml:14:5: error: unknown key `neeeds` in job `transform`
//!    |
//! 14 |     neeeds: [extract]
//!    |     ^^^^^^ expected one of `needs`, `steps`, `if`, …
//!    = help: did you mean `needs`?
//! ```
//!
//! A [`Severity::Warning`] renders the same way with `warning:`; it does not make a file
//! invalid unless `validate --deny-warnings` asks for that.

use std::fmt::Write as _;

/// A place in a source file. Lines and columns count from 1 (columns in characters);
/// `offset` is the byte offset of the start and `len` the length in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
    pub offset: usize,
    pub len: usize,
}

/// Whether a diagnostic refuses the file or only points at a risk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The file is refused.
    #[default]
    Error,
    /// The file is accepted, but something in it is probably a mistake.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as the rendering writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    /// What is wrong: a lowercase fragment without a final period.
    pub message: String,
    /// A note printed under the caret, usually what was expected.
    pub label: Option<String>,
    /// A hint such as "did you mean `needs`?".
    pub help: Option<String>,
}

impl Diagnostic {
    #[must_use]
    pub fn error(pos: Pos, message: String) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            message,
            label: None,
            help: None,
        }
    }

    #[must_use]
    pub fn warning(pos: Pos, message: String) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, message)
        }
    }

    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Renders the diagnostic for a terminal, quoting the source line.
    #[must_use]
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{file}:{}:{}: {}: {}",
            self.pos.line,
            self.pos.col,
            self.severity.as_str(),
            self.message
        );
        if let Some(line_text) = source_line(source, self.pos.line) {
            let number = self.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let line_text: String = line_text.chars().take(200).collect();
            let shown = line_text.replace('\t', " ");
            let col = usize::try_from(self.pos.col.max(1) - 1)
                .unwrap_or(0)
                .min(shown.chars().count());
            let avail = shown.chars().count().saturating_sub(col).max(1);
            let carets = "^".repeat(self.pos.len.clamp(1, avail));
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {shown}");
            let pad = " ".repeat(col);
            match &self.label {
                Some(label) => {
                    let _ = writeln!(out, "{gutter} | {pad}{carets} {label}");
                }
                None => {
                    let _ = writeln!(out, "{gutter} | {pad}{carets}");
                }
            }
            if let Some(help) = &self.help {
                let _ = writeln!(out, "{gutter} = help: {help}");
            }
        } else {
            if let Some(label) = &self.label {
                let _ = writeln!(out, "  = note: {label}");
            }
            if let Some(help) = &self.help {
                let _ = writeln!(out, "  = help: {help}");
            }
        }
        out
    }
}

/// Renders `diagnostics` one after the other, then a count line such as
/// `wf.yaml: 2 errors and 1 warning found`.
#[must_use]
pub fn render_report(file: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.render(file, source));
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let counted = match (errors, warnings) {
        (_, 0) => count(errors, "error"),
        (0, _) => count(warnings, "warning"),
        _ => format!(
            "{} and {}",
            count(errors, "error"),
            count(warnings, "warning")
        ),
    };
    let _ = writeln!(out, "{file}: {counted} found");
    out
}

fn source_line(source: &str, line: u32) -> Option<&str> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    source
        .split('\n')
        .nth(index)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// The closest of `candidates` to `name`, when it is close enough to be a likely typo.
#[must_use]
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(distance, candidate)| {
            let max = (candidate.chars().count() / 3).clamp(1, 2);
            *distance <= max && *distance < lower.chars().count()
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

/// Formats names as "`a`, `b`, `c`", eliding after `max`.
#[must_use]
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let mut out: Vec<String> = names.iter().take(max).map(|n| format!("`{n}`")).collect();
    if names.len() > max {
        out.push("…".to_owned());
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(
            suggest("neeeds", ["needs", "steps"]),
            Some("did you mean `needs`?".into())
        );
        assert_eq!(suggest("xyz", ["needs", "steps"]), None);
        assert_eq!(suggest("a", ["b"]), None);
    }

    #[test]
    fn renders_source_and_caret() {
        let source = "jobs:\n  a:\n    neeeds: [b]\n";
        let diag = Diagnostic::error(
            Pos {
                line: 3,
                col: 5,
                offset: 0,
                len: 6,
            },
            "unknown key `neeeds` in job `a`".into(),
        )
        .with_label("expected one of `needs`, `steps`")
        .with_help(Some("did you mean `needs`?".into()));
        insta::assert_snapshot!(diag.render("wf.yaml", source), @r"
        wf.yaml:3:5: error: unknown key `neeeds` in job `a`
          |
        3 |     neeeds: [b]
          |     ^^^^^^ expected one of `needs`, `steps`
          = help: did you mean `needs`?
        ");
    }

    #[test]
    fn warnings_render_as_warnings_and_are_counted_apart() {
        let source = "jobs:\n  a:\n    steps: [{ run: 'echo ${{ params.x }}' }]\n";
        let pos = Pos {
            line: 3,
            col: 27,
            offset: 0,
            len: 15,
        };
        let warning = Diagnostic::warning(pos, "risky".into());
        let error = Diagnostic::error(pos, "wrong".into());
        let report = render_report("wf.yaml", source, &[error, warning.clone()]);
        assert!(
            report.contains("wf.yaml:3:27: warning: risky\n"),
            "{report}"
        );
        assert!(report.contains("^^^^^^^^^^^^^^^\n"), "{report}");
        assert!(
            report.ends_with("wf.yaml: 1 error and 1 warning found\n"),
            "{report}"
        );
        let report = render_report("wf.yaml", source, &[warning]);
        assert!(report.ends_with("wf.yaml: 1 warning found\n"), "{report}");
    }
}
