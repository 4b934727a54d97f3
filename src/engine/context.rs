//! What templates see: `params`, `needs`, `matrix`, `env`, `run`, `job`, `trigger`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use indexmap::IndexMap;
use minijinja::Value;
use serde::Serialize;

use crate::engine::JobFailure;
use crate::spec::params::Values;
use crate::spec::template;

/// A finished need as templates read it: `needs.<job>.outputs.*` and `needs.<job>.result`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NeedView {
    pub outputs: BTreeMap<String, String>,
    pub result: String,
}

/// The values a job's templates are rendered against.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    pub params: Values,
    pub needs: BTreeMap<String, NeedView>,
    pub matrix: IndexMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub run: RunView,
    pub job: JobView,
    pub trigger: serde_json::Value,
    /// `each.*`: the item of a job made by `for_each`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub each: Option<EachView>,
}

/// `each.*` in templates: a `for_each` item and its position, from 0.
#[derive(Debug, Clone, Serialize)]
pub struct EachView {
    pub value: serde_json::Value,
    pub index: usize,
}

impl EachView {
    /// The view of a job's recorded item (`{"index": 0, "value": …}`); `None` for a job
    /// that is not a `for_each` item.
    #[must_use]
    pub fn of(item: &serde_json::Value) -> Option<EachView> {
        let index = usize::try_from(item.get("index")?.as_u64()?).ok()?;
        Some(EachView {
            value: item.get("value").cloned().unwrap_or_default(),
            index,
        })
    }
}

/// `run.*` in templates.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: i64,
    pub workflow: String,
}

/// `job.*` in templates.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub name: String,
}

impl TemplateContext {
    /// The context as a minijinja value.
    #[must_use]
    pub fn value(&self) -> Value {
        Value::from(minijinja::value::Serde(self))
    }

    /// Renders `text`, labelling a failure with `what` (e.g. "`run` of step `step-2`") and
    /// the job. `value` holds this context's minijinja value once a text needed it.
    ///
    /// # Errors
    /// A message for the job's failure reason. A reference that does not resolve is named
    /// with what exists in its place: "cannot render `run` of step `step-1` in job `b`:
    /// `needs.a.outputs.nosuch`: job `a` set no output `nosuch` (it set: path, rows)".
    pub fn render(&self, value: &LazyValue, text: &str, what: &str) -> Result<String, JobFailure> {
        if !template::has_template(text) {
            return Ok(text.to_owned());
        }
        let value = value.0.get_or_init(|| self.value());
        template::render(text, value).map_err(|e| {
            JobFailure(format!(
                "cannot render {what} in job `{}`: {e}",
                self.job.name
            ))
        })
    }
}

/// A context's minijinja value, made when the first template needs it: converting the
/// whole context costs more than most jobs' templates, and most texts have none.
#[derive(Debug, Default)]
pub struct LazyValue(OnceLock<Value>);
