//! Script injection: values a workflow's author does not control, pasted into a `run:` script.
//!
//! `run: echo "${{ params.name }}"` renders the value into the script before the shell reads
//! it, so a value such as `x"; rm -rf ~; "` runs `rm`. A `string` parameter (whoever starts
//! the run chooses it), an output of a needed job (whatever its steps wrote) and trigger data
//! (file names, other runs) are such values; `matrix.*` (literals of the file), `run.*`,
//! `job.*`, `env.*`, `needs.*.result` and typed parameters are not. The validator warns where
//! one reaches a script unquoted; the fix is to read it from the environment, or to pass it
//! through the `quote` filter ([`QUOTE`]) where the script is a POSIX shell's.

use crate::spec::env_key;
use crate::spec::model::{ParamType, Workflow};
use crate::spec::template::QUOTE;

/// Where a value comes from that the author does not control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `string` parameter: whoever starts the run chooses it.
    Param,
    /// An output of a needed job: whatever its steps wrote.
    Output,
    /// Data of the event that created the run.
    Trigger,
}

/// A reference to a value the author does not control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub source: Source,
    /// The reference up to the value it names: `params.date`, `needs.a.outputs.rows`.
    pub value: String,
    /// The environment variable that holds the value (a parameter's `COREFLOW_PARAM_*`) or
    /// the one the help suggests setting; `None` when the reference reads several values.
    pub variable: Option<String>,
}

/// What a `run:` script is written in, as far as pasting text into it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `sh` (the default), `bash`, or a custom command running a POSIX shell: [`QUOTE`]
    /// makes a value one safe word.
    Shell,
    /// `python3`: a pasted value is code, and shell quoting does not make it safe.
    Python,
    /// Another interpreter (`perl {0}`): only the environment is safe.
    Other,
}

impl Language {
    /// The language of a step's script, given its `shell:`.
    #[must_use]
    pub fn of(shell: Option<&str>) -> Language {
        let Some(shell) = shell else {
            return Language::Shell;
        };
        let program = shell.split_whitespace().next().unwrap_or_default();
        let program = program.rsplit('/').next().unwrap_or(program);
        match program {
            "sh" | "bash" | "dash" | "zsh" | "ksh" => Language::Shell,
            _ if program.starts_with("python") => Language::Python,
            _ => Language::Other,
        }
    }
}

/// Environment variables a suggested name must not replace.
const RESERVED: &[&str] = &[
    "CDPATH", "ENV", "HOME", "IFS", "LANG", "OLDPWD", "PATH", "PWD", "SHELL", "TERM", "TMPDIR",
    "USER",
];

/// The untrusted value `reference` (a dotted path a template reads) names, if it names one.
#[must_use]
pub fn classify(wf: &Workflow, reference: &str) -> Option<Untrusted> {
    let parts: Vec<&str> = reference.split('.').collect();
    let value = |n: usize| parts[..n.min(parts.len())].join(".");
    match parts.as_slice() {
        ["params"] => wf
            .params
            .values()
            .any(|p| p.kind == ParamType::String)
            .then(|| Untrusted {
                source: Source::Param,
                value: value(1),
                variable: None,
            }),
        ["params", name, ..] => {
            let param = wf.params.get(*name)?;
            (param.kind == ParamType::String).then(|| Untrusted {
                source: Source::Param,
                value: value(2),
                variable: Some(format!("COREFLOW_PARAM_{}", env_key(name))),
            })
        }
        ["needs" | "steps"] | ["needs" | "steps", _] | ["needs" | "steps", _, "outputs"] => {
            Some(Untrusted {
                source: Source::Output,
                value: value(3),
                variable: None,
            })
        }
        ["needs" | "steps", job, "outputs", key, ..] => {
            let mut variable = env_key(key);
            let risky = variable.starts_with(|c: char| c.is_ascii_digit())
                || variable.starts_with("COREFLOW_")
                || RESERVED.contains(&variable.as_str());
            if risky {
                variable = format!("{}_{variable}", env_key(job));
            }
            Some(Untrusted {
                source: Source::Output,
                value: value(4),
                variable: Some(variable),
            })
        }
        ["trigger"] => Some(Untrusted {
            source: Source::Trigger,
            value: value(1),
            variable: None,
        }),
        ["trigger", rest @ ..] => Some(Untrusted {
            source: Source::Trigger,
            value: reference.to_owned(),
            variable: Some(format!("TRIGGER_{}", env_key(&rest.join("_")))),
        }),
        _ => None,
    }
}

impl Untrusted {
    /// The warning: which value reaches the script, and what it is.
    #[must_use]
    pub fn message(&self) -> String {
        let what = match self.source {
            Source::Param if self.variable.is_none() => "the parameters",
            Source::Param => "a string parameter",
            Source::Output => "output of another job",
            Source::Trigger => "data of the trigger",
        };
        format!(
            "script injection: `{}`, {what}, is pasted into the script",
            self.value
        )
    }

