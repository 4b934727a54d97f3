//! `coreflow env copy`: a SQLite environment copied into PostgreSQL (and back, and into
//! another folder) reads the same in every command; a destination that is not empty, a
//! source with work running and a PostgreSQL destination without `--to-blocks` for a source
//! with DataBlocks are refused (exit 2) and leave the destination as it was.
//!
//! The source is a SQLite folder and the destination a PostgreSQL schema of the test server
//! on both passes of the suite (the test server must run: `scripts/test-postgres.sh`).

use std::ffi::OsString;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::engine_support::Workspace;
use crate::support::{Coreflow, postgres_location};

/// Matrix jobs, a job of a limited queue that fails once and then succeeds (a retry), a
/// DataBlock and an output; with `-p fail=true` the last job fails.
const WORKFLOW: &str = r#"
params:
  fail: { type: bool, default: false }
jobs:
  build:
    matrix: { os: [linux, mac] }
    steps:
      - run: echo "building ${{ matrix.os }}"
  flaky:
    queue: limited
    retry: { max_attempts: 3, delay: 0s }
    steps:
      - name: try
        run: |
          n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
          echo "attempt $n" >&2
          [ $n -ge 2 ]
  publish:
    needs: [build, flaky]
    steps:
      - run: printf 'id,amount\n1,2\n' > orders.csv; echo "rows=1" >> "$COREFLOW_OUTPUT"
      - run: test "${{ params.fail }}" = false
    datablocks:
      orders: { path: orders.csv }
"#;

/// An invocation on the workspace's SQLite environment, whichever pass runs.
fn source(ws: &Workspace) -> Coreflow {
    ws.coreflow()
        .env("COREFLOW_ENV", ws.env_dir())
        .env_remove("COREFLOW_BLOCKS")
}

/// An invocation on the environment at `location`, its content in `blocks`.
fn copy_of(ws: &Workspace, location: impl Into<OsString>, blocks: &PathBuf) -> Coreflow {
    ws.coreflow()
        .env("COREFLOW_ENV", location.into())
        .env("COREFLOW_BLOCKS", blocks)
}

/// A PostgreSQL environment of its own for `ws` (an empty schema of the test server).
fn empty_database(ws: &Workspace, name: &str) -> OsString {
    postgres_location(&ws.path().join(name))
}

/// The source: a limited queue, a run that succeeded (with a retry and a DataBlock), one
/// that failed, one queued for workers.
fn source_with_history() -> Workspace {
    let ws = Workspace::with_workflow(WORKFLOW);
    source(&ws)
        .args(["queue", "add", "limited", "--concurrency", "2"])
        .succeeds();
    source(&ws)
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    source(&ws)
        .args(["run", "wf.yaml", "-p", "fail=true", "--progress", "plain"])
        .fails(1);
    source(&ws).args(["run", "wf.yaml", "--detach"]).succeeds();
    ws
}

/// What the commands print about an environment, to compare a copy with its source.
const READS: &[&[&str]] = &[
    &["runs"],
    &["runs", "--json"],
    &["show", "1"],
    &["show", "2", "--json"],
    &["show", "3"],
    &["logs", "1"],
    &["logs", "1", "--json"],
    &["logs", "2", "flaky"],
    &["queue", "list"],
    &["jobs", "--json"],
    &["blocks", "list"],
    &["blocks", "list", "--json"],
    &["blocks", "show", "orders", "--json"],
];

#[track_caller]
fn assert_reads_the_same(
    ws: &Workspace,
    original: impl Fn() -> Coreflow,
    copy: impl Fn() -> Coreflow,
) {
    for args in READS {
        let expected = original().args(*args).succeeds();
        let got = copy().args(*args).succeeds();
        assert_eq!(
            got.stdout(),
            expected.stdout(),
            "`coreflow {}` differs on the copy",
            args.join(" ")
        );
    }
    let (from, to) = (ws.path().join("from.csv"), ws.path().join("to.csv"));
    original()
        .args(["blocks", "get", "--force", "orders"])
        .arg(&from)
        .succeeds();
    copy()
        .args(["blocks", "get", "--force", "orders"])
        .arg(&to)
        .succeeds();
    assert_eq!(std::fs::read(&to).unwrap(), std::fs::read(&from).unwrap());
}

#[test]
fn a_sqlite_environment_copied_to_postgresql_reads_the_same() {
    let ws = source_with_history();
    let url = empty_database(&ws, "pg");
    let shared = ws.path().join("shared-blocks");
    let output = source(&ws)
        .args(["env", "copy", "--to"])
        .arg(&url)
        .arg("--to-blocks")
        .arg(&shared)
        .succeeds();
    assert!(
        output.stdout().starts_with(
            "copied 1 definition, 3 runs, 12 jobs, 2 queues, 0 workers, 1 block version \
             (1 object), "
        ),
        "{output}"
    );
    assert_reads_the_same(&ws, || source(&ws), || copy_of(&ws, &url, &shared));

    // The copy goes on where the source stopped: the next run is 4, not 1.
    let output = copy_of(&ws, &url, &shared)
        .args(["run", "wf.yaml", "--detach", "--json"])
        .succeeds();
    assert_eq!(output.stdout_json()["run_id"], 4, "{output}");

    // And back into a folder (PostgreSQL → SQLite): logs and blocks come out of the database.
    let back = ws.path().join("back");
    let output = copy_of(&ws, &url, &shared)
        .args(["env", "copy", "--json", "--to"])
        .arg(&back)
        .succeeds();
    let summary = output.stdout_json();
    assert_eq!(summary["runs"], 4, "{output}");
    assert_eq!(summary["block_objects"], 1, "{output}");
    assert_eq!(
        summary["log_bytes"],
        summary["log_bytes"].as_u64().filter(|n| *n > 0).unwrap()
    );
    assert_reads_the_same(
        &ws,
        || copy_of(&ws, &url, &shared),
        || {
            ws.coreflow()
                .env("COREFLOW_ENV", &back)
                .env_remove("COREFLOW_BLOCKS")
        },
    );
}

