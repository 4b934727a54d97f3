//! `coreflow schema`: the JSON Schema of the workflow format, which must match the checked-in
//! `schemas/coreflow.schema.json` byte for byte (SPEC §2: editors validate against that file).

use crate::support::Coreflow;

const CHECKED_IN: &str = "schemas/coreflow.schema.json";

#[test]
fn schema_prints_a_valid_json_schema() {
    let output = Coreflow::new().args(["schema"]).succeeds();
    assert_eq!(output.stderr(), "");
    assert!(
        output.stdout().ends_with("}\n"),
        "one document and a final newline"
    );
    let schema = output.stdout_json();
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["jobs"].is_object(), "{schema:#}");
    assert!(
        schema["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|k| k == "jobs")),
        "`jobs` is required"
    );
    if let Err(err) = jsonschema::meta::validate(&schema) {
        panic!("`coreflow schema` is not a valid JSON Schema: {err}");
    }
}

#[test]
fn schema_matches_the_checked_in_file() {
    crate::support::assert_generated_file(CHECKED_IN, &["schema"]);
}

#[test]
fn schema_with_global_options_prints_the_same_document() {
    let plain = Coreflow::new().args(["schema"]).succeeds();
    let json = Coreflow::new().args(["schema", "--json"]).succeeds();
    assert_eq!(plain.stdout(), json.stdout());
}
