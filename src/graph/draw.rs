//! Drawing the job graph as text, Graphviz dot or Mermaid. Edges go from a job to the jobs
//! that need it (SPEC §7).

use std::fmt::Write as _;

use crate::graph::plan::PlannedJob;
use crate::spec::dag::{levels, topological_order};

/// The output formats of `coreflow graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

/// Draws `plan` (which must be acyclic) in `format`.
#[must_use]
pub fn draw(workflow: &str, plan: &[PlannedJob], format: Format) -> String {
    let needs: Vec<Vec<usize>> = plan.iter().map(|j| j.needs.clone()).collect();
    let order = topological_order(&needs).unwrap_or_else(|| (0..plan.len()).collect());
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
    for (job, list) in needs.iter().enumerate() {
        for &need in list {
            dependents[need].push(job);
        }
    }
    match format {
        Format::Text => text(workflow, plan, &needs, &order, &dependents),
        Format::Dot => dot(workflow, plan, &order, &dependents),
        Format::Mermaid => mermaid(plan, &order, &dependents),
    }
}

fn text(
    workflow: &str,
    plan: &[PlannedJob],
    needs: &[Vec<usize>],
    order: &[usize],
    dependents: &[Vec<usize>],
) -> String {
    let level = levels(needs, order);
    let stages = level.iter().max().map_or(0, |m| m + 1);
    let mut out = format!("{workflow}: {} jobs in {stages} stages\n", plan.len());
    for stage in 0..stages {
        let _ = writeln!(out, "\nstage {}", stage + 1);
        for &job in order.iter().filter(|&&j| level[j] == stage) {
            let _ = write!(out, "  {}", label(&plan[job]));
            if dependents[job].is_empty() {
                out.push('\n');
            } else {
                let names: Vec<&str> = dependents[job]
                    .iter()
                    .map(|&d| plan[d].name.as_str())
                    .collect();
                let _ = writeln!(out, " -> {}", names.join(", "));
            }
        }
    }
    out
}

/// A job as drawn: its name, whether it fans out over `for_each` items, and the workflow
/// it calls: `ingest (for each, calls ingest.yaml)`.
fn label(job: &PlannedJob) -> String {
    let notes: Vec<String> = [
        job.for_each.then(|| "for each".to_owned()),
        job.calls.as_ref().map(|called| format!("calls {called}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if notes.is_empty() {
        job.name.clone()
    } else {
        format!("{} ({})", job.name, notes.join(", "))
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot(workflow: &str, plan: &[PlannedJob], order: &[usize], dependents: &[Vec<usize>]) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
        quote(workflow)
    );
    for &job in order {
        let name = quote(&plan[job].name);
        if plan[job].calls.is_some() || plan[job].for_each {
            let _ = writeln!(out, "  {name} [label={}];", quote(&label(&plan[job])));
        } else {
            let _ = writeln!(out, "  {name};");
        }
    }
    for &job in order {
        for &dependent in &dependents[job] {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&plan[job].name),
                quote(&plan[dependent].name)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(plan: &[PlannedJob], order: &[usize], dependents: &[Vec<usize>]) -> String {
    let mut out = String::from("flowchart LR\n");
    for &job in order {
        let label = label(&plan[job]).replace('"', "#quot;");
        let _ = writeln!(out, "  j{job}[\"{label}\"]");
    }
    for &job in order {
        for &dependent in &dependents[job] {
            let _ = writeln!(out, "  j{job} --> j{dependent}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::plan::expand;
    use crate::spec::load::parse_str;
    use crate::spec::matrix::unknown_axes;

    fn diamond() -> Vec<PlannedJob> {
        let wf = parse_str(
            "wf.yaml",
            "jobs:\n  build: { steps: [{ run: x }] }\n  test: { needs: build, steps: [{ run: x }] }\n  lint: { needs: build, steps: [{ run: x }] }\n  package: { needs: [test, lint], steps: [{ run: x }] }\n",
        )
        .unwrap()
        .workflow;
        expand(&wf, &unknown_axes)
    }

    #[test]
    fn formats() {
        let plan = diamond();
        insta::assert_snapshot!(draw("ci", &plan, Format::Text), @r"
        ci: 4 jobs in 3 stages

        stage 1
          build -> test, lint

        stage 2
          test -> package
          lint -> package

        stage 3
          package
        ");
        insta::assert_snapshot!(draw("ci", &plan, Format::Mermaid), @r#"
        flowchart LR
          j0["build"]
          j1["test"]
          j2["lint"]
          j3["package"]
          j0 --> j1
          j0 --> j2
          j1 --> j3
          j2 --> j3
        "#);
        assert!(draw("ci", &plan, Format::Dot).contains("  \"build\" -> \"test\";\n"));
    }
}
