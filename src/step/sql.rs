//! The execution core of a `sql:` step: run a query against SQLite or PostgreSQL in one
//! transaction, print the last statement's rows as a table, and hand back its first row.
//!
//! [`execute`] takes a [`SqlRequest`] whose templates were already rendered (the step's
//! child process receives it as JSON) and:
//!
//! - connects to `url`: `sqlite:PATH` (relative to the step's directory unless absolute;
//!   SQLite creates a missing file; `sqlite::memory:` is a private in-memory database) or
//!   `postgres://…` / `postgresql://…` (a libpq-style URL; no TLS, so `sslmode=require`
//!   fails). A connection failure names the URL with its password hidden.
//! - splits `query` into statements (quotes, comments, PostgreSQL dollar quotes and
//!   `BEGIN ATOMIC … END` bodies, SQLite `[…]`/backtick quotes and `CREATE TRIGGER …
//!   BEGIN … END` bodies are respected) and runs them in order inside one transaction, which
//!   is rolled back on the first error. Statements that cannot run in a transaction block
//!   (`VACUUM`, `CREATE DATABASE`, …) fail.
//! - binds `args` as parameters, never splicing them into the text: a statement declaring
//!   K parameters (`?1…?K` in SQLite, `$1…$K` in PostgreSQL) gets the first K args, as text.
//!   PostgreSQL receives them in text format and parses them as whatever type it inferred
//!   (`'2026-01-01'` as a date, `'42'` as an integer); SQLite applies its column affinity.
//!   There is no way to pass NULL.
//! - writes the last statement's rows to `out` as an aligned table, or `(N rows affected)`
//!   when it returns no columns, and returns its first row as `(column, value)` pairs.
//!
//! Values are shown as text: NULL as `NULL` in the table and as the empty string in the
//! returned pairs; booleans as `true`/`false`; blobs and `bytea` as `\x` and lowercase hex;
//! timestamps with time zone in UTC (`2026-01-01 12:00:00+00`). PostgreSQL types without a
//! decoder here (intervals, arrays, geometric types, …) are shown as `<typename>`: cast them
//! to text in the query (`interval_col::text`). In the table, newlines and tabs inside values
//! are shown as `\n`, `\r`, `\t`, and widths count characters (not terminal cells).
//!
//! Errors point into the whole query: `statement 2 (line 3, column 5): no such table:
//! orderz`, at the token the database blamed when it says, else at the statement's start.
//!
//! `execute` blocks (the PostgreSQL client runs its own small runtime): call it outside an
//! async context.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use chrono::Datelike;
use postgres::error::ErrorPosition;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type};

/// What a `sql:` step asks for, after its templates were rendered (passed to the child
/// process as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SqlRequest {
    /// `sqlite:PATH`, `postgres://…` or `postgresql://…`.
    pub url: String,
    /// One or more statements separated by `;`.
    pub query: String,
    /// Parameter values, bound in order (`?1…`/`$1…`), as text.
    pub args: Vec<String>,
}

/// Why a `sql:` step failed. The `Display` text is what the user reads in the log; URLs in
/// it have their password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL is neither `sqlite:PATH` nor a PostgreSQL URL.
    #[error(
        "unsupported database URL `{url}`: expected `sqlite:PATH`, `postgres://…` or \
         `postgresql://…`"
    )]
    UnsupportedUrl {
        /// The URL, password hidden.
        url: String,
    },
    /// The query holds nothing but whitespace and comments.
    #[error("the query has no statements")]
    EmptyQuery,
    /// The database could not be opened or reached.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password hidden (for SQLite, followed by the resolved path).
        url: String,
        /// The cause.
        message: String,
    },
    /// A statement failed to prepare or run.
    #[error("statement {statement} (line {line}, column {column}): {message}")]
    Statement {
        /// 1-based index among the query's non-empty statements.
        statement: usize,
        /// 1-based line in the whole query.
        line: usize,
        /// 1-based column (in characters) in that line.
        column: usize,
        /// The database's message.
        message: String,
    },
    /// A statement declares more parameters than there are args.
    #[error(
        "statement {statement} (line {line}, column {column}): it has {declared} \
         parameter(s) but only {given} arg(s) were given"
    )]
    MissingArgs {
        /// 1-based index among the query's non-empty statements.
        statement: usize,
        /// 1-based line of the statement's start in the whole query.
        line: usize,
        /// 1-based column of the statement's start.
        column: usize,
        /// How many parameters the statement declares.
        declared: usize,
        /// How many args the request has.
        given: usize,
    },
    /// Beginning or committing the transaction failed (e.g. a deferred constraint).
    #[error("cannot {action} the transaction: {message}")]
    Transaction {
        /// `begin` or `commit`.
        action: &'static str,
        /// The database's message.
        message: String,
    },
    /// The result table could not be written (after the commit).
    #[error("cannot write the result table: {0}")]
    Output(#[source] io::Error),
}

/// Runs `request` in one transaction (rolled back on any error), writes the rows of its
/// last statement to `out` as a table, and returns the first of those rows as
/// `(column name, value)` pairs (NULL as the empty string; empty without rows or columns).
///
/// `sqlite:PATH` is resolved against `cwd` unless absolute. See the [module
/// documentation](self) for URLs, parameters and how values are shown.
///
/// # Errors
///
/// [`SqlError`]: an unsupported URL, an empty query, a connection failure, a failing
/// statement (with its position in `query`), missing args, a failed commit, or a failure to
/// write to `out`.
pub fn execute(
    request: &SqlRequest,
    cwd: &Path,
    out: &mut dyn io::Write,
) -> Result<Vec<(String, String)>, SqlError> {
    let target = Target::parse(&request.url, cwd)?;
    let dialect = match target {
        Target::Sqlite(_) => Dialect::Sqlite,
        Target::Postgres => Dialect::Postgres,
    };
    let pieces = split_statements(&request.query, dialect);
    if pieces.is_empty() {
        return Err(SqlError::EmptyQuery);
    }
    let run = Run {
        query: &request.query,
        pieces: &pieces,
        args: &request.args,
    };
    let outcome = match &target {
        Target::Sqlite(path) => run.sqlite(&request.url, path)?,
        Target::Postgres => run.postgres(&request.url)?,
    };
    outcome.write(out).map_err(SqlError::Output)?;
    Ok(outcome.first_row())
}

// ---------------------------------------------------------------------------------------
// URLs

enum Target {
    /// A file path (already resolved against `cwd`), or `:memory:`.
    Sqlite(PathBuf),
    Postgres,
}

impl Target {
    fn parse(url: &str, cwd: &Path) -> Result<Self, SqlError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            // `sqlite://x` reads as a URL with a host; which file it means is ambiguous.
            if path.is_empty() || path.starts_with("//") {
                return Err(SqlError::UnsupportedUrl {
                    url: hide_password(url),
                });
            }
            if path == ":memory:" {
                return Ok(Self::Sqlite(PathBuf::from(path)));
            }
            return Ok(Self::Sqlite(cwd.join(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres);
        }
        Err(SqlError::UnsupportedUrl {
            url: hide_password(url),
        })
    }
}

