//! `--help` output: snapshots (nextest), and a check that the top-level help lists exactly the
//! commands that are built, so that a half-done command cannot slip into it unnoticed.
//!
//! clap prints the current value of `COREFLOW_ENV` after `[env: …]`; the harness points it
//! into the test's temporary directory, redacted as `[TEMP]`.

use crate::support::Coreflow;

/// The commands `coreflow --help` must list, in order. Add a command here when it is built.
const BUILT_COMMANDS: &[&str] = &[
    "validate",
    "graph",
    "schema",
    "init",
    "run",
    "runs",
    "show",
    "logs",
    "cancel",
    "retry",
    "trigger",
    "schedule",
    "queue",
    "jobs",
    "worker",
    "workers",
    "daemon",
    "ui",
    "blocks",
    "env",
    "completions",
    "man",
];

/// The command names in a clap help text's `Commands:` section, without clap's own `help`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_lists_exactly_the_built_commands() {
    let output = Coreflow::new().arg("--help").succeeds();
    let listed = listed_commands(output.stdout());
    assert_eq!(
        listed, BUILT_COMMANDS,
        "update BUILT_COMMANDS when adding a command\n{output}"
    );
}

#[test]
fn every_listed_command_has_its_own_help() {
    for command in BUILT_COMMANDS {
        let output = Coreflow::new().args([command, &"--help"]).succeeds();
        assert!(
            output
                .stdout()
                .contains(&format!("Usage: coreflow {command}")),
            "{output}"
        );
    }
}

#[test]
fn top_level_help() {
    let output = Coreflow::new().arg("--help").succeeds();
    assert_eq!(output.stderr(), "");
    insta::assert_snapshot!(output.stdout_redacted(), @"
    A local-first workflow runner: YAML workflows, a DAG of jobs, live progress, SQLite state

    Usage: coreflow [OPTIONS] <COMMAND>

    Commands:
      validate     Check workflow files without running anything
      graph        Print a workflow's job graph
      schema       Print the JSON Schema of the workflow format
      init         Write a starter workflow, and the schema beside it for editors
      run          Run a workflow on local workers and wait for it
      runs         List runs, newest first
      show         Show a run's jobs: state, attempts, duration, exit code, memory, CPU, outputs
      logs         Print a run's captured output
      cancel       Cancel a run or one of its jobs
      retry        Re-run what did not succeed in a run, and everything downstream of it
      trigger      Queue a run of a workflow the environment knows, for workers or a daemon
      schedule     Preview when a workflow's schedule, every and at triggers fire, across DST changes
      queue        JobQueues: list, add, pause, resume, remove
      jobs         Jobs across runs with their metadata; reprioritise, move to the top, cancel
      worker       Run queued jobs of the environment(s) as a standalone worker
      workers      Workers with labels, environment, current job and heartbeat; move one
      daemon       Load a folder of workflows, fire their triggers, run workers, serve the HTTP API
      ui           Serve the web UI and the HTTP API over the environment, without a daemon
      blocks       DataBlocks: list them, show versions and lineage, get one, collect garbage
      env          Environments: copy one into another store (SQLite to PostgreSQL)
      completions  Print a shell's completion script: bash, zsh, fish, elvish, powershell
      man          Write a man page per command into DIR (without DIR: print coreflow(1))
      help         Print this message or the help of the given subcommand(s)

    Options:
          --env <DIR_OR_URL>     The environment: a state directory (default ./.coreflow) or a postgres:// URL [env: COREFLOW_ENV]
          --blocks <DIR_OR_URL>  Where DataBlock content lives: a folder (default <env>/blocks; one every host reaches for a PostgreSQL environment) or an S3-compatible store, s3://BUCKET[/PREFIX] [env: COREFLOW_BLOCKS]
          --json                 Print machine-readable JSON
      -q, --quiet                Print less
      -v, --verbose              Print more
          --color <WHEN>         When to use colors: auto, always, never (`auto` honours NO_COLOR) [default: auto]
      -h, --help                 Print help
      -V, --version              Print version
    ");
}

#[test]
fn validate_help() {
    let output = Coreflow::new().args(["validate", "--help"]).succeeds();
    assert_eq!(output.stderr(), "");
    insta::assert_snapshot!(output.stdout_redacted(), @"
    Check workflow files without running anything

    Usage: coreflow validate [OPTIONS] <FILE>...

    Arguments:
      <FILE>...  Workflow files to check

    Options:
          --deny-warnings        Count warnings (such as script injection) as errors: exit 2 when there are any
          --env <DIR_OR_URL>     The environment: a state directory (default ./.coreflow) or a postgres:// URL [env: COREFLOW_ENV]
          --blocks <DIR_OR_URL>  Where DataBlock content lives: a folder (default <env>/blocks; one every host reaches for a PostgreSQL environment) or an S3-compatible store, s3://BUCKET[/PREFIX] [env: COREFLOW_BLOCKS]
          --json                 Print machine-readable JSON
      -q, --quiet                Print less
      -v, --verbose              Print more
          --color <WHEN>         When to use colors: auto, always, never (`auto` honours NO_COLOR) [default: auto]
      -h, --help                 Print help
      -V, --version              Print version
    ");
}

#[test]
fn help_subcommand_matches_the_help_flag() {
    let flag = Coreflow::new().args(["validate", "--help"]).succeeds();
    let subcommand = Coreflow::new().args(["help", "validate"]).succeeds();
    assert_eq!(flag.stdout_redacted(), subcommand.stdout_redacted());
}

#[test]
fn version_prints_the_crate_version() {
    let output = Coreflow::new().arg("--version").succeeds();
    assert_eq!(
        output.stdout(),
        format!("coreflow {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_command_is_a_usage_error() {
    let output = Coreflow::new().fails(2);
    assert!(output.stderr().contains("Usage: coreflow"), "{output}");
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let output = Coreflow::new().arg("frobnicate").fails(2);
    assert!(
        output
            .stderr()
            .contains("unrecognized subcommand 'frobnicate'"),
        "{output}"
    );
}
