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

use std::borrow::Cow;
use std::cell::Cell;
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
        let line = usize::try_from(self.pos.line)
            .ok()
            .and_then(|line| line.checked_sub(1))
            .and_then(|index| source.split('\n').nth(index));
        self.render_line(file, line)
    }

    /// Renders the diagnostic with `line`, the text of its source line (if there is one).
    fn render_line(&self, file: &str, line: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{file}:{}:{}: {}: {}",
            self.pos.line,
            self.pos.col,
            self.severity.as_str(),
            self.message
        );
        if let Some(line_text) = line {
            let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
            let number = self.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let col = usize::try_from(self.pos.col.max(1) - 1).unwrap_or(0);
            let shown = Excerpt::new(line_text, col, self.pos.len);
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {}", shown.text);
            let pad = " ".repeat(shown.caret);
            let carets = "^".repeat(shown.carets);
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

/// Most characters of a source line a diagnostic quotes; a longer line is cut to a window
/// around the caret, with `…` where it was cut.
const EXCERPT: usize = 100;
/// Characters the window shows before the caret, when the line goes on long enough after it.
const EXCERPT_BEFORE: usize = 40;

/// The part of a source line a diagnostic shows, and where its carets go.
struct Excerpt {
    /// The shown text, tabs as spaces, with `…` where the line was cut.
    text: String,
    /// Characters before the first caret.
    caret: usize,
    /// How many carets (at least one).
    carets: usize,
}

impl Excerpt {
    /// The window of `line` around character column `col` (0-based), underlining `len`
    /// characters. Reads the line once, however long it is.
    fn new(line: &str, col: usize, len: usize) -> Self {
        let total = line.chars().count();
        let col = col.min(total);
        let (start, end) = if total <= EXCERPT {
            (0, total)
        } else {
            let start = col.saturating_sub(EXCERPT_BEFORE).min(total - EXCERPT);
            (start, start + EXCERPT)
        };
        let mut text = String::with_capacity(EXCERPT + 8);
        if start > 0 {
            text.push('…');
        }
        text.extend(
            line.chars()
                .skip(start)
                .take(end - start)
                .map(|c| if c == '\t' { ' ' } else { c }),
        );
        if end < total {
            text.push('…');
        }
        let caret = col - start + usize::from(start > 0);
        let room = end.saturating_sub(col).max(1);
        Excerpt {
            text,
            caret,
            carets: len.clamp(1, room),
        }
    }
}

/// Most diagnostics a report renders; the rest are counted (`… and 120 more`), so that a file
/// with tens of thousands of problems is reported in about the time it takes to read it.
pub const MAX_RENDERED: usize = 50;

/// Renders the first [`MAX_RENDERED`] of `diagnostics` one after the other, says how many
/// more there are, then a count line such as `wf.yaml: 2 errors and 1 warning found`.
#[must_use]
pub fn render_report(file: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    let lines = LineIndex::new(source);
    for diagnostic in diagnostics.iter().take(MAX_RENDERED) {
        out.push_str(&diagnostic.render_line(file, lines.line(source, diagnostic.pos.line)));
    }
    if diagnostics.len() > MAX_RENDERED {
        let _ = writeln!(out, "… and {} more", diagnostics.len() - MAX_RENDERED);
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

/// Where each line of a source starts, so that quoting many lines reads the source once.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The text of 1-based line `line`, without its line break.
    fn line<'s>(&self, source: &'s str, line: u32) -> Option<&'s str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        let start = *self.starts.get(index)?;
        let end = self
            .starts
            .get(index + 1)
            .map_or(source.len(), |next| next - 1);
        source.get(start..end)
    }
}

/// Longest name a message quotes in full; see [`shown`].
const SHOWN_NAME: usize = 64;

/// A name from the file as a message quotes it: cut to 64 characters and `…`. A name that
/// many messages repeat (a job's, in each of its 50,000 bad `needs`) then costs each message
/// a bounded size, not the name's.
#[must_use]
pub fn shown(name: &str) -> Cow<'_, str> {
    match name.char_indices().nth(SHOWN_NAME) {
        None => Cow::Borrowed(name),
        Some((cut, _)) => Cow::Owned(format!("{}…", &name[..cut])),
    }
}

/// The closest of `candidates` to `name`, when it is close enough to be a likely typo.
#[must_use]
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    Suggester::unbounded().suggest(name, candidates)
}

/// Typo suggestions ("did you mean") under a budget of work shared by every suggestion it
/// makes. Each one compares a name against every candidate, so a file with 50,000 unknown
/// names among 50,000 candidates would take quadratic time; once the budget (enough for
/// any hand-written file) is spent, later problems get no suggestion.
#[derive(Debug)]
pub struct Suggester {
    /// Candidate characters that may still be read.
    budget: Cell<usize>,
}

/// The work a [`Suggester`] for one file may do, in characters read and distance-table
/// cells computed: about a tenth of a second.
const SUGGEST_BUDGET: usize = 20_000_000;
/// Names longer than this get no suggestion: a typo is in a name someone typed.
const SUGGEST_MAX_LEN: usize = 64;

impl Default for Suggester {
    fn default() -> Self {
        Suggester {
            budget: Cell::new(SUGGEST_BUDGET),
        }
    }
}

impl Suggester {
    fn unbounded() -> Self {
        Suggester {
            budget: Cell::new(usize::MAX),
        }
    }

