//! `${{ … }}` templates and `if:` expressions, on minijinja with custom delimiters.
//!
//! The workflow format writes expressions the way GitHub Actions does (`&&`, `||`, `!`);
//! [`to_jinja`] rewrites those operators into Jinja's `and`, `or`, `not` outside string literals
//! before minijinja parses them. Block and comment delimiters are moved out of the way so that
//! shell scripts (`${#array[@]}`, `{% … %}` in heredocs) pass through untouched.
//!
//! Besides minijinja's filters there is [`QUOTE`]: `${{ params.name | quote }}` prints the value
//! as one POSIX shell word ([`shell_quote`]), so that a script can use text it does not trust.
//!
//! minijinja parses and compiles recursively, so every text is first measured
//! ([`expression_depth`]) and one nested deeper than [`MAX_NESTING`] is refused before it can
//! exhaust the stack. A reference that does not resolve when rendering is named in the error,
//! with what exists in its place ([`Error::Undefined`]).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::spec::MAX_NESTING;
use crate::spec::diag::shown;

/// Why a template could not be read or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Brackets, operators or blocks nest deeper than [`MAX_NESTING`].
    #[error(
        "the template nests deeper than {MAX_NESTING} levels (brackets, operators and blocks count)"
    )]
    TooDeep,
    /// A reference that does not resolve against the values rendered with.
    #[error("`{reference}`: {problem}")]
    Undefined {
        /// The dotted path as written: `needs.a.outputs.rows`.
        reference: String,
        /// What is missing and what exists instead: "job `a` set no output `rows` (it set:
        /// path)".
        problem: String,
    },
    /// Any other syntax or rendering error, as minijinja describes it.
    #[error("{0}")]
    Engine(String),
}

impl Error {
    fn engine(err: &minijinja::Error) -> Self {
        Error::Engine(describe_error(err))
    }
}

/// The opening delimiter of a template expression.
pub const OPEN: &str = "${{";

/// The name of the filter that prints a value as one POSIX shell word.
pub const QUOTE: &str = "quote";

/// Whether `text` holds a template at all (the fast path skips rendering).
#[must_use]
pub fn has_template(text: &str) -> bool {
    text.contains(OPEN)
}

fn engine() -> &'static Environment<'static> {
    static ENGINE: OnceLock<Environment<'static>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .variable_delimiters("${{", "}}")
            .block_delimiters("${%", "%}")
            .comment_delimiters("${#{", "}#}")
            .keep_trailing_newline(true)
            .build()
            .expect("the delimiters are distinct and non-empty");
        env.set_syntax(syntax);
        // Strict, except that an undefined value is false when tested: `a || 'none'` falls
        // back for an output never set, as in GitHub Actions. A condition whose whole value
        // is undefined is still an error (`eval_condition`).
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_formatter(|out, state, value| match step_text(value) {
            Some(text) => out.write_str(&text).map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
            }),
            None => minijinja::escape_formatter(out, state, value),
        });
        env.add_filter(QUOTE, quote_filter);
        env.set_recursion_limit(64);
        env
    })
}

/// A bool or a float as a step sees it in `COREFLOW_PARAM_*`: `true`/`false`, and a whole
/// float without `.0`, not Python's `True` and `2.0`; a list or a map (a `for_each` item) as
/// JSON, not Python's `{'k': 'v'}`. `None` for any other value, which prints as minijinja
/// prints it.
fn step_text(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Map => serde_json::to_string(value).ok(),
        ValueKind::Bool => Some(value.is_true().to_string()),
        ValueKind::Number => match f64::try_from(value.clone()) {
            Ok(x) if !value.is_integer() && x.is_finite() => Some(x.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The `quote` filter: the text the value would print as, made one shell word.
fn quote_filter(value: &Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "`quote` was given an undefined value",
        ));
    }
    let text = step_text(value).unwrap_or_else(|| value.to_string());
    Ok(shell_quote(&text).into_owned())
}

