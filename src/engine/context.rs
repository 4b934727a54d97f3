//! What templates see: `params`, `needs`, `matrix`, `env`, `run`, `job`, `trigger`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use indexmap::IndexMap;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, Serde};
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

fn serde<T: Serialize>(value: &T) -> Value {
    Value::from(Serde(value))
}

/// The outputs of a fanned-out job (`for_each` items or matrix legs) made of its parts'
/// outputs, in order: each key a JSON array of the parts' values, `null` where one set none.
#[must_use]
pub fn fan_in(parts: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let keys: BTreeSet<&String> = parts.iter().flat_map(|out| out.keys()).collect();
    keys.into_iter()
        .map(|key| {
            let values: Vec<serde_json::Value> = parts
                .iter()
                .map(|out| {
                    out.get(key).map_or(serde_json::Value::Null, |v| {
                        serde_json::Value::from(v.as_str())
                    })
                })
                .collect();
            (key.clone(), serde_json::Value::from(values).to_string())
        })
        .collect()
}

/// A template map of `fields`.
#[must_use]
pub fn map<K: Into<Value>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect::<BTreeMap<Value, Value>>(),
    )
}

impl NeedView {
    /// The view as templates read it.
    #[must_use]
    pub fn value(&self) -> Value {
        let outputs = if self.result == "success" {
            serde(&self.outputs)
        } else {
            Value::from_object(Unsucceeded(self.outputs.clone()))
        };
        map([
            ("outputs", outputs),
            ("result", Value::from(self.result.as_str())),
        ])
    }
}

/// The outputs of a need that did not succeed: what it set, and the empty string for any
/// other key.
#[derive(Debug)]
struct Unsucceeded(BTreeMap<String, String>);

impl Object for Unsucceeded {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        Some(Value::from(self.0.get(key).map_or("", String::as_str)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
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
    /// `secrets.*`: read when the job starts (empty before), never serialized.
    #[serde(skip)]
    pub secrets: BTreeMap<String, String>,
    /// `steps.<id>.*`: the earlier steps of the attempt that carry an `id`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepView>,
    /// `each.*`: the item of a job made by `for_each`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub each: Option<EachView>,
}

/// `steps.<id>` in templates: what an earlier step of the attempt wrote to
/// `$COREFLOW_OUTPUT`, and how it ended (`success`, `failure` or `skipped`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepView {
    pub outputs: BTreeMap<String, String>,
    pub outcome: String,
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
    /// The context as a minijinja value. The outputs of a need that did not succeed read as
    /// the empty string where it set none (as GitHub Actions reads them).
    #[must_use]
    pub fn value(&self) -> Value {
        self.value_with(Vec::new())
    }

    /// The context's value with `extra` names beside its own (`if:`'s status functions).
    #[must_use]
    pub fn value_with(&self, extra: Vec<(&'static str, Value)>) -> Value {
        let needs = map(self
            .needs
            .iter()
            .map(|(name, view)| (name.as_str(), view.value())));
        let mut fields = vec![
            ("params", serde(&self.params)),
            ("needs", needs),
            ("matrix", serde(&self.matrix)),
            ("env", serde(&self.env)),
            ("run", serde(&self.run)),
            ("job", serde(&self.job)),
            ("trigger", serde(&self.trigger)),
        ];
        if let Some(each) = &self.each {
            fields.push(("each", serde(each)));
        }
        if !self.steps.is_empty() {
            fields.push(("steps", serde(&self.steps)));
        }
        if !self.secrets.is_empty() {
            fields.push(("secrets", serde(&self.secrets)));
        }
        fields.extend(extra);
        map(fields)
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
