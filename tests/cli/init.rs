//! `coreflow init`, `coreflow completions` and `coreflow man`: the commands that help a user
//! start, each generated from what the binary itself knows (its templates, its schema, its
//! clap definitions).
//!
//! Every template must pass `validate --deny-warnings` and run. Completion scripts are run
//! by the shells that are installed: bash always (Debian has it), zsh and fish when present,
//! each named in the test's output when absent. Man pages are rendered by `man -l` when
//! `man` is installed, and checked for their `.TH` title line in any case.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::engine_support::{Workspace, job, job_names};
use crate::support::{Coreflow, ENV_DIR};

/// The templates, with the jobs a run of each has.
const TEMPLATES: &[(&str, &[&str])] = &[
    ("hello", &["greet"]),
    ("etl", &["extract", "load"]),
    (
        "matrix",
        &[
            "test[os=debian,version=1]",
            "test[os=debian,version=2]",
            "test[os=alpine,version=1]",
            "test[os=alpine,version=2]",
            "report",
        ],
    ),
];

const SHELLS: &[&str] = &["bash", "zsh", "fish", "elvish", "powershell"];

const MODELINE: &str = "# yaml-language-server: $schema=./coreflow.schema.json\n";

/// Fails the test when `program` is not on the PATH: `scripts/test-deps.sh` installs the
/// shells and `man` these tests drive (a test never skips for a missing tool).
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "`{program}` is not installed: run scripts/test-deps.sh, which installs it"
    );
}

fn coreflow_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coreflow"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// ---- init ----------------------------------------------------------------------------

#[test]
fn init_writes_each_template_which_validates_without_warnings_and_runs() {
    for (template, jobs) in TEMPLATES {
        let ws = Workspace::new();
        let output = ws
            .coreflow()
            .args(["init", "wf.yaml", "--template", template])
            .succeeds();
        assert!(output.stdout().contains("created wf.yaml"), "{output}");
        let validated = ws
            .coreflow()
            .args(["validate", "--deny-warnings", "wf.yaml"])
            .succeeds();
        assert_eq!(validated.stderr(), "", "{template}: {validated}");
        ws.coreflow()
            .args(["run", "wf.yaml", "--progress", "plain"])
            .succeeds();
        let show = ws.show("last");
        assert_eq!(show["status"], "succeeded", "{template}: {show:#}");
        assert_eq!(job_names(&show), *jobs, "{template}");
    }
}

#[test]
fn init_templates_pass_their_outputs_on() {
    let ws = Workspace::new();
    ws.coreflow().args(["init", "--template", "etl"]).succeeds();
    ws.coreflow()
        .args([
            "run",
            "workflow.yaml",
            "-p",
            "rows=5",
            "--progress",
            "plain",
        ])
        .succeeds();
    let show = ws.show("last");
    assert_eq!(job(&show, "extract")["outputs"]["rows"], "5");
    assert_eq!(job(&show, "load")["outputs"]["loaded"], "5");

    let ws = Workspace::new();
    ws.coreflow()
        .args(["init", "--template", "matrix"])
        .succeeds();
    let run = ws
        .coreflow()
        .args(["run", "workflow.yaml", "--progress", "plain"])
        .succeeds();
    assert!(
        run.stdout().contains(
            r#"results: ["debian-1 passed","debian-2 passed","alpine-1 passed","alpine-2 passed"]"#
        ),
        "{run}"
    );
}

#[test]
fn init_writes_workflow_yaml_and_the_schema_its_first_line_names() {
    let output = Coreflow::new().arg("init").succeeds();
    let workflow = std::fs::read_to_string(output.path().join("workflow.yaml"))
        .expect("workflow.yaml is written");
    assert!(workflow.starts_with(MODELINE), "{workflow}");
    let schema = std::fs::read_to_string(output.path().join("coreflow.schema.json"))
        .expect("the schema is written beside it");
    let printed = Coreflow::new().arg("schema").succeeds();
    assert_eq!(
        schema,
        printed.stdout(),
        "the schema is `coreflow schema`'s"
    );
    assert_eq!(
        output.stdout(),
        "created workflow.yaml\ncreated coreflow.schema.json\nnext: coreflow run workflow.yaml\n"
    );
}

