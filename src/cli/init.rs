//! `coreflow init [FILE] [--template NAME] [--force] [--vscode]`: a starter workflow that
//! editors complete at once.
//!
//! Beside the workflow goes `coreflow.schema.json`, the output of `coreflow schema`, and the
//! workflow's first line names it for the YAML language server (VS Code's YAML extension,
//! Neovim's yamlls, Helix, …): `# yaml-language-server: $schema=./coreflow.schema.json`. A
//! local file rather than the environment's folder or a URL, so that completion works
//! offline, for the version of CoreFlow that wrote it, and for whoever checks the folder
//! out (the environment's folder is state, usually ignored by version control). With
//! `--vscode`, `.vscode/settings.json` in the current folder maps the schema to the file
//! too (`yaml.schemas`); an existing settings file keeps everything else it holds.
//!
//! Nothing is written when anything would be refused: an existing workflow, or a schema
//! that differs from this version's, needs `--force` (exit 2); a settings file that is not
//! plain JSON is never rewritten. Files follow the umask, as every file a user asks for.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cli::args::{GlobalArgs, InitArgs, Template};
use crate::error::Error;
use crate::spec::template::shell_quote;

/// The schema's file name, beside the workflow.
const SCHEMA_FILE: &str = "coreflow.schema.json";

/// Where `--vscode` maps the schema, relative to the current folder.
const VSCODE_SETTINGS: &str = ".vscode/settings.json";

/// What becomes of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Replace,
    /// An existing file gains an entry (the VS Code settings).
    Update,
    /// The file already holds what would be written.
    Unchanged,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Replace => "replaced",
            Action::Update => "updated",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One file `init` writes, decided before anything is written.
#[derive(Debug)]
struct Planned {
    path: PathBuf,
    text: String,
    action: Action,
}

pub(super) fn run(global: &GlobalArgs, args: &InitArgs) -> Result<(), Error> {
    let plan = plan(args)?;
    for file in plan.iter().filter(|f| f.action != Action::Unchanged) {
        if let Some(parent) = file.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|err| super::output::write_error(parent, &err))?;
        }
        fs::write(&file.path, &file.text)
            .map_err(|err| super::output::write_error(&file.path, &err))?;
    }
    if global.json {
        let files: Vec<Value> = plan
            .iter()
            .map(|f| json!({ "path": f.path.display().to_string(), "action": f.action.verb() }))
            .collect();
        let value = json!({ "template": template_name(args.template), "files": files });
        return super::output::print(&super::output::json_text(&value));
    }
    if global.quiet {
        return Ok(());
    }
    let mut text = String::new();
    for file in &plan {
        let _ = writeln!(text, "{} {}", file.action.verb(), file.path.display());
    }
    let _ = writeln!(
        text,
        "next: coreflow run {}",
        shell_quote(&args.file.display().to_string()).into_owned()
    );
    super::output::print(&text)
}

/// Every file to write and what becomes of it, or the reason nothing may be written.
fn plan(args: &InitArgs) -> Result<Vec<Planned>, Error> {
    let workflow = &args.file;
    if workflow.is_dir() {
        return Err(Error::Usage(format!(
            "`{}` is a folder: name the workflow file to write, like `{}`",
            workflow.display(),
            workflow.join("workflow.yaml").display()
        )));
    }
    if workflow.file_name().is_some_and(|name| name == SCHEMA_FILE) {
        return Err(Error::Usage(format!(
            "`{}` is where the schema goes: name the workflow file something else",
            workflow.display()
        )));
    }
    let folder = workflow.parent().unwrap_or(Path::new(""));
    let schema_path = folder.join(SCHEMA_FILE);
    let workflow_text = workflow_text(args);
    let schema_text = super::schema::schema_text();
    let mut plan = vec![
        Planned {
            action: existing(workflow, &workflow_text, args.force, "workflow")?,
            text: workflow_text,
            path: workflow.clone(),
        },
        Planned {
            action: existing(&schema_path, &schema_text, args.force, "schema")?,
            text: schema_text,
            path: schema_path.clone(),
        },
    ];
    if args.vscode {
        plan.push(vscode_settings(&schema_path, workflow)?);
    }
    Ok(plan)
}

/// What writing `text` at `path` does; an existing, different file is refused without
/// `--force`.
fn existing(path: &Path, text: &str, force: bool, what: &str) -> Result<Action, Error> {
    match fs::read(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Action::Create),
        Ok(old) if old == text.as_bytes() => Ok(Action::Unchanged),
        Ok(_) | Err(_) if force => Ok(Action::Replace),
        Ok(_) => Err(Error::Usage(format!(
            "`{}` exists: pass --force to replace it with the {what} `coreflow init` writes",
            path.display()
        ))),
        Err(err) => Err(Error::Usage(format!(
            "cannot read `{}`: {err}",
            path.display()
        ))),
    }
}