/// `url` with the password of its user info and any `password=` parameter replaced by
/// `***`: how a database URL is shown in messages (also the environment's, by the store).
#[must_use]
pub fn hide_password(url: &str) -> String {
    let mut result = url.to_owned();
    if let Some(scheme_end) = result.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = result[authority_start..]
            .find(['/', '?', '#'])
            .map_or(result.len(), |i| authority_start + i);
        if let Some(at) = result[authority_start..authority_end].rfind('@') {
            let user_info = authority_start..authority_start + at;
            if let Some(colon) = result[user_info.clone()].find(':') {
                result.replace_range(user_info.start + colon + 1..user_info.end, "***");
            }
        }
    }
    if let Some(query_start) = result.find('?') {
        let mut redacted = result[..=query_start].to_owned();
        let params: Vec<String> = result[query_start + 1..]
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        redacted.push_str(&params.join("&"));
        result = redacted;
    }
    result
}

// ---------------------------------------------------------------------------------------
// Splitting

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// One statement of a query: its text (from its first token to its last, without the `;`)
/// and the byte offset of that text in the whole query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece<'a> {
    offset: usize,
    text: &'a str,
}

/// What the splitter knows about the statement being read.
#[derive(Default)]
struct StatementState {
    /// The first three words, upper-cased.
    head: Vec<String>,
    /// The previous word, upper-cased.
    previous: String,
    /// Inside a trigger body or `BEGIN ATOMIC` block: `;` does not end the statement.
    in_body: bool,
    /// `CASE` expressions open inside the body (their `END` does not close it).
    case_depth: usize,
}

impl StatementState {
    fn word(&mut self, word: &str, dialect: Dialect) {
        let upper = word.to_ascii_uppercase();
        if self.in_body {
            if upper == "CASE" {
                self.case_depth += 1;
            } else if upper == "END" {
                if self.case_depth == 0 {
                    self.in_body = false;
                } else {
                    self.case_depth -= 1;
                }
            }
        } else {
            self.in_body = match dialect {
                Dialect::Sqlite => upper == "BEGIN" && self.is_trigger(),
                Dialect::Postgres => upper == "ATOMIC" && self.previous == "BEGIN",
            };
        }
        if self.head.len() < 3 {
            self.head.push(upper.clone());
        }
        self.previous = upper;
    }

    /// `CREATE [TEMP|TEMPORARY] TRIGGER …`
    fn is_trigger(&self) -> bool {
        let head: Vec<&str> = self.head.iter().map(String::as_str).collect();
        matches!(
            head.as_slice(),
            ["CREATE", "TRIGGER", ..] | ["CREATE", "TEMP" | "TEMPORARY", "TRIGGER"]
        )
    }
}

fn is_word_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// The end (exclusive) of a quoted token opened at `start` by `quote` and closed by
/// `close`, where a doubled `close` stands for itself (unless `close` differs from `quote`)
/// and, with `backslash`, `\` escapes the next byte. An unterminated token runs to the end.
fn quoted_end(bytes: &[u8], start: usize, close: u8, doubled: bool, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let byte = bytes[i];
        if backslash && byte == b'\\' {
            i += 2;
        } else if byte == close {
            if doubled && bytes.get(i + 1) == Some(&close) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The tag of a PostgreSQL dollar quote starting at `start` (`$$` or `$tag$`), if any.
fn dollar_tag(sql: &str, start: usize) -> Option<&str> {
    let bytes = sql.as_bytes();
    let mut i = start + 1;
    if i < bytes.len() && is_word_start(bytes[i]) {
        while i < bytes.len() && is_word_byte(bytes[i]) && bytes[i] != b'$' {
            i += 1;
        }
    }
    (bytes.get(i) == Some(&b'$')).then(|| &sql[start..=i])
}

/// The end (exclusive) of a block comment opened at `start` (nested for PostgreSQL).
fn block_comment_end(bytes: &[u8], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            if depth == 0 || nested {
                depth += 1;
            }
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Splits `sql` into its non-empty statements, in order.
fn split_statements(sql: &str, dialect: Dialect) -> Vec<Piece<'_>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    // Start of the current statement's first token and end of its last one.
    let mut span: Option<(usize, usize)> = None;
    let mut state = StatementState::default();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let next = bytes.get(i + 1).copied();
        let token_end = match byte {
            b';' if !state.in_body => {
                if let Some((start, end)) = span.take() {
                    pieces.push(Piece {
                        offset: start,
                        text: &sql[start..end],
                    });
                }
                state = StatementState::default();
                i += 1;
                continue;
            }
            _ if byte.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i, dialect == Dialect::Postgres);
                continue;
            }
            b'\'' => quoted_end(bytes, i, b'\'', true, false),
            b'"' => quoted_end(bytes, i, b'"', true, false),
            b'`' if dialect == Dialect::Sqlite => quoted_end(bytes, i, b'`', true, false),
            b'[' if dialect == Dialect::Sqlite => quoted_end(bytes, i, b']', false, false),
            b'$' if dialect == Dialect::Postgres => match dollar_tag(sql, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    sql[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag.len())
                }
                None => i + 1,
            },
            _ if is_word_start(byte) => {
                let mut end = i + 1;
                while end < bytes.len() && is_word_byte(bytes[end]) {
                    end += 1;
                }
                let word = &sql[i..end];
                if dialect == Dialect::Postgres
                    && word.eq_ignore_ascii_case("e")
                    && bytes.get(end) == Some(&b'\'')
                {
                    // E'…' string with backslash escapes.
                    quoted_end(bytes, end, b'\'', true, true)
                } else {
                    state.word(word, dialect);
                    end
                }
            }
            _ => i + 1,
        };
        let token_end = token_end.min(bytes.len());
        span = Some((span.map_or(i, |(start, _)| start), token_end));
        i = token_end;
    }
    if let Some((start, end)) = span {
        pieces.push(Piece {
            offset: start,
            text: &sql[start..end],
        });
    }
    pieces
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

// ---------------------------------------------------------------------------------------
// Results

/// One value of a result row as text, and whether it is a number (right-aligned).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cell {
    text: Option<String>,
    numeric: bool,
}

impl Cell {
    fn null() -> Self {
        Self {
            text: None,
            numeric: false,
        }
    }

    fn text(text: String) -> Self {
        Self {
            text: Some(text),
            numeric: false,
        }
    }

    fn number(text: String) -> Self {
        Self {
            text: Some(text),
            numeric: true,
        }
    }
}

/// The most rows of the last statement kept and printed: the rest are counted, so that a
/// step's memory stays bounded whatever its query returns.
const MAX_TABLE_ROWS: usize = 1000;

/// What the last statement produced.
#[derive(Debug)]
enum Outcome {
    Rows {
        columns: Vec<String>,
        /// The first [`MAX_TABLE_ROWS`] rows.
        rows: Vec<Vec<Cell>>,
        /// How many rows the statement returned in all.
        total: u64,
    },
    Affected(u64),
}

impl Outcome {
    fn first_row(&self) -> Vec<(String, String)> {
        match self {
            Self::Rows { columns, rows, .. } => rows.first().map_or_else(Vec::new, |row| {
                columns
                    .iter()
                    .zip(row)
                    .map(|(name, cell)| (name.clone(), cell.text.clone().unwrap_or_default()))
                    .collect()
            }),
            Self::Affected(_) => Vec::new(),
        }
    }