#[test]
fn init_in_a_subfolder_puts_the_schema_beside_the_workflow() {
    let ws = Workspace::new();
    ws.coreflow()
        .args(["init", "flows/nightly.yaml", "-t", "etl"])
        .succeeds();
    assert!(ws.read("flows/nightly.yaml").starts_with(MODELINE));
    assert!(ws.exists("flows/coreflow.schema.json"));
    assert!(!ws.exists("coreflow.schema.json"));
    // The usage lines name the file as it was given.
    assert!(
        ws.read("flows/nightly.yaml")
            .contains("coreflow run flows/nightly.yaml")
    );
    ws.coreflow()
        .args(["validate", "--deny-warnings", "flows/nightly.yaml"])
        .succeeds();
}

#[test]
fn init_refuses_to_replace_a_workflow_and_writes_nothing() {
    let output = Coreflow::new()
        .file("workflow.yaml", "jobs: {}\n")
        .arg("init")
        .fails(2);
    assert_eq!(
        output.stderr(),
        "error: `workflow.yaml` exists: pass --force to replace it with the workflow \
         `coreflow init` writes\n"
    );
    assert_eq!(output.stdout(), "");
    let dir = output.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("workflow.yaml")).expect("still there"),
        "jobs: {}\n"
    );
    assert!(
        !dir.join("coreflow.schema.json").exists(),
        "nothing is written when anything is refused"
    );
}

#[test]
fn init_force_replaces_the_workflow_and_an_older_schema() {
    let ws = Workspace::new();
    ws.file("workflow.yaml", "jobs: {}\n");
    ws.file("coreflow.schema.json", "{}\n");
    let refused = ws.coreflow().arg("init").fails(2);
    assert!(
        refused
            .stderr()
            .contains("`workflow.yaml` exists: pass --force"),
        "{refused}"
    );
    ws.file("workflow.yaml", "jobs: {}\n");
    let output = ws
        .coreflow()
        .args(["init", "--force", "--template", "matrix"])
        .succeeds();
    assert!(
        output.stdout().contains("replaced workflow.yaml"),
        "{output}"
    );
    assert!(
        output.stdout().contains("replaced coreflow.schema.json"),
        "{output}"
    );
    assert!(ws.read("workflow.yaml").contains("matrix:"));
    assert_ne!(ws.read("coreflow.schema.json"), "{}\n");
}

