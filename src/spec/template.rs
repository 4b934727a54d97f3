//! `${{ … }}` templates and `if:` expressions, on minijinja with custom delimiters.
//!
//! The workflow format writes expressions the way GitHub Actions does (`&&`, `||`, `!`);
//! [`to_jinja`] rewrites those operators into Jinja's `and`, `or`, `not` outside string literals
//! before minijinja parses them. Block and comment delimiters are moved out of the way so that
//! shell scripts (`${#array[@]}`, `{% … %}` in heredocs) pass through untouched.
//!
//! Besides minijinja's filters there is [`QUOTE`]: `${{ params.name | quote }}` prints the value
//! as one POSIX shell word ([`shell_quote`]), so that a script can use text it does not trust.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};

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
        env.set_undefined_behavior(UndefinedBehavior::Strict);
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
/// float without `.0`, not Python's `True` and `2.0`. `None` for any other value, which prints
/// as minijinja prints it.
fn step_text(value: &Value) -> Option<String> {
    match value.kind() {
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
    let bytes = expr.as_bytes();
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
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
/// The template's syntax error, as a message.
pub fn references(text: &str) -> Result<BTreeSet<String>, String> {
    if !has_template(text) {
        return Ok(BTreeSet::new());
    }
    let source = to_jinja(text);
    let template = engine()
        .template_from_str(&source)
        .map_err(|e| describe_error(&e))?;
    Ok(template.undeclared_variables(true).into_iter().collect())
}

/// The variables an `if:` condition reads.
///
/// # Errors
/// The expression's syntax error, as a message.
pub fn condition_references(text: &str) -> Result<BTreeSet<String>, String> {
    match condition_expression(text) {
        Some(expr) => {
            let expr = translate_expression(expr);
            let compiled = engine()
                .compile_expression(&expr)
                .map_err(|e| describe_error(&e))?;
            Ok(compiled.undeclared_variables(true).into_iter().collect())
        }
        None => references(text),
    }
}

/// Renders a template against a context.
///
/// # Errors
/// A reference that does not resolve, or a syntax error, as a message.
pub fn render(text: &str, context: &Value) -> Result<String, String> {
    if !has_template(text) {
        return Ok(text.to_owned());
    }
    let source = to_jinja(text);
    engine()
        .render_str(&source, context)
        .map_err(|e| describe_error(&e))
}

/// Evaluates an `if:` condition to a bool.
///
/// # Errors
/// A reference that does not resolve, or a syntax error, as a message.
pub fn eval_condition(text: &str, context: &Value) -> Result<bool, String> {
    match condition_expression(text) {
        Some(expr) => {
            let expr = translate_expression(expr);
            let compiled = engine()
                .compile_expression(&expr)
                .map_err(|e| describe_error(&e))?;
            let value = compiled.eval(context).map_err(|e| describe_error(&e))?;
            Ok(value.is_true())
        }
        None => {
            let rendered = render(text, context)?;
            Ok(!matches!(rendered.trim(), "" | "false" | "0"))
        }
    }
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
}