    fn write(&self, out: &mut dyn io::Write) -> io::Result<()> {
        match self {
            Self::Affected(count) => {
                let noun = if *count == 1 { "row" } else { "rows" };
                writeln!(out, "({count} {noun} affected)")
            }
            Self::Rows {
                columns,
                rows,
                total,
            } => {
                let mut table = String::new();
                render_table(&mut table, columns, rows, *total).map_err(io::Error::other)?;
                out.write_all(table.as_bytes())
            }
        }
    }
}

/// A value as shown in the table: control characters that would break the layout escaped.
fn shown(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// `rows` (the first of `total`) as an aligned table, and the count.
fn render_table(
    out: &mut String,
    columns: &[String],
    rows: &[Vec<Cell>],
    total: u64,
) -> fmt::Result {
    // A column is right-aligned when it holds numbers and only numbers (NULLs aside).
    let right: Vec<bool> = (0..columns.len())
        .map(|c| {
            let values = rows.iter().filter(|row| row[c].text.is_some());
            values.clone().next().is_some() && values.clone().all(|row| row[c].numeric)
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|name| shown(name)).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    cell.text
                        .as_deref()
                        .map_or_else(|| "NULL".to_owned(), shown)
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            body.iter()
                .map(|row| row[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, values: &[String]| -> fmt::Result {
        let mut text = String::new();
        for (c, value) in values.iter().enumerate() {
            if c > 0 {
                text.push_str(" | ");
            }
            let width = widths[c];
            if right[c] {
                write!(text, "{value:>width$}")?;
            } else {
                write!(text, "{value:<width$}")?;
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &header)?;
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    writeln!(out, "{}", rule.join("-+-"))?;
    for row in &body {
        line(out, row)?;
    }
    let noun = if total == 1 { "row" } else { "rows" };
    if usize::try_from(total).is_ok_and(|total| total == rows.len()) {
        writeln!(out, "({total} {noun})")
    } else {
        writeln!(out, "({total} {noun}; the first {} shown)", rows.len())
    }
}

/// A float as text: shortest round-trip digits, exponent form for very large or small
/// magnitudes, `NaN` and `±Infinity` spelled as PostgreSQL does. With `point`, integral
/// values keep a `.0` (as SQLite shows a REAL).
fn float_text<T>(value: T, point: bool) -> String
where
    T: Copy + Into<f64> + fmt::Display + fmt::LowerExp,
{
    let wide: f64 = value.into();
    if wide.is_nan() {
        return "NaN".to_owned();
    }
    if wide.is_infinite() {
        return if wide > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let magnitude = wide.abs();
    if magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        return format!("{value:e}");
    }
    let text = value.to_string();
    if point && !text.contains('.') {
        format!("{text}.0")
    } else {
        text
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("\\x");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

// ---------------------------------------------------------------------------------------
// Running

/// A query split into statements, and its args.
struct Run<'a> {
    query: &'a str,
    pieces: &'a [Piece<'a>],
    args: &'a [String],
}

impl Run<'_> {
    /// An error of statement `index` (0-based) at byte `at` inside it.
    fn statement_error(&self, index: usize, at: usize, message: String) -> SqlError {
        let piece = self.pieces[index];
        let (line, column) = line_column(self.query, piece.offset + at.min(piece.text.len()));
        SqlError::Statement {
            statement: index + 1,
            line,
            column,
            message,
        }
    }

    /// The args statement `index` gets when it declares `declared` parameters.
    fn args_for(&self, index: usize, declared: usize) -> Result<&[String], SqlError> {
        self.args.get(..declared).ok_or_else(|| {
            let (line, column) = line_column(self.query, self.pieces[index].offset);
            SqlError::MissingArgs {
                statement: index + 1,
                line,
                column,
                declared,
                given: self.args.len(),
            }
        })
    }

    fn sqlite_error(&self, index: usize, error: &rusqlite::Error) -> SqlError {
        match error {
            rusqlite::Error::SqlInputError { msg, offset, .. } => {
                self.statement_error(index, usize::try_from(*offset).unwrap_or(0), msg.clone())
            }
            other => self.statement_error(index, 0, other.to_string()),
        }
    }

    fn sqlite(&self, url: &str, path: &Path) -> Result<Outcome, SqlError> {
        let mut connection =
            rusqlite::Connection::open(path).map_err(|error| SqlError::Connect {
                url: format!("{} ({})", hide_password(url), path.display()),
                message: error.to_string(),
            })?;
        let transaction = connection
            .transaction()
            .map_err(|error| SqlError::Transaction {
                action: "begin",
                message: error.to_string(),
            })?;
        let mut outcome = Outcome::Affected(0);
        for (index, piece) in self.pieces.iter().enumerate() {
            let last = index + 1 == self.pieces.len();
            let fail = |error: rusqlite::Error| self.sqlite_error(index, &error);
            let mut statement = transaction.prepare(piece.text).map_err(fail)?;
            let args = self.args_for(index, statement.parameter_count())?;
            for (n, arg) in args.iter().enumerate() {
                statement
                    .raw_bind_parameter(n + 1, arg.as_str())
                    .map_err(fail)?;
            }
            if statement.column_count() == 0 {
                let before = transaction.total_changes();
                statement.raw_execute().map_err(fail)?;
                // `changes()` keeps the count of the last INSERT/UPDATE/DELETE, even after a
                // statement of another kind: trust it only when something changed.
                let changed = if transaction.total_changes() == before {
                    0
                } else {
                    transaction.changes()
                };
                if last {
                    outcome = Outcome::Affected(changed);
                }
            } else {
                let columns: Vec<String> = statement.column_names().map(String::from).collect();
                let width = columns.len();
                let mut cells = Vec::new();
                let mut total = 0_u64;
                let mut rows = statement.raw_query();
                while let Some(row) = rows.next().map_err(fail)? {
                    total += 1;
                    if last && cells.len() < MAX_TABLE_ROWS {
                        let values = (0..width)
                            .map(|c| row.get_ref(c).map(sqlite_cell))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(fail)?;
                        cells.push(values);
                    }
                }
                if last {
                    outcome = Outcome::Rows {
                        columns,
                        rows: cells,
                        total,
                    };
                }
            }
        }
        transaction
            .commit()
            .map_err(|error| SqlError::Transaction {
                action: "commit",
                message: error.to_string(),
            })?;
        Ok(outcome)
    }

    fn postgres(&self, url: &str) -> Result<Outcome, SqlError> {
        let connect_error = |message: String| SqlError::Connect {
            url: hide_password(url),
            message,
        };
        let mut config: postgres::Config = url
            .parse()
            .map_err(|error: postgres::Error| connect_error(postgres_message(&error)))?;
        if config.get_application_name().is_none() {
            config.application_name("coreflow");
        }
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(|error| connect_error(postgres_message(&error)))?;
        let mut transaction = client
            .transaction()
            .map_err(|error| SqlError::Transaction {
                action: "begin",
                message: postgres_message(&error),
            })?;
        let mut outcome = Outcome::Affected(0);
        for (index, piece) in self.pieces.iter().enumerate() {
            let last = index + 1 == self.pieces.len();
            let fail = |error: postgres::Error| self.postgres_error(index, &error);
            let statement = transaction.prepare(piece.text).map_err(fail)?;
            let args = self.args_for(index, statement.params().len())?;
            let params: Vec<TextParam<'_>> = args.iter().map(|arg| TextParam(arg)).collect();
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| param as &(dyn ToSql + Sync))
                .collect();
            if last && !statement.columns().is_empty() {
                // Streamed: only the rows shown are kept.
                let mut rows = transaction
                    .query_raw(&statement, params.iter().copied())
                    .map_err(fail)?;
                let columns = statement.columns();
                let mut cells = Vec::new();
                let mut total = 0_u64;
                while let Some(row) = rows.next().map_err(fail)? {
                    total += 1;
                    if cells.len() >= MAX_TABLE_ROWS {
                        continue;
                    }
                    let mut values = Vec::with_capacity(columns.len());
                    for (c, column) in columns.iter().enumerate() {
                        let value = row.try_get::<_, Option<PgText>>(c).map_err(|error| {
                            let message = format!("column `{}`: {}", column.name(), chain(&error));
                            self.statement_error(index, 0, message)
                        })?;
                        values.push(value.map_or_else(Cell::null, |PgText(text)| {
                            if is_pg_number(column.type_()) {
                                Cell::number(text)
                            } else {
                                Cell::text(text)
                            }
                        }));
                    }
                    cells.push(values);
                }
                outcome = Outcome::Rows {
                    columns: columns.iter().map(|c| c.name().to_owned()).collect(),
                    rows: cells,
                    total,
                };
            } else {
                let count = transaction.execute(&statement, &params).map_err(fail)?;
                if last {
                    outcome = Outcome::Affected(count);
                }
            }
        }
        transaction
            .commit()
            .map_err(|error| SqlError::Transaction {
                action: "commit",
                message: postgres_message(&error),
            })?;
        Ok(outcome)
    }

    fn postgres_error(&self, index: usize, error: &postgres::Error) -> SqlError {
        let piece = self.pieces[index];
        let at = match error.as_db_error().and_then(|db| db.position()) {
            // A 1-based character offset inside the statement.
            Some(ErrorPosition::Original(position)) => usize::try_from(*position)
                .ok()
                .and_then(|position| position.checked_sub(1))
                .map_or(0, |chars| {
                    piece
                        .text
                        .char_indices()
                        .nth(chars)
                        .map_or(piece.text.len(), |(byte, _)| byte)
                }),
            _ => 0,
        };
        self.statement_error(index, at, postgres_message(error))
    }
}

fn sqlite_cell(value: rusqlite::types::ValueRef<'_>) -> Cell {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Cell::null(),
        ValueRef::Integer(n) => Cell::number(n.to_string()),
        ValueRef::Real(x) => Cell::number(float_text(x, true)),
        ValueRef::Text(bytes) => Cell::text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Cell::text(hex(bytes)),
    }
}

/// An error and its causes, joined by `: `.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A PostgreSQL error as the user should read it: the server's message with its detail and
/// hint, or the client's error and its causes.
fn postgres_message(error: &postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return chain(error);
    };
    let mut text = db.message().to_owned();
    if let Some(detail) = db.detail() {
        text.push_str("\nDETAIL: ");
        text.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        text.push_str("\nHINT: ");
        text.push_str(hint);
    }
    text
}

// ---------------------------------------------------------------------------------------
// PostgreSQL values

/// An arg sent in text format, for a parameter of any type: the server parses it.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        self.to_sql(ty, out)
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }
}

