//! `for_each`: what a fanned-out job's items are once its needs have ended, the item jobs
//! made of them (`job[0]`, `job[1]`, …), and what the job's result and outputs are once
//! they have all ended. Shared by the in-process coordinator and the store-driven path.

use std::collections::BTreeMap;

use crate::engine::JobFailure;
use crate::engine::context::LazyValue;
use crate::engine::decide::{NeedInfo, RunInputs, context};
use crate::scheduler::resources::Request;
use crate::spec::model::{ForEach, MAX_FOR_EACH_ITEMS, Workflow};
use crate::state::JobState;
use crate::store::NewJob;

/// The reason a `for_each` job over an empty list is skipped.
pub const NO_ITEMS: &str = "for_each: no items";

/// The items of `for_each` job `name` (its name in the workflow: `base`), whose needs have
/// ended as `needs`.
///
/// # Errors
/// A template that does not render, or not to a JSON array; more than 10,000 items.
pub fn items(
    inputs: &RunInputs<'_>,
    name: &str,
    base: &str,
    needs: &[NeedInfo<'_>],
) -> Result<Vec<serde_json::Value>, JobFailure> {
    let items = match &inputs.workflow.jobs[base].for_each {
        None => return Ok(Vec::new()),
        Some(ForEach::Items(items)) => items.clone(),
        Some(ForEach::Template(text)) => {
            let context = context(inputs, name, base, &indexmap::IndexMap::new(), needs)?;
            let rendered = context.render(&LazyValue::default(), text.as_str(), "`for_each`")?;
            match serde_json::from_str::<serde_json::Value>(rendered.trim()) {
                Ok(serde_json::Value::Array(items)) => items,
                _ => {
                    let mut shown: String = rendered.chars().take(80).collect();
                    if shown.len() < rendered.len() {
                        shown.push('…');
                    }
                    return Err(JobFailure(format!(
                        "`for_each` rendered `{shown}`, which is not a JSON array"
                    )));
                }
            }
        }
    };
    if items.len() > MAX_FOR_EACH_ITEMS {
        return Err(JobFailure(format!(
            "for_each: {} items; at most {MAX_FOR_EACH_ITEMS} are allowed",
            items.len()
        )));
    }
    Ok(items)
}

/// The `for_each` job that item jobs are made for.
pub struct Parent<'a> {
    pub name: &'a str,
    pub base: &'a str,
    pub queue: &'a str,
    pub priority: i64,
    /// Full names of the jobs it needs: its items need them too.
    pub needs: Vec<String>,
}

/// The item jobs of `parent`, one per item, `pending`.
#[must_use]
pub fn item_jobs(
    workflow: &Workflow,
    parent: &Parent<'_>,
    items: &[serde_json::Value],
) -> Vec<NewJob> {
    let def = &workflow.jobs[parent.base];
    let retry = def.retry.as_ref().or(workflow.defaults.retry.as_ref());
    let runs_on: Vec<String> = def
        .runs_on
        .as_ref()
        .or(workflow.defaults.runs_on.as_ref())
        .map(|labels| labels.iter().map(|l| l.as_str().to_owned()).collect())
        .unwrap_or_default();
    items
        .iter()
        .enumerate()
        .map(|(index, value)| NewJob {
            name: format!("{}[{index}]", parent.name),
            base_name: parent.base.to_owned(),
            matrix: serde_json::Value::Null,
            queue: parent.queue.to_owned(),
            priority: parent.priority,
            metadata: serde_json::json!({}),
            needs: parent.needs.clone(),
            max_attempts: retry.map_or(1, |r| r.max_attempts.max(1)),
            state: JobState::Pending,
            runs_on: runs_on.clone(),
            item: serde_json::json!({ "index": index, "value": value }),
            continue_on_error: def.continue_on_error,
            request: Request::of(workflow, parent.base),
        })
        .collect()
}

/// How a `for_each` job ends with its items.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub state: JobState,
    pub reason: Option<String>,
    /// Each output key any item set, as a JSON array of the items' values in item order
    /// (`null` where an item set none).
    pub outputs: BTreeMap<String, String>,
}

/// The end of a `for_each` job whose items ended as `items` (state and outputs, in item
/// order): succeeded only when every item did; cancelled when one was cancelled; else
/// failed, counting the items that did not succeed.
#[must_use]
pub fn conclusion(items: &[(JobState, &BTreeMap<String, String>)]) -> Ended {
    let outputs: Vec<&BTreeMap<String, String>> = items.iter().map(|(_, out)| *out).collect();
    let outputs = crate::engine::context::fan_in(&outputs);
    let unsucceeded = items
        .iter()
        .filter(|(state, _)| *state != JobState::Succeeded)
        .count();
    let (state, reason) = if unsucceeded == 0 {
        (JobState::Succeeded, None)
    } else if items.iter().any(|(state, _)| *state == JobState::Cancelled) {
        (
            JobState::Cancelled,
            Some("an item was cancelled".to_owned()),
        )
    } else {
        (
            JobState::Failed,
            Some(format!(
                "{unsucceeded} of {} items did not succeed",
                items.len()
            )),
        )
    };
    Ended {
        state,
        reason,
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::conclusion;
    use crate::state::JobState;

    #[test]
    fn outputs_become_arrays_in_item_order_with_null_where_unset() {
        let a = BTreeMap::from([("n".to_owned(), "1".to_owned())]);
        let b = BTreeMap::new();
        let c = BTreeMap::from([
            ("n".to_owned(), "3".to_owned()),
            ("x".to_owned(), "y".to_owned()),
        ]);
        let ended = conclusion(&[
            (JobState::Succeeded, &a),
            (JobState::Succeeded, &b),
            (JobState::Succeeded, &c),
        ]);
        assert_eq!(ended.state, JobState::Succeeded);
        assert_eq!(ended.outputs["n"], r#"["1",null,"3"]"#);
        assert_eq!(ended.outputs["x"], r#"[null,null,"y"]"#);
    }

    #[test]
    fn one_failed_item_fails_the_job_and_a_cancelled_one_cancels_it() {
        let none = BTreeMap::new();
        let failed = conclusion(&[(JobState::Succeeded, &none), (JobState::Failed, &none)]);
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(
            failed.reason.as_deref(),
            Some("1 of 2 items did not succeed")
        );
        let cancelled = conclusion(&[(JobState::Cancelled, &none), (JobState::Failed, &none)]);
        assert_eq!(cancelled.state, JobState::Cancelled);
    }
}
