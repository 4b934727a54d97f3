//! Structural checking of a YAML tree against the workflow's JSON Schema.
//!
//! The schema is generated from the model types ([`crate::spec::model`]), so walking the tree
//! against it finds every unknown key, wrong type, bad enum value and missing key in one pass —
//! all at once, each with a position — before serde builds the typed model. Only the subset
//! of JSON Schema that schemars emits for our types is understood.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::Value;

use crate::spec::diag::{Diagnostic, Pos, Suggester, list_names, shown};
use crate::spec::model::{json_schema, parse_duration};
use crate::spec::yaml::{Node, NodeKind, Scalar};

/// One step of the path from the root to a node, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where a node is: the index of the map entry or list item taken at each step from the
/// root. Unlike a path of keys, it leads back to the node in constant time per step.
pub type NodePath = Vec<usize>;

/// The generated schema, built once.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// What the structural check found: diagnostics, and where the offending nodes are.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    /// The nodes that do not fit; pruning them lets the semantic checks still run.
    pub bad: Vec<NodePath>,
}

impl Report {
    fn push(&mut self, diagnostic: Diagnostic, place: &Place<'_>) {
        self.diagnostics.push(diagnostic);
        self.bad.push(place.at.clone());
    }

    fn extend(&mut self, other: Report) {
        self.diagnostics.extend(other.diagnostics);
        self.bad.extend(other.bad);
    }

    fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// The walk's place in the tree: the path for messages and the indexes for pruning.
#[derive(Default)]
struct Place<'n> {
    path: Vec<Seg<'n>>,
    at: NodePath,
}

impl<'n> Place<'n> {
    fn enter(&mut self, seg: Seg<'n>, index: usize) {
        self.path.push(seg);
        self.at.push(index);
    }

    fn leave(&mut self) {
        self.path.pop();
        self.at.pop();
    }
}

/// Checks `root` against the workflow schema.
#[must_use]
pub fn check_workflow(root: &Node) -> Report {
    let schema = schema();
    let walker = Walker {
        root: schema,
        suggester: Suggester::default(),
    };
    let mut report = Report::default();
    walker.check(root, schema, &mut Place::default(), &mut report);
    report
}

/// The child of `node` at `index`: a map entry's value or a list item.
fn child(node: &Node, index: usize) -> Option<&Node> {
    match &node.kind {
        NodeKind::Map(entries) => entries.get(index).map(|(_, value)| value),
        NodeKind::Seq(items) => items.get(index),
        NodeKind::Scalar { .. } => None,
    }
}

fn child_mut(node: &mut Node, index: usize) -> Option<&mut Node> {
    match &mut node.kind {
        NodeKind::Map(entries) => entries.get_mut(index).map(|(_, value)| value),
        NodeKind::Seq(items) => items.get_mut(index),
        NodeKind::Scalar { .. } => None,
    }
}

/// The positions of the maps or lists that hold the `bad` nodes: semantic checks of a
/// pruned tree say nothing there, since what they would miss was already reported.
#[must_use]
pub fn parents_of(root: &Node, bad: &[NodePath]) -> HashSet<Pos> {
    bad.iter()
        .filter_map(|at| {
            let (_, parent) = at.split_last()?;
            parent
                .iter()
                .try_fold(root, |node, &index| child(node, index))
                .map(|node| node.pos)
        })
        .collect()
}

/// `root` without the `bad` nodes (map entries and list items dropped).
#[must_use]
pub fn prune(mut pruned: Node, bad: &[NodePath]) -> Node {
    for at in bad {
        let found = at
            .iter()
            .try_fold(&mut pruned, |node, &index| child_mut(node, index));
        if let Some(node) = found {
            *node = Node {
                kind: NodeKind::Scalar {
                    text: PRUNED.to_owned(),
                    plain: false,
                },
                ..*node
            };
        }
    }
    drop_pruned(&mut pruned);
    pruned
}