    /// Takes `cost` from the budget; false (and nothing left) when it does not cover it.
    fn spend(&self, cost: usize) -> bool {
        match self.budget.get().checked_sub(cost) {
            Some(left) => {
                self.budget.set(left);
                true
            }
            None => {
                self.budget.set(0);
                false
            }
        }
    }

    /// The closest of `candidates` to `name`, when it is close enough to be a likely typo
    /// and the budget allows looking.
    pub fn suggest<'a>(
        &self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<String> {
        if name.chars().nth(SUGGEST_MAX_LEN).is_some() {
            return None;
        }
        let lower = name.to_lowercase();
        let len = lower.chars().count();
        let mut best: Option<(usize, &str)> = None;
        for candidate in candidates {
            if !self.spend(candidate.len() + 1) {
                return None;
            }
            // The distance is at least the difference in length: most candidates end here.
            let candidate_len = candidate.chars().count();
            let max = (candidate_len / 3).clamp(1, 2);
            if candidate_len.abs_diff(len) > max {
                continue;
            }
            if !self.spend((len + 1) * (candidate_len + 1)) {
                return None;
            }
            let distance = strsim::damerau_levenshtein(&lower, &candidate.to_lowercase());
            if distance <= max && distance < len && best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, candidate));
            }
        }
        best.map(|(_, candidate)| format!("did you mean `{candidate}`?"))
    }
}

/// Formats names as "`a`, `b`, `c`": every one of them, so that a list of what is valid is
/// never cut short.
#[must_use]
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", shown(n)))
        .collect::<Vec<_>>()
        .join(", ")
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

    fn at(line: u32, col: u32, len: usize) -> Pos {
        Pos {
            line,
            col,
            offset: 0,
            len,
        }
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_caret() {
        let line = format!(
            "run: {}${{{{ nosuch }}}}{}",
            "a".repeat(5000),
            "z".repeat(5000)
        );
        let source = format!("jobs:\n{line}\n");
        let diag = Diagnostic::error(at(2, 5006, 13), "unknown".into()).with_label("here");
        let rendered = diag.render("wf.yaml", &source);
        let lines: Vec<&str> = rendered.lines().collect();
        let shown = lines[2].strip_prefix("2 | ").unwrap();
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{rendered}");
        assert_eq!(shown.chars().count(), 102, "{rendered}");
        let caret = lines[3].strip_prefix("  | ").unwrap();
        let column = caret.find('^').unwrap();
        let under: String = shown.chars().skip(column).take(13).collect();
        assert_eq!(under, "${{ nosuch }}", "{rendered}");
        assert!(caret.ends_with("^^^^^^^^^^^^^ here"), "{rendered}");

        // At the start and at the end of the line, the window keeps to one side.
        let start = Diagnostic::error(at(2, 1, 4), "x".into()).render("wf.yaml", &source);
        assert!(start.contains("\n2 | run: aaa"), "{start}");
        assert!(start.contains("\n  | ^^^^\n"), "{start}");
        let end = Diagnostic::error(at(2, 10_014, 1), "x".into()).render("wf.yaml", &source);
        let shown_end = end.lines().nth(2).unwrap();
        assert!(
            shown_end.starts_with("2 | …") && shown_end.ends_with("zzz"),
            "{end}"
        );
        // 10,018 characters, the last 100 shown: the caret is under the fifth from the end.
        assert_eq!(
            end.lines().nth(3).unwrap(),
            format!("  | {}^", " ".repeat(96)),
            "{end}"
        );
    }

    #[test]
    fn a_report_renders_fifty_diagnostics_and_counts_the_rest() {
        let source: String = (1..=2000).map(|i| format!("k{i}: x\n")).collect();
        let diagnostics: Vec<Diagnostic> = (1..=2000)
            .map(|i| Diagnostic::error(at(i, 1, 2), format!("unknown key `k{i}`")))
            .collect();
        let report = render_report("wf.yaml", &source, &diagnostics);
        assert_eq!(report.matches(": error: ").count(), MAX_RENDERED);
        assert!(report.contains("wf.yaml:50:1: error: unknown key `k50`\n"));
        assert!(!report.contains("`k51`"));
        assert!(
            report.ends_with("… and 1950 more\nwf.yaml: 2000 errors found\n"),
            "{report}"
        );
    }

    #[test]
    fn names_in_messages_are_cut_short() {
        assert_eq!(shown("build"), "build");
        let long = "é".repeat(100);
        assert_eq!(shown(&long), format!("{}…", "é".repeat(64)));
        assert_eq!(list_names(["a", "b", "c"]), "`a`, `b`, `c`");
    }

    #[test]
    fn suggestions_stop_when_their_budget_is_spent() {
        let names: Vec<String> = (0..50_000).map(|i| format!("job{i:05}")).collect();
        let suggester = Suggester::default();
        assert_eq!(
            suggester.suggest("jbo00001", names.iter().map(String::as_str)),
            Some("did you mean `job00001`?".into())
        );
        let mut made = 1;
        while suggester
            .suggest("jbo49999", names.iter().map(String::as_str))
            .is_some()
        {
            made += 1;
        }
        assert!((2..100).contains(&made), "{made}");
        assert_eq!(suggester.suggest("neeeds", ["needs"]), None);
        // Without a budget, and for names no one typed by hand.
        assert!(suggest("jbo49999", names.iter().map(String::as_str)).is_some());
        assert_eq!(suggest(&"x".repeat(65), ["x".repeat(65).as_str()]), None);
    }
}