/// `text` as one POSIX shell word: unchanged when it is made only of characters no shell
/// treats specially (`[A-Za-z0-9_./:=@%+,-]`), else in single quotes with each `'` written as
/// `'\''`; the empty string is `''`.
#[must_use]
pub fn shell_quote(text: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("'{}'", text.replace('\'', r"'\''")))
}

/// One `${{ … }}` of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expression<'a> {
    /// The whole expression as written, delimiters included.
    pub text: &'a str,
    /// What is between the delimiters.
    pub inner: &'a str,
}

/// Every `${{ … }}` of `text` in order; one that is not closed ends the list.
#[must_use]
pub fn expressions(text: &str) -> Vec<Expression<'_>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find(OPEN).map(|i| from + i) {
        let inner_start = start + OPEN.len();
        let Some(end) = expression_end(&text[inner_start..]).map(|i| inner_start + i) else {
            break;
        };
        found.push(Expression {
            text: &text[start..end + 2],
            inner: &text[inner_start..end],
        });
        from = end + 2;
    }
    found
}

impl Expression<'_> {
    /// The variables the expression reads, as dotted paths; `None` when it does not compile.
    #[must_use]
    pub fn references(&self) -> Option<BTreeSet<String>> {
        let expr = translate_expression(self.inner);
        check_depth(&expr, 0).ok()?;
        let compiled = engine().compile_expression(&expr).ok()?;
        Some(compiled.undeclared_variables(true).into_iter().collect())
    }

    /// Whether the expression's whole value goes through [`QUOTE`] last, as in
    /// `params.x | quote` or `(a ~ b) | lower | quote`. `a ~ b | quote` is not: a filter binds
    /// tighter than an operator, so only `b` is quoted there.
    #[must_use]
    pub fn is_quoted(&self) -> bool {
        let outline = outline(&translate_expression(self.inner));
        let mut parts = outline.split('|').map(str::trim);
        let Some(operand) = parts.next() else {
            return false;
        };
        let filters: Vec<&str> = parts.collect();
        let Some((last, between)) = filters.split_last() else {
            return false;
        };
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let is_filter = |f: &str| {
            let name = f.strip_suffix("()").unwrap_or(f);
            !name.is_empty() && name.chars().all(word)
        };
        !operand.is_empty()
            && operand.chars().all(|c| word(c) || ".()[]\"".contains(c))
            && between.iter().all(|f| is_filter(f))
            && last.strip_suffix("()").unwrap_or(last) == QUOTE
    }
}

/// An expression's top level: every string literal written `""` and every bracketed group
/// `()`, `[]` or `{}`, with what they hold left out.
fn outline(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                quote = None;
                if depth == 0 {
                    out.push('"');
                }
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                if depth == 0 {
                    out.push('"');
                }
            }
            '(' | '[' | '{' => {
                if depth == 0 {
                    out.push(c);
                }
                depth += 1;
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push(c);
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Rewrites `&&`, `||` and `!` into Jinja's `and`, `or`, `not` inside every `${{ … }}`.
#[must_use]
pub fn to_jinja(text: &str) -> Cow<'_, str> {
    if !has_template(text) || !text.contains(['&', '|', '!']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start + OPEN.len()]);
        rest = &rest[start + OPEN.len()..];
        let end = expression_end(rest).unwrap_or(rest.len());
        out.push_str(&translate_expression(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The byte index of the `}}` closing an expression, skipping string literals.
fn expression_end(expr: &str) -> Option<usize> {
    closing(expr, *b"}}")
}

/// The byte index of the two-byte delimiter `close` that ends `text`, skipping string
/// literals.
fn closing(text: &str, close: [u8; 2]) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == close[0] && bytes.get(i + 1) == Some(&close[1]) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// Translates the operators of one expression.
#[must_use]
pub fn translate_expression(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                out.push_str(" and ");
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                out.push_str(" or ");
            }
            '!' if chars.peek() != Some(&'=') => out.push_str(" not "),
            _ => out.push(c),
        }
    }
    out
}

/// The condition written in an `if:`: `${{ expr }}` alone, or a bare expression.
#[must_use]
pub fn condition_expression(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix(OPEN)
        .and_then(|t| t.strip_suffix("}}"))
        && !inner.contains(OPEN)
    {
        return Some(inner);
    }
    if has_template(trimmed) {
        None
    } else {
        Some(trimmed)
    }
}

