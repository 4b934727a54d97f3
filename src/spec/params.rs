//! Parameter values: typed parsing, `-p` overrides and precedence (SPEC §7).
//!
//! Precedence, lowest first: the workflow's default → the trigger's `params` → `-p NAME=V` →
//! the job's own `params:` → `-p JOB.NAME=V`. Workflow-level values are resolved once per run
//! by [`resolve`]; [`for_job`] layers a job's own values on top.

use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

use crate::spec::diag::suggest;
use crate::spec::model::{Param, ParamType, Workflow};

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A DataBlock reference: a name and an optional fixed version.
    #[serde(serialize_with = "serialize_block")]
    DataBlock {
        name: String,
        version: Option<u64>,
    },
}

fn serialize_block<S: serde::Serializer>(
    name: &str,
    version: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match version {
        Some(v) => serializer.serialize_str(&format!("{name}@{v}")),
        None => serializer.serialize_str(name),
    }
}

impl fmt::Display for ParamValue {
    /// The text a step sees in `COREFLOW_PARAM_*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::String(s) => f.write_str(s),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::DataBlock {
                name,
                version: Some(v),
            } => write!(f, "{name}@{v}"),
            ParamValue::DataBlock {
                name,
                version: None,
            } => f.write_str(name),
        }
    }
}

/// Why a parameter value was refused. Messages are complete sentences fragments for exit 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter `{name}`{}", hint(.suggestion))]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown job `{job}` in `-p {job}.{name}`{}", hint(.suggestion))]
    UnknownJob {
        job: String,
        name: String,
        suggestion: Option<String>,
    },
    #[error("parameter `{name}` expects {expected}, got `{value}`")]
    WrongType {
        name: String,
        expected: &'static str,
        value: String,
    },
    #[error("parameter `{name}` must be one of {choices}, got `{value}`")]
    NotAChoice {
        name: String,
        value: String,
        choices: String,
    },
    #[error("missing required parameter `{name}` (give it with `-p {name}=VALUE`)")]
    Missing { name: String },
    #[error("`{0}` is not NAME=VALUE")]
    Malformed(String),
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

/// What a DataBlock name may hold, as error messages say it.
pub const BLOCK_NAME_RULE: &str = "use letters, digits, `_`, `-` and `.`";

/// Whether `name` can name a DataBlock: what a `datablock` parameter reads as a name without
/// a version (so `NAME@VERSION` parses back to it).
#[must_use]
pub fn is_valid_block_name(name: &str) -> bool {
    matches!(
        parse_value(ParamType::Datablock, name),
        Ok(ParamValue::DataBlock { name: ref parsed, version: None }) if parsed == name
    )
}

/// Parses `text` as a value of `kind`.
///
/// # Errors
/// What was expected, for the caller to wrap with the parameter's name.
pub fn parse_value(kind: ParamType, text: &str) -> Result<ParamValue, &'static str> {
    match kind {
        ParamType::String => Ok(ParamValue::String(text.to_owned())),
        ParamType::Int => text
            .trim()
            .parse()
            .map(ParamValue::Int)
            .map_err(|_| "an integer"),
        ParamType::Float => match text.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(ParamValue::Float(x)),
            _ => Err("a number"),
        },
        ParamType::Bool => match text.trim() {
            "true" | "True" | "TRUE" => Ok(ParamValue::Bool(true)),
            "false" | "False" | "FALSE" => Ok(ParamValue::Bool(false)),
            _ => Err("`true` or `false`"),
        },
        ParamType::Datablock => parse_block_ref(text).ok_or("a DataBlock name or `name@version`"),
    }
}

fn parse_block_ref(text: &str) -> Option<ParamValue> {
    let text = text.trim();
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => (name, Some(version.parse::<u64>().ok().filter(|v| *v > 0)?)),
        None => (text, None),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then(|| ParamValue::DataBlock {
        name: name.to_owned(),
        version,
    })
}