    /// Who chooses the value, for under the caret.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self.source {
            Source::Param => "whoever starts the run chooses this text",
            Source::Output => "that job's steps write this text",
            Source::Trigger => "the event that started the run chooses this text",
        }
    }

    /// How to give the script the value safely.
    #[must_use]
    pub fn help(&self, language: Language) -> String {
        let mut help = match &self.variable {
            Some(variable) => {
                let read = match language {
                    Language::Shell => format!("use \"${variable}\""),
                    Language::Python => format!("read os.environ[\"{variable}\"]"),
                    Language::Other => format!("read the environment variable `{variable}`"),
                };
                match self.source {
                    Source::Param => format!("{read} instead"),
                    Source::Output | Source::Trigger => format!(
                        "set `env: {{ {variable}: \"${{{{ {} }}}}\" }}` on the step and {read} instead",
                        self.value
                    ),
                }
            }
            None if self.source == Source::Param => {
                "read each parameter from its `COREFLOW_PARAM_<NAME>` variable instead".to_owned()
            }
            None => {
                "pass the value in a step `env:` entry and read that variable instead".to_owned()
            }
        };
        if language == Language::Shell {
            help.push_str(&format!(
                ", or the `{QUOTE}` filter: `${{{{ {} | {QUOTE} }}}}`",
                self.value
            ));
        }
        help
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::parse_str;

    fn workflow() -> Workflow {
        parse_str(
            "wf.yaml",
            "params:\n  date: {}\n  name: { type: string }\n  n: { type: int }\n  x: { type: float }\n  b: { type: bool }\n  src: { type: datablock }\njobs:\n  a:\n    steps: [{ run: 'true' }]\n",
        )
        .expect("valid")
        .workflow
    }

    fn classified(reference: &str) -> Option<(Source, String, Option<String>)> {
        classify(&workflow(), reference).map(|u| (u.source, u.value, u.variable))
    }

    #[test]
    fn string_parameters_are_untrusted_typed_ones_are_not() {
        assert_eq!(
            classified("params.date"),
            Some((
                Source::Param,
                "params.date".into(),
                Some("COREFLOW_PARAM_DATE".into())
            ))
        );
        assert_eq!(
            classified("params.name.upper").map(|c| c.1),
            Some("params.name".into())
        );
        assert_eq!(classified("params").map(|c| c.2), Some(None));
        for trusted in [
            "params.n",
            "params.x",
            "params.b",
            "params.src",
            "params.unknown",
        ] {
            assert_eq!(classified(trusted), None, "{trusted}");
        }
    }

    #[test]
    fn outputs_and_trigger_data_are_untrusted() {
        assert_eq!(
            classified("needs.a.outputs.rows"),
            Some((
                Source::Output,
                "needs.a.outputs.rows".into(),
                Some("ROWS".into())
            ))
        );
        assert_eq!(
            classified("needs.build.outputs.path.split").map(|c| (c.1, c.2)),
            Some(("needs.build.outputs.path".into(), Some("BUILD_PATH".into())))
        );
        assert_eq!(classified("needs.a.outputs").map(|c| c.2), Some(None));
        assert_eq!(
            classified("steps.unit.outputs.passed").map(|c| (c.0, c.2)),
            Some((Source::Output, Some("PASSED".into())))
        );
        assert_eq!(
            classified("trigger.file.path").map(|c| (c.0, c.2)),
            Some((Source::Trigger, Some("TRIGGER_FILE_PATH".into())))
        );
    }

    #[test]
    fn author_controlled_values_are_trusted() {
        for trusted in [
            "needs.a.result",
            "steps.unit.outcome",
            "matrix.os",
            "run.id",
            "job.name",
            "env.HOME",
            "x",
        ] {
            assert_eq!(classified(trusted), None, "{trusted}");
        }
    }

    #[test]
    fn the_help_fits_the_language() {
        let date = classify(&workflow(), "params.date").unwrap();
        assert_eq!(
            date.help(Language::Shell),
            "use \"$COREFLOW_PARAM_DATE\" instead, or the `quote` filter: `${{ params.date | quote }}`"
        );
        assert_eq!(
            date.help(Language::Python),
            "read os.environ[\"COREFLOW_PARAM_DATE\"] instead"
        );
        let rows = classify(&workflow(), "needs.a.outputs.rows").unwrap();
        assert_eq!(
            rows.help(Language::Shell),
            "set `env: { ROWS: \"${{ needs.a.outputs.rows }}\" }` on the step and use \"$ROWS\" instead, or the `quote` filter: `${{ needs.a.outputs.rows | quote }}`"
        );
    }

    #[test]
    fn languages_follow_the_shell() {
        assert_eq!(Language::of(None), Language::Shell);
        assert_eq!(Language::of(Some("bash")), Language::Shell);
        assert_eq!(Language::of(Some("/bin/zsh -e {0}")), Language::Shell);
        assert_eq!(Language::of(Some("python3")), Language::Python);
        assert_eq!(Language::of(Some("perl {0}")), Language::Other);
    }
}