/// The variables a template reads, as dotted paths (`params.date`, `needs.a.outputs.x`).
///
/// # Errors
/// The template's syntax error, or [`Error::TooDeep`].
pub fn references(text: &str) -> Result<BTreeSet<String>, Error> {
    if !has_template(text) {
        return Ok(BTreeSet::new());
    }
    let source = to_jinja(text);
    check_nesting(&source)?;
    let template = engine()
        .template_from_str(&source)
        .map_err(|e| Error::engine(&e))?;
    Ok(template.undeclared_variables(true).into_iter().collect())
}

/// The variables an `if:` condition reads.
///
/// # Errors
/// The expression's syntax error, or [`Error::TooDeep`].
pub fn condition_references(text: &str) -> Result<BTreeSet<String>, Error> {
    match condition_expression(text) {
        Some(expr) => {
            let expr = translate_expression(expr);
            check_depth(&expr, 0)?;
            let compiled = engine()
                .compile_expression(&expr)
                .map_err(|e| Error::engine(&e))?;
            Ok(compiled.undeclared_variables(true).into_iter().collect())
        }
        None => references(text),
    }
}

/// The status functions an `if:` may call, as GitHub Actions names them.
pub const STATUS_FUNCTIONS: [&str; 4] = ["success", "failure", "always", "cancelled"];

/// Whether an `if:` condition calls a status function (`always()`, …), which replaces the
/// job's `run_if`.
#[must_use]
pub fn calls_status_function(text: &str) -> bool {
    condition_references(text).is_ok_and(|refs| {
        refs.iter()
            .any(|r| STATUS_FUNCTIONS.contains(&r.split('.').next().unwrap_or_default()))
    })
}

/// Renders a template against a context.
///
/// # Errors
/// A reference that does not resolve ([`Error::Undefined`]), a syntax error, or
/// [`Error::TooDeep`].
pub fn render(text: &str, context: &Value) -> Result<String, Error> {
    if !has_template(text) {
        return Ok(text.to_owned());
    }
    let source = to_jinja(text);
    check_nesting(&source)?;
    let template = engine()
        .template_from_str(&source)
        .map_err(|e| Error::engine(&e))?;
    template.render(context).map_err(|e| {
        let failed = e.range().and_then(|range| source.get(range));
        explain(&e, template.undeclared_variables(true), failed, context)
    })
}

/// Evaluates an `if:` condition to a bool.
///
/// # Errors
/// A reference that does not resolve ([`Error::Undefined`]), a syntax error, or
/// [`Error::TooDeep`].
pub fn eval_condition(text: &str, context: &Value) -> Result<bool, Error> {
    match condition_expression(text) {
        Some(expr) => {
            let expr = translate_expression(expr);
            check_depth(&expr, 0)?;
            let compiled = engine()
                .compile_expression(&expr)
                .map_err(|e| Error::engine(&e))?;
            let value = compiled
                .eval(context)
                .map_err(|e| explain(&e, compiled.undeclared_variables(true), None, context))?;
            if value.is_undefined() {
                let undefined = minijinja::Error::new(ErrorKind::UndefinedError, "undefined");
                return Err(explain(
                    &undefined,
                    compiled.undeclared_variables(true),
                    None,
                    context,
                ));
            }
            Ok(value.is_true())
        }
        None => {
            let rendered = render(text, context)?;
            Ok(!matches!(rendered.trim(), "" | "false" | "0"))
        }
    }
}

/// The error for a failed render: for an undefined value, the first of `references` (those
/// written in `failed`, the text of the failing expression, first) that does not resolve in
/// `context`, with what exists instead.
fn explain(
    err: &minijinja::Error,
    references: impl IntoIterator<Item = String>,
    failed: Option<&str>,
    context: &Value,
) -> Error {
    if err.kind() != ErrorKind::UndefinedError {
        return Error::engine(err);
    }
    let sorted: BTreeSet<String> = references.into_iter().collect();
    let (mut named, others): (Vec<String>, Vec<String>) = sorted
        .into_iter()
        .partition(|reference| failed.is_some_and(|text| text.contains(reference.as_str())));
    named.extend(others);
    named
        .into_iter()
        .find_map(|reference| {
            let problem = unresolved(&reference, context)?;
            Some(Error::Undefined { reference, problem })
        })
        .unwrap_or_else(|| Error::engine(err))
}

