//! `${{ … }}` templates and `if:` expressions, on minijinja with custom delimiters.
//!
//! The workflow format writes expressions the way GitHub Actions does (`&&`, `||`, `!`);
//! [`to_jinja`] rewrites those operators into Jinja's `and`, `or`, `not` outside string literals
//! before minijinja parses them. Block and comment delimiters are moved out of the way so that
//! shell scripts (`${#array[@]}`, `{% … %}` in heredocs) pass through untouched.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};

/// The opening delimiter of a template expression.
pub const OPEN: &str = "${{";

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
        // Values print as a step sees them in `COREFLOW_PARAM_*`: `true`/`false`, and a
        // whole float without `.0`, not Python's `True` and `2.0`.
        env.set_formatter(|out, state, value| match value.kind() {
            minijinja::value::ValueKind::Bool => {
                let text = if value.is_true() { "true" } else { "false" };
                out.write_str(text).map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
                })
            }
            minijinja::value::ValueKind::Number => match f64::try_from(value.clone()) {
                Ok(x) if !value.is_integer() && x.is_finite() => write!(out, "{x}").map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
                }),
                _ => minijinja::escape_formatter(out, state, value),
            },
            _ => minijinja::escape_formatter(out, state, value),
        });
        env.set_recursion_limit(64);
        env
    })
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
    fn shell_syntax_passes_through() {
        let ctx = minijinja::context! { params => minijinja::context! { n => 2 } };
        let script = "a=(1 2); echo ${#a[@]} {% raw %} {{ x }} ${{ params.n }}\n";
        assert_eq!(
            render(script, &ctx).unwrap(),
            "a=(1 2); echo ${#a[@]} {% raw %} {{ x }} 2\n"
        );
    }
}
