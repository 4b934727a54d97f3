//! Every `examples/*.yaml` is a valid workflow: `coreflow validate --deny-warnings` accepts it
//! (the examples show no script injection), and so does the JSON Schema that editors use
//! (`schemas/coreflow.schema.json`).
//!
//! The dev-dependencies have no YAML reader, so the YAML is read with CoreFlow's own
//! [`coreflow::spec::yaml::parse`] (which expands anchors and merge keys) and converted to
//! JSON here with the YAML 1.2 core-schema typing of [`Node::scalar`].

use std::path::PathBuf;

use coreflow::spec::yaml::{Node, NodeKind, Scalar};
use serde_json::Value;

use crate::support::{Coreflow, repo_root};

fn example_files() -> Vec<PathBuf> {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples found in {}", dir.display());
    files
}

/// The JSON reading of a YAML tree, as an editor's YAML plugin would hand it to the schema.
fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.as_text().unwrap_or_default().to_owned(), to_json(value)))
                .collect(),
        ),
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Scalar { text, .. } => match node.scalar() {
            Some(Scalar::Null) => Value::Null,
            Some(Scalar::Bool(value)) => Value::Bool(value),
            Some(Scalar::Int(value)) => Value::from(value),
            // JSON has no NaN or infinity; such a value can only be text to the schema.
            Some(Scalar::Float(value)) => serde_json::Number::from_f64(value)
                .map_or_else(|| Value::String(text.clone()), Value::Number),
            Some(Scalar::Str(value)) => Value::String(value.to_owned()),
            None => Value::String(text.clone()),
        },
    }
}

fn yaml_to_json(name: &str, source: &str) -> Value {
    let root = coreflow::spec::yaml::parse(source)
        .unwrap_or_else(|diag| panic!("{name}: invalid YAML: {diag:?}"))
        .unwrap_or_else(|| panic!("{name}: empty document"));
    to_json(&root)
}

fn schema_validator() -> jsonschema::Validator {
    let path = repo_root().join("schemas/coreflow.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the checked-in schema is JSON");
    jsonschema::validator_for(&schema).expect("the checked-in schema compiles")
}

/// The schema's complaints about `instance`, one line each.
fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|err| format!("{}: {err}", err.instance_path()))
        .collect()
}

#[test]
fn every_example_passes_validate() {
    for file in example_files() {
        let output = Coreflow::new()
            .args(["validate", "--deny-warnings"])
            .arg(&file)
            .succeeds();
        assert!(output.stdout().contains(": ok ("), "{output}");
        assert_eq!(output.stderr(), "", "{output}");
    }
}

#[test]
fn every_example_passes_the_json_schema() {
    let validator = schema_validator();
    for file in example_files() {
        let name = file.display().to_string();
        let source = std::fs::read_to_string(&file).expect("an example is UTF-8 text");
        let instance = yaml_to_json(&name, &source);
        let errors = schema_errors(&validator, &instance);
        assert!(
            errors.is_empty(),
            "{name} does not fit the JSON Schema:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn the_json_schema_refuses_a_wrong_workflow() {
    // Proves the test above can fail: each document breaks one rule the schema states.
    let validator = schema_validator();
    let wrong = [
        (
            "unknown job key",
            "jobs:\n  a:\n    neeeds: [b]\n    steps: [{ run: x }]\n",
        ),
        (
            "unknown top-level key",
            "jobz: {}\njobs:\n  a: { steps: [{ run: x }] }\n",
        ),
        ("no jobs", "name: x\n"),
        ("steps not a list", "jobs:\n  a:\n    steps: echo hi\n"),
        (
            "bad enum value",
            "jobs:\n  a:\n    run_if: sometimes\n    steps: [{ run: x }]\n",
        ),
        (
            "duration without unit",
            "jobs:\n  a:\n    timeout: soon\n    steps: [{ run: x }]\n",
        ),
    ];
    for (what, source) in wrong {
        let instance = yaml_to_json(what, source);
        assert!(
            !schema_errors(&validator, &instance).is_empty(),
            "the schema accepts a workflow with {what}:\n{source}"
        );
    }
}

#[test]
fn anchors_and_merge_keys_are_expanded_before_the_schema_sees_them() {
    let validator = schema_validator();
    let source = "\
defaults: &defaults
  timeout: 5m
jobs:
  a: &job
    steps: [{ run: x }]
  b:
    <<: [*job, *defaults]
    needs: [a]
";
    let instance = yaml_to_json("anchors", source);
    assert_eq!(instance["jobs"]["b"]["timeout"], "5m", "{instance:#}");
    assert_eq!(
        instance["jobs"]["b"]["steps"][0]["run"], "x",
        "{instance:#}"
    );
    assert_eq!(schema_errors(&validator, &instance), Vec::<String>::new());
}