const PRUNED: &str = "\0coreflow-pruned";

fn is_pruned(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Scalar { text, plain: false } if text == PRUNED)
}

fn drop_pruned(node: &mut Node) {
    match &mut node.kind {
        NodeKind::Map(entries) => {
            entries.retain(|(_, v)| !is_pruned(v));
            for (_, v) in entries {
                drop_pruned(v);
            }
        }
        NodeKind::Seq(items) => {
            items.retain(|v| !is_pruned(v));
            for v in items {
                drop_pruned(v);
            }
        }
        NodeKind::Scalar { .. } => {}
    }
}

/// Describes the place a path names, for messages: "job `build`", "step 2 of job `build`".
/// Names are cut to a bounded length ([`shown`]).
#[must_use]
pub fn describe(path: &[Seg<'_>]) -> String {
    use Seg::{Index, Key};
    match path {
        [] => "the workflow".to_owned(),
        [Key("jobs"), Key(job)] => format!("job `{}`", shown(job)),
        [Key("jobs"), Key(job), Key("steps"), Index(i)] => {
            format!("step {} of job `{}`", i + 1, shown(job))
        }
        [Key("jobs"), Key(job), Key("steps"), Index(i), rest @ ..] => {
            format!(
                "`{}` of step {} of job `{}`",
                dotted(rest),
                i + 1,
                shown(job)
            )
        }
        [Key("params"), Key(param)] => format!("parameter `{}`", shown(param)),
        [Key("triggers"), Index(i), rest @ ..] if !rest.is_empty() => {
            format!("`{}` of trigger {}", dotted(rest), i + 1)
        }
        [Key("triggers"), Index(i)] => format!("trigger {}", i + 1),
        [Key("jobs"), Key(job), rest @ ..] => {
            format!("`{}` of job `{}`", dotted(rest), shown(job))
        }
        _ => format!("`{}`", dotted(path)),
    }
}

fn dotted(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&shown(k));
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

struct Walker<'s> {
    root: &'s Value,
    suggester: Suggester,
}

