//! Matrix fan-out: the jobs a run executes, each with its full name and its needs.
//!
//! A job with `matrix` becomes one job per combination of the axes' values, named
//! `job[a=1,b=x]` with keys in the order written. A job that needs a fanned-out job needs
//! every one of its combinations.

use indexmap::IndexMap;

use crate::spec::matrix::{RenderAxis, legs};
use crate::spec::model::Workflow;

/// One job of a run after fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    /// `build` or `report[format=csv]`.
    pub name: String,
    /// The job's key in the workflow.
    pub base: String,
    /// This combination's matrix values (empty without a matrix).
    pub matrix: IndexMap<String, String>,
    /// Indexes (into the plan) of the jobs this one needs.
    pub needs: Vec<usize>,
    /// The workflow this job runs (`workflow:`), if it calls one.
    pub calls: Option<String>,
    /// Whether it fans out over `for_each` items when it runs.
    pub for_each: bool,
}

/// Expands every job of `workflow`; the plan keeps declaration order. A matrix whose legs
/// cannot be found (a template axis that does not render to a JSON array) leaves the job as
/// one job without matrix values, which fails when its needs end ([`legs`] says why).
#[must_use]
pub fn expand(workflow: &Workflow, render: &RenderAxis<'_>) -> Vec<PlannedJob> {
    let mut plan: Vec<PlannedJob> = Vec::with_capacity(workflow.jobs.len());
    let mut by_base: IndexMap<&str, Vec<usize>> = IndexMap::with_capacity(workflow.jobs.len());
    for (base, job) in &workflow.jobs {
        let combos = legs(&job.matrix, render).unwrap_or_else(|_| vec![IndexMap::new()]);
        let indexes = by_base.entry(base.as_str()).or_default();
        for matrix in combos {
            indexes.push(plan.len());
            plan.push(PlannedJob {
                name: job_name(base, &matrix),
                base: base.clone(),
                matrix,
                needs: Vec::new(),
                calls: job.workflow.clone(),
                for_each: job.for_each.is_some(),
            });
        }
    }
    for planned in &mut plan {
        let job = &workflow.jobs[planned.base.as_str()];
        planned.needs = job
            .needs
            .iter()
            .filter_map(|need| by_base.get(need.as_str()))
            .flatten()
            .copied()
            .collect();
    }
    plan
}

/// `base` alone, or `base[k=v,…]`.
#[must_use]
pub fn job_name(base: &str, matrix: &IndexMap<String, String>) -> String {
    if matrix.is_empty() {
        return base.to_owned();
    }
    let pairs: Vec<String> = matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}[{}]", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::parse_str;
    use crate::spec::matrix::unknown_axes;

    #[test]
    fn matrix_fans_out_in_written_order() {
        let wf = parse_str(
            "wf.yaml",
            "jobs:\n  build:\n    matrix: { os: [linux, mac], py: ['3.11', '3.12'] }\n    steps: [{ run: x }]\n  all:\n    needs: [build]\n    steps: [{ run: x }]\n",
        )
        .unwrap()
        .workflow;
        let plan = expand(&wf, &unknown_axes);
        let names: Vec<&str> = plan.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "build[os=linux,py=3.11]",
                "build[os=linux,py=3.12]",
                "build[os=mac,py=3.11]",
                "build[os=mac,py=3.12]",
                "all"
            ]
        );
        assert_eq!(plan[4].needs, [0, 1, 2, 3]);
    }
}
