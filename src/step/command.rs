//! What a step runs: the shell or argv, the working directory, the environment, the
//! timeout and grace, and how that becomes a program and arguments for the OS.
//!
//! A `run:` script is run by a [`Shell`]: `sh` and `bash` get it through `-c`, `python3` and
//! `"CMD {0}"` templates get the path of a temporary file holding it. Spawning is
//! `process.rs`'s business.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tempfile::TempPath;

use super::error::Error;

/// The default delay between SIGTERM and SIGKILL (`cancel_grace`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The interpreter of a `run:` script (the `shell:` key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shell {
    /// `sh -e -c SCRIPT` (the default).
    #[default]
    Sh,
    /// `bash --noprofile --norc -eo pipefail -c SCRIPT`.
    Bash,
    /// `python3 FILE`, the script written to a temporary file.
    Python3,
    /// A command template such as `perl {0}`: split on whitespace, each `{0}` replaced by
    /// the path of a temporary file holding the script.
    Custom(String),
}

/// Why a `shell:` value is not a [`Shell`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// Neither a known shell nor a template.
    #[error(
        "unknown shell `{0}`: expected `sh`, `bash`, `python3` or a command with `{{0}}` \
         for the script file, like `perl {{0}}`"
    )]
    Unknown(String),
    /// A template whose first word is not a command.
    #[error("shell `{0}` must start with a command, like `perl {{0}}`")]
    NoCommand(String),
}

impl FromStr for Shell {
    type Err = ShellError;

    fn from_str(text: &str) -> Result<Self, ShellError> {
        match text.trim() {
            "sh" => Ok(Self::Sh),
            "bash" => Ok(Self::Bash),
            "python3" => Ok(Self::Python3),
            template if template.contains("{0}") => match template.split_whitespace().next() {
                Some(command) if !command.contains("{0}") => Ok(Self::Custom(template.to_owned())),
                _ => Err(ShellError::NoCommand(text.to_owned())),
            },
            _ => Err(ShellError::Unknown(text.to_owned())),
        }
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sh => f.write_str("sh"),
            Self::Bash => f.write_str("bash"),
            Self::Python3 => f.write_str("python3"),
            Self::Custom(template) => f.write_str(template),
        }
    }
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A `run:` script and its shell.
    Script {
        /// The interpreter.
        shell: Shell,
        /// The script text.
        script: String,
    },
    /// A `command:` argv: the program and its arguments, without a shell.
    Argv(Vec<String>),
}

/// Everything needed to run one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommand {
    /// What to run.
    pub program: Program,
    /// The working directory; it must exist.
    pub cwd: PathBuf,
    /// Variables added on top of the inherited environment, later entries winning.
    pub env: Vec<(String, String)>,
    /// Stop the step after this long (counted from its start).
    pub timeout: Option<Duration>,
    /// The delay between SIGTERM and SIGKILL on timeout or graceful cancel.
    pub grace: Duration,
    /// Exported as `COREFLOW_KILL_TOKEN`, so that every process the step starts can be
    /// found again, even one that left the process group. It should be unique to the step
    /// or job; an empty token disables that search.
    pub kill_token: String,
}

impl StepCommand {
    /// A command with no extra environment, no timeout and the default grace.
    #[must_use]
    pub fn new(program: Program, cwd: impl Into<PathBuf>, kill_token: impl Into<String>) -> Self {
        Self {
            program,
            cwd: cwd.into(),
            env: Vec::new(),
            timeout: None,
            grace: DEFAULT_GRACE,
            kill_token: kill_token.into(),
        }
    }
}

/// A program resolved for spawning.
pub(super) struct Launch {
    pub(super) program: OsString,
    pub(super) args: Vec<OsString>,
    /// The program as the user wrote it, for messages.
    pub(super) display: String,
    /// The temporary script file, removed on drop.
    pub(super) script: Option<TempPath>,
}