impl<'s> Walker<'s> {
    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // A chain of references is short; bound it anyway so a cyclic schema cannot hang.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                return schema;
            };
            match self.root.get("$defs").and_then(|defs| defs.get(name)) {
                Some(target) => schema = target,
                None => return schema,
            }
        }
        schema
    }

    fn check<'n>(
        &self,
        node: &'n Node,
        schema: &'s Value,
        place: &mut Place<'n>,
        out: &mut Report,
    ) {
        let schema = self.resolve(schema);
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && self.check_format(node, format, place, out)
        {
            return;
        }
        if let Some(choices) = string_choices(self, schema) {
            self.check_choice(node, &choices, place, out);
            return;
        }
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
            self.check_branches(
                node,
                branches.as_array().map_or(&[][..], Vec::as_slice),
                place,
                out,
            );
            return;
        }
        let types = types_of(schema);
        if !types.is_empty() && !types.iter().any(|t| node_is(node, t)) {
            out.push(type_error(node, &types, &place.path), place);
            return;
        }
        match &node.kind {
            NodeKind::Map(entries) => self.check_object(node, entries, schema, place, out),
            NodeKind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        place.enter(Seg::Index(i), i);
                        self.check(item, item_schema, place, out);
                        place.leave();
                    }
                }
            }
            NodeKind::Scalar { .. } => {
                if let (Some(min), Some(Scalar::Int(value))) =
                    (schema.get("minimum").and_then(Value::as_i64), node.scalar())
                    && value < min
                {
                    out.push(
                        Diagnostic::error(
                            node.pos,
                            format!(
                                "{} must be at least {min}, found {value}",
                                describe_leaf(&place.path)
                            ),
                        ),
                        place,
                    );
                }
            }
        }
    }

    /// Checks a custom `format`; returns true when it decided the node.
    fn check_format(&self, node: &Node, format: &str, place: &Place<'_>, out: &mut Report) -> bool {
        match format {
            "duration" => {
                let text = match node.scalar() {
                    Some(Scalar::Str(text)) => text,
                    _ => {
                        out.push(
                            Diagnostic::error(
                                node.pos,
                                format!(
                                    "{} expects a duration, found {}",
                                    describe_leaf(&place.path),
                                    node.describe()
                                ),
                            )
                            .with_label(
                                "a number and a unit, like `500ms`, `10s`, `5m` or `1h30m`",
                            ),
                            place,
                        );
                        return true;
                    }
                };
                if let Err(message) = parse_duration(text) {
                    out.push(Diagnostic::error(node.pos, message.to_string()), place);
                }
                true
            }
            "memory" => {
                let Some(text) = node.as_text() else {
                    out.push(
                        Diagnostic::error(
                            node.pos,
                            format!(
                                "{} expects a size, found {}",
                                describe_leaf(&place.path),
                                node.describe()
                            ),
                        )
                        .with_label("a number and a unit, like `512MiB` or `4GiB`"),
                        place,
                    );
                    return true;
                };
                if let Err(message) = crate::spec::model::MemorySize::parse(text) {
                    out.push(Diagnostic::error(node.pos, message), place);
                }
                true
            }
            "priority" => {
                let ok = match node.scalar() {
                    Some(Scalar::Int(_)) => true,
                    Some(Scalar::Str(text)) => text.contains("${{"),
                    _ => false,
                };
                if !ok {
                    out.push(
                        Diagnostic::error(
                            node.pos,
                            format!(
                                "{} expects an integer or a `${{{{ … }}}}` template, found {}",
                                describe_leaf(&place.path),
                                node.describe()
                            ),
                        ),
                        place,
                    );
                }
                true
            }
            _ => false,
        }
    }

    fn check_choice(&self, node: &Node, choices: &[String], place: &Place<'_>, out: &mut Report) {
        let names = || list_names(choices.iter().map(String::as_str));
        match node.scalar() {
            Some(Scalar::Str(text)) if choices.iter().any(|c| c == text) => {}
            Some(Scalar::Null) | None => out.push(
                Diagnostic::error(
                    node.pos,
                    format!(
                        "{} expects one of {}, found {}",
                        describe_leaf(&place.path),
                        names(),
                        node.describe()
                    ),
                ),
                place,
            ),
            Some(_) => {
                let text = node.as_text().unwrap_or_default();
                out.push(
                    Diagnostic::error(
                        node.pos,
                        format!(
                            "`{}` is not a valid value for {}",
                            shown(text),
                            describe_leaf(&place.path)
                        ),
                    )
                    .with_label(format!("expected one of {}", names()))
                    .with_help(
                        self.suggester
                            .suggest(text, choices.iter().map(String::as_str)),
                    ),
                    place,
                );
            }
        }
    }

    fn check_branches<'n>(
        &self,
        node: &'n Node,
        branches: &'s [Value],
        place: &mut Place<'n>,
        out: &mut Report,
    ) {
        let non_null: Vec<&Value> = branches
            .iter()
            .filter(|b| types_of(self.resolve(b)) != ["null"])
            .collect();
        if non_null.len() < branches.len() && node.is_null() {
            return;
        }
        if let [only] = non_null.as_slice() {
            self.check(node, only, place, out);
            return;
        }
        let mut best: Option<Report> = None;
        for branch in &non_null {
            let resolved = self.resolve(branch);
            let mut scratch = Report::default();
            self.check(node, resolved, place, &mut scratch);
            if scratch.is_empty() {
                return;
            }
            let kind_fits = types_of(resolved).iter().any(|t| node_is(node, t));
            if kind_fits && best.is_none() {
                best = Some(scratch);
            }
        }
        match best {
            Some(errors) => out.extend(errors),
            None => {
                let mut types: Vec<&str> = Vec::new();
                for branch in &non_null {
                    types.extend(types_of(self.resolve(branch)));
                }
                out.push(type_error(node, &types, &place.path), place);
            }
        }
    }

    fn check_object<'n>(
        &self,
        node: &'n Node,
        entries: &'n [(Node, Node)],
        schema: &'s Value,
        place: &mut Place<'n>,
        out: &mut Report,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (index, (key, value)) in entries.iter().enumerate() {
            let name = key.as_text().unwrap_or_default();
            let property = properties.and_then(|p| p.get(name));
            let value_schema = match (property, additional) {
                (Some(property), _) => Some(property),
                (None, Some(additional)) if additional.is_object() => Some(additional),
                (None, Some(Value::Bool(false))) => {
                    let within = describe(&place.path);
                    place.enter(Seg::Key(name), index);
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(
                        Diagnostic::error(
                            key.pos,
                            format!("unknown key `{}` in {within}", shown(name)),
                        )
                        .with_label(format!(
                            "expected one of {}",
                            list_names(known.iter().copied())
                        ))
                        .with_help(
                            github_spelling(name, &known)
                                .or_else(|| self.suggester.suggest(name, known.iter().copied())),
                        ),
                        place,
                    );
                    place.leave();
                    None
                }
                _ => None,
            };
            if let Some(value_schema) = value_schema {
                place.enter(Seg::Key(name), index);
                self.check(value, value_schema, place, out);
                place.leave();
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.as_text() == Some(name)) {
                    // Nothing to prune: the model cannot be built without the key.
                    out.diagnostics.push(Diagnostic::error(
                        node.pos,
                        format!("missing key `{name}` in {}", describe(&place.path)),
                    ));
                }
            }
        }
    }
}