/// Checks one value against a parameter's type and choices.
///
/// # Errors
/// A wrong type or a value outside `choices`.
pub fn check_value(name: &str, param: &Param, text: &str) -> Result<ParamValue, ParamError> {
    let value = parse_value(param.kind, text).map_err(|expected| ParamError::WrongType {
        name: name.to_owned(),
        expected,
        value: text.to_owned(),
    })?;
    if let Some(choices) = &param.choices {
        let fits = choices
            .iter()
            .any(|choice| parse_value(param.kind, choice.as_str()).is_ok_and(|c| c == value));
        if !fits {
            return Err(ParamError::NotAChoice {
                name: name.to_owned(),
                value: text.to_owned(),
                choices: choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(value)
}

/// `-p` overrides split into workflow-level and job-level ones.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub workflow: Vec<(String, String)>,
    /// `(job, name, value)` from `-p JOB.NAME=VALUE`.
    pub jobs: Vec<(String, String, String)>,
}

impl Overrides {
    /// Splits `NAME=VALUE` and `JOB.NAME=VALUE` arguments.
    ///
    /// # Errors
    /// An argument without `=`.
    pub fn parse(args: &[String]) -> Result<Self, ParamError> {
        let mut out = Overrides::default();
        for arg in args {
            let Some((key, value)) = arg.split_once('=') else {
                return Err(ParamError::Malformed(arg.clone()));
            };
            match key.split_once('.') {
                Some((job, name)) => {
                    out.jobs
                        .push((job.to_owned(), name.to_owned(), value.to_owned()))
                }
                None => out.workflow.push((key.to_owned(), value.to_owned())),
            }
        }
        Ok(out)
    }
}

/// The effective workflow-level parameters of a run.
pub type Values = IndexMap<String, ParamValue>;

/// Resolves workflow-level parameters: defaults, then trigger params, then `-p`.
///
/// # Errors
/// Every unknown name, wrong type, value outside `choices`, missing required parameter and
/// unknown job in `-p JOB.NAME`, all at once.
pub fn resolve(
    workflow: &Workflow,
    trigger: &IndexMap<String, String>,
    overrides: &Overrides,
) -> Result<Values, Vec<ParamError>> {
    let mut errors = Vec::new();
    let mut texts: IndexMap<&str, &str> = IndexMap::new();
    for (name, param) in &workflow.params {
        if let Some(default) = &param.default {
            texts.insert(name, default.as_str());
        }
    }
    let layers = trigger.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let cli = overrides
        .workflow
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (name, value) in layers.chain(cli) {
        if workflow.params.contains_key(name) {
            texts.insert(name, value);
        } else {
            errors.push(unknown(name, workflow));
        }
    }
    for (job, name, _) in &overrides.jobs {
        if !workflow.jobs.contains_key(job.as_str()) {
            errors.push(ParamError::UnknownJob {
                job: job.clone(),
                name: name.clone(),
                suggestion: suggest(job, workflow.jobs.keys().map(String::as_str)),
            });
        } else if !workflow.params.contains_key(name.as_str()) {
            errors.push(unknown(name, workflow));
        }
    }
    let mut values = Values::new();
    for (name, param) in &workflow.params {
        match texts.get(name.as_str()) {
            // An optional DataBlock left empty names no block, as when it is not given (a
            // run records it so, and reads it back so).
            Some(text)
                if text.is_empty() && param.kind == ParamType::Datablock && !param.required =>
            {
                values.insert(name.clone(), ParamValue::String(String::new()));
            }
            Some(text) => match check_value(name, param, text) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(err) => errors.push(err),
            },
            None if param.required => errors.push(ParamError::Missing { name: name.clone() }),
            // An optional parameter without a default is the empty string (or false, 0).
            None => {
                let empty = match param.kind {
                    ParamType::Int => ParamValue::Int(0),
                    ParamType::Float => ParamValue::Float(0.0),
                    ParamType::Bool => ParamValue::Bool(false),
                    ParamType::String | ParamType::Datablock => ParamValue::String(String::new()),
                };
                values.insert(name.clone(), empty);
            }
        }
    }
    // Job-level `-p JOB.NAME=V` values must fit their parameter too, before anything starts.
    for (job, name, value) in &overrides.jobs {
        if let Some(param) = workflow.params.get(name.as_str())
            && workflow.jobs.contains_key(job.as_str())
            && let Err(err) = check_value(name, param, value)
        {
            errors.push(err);
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

fn unknown(name: &str, workflow: &Workflow) -> ParamError {
    ParamError::Unknown {
        name: name.to_owned(),
        suggestion: suggest(name, workflow.params.keys().map(String::as_str)),
    }
}

/// A job's effective parameters: the run's values, the job's `params:`, then `-p JOB.NAME=V`.
///
/// `rendered_job_params` are the job's own `params:` values, already rendered.
///
/// # Errors
/// A job-level value that does not fit its parameter.
pub fn for_job(
    workflow: &Workflow,
    job: &str,
    run_values: &Values,
    rendered_job_params: &IndexMap<String, String>,
    overrides: &Overrides,
) -> Result<Values, ParamError> {
    let mut values = run_values.clone();
    let cli = overrides
        .jobs
        .iter()
        .filter(|(j, _, _)| j == job)
        .map(|(_, name, value)| (name.as_str(), value.as_str()));
    let own = rendered_job_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (name, text) in own.chain(cli) {
        let Some(param) = workflow.params.get(name) else {
            return Err(unknown(name, workflow));
        };
        values.insert(name.to_owned(), check_value(name, param, text)?);
    }
    Ok(values)
}

/// The texts (`NAME=V`) of parameters kept as a JSON object — a waiting request's, a run's,
/// an API body's: strings as they are, other values as JSON writes them.
#[must_use]
pub fn param_texts(params: &serde_json::Value) -> Vec<String> {
    params
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::parse_str;

    fn workflow() -> Workflow {
        parse_str(
            "wf.yaml",
            "params:\n  date: { required: true }\n  region: { choices: [eu, us], default: eu }\n  rows: { type: int, default: 1000 }\n  dry: { type: bool, default: false }\n  src: { type: datablock, default: raw@2 }\njobs:\n  a:\n    params: { rows: 5 }\n    steps: [{ run: 'true' }]\n",
        )
        .expect("valid")
        .workflow
    }

    fn args(items: &[&str]) -> Overrides {
        Overrides::parse(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn overrides_win_over_defaults() {
        let wf = workflow();
        let values = resolve(&wf, &IndexMap::new(), &args(&["date=2026-01-01", "rows=7"])).unwrap();
        assert_eq!(values["rows"], ParamValue::Int(7));
        assert_eq!(values["region"], ParamValue::String("eu".into()));
        assert_eq!(values["src"].to_string(), "raw@2");
        let job = for_job(
            &wf,
            "a",
            &values,
            &IndexMap::from([("rows".into(), "5".into())]),
            &args(&["a.rows=9"]),
        )
        .unwrap();
        assert_eq!(job["rows"], ParamValue::Int(9));
    }

    #[test]
    fn an_optional_datablock_left_empty_reads_back_as_recorded() {
        let wf = parse_str(
            "wf.yaml",
            "params:\n  src: { type: datablock }\n  need: { type: datablock, required: true }\njobs:\n  a:\n    steps: [{ run: 'true' }]\n",
        )
        .expect("valid")
        .workflow;
        // Not given, it is empty; recorded so (`src=`), it reads back the same.
        let unset = resolve(&wf, &IndexMap::new(), &args(&["need=raw"])).unwrap();
        assert_eq!(unset["src"], ParamValue::String(String::new()));
        let recorded = resolve(&wf, &IndexMap::new(), &args(&["need=raw", "src="])).unwrap();
        assert_eq!(recorded["src"], unset["src"]);
        // A required one may not be empty.
        assert!(resolve(&wf, &IndexMap::new(), &args(&["need="])).is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let wf = workflow();
        let errors = resolve(
            &wf,
            &IndexMap::new(),
            &args(&["regoin=eu", "rows=many", "region=asia", "b.rows=1"]),
        )
        .unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "unknown parameter `regoin`: did you mean `region`?",
                "unknown job `b` in `-p b.rows`",
                "missing required parameter `date` (give it with `-p date=VALUE`)",
                "parameter `region` must be one of `eu`, `us`, got `asia`",
                "parameter `rows` expects an integer, got `many`",
            ]
        );
    }
}
