//! How commands write to stdout: text, `--json` documents, tables.

use std::io::Write;

use crate::error::Error;

/// Writes to stdout, turning a closed pipe into a quiet error the dispatcher ignores.
pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Pretty JSON with a final newline, as every `--json` listing prints it.
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
pub(super) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An I/O error writing `path`, naming it.
pub(super) fn write_error(path: &std::path::Path, err: &std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        err.kind(),
        format!("cannot write `{}`: {err}", path.display()),
    ))
}