/// Most names an explanation lists of what exists instead.
const LISTED: usize = 10;

/// What is missing when the dotted `reference` is looked up in `context`, and what exists in
/// its place; `None` when it resolves.
fn unresolved(reference: &str, context: &Value) -> Option<String> {
    let parts: Vec<&str> = reference.split('.').collect();
    let mut value = context.clone();
    for (i, &name) in parts.iter().enumerate() {
        let next = value.get_attr(name).ok().filter(|v| !v.is_undefined());
        match next {
            Some(next) => value = next,
            None => return Some(missing(&parts[..i], name, &value)),
        }
    }
    None
}

/// The message for `name` missing under the path `parent`, whose value is `value`.
fn missing(parent: &[&str], name: &str, value: &Value) -> String {
    let keys: Vec<String> = if value.kind() == ValueKind::Map {
        value
            .try_iter()
            .map(|keys| keys.take(LISTED + 1).map(|k| k.to_string()).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let listed = |what: &str, none: &str| {
        if keys.is_empty() {
            format!("({none})")
        } else {
            let mut shown_keys: Vec<String> = keys
                .iter()
                .take(LISTED)
                .map(|k| shown(k).into_owned())
                .collect();
            if keys.len() > LISTED {
                shown_keys.push("…".to_owned());
            }
            format!("({what}: {})", shown_keys.join(", "))
        }
    };
    let name = shown(name);
    match parent {
        [] => format!("no value `{name}` exists"),
        ["needs", job, "outputs"] => format!(
            "job `{}` set no output `{name}` {}",
            shown(job),
            listed("it set", "it set none")
        ),
        ["needs"] => format!(
            "`{name}` is not a finished need of this job {}",
            listed("finished", "none finished")
        ),
        ["params"] => format!(
            "no parameter `{name}` {}",
            listed("parameters", "there are none")
        ),
        ["matrix"] => format!(
            "the job's matrix has no key `{name}` {}",
            listed("it has", "the job has no matrix")
        ),
        ["env"] => format!("no environment variable `{name}` is set"),
        ["trigger"] if value.is_none() => {
            format!("this run has no trigger data, so no `{name}`")
        }
        ["trigger"] => format!(
            "the trigger has no `{name}` {}",
            listed("it has", "it has nothing")
        ),
        _ if value.kind() == ValueKind::Map => format!(
            "`{}` has no `{name}` {}",
            parent.join("."),
            listed("it has", "it is empty")
        ),
        _ => format!(
            "`{}` is {}, which has no `{name}`",
            parent.join("."),
            describe_kind(value)
        ),
    }
}

/// "text", "a number", … for messages about a value.
fn describe_kind(value: &Value) -> &'static str {
    match value.kind() {
        ValueKind::Undefined => "undefined",
        ValueKind::None => "nothing (none)",
        ValueKind::Bool => "a bool",
        ValueKind::Number => "a number",
        ValueKind::String => "text",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "a list",
        ValueKind::Map => "a map",
        _ => "a value",
    }
}

/// Refuses a template whose `${{ … }}` expressions or `${% … %}` blocks nest deeper than
/// [`MAX_NESTING`]. `source` is Jinja (after [`to_jinja`]). Comments and raw blocks are
/// skipped as minijinja skips them.
fn check_nesting(source: &str) -> Result<(), Error> {
    let mut blocks = 0usize;
    let mut rest = source;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        if let Some(inner) = after.strip_prefix('{') {
            let end = closing(inner, *b"}}").unwrap_or(inner.len());
            check_depth(&inner[..end], blocks)?;
            rest = &inner[end..];
        } else if let Some(inner) = after.strip_prefix("#{") {
            rest = inner.find("}#").map_or("", |end| &inner[end..]);
        } else if let Some(inner) = after.strip_prefix('%') {
            let end = closing(inner, *b"%}").unwrap_or(inner.len());
            let statement =
                inner[..end].trim_matches(|c: char| c.is_whitespace() || "-+".contains(c));
            let keyword = statement
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default();
            match keyword {
                "if" | "for" | "macro" | "call" | "filter" | "with" | "autoescape" | "block" => {
                    blocks += 1;
                }
                // `set x = …` is one statement; `set x` opens a block up to `endset`.
                "set" if !statement.contains('=') => blocks += 1,
                "raw" => {
                    rest = inner.find("endraw").map_or("", |at| &inner[at..]);
                    continue;
                }
                _ if keyword.starts_with("end") => blocks = blocks.saturating_sub(1),
                _ => {}
            }
            check_depth(statement, blocks)?;
            rest = &inner[end..];
        } else {
            rest = after;
        }
    }
    Ok(())
}