/// The string values a schema allows, when it is an enumeration.
fn string_choices(walker: &Walker<'_>, schema: &Value) -> Option<Vec<String>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    if let Some(value) = schema.get("const").and_then(Value::as_str) {
        return Some(vec![value.to_owned()]);
    }
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    let mut all = Vec::new();
    for branch in branches {
        let branch = walker.resolve(branch);
        if branch.get("enum").is_none() && branch.get("const").is_none() {
            return None;
        }
        all.extend(string_choices(walker, branch)?);
    }
    Some(all)
}

fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn node_is(node: &Node, json_type: &str) -> bool {
    match (json_type, &node.kind) {
        ("object", NodeKind::Map(_)) | ("array", NodeKind::Seq(_)) => true,
        ("null", NodeKind::Scalar { .. }) => node.is_null(),
        // SPEC §7: a plain scalar where text is expected is taken as its text.
        ("string", NodeKind::Scalar { .. }) => !node.is_null(),
        ("integer", NodeKind::Scalar { .. }) => matches!(node.scalar(), Some(Scalar::Int(_))),
        ("number", NodeKind::Scalar { .. }) => {
            matches!(node.scalar(), Some(Scalar::Int(_) | Scalar::Float(_)))
        }
        ("boolean", NodeKind::Scalar { .. }) => matches!(node.scalar(), Some(Scalar::Bool(_))),
        _ => false,
    }
}

fn type_name(json_type: &str) -> &'static str {
    match json_type {
        "object" => "a map",
        "array" => "a list",
        "string" => "text",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        "null" => "nothing",
        _ => "a value",
    }
}

