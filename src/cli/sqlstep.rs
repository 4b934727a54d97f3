//! `coreflow sql-step`: the child process of a `sql:` step. The engine starts it like any
//! other step (its own process group, timeout, cancel, captured output) with the rendered
//! request in [`SQL_REQUEST_VAR`]; it prints the last statement's rows and writes the columns of
//! the first row to `$COREFLOW_OUTPUT`.

use std::io::Write;

use crate::error::Error;
use crate::step::SQL_REQUEST_VAR as REQUEST_VAR;
use crate::step::sql::{self, SqlRequest};

pub(crate) fn run() -> Result<(), Error> {
    let request = std::env::var(REQUEST_VAR).map_err(|_| {
        Error::Usage(format!(
            "sql-step runs a `sql:` step; {REQUEST_VAR} is not set"
        ))
    })?;
    let request: SqlRequest = serde_json::from_str(&request)
        .map_err(|err| Error::Usage(format!("{REQUEST_VAR} is not a request: {err}")))?;
    let cwd = std::env::current_dir()?;
    let mut out = std::io::stdout().lock();
    let outputs = sql::execute(&request, &cwd, &mut out)?;
    out.flush()?;
    if let Some(path) = std::env::var_os("COREFLOW_OUTPUT") {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?
            .write_all(crate::step::format_outputs(&outputs).as_bytes())?;
    }
    Ok(())
}