/// Refuses `expr` when, inside `blocks` open blocks, it nests deeper than [`MAX_NESTING`].
fn check_depth(expr: &str, blocks: usize) -> Result<(), Error> {
    if blocks + expression_depth(expr) > MAX_NESTING {
        Err(Error::TooDeep)
    } else {
        Ok(())
    }
}

/// Precedence levels of expression operators, loosest first, as minijinja parses them: a
/// ternary `if`, `or`, `and`, `not`, comparisons, `+ -`, `~`, `* / // %`, `**`, filters and
/// tests (`|`, `is`), a unary `-`, and postfix `.x`, `[i]`, `(args)`.
const LEVELS: usize = 12;
const IF: usize = 0;
const OR: usize = 1;
const AND: usize = 2;
const NOT: usize = 3;
const COMPARE: usize = 4;
const ADD: usize = 5;
const CONCAT: usize = 6;
const MUL: usize = 7;
const POW: usize = 8;
const FILTER: usize = 9;
const NEG: usize = 10;
const POSTFIX: usize = 11;

/// One bracketed group (or the whole expression) while [`expression_depth`] reads it.
#[derive(Default)]
struct Group {
    /// Operators of each level since the last one of a looser level: a chain the syntax
    /// tree nests one level per operator (`a + b + c` is `(a + b) + c`).
    run: [usize; LEVELS],
    /// The longest chain of each level.
    longest: [usize; LEVELS],
    /// The depth of the deepest group inside.
    inner: usize,
    /// Whether the last token ended an operand (so `-` and `(` are binary and postfix).
    operand: bool,
}

impl Group {
    fn operator(&mut self, level: usize) {
        self.run[level] += 1;
        self.longest[level] = self.longest[level].max(self.run[level]);
        self.boundary(level);
    }

    /// Ends the chains tighter than `level`.
    fn boundary(&mut self, level: usize) {
        self.run[level + 1..].fill(0);
        self.operand = false;
    }

    /// Starts a sibling: the next item of a list, map, call or tuple.
    fn separator(&mut self) {
        self.run = [0; LEVELS];
        self.operand = false;
    }

    /// Depth of the syntax tree of the group, at most: from the group down to any leaf the
    /// path takes at most one chain of each level.
    fn depth(&self) -> usize {
        self.longest.iter().sum::<usize>() + self.inner + 1
    }
}