fn type_error(node: &Node, types: &[&str], path: &[Seg<'_>]) -> Diagnostic {
    let mut names: Vec<&str> = Vec::new();
    for t in types {
        let name = type_name(t);
        if !names.contains(&name) && name != "nothing" {
            names.push(name);
        }
    }
    let expected = match names.as_slice() {
        [] => "a value".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    Diagnostic::error(
        node.pos,
        format!(
            "{} expects {expected}, found {}",
            describe_leaf(path),
            node.describe()
        ),
    )
}

/// Describes the value at `path` for a type message: "`timeout` of job `build`".
fn describe_leaf(path: &[Seg<'_>]) -> String {
    describe(path)
}

/// The CoreFlow way of writing a key spelled as in GitHub Actions, where that key is
/// `name` and the place it is written in knows the CoreFlow key (`known`).
fn github_spelling(name: &str, known: &[&str]) -> Option<String> {
    let (ours, how) = match name {
        "timeout-minutes" => ("timeout", "`timeout: 30m` (a duration, not minutes)"),
        "working-directory" => ("workdir", "`workdir: path`"),
        "continue-on-error" => ("continue_on_error", "`continue_on_error: true`"),
        "runs-on" => ("runs_on", "`runs_on: [label]`: labels workers carry"),
        "on" => ("triggers", "`triggers:` (schedule, every, file, after, …)"),
        "strategy" => (
            "matrix",
            "`matrix:` directly on the job, with `max_parallel`",
        ),
        "uses" => {
            return Some(
                "`uses:` runs a GitHub Action, which CoreFlow does not run: write what the \
                 action does as `run:` commands"
                    .to_owned(),
            );
        }
        _ => return None,
    };
    known
        .contains(&ours)
        .then(|| format!("`{name}` is GitHub Actions' spelling: CoreFlow writes {how}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::parse;

    fn problems(src: &str) -> Vec<String> {
        let root = parse(src).unwrap().unwrap();
        check_workflow(&root)
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {} | {}",
                    d.pos.line,
                    d.pos.col,
                    d.message,
                    d.help.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn finds_every_structural_problem_at_once() {
        let found = problems(
            "jobs:\n  a:\n    neeeds: [b]\n    steps:\n      - run: x\n        timeout: 5\n  b:\n    retry: { max_attempts: x, backoff: exponental }\n",
        );
        insta::assert_debug_snapshot!(found, @r#"
        [
            "3:5: unknown key `neeeds` in job `a` | did you mean `needs`?",
            "6:18: `timeout` of step 1 of job `a` expects a duration, found `5` | ",
            "8:28: `retry.max_attempts` of job `b` expects an integer, found `x` | ",
            "8:40: `exponental` is not a valid value for `retry.backoff` of job `b` | did you mean `exponential`?",
        ]
        "#);
    }

    #[test]
    fn github_actions_spellings_point_to_coreflow_keys() {
        let found = problems(
            "on: { push: {} }\njobs:\n  a:\n    timeout-minutes: 5\n    steps:\n      - uses: actions/checkout@v4\n",
        );
        assert_eq!(
            found,
            [
                "1:1: unknown key `on` in the workflow | `on` is GitHub Actions' spelling: CoreFlow writes `triggers:` (schedule, every, file, after, …)",
                "4:5: unknown key `timeout-minutes` in job `a` | `timeout-minutes` is GitHub Actions' spelling: CoreFlow writes `timeout: 30m` (a duration, not minutes)",
                "6:9: unknown key `uses` in step 1 of job `a` | `uses:` runs a GitHub Action, which CoreFlow does not run: write what the action does as `run:` commands",
            ]
        );
    }

    #[test]
    fn github_spellings_of_job_and_step_keys_point_to_the_new_keys() {
        let found = problems(
            "jobs:\n  a:\n    continue-on-error: true\n    steps:\n      - run: x\n        working-directory: sub\n",
        );
        assert_eq!(
            found,
            [
                "3:5: unknown key `continue-on-error` in job `a` | `continue-on-error` is GitHub Actions' spelling: CoreFlow writes `continue_on_error: true`",
                "6:9: unknown key `working-directory` in step 1 of job `a` | `working-directory` is GitHub Actions' spelling: CoreFlow writes `workdir: path`",
            ]
        );
    }

    #[test]
    fn plain_scalars_are_text() {
        assert!(
            problems("env: { PORT: 8080, DEBUG: true }\njobs:\n  a:\n    steps: [{ run: true }]\n")
                .is_empty()
        );
    }
}