/// A result value of any type, decoded from the binary format to text.
struct PgText(String);

impl<'a> FromSql<'a> for PgText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        pg_text(ty, raw).map(PgText)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// The type a value is encoded as: a domain's base type, recursively.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

fn is_pg_number(ty: &Type) -> bool {
    matches!(
        *base_type(ty),
        Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::OID
    )
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn pg_text(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let ty = base_type(ty);
    let text = match *ty {
        Type::BOOL => bool::from_sql(ty, raw)?.to_string(),
        Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
        Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
        Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
        Type::OID => u32::from_sql(ty, raw)?.to_string(),
        Type::FLOAT4 => float_text(f32::from_sql(ty, raw)?, false),
        Type::FLOAT8 => float_text(f64::from_sql(ty, raw)?, false),
        Type::NUMERIC => numeric_text(raw)?,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::CHAR
        | Type::JSON
        | Type::XML => String::from_utf8_lossy(raw).into_owned(),
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => String::from_utf8_lossy(json).into_owned(),
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::DATE => date_text(i32::from_sql(ty, raw)?)?,
        Type::TIMESTAMP => timestamp_text(i64::from_sql(ty, raw)?, "")?,
        Type::TIMESTAMPTZ => timestamp_text(i64::from_sql(ty, raw)?, "+00")?,
        Type::UUID => uuid_text(raw)?,
        Type::BYTEA => hex(raw),
        _ if matches!(ty.kind(), Kind::Enum(_)) || ty.name() == "citext" => {
            String::from_utf8_lossy(raw).into_owned()
        }
        _ => match ty.kind() {
            Kind::Array(element) => format!("<{}[]>", element.name()),
            _ => format!("<{}>", ty.name()),
        },
    };
    Ok(text)
}

fn pg_epoch() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

/// `2026-01-01`, `0044-03-15 BC` or `±infinity`, from days since 2000-01-01.
fn date_text(days: i32) -> Result<String, BoxError> {
    match days {
        i32::MAX => return Ok("infinity".to_owned()),
        i32::MIN => return Ok("-infinity".to_owned()),
        _ => {}
    }
    let date = chrono::TimeDelta::try_days(i64::from(days))
        .and_then(|delta| pg_epoch().checked_add_signed(delta))
        .ok_or("date out of range")?;
    let (year, bc) = pg_year(&date);
    Ok(format!(
        "{year:04}-{:02}-{:02}{bc}",
        date.month(),
        date.day()
    ))
}

/// A date's year as PostgreSQL shows it (no year 0: 1 BC precedes 1 AD), and the suffix.
fn pg_year(date: &impl Datelike) -> (i32, &'static str) {
    if date.year() > 0 {
        (date.year(), "")
    } else {
        (1 - date.year(), " BC")
    }
}

/// `2026-01-01 12:30:00.25{zone}` or `±infinity`, from microseconds since 2000-01-01.
fn timestamp_text(micros: i64, zone: &str) -> Result<String, BoxError> {
    match micros {
        i64::MAX => return Ok("infinity".to_owned()),
        i64::MIN => return Ok("-infinity".to_owned()),
        _ => {}
    }
    let moment = pg_epoch()
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| midnight.checked_add_signed(chrono::TimeDelta::microseconds(micros)))
        .ok_or("timestamp out of range")?;
    let (year, bc) = pg_year(&moment);
    let mut text = format!(
        "{year:04}-{:02}-{:02} {}",
        moment.month(),
        moment.day(),
        moment.format("%H:%M:%S")
    );
    let fraction = micros.rem_euclid(1_000_000);
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push_str(zone);
    text.push_str(bc);
    Ok(text)
}

fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("invalid uuid length".into());
    }
    let mut text = String::with_capacity(36);
    for (i, byte) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    Ok(text)
}