/// An upper bound of the depth of the syntax tree minijinja builds for `expr` (and of its
/// recursion parsing and compiling it), read in one pass without recursion; at least
/// [`MAX_NESTING`] + 1 once it is known to exceed it.
#[must_use]
pub fn expression_depth(expr: &str) -> usize {
    let mut stack = vec![Group::default()];
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let open = stack.len();
        let group = stack.last_mut().expect("the outermost group stays");
        i += 1;
        match b {
            b'\'' | b'"' => {
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                group.operand = true;
            }
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let start = i - 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                match &expr[start..i] {
                    "if" => group.operator(IF),
                    "else" => group.boundary(IF),
                    "or" => group.operator(OR),
                    "and" => group.operator(AND),
                    "not" if group.operand => group.operator(COMPARE),
                    "not" => group.operator(NOT),
                    "in" => group.operator(COMPARE),
                    "is" => group.operator(FILTER),
                    _ => group.operand = true,
                }
            }
            b'(' | b'[' | b'{' => {
                if b != b'{' && group.operand {
                    group.operator(POSTFIX);
                }
                if open > MAX_NESTING {
                    return MAX_NESTING + 1;
                }
                stack.push(Group::default());
            }
            b')' | b']' | b'}' => {
                if open > 1 {
                    let inner = stack.pop().expect("more than one").depth();
                    let parent = stack.last_mut().expect("the outermost group stays");
                    parent.inner = parent.inner.max(inner);
                    parent.operand = true;
                } else {
                    group.operand = true;
                }
            }
            b',' | b':' => group.separator(),
            b'=' | b'!' | b'<' | b'>' => {
                if next == Some(b'=') {
                    i += 1;
                    group.operator(COMPARE);
                } else if b == b'=' {
                    group.separator();
                } else if b == b'!' {
                    group.operator(NOT);
                } else {
                    group.operator(COMPARE);
                }
            }
            b'+' | b'-' => group.operator(if group.operand { ADD } else { NEG }),
            b'~' => group.operator(CONCAT),
            b'*' if next == Some(b'*') => {
                i += 1;
                group.operator(POW);
            }
            b'*' | b'/' | b'%' => {
                if b == b'/' && next == Some(b'/') {
                    i += 1;
                }
                group.operator(MUL);
            }
            b'.' => group.operator(POSTFIX),
            b'|' => group.operator(FILTER),
            _ => {}
        }
    }
    // Groups left open count as if closed at the end.
    while stack.len() > 1 {
        let inner = stack.pop().expect("more than one").depth();
        let parent = stack.last_mut().expect("the outermost group stays");
        parent.inner = parent.inner.max(inner);
    }
    stack[0].depth()
}