#[test]
fn init_refuses_a_schema_that_differs_but_keeps_an_identical_one() {
    let ws = Workspace::new();
    ws.coreflow().args(["init", "a.yaml"]).succeeds();
    // A second workflow in the same folder shares the schema.
    let second = ws.coreflow().args(["init", "b.yaml"]).succeeds();
    assert!(
        second.stdout().contains("unchanged coreflow.schema.json"),
        "{second}"
    );
    ws.file("coreflow.schema.json", "{}\n");
    let output = ws.coreflow().args(["init", "c.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("`coreflow.schema.json` exists: pass --force to replace it with the schema"),
        "{output}"
    );
    assert!(!ws.exists("c.yaml"));
}

#[test]
fn init_refuses_a_folder_as_the_workflow() {
    let output = Coreflow::new()
        .dir("flows")
        .args(["init", "flows"])
        .fails(2);
    assert!(output.stderr().contains("`flows` is a folder"), "{output}");
}

#[test]
fn init_an_unknown_template_is_a_usage_error_listing_the_templates() {
    let output = Coreflow::new()
        .args(["init", "--template", "nope"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("[possible values: hello, etl, matrix]"),
        "{output}"
    );
}

#[test]
fn init_vscode_maps_the_schema_and_keeps_other_settings() {
    let ws = Workspace::new();
    ws.coreflow().args(["init", "--vscode"]).succeeds();
    let settings: Value =
        serde_json::from_str(&ws.read(".vscode/settings.json")).expect("settings are JSON");
    assert_eq!(
        settings,
        serde_json::json!({ "yaml.schemas": { "./coreflow.schema.json": ["workflow.yaml"] } })
    );

    ws.file(
        ".vscode/settings.json",
        r#"{ "editor.tabSize": 2, "yaml.schemas": { "./coreflow.schema.json": "old.yaml" } }"#,
    );
    let output = ws
        .coreflow()
        .args(["init", "flows/etl.yaml", "-t", "etl", "--vscode"])
        .succeeds();
    assert!(
        output.stdout().contains("updated .vscode/settings.json"),
        "{output}"
    );
    ws.coreflow()
        .args(["init", "--vscode", "--force"])
        .succeeds();
    let settings: Value =
        serde_json::from_str(&ws.read(".vscode/settings.json")).expect("settings are JSON");
    assert_eq!(
        settings,
        serde_json::json!({
            "editor.tabSize": 2,
            "yaml.schemas": {
                "./coreflow.schema.json": ["old.yaml", "workflow.yaml"],
                "./flows/coreflow.schema.json": ["flows/etl.yaml"],
            }
        })
    );
    // Once mapped, the file is left alone.
    let again = ws.coreflow().args(["init", "--vscode"]).succeeds();
    assert!(
        again.stdout().contains("unchanged .vscode/settings.json"),
        "{again}"
    );
}

#[test]
fn init_vscode_leaves_settings_with_comments_alone_and_writes_nothing() {
    let settings = "{\n  // tabs\n  \"editor.tabSize\": 2,\n}\n";
    let output = Coreflow::new()
        .file(".vscode/settings.json", settings)
        .args(["init", "--vscode"])
        .fails(2);
    assert!(
        output.stderr().contains(
            r#"add to it by hand: "yaml.schemas": { "./coreflow.schema.json": ["workflow.yaml"] }"#
        ),
        "{output}"
    );
    let dir = output.path();
    assert_eq!(
        std::fs::read_to_string(dir.join(".vscode/settings.json")).expect("kept"),
        settings
    );
    assert!(!dir.join("workflow.yaml").exists());
}

#[test]
fn init_without_vscode_writes_no_settings() {
    let output = Coreflow::new().dir(".vscode").arg("init").succeeds();
    assert!(!output.path().join(".vscode/settings.json").exists());
}

#[test]
fn init_quiet_prints_nothing_and_json_lists_the_files() {
    let quiet = Coreflow::new().args(["init", "--quiet"]).succeeds();
    assert_eq!(quiet.stdout(), "");
    assert!(quiet.path().join("workflow.yaml").exists());

    let json = Coreflow::new()
        .args(["init", "--json", "-t", "etl", "--vscode"])
        .succeeds()
        .stdout_json();
    assert_eq!(
        json,
        serde_json::json!({
            "template": "etl",
            "files": [
                { "path": "workflow.yaml", "action": "created" },
                { "path": "coreflow.schema.json", "action": "created" },
                { "path": ".vscode/settings.json", "action": "created" },
            ]
        })
    );
}

#[test]
fn init_files_follow_the_umask() {
    let output = Coreflow::new()
        .args(["init", "flows/wf.yaml", "--vscode"])
        .umask(0o027)
        .succeeds();
    let dir = output.path();
    assert_eq!(mode(&dir.join("flows/wf.yaml")), 0o640);
    assert_eq!(mode(&dir.join("flows/coreflow.schema.json")), 0o640);
    assert_eq!(mode(&dir.join(".vscode/settings.json")), 0o640);
    assert_eq!(mode(&dir.join("flows")), 0o750);
}

// ---- completions -----------------------------------------------------------------------

#[test]
fn completions_print_a_script_for_every_shell() {
    for shell in SHELLS {
        let output = Coreflow::new().args(["completions", shell]).succeeds();
        assert_eq!(output.stderr(), "", "{shell}");
        assert!(
            output.stdout().len() > 1000 && output.stdout().contains("coreflow"),
            "{shell}: {output}"
        );
        // The commands come from the clap definitions, new ones too.
        for command in ["init", "completions", "man", "schedule"] {
            assert!(output.stdout().contains(command), "{shell} lacks {command}");
        }
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let output = Coreflow::new().args(["completions", "tcsh"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{output}"
    );
}

/// Writes `coreflow completions SHELL` into `dir` and returns its path.
fn completion_script(dir: &Path, shell: &str) -> PathBuf {
    let output = Coreflow::new().args(["completions", shell]).succeeds();
    let path = dir.join(format!("coreflow.{shell}"));
    std::fs::write(&path, output.stdout()).expect("the script can be written");
    path
}

#[test]
fn bash_accepts_the_completion_script() {
    let ws = Workspace::new();
    let script = completion_script(&ws.path(), "bash");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// What the bash completion offers for `words` (the last one being completed), run in the
/// workspace with `env` set. The first word is the binary's path.
fn bash_complete(
    ws: &Workspace,
    script: &Path,
    words: &[&str],
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut quoted = vec![format!("'{}'", coreflow_binary().display())];
    quoted.extend(words.iter().map(|w| format!("'{w}'")));
    let program = format!(
        r#"source '{}'
COMP_WORDS=({})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_coreflow_complete "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}" 2>/dev/null
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display(),
        quoted.join(" ")
    );
    let mut command = Command::new("bash");
    command
        .args(["--norc", "--noprofile", "-c", &program])
        .current_dir(ws.path())
        .env_remove("COREFLOW_ENV");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("bash runs");
    assert!(
        output.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_run_ids_where_a_run_is_expected() {
    let ws = Workspace::with_workflow("jobs:\n  a:\n    steps:\n      - run: 'true'\n");
    for _ in 0..2 {
        ws.coreflow()
            .args(["run", "wf.yaml", "--progress", "plain"])
            .succeeds();
    }
    let ids: Vec<String> = ws.runs().iter().map(|run| run["id"].to_string()).collect();
    let mut expected = ids.clone();
    expected.push("last".to_owned());
    let script = completion_script(&ws.path(), "bash");
    let env_location = ws.env_location();
    let env = env_location.to_str().expect("a UTF-8 environment");
    let with_env = [("COREFLOW_ENV", env)];
    for words in [
        &["show", ""][..],
        &["logs", ""],
        &["cancel", ""],
        &["retry", "-w", "2", ""],
        &["--color", "never", "show", ""],
    ] {
        assert_eq!(
            bash_complete(&ws, &script, words, &with_env),
            expected,
            "{words:?}"
        );
    }
    // --env on the command line wins over COREFLOW_ENV, also written `--env=…`.
    assert_eq!(
        bash_complete(&ws, &script, &["--env", env, "show", ""], &[]),
        expected
    );
    assert_eq!(
        bash_complete(&ws, &script, &["show", "--env", env, ""], &[]),
        expected
    );
    let joined = format!("--env={env}");
    assert_eq!(
        bash_complete(
            &ws,
            &script,
            &[&joined, "show", ""],
            &[("COREFLOW_ENV", "elsewhere")]
        ),
        expected
    );
    // The second argument of `logs` is a job, not a run; options stay options.
    let job = bash_complete(&ws, &script, &["logs", &ids[0], ""], &with_env);
    assert!(!job.contains(&"last".to_owned()), "{job:?}");
    let options = bash_complete(&ws, &script, &["show", "--j"], &with_env);
    assert_eq!(options, ["--json"]);
}

#[test]
fn sqlite_only_run_id_completion_creates_no_environment() {
    let ws = Workspace::new();
    let script = completion_script(&ws.path(), "bash");
    assert_eq!(
        bash_complete(&ws, &script, &["show", ""], &[]),
        ["last"],
        "no ./.coreflow: no runs"
    );
    assert!(
        !ws.exists(".coreflow"),
        "completing must not create an environment"
    );
    assert_eq!(
        bash_complete(&ws, &script, &["--env", "missing", "show", ""], &[]),
        ["last"]
    );
    assert!(!ws.exists("missing"));
}

#[test]
fn bash_completes_workflow_files_where_a_workflow_is_expected() {
    let ws = Workspace::new();
    ws.file("a.yaml", "jobs: {}\n")
        .file("b.yml", "jobs: {}\n")
        .file("notes.txt", "")
        .file("flows/c.yaml", "jobs: {}\n");
    let script = completion_script(&ws.path(), "bash");
    for words in [
        &["run", ""][..],
        &["validate", "a.yaml", ""],
        &["graph", ""],
        &["schedule", "preview", ""],
        &["run", "-p", "x=1", ""],
    ] {
        let mut offered = bash_complete(&ws, &script, words, &[]);
        offered.sort();
        assert_eq!(offered, ["a.yaml", "b.yml", "flows"], "{words:?}");
    }
    assert_eq!(
        bash_complete(&ws, &script, &["run", "flows/"], &[]),
        ["flows/c.yaml"]
    );
    // Commands and their options still come from clap's script.
    assert_eq!(bash_complete(&ws, &script, &["comp"], &[]), ["completions"]);
    let shells = bash_complete(&ws, &script, &["completions", ""], &[]);
    assert!(shells.contains(&"zsh".to_owned()), "{shells:?}");
}

#[test]
fn zsh_accepts_the_completion_script_and_calls_the_added_functions() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = completion_script(dir.path(), "zsh");
    let text = std::fs::read_to_string(&script).expect("written");
    assert!(text.starts_with("#compdef coreflow\n"));
    assert!(
        text.contains(":_coreflow_run_ids' \\"),
        "run arguments call it"
    );
    assert!(text.contains(":_coreflow_workflow_files' \\"));
    require("zsh");
    let checked = Command::new("zsh")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("zsh runs");
    assert!(
        checked.status.success(),
        "zsh -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn fish_completes_run_ids_and_workflow_files() {
    let ws = Workspace::with_workflow("jobs:\n  a:\n    steps:\n      - run: 'true'\n");
    let script = completion_script(&ws.path(), "fish");
    assert!(
        std::fs::read_to_string(&script)
            .expect("written")
            .contains("__fish_coreflow_run_ids")
    );
    require("fish");
    ws.coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    let id = ws.runs()[0]["id"].to_string();
    let complete = |line: &str| -> String {
        let output = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "source '{}'; complete -C '{line}'",
                script.display()
            ))
            .current_dir(ws.path())
            .env("COREFLOW_ENV", ws.env_location())
            .env(
                "PATH",
                std::env::join_paths(
                    std::iter::once(
                        coreflow_binary()
                            .parent()
                            .expect("the binary's folder")
                            .to_owned(),
                    )
                    .chain(std::env::split_paths(
                        &std::env::var_os("PATH").unwrap_or_default(),
                    )),
                )
                .expect("a PATH"),
            )
            .output()
            .expect("fish runs");
        assert!(
            output.status.success(),
            "fish: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // fish orders candidates its own way (it differs between versions): check the set.
    let runs = complete("coreflow show ");
    let lines: Vec<&str> = runs.lines().collect();
    assert!(
        lines.contains(&format!("{id}\twf succeeded").as_str()),
        "{runs}"
    );
    assert!(lines.contains(&"last\tthe newest run"), "{runs}");
    assert_eq!(
        complete("coreflow run "),
        "wf.yaml\n",
        "only workflow files and folders"
    );
}

// ---- man ---------------------------------------------------------------------------------

#[test]
fn man_writes_a_page_per_command_into_a_new_folder() {
    let output = Coreflow::new().args(["man", "share/man/man1"]).succeeds();
    let dir = output.path().join("share/man/man1");
    let listed: Vec<&str> = output.stdout().lines().collect();
    assert_eq!(
        listed.first(),
        Some(&"share/man/man1/coreflow.1"),
        "{output}"
    );
    for name in [
        "coreflow.1",
        "coreflow-run.1",
        "coreflow-init.1",
        "coreflow-completions.1",
        "coreflow-man.1",
        "coreflow-queue-add.1",
        "coreflow-schedule-preview.1",
    ] {
        let path = dir.join(name);
        assert!(
            listed.contains(&format!("share/man/man1/{name}").as_str()),
            "{name} listed"
        );
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let title = name.trim_end_matches(".1");
        assert!(
            roff.lines()
                .any(|line| line.starts_with(&format!(".TH {title} 1 "))),
            "{name}: {roff}"
        );
    }
    let written = std::fs::read_dir(&dir).expect("the folder exists").count();
    assert_eq!(written, listed.len(), "every page written is listed");
    assert!(
        !dir.join("coreflow-sql-step.1").exists(),
        "hidden commands have none"
    );
    assert!(!dir.join("coreflow-help.1").exists());
}

#[test]
fn man_pages_render_with_man() {
    let output = Coreflow::new().args(["man", "pages"]).succeeds();
    require("man");
    for name in ["coreflow.1", "coreflow-run.1", "coreflow-env-copy.1"] {
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(output.path().join("pages").join(name))
            .env("MANWIDTH", "100")
            .output()
            .expect("man runs");
        let stdout = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success(), "{name}: {stdout}");
        assert_eq!(String::from_utf8_lossy(&rendered.stderr), "", "{name}");
        assert!(stdout.contains("NAME"), "{name}: {stdout}");
    }
    let run = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(output.path().join("pages/coreflow-run.1"))
        .env("MANWIDTH", "100")
        .output()
        .expect("man runs");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("--workers"), "{text}");
    assert!(text.contains("COREFLOW_ENV"), "{text}");
}

#[test]
fn man_without_a_folder_prints_the_top_page() {
    let output = Coreflow::new().arg("man").succeeds();
    assert!(
        output
            .stdout()
            .lines()
            .any(|line| line.starts_with(".TH coreflow 1 ")),
        "{output}"
    );
    assert!(
        output.stdout().contains("coreflow\\-run(1)"),
        "lists its commands"
    );
}

#[test]
fn man_quiet_prints_nothing_and_json_lists_the_pages() {
    let quiet = Coreflow::new().args(["man", "-q", "out"]).succeeds();
    assert_eq!(quiet.stdout(), "");
    assert!(quiet.path().join("out/coreflow.1").exists());

    let json = Coreflow::new()
        .args(["man", "--json", "out"])
        .succeeds()
        .stdout_json();
    let pages = json["pages"].as_array().expect("a list of pages");
    assert_eq!(pages[0], "out/coreflow.1");
    assert!(pages.iter().any(|p| p == "out/coreflow-man.1"), "{json:#}");
}

#[test]
fn man_pages_follow_the_umask() {
    let output = Coreflow::new()
        .args(["man", "man1"])
        .umask(0o027)
        .succeeds();
    assert_eq!(mode(&output.path().join("man1")), 0o750);
    assert_eq!(mode(&output.path().join("man1/coreflow.1")), 0o640);
}

#[test]
fn sqlite_only_nothing_here_touches_an_environment() {
    // init, completions and man need no environment: none is created.
    for args in [&["init"][..], &["completions", "bash"], &["man", "m"]] {
        let output = Coreflow::new().args(args).succeeds();
        assert!(
            !output.path().join(ENV_DIR).exists(),
            "{args:?} opened an environment"
        );
    }
}