/// The template with the schema's path and the file's name filled in.
fn workflow_text(args: &InitArgs) -> String {
    let template = match args.template {
        Template::Hello => include_str!("init/hello.yaml"),
        Template::Etl => include_str!("init/etl.yaml"),
        Template::Matrix => include_str!("init/matrix.yaml"),
    };
    template
        .replace("@SCHEMA@", &format!("./{SCHEMA_FILE}"))
        .replace("@FILE@", &shell_quote(&args.file.display().to_string()))
}

fn template_name(template: Template) -> &'static str {
    match template {
        Template::Hello => "hello",
        Template::Etl => "etl",
        Template::Matrix => "matrix",
    }
}

/// `.vscode/settings.json` with `yaml.schemas` mapping the schema to the workflow, keeping
/// every other setting. A file that is not plain JSON (VS Code allows comments) is not
/// rewritten: the message says what to add.
fn vscode_settings(schema: &Path, workflow: &Path) -> Result<Planned, Error> {
    let path = PathBuf::from(VSCODE_SETTINGS);
    let schema_key = format!("./{}", workspace_relative(schema));
    let pattern = workspace_relative(workflow);
    let by_hand =
        || format!("add to it by hand: \"yaml.schemas\": {{ \"{schema_key}\": [\"{pattern}\"] }}");
    let (mut settings, action) = match fs::read_to_string(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => (Map::new(), Action::Create),
        Err(err) => {
            return Err(Error::Usage(format!(
                "cannot read `{}`: {err}",
                path.display()
            )));
        }
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(settings)) => (settings, Action::Update),
            _ => {
                return Err(Error::Usage(format!(
                    "`{}` is not plain JSON (comments or trailing commas?), so it is left \
                     as it is; {}",
                    path.display(),
                    by_hand()
                )));
            }
        },
    };
    let before = Value::Object(settings.clone());
    let schemas = settings
        .entry("yaml.schemas")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(schemas) = schemas else {
        return Err(Error::Usage(format!(
            "`yaml.schemas` in `{}` is not an object; {}",
            path.display(),
            by_hand()
        )));
    };
    let entry = schemas
        .entry(schema_key.clone())
        .or_insert_with(|| Value::Array(Vec::new()));
    // One pattern may be written as a string: it becomes the first of a list.
    if let Value::String(one) = entry {
        *entry = Value::Array(vec![Value::String(std::mem::take(one))]);
    }
    let Value::Array(patterns) = entry else {
        return Err(Error::Usage(format!(
            "`yaml.schemas.{schema_key}` in `{}` is neither a pattern nor a list; {}",
            path.display(),
            by_hand()
        )));
    };
    if !patterns
        .iter()
        .any(|p| p.as_str() == Some(pattern.as_str()))
    {
        patterns.push(Value::String(pattern));
    }
    let settings = Value::Object(settings);
    let action = if action == Action::Update && settings == before {
        Action::Unchanged
    } else {
        action
    };
    let mut text = serde_json::to_string_pretty(&settings).expect("a JSON value serializes");
    text.push('\n');
    Ok(Planned { path, text, action })
}

/// A path as VS Code reads it in a workspace's settings: relative to the current folder,
/// with `/` between its parts; an absolute path outside the current folder stays absolute.
fn workspace_relative(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let relative = match (path.is_absolute(), &cwd) {
        (true, Some(cwd)) => path.strip_prefix(cwd).unwrap_or(path),
        _ => path,
    };
    let parts: Vec<String> = relative
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::RootDir => String::new(),
            other => other.as_os_str().to_string_lossy().into_owned(),
        })
        .collect();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::{Path, workspace_relative};

    #[test]
    fn paths_in_settings_are_relative_with_forward_slashes() {
        assert_eq!(
            workspace_relative(Path::new("workflow.yaml")),
            "workflow.yaml"
        );
        assert_eq!(
            workspace_relative(Path::new("./flows/etl.yaml")),
            "flows/etl.yaml"
        );
        let cwd = std::env::current_dir().expect("a current folder");
        assert_eq!(
            workspace_relative(&cwd.join("flows").join("etl.yaml")),
            "flows/etl.yaml"
        );
        assert_eq!(
            workspace_relative(Path::new("/elsewhere/etl.yaml")),
            "/elsewhere/etl.yaml"
        );
    }
}