impl Launch {
    /// Turns the step's program into what to spawn, writing the script file if needed.
    pub(super) fn prepare(cmd: &StepCommand) -> Result<Self, Error> {
        let (program, args, script): (String, Vec<OsString>, Option<TempPath>) = match &cmd.program
        {
            Program::Argv(argv) => {
                let (program, rest) = argv.split_first().ok_or(Error::EmptyCommand)?;
                (
                    program.clone(),
                    rest.iter().map(OsString::from).collect(),
                    None,
                )
            }
            Program::Script {
                shell: Shell::Sh,
                script,
            } => match simple_command(script) {
                Some((program, rest)) => (
                    program.to_owned(),
                    rest.into_iter().map(OsString::from).collect(),
                    None,
                ),
                None => (
                    "sh".to_owned(),
                    ["-e", "-c", script].map(OsString::from).to_vec(),
                    None,
                ),
            },
            Program::Script {
                shell: Shell::Bash,
                script,
            } => {
                let args = ["--noprofile", "--norc", "-eo", "pipefail", "-c", script];
                ("bash".to_owned(), args.map(OsString::from).to_vec(), None)
            }
            Program::Script {
                shell: Shell::Python3,
                script,
            } => {
                let file = write_script(script, ".py", &Shell::Python3)?;
                (
                    "python3".to_owned(),
                    vec![file.as_os_str().to_owned()],
                    Some(file),
                )
            }
            Program::Script {
                shell: shell @ Shell::Custom(template),
                script,
            } => {
                let mut words = template.split_whitespace();
                let program = words.next().ok_or(Error::EmptyCommand)?.to_owned();
                let file = write_script(script, "", shell)?;
                let args = words.map(|word| substitute(word, &file)).collect();
                (program, args, Some(file))
            }
        };
        if program.is_empty() {
            return Err(Error::EmptyCommand);
        }
        Ok(Self {
            program: resolve_program(&program, cmd),
            args,
            display: program,
            script,
        })
    }

    /// Names the failure precisely: a bad working directory makes the spawn fail with the
    /// same `ENOENT` as a missing program.
    pub(super) fn spawn_error(&self, cmd: &StepCommand, error: io::Error) -> Error {
        match fs::metadata(&cmd.cwd) {
            Err(error) => Error::WorkingDirectory {
                path: cmd.cwd.clone(),
                error,
            },
            Ok(meta) if !meta.is_dir() => Error::WorkingDirectory {
                path: cmd.cwd.clone(),
                error: io::ErrorKind::NotADirectory.into(),
            },
            Ok(_) => Error::Spawn {
                program: self.display.clone(),
                error,
            },
        }
    }
}

/// Shell builtins and reserved words: a command naming one needs the shell. `true` and
/// `false` are missing on purpose, as in GNU make's list: their programs behave the same.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "[[", "{", "}", "alias", "bg", "break", "case", "cd", "command",
    "continue", "declare", "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit",
    "export", "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill",
    "let", "local", "printf", "pwd", "read", "readonly", "return", "select", "set", "shift",
    "source", "test", "then", "time", "times", "trap", "type", "typeset", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
];

/// The program and arguments of an `sh` script that is one simple command, which runs the
/// same without a shell — GNU make's fast path for recipe lines, which saves a shell's start
/// (about a tenth of a millisecond) per step. Only plain words qualify: letters, digits and
/// `-_./,:+@%`, separated by blanks on one line, the first not a shell builtin or reserved
/// word. Anything the shell would interpret (quotes, `$`, globs, `~`, redirections, pipes,
/// `;`, `&`, `=`, comments, several lines) keeps the shell.
fn simple_command(script: &str) -> Option<(&str, Vec<&str>)> {
    let script = script.trim_matches([' ', '\t', '\n']);
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./,:+@% \t".contains(c);
    if !script.chars().all(plain) {
        return None;
    }
    let mut words = script.split([' ', '\t']).filter(|word| !word.is_empty());
    let program = words.next()?;
    if SHELL_WORDS.contains(&program) {
        return None;
    }
    Some((program, words.collect()))
}

/// Writes a script to a new temporary file, closed when this returns.
fn write_script(script: &str, suffix: &str, shell: &Shell) -> Result<TempPath, Error> {
    let error = |error| Error::Script {
        shell: shell.to_string(),
        error,
    };
    let mut file = tempfile::Builder::new()
        .prefix("coreflow-step-")
        .suffix(suffix)
        .tempfile()
        .map_err(error)?;
    file.write_all(script.as_bytes()).map_err(error)?;
    file.flush().map_err(error)?;
    Ok(file.into_temp_path())
}

