//! Black-box tests of the `coreflow` binary: one module per command, all in one test binary
//! (as just and ripgrep do) so that it is linked once.
//!
//! The suite runs twice in CI: on SQLite environments (folders), and with
//! `COREFLOW_TEST_STORE=postgres` on PostgreSQL ones (a database per test in the server
//! `scripts/test-postgres.sh` starts). Tests named `sqlite_only_…` look at what a SQLite
//! environment keeps in its folder (file modes, the database file, DataBlock content, which a
//! PostgreSQL environment keeps elsewhere) and are left out of the second pass with
//! `--skip sqlite_only`.
//!
//! Each test builds a [`support::Coreflow`] invocation, which runs the real binary in a fresh
//! temporary directory. Library code is used only where a test needs a tool the dev-dependencies
//! lack (reading YAML to check the examples against the JSON Schema).

mod api;
mod blocks;
mod blocks_s3;
mod book;
mod browser;
mod browser_support;
mod cancel;
mod composition;
mod compute;
mod daemon;
mod daemon_support;
mod engine_support;
mod envcopy;
mod examples;
mod failures;
mod github;
mod graph;
mod harness;
mod help;
mod hosts;
mod init;
mod inspect;
mod launchers;
mod layers;
mod limits;
mod notify;
mod output;
mod queue_support;
mod queues;
mod recovery;
mod regressions;
mod resources;
mod robustness;
mod run;
mod schedule;
mod schema;
mod secrets;
mod security;
mod sql;
mod support;
mod validate;