fn describe_error(err: &minijinja::Error) -> String {
    let mut message = err.kind().to_string();
    if let Some(detail) = err.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_translate_outside_strings_only() {
        assert_eq!(
            translate_expression(" a && !b || c != 'x && y' "),
            " a  and   not b  or  c != 'x && y' "
        );
        assert_eq!(
            to_jinja("echo ${{ a || 'd' }} && true"),
            "echo ${{ a  or  'd' }} && true"
        );
    }

    #[test]
    fn references_are_dotted_paths() {
        let refs = references("${{ params.date }} ${{ needs.a.outputs.rows }} ${#x}").unwrap();
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["needs.a.outputs.rows", "params.date"]
        );
        assert!(references("${{ params. }}").is_err());
    }

    #[test]
    fn conditions_evaluate() {
        let ctx = minijinja::context! { needs => minijinja::context! {
            a => minijinja::context! { outputs => minijinja::context! { rows => "3" }, result => "success" }
        }};
        assert!(eval_condition("${{ needs.a.outputs.rows != '0' }}", &ctx).unwrap());
        assert!(!eval_condition("needs.a.result == 'failure' || !true", &ctx).unwrap());
        assert!(eval_condition("${{ needs.a.result }}", &ctx).unwrap());
        assert!(eval_condition("${{ needs.b.result }}", &ctx).is_err());
    }

    #[test]
    fn values_render_as_steps_see_them() {
        let ctx = minijinja::context! { b => false, t => true, f => 2.0, g => 2.5, i => 3 };
        assert_eq!(
            render("${{ b }} ${{ t }} ${{ f }} ${{ g }} ${{ i }}", &ctx).unwrap(),
            "false true 2 2.5 3"
        );
    }

    #[test]
    fn quote_makes_one_shell_word() {
        assert_eq!(shell_quote("2026-01-31"), "2026-01-31");
        assert_eq!(
            shell_quote("a/b.c:d=e@f%g+h,i-j_k"),
            "a/b.c:d=e@f%g+h,i-j_k"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("\"; rm -rf ~; \""), r#"'"; rm -rf ~; "'"#);
        assert_eq!(shell_quote("$(id) `id` *"), "'$(id) `id` *'");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn quote_filter_renders_every_kind_of_value() {
        let ctx = minijinja::context! {
            params => minijinja::context! { s => "it's", e => "", b => true, f => 2.0, w => "x-1" }
        };
        assert_eq!(
            render(
                "${{ params.s | quote }} ${{ params.e | quote }} ${{ params.b | quote }} ${{ params.f | quote }} ${{ params.w | quote }}",
                &ctx
            )
            .unwrap(),
            r"'it'\''s' '' true 2 x-1"
        );
        assert!(render("${{ params.missing | quote }}", &ctx).is_err());
        // Accepted where templates are checked, before anything renders.
        assert!(references("${{ params.s | quote }}").is_ok());
    }

    #[test]
    fn a_quoted_value_runs_as_one_word_in_sh() {
        let ctx = minijinja::context! {
            params => minijinja::context! { name => "x\"; echo injected; \" $(id) 'q'" }
        };
        let script = render("printf '%s\\n' ${{ params.name | quote }}", &ctx).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "x\"; echo injected; \" $(id) 'q'\n"
        );
    }

    #[test]
    fn expressions_are_found_with_their_text() {
        let found = expressions("a ${{ x }} b ${{ '}}' ~ y }} ${{ open");
        assert_eq!(
            found.iter().map(|e| e.text).collect::<Vec<_>>(),
            ["${{ x }}", "${{ '}}' ~ y }}"]
        );
        assert_eq!(found[1].inner, " '}}' ~ y ");
        assert_eq!(
            found[1]
                .references()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["y"]
        );
        assert_eq!(expressions("${{ a. }}")[0].references(), None);
    }

    #[test]
    fn only_a_value_quoted_as_a_whole_is_quoted() {
        let quoted = |inner: &str| Expression { text: "", inner }.is_quoted();
        for yes in [
            " params.x | quote ",
            "params.x|quote",
            " needs.a.outputs['x|y'] | trim | quote() ",
            " (params.a ~ '|' ~ params.b) | replace('a', 'b') | quote ",
        ] {
            assert!(quoted(yes), "{yes}");
        }
        for no in [
            " params.x ",
            " params.x | upper ",
            " params.a ~ params.b | quote ",
            " params.x | quote ~ params.y ",
            " params.x | quote if params.y else params.z ",
            " params.a || params.b | quote ",
            " 'quote' ",
            " | quote ",
        ] {
            assert!(!quoted(no), "{no}");
        }
    }

    #[test]
    fn shell_syntax_passes_through() {
        let ctx = minijinja::context! { params => minijinja::context! { n => 2 } };
        let script = "a=(1 2); echo ${#a[@]} {% raw %} {{ x }} ${{ params.n }}\n";
        assert_eq!(
            render(script, &ctx).unwrap(),
            "a=(1 2); echo ${#a[@]} {% raw %} {{ x }} 2\n"
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let n = 100_000;
        let shapes = [
            format!("{}true", "!".repeat(n)),
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "{'a': ".repeat(n), "}".repeat(n)),
            format!("{}1", "-".repeat(n)),
            format!("1{}", "+1".repeat(n)),
            format!("true{}", " && true".repeat(n)),
            format!("params{}", ".x".repeat(n)),
            format!("params.x{}", " | upper".repeat(n)),
            format!("range{}", "(1)".repeat(n)),
            format!("{}1", "1 if true else ".repeat(n)),
            format!("'a'{}", " ~ 'a'".repeat(n)),
        ];
        let ctx = minijinja::context! { params => minijinja::context! { x => "a" } };
        for inner in &shapes {
            let text = format!("${{{{ {inner} }}}}");
            assert_eq!(references(&text), Err(Error::TooDeep), "{}", &inner[..20]);
            assert_eq!(condition_references(inner), Err(Error::TooDeep));
            assert_eq!(render(&text, &ctx), Err(Error::TooDeep));
            assert_eq!(eval_condition(inner, &ctx), Err(Error::TooDeep));
            let expression = expressions(&text)[0];
            assert_eq!(expression.references(), None);
        }
        let blocks = format!(
            "${{{{ 1 }}}}{}x{}",
            "${% if true %}".repeat(n),
            "${% endif %}".repeat(n)
        );
        assert_eq!(references(&blocks), Err(Error::TooDeep));
        let set = format!("${{{{ 1 }}}}${{% set x = {}true %}}", "not ".repeat(n));
        assert_eq!(references(&set), Err(Error::TooDeep));
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let ctx = minijinja::context! {};
        let deep = format!("${{{{ {}1{} }}}}", "(".repeat(60), ")".repeat(60));
        assert_eq!(render(&deep, &ctx).unwrap(), "1");
        let too_deep = format!("${{{{ {}1{} }}}}", "(".repeat(70), ")".repeat(70));
        assert_eq!(render(&too_deep, &ctx), Err(Error::TooDeep));
        // Real conditions are far from the limit; siblings do not add up.
        for (expr, most) in [
            (
                "needs.a.outputs.rows != '0' && needs.b.result == 'success' || params.force",
                8,
            ),
            ("[1, 2, 3] | join(',') ~ (a.b | default('x'))", 8),
            ("a if b else c if d else e", 4),
            ("f(a.b.c, d.e.f, g.h.i, [j.k.l, m.n.o])", 8),
        ] {
            let depth = expression_depth(expr);
            assert!(depth <= most, "{expr}: {depth}");
        }
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "${{{{ '{}' }}}} ${{#{{ {} }}#}}",
            "(".repeat(100),
            "${{ ((((".repeat(100)
        );
        assert!(references(&quoted).is_ok());
    }

    #[test]
    fn a_reference_that_does_not_resolve_is_named_with_what_exists() {
        let ctx = minijinja::context! {
            params => minijinja::context! { date => "2026-01-31" },
            needs => minijinja::context! {
                a => minijinja::context! {
                    outputs => minijinja::context! { rows => "3", path => "out.csv" },
                    result => "success",
                },
                b => minijinja::context! { outputs => minijinja::context! {}, result => "success" },
            },
            matrix => minijinja::context! { os => "linux" },
            env => minijinja::context! { HOME => "/root" },
            trigger => minijinja::context! { type => "file", file => "in.csv" },
            manual => Value::from(()),
        };
        let message = |text: &str| render(text, &ctx).unwrap_err().to_string();
        assert_eq!(
            message("echo ${{ needs.a.outputs.rows }} ${{ needs.a.outputs.nosuch }}"),
            "`needs.a.outputs.nosuch`: job `a` set no output `nosuch` (it set: rows, path)"
        );
        assert_eq!(
            message("${{ needs.b.outputs.rows | quote }}"),
            "`needs.b.outputs.rows`: job `b` set no output `rows` (it set none)"
        );
        assert_eq!(
            message("${{ matrix.arch }}"),
            "`matrix.arch`: the job's matrix has no key `arch` (it has: os)"
        );
        assert_eq!(
            message("${{ trigger.path }}"),
            "`trigger.path`: the trigger has no `path` (it has: type, file)"
        );
        assert_eq!(
            message("${{ params.region }}"),
            "`params.region`: no parameter `region` (parameters: date)"
        );
        assert_eq!(
            message("${{ env.NOSUCH }}"),
            "`env.NOSUCH`: no environment variable `NOSUCH` is set"
        );
        assert_eq!(
            message("${{ params.date.year }}"),
            "`params.date.year`: `params.date` is text, which has no `year`"
        );
        assert_eq!(
            message("${{ manual.x }}"),
            "`manual.x`: `manual` is nothing (none), which has no `x`"
        );
        let err = eval_condition("needs.a.outputs.count != '0'", &ctx).unwrap_err();
        assert_eq!(
            err,
            Error::Undefined {
                reference: "needs.a.outputs.count".into(),
                problem: "job `a` set no output `count` (it set: rows, path)".into(),
            }
        );
        // A reference with a default is not the problem.
        assert_eq!(
            render("${{ needs.a.outputs.x | default('d') }}", &ctx).unwrap(),
            "d"
        );
    }
}