/// A template word with every `{0}` replaced by `path` (which need not be UTF-8).
fn substitute(word: &str, path: &Path) -> OsString {
    let mut out = OsString::new();
    let mut parts = word.split("{0}");
    if let Some(first) = parts.next() {
        out.push(first);
    }
    for part in parts {
        out.push(path.as_os_str());
        out.push(part);
    }
    out
}

/// The program to hand to the OS.
///
/// When the step sets its own `PATH`, a bare program name is looked up in that `PATH` here:
/// the standard library would otherwise fall back from `posix_spawn` to `fork` + `exec`,
/// which is much slower from a large parent (see PERFORMANCE.md). Not found, the name is
/// left as is and the spawn reports it.
fn resolve_program(program: &str, cmd: &StepCommand) -> OsString {
    if program.contains('/') {
        return program.into();
    }
    let Some((_, path)) = cmd.env.iter().rev().find(|(key, _)| key == "PATH") else {
        return program.into();
    };
    for dir in path.split(':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(dir)
        };
        let dir = if dir.is_relative() {
            cmd.cwd.join(dir)
        } else {
            dir.to_owned()
        };
        let candidate = dir.join(program);
        let executable = fs::metadata(&candidate)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
        if executable {
            return candidate.into_os_string();
        }
    }
    program.into()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::{
        Launch, Program, Shell, ShellError, StepCommand, resolve_program, simple_command,
        substitute,
    };
    use crate::step::error::Error;

    fn command(program: Program) -> StepCommand {
        StepCommand::new(program, "/", "token")
    }

    fn script(shell: Shell) -> StepCommand {
        command(Program::Script {
            shell,
            script: "echo hi".into(),
        })
    }

    #[test]
    fn parses_shells() {
        assert_eq!("sh".parse(), Ok(Shell::Sh));
        assert_eq!(" bash ".parse(), Ok(Shell::Bash));
        assert_eq!("python3".parse(), Ok(Shell::Python3));
        assert_eq!("perl {0}".parse(), Ok(Shell::Custom("perl {0}".into())));
        assert_eq!(
            "bash -x {0}".parse::<Shell>().map(|s| s.to_string()),
            Ok("bash -x {0}".into())
        );
        assert_eq!(
            "zsh".parse::<Shell>(),
            Err(ShellError::Unknown("zsh".into()))
        );
        assert_eq!("".parse::<Shell>(), Err(ShellError::Unknown(String::new())));
        assert_eq!(
            "{0}".parse::<Shell>(),
            Err(ShellError::NoCommand("{0}".into()))
        );
        assert_eq!(
            " {0} x".parse::<Shell>(),
            Err(ShellError::NoCommand(" {0} x".into()))
        );
        let message = "fish".parse::<Shell>().expect_err("unknown").to_string();
        assert_eq!(
            message,
            "unknown shell `fish`: expected `sh`, `bash`, `python3` or a command with `{0}` \
             for the script file, like `perl {0}`"
        );
    }

    #[test]
    fn simple_sh_scripts_run_without_the_shell() {
        assert_eq!(simple_command("true"), Some(("true", vec![])));
        assert_eq!(
            simple_command("  python3 -u tools/build.py --jobs 4\n"),
            Some(("python3", vec!["-u", "tools/build.py", "--jobs", "4"]))
        );
        assert_eq!(
            simple_command("curl -sS http://host:8080/a,b@c+d%20"),
            Some(("curl", vec!["-sS", "http://host:8080/a,b@c+d%20"]))
        );
        for shell_needed in [
            "",
            "  \n",
            "echo hi",
            "cd build",
            "exit 3",
            ": nothing",
            "true; false",
            "a && b",
            "a | b",
            "a > out",
            "a < in",
            "a &",
            "ls *.txt",
            "ls file?",
            "ls [ab]",
            "ls ~",
            "echo $HOME",
            "echo `date`",
            "echo \"x\"",
            "echo 'x'",
            "a\\ b",
            "FOO=bar env",
            "make --jobs=4",
            "one\ntwo",
            "a # comment",
            "if true",
            "{ a",
            "! false",
            "ls (x)",
            "é",
        ] {
            assert_eq!(simple_command(shell_needed), None, "{shell_needed:?}");
        }
        let launch = Launch::prepare(&command(Program::Script {
            shell: Shell::Sh,
            script: "sleep 0.5\n".into(),
        }))
        .expect("prepared");
        assert_eq!(launch.program, "sleep");
        assert_eq!(launch.args, ["0.5"]);
        assert_eq!(launch.display, "sleep");
    }

    #[test]
    fn shells_become_argv() {
        let launch = Launch::prepare(&script(Shell::Sh)).expect("prepared");
        assert_eq!(launch.program, "sh");
        assert_eq!(launch.args, ["-e", "-c", "echo hi"]);
        assert!(launch.script.is_none());

        let launch = Launch::prepare(&script(Shell::Bash)).expect("prepared");
        assert_eq!(launch.program, "bash");
        assert_eq!(
            launch.args,
            ["--noprofile", "--norc", "-eo", "pipefail", "-c", "echo hi"]
        );

        let launch = Launch::prepare(&script(Shell::Python3)).expect("prepared");
        assert_eq!(launch.program, "python3");
        let file = launch.script.as_ref().expect("a script file");
        assert_eq!(launch.args, [file.as_os_str()]);
        assert_eq!(fs::read_to_string(file).expect("readable"), "echo hi");
        assert_eq!(file.extension(), Some("py".as_ref()));
        let path = file.to_path_buf();
        drop(launch);
        assert!(!path.exists(), "the script file goes with the launch");

        let launch = Launch::prepare(&script(Shell::Custom("perl  -w {0} --file={0}x".into())))
            .expect("prepared");
        assert_eq!(launch.program, "perl");
        let file = launch
            .script
            .as_ref()
            .expect("a script file")
            .as_os_str()
            .to_owned();
        let mut with_prefix = std::ffi::OsString::from("--file=");
        with_prefix.push(&file);
        with_prefix.push("x");
        assert_eq!(
            launch.args,
            [std::ffi::OsString::from("-w"), file, with_prefix]
        );

        let launch = Launch::prepare(&command(Program::Argv(vec!["ls".into(), "-l".into()])))
            .expect("prepared");
        assert_eq!(
            (launch.program.as_os_str(), launch.args.as_slice()),
            ("ls".as_ref(), &["-l".into()][..])
        );
    }

    #[test]
    fn empty_commands_are_refused() {
        let err = Launch::prepare(&command(Program::Argv(Vec::new()))).err();
        assert!(matches!(err, Some(Error::EmptyCommand)));
        let err = Launch::prepare(&command(Program::Argv(vec![String::new()]))).err();
        assert!(matches!(err, Some(Error::EmptyCommand)));
        // A template that bypassed `FromStr`.
        let err = Launch::prepare(&script(Shell::Custom("  ".into()))).err();
        assert!(matches!(err, Some(Error::EmptyCommand)));
    }

    #[test]
    fn substitutes_the_script_path() {
        let path = Path::new("/tmp/s p");
        assert_eq!(substitute("{0}", path), "/tmp/s p");
        assert_eq!(substitute("a{0}b{0}", path), "a/tmp/s pb/tmp/s p");
        assert_eq!(substitute("plain", path), "plain");
    }

    #[test]
    fn a_step_path_is_searched_here() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tool = dir.path().join("my-tool");
        fs::write(&tool, "#!/bin/sh\n").expect("write");
        let plain = dir.path().join("plain-file");
        fs::write(&plain, "").expect("write");
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut cmd = command(Program::Argv(vec!["my-tool".into()]));
        assert_eq!(
            resolve_program("my-tool", &cmd),
            "my-tool",
            "no PATH of its own"
        );
        let path = format!("/nonexistent::{}", dir.path().display());
        cmd.env.push(("PATH".into(), path));
        assert_eq!(resolve_program("my-tool", &cmd), tool.as_os_str());
        assert_eq!(resolve_program("./my-tool", &cmd), "./my-tool");
        assert_eq!(
            resolve_program("plain-file", &cmd),
            "plain-file",
            "not executable"
        );
        assert_eq!(resolve_program("nothing-here", &cmd), "nothing-here");
        // Relative entries are relative to the step's directory.
        cmd.cwd = dir.path().parent().expect("parent").to_owned();
        let name = dir
            .path()
            .file_name()
            .expect("name")
            .to_str()
            .expect("utf-8");
        cmd.env.push(("PATH".into(), name.to_owned()));
        assert_eq!(
            resolve_program("my-tool", &cmd),
            cmd.cwd.join(name).join("my-tool")
        );
    }
}