#[test]
fn a_sqlite_environment_copied_to_another_folder_reads_the_same() {
    let ws = source_with_history();
    let copy = ws.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    source(&ws)
        .args(["env", "copy", "--quiet", "--to"])
        .arg(&copy)
        .succeeds();
    assert_reads_the_same(
        &ws,
        || source(&ws),
        || {
            ws.coreflow()
                .env("COREFLOW_ENV", &copy)
                .env_remove("COREFLOW_BLOCKS")
        },
    );
}

#[test]
fn a_destination_with_coreflow_data_is_refused_and_left_untouched() {
    let ws = source_with_history();
    let url = empty_database(&ws, "busy");
    let shared = ws.path().join("shared-blocks");
    ws.file(
        "other.yaml",
        "jobs:\n  only:\n    steps:\n      - run: echo other\n",
    );
    copy_of(&ws, &url, &shared)
        .args(["run", "other.yaml"])
        .succeeds();
    let before = copy_of(&ws, &url, &shared)
        .args(["runs", "--json"])
        .succeeds();

    let output = source(&ws)
        .args(["env", "copy", "--to"])
        .arg(&url)
        .arg("--to-blocks")
        .arg(&shared)
        .fails(2);
    assert!(output.stderr().contains("is not empty"), "{output}");
    assert!(output.stderr().contains("1 row of runs"), "{output}");
    assert!(
        output.stderr().contains(&*url.to_string_lossy()),
        "the message names the destination\n{output}"
    );
    let after = copy_of(&ws, &url, &shared)
        .args(["runs", "--json"])
        .succeeds();
    assert_eq!(after.stdout(), before.stdout());
    let logs = copy_of(&ws, &url, &shared).args(["logs", "1"]).succeeds();
    assert_eq!(logs.stdout(), "only/step-1 | other\n");
    // Nothing of the source's content went to the destination's blocks either.
    assert!(!shared.exists());
}

#[test]
fn a_destination_folder_with_files_is_refused() {
    let ws = source_with_history();
    ws.file("dest/notes.txt", "mine");
    let output = source(&ws).args(["env", "copy", "--to", "dest"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("the destination `dest` is not empty")
            && output.stderr().contains("notes.txt"),
        "{output}"
    );
    let entries: Vec<_> = std::fs::read_dir(ws.path().join("dest"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["notes.txt"]);
}

#[test]
fn a_postgresql_destination_needs_to_blocks_for_a_source_with_blocks() {
    let ws = source_with_history();
    let url = empty_database(&ws, "noblocks");
    let output = source(&ws).args(["env", "copy", "--to"]).arg(&url).fails(2);
    assert!(output.stderr().contains("--to-blocks DIR"), "{output}");
    // The destination was not touched: the copy works once the option is given.
    let shared = ws.path().join("shared-blocks");
    source(&ws)
        .args(["env", "copy", "--to"])
        .arg(&url)
        .arg("--to-blocks")
        .arg(&shared)
        .succeeds();
}

#[test]
fn a_source_with_work_running_is_refused() {
    let ws = Workspace::with_workflow(
        "jobs:\n  slow:\n    steps:\n      - run: touch started; sleep 30\n",
    );
    let running = source(&ws)
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    ws.wait_for_file("started");
    let output = source(&ws).args(["env", "copy", "--to", "copy"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("has work running (run 1 running, 1 job running)"),
        "{output}"
    );
    assert!(!ws.exists("copy"), "nothing was created");
    running.signal(Signal::SIGINT);
    running.wait();
    // Once the run ended, the copy goes ahead.
    source(&ws).args(["env", "copy", "--to", "copy"]).succeeds();
}

#[test]
fn env_copy_refuses_a_missing_source_and_itself() {
    let ws = Workspace::new();
    let output = ws
        .coreflow()
        .args(["env", "copy", "--from", "nowhere", "--to", "dest"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("no CoreFlow environment at `nowhere`"),
        "{output}"
    );
    assert!(!ws.exists("nowhere") && !ws.exists("dest"));
    let url = empty_database(&ws, "self");
    let output = ws
        .coreflow()
        .args(["env", "copy", "--from"])
        .arg(&url)
        .arg("--to")
        .arg(&url)
        .fails(2);
    assert!(output.stderr().contains("the same environment"), "{output}");
}