/// A `numeric` from its binary format: `ndigits`, `weight` (of the first base-10000 digit),
/// `sign`, `dscale` (digits after the point), then the base-10000 digits.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let field = |n: usize| -> Result<u16, BoxError> {
        raw.get(2 * n..2 * n + 2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .ok_or_else(|| "invalid numeric length".into())
    };
    let ndigits = usize::from(field(0)?);
    let weight = i64::from(i16::from_be_bytes(field(1)?.to_be_bytes()));
    let sign = field(2)?;
    let dscale = usize::from(field(3)?);
    if raw.len() != 8 + 2 * ndigits {
        return Err("invalid numeric length".into());
    }
    let digits = (0..ndigits)
        .map(|n| field(4 + n))
        .collect::<Result<Vec<u16>, _>>()?;
    if digits.iter().any(|digit| *digit > 9999) {
        return Err("invalid numeric digit".into());
    }
    // The base-10000 digit of weight `weight - k`, zero outside the stored ones.
    let digit = |k: i64| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    match sign {
        0x0000 => {}
        0x4000 => text.push('-'),
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => return Err("invalid numeric sign".into()),
    }
    if weight < 0 {
        text.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                let _ = write!(text, "{}", digit(k));
            } else {
                let _ = write!(text, "{:04}", digit(k));
            }
        }
    }
    if dscale > 0 {
        let mut fraction = String::with_capacity(dscale + 4);
        let mut k = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", digit(k));
            k += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str, dialect: Dialect) -> Vec<&str> {
        split_statements(sql, dialect)
            .into_iter()
            .map(|piece| {
                assert_eq!(
                    &sql[piece.offset..piece.offset + piece.text.len()],
                    piece.text
                );
                piece.text
            })
            .collect()
    }

    fn run(url: &str, query: &str, args: &[&str], cwd: &Path) -> (Vec<(String, String)>, String) {
        let request = SqlRequest {
            url: url.to_owned(),
            query: query.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        let mut out = Vec::new();
        let outputs = execute(&request, cwd, &mut out).unwrap_or_else(|e| panic!("{e}"));
        (outputs, String::from_utf8(out).expect("UTF-8 table"))
    }

    fn fail(url: &str, query: &str, args: &[&str], cwd: &Path) -> SqlError {
        let request = SqlRequest {
            url: url.to_owned(),
            query: query.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        execute(&request, cwd, &mut Vec::new()).expect_err("the query should fail")
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // --- splitting ---------------------------------------------------------------------

    #[test]
    fn a_long_result_keeps_the_first_rows_and_counts_the_rest() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let query = "with recursive n(i) as (select 1 union all select i + 1 from n where i < 5000)
                     select i from n";
        let (outputs, table) = run("sqlite:long.db", query, &[], dir.path());
        assert_eq!(outputs, pairs(&[("i", "1")]));
        let lines: Vec<&str> = table.lines().collect();
        // Header, rule, the rows kept, the count.
        assert_eq!(
            lines.len(),
            2 + MAX_TABLE_ROWS + 1,
            "{}",
            lines[lines.len() - 1]
        );
        assert_eq!(
            lines[2 + MAX_TABLE_ROWS - 1].trim(),
            MAX_TABLE_ROWS.to_string()
        );
        assert_eq!(
            lines[lines.len() - 1],
            format!("(5000 rows; the first {MAX_TABLE_ROWS} shown)")
        );
    }

    #[test]
    fn splits_statements_with_offsets_and_a_trailing_one_without_semicolon() {
        let sql = "SELECT 1;\n  SELECT 2 ;SELECT 3";
        let pieces = split_statements(sql, Dialect::Sqlite);
        assert_eq!(
            pieces,
            [
                Piece {
                    offset: 0,
                    text: "SELECT 1"
                },
                Piece {
                    offset: 12,
                    text: "SELECT 2"
                },
                Piece {
                    offset: 22,
                    text: "SELECT 3"
                },
            ]
        );
        assert_eq!(line_column(sql, 12), (2, 3));
    }

    #[test]
    fn quotes_hide_semicolons() {
        let sql = "SELECT 'a;b', \"c;d\", 'it''s;'; SELECT \"x\"\"y;\"";
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(
                texts(sql, dialect),
                ["SELECT 'a;b', \"c;d\", 'it''s;'", "SELECT \"x\"\"y;\""]
            );
        }
        assert_eq!(
            texts("SELECT [a;b], `c;d``;` FROM t; SELECT 2", Dialect::Sqlite),
            ["SELECT [a;b], `c;d``;` FROM t", "SELECT 2"]
        );
        // In PostgreSQL `[` is a subscript and a backtick nothing special.
        assert_eq!(
            texts("SELECT a[1]; SELECT 2", Dialect::Postgres),
            ["SELECT a[1]", "SELECT 2"]
        );
        assert_eq!(
            texts(r"SELECT E'it\'s;', 'a\'; SELECT 2", Dialect::Postgres),
            [r"SELECT E'it\'s;', 'a\'", "SELECT 2"]
        );
    }

    #[test]
    fn comments_hide_semicolons_and_empty_statements_are_skipped() {
        let sql = "-- lead; in\n SELECT 1 /* ; */ -- tail;\n; /* only; a comment */ ;; \n-- x;";
        assert_eq!(texts(sql, Dialect::Sqlite), ["SELECT 1"]);
        assert_eq!(split_statements(sql, Dialect::Sqlite)[0].offset, 13);
        assert!(split_statements(" ; -- nothing\n/* */ ;", Dialect::Postgres).is_empty());
        // Block comments nest in PostgreSQL, not in SQLite.
        assert_eq!(
            texts("/* a /* b; */ c; */ SELECT 1; SELECT 2", Dialect::Postgres),
            ["SELECT 1", "SELECT 2"]
        );
        assert_eq!(
            texts("/* a /* b; */ SELECT 1; SELECT 2", Dialect::Sqlite),
            ["SELECT 1", "SELECT 2"]
        );
    }

    #[test]
    fn dollar_quotes_hide_semicolons_in_postgres_only() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                   DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$'; END $body$;\n\
                   SELECT $1, a$b$c FROM t WHERE x = $2";
        assert_eq!(
            texts(sql, Dialect::Postgres),
            [
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
                "DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$'; END $body$",
                "SELECT $1, a$b$c FROM t WHERE x = $2",
            ]
        );
        assert_eq!(
            texts("SELECT $$a; SELECT 2$$", Dialect::Sqlite),
            ["SELECT $$a", "SELECT 2$$"]
        );
        // An unterminated dollar quote runs to the end.
        assert_eq!(
            texts("SELECT $q$ a; b", Dialect::Postgres),
            ["SELECT $q$ a; b"]
        );
    }

    #[test]
    fn trigger_bodies_and_begin_atomic_stay_whole() {
        let sql = "CREATE TEMP TRIGGER IF NOT EXISTS tr AFTER INSERT ON t\n\
                   WHEN new.x IS NOT NULL BEGIN\n\
                   UPDATE t SET y = CASE WHEN new.x > 0 THEN 1 ELSE 2 END\n\
                   WHERE rowid = new.rowid;\n\
                   INSERT INTO log VALUES (new.x);\n\
                   END;\n\
                   BEGIN; SELECT 1";
        let pieces = texts(sql, Dialect::Sqlite);
        assert_eq!(pieces.len(), 3, "{pieces:#?}");
        assert!(pieces[0].starts_with("CREATE TEMP TRIGGER") && pieces[0].ends_with("END"));
        assert_eq!(pieces[1..], ["BEGIN", "SELECT 1"]);
        assert_eq!(
            texts(
                "create trigger t1 before delete on t begin select 1; end; select 2",
                Dialect::Sqlite
            ),
            [
                "create trigger t1 before delete on t begin select 1; end",
                "select 2"
            ]
        );
        let sql = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n\
                   SELECT CASE WHEN a > 0 THEN 1 END; SELECT 2; END; SELECT f(1)";
        let pieces = texts(sql, Dialect::Postgres);
        assert_eq!(pieces.len(), 2, "{pieces:#?}");
        assert_eq!(pieces[1], "SELECT f(1)");
        // Elsewhere BEGIN is just a statement.
        assert_eq!(
            texts("BEGIN; SELECT 1; END", Dialect::Postgres),
            ["BEGIN", "SELECT 1", "END"]
        );
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\nçd\nx", 6), (2, 3));
        assert_eq!(line_column("ab", 99), (1, 3));
    }

    // --- values and URLs ---------------------------------------------------------------

    #[test]
    fn numerics_decode_from_the_binary_format() {
        fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
            let mut raw = Vec::new();
            raw.extend_from_slice(&u16::try_from(digits.len()).unwrap().to_be_bytes());
            raw.extend_from_slice(&weight.to_be_bytes());
            raw.extend_from_slice(&sign.to_be_bytes());
            raw.extend_from_slice(&dscale.to_be_bytes());
            for digit in digits {
                raw.extend_from_slice(&digit.to_be_bytes());
            }
            raw
        }
        let text = |raw: Vec<u8>| numeric_text(&raw).unwrap();
        assert_eq!(text(numeric(0, 0, 0, &[])), "0");
        assert_eq!(text(numeric(0, 0, 2, &[])), "0.00");
        assert_eq!(text(numeric(1, 0, 4, &[1, 2345, 6780])), "12345.6780");
        assert_eq!(text(numeric(-2, 0x4000, 8, &[1234])), "-0.00001234");
        assert_eq!(text(numeric(5, 0, 0, &[1])), "100000000000000000000");
        assert_eq!(text(numeric(0, 0, 1, &[7, 5000])), "7.5");
        assert_eq!(text(numeric(0, 0xC000, 0, &[])), "NaN");
        assert_eq!(text(numeric(0, 0xF000, 0, &[])), "-Infinity");
        assert!(numeric_text(&[0, 1, 0, 0]).is_err());
        assert!(numeric_text(&numeric(0, 0, 0, &[10000])).is_err());
    }

    #[test]
    fn floats_dates_and_uuids_read_as_text() {
        assert_eq!(float_text(20.0f64, true), "20.0");
        assert_eq!(float_text(20.0f64, false), "20");
        assert_eq!(float_text(0.1f32, false), "0.1");
        assert_eq!(float_text(1e20f64, false), "1e20");
        assert_eq!(float_text(f64::NEG_INFINITY, false), "-Infinity");
        assert_eq!(date_text(0).unwrap(), "2000-01-01");
        assert_eq!(date_text(-1).unwrap(), "1999-12-31");
        assert_eq!(date_text(i32::MAX).unwrap(), "infinity");
        assert_eq!(
            timestamp_text(-1, "+00").unwrap(),
            "1999-12-31 23:59:59.999999+00"
        );
        assert_eq!(
            timestamp_text(1_500_000, "").unwrap(),
            "2000-01-01 00:00:01.5"
        );
        assert_eq!(
            uuid_text(&[
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ])
            .unwrap(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }

    #[test]
    fn urls_hide_passwords() {
        assert_eq!(
            hide_password("postgres://ann:s3cr@t@db.example:5432/app?sslmode=disable"),
            "postgres://ann:***@db.example:5432/app?sslmode=disable"
        );
        assert_eq!(
            hide_password("postgresql://ann@db/app?password=s3cret&application_name=x"),
            "postgresql://ann@db/app?password=***&application_name=x"
        );
        assert_eq!(hide_password("postgres://db/app"), "postgres://db/app");
        let dir = tempfile::tempdir().unwrap();
        let error = fail("mysql://root:hunter2@db/app", "SELECT 1", &[], dir.path());
        let message = error.to_string();
        assert!(matches!(error, SqlError::UnsupportedUrl { .. }));
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("mysql://root:***@db/app") && message.contains("sqlite:PATH"));
        assert!(matches!(
            fail("sqlite://x.db", "SELECT 1", &[], dir.path()),
            SqlError::UnsupportedUrl { .. }
        ));
    }

    // --- SQLite ------------------------------------------------------------------------

    #[test]
    fn sqlite_binds_args_and_prints_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let injection = "'; DROP TABLE items; --";
        let (outputs, table) = run(
            "sqlite:data.db",
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, note);\n\
             INSERT INTO items(name, price, note) VALUES (?1, ?2, NULL);\n\
             INSERT INTO items(name, price, note) VALUES (?3, 20, x'00ff');\n\
             SELECT id, name, price, note FROM items ORDER BY id",
            &["apple", "1.5", injection],
            dir.path(),
        );
        assert_eq!(
            table,
            "id | name                    | price | note\n\
             ---+-------------------------+-------+-------\n \
             1 | apple                   |   1.5 | NULL\n \
             2 | '; DROP TABLE items; -- |  20.0 | \\x00ff\n\
             (2 rows)\n"
        );
        assert_eq!(
            outputs,
            pairs(&[
                ("id", "1"),
                ("name", "apple"),
                ("price", "1.5"),
                ("note", "")
            ])
        );
        // The relative path was resolved against `cwd`, and the arg stored verbatim.
        let db = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
        let name: String = db
            .query_row("SELECT name FROM items WHERE id = 2", [], |row| row.get(0))
            .unwrap();
        assert_eq!(name, injection);
    }

    #[test]
    fn sqlite_reports_rows_affected_and_empty_results() {
        let dir = tempfile::tempdir().unwrap();
        let url = "sqlite:t.db";
        let (outputs, table) = run(
            url,
            "CREATE TABLE t(x INTEGER, y TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            &[],
            dir.path(),
        );
        assert!(outputs.is_empty());
        assert_eq!(table, "(2 rows affected)\n");
        let (_, table) = run(
            url,
            "UPDATE t SET y = ?1 WHERE x = ?2",
            &["c", "2"],
            dir.path(),
        );
        assert_eq!(table, "(1 row affected)\n");
        // A statement that changes no rows does not repeat the previous count.
        let (_, table) = run(
            url,
            "UPDATE t SET y = 'z'; CREATE TABLE u(a)",
            &[],
            dir.path(),
        );
        assert_eq!(table, "(0 rows affected)\n");
        let (outputs, table) = run(url, "SELECT x, y FROM t WHERE x > ?1", &["5"], dir.path());
        assert!(outputs.is_empty());
        assert_eq!(table, "x | y\n--+--\n(0 rows)\n");
        let (outputs, table) = run(url, "SELECT 'multi\nline' AS \"a\tb\"", &[], dir.path());
        assert_eq!(outputs, pairs(&[("a\tb", "multi\nline")]));
        assert_eq!(table, "a\\tb\n-----------\nmulti\\nline\n(1 row)\n");
    }

    #[test]
    fn sqlite_runs_trigger_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let (outputs, _) = run(
            "sqlite::memory:",
            "CREATE TABLE t(x INTEGER, y TEXT);\n\
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n\
               UPDATE t SET y = CASE WHEN new.x > 0 THEN 'pos' ELSE 'neg' END\n\
               WHERE rowid = new.rowid;\n\
             END;\n\
             INSERT INTO t(x) VALUES (?1), (-1);\n\
             SELECT group_concat(y, ',') AS ys FROM t",
            &["3"],
            dir.path(),
        );
        assert_eq!(outputs, pairs(&[("ys", "pos,neg")]));
        assert!(!dir.path().join(":memory:").exists());
    }

    #[test]
    fn sqlite_errors_point_into_the_query() {
        let dir = tempfile::tempdir().unwrap();
        let query = "CREATE TABLE orders(id INTEGER, total INTEGER);\n\
                     INSERT INTO orders VALUES (1, 2);\n\n  SELECT id, totl FROM orders;";
        let error = fail("sqlite:e.db", query, &[], dir.path());
        assert_eq!(
            error.to_string(),
            "statement 3 (line 4, column 14): no such column: totl"
        );
        // SQLite gives no position for some errors: the statement's start stands in.
        let error = fail(
            "sqlite:e.db",
            "SELECT 1;\n\n  SELECT * FROM orderz",
            &[],
            dir.path(),
        );
        assert_eq!(
            error.to_string(),
            "statement 2 (line 3, column 3): no such table: orderz"
        );
        // A runtime error points at the statement's start.
        let error = fail(
            "sqlite:e.db",
            "CREATE TABLE u(id INTEGER PRIMARY KEY);\n  INSERT INTO u VALUES (1), (1)",
            &[],
            dir.path(),
        );
        assert_eq!(
            error.to_string(),
            "statement 2 (line 2, column 3): UNIQUE constraint failed: u.id"
        );
        let error = fail(
            "sqlite:e.db",
            "SELECT 1;\nSELECT ?1 + ?2",
            &["1"],
            dir.path(),
        );
        assert!(
            matches!(
                error,
                SqlError::MissingArgs {
                    statement: 2,
                    line: 2,
                    column: 1,
                    declared: 2,
                    given: 1
                }
            ),
            "{error:?}"
        );
        assert!(matches!(
            fail("sqlite:e.db", " -- nothing\n;", &[], dir.path()),
            SqlError::EmptyQuery
        ));
        let error = fail("sqlite:missing/dir/x.db", "SELECT 1", &[], dir.path());
        assert!(matches!(error, SqlError::Connect { .. }), "{error:?}");
        assert!(
            error.to_string().contains("sqlite:missing/dir/x.db ("),
            "{error}"
        );
    }

    #[test]
    fn sqlite_rolls_back_everything_on_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = "sqlite:r.db";
        run(
            url,
            "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1)",
            &[],
            dir.path(),
        );
        let error = fail(
            url,
            "INSERT INTO t VALUES (2);\nUPDATE t SET x = x * 10;\nSELECT nope FROM t;\n\
             CREATE TABLE later(a)",
            &[],
            dir.path(),
        );
        assert!(
            matches!(
                error,
                SqlError::Statement {
                    statement: 3,
                    line: 3,
                    ..
                }
            ),
            "{error:?}"
        );
        let (outputs, _) = run(
            url,
            "SELECT group_concat(x) AS xs, (SELECT count(*) FROM sqlite_master) AS tables FROM t",
            &[],
            dir.path(),
        );
        assert_eq!(outputs, pairs(&[("xs", "1"), ("tables", "1")]));
    }

    // --- PostgreSQL --------------------------------------------------------------------

    fn pg_server() -> String {
        std::env::var("COREFLOW_TEST_PG_URL")
            .or_else(|_| std::env::var("COREFLOW_TEST_POSTGRES"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".to_owned())
    }

    /// A schema of its own in the test server, dropped at the end of the test.
    struct Schema {
        name: String,
    }

    impl Schema {
        fn new(test: &str) -> Self {
            let name = format!("cf_sql_{test}_{}", std::process::id());
            let mut client = Self::client();
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
                ))
                .expect("create a test schema");
            Self { name }
        }

        fn client() -> postgres::Client {
            let url = pg_server();
            postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
                panic!("no test PostgreSQL at {url} ({e}): run scripts/test-postgres.sh")
            })
        }

        /// The server's URL with this schema as the search path.
        fn url(&self) -> String {
            let server = pg_server();
            let separator = if server.contains('?') { '&' } else { '?' };
            format!("{server}{separator}options=-csearch_path%3D{}", self.name)
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let _ = Self::client().batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }

    #[test]
    fn postgres_binds_args_as_text_of_any_type() {
        let schema = Schema::new("args");
        let dir = tempfile::tempdir().unwrap();
        let injection = "'; DROP TABLE orders; --";
        let (outputs, table) = run(
            &schema.url(),
            "CREATE TABLE orders(id serial PRIMARY KEY, day date NOT NULL, qty int NOT NULL,\n\
             price numeric(10, 2), note text, at timestamptz, meta jsonb);\n\
             INSERT INTO orders(day, qty, price, note, at, meta)\n\
             VALUES ($1, $2, $3, $4, '2026-01-02 03:04:05.25+00', '{\"a\": [1, 2]}'),\n\
                    ('2025-12-31', 1, NULL, 'other', NULL, NULL);\n\
             SELECT id, day, qty, price, note FROM orders WHERE day >= $1 AND qty = $2",
            &["2026-01-01", "42", "1234.5", injection],
            dir.path(),
        );
        assert_eq!(
            table,
            "id | day        | qty |   price | note\n\
             ---+------------+-----+---------+-------------------------\n \
             1 | 2026-01-01 |  42 | 1234.50 | '; DROP TABLE orders; --\n\
             (1 row)\n"
        );
        assert_eq!(
            outputs,
            pairs(&[
                ("id", "1"),
                ("day", "2026-01-01"),
                ("qty", "42"),
                ("price", "1234.50"),
                ("note", injection),
            ])
        );
        let (outputs, table) = run(
            &schema.url(),
            "SELECT at, meta FROM orders WHERE id = 1",
            &[],
            dir.path(),
        );
        assert_eq!(
            outputs,
            pairs(&[
                ("at", "2026-01-02 03:04:05.25+00"),
                ("meta", "{\"a\": [1, 2]}")
            ])
        );
        assert_eq!(
            table,
            "at                        | meta\n\
             --------------------------+--------------\n\
             2026-01-02 03:04:05.25+00 | {\"a\": [1, 2]}\n\
             (1 row)\n"
        );
        let (_, table) = run(
            &schema.url(),
            "UPDATE orders SET qty = qty + $1::int WHERE day < $2",
            &["1", "2026-06-01"],
            dir.path(),
        );
        assert_eq!(table, "(2 rows affected)\n");
    }

    #[test]
    fn postgres_values_read_as_text() {
        let schema = Schema::new("values");
        let dir = tempfile::tempdir().unwrap();
        let (outputs, _) = run(
            &schema.url(),
            "CREATE TYPE mood AS ENUM ('happy', 'sad');\n\
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);\n\
             SELECT 12345.6789::numeric AS a, -0.00012::numeric AS b, 100000000::numeric AS c,\n\
               0::numeric(5,2) AS d, 'NaN'::numeric AS e, 1e20::numeric AS f,\n\
               '2026-03-04 05:06:07'::timestamp AS g, 'infinity'::timestamptz AS h,\n\
               '0044-03-15 BC'::date AS i, true AS j, 2.5::float8 AS k, 0.1::float4 AS l,\n\
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS m, '\\xdeadbeef'::bytea AS n,\n\
               NULL::int AS o, interval '1 day' AS p, ARRAY[1, 2] AS q, 7::int2 AS r,\n\
               9000000000::int8 AS s, 'happy'::mood AS t, 5::positive AS u, 'x'::varchar AS v,\n\
               'ab'::char(3) AS w, '{\"k\": 1}'::json AS x, 'pg_class'::regclass::oid AS y,\n\
               current_database()::name AS z, '2026-01-01 10:00:00+02'::timestamptz AS tz",
            &[],
            dir.path(),
        );
        assert_eq!(
            outputs,
            pairs(&[
                ("a", "12345.6789"),
                ("b", "-0.00012"),
                ("c", "100000000"),
                ("d", "0.00"),
                ("e", "NaN"),
                ("f", "100000000000000000000"),
                ("g", "2026-03-04 05:06:07"),
                ("h", "infinity"),
                ("i", "0044-03-15 BC"),
                ("j", "true"),
                ("k", "2.5"),
                ("l", "0.1"),
                ("m", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                ("n", "\\xdeadbeef"),
                ("o", ""),
                ("p", "<interval>"),
                ("q", "<int4[]>"),
                ("r", "7"),
                ("s", "9000000000"),
                ("t", "happy"),
                ("u", "5"),
                ("v", "x"),
                ("w", "ab "),
                ("x", "{\"k\": 1}"),
                ("y", "1259"),
                ("z", "postgres"),
                ("tz", "2026-01-01 08:00:00+00"),
            ])
        );
    }

    #[test]
    fn postgres_errors_point_into_the_query() {
        let schema = Schema::new("errors");
        let dir = tempfile::tempdir().unwrap();
        let url = schema.url();
        let error = fail(&url, "SELECT 1;\nSELECT *\n  FROM orderz", &[], dir.path());
        assert_eq!(
            error.to_string(),
            "statement 2 (line 3, column 8): relation \"orderz\" does not exist"
        );
        // Positions count characters, not bytes.
        let error = fail(
            &url,
            "SELECT 'é';\nSELECT 'ü', * FROM orderz",
            &[],
            dir.path(),
        );
        assert!(
            error
                .to_string()
                .starts_with("statement 2 (line 2, column 20): "),
            "{error}"
        );
        // A runtime error points at the statement's start; detail and hint follow.
        let error = fail(
            &url,
            "CREATE TABLE t(id int PRIMARY KEY);\n  INSERT INTO t VALUES ($1), ($1)",
            &["7"],
            dir.path(),
        );
        assert_eq!(
            error.to_string(),
            "statement 2 (line 2, column 3): duplicate key value violates unique constraint \
             \"t_pkey\"\nDETAIL: Key (id)=(7) already exists."
        );
        // Rolled back: the table does not exist.
        let error = fail(&url, "SELECT * FROM t", &[], dir.path());
        assert!(
            error.to_string().contains("relation \"t\" does not exist"),
            "{error}"
        );
        let error = fail(&url, "SELECT $1::date", &["not a date"], dir.path());
        assert!(
            error
                .to_string()
                .contains("invalid input syntax for type date"),
            "{error}"
        );
        let error = fail(&url, "SELECT $1::int + $2::int", &["1"], dir.path());
        assert!(matches!(
            error,
            SqlError::MissingArgs {
                declared: 2,
                given: 1,
                ..
            }
        ));
    }

    #[test]
    fn postgres_rolls_back_everything_on_an_error() {
        let schema = Schema::new("rollback");
        let dir = tempfile::tempdir().unwrap();
        let url = schema.url();
        run(
            &url,
            "CREATE TABLE t(x int); INSERT INTO t VALUES (1)",
            &[],
            dir.path(),
        );
        let error = fail(
            &url,
            "INSERT INTO t VALUES (2);\nUPDATE t SET x = x * 10;\nSELECT 1 / 0;\n\
             CREATE TABLE later(a int)",
            &[],
            dir.path(),
        );
        assert_eq!(
            error.to_string(),
            "statement 3 (line 3, column 1): division by zero"
        );
        let (outputs, _) = run(
            &url,
            "SELECT string_agg(x::text, ',') AS xs, to_regclass('later') IS NULL AS gone FROM t",
            &[],
            dir.path(),
        );
        assert_eq!(outputs, pairs(&[("xs", "1"), ("gone", "true")]));
    }

    #[test]
    fn postgres_connection_failures_hide_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let error = fail(
            "postgres://ann:sekrit@127.0.0.1:1/app",
            "SELECT 1",
            &[],
            dir.path(),
        );
        let message = error.to_string();
        assert!(matches!(error, SqlError::Connect { .. }), "{error:?}");
        assert!(!message.contains("sekrit"), "{message}");
        assert!(
            message.starts_with("cannot connect to postgres://ann:***@127.0.0.1:1/app: "),
            "{message}"
        );
    }

    #[test]
    fn a_long_postgres_result_is_streamed_and_counted() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (outputs, table) = run(
            &pg_server(),
            "select g as n from generate_series(1, 5000) as g",
            &[],
            dir.path(),
        );
        assert_eq!(outputs, pairs(&[("n", "1")]));
        assert!(
            table.ends_with(&format!("(5000 rows; the first {MAX_TABLE_ROWS} shown)\n")),
            "{}",
            &table[table.len().saturating_sub(200)..]
        );
        assert_eq!(table.lines().count(), 2 + MAX_TABLE_ROWS + 1);
    }

    /// What the splitter treats specially, and some text around it.
    const SQL_ALPHABET: &[char] = &[
        'a', 'E', 'e', 'N', 'D', '_', '1', ' ', '\n', '\t', ';', '\'', '"', '`', '$', '\\', '[',
        ']', '/', '*', '-', 'é', '€',
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Any text splits without a panic, into pieces that are the text at their offsets,
        /// each ending before the next starts; also the line and column of every offset.
        #[test]
        fn any_text_splits_into_its_own_pieces(
            chars in proptest::collection::vec(proptest::sample::select(SQL_ALPHABET.to_vec()), 0..200),
            postgres in proptest::prelude::any::<bool>(),
        ) {
            let sql: String = chars.into_iter().collect();
            let dialect = if postgres { Dialect::Postgres } else { Dialect::Sqlite };
            let mut last_end = 0;
            for piece in split_statements(&sql, dialect) {
                proptest::prop_assert!(piece.offset >= last_end);
                proptest::prop_assert_eq!(&sql[piece.offset..piece.offset + piece.text.len()], piece.text);
                proptest::prop_assert!(!piece.text.trim().is_empty());
                last_end = piece.offset + piece.text.len();
                let _ = line_column(&sql, piece.offset + piece.text.len());
            }
        }
    }
}
