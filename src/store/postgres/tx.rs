//! [`Tx`]: a transaction whose statements are prepared once per connection.
//!
//! The `postgres` client prepares a statement given as text afresh at every call: one more
//! round trip to the server, and a parse there, for each of the few dozen statements a claim
//! runs. [`Tx`] keeps what it prepared in its connection's [`Statements`] and reuses it, so a
//! statement costs one round trip from its second use on. Prepared statements belong to the
//! server session, not to a transaction: one that rolls back keeps them.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};

/// How many statements a connection keeps prepared. The store's statements are fixed texts,
/// a few hundred at most; texts built at run time (lists of placeholders) could grow the
/// cache without end, so it starts over past this.
const MAX_STATEMENTS: usize = 512;

/// The statements a connection has prepared, by text.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

/// What a [`Tx`] runs: a statement's text (prepared on first use) or a statement prepared
/// already.
pub(crate) trait Sql {
    /// The prepared statement.
    fn prepared(&self, tx: &mut Tx<'_>) -> Result<Statement, postgres::Error>;
}

impl Sql for str {
    fn prepared(&self, tx: &mut Tx<'_>) -> Result<Statement, postgres::Error> {
        tx.prepare(self)
    }
}

impl Sql for String {
    fn prepared(&self, tx: &mut Tx<'_>) -> Result<Statement, postgres::Error> {
        tx.prepare(self)
    }
}

impl Sql for Statement {
    fn prepared(&self, _: &mut Tx<'_>) -> Result<Statement, postgres::Error> {
        Ok(self.clone())
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// A transaction reusing its connection's prepared statements.
pub(crate) struct Tx<'a> {
    inner: Transaction<'a>,
    statements: &'a mut Statements,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(inner: Transaction<'a>, statements: &'a mut Statements) -> Self {
        Tx { inner, statements }
    }

    /// The statement for `sql`, prepared on this connection once.
    pub(crate) fn prepare(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.inner.prepare(sql)?;
        if self.statements.0.len() >= MAX_STATEMENTS {
            self.statements.0.clear();
        }
        self.statements.0.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query<S: Sql + ?Sized>(
        &mut self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = sql.prepared(self)?;
        self.inner.query(&statement, params)
    }

    pub(crate) fn query_one<S: Sql + ?Sized>(
        &mut self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Row, postgres::Error> {
        let statement = sql.prepared(self)?;
        self.inner.query_one(&statement, params)
    }

    pub(crate) fn query_opt<S: Sql + ?Sized>(
        &mut self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = sql.prepared(self)?;
        self.inner.query_opt(&statement, params)
    }

    pub(crate) fn execute<S: Sql + ?Sized>(
        &mut self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let statement = sql.prepared(self)?;
        self.inner.execute(&statement, params)
    }

    /// Runs statements given as text, without parameters, unprepared.
    #[cfg(test)]
    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.inner.batch_execute(sql)
    }

    pub(crate) fn commit(self) -> Result<(), postgres::Error> {
        self.inner.commit()
    }
}
