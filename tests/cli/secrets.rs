//! `secrets:` (SPEC §2): read when a job starts, given to steps through `${{ secrets.NAME }}`
//! in `env`, never stored, masked as `***` in every output; a missing one stops the run
//! before anything starts.

use std::path::Path;

use crate::engine_support::{Workspace, job};
use crate::queue_support::{Worker, detach, wait_for_run};

const TOKEN: &str = "s3cr3t-T0ken-value";
const KEY: &str = "file-key-4242";

/// Prints the token 10,000 times, each time in two writes cut inside the value, on both
/// streams, and writes it to an output; the file secret too.
const PRINTS_SECRETS: &str = r#"
secrets:
  TOKEN: { env: MY_TOKEN }
  KEY: { file: key.txt }
jobs:
  leak:
    env: { TOKEN: "${{ secrets.TOKEN }}" }
    steps:
      - env: { KEY: "${{ secrets.KEY }}" }
        shell: python3
        run: |
          import os, sys
          token, key = os.environ["TOKEN"], os.environ["KEY"]
          for i in range(10000):
              sys.stdout.write(f"line {i}: {token[:5]}")
              sys.stdout.flush()
              sys.stdout.write(f"{token[5:]} and {key}\n")
              sys.stdout.flush()
          sys.stderr.write(f"err {token}\n")
          with open(os.environ["COREFLOW_OUTPUT"], "a") as out:
              out.write(f"token={token}\nkey=k:{key}\n")
  after:
    needs: [leak]
    env: { SEEN: "${{ needs.leak.outputs.token }}" }
    steps:
      - run: printf '%s\n' "$SEEN" > seen.txt
"#;

/// Every file below `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_secret_printed_ten_thousand_times_is_masked_everywhere_and_stored_nowhere() {
    let ws = Workspace::with_workflow(PRINTS_SECRETS);
    ws.file("key.txt", format!("{KEY}\n"));
    let output = ws
        .coreflow()
        .env("MY_TOKEN", TOKEN)
        .args([
            "run",
            "wf.yaml",
            "--progress",
            "json",
            "--junit",
            "junit.xml",
        ])
        .succeeds();
    let logs = ws.coreflow().args(["logs", "last", "leak"]).succeeds();
    let show = ws.show("last");
    for (what, text) in [
        ("--progress json", output.stdout().to_owned()),
        ("stderr", output.stderr().to_owned()),
        ("logs", logs.stdout().to_owned()),
        ("show --json", show.to_string()),
        ("junit", ws.read("junit.xml")),
    ] {
        assert!(!text.contains(TOKEN), "the token shows in {what}");
        assert!(!text.contains(KEY), "the file secret shows in {what}");
    }
    assert_eq!(
        logs.stdout().matches("and ***").count(),
        10_000,
        "every split line is masked whole"
    );
    assert!(
        logs.stdout().contains("line 9999: *** and ***"),
        "{}",
        &logs.stdout()[..200]
    );
    assert!(logs.stdout().contains("err ***"));
    assert_eq!(job(&show, "leak")["outputs"]["token"], "***", "{show:#}");
    assert_eq!(job(&show, "leak")["outputs"]["key"], "k:***", "{show:#}");
    assert_eq!(ws.read("seen.txt"), "***\n");
    // Not in the environment's files either (its database, logs and scratch files), nor
    // anywhere else in the workspace but the file it came from.
    for secret in [TOKEN, KEY] {
        let mut holding = files_holding(&ws.path(), secret.as_bytes());
        holding.retain(|p| !p.ends_with("key.txt"));
        assert!(holding.is_empty(), "{secret} found in {holding:?}");
    }
}

#[test]
fn a_missing_secret_stops_the_run_before_anything_starts() {
    let ws = Workspace::with_workflow(PRINTS_SECRETS);
    ws.file("key.txt", KEY);
    let output = ws
        .coreflow()
        .env_remove("MY_TOKEN")
        .args(["run", "wf.yaml"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("secret `TOKEN`: the environment variable `MY_TOKEN` is not set"),
        "{output}"
    );
    assert!(ws.runs().is_empty(), "no run is created");
}

#[test]
fn a_worker_reads_secrets_from_its_own_environment_when_the_job_starts() {
    let ws = Workspace::with_workflow(
        r#"
secrets:
  TOKEN: { env: WORKER_TOKEN }
jobs:
  use:
    env: { TOKEN: "${{ secrets.TOKEN }}" }
    steps:
      - run: echo "token is $TOKEN" && test "$TOKEN" = from-the-worker
"#,
    );
    // Queued by a process without the secret; the worker that has it runs the job.
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start_with_env(&ws, &[], &[("WORKER_TOKEN", "from-the-worker")]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    drop(worker);
    let logs = ws.coreflow().args(["logs", &run]).succeeds();
    assert!(logs.stdout().contains("token is ***"), "{logs}");

    // A worker without it fails the job, naming the secret.
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &run), "failed");
    drop(worker);
    let show = ws.show(&run);
    assert_eq!(
        job(&show, "use")["reason"],
        "secret `TOKEN`: the environment variable `WORKER_TOKEN` is not set",
        "{show:#}"
    );
}

#[test]
fn validate_checks_where_secrets_are_read() {
    let ws = Workspace::with_workflow(
        r#"
secrets:
  TOKEN: { env: MY_TOKEN }
  bad name: { file: x }
  BOTH: { env: A, file: b }
jobs:
  a:
    if: ${{ secrets.TOKEN == 'x' }}
    env: { T: "${{ secrets.TOKN }}" }
    steps:
      - run: curl -H "Authorization=${{ secrets.TOKEN }}" http://127.0.0.1/
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    let stderr = output.stderr();
    for expected in [
        "secret name `bad name` must start with a letter",
        "`secrets.TOKEN`: secrets are read when a job starts, so only `env` values and steps can read them",
        "`secrets.TOKN` reads an unknown secret `TOKN`",
        "did you mean `TOKEN`?",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
    assert!(
        stderr.contains("BOTH"),
        "a secret with two sources is refused\n{stderr}"
    );

    // Pasted into a script it works, masked, but `validate` warns.
    let ws = Workspace::with_workflow(
        r#"
secrets:
  TOKEN: { env: MY_TOKEN }
jobs:
  a:
    steps:
      - run: echo "token=${{ secrets.TOKEN }}"
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).succeeds();
    assert!(
        output
            .stderr()
            .contains("warning: `secrets.TOKEN` is pasted into the step's text"),
        "{output}"
    );
    ws.coreflow()
        .env("MY_TOKEN", TOKEN)
        .args(["run", "wf.yaml"])
        .succeeds();
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert!(logs.stdout().contains("token=***"), "{logs}");
}
